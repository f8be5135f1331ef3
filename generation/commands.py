"""One dispatcher for the engine's command-line tools (`python -m generation.train`, `.eval`).

Each command is a module with `add_arguments(parser)` and `main(args)`; a tool is a table of
them. Command modules are imported only when chosen, so one tool's heavy imports never slow
another's `--help`.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def run(prog: str, description: str, commands: dict[str, tuple[str, str]], argv=None) -> None:
    """Parse `argv` as `prog <command> [options]` and run the chosen command's `main`."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    chosen = next((a for a in argv if a in commands), None)
    module = None
    for name, (module_name, summary) in commands.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    module.main(args)
