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
import re
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


_ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|obj|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_ANGLE = re.compile(r"<([a-z][a-z0-9_]*)>")
_DEFAULT = re.compile(r"([(;] ?)default (?=\S)")


def plain(text: str) -> str:
    """Help text without Sphinx markup (``x`` -> x, :mod:`a.b` -> a.b), with one placeholder style (upper case:
    <trial> -> TRIAL, as argparse writes metavars) and one default style ("(default: X)")."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))
    text = _ANGLE.sub(lambda m: m.group(1).upper(), text)
    return _DEFAULT.sub(r"\1default: ", text)


class HelpFormatter(argparse.HelpFormatter):
    """The one help style of every command: plain text (see :func:`plain`), and "(default: X)" added to an
    option's help only when it has a default worth showing and its help does not already state one."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _expand_help(self, action) -> str:
        return plain(super()._expand_help(action))

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS) or default == []
                or isinstance(action, (argparse._StoreConstAction, argparse._HelpAction, argparse._VersionAction))
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """Every subcommand's parser uses :class:`HelpFormatter`, whatever its module asks for."""

    def __init__(self, *args, **kwargs):
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser. ``command``: the one subcommand whose module is imported and registered in full (``"*"``:
    all of them); the others get a stub with their one-line help, so that ``gaitforce --help`` and
    ``gaitforce CMD --help`` import only what they show."""
    parser = argparse.ArgumentParser(
        prog="gaitforce", formatter_class=HelpFormatter,
        description="Internal forces of the body (knee contact, muscle forces, EMG) from motion capture.",
    )
    parser.add_argument("--version", action="version", version=f"gaitforce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
        add_overwrite(sub.choices[name])
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument not starting with '-'), or None."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


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
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(_command_of(argv))
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


def entry() -> None:
    """The console script and ``python -m gaitforce``: :func:`main`, then exit with its code. After Ctrl-C the
    process leaves at once (``os._exit`` once the streams are flushed): letting the interpreter finalise after a
    KeyboardInterrupt inside a C extension's import (torch, pyarrow) sometimes ended it by SIGINT (-2) after
    "interrupted" was printed, instead of exit 130. Every output is already whole or absent at that point."""
    import os

    try:
        code = main()
    except KeyboardInterrupt:
        print("gaitforce: interrupted", file=sys.stderr)
        code = 130
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
