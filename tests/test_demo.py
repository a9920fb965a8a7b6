"""gaitforce demo: the stance windows the labeller sees match the dataset, label merging rules, the no-physics
stand-in, user errors, and (slow) a tiny whole-chain run that writes the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaitforce import demo
from gaitforce.cli import main
from gaitforce.data.ingest import IngestSettings, build_dataset
from gaitforce.data.synthetic import generate_cohort, write_cohort
from gaitforce.errors import GaitforceError
from gaitforce.physics.merge import merge_labels


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    files = [p for p in write_cohort(folder, generate_cohort(n_subjects=2, trials_per_subject=1, seed=3))
             if p.suffix == ".c3d"]
    ds, failures = build_dataset(files, progress=False)
    assert not failures
    return files, ds


def test_stance_windows_match_dataset_frames(cohort):
    """The labeller must see exactly the dataset's frames: same ids, same counts, same (raw) time span."""
    files, ds = cohort
    counts = ds.frames.groupby("stance_id").size()
    windows = {}
    for f in files:
        windows.update(demo.stance_windows(f, IngestSettings()))
    assert sorted(windows) == sorted(ds.stance_ids)
    for sid, trial in windows.items():
        assert trial.n_frames == counts[sid]
        assert trial.meta["side"] == ds.frames.loc[ds.frames.stance_id == sid, "side"].iloc[0]
        assert len(trial.plate_names) == 2  # every plate kept: the other foot's load reaches the model too
        # the dataset's stance time starts at 0; the window's duration is the same
        dur = ds.frames.loc[ds.frames.stance_id == sid, "time"].max()
        assert trial.time[-1] - trial.time[0] == pytest.approx(dur, abs=1e-9)


def test_merge_labels_matches_frames_and_rejects_wrong_counts(cohort):
    _, ds = cohort
    ids = ds.stance_ids
    n0 = int((ds.frames.stance_id == ids[0]).sum())
    good = pd.DataFrame({"frame": np.arange(n0), "time": 0.0, "knee_medial": 10.0 * np.arange(n0)})
    bad = pd.DataFrame({"frame": np.arange(3), "time": 0.0, "knee_medial": 1.0})
    failures: list = []
    out = merge_labels(ds, {ids[0]: good, ids[1]: bad}, failures=failures)
    assert out.stance_ids == ds.stance_ids  # every row kept; unlabelled stances have NaN targets
    got = out.frames.loc[out.frames.stance_id == ids[0], "knee_medial"].to_numpy()
    np.testing.assert_array_equal(got, 10.0 * np.arange(n0))
    assert out.frames.loc[out.frames.stance_id != ids[0], "knee_medial"].isna().all()
    assert out.targets["knee_medial"] == "N" and out.manifest["physics"]["labelled_stances"] == 1
    assert len(failures) == 1 and failures[0].source == ids[1] and "3 frames" in failures[0].line()
    with pytest.raises(GaitforceError):
        merge_labels(ds, {ids[1]: bad})
    # a target the dataset holds is kept and the physics value goes beside it, unless replace
    measured = ds.frames.assign(knee_medial=1.0)
    from gaitforce.data.dataset import Dataset

    own = Dataset(measured, {**ds.manifest, "targets": {**ds.targets, "knee_medial": "N"}})
    kept = merge_labels(own, {ids[0]: good})
    assert (kept.frames["knee_medial"] == 1.0).all() and "physics_knee_medial" in kept.targets
    replaced = merge_labels(own, {ids[0]: good}, replace=True)
    assert "physics_knee_medial" not in replaced.frames and replaced.manifest["physics"]["replaced"] == ["knee_medial"]


def test_grf_standin_is_resultant(cohort):
    _, ds = cohort
    out = demo.grf_standin(ds)
    g = ds.frames[["grf_x", "grf_y", "grf_z"]].to_numpy(float)
    row = 5
    assert out.frames[demo.STANDIN_TARGET].iloc[row] == pytest.approx(float(np.linalg.norm(g[row])))
    assert out.targets[demo.STANDIN_TARGET] == "N"


