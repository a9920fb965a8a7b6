"""The ``gaitforce`` command line: a thin layer whose subcommands call the library.

Each subcommand lives in :mod:`gaitforce.cli` as a module with ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. User errors (:class:`GaitforceError`) print one line and exit 2.
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except GaitforceError as err:
        print(f"gaitforce: error: {err.line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gaitforce: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
