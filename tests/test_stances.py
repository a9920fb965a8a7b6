"""The stance record (issue: one segmentation, unique identities, subjects for every format): ids that never
collide, subjects and masses from options or a sidecar, refusals in one line, and online == offline features
by construction."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gaitforce.cli import main
from gaitforce.data import features, ingest, synthetic
from gaitforce.data.dataset import Dataset
from gaitforce.data.subjects import SubjectInfo, read_subjects
from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.evaluate import per_trial_metrics, subject_naive_split
from gaitforce.evaluate.metrics import body_weights
from gaitforce.signal.stances import StanceRules, segment, trial_key


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """Two subjects' walks written as s1/walk.c3d and s2/walk.c3d (same file name), and as TRC+MOT."""
    root = tmp_path_factory.mktemp("two")
    trials = [synthetic.generate_trial(seed=0, subject=k, trial=0) for k in (0, 1)]
    for k, tr in enumerate(trials, start=1):
        for fmt in ("c3d", "trc"):
            tmp = root / f"tmp{k}{fmt}"
            written = synthetic.write_cohort(tmp, [tr], fmt=fmt)
            dest = root / fmt / f"s{k}"
            dest.mkdir(parents=True)
            for w in written:
                if w.name != "cohort.json":
                    shutil.move(str(w), dest / w.name.replace(tr.source.split("/")[-1].split(".")[0], "walk"))
    return root, trials


def test_same_named_files_of_two_subjects_give_their_own_stances_and_subjects(two_subjects):
    root, trials = two_subjects
    ds, failures = ingest.build_dataset([root / "c3d"], progress=False)
    assert failures == []
    st = ds.stances()
    assert sorted(st["trial"].unique()) == ["s1/walk.c3d", "s2/walk.c3d"]
    assert st["stance_id"].is_unique and len(st) == 4
    assert all(i.startswith(("s1/walk.c3d#", "s2/walk.c3d#")) for i in st["stance_id"])
    by_trial = st.groupby("trial")["subject"].unique()
    assert by_trial["s1/walk.c3d"].tolist() == [trials[0].subject.id]
    assert by_trial["s2/walk.c3d"].tolist() == [trials[1].subject.id]
    assert trials[0].subject.id != trials[1].subject.id
    # subject-naive splits then never put one person on both sides
    split = subject_naive_split(st, fractions=(0.5, 0.0, 0.5), seed=0)
    subj = {k: set(st.set_index("stance_id").loc[v, "subject"]) for k, v in split.items() if v}
    assert len(subj["train"]) == len(subj["test"]) == 1 and not (subj["train"] & subj["test"])


def test_trc_with_subject_and_mass_options_reaches_the_dataset_and_bw_metrics(two_subjects, tmp_path):
    root, _ = two_subjects
    out = tmp_path / "ds"
    assert main(["ingest", str(root / "trc" / "s1"), "--out", str(out), "--subject", "S", "--mass", "70",
                 "--no-progress"]) == 0
    ds = Dataset.load(out)
    st = ds.stances()
    assert set(st["subject"]) == {"S"} and np.allclose(st["mass"], 70.0)
    y = np.full((len(ds.frames), 1), 700.0)
    m = per_trial_metrics(y, y + 70.0, ds.frames["stance_id"].to_numpy(), body_weight=body_weights(st),
                          target_names=["t"])
    np.testing.assert_allclose(m["rmse_pct_bw"], 100 * 70.0 / (70 * 9.81))


def test_trc_without_subject_is_unknown_and_subject_splits_refuse_it(two_subjects):
    root, _ = two_subjects
    ds, _ = ingest.build_dataset([root / "trc"], progress=False)
    st = ds.stances()
    assert set(st["subject"]) == {"unknown"} and ds.manifest["counts"]["unknown_subject_stances"] == len(st)
    with pytest.raises(GaitforceError, match="have no subject"):
        subject_naive_split(st, seed=0)


def test_subjects_sidecar_names_each_file(two_subjects, tmp_path):
    root, _ = two_subjects
    data = tmp_path / "trc"
    shutil.copytree(root / "trc", data)
    (data / "subjects.csv").write_text("file_or_glob,subject,mass_kg,height_m\ns1/*.trc,P1,61.5,1.70\n"
                                       "s2/walk.trc,P2,,\n")
    ds, failures = ingest.build_dataset([data], progress=False)
    st = ds.stances().set_index("trial")
    assert failures == [] and set(st.loc["s1/walk.trc", "subject"]) == {"P1"}
    assert np.allclose(st.loc["s1/walk.trc", "mass"], 61.5) and st.loc["s2/walk.trc", "mass"].isna().all()
    assert set(st.loc["s2/walk.trc", "subject"]) == {"P2"}
    # options win over the sidecar
    info = SubjectInfo(subject="X", tables=(read_subjects(data / "subjects.csv"),))
    from gaitforce.io import read

    t = info.apply(read(data / "s1" / "walk.trc"), data / "s1" / "walk.trc")
    assert t.subject.id == "X" and t.subject.mass == 61.5


