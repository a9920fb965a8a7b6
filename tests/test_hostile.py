"""The hostile-input suite (issue 14): bad files, damaged or tampered bundles and manifests, impossible settings,
outputs that cannot or must not be written, full disks and Ctrl-C, across every command.

Each case runs the command line in-process (``gaitforce.cli.main``) and asserts the exit code, ONE error line
on stderr naming the input and what is wrong, no traceback, and the state of the outputs afterwards (absent, or
the previous output intact and loadable, no temporary sibling left). Inputs are tiny synthetic walks and a ridge
bundle (tests/builders.py); generators of the corrupt inputs are in tests/hostile_gen.py."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import make_bundle
from hostile_gen import (
    BUNDLE_KINDS,
    DATASET_KINDS,
    TRIAL_KINDS,
    make_bundle_kind,
    make_dataset_kind,
    make_trial_file,
)

from gaitforce.cli.main import main
from gaitforce.data import synthetic
from gaitforce.data.dataset import Dataset
from gaitforce.learn.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[1]


# -- fixtures: one tiny cohort, dataset and bundle for the whole suite ----------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    trials = synthetic.generate_cohort(n_subjects=2, trials_per_subject=1, seed=0)
    cohort = root / "cohort"
    files = [p for p in synthetic.write_cohort(cohort, trials, fmt="c3d") if p.suffix == ".c3d"]
    (cohort / "cohort.json").unlink()
    assert main(["ingest", str(cohort), "--out", str(root / "raw"), "--no-progress"]) == 0
    ds = Dataset.load(root / "raw")
    ds.frames["knee_medial"] = 2.0 * ds.frames["grf_y"] + 500.0 * ds.frames["knee_lat_x"]
    ds.manifest["targets"] = {"knee_medial": "N"}
    ds.save(root / "ds")
    bundle = make_bundle(root / "bundle")
    return {"root": root, "cohort": cohort, "files": files, "ds": root / "ds", "bundle": bundle}


def run(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, out, err


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("gaitforce: error:")]


def one_error(err: str, *needles: str) -> str:
    """Exactly one error line, holding every needle (case-insensitive)."""
    lines = error_lines(err)
    assert len(lines) == 1, err
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def no_leftovers(parent: Path) -> None:
    """No temporary sibling (.NAME.tmp-*, .NAME.old-*) left beside an output."""
    left = [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert not left, left


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fresh(world, tmp_path: Path, name="ds") -> Path:
    """A copy of the suite's dataset (or bundle) in this test's folder, to be damaged or overwritten."""
    import shutil

    out = tmp_path / name
    shutil.copytree(world["ds"] if name == "ds" else world["bundle"], out)
    return out


# -- 1. outputs: no silent overwrite, one line for every OS error, checked before any work ---------------------
def _command(name: str, world, out: Path) -> list:
    return {
        "ingest": ["ingest", world["cohort"], "--out", out, "--no-progress"],
        "train": ["train", world["ds"], "--out", out, "--model", "ridge", "--split", "none", "--quiet"],
        "predict": ["predict", world["bundle"], world["files"][0], "--out", out],
        "evaluate": ["evaluate", world["ds"], "--bundle", world["bundle"], "--out", out],
        "explain": ["explain", world["bundle"], world["ds"], "--out", out, "--points", "11"],
        "label": ["label", world["files"][0], "--out", out, "--no-progress"],
        "benchmark": ["benchmark", "grand-challenge", "--data", world["root"] / "no-data", "--out", out],
        "demo": ["demo", "--out", out],
    }[name]


OUT_COMMANDS = ["ingest", "train", "predict", "evaluate", "explain", "label", "benchmark", "demo"]


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_is_an_existing_file(world, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.write_text("precious")
    rc, _, err = run(_command(command, world, out), capsys)
    assert rc == 2
    one_error(err, str(out), "file")
    assert out.read_text() == "precious"
    no_leftovers(tmp_path)


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_under_a_file(world, tmp_path, capsys, command):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "out"
    rc, _, err = run(_command(command, world, out), capsys)
    assert rc == 2
    one_error(err, "not a folder")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_not_empty_needs_overwrite(world, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _, err = run(_command(command, world, out), capsys)
    assert rc == 2
    one_error(err, str(out), "not" if command == "demo" else "--overwrite")
    assert snapshot(out) == {"keep.txt": b"mine"}
    no_leftovers(tmp_path)


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_in_a_read_only_folder(world, tmp_path, capsys, command, monkeypatch):
    """A read-only folder (simulated: the suite may run as root, which chmod does not stop)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    rc, _, err = run(_command(command, world, ro / "out"), capsys)
    assert rc == 2
    one_error(err, "read-only")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_name_with_bytes_that_are_not_utf8(world, tmp_path, capsys, command):
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out\xff"))
    rc, _, err = run(_command(command, world, out), capsys)
    assert rc == 2
    one_error(err, "UTF-8")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cause, word", [(errno.ENOSPC, "no space"), (errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission"), (errno.ENOTDIR, "not a folder"),
                                         (errno.EEXIST, "exists"), (errno.EDQUOT, "quota")])
