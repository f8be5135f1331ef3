"""Evaluation entry points: `python -m generation.eval <command> [options]`.

Each command is a module with `add_arguments(parser)` and `main(args)`; to add one (for example
the token LM as `lm`), write generation/eval/lm.py and add a line to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "codec": ("generation.eval.codec", "evaluate a codec checkpoint against Opus"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m generation.eval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    modules = {}
    for name, (module_name, summary) in COMMANDS.items():
        modules[name] = importlib.import_module(module_name)
        modules[name].add_arguments(commands.add_parser(name, help=summary, description=summary))
    args = parser.parse_args(argv)
    modules[args.command].main(args)


if __name__ == "__main__":
    main()
