"""Training entry points: `python -m generation.train <command> [options]`.

To add a command (for example the token LM as `lm`), write generation/train/lm.py with
`add_arguments(parser)` and `main(args)`, and add a line to COMMANDS.
"""

from generation.commands import run

COMMANDS = {
    "codec": ("generation.train.codec", "train the neural audio codec"),
    "probe": ("generation.train.probe", "train the attribute probe (style, instruments)"),
    "lm": ("generation.train.lm", "train the token LM over codec tokens"),
}


def main(argv: list[str] | None = None) -> None:
    run("python -m generation.train", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    main()
