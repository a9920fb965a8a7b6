"""The ``gaitforce`` command line: a thin layer whose subcommands call the library.

Each subcommand lives in :mod:`gaitforce.cli` as a module with ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. User errors (:class:`GaitforceError`) print one line and exit 2; so does
any :class:`OSError` (an output that exists, a path under a file, a read-only folder, a full disk: one line
naming the path and the cause, :func:`gaitforce.outputs.os_error`). Ctrl-C at any point, start-up included,
prints ``interrupted`` and exits 130; outputs are written whole or not at all (:mod:`gaitforce.outputs`), so
nothing half-written is left. Every command with ``--out`` takes ``--overwrite``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gaitforce import __version__
from gaitforce.errors import GaitforceError

#: Subcommand modules under gaitforce.cli, in the order shown by --help.
COMMANDS = ["demo", "inspect", "ingest", "label", "train", "evaluate", "predict", "benchmark", "explain", "stream"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaitforce",
        description="Internal forces of the body (knee contact, muscle forces, EMG) from motion capture.",
    )
    parser.add_argument("--version", action="version", version=f"gaitforce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gaitforce.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gaitforce.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
        add_overwrite(sub.choices[name])
    return parser


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` on every (sub)command that writes an ``--out``: one flag, one rule for all."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_overwrite(child)
    options = {o for a in parser._actions for o in a.option_strings}
    if "--out" in options and "--overwrite" not in options:
        parser.add_argument("--overwrite", action="store_true",
                            help="replace an existing non-empty output (default: refuse, exit 2)")


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        return int(args.func(args) or 0)
    except GaitforceError as err:
        print(f"gaitforce: error: {_one_line(err.line())}", file=sys.stderr)
        return 2
    except (OSError, UnicodeError) as err:
        from gaitforce.outputs import os_error

        print(f"gaitforce: error: {_one_line(os_error(err).line())}", file=sys.stderr)
        return 2
    except RecursionError:
        print("gaitforce: error: input nested too deeply to read", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gaitforce: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    """An error as one line (a library's multi-line message folded), printable on any terminal."""
    text = " ".join(str(text).split())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


if __name__ == "__main__":
    sys.exit(main())