@pytest.mark.parametrize("text, match", [
    ("file,who\nx,y\n", "needs the header"),
    ("file_or_glob,subject,mass_kg,height_m\nx,S,seventy,\n", "is not a number"),
    ("file_or_glob,subject,mass_kg,height_m\nx,S,700,\n", "line 2: subject mass"),
    ("file_or_glob,subject,mass_kg,height_m\nx,S,70,175\n", "line 2: subject height"),
])
def test_malformed_subjects_file_is_one_line(tmp_path, text, match):
    f = tmp_path / "subjects.csv"
    f.write_text(text)
    with pytest.raises(InputFileError, match=match) as err:
        read_subjects(f)
    assert "\n" not in err.value.line() and "subjects.csv" in err.value.line()


def test_dataset_refuses_an_id_that_names_two_stances(two_subjects):
    root, _ = two_subjects
    ds, _ = ingest.build_dataset([root / "c3d"], progress=False)
    frames = ds.frames.copy()
    frames["stance_id"] = frames["stance_id"].str.replace(r"^s\d/", "", regex=True)  # the old stem-only ids
    with pytest.raises(InputFileError, match="names more than one stance"):
        Dataset(frames, ds.manifest)


def test_segment_gives_every_candidate_with_ids_or_reasons():
    trial = synthetic.generate_trial(seed=0, subject=0, trial=0)
    found = segment(trial.to_y_up(), StanceRules(min_duration=0.25), key="a/b.c3d")
    ok = [s for s in found if s.accepted]
    assert [s.id for s in ok] == [f"a/b.c3d#{k}" for k in range(len(ok))] and len(ok) >= 2
    assert all(s.subject == trial.subject.id for s in found)
    strict = segment(trial.to_y_up(), StanceRules(min_duration=5.0), key="a/b.c3d")
    assert not any(s.accepted for s in strict) and all("stance too short" in s.reason for s in strict)
    assert trial_key("/x/y/s1/walk.c3d", "/x/y") == "s1/walk.c3d" and trial_key("/x/walk.c3d") == "walk.c3d"


def test_a_files_own_stance_shorter_than_the_minimum_is_rejected():
    trial = synthetic.generate_trial(seed=0, subject=0, trial=0).to_y_up()
    found = segment(trial.replace(meta={**trial.meta, "single_stance": True, "stance_frames": [10, 13],
                                        "side": "right"}))
    assert len(found) == 1 and found[0].reason.startswith("stance too short")
    outside = segment(trial.replace(meta={**trial.meta, "single_stance": True, "stance_frames": [0, 0]}))
    assert "outside" in outside[0].reason


def test_stance_rules_and_constants_travel_in_the_manifest(two_subjects):
    root, _ = two_subjects
    ds, _ = ingest.build_dataset([root / "c3d" / "s1"], progress=False,
                                 settings=ingest.IngestSettings(stance_threshold=30.0))
    rules = StanceRules.from_dict(ds.manifest["constants"]["stance_rules"])
    assert rules.threshold == 30.0 and ingest.IngestSettings.from_dict(ds.manifest["settings"]).stance_rules == rules
    assert ds.manifest["constants"]["g"] == 9.81 and ds.manifest["emg_normalisation"] == "max"


@pytest.mark.parametrize("feature_set", ["all", "grf_moments"])
def test_online_features_are_the_offline_feature_function_by_construction(feature_set):
    """Filter off: each online frame's features equal :func:`features.frame_features` of the same frame's raw
    markers (through the same marker map), force and CoP, in the stance frame the stream chose, to 1e-9; a
    bundle reading the knee moments gets them computed live (and one that does not, not)."""
    import tempfile
    from pathlib import Path

    from builders import MAP, make_bundle  # noqa: F401

    from gaitforce.learn.bundle import load_bundle
    from gaitforce.stream.layout import StreamLayout
    from gaitforce.stream.online import OnlinePipeline, OnlineSettings

    bundle = load_bundle(make_bundle(Path(tempfile.mkdtemp()) / "b", feature_set=feature_set))
    walk = synthetic.generate_trial(seed=0, subject=2, trial=1).to_y_up()
    pipe = OnlinePipeline(bundle, StreamLayout.for_trial(walk), rate=walk.rate,
                          settings=OnlineSettings.from_bundle(bundle, lowpass_cutoff=None))
    pipe.features_log = []
    for i, sample in enumerate(StreamLayout.trial_samples(walk)):
        pipe.process(sample, float(walk.time[i]))
    assert len(pipe.features_log) > 50
    idx = {float(t): i for i, t in enumerate(walk.time)}
    slots = {side: features.resolve_slots(walk, MAP, side=side)[0] for side in ("right", "left")}
    worst = 0.0
    mom = [features.feature_columns().index(c) for c in features.MOMENT_COLUMNS]
    live = np.array([f[mom] for _, _, f, *_ in pipe.features_log])
    assert np.isfinite(live).all() if feature_set == "grf_moments" else np.isnan(live).all()
    for t, side, feat, rot, origin, plate in pipe.features_log:
        i = idx[float(t)]
        want = features.frame_features(slots[side][i][None], walk.forces[i, plate][None], walk.cop[i, plate][None],
                                       rot, origin)[0]
        worst = max(worst, float(np.nanmax(np.abs(feat - want))))
    assert worst < 1e-9
