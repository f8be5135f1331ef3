"""Evaluation entry points: `python -m generation.eval <command> [options]`.

To add a command (for example the token LM as `lm`), write generation/eval/lm.py with
`add_arguments(parser)` and `main(args)`, and add a line to COMMANDS.
"""

from generation.commands import run

COMMANDS = {
    "codec": ("generation.eval.codec", "evaluate a codec checkpoint against Opus"),
    "codec-listen": ("generation.eval.codec_listen", "spectrograms and audio of held-out clips"),
    "lm": ("generation.eval.lm", "speed and controllability of the token LM"),
    "lm-listen": ("generation.eval.lm_listen", "spectrograms of generated clips and prompts"),
    "probe": ("generation.eval.probe", "score an attribute probe on held-out clips"),
}


def main(argv: list[str] | None = None) -> None:
    run("python -m generation.eval", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    main()