def test_every_os_error_is_one_line(world, tmp_path, monkeypatch, cause, word):
    """An OSError while writing (here: the parquet file of a dataset) is one line naming the output and the
    cause, and the previous dataset is intact."""
    from gaitforce.outputs import OutputError

    ds = Dataset.load(world["ds"])
    target = tmp_path / "target"
    ds.save(target)
    before = snapshot(target)

    def fail(self, path, **kw):
        Path(path).write_bytes(b"PAR1 half")  # a partial file first, as a full disk leaves
        raise OSError(cause, os.strerror(cause))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with pytest.raises(OutputError) as info:
        ds.save(target, overwrite=True)
    line = info.value.line()
    assert word in line.lower() and str(target) in line and "\n" not in line
    assert snapshot(target) == before
    monkeypatch.undo()
    assert Dataset.load(target).frames.shape == ds.frames.shape
    no_leftovers(tmp_path)


# -- 2. atomic outputs: a full disk or Ctrl-C while writing leaves the previous output intact -------------------
@pytest.mark.parametrize("exc, rc, word", [(OSError(errno.ENOSPC, "No space left on device"), 2, "no space"),
                                           (KeyboardInterrupt(), 130, "interrupted")])
def test_ingest_over_a_dataset_that_fails_midway_keeps_the_old_one(world, tmp_path, capsys, monkeypatch, exc, rc,
                                                                     word):
    old = fresh(world, tmp_path)
    before = snapshot(old)
    real = pd.DataFrame.to_parquet

    def half(self, path, **kw):
        real(self.head(3), path, **kw)  # a truncated file is on disk when the disk fills
        raise exc

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half)
    code, _, err = run(["ingest", world["cohort"], "--out", old, "--no-progress", "--overwrite"], capsys)
    assert code == rc
    assert word in err.lower() and len(err.strip().splitlines()) == 1
    assert snapshot(old) == before
    assert len(Dataset.load(old).frames) == len(Dataset.load(world["ds"]).frames)
    no_leftovers(tmp_path)


@pytest.mark.parametrize("exc, rc, word", [(OSError(errno.ENOSPC, "No space left on device"), 2, "no space"),
                                           (KeyboardInterrupt(), 130, "interrupted")])
def test_train_over_a_bundle_killed_after_the_model_keeps_the_old_bundle(world, tmp_path, capsys, monkeypatch, exc,
                                                                           rc, word):
    """The issue's SIGKILL case: killed after model.onnx is written and before bundle.json: the old bundle
    still loads (the new files were in a temporary sibling)."""
    import gaitforce.learn.export as export

    old = fresh(world, tmp_path, "bundle")
    before = snapshot(old)
    real = export._opset

    def die(data):
        real(data)
        raise exc

    monkeypatch.setattr(export, "_opset", die)
    code, _, err = run(["train", world["ds"], "--out", old, "--model", "ridge", "--split", "none", "--quiet",
                        "--overwrite"], capsys)
    assert code == rc and word in err.lower()
    assert snapshot(old) == before
    load_bundle(old)
    no_leftovers(tmp_path)


