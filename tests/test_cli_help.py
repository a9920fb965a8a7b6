"""Every command's --help: clean text (no Sphinx markup, one placeholder and one default style, no empty or
repeated defaults), and a fast start (building the parsers imports none of the heavy libraries)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from gaitforce.cli.main import (
    COMMANDS,
    SUMMARIES,
    HelpFormatter,
    build_parser,
    main,
    plain,
)

HEAVY = ("torch", "onnxruntime", "opensim", "dask", "scipy", "pandas", "matplotlib", "captum", "pyarrow")


def _help(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_text_is_clean(command, capsys):
    text = _help(capsys, ([command] if command else []) + ["--help"])
    assert "usage: gaitforce" in text
    assert "``" not in text and not re.search(r":(mod|func|class|meth|attr|data):`", text), "Sphinx markup"
    assert not re.search(r"<[a-z_]+>", text), "placeholders are upper case (DIR, FILE), never <name>"
    assert "(default: None)" not in text and "(default: [])" not in text and "(default: )" not in text
    assert "(default " not in text, "one default style: '(default: X)'"
    flat = " ".join(text.split())
    if command:
        # every option of the command says its default at most once
        parser = _subparsers(build_parser(command)).choices[command]
        formatter = HelpFormatter(prog="gaitforce")
        for action in parser._actions:
            shown = formatter._get_help_string(action)
            assert shown.lower().count("default") <= 1, (action.option_strings, shown)
        assert "default: the model's) (default" not in flat


def test_placeholders_and_defaults_are_rewritten():
    assert plain("see :mod:`gaitforce.demo` and ``--data DIR``") == "see gaitforce.demo and --data DIR"
    assert plain("writes DIR/<trial>_stance<k>.sto") == "writes DIR/TRIAL_stanceK.sto"
    assert plain("threads (default 1); cutoff (0: none; default 10)") == \
        "threads (default: 1); cutoff (0: none; default: 10)"
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--a", type=int, default=5, help="a number")
    parser.add_argument("--b", default=None, help="optional")
    parser.add_argument("--c", type=int, default=3, help="c (default: 3)")
    parser.add_argument("--d", nargs="+", default=["x", "y"], help="names")
    parser.add_argument("--e", action="store_true", help="a flag")
    text = " ".join(parser.format_help().split())
    assert "a number (default: 5)" in text and "optional --c" in text.replace("(default: None) ", "")
    assert "(default: None)" not in text and "c (default: 3) --d" in text and "names (default: x y)" in text
    assert "a flag (default" not in text


def test_command_list_matches_the_modules():
    """gaitforce --help lists the commands from SUMMARIES without importing them: it must say what they say."""
    full = _subparsers(build_parser("*"))
    helps = {a.dest: a.help for a in full._choices_actions}
    assert helps == SUMMARIES and list(helps) == COMMANDS


def test_constants_repeated_for_help_match_the_library():
    from gaitforce import evaluate as ev
    from gaitforce.cli import evaluate as cli_evaluate
    from gaitforce.cli import explain as cli_explain
    from gaitforce.learn import explain as lib

    assert list(cli_evaluate.SCHEME_NAMES) == list(ev.SCHEMES)
    assert (cli_explain.POINTS, cli_explain.FD_STEP, cli_explain.IG_STEPS, cli_explain.GRADIENTS) == \
        (lib.POINTS, lib.FD_STEP, lib.IG_STEPS, lib.GRADIENTS)


def test_parsers_import_no_heavy_library():
    """Fast start: `gaitforce --help` and every `gaitforce CMD --help` build their parser without torch, ONNX
    Runtime, OpenSim, Dask, SciPy, pandas (checked in a fresh interpreter; times are in benchmarks/, not here)."""
    code = (
        "import sys, json, contextlib, io\n"
        "from gaitforce.cli.main import COMMANDS, build_parser, main\n"
        "out = {}\n"
        "for c in [None, *COMMANDS]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(([c] if c else []) + ['--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"    out[str(c)] = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    assert loaded == {str(c): [] for c in [None, *COMMANDS]}


def test_the_evaluate_commands_constants_are_the_librarys():
    """cli/evaluate names a few library constants itself so that its --help imports no numpy."""
    from gaitforce.cli import evaluate as cli_evaluate
    from gaitforce.data.features import GRF_COLUMNS
    from gaitforce.evaluate.protocol import BASELINE

    assert list(cli_evaluate.GRF_COLUMNS) == list(GRF_COLUMNS) and cli_evaluate.BASELINE == BASELINE


@pytest.mark.parametrize("bad", ["0", "-0.5", "nan", "inf", "weak"])
def test_label_knee_strength_refuses_a_bad_factor_in_one_line(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["label", "x.c3d", "--out", "o", "--knee-strength", bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "argument --knee-strength" in err[-1] and "Traceback" not in "".join(err)


def test_label_knee_strength_reaches_the_settings(monkeypatch, tmp_path):
    """--knee-strength F becomes LabelSettings(knee_muscle_strength=F); without it the library's default holds."""
    import gaitforce.physics as physics

    seen = []

    class Stop(Exception):
        pass

    def settings(**kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(physics, "LabelSettings", settings)
    for extra in (["--knee-strength", "0.6"], []):
        with pytest.raises(Stop):
            main(["label", str(tmp_path / "x.c3d"), "--out", str(tmp_path / "o"), *extra])
    assert seen[0]["knee_muscle_strength"] == 0.6 and "knee_muscle_strength" not in seen[1]
