"""The ``wmlib`` command line.

Each subcommand lives in the module that teaches its idea and exposes ``register(subparsers)``;
this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module path -> registers one or more subcommands
_COMMAND_MODULES = [
    "wmlib.cli_info",
    "wmlib.kv_memory",
    "wmlib.induction",
    "wmlib.cli_bench",
    "wmlib.cli_probe",
    "wmlib.finetune",
    "wmlib.student",
    "wmlib.cli_babi",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="wmlib",
        description="Tools of the book 'Working Memory in Large Language Models'.",
        epilog="Run 'wmlib COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"wmlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # our errors carry their own advice
        print(f"wmlib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
