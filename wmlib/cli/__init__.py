"""The ``wmlib`` command line: one module per command in this package.

Each module ``wmlib/cli/<command>.py`` has ``register(subparsers)``, which adds its subcommand and
its flags, and ``run(args)``. Flags are typed and range-checked by :mod:`wmlib.cli._args`, so a bad
flag exits with status 2 and one line on stderr, never a traceback; errors the library raises with
advice (``ValueError``, ``RuntimeError``, ``OSError``) are printed the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# the commands, in the order `wmlib --help` lists them (module names in this package)
COMMANDS = ["info", "kv_cache", "induction", "bench", "probe", "conflict", "finetune", "distill", "babi", "copy_task", "recall", "icl"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``wmlib CMD: error: ... (see 'wmlib CMD --help')``."""

    def error(self, message: str):  # noqa: D401 (argparse's name)
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog="wmlib",
        description="Tools of the book 'Working Memory in Large Language Models'.",
        epilog="Run 'wmlib COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"wmlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``wmlib`` with ``argv`` (default: the command line); return the exit status (``--help``
    and bad flags return 0 and 2 instead of raising SystemExit, so a notebook can call it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:  # our errors carry their own advice
        text = " ".join(str(err).split("\n")[:1]) if isinstance(err, OSError) else str(err)
        print(f"wmlib {args.command}: error: {text}", file=sys.stderr)
        return 2