def test_settings_and_cli_user_errors(tmp_path, capsys):
    with pytest.raises(GaitforceError):
        demo.DemoSettings(n_subjects=2)
    with pytest.raises(GaitforceError):
        demo.DemoSettings(physics="sometimes")
    assert main(["demo", "--out", str(tmp_path / "d"), "--data", str(tmp_path / "absent")]) == 2
    assert "no such data" in capsys.readouterr().err
    busy = tmp_path / "busy"
    (busy / "data").mkdir(parents=True)
    (busy / "data" / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(busy)]) == 2  # never empties a folder that is not a demo report
    assert (busy / "data" / "keep.txt").read_text() == "mine"
    assert "not a gaitforce demo report" in capsys.readouterr().err


def test_skipped_stage_says_skipped_and_why():
    lines = []
    stages = demo._Stages(["data", "label"], lines.append)
    assert stages.skip("data", "real data given: x", lambda: [1]) == [1]
    assert stages.skip("label", "measured target") is None
    assert lines == ["[1/2] data: skipped (real data given: x)", "[2/2] label: skipped (measured target)"]
    assert set(stages.timings) == {"data", "label"}


@pytest.mark.slow
def test_tiny_demo_writes_report(tmp_path, monkeypatch):
    """3 subjects x 1 trial, 3 epochs: the chain runs and the report says what it is. Physics is skipped
    (stated stand-in target) only where OpenSim or its model is absent. Run from another folder: nothing is
    written there (OpenSim's log included), and the report's links are relative to the report."""
    import re

    skip_physics = demo.physics_available() is not None
    settings = demo.DemoSettings(n_subjects=3, trials_per_subject=1, epochs=3, seed=1,
                                 physics="never" if skip_physics else "auto")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    lines = []
    res = demo.run_demo(Path("..") / "demo", settings, log=lines.append)
    assert list(cwd.iterdir()) == []
    assert any(line.startswith("[3/7] label: " + ("skipped (--no-physics" if skip_physics else "done in"))
               for line in lines)
    text = res.index.read_text()
    assert "SYNTHETIC" in text and "These data are synthetic" in text
    assert "Test set: 2 stances of 1 subject." in text and "Wilcoxon signed-rank p" in text
    for link in re.findall(r"\]\(([^)]+)\)", text):
        assert (res.index.parent / link).exists(), link
    page = (res.out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and 'href="evaluation/index.html"' in page
    for stage in ("data", "ingest", "label", "train", "evaluate", "predict", "total"):
        assert stage in res.timings
    assert res.target == (demo.STANDIN_TARGET if skip_physics else "knee_medial")
    info = json.loads((res.out / "demo.json").read_text())
    assert info["n_subjects"] == 3 and info["n_stances"] == 6
    assert set(res.metrics["model"]) == {"paper-cnn", "ridge"}
    for name in ("evaluation/index.md", f"evaluation/{res.target}_scatter.png", "bundle/model.onnx",
                 "bundle/bundle.json"):
        assert (res.out / name).is_file(), name
    # predicting the held-out file from disk gives what the evaluation got from the dataset for those stances
    per = pd.read_csv(res.out / "evaluation" / "per_trial.csv").set_index("stance_id")
    csvs = sorted((res.out / "predictions").glob("*.csv"))
    assert csvs
    for csv in csvs:
        table = pd.read_csv(csv)
        sid = table["stance_id"].iloc[0]
        pred = table[res.target].to_numpy()
        assert np.isfinite(pred).all()
        if skip_physics:  # the stand-in is not stored in a dataset folder
            continue
        ref = pd.read_parquet(res.out / "dataset-labelled" / "frames.parquet")
        ref = ref.loc[ref.stance_id == sid, res.target].to_numpy()
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        assert rmse == pytest.approx(per.loc[sid, "rmse"], rel=1e-4)
