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

#: Each command's one-line help, as its module's ``register`` gives it (a test checks they agree): ``gaitforce
#: --help`` lists the commands from here without importing any command module (fast start).
SUMMARIES = {
    "demo": "run the whole chain on a synthetic cohort (or --data DIR) and write a report folder",
    "inspect": "show what motion-capture files or a dataset folder hold",
    "ingest": "build a dataset of stance phases (features + targets) from trial files or folders",
    "label": "compute physics targets (knee contact, muscle forces) with OpenSim for trials or a dataset",
    "train": "train a surrogate network on a dataset and write a model bundle (ONNX + JSON)",
    "evaluate": "score a bundle on a dataset, or train and compare models on subject splits",
    "predict": "predict per-frame forces of each stance in trial files with a model bundle",
    "benchmark": "run a named benchmark (grand-challenge)",
    "explain": "feature-importance maps over stance (gradient x SD and integrated gradients) for a model bundle",
    "stream": "stream per-frame forces live on Lab Streaming Layer",
}


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser. ``command``: the one subcommand whose module is imported and registered in full (``"*"``:
    all of them); the others get a stub with their one-line help, so that ``gaitforce --help`` and
    ``gaitforce CMD --help`` import only what they show."""
    parser = argparse.ArgumentParser(
        prog="gaitforce",
        description="Internal forces of the body (knee contact, muscle forces, EMG) from motion capture.",
    )
    parser.add_argument("--version", action="version", version=f"gaitforce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if command != "*" and name != command:
            sub.add_parser(name, help=SUMMARIES.get(name), add_help=False)
            continue
        try:
            module = importlib.import_module(f"gaitforce.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gaitforce.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument not starting with '-'), or None."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
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
