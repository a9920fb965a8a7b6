"""``gaitforce label DATASET --out DS2`` end to end on a tiny synthetic dataset (OpenSim): the targets are added
to a loadable dataset, and a run killed halfway resumes without recomputing the stances it had cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaitforce.cli import main
from gaitforce.data.dataset import Dataset
from gaitforce.data.ingest import build_dataset
from gaitforce.data.synthetic import generate_cohort, write_cohort
from gaitforce.physics import TARGETS

pytestmark = [pytest.mark.opensim, pytest.mark.slow]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """4 stances of one synthetic subject (2 walks), ingested; skipped where OpenSim or the model is absent."""
    pytest.importorskip("opensim")
    pytest.importorskip("dask.distributed")
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.model import model_file

    try:
        model_file(download=False)
    except GaitforceError as err:
        pytest.skip(str(err))
    root = tmp_path_factory.mktemp("synthetic")
    # 50 Hz keeps each stance near 40 frames, so OpenSim runs in a few seconds a stance
    files = [p for p in write_cohort(root / "raw", generate_cohort(n_subjects=1, trials_per_subject=2, rate=50.0))
             if p.suffix == ".c3d"]
    ds, failures = build_dataset(files, progress=False)
    assert not failures and len(ds.stance_ids) >= 3
    ds.save(root / "ds")
    return root / "ds"


def test_label_adds_targets_to_a_loadable_dataset(dataset_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative --out: OpenSim must still find its setup files
    assert main(["label", str(dataset_dir), "--out", "ds2", "--workers", "2", "--no-progress",
                 "--model", "gait14dof22musc"]) == 0
    assert "0 stance(s) from the cache, 4 computed" in capsys.readouterr().out
    before, after = Dataset.load(dataset_dir), Dataset.load(tmp_path / "ds2")
    assert len(after.frames) == len(before.frames) and after.stance_ids == before.stance_ids
    # the synthetic dataset has no measured targets, so the physics ones keep their names
    for name in TARGETS:
        assert name in after.frames and after.manifest["targets"][name] == "N"
        assert np.isfinite(after.frames[name]).all()
    assert after.manifest["physics"]["labelled_stances"] == len(before.stance_ids)
    f = after.frames
    np.testing.assert_allclose(f["knee_total"], f["knee_medial"] + f["knee_lateral"], rtol=1e-9)
    assert (f[["knee_medial", "knee_lateral", "quadriceps", "glut_max"]] >= -1e-6).all().all()
    # a walking knee carries well over body weight at its peak: 1-6 BW for every stance
    bw = 9.81 * float(generate_cohort(n_subjects=1, trials_per_subject=1)[0].subject.mass)
    peaks = f.groupby("stance_id")["knee_total"].max() / bw
    assert ((peaks > 1.0) & (peaks < 6.0)).all(), peaks
    # the measured columns of the input are carried over unchanged
    for col in before.frames.columns:
        np.testing.assert_array_equal(after.frames[col].to_numpy(), before.frames[col].to_numpy())


def test_label_on_padded_windows_with_filtered_grf_and_scaled_strength(dataset_dir, tmp_path, capsys):
    """--pad 0.2: IK/ID/SO run on the stance with 0.2 s of the trial each side (the synthetic walks have them),
    the dataset gets exactly its stance frames back, labelled; --grf-lowpass and --strength enter too."""
    from gaitforce.physics.pipeline import read_sto

    out = tmp_path / "ds2"
    assert main(["label", str(dataset_dir), "--out", str(out), "--workers", "1", "--no-progress",
                 "--model", "gait14dof22musc", "--pad", "0.2",
                 "--grf-lowpass", "--strength", "handsfield2014"]) == 0
    before, after = Dataset.load(dataset_dir), Dataset.load(out)
    assert len(after.frames) == len(before.frames) and after.stance_ids == before.stance_ids
    assert np.isfinite(after.frames[list(TARGETS)].to_numpy()).all()
    frames = before.frames.groupby("stance_id").size()
    for work in (out / "work").iterdir():
        ik = read_sto(work / "ik.mot")
        stance = next(n for sid, n in frames.items() if work.name == "".join(
            c if c.isalnum() or c in "-_." else "_" for c in sid))
        # 50 Hz: up to 10 frames each side, as many as the walk has (a stance at a file's edge gets fewer)
        assert stance < len(ik) <= stance + 20, (work.name, stance, len(ik))


def _cached(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.parquet")} if cache.exists() else {}


def test_label_resumes_after_a_kill_without_recomputing(dataset_dir, tmp_path):
    out = tmp_path / "ds2"
    cmd = [sys.executable, "-m", "gaitforce", "label", str(dataset_dir), "--out", str(out), "--no-progress",
           "--model", "gait14dof22musc"]
    # one worker, so stances finish one at a time and the kill lands between the first and the last; the
    # process group holds the Dask workers too, so the kill stops every process of the run
    proc = subprocess.Popen([*cmd, "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90.0
        while not _cached(out / "cache") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = _cached(out / "cache")
    n_stances = len(Dataset.load(dataset_dir).stance_ids)
    assert 1 <= len(before) < n_stances, f"killed with {len(before)} of {n_stances} stances cached"
    assert not (out / "frames.parquet").exists()

    done = subprocess.run([*cmd, "--workers", "2"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(before)} stance(s) from the cache, {n_stances - len(before)} computed" in done.stdout
    after = _cached(out / "cache")
    assert len(after) == n_stances
    assert {k: after[k] for k in before} == before  # the cached stances' files were not rewritten
    labelled = Dataset.load(out)
    assert labelled.manifest["physics"]["labelled_stances"] == n_stances
    assert np.isfinite(labelled.frames["knee_medial"]).all()


def test_label_knee_strength_weakens_the_knee_muscles(dataset_dir, tmp_path, capsys):
    """--knee-strength 0.5 halves the knee-crossing muscles' max isometric force: the labels are new (not the
    default's cache) and static optimisation moves load off the knee, so the mean knee contact force falls."""
    totals = {}
    for name, extra in (("default", []), ("weak", ["--knee-strength", "0.5"])):
        out = tmp_path / name
        assert main(["label", str(dataset_dir), "--out", str(out), "--workers", "1", "--no-progress",
                     "--model", "gait14dof22musc", *extra]) == 0
        assert "0 stance(s) from the cache" in capsys.readouterr().out
        f = Dataset.load(out).frames
        assert np.isfinite(f["knee_total"]).all()
        totals[name] = f.groupby("stance_id")["knee_total"].mean()
    assert (totals["weak"] < totals["default"]).all(), (totals["weak"], totals["default"])