def test_predict_interrupted_midway_leaves_no_half_output(world, tmp_path, capsys, monkeypatch):
    import gaitforce.learn.predict as cp  # the command imports predict_file from here when it runs

    calls = []
    real = cp.predict_file

    def second_interrupts(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(cp, "predict_file", second_interrupts)
    out = tmp_path / "p"
    code, _, err = run(["predict", world["bundle"], *world["files"], "--out", out], capsys)
    assert code == 130 and "interrupted" in err
    assert not out.exists()
    no_leftovers(tmp_path)


def test_evaluate_report_on_a_full_disk_leaves_no_report(world, tmp_path, capsys, monkeypatch):
    import gaitforce.evaluate.report as report

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_table", full)
    out = tmp_path / "e"
    code, _, err = run(["evaluate", world["ds"], "--bundle", world["bundle"], "--out", out], capsys)
    assert code == 2
    one_error(err, "no space", str(out))
    assert not out.exists()
    no_leftovers(tmp_path)


def test_what_a_killed_writer_left_is_tidied_or_put_back(world, tmp_path, capsys):
    """SIGKILL cannot clean up: the next write removes a dead writer's temporary folder and, if the output is
    missing (killed between the two renames of the swap), puts the previous output back first."""
    import shutil

    dead = 999_999_999  # no such process
    out = tmp_path / "ds"
    shutil.copytree(world["ds"], tmp_path / f".ds.old-{dead}-abcd1234")  # moved aside, never put back
    (tmp_path / f".ds.tmp-{dead}-abcd1234").mkdir()  # a half-written new one
    (tmp_path / f".ds.tmp-{dead}-abcd1234" / "frames.parquet").write_bytes(b"PAR1 half")
    rc, _, err = run(["ingest", world["cohort"], "--out", out, "--no-progress"], capsys)
    assert rc == 2 and "--overwrite" in err  # the old dataset is back, so it is not silently replaced
    assert len(Dataset.load(out).stance_ids) == 4
    no_leftovers(tmp_path)


@pytest.mark.parametrize("command", ["ingest", "train", "predict"])
def test_overwrite_replaces_the_output_whole(world, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    rc, _, err = run(_command(command, world, out) + ["--overwrite"], capsys)
    assert rc == 0, err
    assert not (out / "stale.txt").exists()
    if command == "ingest":
        assert len(Dataset.load(out).stance_ids) == 4
    elif command == "train":
        assert load_bundle(out).targets == ["knee_medial"]
    else:
        assert len(list(out.glob("*.csv"))) == 2
    no_leftovers(tmp_path)


def test_train_refuses_before_training(world, tmp_path, capsys, monkeypatch):
    """`train --out` an existing dataset folder: refused before any training, the dataset untouched."""
    import gaitforce.learn.training as training

    def never(*a, **kw):
        raise AssertionError("trained")

    monkeypatch.setattr(training.Estimator, "fit", never)
    ds = fresh(world, tmp_path)
    before = snapshot(ds)
    rc, _, err = run(["train", ds, "--out", ds, "--model", "ridge", "--split", "none"], capsys)
    assert rc == 2
    one_error(err, "--overwrite")
    assert snapshot(ds) == before


# -- 3. bad trial files: one line each, the batch goes on ------------------------------------------------------
FILE_COMMANDS = ["inspect", "ingest", "predict", "label"]
EXPECT = {  # a word of the one line each kind gives
    "metres_as_mm": "look like metres", "short_rows": "missing cells", "mm_as_m": "look like", "non_utf8": "utf-8",
    "no_load": "stance", "missing": "", "unknown_ext": "",
}


def _file_argv(command, world, bad, out):
    return {"inspect": ["inspect", bad], "ingest": ["ingest", bad, "--out", out, "--no-progress"],
            "predict": ["predict", world["bundle"], bad, "--out", out],
            "label": ["label", bad, "--out", out, "--no-progress"]}[command]


@pytest.mark.parametrize("kind", TRIAL_KINDS)
@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_bad_file_alone_is_one_line(world, tmp_path, capsys, command, kind):
    bad = make_trial_file(kind, tmp_path / "in", world["files"][0])
    out = tmp_path / "out"
    rc, stdout, err = run(_file_argv(command, world, bad, out), capsys)
    if command == "inspect" and kind == "no_load":  # describing a file with no stance is no error
        assert rc == 0 and "stances:  none found" in stdout and not error_lines(err)
        return
    assert rc != 0
    if command != "inspect":
        assert rc == 2
    shown = Path(os.fsdecode(bad).encode("utf-8", "backslashreplace").decode("utf-8")).name
    one_error(err, shown, EXPECT.get(kind, ""))
    assert not out.exists()  # nothing written when nothing was processed
    no_leftovers(tmp_path)


BATCH_KINDS = ["trunc50", "garbage_c3d", "pickle_c3d", "metres_as_mm", "no_load", "short_rows", "mm_as_m",
               "non_utf8", "empty_trc"]


@pytest.mark.parametrize("kind", BATCH_KINDS)
@pytest.mark.parametrize("command", ["ingest", "predict"])
def test_a_bad_file_in_a_batch_does_not_stop_the_others(world, tmp_path, capsys, command, kind):
    bad = make_trial_file(kind, tmp_path / "in", world["files"][0])
    out = tmp_path / "out"
    argv = (["ingest", *world["files"], bad, "--out", out, "--no-progress"] if command == "ingest" else
            ["predict", world["bundle"], world["files"][0], bad, world["files"][1], "--out", out])
    rc, stdout, err = run(argv, capsys)
    assert rc == 1, err
    assert "1 file(s) failed" in err
    shown = os.fsdecode(bad).encode("utf-8", "backslashreplace").decode("utf-8")
    assert sum(Path(shown).name in ln for ln in err.splitlines()) == 1  # one line for the bad file
    if command == "ingest":
        ds = Dataset.load(out)
        assert len(ds.stance_ids) == 4 and len(ds.manifest["failures"]) == 1
    else:
        assert len(list(out.glob("*.csv"))) == 4
    no_leftovers(tmp_path)


# -- 4. bundles from anyone: refused in one line before a session runs ----------------------------------------
@pytest.mark.parametrize("kind", sorted(BUNDLE_KINDS))
@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
def test_a_tampered_bundle_is_one_line(world, tmp_path, capsys, command, kind):
    b = make_bundle_kind(kind, world["bundle"], tmp_path / "b")
    out = tmp_path / "out"
    argv = {"predict": ["predict", b, world["files"][0], "--out", out],
            "evaluate": ["evaluate", world["ds"], "--bundle", b, "--out", out],
            "explain": ["explain", b, world["ds"], "--out", out]}[command]
    rc, _, err = run(argv, capsys)
    assert rc == 2
    one_error(err)
    assert not out.exists()
    no_leftovers(tmp_path)


def test_a_bundle_never_reads_a_marker_map_path(world, tmp_path, monkeypatch):
    """The issue's read-anything case: the map path is refused by the JSON check, before any file is opened,
    and the error does not say whether the file exists."""
    opened = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (opened.append(str(self)), real(self, *a, **k))[1])
    lines = []
    for path in ("/etc/hostname", "/no/such/file.json"):
        b = make_bundle_kind("map_path_absolute", world["bundle"], tmp_path / Path(path).name)
        spec = json.loads((b / "bundle.json").read_text())
        spec["input"]["ingest_settings"]["marker_map"] = path
        (b / "bundle.json").write_text(json.dumps(spec))
        with pytest.raises(Exception) as info:
            load_bundle(b)
        lines.append(info.value.line().split(": ", 1)[1])
    assert not any(p in ("/etc/hostname", "/no/such/file.json") for p in opened)
    assert lines[0] == lines[1] and "names no file" in lines[0]


def test_a_bundle_from_a_map_file_embeds_the_map(world, tmp_path):
    """Training on a dataset ingested with a map FILE writes the map itself into bundle.json."""
    from gaitforce.data.features import load_marker_map
    from gaitforce.learn.export import bundle_spec

    mp = tmp_path / "mymap.json"
    mp.write_text(json.dumps({**load_marker_map("plug-in-gait"), "name": "mine"}))
    from gaitforce.learn.training import Estimator

    ds = Dataset.load(world["ds"])
    est = Estimator("ridge", targets=("knee_medial",), threads=1, verbose=False).fit(ds)
    spec = bundle_spec(est, dataset_manifest={**ds.manifest, "settings": {**ds.manifest["settings"],
                                                                           "marker_map": str(mp)}}, metrics=None)
    assert spec["input"]["marker_map"]["name"] == "mine"
    assert spec["input"]["ingest_settings"]["marker_map"]["slots"] == load_marker_map("plug-in-gait")["slots"]
    assert str(mp) not in json.dumps(spec)


# -- 5. datasets: a hand-edited or hostile manifest is one line ------------------------------------------------
@pytest.mark.parametrize("kind", sorted(DATASET_KINDS))
@pytest.mark.parametrize("command", ["train", "evaluate", "explain"])
def test_a_damaged_dataset_is_one_line(world, tmp_path, capsys, command, kind):
    ds = make_dataset_kind(kind, world["ds"], tmp_path / "d")
    out = tmp_path / "out"
    argv = {"train": ["train", ds, "--out", out, "--model", "ridge", "--split", "none", "--quiet"],
            "evaluate": ["evaluate", ds, "--bundle", world["bundle"], "--out", out],
            "explain": ["explain", world["bundle"], ds, "--out", out]}[command]
    rc, _, err = run(argv, capsys)
    assert rc == 2
    one_error(err, "ds")
    assert not out.exists()


# -- 6. impossible settings: refused before any work -----------------------------------------------------------
@pytest.mark.parametrize("model, param", [
    ("mlp", "layers=-3"), ("mlp", "layers=0"), ("mlp", "width=2.5"), ("mlp", "dropout=1.5"), ("mlp", "dropout=-0.1"),
    ("mlp", "layers=true"), ("paper-cnn", "conv_layers=0"), ("paper-cnn", "channels=abc"), ("tcn", "kernel=0"),
    ("tcn", "layers=1e9"), ("ridge", "alpha=-1"), ("ridge", "alphas=[]"), ("ridge", "alphas=[0, 1]"),
    ("mlp", "no_such=1"), ("mlp", "epochs=0"), ("mlp", "lr=-1"),
])
def test_impossible_hyperparameters_fail_before_training(world, tmp_path, capsys, model, param):
    out = tmp_path / "out"
    rc, _, err = run(["train", world["ds"], "--out", out, "--model", model, "--split", "none", "--param", param,
                      "--quiet"], capsys)
    assert rc == 2
    one_error(err, param.split("=")[0])
    assert not out.exists()


def test_layers_minus_three_through_the_library():
    from gaitforce.errors import GaitforceError
    from gaitforce.learn.training import Estimator

    with pytest.raises(GaitforceError, match="layers=-3: must be >= 1"):
        Estimator("mlp", layers=-3)


# -- 7. physically implausible input: refused or flagged, never used --------------------------------------------
def test_a_stance_shorter_than_the_minimum_from_the_files_own_frames_is_rejected():
    """A reader's own stance frames (a Grand Challenge .mat marks one) of 3 frames: rejected as too short, as a
    detected stance would be."""
    from gaitforce.signal.stances import StanceRules, segment

    t = synthetic.generate_trial(seed=0, subject=0, trial=0)
    onset = int(np.argmax(t.forces[:, 0, 1] > 100))
    own = t.replace(meta={**t.meta, "single_stance": True, "stance_frames": (onset, onset + 3), "side": "right"})
    (s,) = segment(own, StanceRules(min_duration=0.2))
    assert not s.accepted and "too short" in s.reason and "0.030 s" in s.reason
    ok = t.replace(meta={**own.meta, "stance_frames": (onset, onset + 40)})
    assert segment(ok, StanceRules(min_duration=0.2))[0].accepted


def test_stream_values_beyond_physical_bounds_are_occlusions_and_the_limb_recovers(world):
    """The issue's LSL case: 1e30 for 20 frames. Those frames are flagged, no prediction is huge, and both
    limbs predict again in the same run."""
    from gaitforce.stream.layout import StreamLayout
    from gaitforce.stream.online import FLAG_IMPLAUSIBLE, OnlinePipeline

    b = load_bundle(world["bundle"])
    walk = synthetic.generate_trial(seed=0, subject=3, trial=1)  # one stance a limb: played twice, no restart
    lay = StreamLayout.for_trial(walk)
    one = StreamLayout.trial_samples(walk)
    n = len(one)
    x = np.vstack([one, one])
    stamps = np.concatenate([walk.time, walk.time + walk.time[-1] + 1.0 / walk.rate])
    clean = np.array([r.copy() for r in _stream(OnlinePipeline(b, lay, rate=walk.rate), x, stamps)])
    right = np.isfinite(clean[:, 0])
    first = int(np.argmax(right))
    assert right[n:].sum() > 40  # the second right stance is predicted in a clean run
    hit = slice(first + 5, first + 25)
    x[hit] = 1e30
    pipe = OnlinePipeline(b, lay, rate=walk.rate)
    rows = np.array([r.copy() for r in _stream(pipe, x, stamps)])
    flags = rows[:, -2].astype(int)
    assert (flags[hit] & FLAG_IMPLAUSIBLE).all() and pipe.n_implausible == 20
    assert not (flags[: hit.start] & FLAG_IMPLAUSIBLE).any() and not (flags[hit.stop:] & FLAG_IMPLAUSIBLE).any()
    preds = rows[:, :2]
    assert np.nanmax(np.abs(preds)) < 1e4  # no 1.7e29
    assert np.isnan(preds[hit, 0]).all()  # no prediction from the glitch
    # both limbs recover: the second copy's stances are predicted as in the clean run
    assert (np.isfinite(preds[n:, 0]) == right[n:]).all() and (np.isfinite(preds[n:, 1]) == np.isfinite(
        clean[n:, 1])).all()
    np.testing.assert_allclose(preds[n:][right[n:], 0], clean[n:][right[n:], 0], rtol=1e-3, atol=1.0)


def _stream(pipe, samples, stamps):
    for s, t in zip(samples, stamps):
        row = pipe.process(s, t)
        if row is not None:
            yield row


def test_marker_unit_check_names_metres_in_a_mm_file(world, tmp_path):
    from hostile_gen import c3d_metres_labelled_mm

    from gaitforce.errors import UnitError
    from gaitforce.io import read

    with pytest.raises(UnitError, match="markers look like metres but the file says mm"):
        read(c3d_metres_labelled_mm(tmp_path))
    assert read(world["files"][0]).n_frames > 0  # the same walk in mm reads


# -- 8. real Grand Challenge files (skipped without the shared data) --------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("command", ["ingest", "predict"])
def test_gc_file_with_all_nan_grf_in_a_batch(gc_dir, world, tmp_path, capsys, command):
    import scipy.io

    src = gc_dir / "competitions" / "JW__GC4__jw_ngait_og3.mat"
    d = {k: v for k, v in scipy.io.loadmat(src).items() if not k.startswith("__")}
    d["Joint"]["F"][0, 0] = np.full(d["Joint"]["F"][0, 0].shape, np.nan)
    bad = tmp_path / "JW__GC4__nan_grf.mat"
    scipy.io.savemat(bad, d)
    out = tmp_path / "out"
    argv = (["ingest", src, bad, "--out", out, "--no-progress"] if command == "ingest" else
            ["predict", world["bundle"], world["files"][0], bad, "--out", out])
    rc, _, err = run(argv, capsys)
    assert rc == 1
    assert sum("nan_grf.mat: vertical ground reaction force is all NaN" in ln for ln in err.splitlines()) == 1
    assert out.exists()


@pytest.mark.realdata
def test_all_nan_knee_force_is_warned(gc_dir, tmp_path, capsys):
    import scipy.io

    src = gc_dir / "competitions" / "JW__GC4__jw_ngait_og3.mat"
    d = {k: v for k, v in scipy.io.loadmat(src).items() if not k.startswith("__")}
    for name in ("KneeMedial", "KneeLateral"):
        d["Force"][name][0, 0] = np.full(d["Force"][name][0, 0].shape, np.nan)
    bad = tmp_path / "JW__GC4__nan_knee.mat"
    scipy.io.savemat(bad, d)
    rc, _, err = run(["ingest", bad, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert rc == 0
    warn = [ln for ln in err.splitlines() if ln.startswith("gaitforce: warning:")]
    assert len(warn) == 1 and "knee_medial" in warn[0] and "NaN in every frame" in warn[0]


# -- 9. Ctrl-C at any moment of a real process -----------------------------------------------------------------
@pytest.mark.parametrize("delay", [0.3, 0.8, 2.0])
def test_sigint_prints_interrupted_and_leaves_nothing(world, tmp_path, delay):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gaitforce", "ingest", str(world["cohort"]), "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    if proc.returncode == 0:  # finished before the signal: a whole dataset
        assert len(Dataset.load(out).stance_ids) == 4
    elif proc.returncode == -signal.SIGINT:
        # the signal came before the interpreter had installed its own handler (start-up, before any gaitforce
        # code ran): killed by the OS default action, silently; nothing may have been written
        assert err.strip() == "" and not out.exists()
    else:
        assert proc.returncode == 130 and err.strip().splitlines() == ["gaitforce: interrupted"]
        assert not out.exists()
    no_leftovers(tmp_path)
