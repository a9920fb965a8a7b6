"""Ingest: settings round trip, rows per stance, targets, failures kept apart, CLI exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from gaitforce.cli import main
from gaitforce.data.dataset import ID_COLUMNS, Dataset
from gaitforce.data.features import FEATURE_SETS
from gaitforce.data.ingest import (
    IngestSettings,
    build_dataset,
    expand_paths,
    trial_frames,
)
from gaitforce.errors import GaitforceError
from gaitforce.io import read


def test_settings_round_trip_and_validation():
    s = IngestSettings(marker_map="gc-mat", lowpass_cutoff=6.0, feature_sets=("all", "force_plate"))
    d = json.loads(json.dumps(s.to_dict()))
    assert IngestSettings.from_dict(d) == s
    with pytest.raises(GaitforceError, match="unknown feature sets"):
        IngestSettings(feature_sets=("everything",))
    with pytest.raises(GaitforceError, match="unknown ingest settings"):
        IngestSettings.from_dict({"cutoff": 3})


@pytest.fixture(scope="module")
def comp(gc_dir):
    return gc_dir / "competitions"


@pytest.mark.realdata
def test_trial_frames_of_one_gc_cycle(comp):
    trial = read(comp / "JW__GC4__jw_ngait_og3.mat")
    df = trial_frames(trial, settings=IngestSettings())
    start, stop = trial.meta["stance_frames"]
    assert len(df) == stop - start and df["stance_id"].nunique() == 1
    assert list(df.columns[: len(ID_COLUMNS)]) == ID_COLUMNS
    assert (df["competition"] == "GC4").all() and (df["year"] == 2013).all()
    assert df["stance_pct"].iloc[0] == 0 and df["stance_pct"].iloc[-1] == 100
    # the measured target is carried unfiltered: the README peak
    assert df["knee_medial"].max() == pytest.approx(1025, abs=1)
    for cols, _ in FEATURE_SETS.values():
        assert df[cols].notna().all().all()
    # EMG targets normalised to MVC: non-negative, order of magnitude 1
    emg = df[[c for c in df if c.startswith("emg_")]]
    assert set(emg.columns) == {"emg_glut_med", "emg_rect_fem", "emg_vas_lat", "emg_vas_med", "emg_bic_fem",
                                "emg_semiten", "emg_soleus", "emg_tib_ant"}
    assert emg.max().max() < 5
    # stance frame: origin at the heel-strike CoP, vertical GRF up
    assert abs(df["heel_x"].iloc[0]) < 0.08 and df["grf_y"].max() > 600


@pytest.mark.realdata
def test_build_dataset_keeps_going_past_a_bad_file(comp, tmp_path):
    for name in ("JW__GC4__jw_ngait_og3.mat", "DM__GC6__DM_ngait_og1.mat"):
        shutil.copy(comp / name, tmp_path / name)
    (tmp_path / "XX__GC1__broken.mat").write_bytes(b"not a mat file" * 20)
    assert len(expand_paths([tmp_path])) == 3
    ds, failures = build_dataset([tmp_path], settings=IngestSettings(), progress=False)
    assert len(failures) == 1 and "XX__GC1__broken.mat" in failures[0].line()
    m = ds.manifest
    assert m["counts"]["stances"] == 2 and m["counts"]["failed"] == 1
    assert m["feature_sets"]["all"]["shape"] == [20, 3] and m["feature_sets"]["angles_grf"]["shape"] == [4, 3]
    assert m["targets"]["knee_medial"] == "N" and m["groups"] == ["competition", "year"]
    assert all(len(s["sha256"]) == 64 for s in m["sources"])
    jw = next(s for s in m["sources"] if "JW" in s["path"])
    assert jw["filled_slots"] == {"foot_med": "centroid(foot: heel, toe, foot_lat)"}
    assert jw["emg_normalised"] == "file envelope / trial maximum"  # the paper's, the default
    assert m["emg_normalisation"] == "max"
    x, y, ids = ds.arrays("all", ["knee_medial"])
    assert x.shape[1] == 60 and np.isfinite(x).all()
    # round trip through disk
    back = Dataset.load(ds.save(tmp_path / "ds"))
    assert back.feature_shape("all") == (20, 3) and len(back) == len(ds)


@pytest.mark.realdata
def test_cli_exit_codes(comp, tmp_path, capsys):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "XX__GC1__broken.mat").write_bytes(b"junk" * 50)
    assert main(["ingest", str(bad), "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    err = capsys.readouterr().err  # one file: its own line, once
    assert err.count("XX__GC1__broken.mat") == 1 and len(err.strip().splitlines()) == 1
    shutil.copy(comp / "SC__GC3__SC_ngait_og5.mat", bad)
    assert main(["ingest", str(bad), "--out", str(tmp_path / "ds"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 file(s) failed" in err and "XX__GC1__broken.mat" in err
    assert Dataset.load(tmp_path / "ds").manifest["counts"]["stances"] == 1


@pytest.mark.realdata
@pytest.mark.slow
def test_all_29_grand_challenge_stances(comp, tmp_path):
    assert main(["ingest", str(comp), "--out", str(tmp_path / "gc"), "--no-progress"]) == 0
    ds = Dataset.load(tmp_path / "gc")
    st = ds.stances()
    assert len(st) == 29 and set(st["subject"]) == {"JW", "DM", "SC", "PS"}
    assert sorted(st["competition"].unique()) == [f"GC{i}" for i in range(1, 7)]
    assert ds.frames[["knee_medial", "knee_lateral"]].notna().all().all()


@pytest.fixture(scope="module")
def og3_c3d(gc_dir):
    return read(gc_dir / "jw-c3d" / "jw_ngait_og3.c3d")


@pytest.mark.realdata
def test_flat_emg_channel_leaves_its_target_out_with_a_note(og3_c3d):
    # DM_staticfor1.c3d has a flat biceps femoris channel; here the same on a gait trial
    k = og3_c3d.emg_names.index("bifeml")
    emg = np.array(og3_c3d.emg)
    emg[:, k] = 0.0
    flat = og3_c3d.replace(emg=emg)
    df = trial_frames(flat, settings=IngestSettings())
    assert df["stance_id"].nunique() >= 1
    assert "emg_bic_fem" not in df and "emg_vas_lat" in df  # only the flat muscle is missing
    notes = df.attrs["target_notes"]
    assert len(notes) == 1 and notes[0].startswith("emg_bic_fem left out") and "flat" in notes[0]
    # the untouched trial has the channel (it maps through the lab name 'bifeml')
    assert "emg_bic_fem" in trial_frames(og3_c3d, settings=IngestSettings())


@pytest.mark.realdata
def test_targets_argument_builds_only_the_targets_asked_for(og3_c3d):
    df = trial_frames(og3_c3d, settings=IngestSettings(), targets=("knee_medial",))
    assert not [c for c in df if c.startswith("emg_")]  # no EMG work at all when none is wanted
    assert "knee_medial" not in df  # the C3D holds no knee force: absent, not an error
    assert df.attrs["target_notes"] == []
    full = trial_frames(og3_c3d, settings=IngestSettings())
    feats = [c for c in df if c not in ("knee_medial",) and not c.startswith("emg_")]
    pd.testing.assert_frame_equal(df[feats], full[feats])  # features do not depend on the targets asked for


@pytest.mark.slow
@pytest.mark.realdata
def test_end_to_end_train_on_gc_stances_then_predict_a_raw_c3d(comp, gc_dir, og3_c3d, tmp_path, capsys):
    """ingest 4 GC stances -> train a tiny mlp for knee_medial + emg_bic_fem -> predict raw C3Ds (JW og3, and
    og3 written again with a flat biceps femoris channel: a note, never a failure)."""
    from gaitforce.io.c3d import write_c3d
    from gaitforce.io.sto import read_sto_table

    files = [comp / n for n in ("JW__GC4__jw_ngait_og1.mat", "DM__GC6__DM_ngait_og1.mat",
                                "SC__GC3__SC_ngait_og5.mat", "PS__GC5__PS_ngait_og_ss1.mat")]
    ds, bundle = tmp_path / "ds", tmp_path / "bundle"
    assert main(["ingest", *map(str, files), "--out", str(ds)]) == 0
    assert main(["train", str(ds), "--out", str(bundle), "--model", "mlp", "--split", "none", "--epochs", "3",
                 "--param", "layers=1", "--param", "width=8", "--threads", "1", "--quiet",
                 "--target", "knee_medial", "emg_bic_fem"]) == 0
    emg = np.array(og3_c3d.emg)
    emg[:, og3_c3d.emg_names.index("bifeml")] = 0.0
    flat = write_c3d(tmp_path / "og3_flat_bifeml.c3d", og3_c3d.replace(emg=emg))
    capsys.readouterr()
    out = tmp_path / "pred"
    rc = main(["predict", str(bundle), str(gc_dir / "jw-c3d" / "jw_ngait_og3.c3d"), str(flat), "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "emg_bic_fem left out" in cap.err and "og3_flat_bifeml" in cap.err  # noted for the flat file only
    assert cap.err.count("left out") == 1
    assert "marker map gc-lab: 14 of 18 slots matched, 4 filled" in cap.err  # the choice is printed
    ds_frames = Dataset.load(ds).frames
    sides = [pd.read_csv(out / f"jw_ngait_og3_stance{k}.csv")["side"].iloc[0] for k in range(3)]
    assert sides == ["right", "left", "right"]  # og3: right, left, right foot on plates 1-3
    for stem, measured_emg in (("jw_ngait_og3", True), ("og3_flat_bifeml", False)):
        names = sorted(p.name for p in out.glob(f"{stem}_stance*"))
        assert names == [f"{stem}_stance{k}.{ext}" for k in range(3) for ext in ("csv", "sto")]  # 3 plates, 3 stances
        for k in range(3):
            table = pd.read_csv(out / f"{stem}_stance{k}.csv")
            expected = ["stance_id", "frame", "time", "stance_pct", "side", "knee_medial", "emg_bic_fem"]
            assert list(table.columns) == expected + (["emg_bic_fem_measured"] if measured_emg else []) + [
                "marker_map", "filled_slots", "ood_features"]
            # the GC lab's C3D set has no epicondyle or malleolus markers: the map and the four fills are recorded
            assert table["marker_map"].iloc[0] == "gc-lab"
            assert [f.split("<-")[0] for f in table["filled_slots"].iloc[0].split("; ")] == [
                "knee_lat", "knee_med", "ankle_lat", "ankle_med"]
            assert table["stance_pct"].iloc[0] == 0 and table["stance_pct"].iloc[-1] == 100
            assert table["side"].nunique() == 1 and table["side"].iloc[0] in ("left", "right")
            assert np.allclose(np.diff(table["time"]), 1 / 120, rtol=1e-6)  # the C3D's 120 Hz, seconds
            # target units: newtons on the scale of the training forces, not normalised values near 0
            assert 0.3 * ds_frames["knee_medial"].mean() < table["knee_medial"].mean() < 3 * ds_frames[
                "knee_medial"].max()
            sto, header = read_sto_table(out / f"{stem}_stance{k}.sto")
            assert list(sto.columns) == ["time", "knee_medial", "emg_bic_fem"] and header["inDegrees"] is False
            np.testing.assert_allclose(sto["knee_medial"], table["knee_medial"], rtol=1e-6)


def test_a_target_missing_from_one_stance_is_still_taken_from_the_next():
    # synthetic walk mirrored so the first stance is left: the right-named signal is renamed by mirror_left in the
    # left stance (absent there) but present in the right stance, whose rows must carry it
    from gaitforce.data import synthetic
    from gaitforce.signal.mirror import mirror

    t = mirror(synthetic.generate_trial(seed=0))
    name = "true_knee_flexion_r"
    t = t.replace(signals={name: t.signals[name]}, units={name: "rad"})
    df = trial_frames(t, targets=[name])
    sides = df.groupby("stance_id", sort=False)["side"].first().tolist()
    assert sides == ["left", "right"]
    right = df["side"] == "right"
    assert name in df and np.isfinite(df.loc[right, name]).all() and df.loc[~right, name].isna().all()


def test_settings_wrong_for_every_file_are_refused_once():
    for bad in ({"lowpass_cutoff": -5.0}, {"lowpass_order": 3}, {"max_gap": -1.0}, {"min_duration": float("nan")}):
        with pytest.raises(GaitforceError):
            IngestSettings(**bad)
    assert IngestSettings(lowpass_cutoff=None, lowpass_order=3).lowpass_cutoff is None  # no filter: order unused


def test_missing_marker_map_file_is_one_error_before_any_file_is_read(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"junk" * 50)
    with pytest.raises(GaitforceError, match="no marker map file") as info:
        build_dataset([tmp_path], settings=IngestSettings(marker_map=str(tmp_path / "nope.json")), progress=False)
    assert "nope.json" in str(info.value)


def test_cli_lists_every_failure_when_no_file_ingests(tmp_path, capsys):
    for name in ("a.mat", "b.c3d"):
        (tmp_path / name).write_bytes(b"junk" * 50)
    assert main(["ingest", str(tmp_path), "--out", str(tmp_path / "ds"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "none of 2 files" in err and "2 file(s) failed" in err and "a.mat" in err and "b.c3d" in err


def test_dataset_manifest_that_is_not_an_object_is_an_input_error(tmp_path):
    frames = pd.DataFrame({c: [0] for c in ID_COLUMNS})
    Dataset(frames=frames, manifest={}).save(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(GaitforceError, match="not a JSON object"):
        Dataset.load(tmp_path)


def test_stance_windows_cut_the_raw_trial_where_trial_frames_put_its_stances():
    from gaitforce.data.ingest import IngestSettings, trial_frames, trial_stances
    from gaitforce.data.synthetic import generate_cohort

    trial = generate_cohort(n_subjects=1, trials_per_subject=1, seed=3)[0]
    settings = IngestSettings()
    windows = [(s.start, s.stop, s.side) for s in trial_stances(trial, settings) if s.accepted]
    frames = trial_frames(trial, settings=settings)
    sizes = frames.groupby("stance_id", sort=False).size().tolist()
    sides = frames.groupby("stance_id", sort=False)["side"].first().tolist()
    assert [stop - start for start, stop, _ in windows] == sizes
    assert [side for _, _, side in windows] == sides
    # the raw vertical force is loaded inside every window and the windows do not overlap in one plate's stance
    fv = trial.to_y_up().forces[:, :, 1].max(axis=1)
    for start, stop, _ in windows:
        assert fv[start + (stop - start) // 2] > 100.0


def test_progression_from_the_markers_when_the_cop_stays_put():
    from gaitforce import Trial
    from gaitforce.data.features import marker_progression

    n = 60
    t = np.arange(n) / 100.0
    base = np.array([[0.0, 0.9, 0.1], [0.1, 0.5, 0.0], [0.0, 0.1, 0.2], [0.2, 1.0, -0.1]])
    walk = base[None] + (1.2 * t)[:, None, None] * np.array([0.0, 0.0, -1.0])  # 0.7 m along -z in the stance
    trial = Trial(time=t, markers=walk, marker_names=("A", "B", "C", "D"))
    assert np.allclose(marker_progression(trial), [0.0, 0.0, -1.0])
    still = Trial(time=t, markers=np.repeat(base[None], n, axis=0), marker_names=("A", "B", "C", "D"))
    assert marker_progression(still) is None  # a treadmill or a subject standing: no direction from markers
    walk[-1, 1:] = np.nan  # only one marker seen at both ends: too few to trust
    assert marker_progression(trial.replace(markers=walk)) is None
