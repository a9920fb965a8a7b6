"""Splitters and metrics of gaitforce.evaluate, against hand-computed answers and properties."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaitforce import evaluate as ev
from gaitforce.cli import evaluate as cmd
from gaitforce.cli import main
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError


def gc_like_stances() -> pd.DataFrame:
    """The Grand Challenge's shape: 4 subjects, 6 years, 29 stances (DM and JW in two years each)."""
    spec = [("JW", 2010, 5), ("DM", 2011, 5), ("SC", 2012, 5), ("JW", 2013, 5), ("PS", 2014, 4), ("DM", 2015, 5)]
    rows = []
    for subj, year, n in spec:
        for i in range(n):
            rows.append({"stance_id": f"{subj}_{year}_{i}", "subject": subj, "year": year, "mass": 70.0})
    return pd.DataFrame(rows)


def subjects_of(stances, ids):
    return set(stances.set_index("stance_id").loc[list(ids), "subject"])


# -- subject-naive ----------------------------------------------------------------------------------------
def test_subject_naive_gc_one_subject_each_for_test_and_val():
    s = gc_like_stances()
    split = ev.subject_naive_split(s, seed=0)
    # 29 stances: 10% is 2.9 stances, so the nearest is one subject (4 or 5 stances) each for test and val
    assert len(subjects_of(s, split["test"])) == 1
    assert len(subjects_of(s, split["val"])) == 1
    assert len(subjects_of(s, split["train"])) == 2
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(s["stance_id"])


def test_subject_naive_picks_prefix_nearest_the_fraction():
    # subjects of 10 stances each: 30% of 100 is exactly three subjects for test, 20% two for val
    s = pd.DataFrame({"stance_id": [f"s{i}" for i in range(100)], "subject": [f"p{i // 10}" for i in range(100)]})
    split = ev.subject_naive_split(s, fractions=(0.5, 0.2, 0.3), seed=3)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (50, 20, 30)


def test_subject_naive_too_few_subjects_is_a_user_error():
    s = pd.DataFrame({"stance_id": ["a", "b", "c"], "subject": ["x", "x", "y"]})
    with pytest.raises(GaitforceError, match="at least 3"):
        ev.subject_naive_split(s)
    # without a val set two subjects suffice
    split = ev.subject_naive_split(s, fractions=(0.5, 0.0, 0.5))
    assert split["val"] == [] and subjects_of(s, split["test"]) != subjects_of(s, split["train"])


def test_subject_naive_seed_changes_the_assignment():
    s = gc_like_stances()
    tests = {tuple(sorted(subjects_of(s, ev.subject_naive_split(s, seed=k)["test"]))) for k in range(20)}
    assert len(tests) > 1


# -- subject-exposed --------------------------------------------------------------------------------------
def test_subject_exposed_moves_lone_subjects_to_train():
    # subject "solo" has one stance: it must train, whatever the seed
    s = pd.DataFrame({"stance_id": [f"s{i}" for i in range(21)], "subject": ["a"] * 10 + ["b"] * 10 + ["solo"]})
    for seed in range(10):
        split = ev.subject_exposed_split(s, seed=seed)
        assert "s20" in split["train"]
        train_subj = subjects_of(s, split["train"])
        assert subjects_of(s, split["test"] + split["val"]) <= train_subj


def test_subject_exposed_sizes_follow_rounding_when_nothing_moves():
    s = pd.DataFrame({"stance_id": [f"s{i}" for i in range(40)], "subject": [f"p{i % 2}" for i in range(40)]})
    split = ev.subject_exposed_split(s, seed=1)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (32, 4, 4)


# -- leave one group out ----------------------------------------------------------------------------------
def test_leave_year_out_gives_six_folds_with_the_year_as_test():
    s = gc_like_stances()
    folds = ev.leave_one_group_out(s, "year", val_fraction=0.1)
    assert list(folds) == ["2010", "2011", "2012", "2013", "2014", "2015"]
    f = folds["2011"]
    assert sorted(f["test"]) == [f"DM_2011_{i}" for i in range(5)]
    # 24 pooled stances: round(2.4) = 2 for val; DM 2015 may train (not strict)
    assert len(f["val"]) == 2 and len(f["train"]) == 22
    assert not set(f["test"]) & set(f["train"] + f["val"])


def test_strict_leave_year_out_hides_the_test_subjects_other_year():
    s = gc_like_stances()
    folds = ev.leave_one_group_out(s, "year", val_fraction=0.0, exclude=ev.same_subject)
    f = folds["2011"]
    assert subjects_of(s, f["train"]) == {"JW", "SC", "PS"}
    assert len(f["train"]) == 29 - 10 and f["val"] == []


def test_leave_one_group_out_needs_two_groups():
    s = pd.DataFrame({"stance_id": ["a", "b"], "subject": ["x", "x"], "year": [1, 1]})
    with pytest.raises(GaitforceError, match="at least two"):
        ev.leave_one_group_out(s, "year")


def test_make_splits_names_folds_and_rejects_unknown():
    s = gc_like_stances()
    assert list(ev.make_splits("leave-subject-out", s)) == ["subject=DM", "subject=JW", "subject=PS", "subject=SC"]
    with pytest.raises(GaitforceError, match="unknown split"):
        ev.make_splits("kfold", s)


# -- properties -------------------------------------------------------------------------------------------
@st.composite
def stance_tables(draw):
    n_subj = draw(st.integers(3, 8))
    counts = draw(st.lists(st.integers(1, 12), min_size=n_subj, max_size=n_subj))
    subj = np.repeat([f"p{i}" for i in range(n_subj)], counts)
    perm = np.random.default_rng(draw(st.integers(0, 1000))).permutation(len(subj))
    return pd.DataFrame({"stance_id": [f"s{i}" for i in range(len(subj))], "subject": subj[perm]})


@settings(max_examples=60, deadline=None)
@given(stance_tables(), st.integers(0, 2**31 - 1))
def test_subject_naive_partitions_without_leaks_and_reproduces(stances, seed):
    split = ev.subject_naive_split(stances, seed=seed)
    ids = split["train"] + split["val"] + split["test"]
    assert sorted(ids) == sorted(stances["stance_id"]) and len(set(ids)) == len(ids)
    sets = [subjects_of(stances, split[k]) for k in ("train", "val", "test")]
    assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert ev.subject_naive_split(stances, seed=seed) == split


@settings(max_examples=60, deadline=None)
@given(stance_tables(), st.integers(0, 2**31 - 1))
def test_subject_exposed_partitions_and_every_heldout_subject_trains(stances, seed):
    try:
        split = ev.subject_exposed_split(stances, seed=seed)
    except GaitforceError:
        return  # every subject a single stance: nothing can be held out
    ids = split["train"] + split["val"] + split["test"]
    assert sorted(ids) == sorted(stances["stance_id"]) and len(set(ids)) == len(ids)
    assert subjects_of(stances, split["val"] + split["test"]) <= subjects_of(stances, split["train"])
    assert ev.subject_exposed_split(stances, seed=seed) == split


# -- metrics ----------------------------------------------------------------------------------------------
def test_per_trial_metrics_known_answers():
    t = np.linspace(0, 1, 101)
    ref = 1000 * np.sin(np.pi * t)  # peak 1000 N at mid-stance
    pred_a = ref + 30.0  # constant offset: RMSE 30, r 1, peak +30
    pred_b = 0.5 * ref  # half: r 1, peak -500
    y_true = np.concatenate([ref, ref])
    y_pred = np.concatenate([pred_a, pred_b])
    sid = ["a"] * 101 + ["b"] * 101
    m = ev.per_trial_metrics(y_true, y_pred, sid, body_weight={"a": 600.0, "b": 750.0}, target_names=["knee"])
    assert list(m["stance_id"]) == ["a", "b"]
    a, b = m.iloc[0], m.iloc[1]
    assert a["rmse"] == pytest.approx(30.0) and a["rmse_pct_bw"] == pytest.approx(5.0)
    assert a["r"] == pytest.approx(1.0) and a["peak_error"] == pytest.approx(30.0)
    # RMSE of 0.5 * 1000 sin(pi t) is 500 * sqrt(mean(sin^2)) ~ 500 / sqrt(2) over a dense grid
    expected = 500 * np.sqrt(np.mean(np.sin(np.pi * t) ** 2))
    assert b["rmse"] == pytest.approx(expected) and b["rmse_pct_bw"] == pytest.approx(100 * expected / 750)
    assert b["peak_error"] == pytest.approx(-500.0) and b["peak_error_pct_bw"] == pytest.approx(-500 / 7.5)


def test_anticorrelated_prediction_has_r_minus_one():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    m = ev.per_trial_metrics(x, -x, ["s"] * 4)
    assert m.loc[0, "r"] == pytest.approx(-1.0)
    assert m.loc[0, "rmse"] == pytest.approx(np.sqrt(np.mean((2 * x) ** 2)))
    assert np.isnan(m.loc[0, "rmse_pct_bw"])  # no body weight given


def test_nan_frames_are_dropped_pairwise_and_constant_signal_gives_nan_r():
    y_true = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0]])
    y_pred = np.array([[2.0, 1.0], [100.0, 2.0], [4.0, 3.0]])
    m = ev.per_trial_metrics(y_true, y_pred, ["s"] * 3, target_names=["f", "flat"], units={"flat": "1"})
    f, flat = m.iloc[0], m.iloc[1]
    assert f["n_frames"] == 2 and f["rmse"] == pytest.approx(1.0) and f["r"] == pytest.approx(1.0)
    assert flat["n_frames"] == 3 and np.isnan(flat["r"])  # constant reference: r undefined
    assert flat["unit"] == "1" and np.isnan(flat["rmse_pct_bw"])


def test_all_nan_stance_gives_nan_metrics_not_a_crash():
    m = ev.per_trial_metrics([np.nan, np.nan], [1.0, 2.0], ["s", "s"], body_weight=700.0)
    assert m.loc[0, "n_frames"] == 0 and np.isnan(m.loc[0, "rmse"]) and np.isnan(m.loc[0, "r"])


def test_bad_shapes_and_weights_are_user_errors():
    with pytest.raises(GaitforceError, match="shapes differ"):
        ev.per_trial_metrics(np.zeros(3), np.zeros(4), ["a"] * 3)
    with pytest.raises(GaitforceError, match="positive"):
        ev.per_trial_metrics(np.zeros(3), np.zeros(3), ["a"] * 3, body_weight=-1.0)


def test_pearson_r_matches_numpy_on_random_data():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert ev.pearson_r(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])


# -- summaries --------------------------------------------------------------------------------------------
def test_summarise_formats_mean_and_sample_std_like_the_seed_tables():
    per = pd.DataFrame({
        "stance_id": ["a", "b", "c", "d"], "target": ["knee"] * 4, "unit": ["N"] * 4,
        "rmse": [100.0, 200.0, 300.0, np.nan], "rmse_pct_bw": [10.0, 20.0, 30.0, 40.0],
        "r": [0.9, 0.8, 0.7, 0.6], "peak_error": [10.0, -10.0, 30.0, 50.0],
        "group": ["x", "x", "y", "y"],
    })
    out = ev.summarise(per)
    row = out.iloc[0]
    assert row["RMSE (N)"] == "200 (100)"  # NaN left out; sample std of 100, 200, 300 is 100
    assert row["RMSE (%BW)"] == "25.0 (12.9)"
    assert row["r"] == "0.75 (0.13)" and row["n"] == 4
    by = ev.summarise(per, by="group", formatted=False).set_index("group")
    assert by.loc["x", "rmse_mean"] == pytest.approx(150.0) and by.loc["y", "rmse_std"] == 0.0
    assert by.loc["y", "peak_error_mean"] == pytest.approx(40.0)


def test_emg_errors_keep_their_decimals_in_every_table():
    # EMG envelopes are in unit 1 (0-1): a whole-number format printed every error as "0 (0)"
    per = pd.DataFrame({
        "stance_id": ["a", "b", "a", "b"], "target": ["emg_vasmed"] * 4, "unit": ["1"] * 4,
        "rmse": [0.05, 0.07, 0.10, 0.12], "rmse_pct_bw": [np.nan] * 4, "r": [0.9, 0.8, 0.7, 0.6],
        "peak_error": [0.02, -0.04, 0.1, 0.1], "model": ["mlp", "mlp", "ridge", "ridge"],
        "feature_set": ["all"] * 4, "fold": ["f1", "f2", "f1", "f2"],
    })
    row = ev.summarise(per[per["model"] == "mlp"]).iloc[0]
    assert row["RMSE (1)"] == "0.060 (0.014)" and row["peak error (1)"] == "-0.010 (0.042)"
    table = cmd.comparison_table(per, ["emg_vasmed"]).set_index("model")
    assert table.loc["mlp", "emg_vasmed RMSE (1)"] == "0.060 (0.014)"
    assert table.loc["mlp", "emg_vasmed vs ridge: dRMSE (1)"] == "-0.050"
    folds, unit = cmd.fold_table(per, "emg_vasmed")
    assert unit == "1" and folds.set_index("model").loc["mlp", "f1"] == "0.050 / 0.90"


def test_paired_comparison_counts_wins_and_delta():
    base = pd.DataFrame({"stance_id": list("abcd"), "target": ["k"] * 4, "rmse": [100.0, 100.0, 100.0, 100.0]})
    model = base.assign(rmse=[50.0, 60.0, 70.0, 120.0])
    out = ev.paired_comparison(model, base)
    assert out["n"] == 4 and out["wins"] == 0.75 and out["delta"] == pytest.approx(-25.0)
    assert 0 < out["p"] <= 1


def test_body_weight_in_kg_is_refused_as_a_unit_slip():
    """70 given where 686.7 N was meant would scale every BW figure up 9.81x: refused, naming the likely cause;
    the plausible range's ends (15 and 500 kg) pass."""
    with pytest.raises(GaitforceError, match="a mass in kg"):
        ev.per_trial_metrics(np.zeros(3), np.zeros(3), ["a"] * 3, body_weight=70.0)
    with pytest.raises(GaitforceError, match="above 4905 N"):
        ev.per_trial_metrics(np.zeros(3), np.zeros(3), ["a"] * 3, body_weight={"a": 70000.0})
    for ok in (150.0, 4905.0):
        ev.per_trial_metrics(np.zeros(3), np.ones(3), ["a"] * 3, body_weight=ok)


def test_body_weights_from_mass():
    s = pd.DataFrame({"stance_id": ["a", "b"], "mass": [70.0, np.nan]})
    assert ev.body_weights(s) == {"a": pytest.approx(686.7)}


# -- `gaitforce evaluate` end to end --------------------------------------------------------------------------
# On a small synthetic dataset with a known linear answer. Most tests stand in a numpy Estimator (least squares
# for "ridge", the training mean for "mlp") so they check the command's wiring, tables and failure handling,
# not the networks; the last runs the real Estimator's ridge.
NOISE_N = 5.0
W = np.array([120.0, -80.0, 40.0, 0.0, 60.0, -30.0])


def make_dataset(path, *, n_subjects=6, stances_per_subject=4, frames=21, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for k in range(stances_per_subject):
            x = rng.normal(size=(frames, 6))
            y = 800 + x @ W + rng.normal(scale=NOISE_N, size=frames)
            for i in range(frames):
                rows.append({"stance_id": f"P{s}_t{k}", "trial": f"P{s}_t{k}", "subject": f"P{s}", "side": "right",
                             "frame": i, "time": i / 100, "stance_pct": 100 * i / (frames - 1), "mass": 70.0 + s,
                             **{f"f{j}": x[i, j] for j in range(6)}, "knee_medial": y[i]})
    cols = [f"f{j}" for j in range(6)]
    manifest = {"features": cols, "targets": {"knee_medial": "N"},
                "feature_sets": {"all": {"columns": cols, "shape": [2, 3]},
                                 "force_plate": {"columns": cols[:3], "shape": [1, 3]}}}
    return Dataset(frames=pd.DataFrame(rows), manifest=manifest).save(path)


class StandInEstimator:
    def __init__(self, model="paper-cnn", *, feature_set="all", targets=("knee_medial",), seed=0, **kw):
        if model == "bad":
            raise GaitforceError("model 'bad' is broken on purpose")
        self.model, self.feature_set, self.targets = model, feature_set, list(targets)

    def fit(self, train, val=None):
        x, y, _ = train.arrays(self.feature_set, self.targets)
        if self.model == "ridge":
            a = np.c_[x, np.ones(len(x))]
            self.coef_ = np.linalg.lstsq(a, y, rcond=None)[0]
        else:
            self.mean_ = y.mean(axis=0)
        return self

    def predict(self, ds):
        x, _, _ = ds.arrays(self.feature_set, self.targets)
        if self.model == "ridge":
            return np.c_[x, np.ones(len(x))] @ self.coef_
        return np.tile(self.mean_, (len(x), 1))


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(cmd, "_estimator_class", lambda: StandInEstimator)


@pytest.mark.slow
def test_train_and_evaluate_writes_comparison_with_ridge(dataset, tmp_path, stand_in, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", str(dataset), "--out", str(out), "--models", "mlp", "--splits",
               "subject-naive", "--feature-sets", "all,force_plate", "--seeds", "0,1"])
    assert rc == 0
    per = pd.read_csv(out / "per_trial.csv")
    assert set(per["model"]) == {"mlp", "ridge"}  # ridge added as the baseline
    ridge_all = per[(per.model == "ridge") & (per.feature_set == "all")]
    assert ridge_all["rmse"].mean() == pytest.approx(NOISE_N, rel=0.35)  # linear data: only the noise is left
    table = pd.read_csv(out / "comparison_subject-naive.csv", dtype=str).set_index(["model", "feature set"])
    mlp = table.loc[("mlp", "all")]
    assert mlp["knee_medial vs ridge: wins"] == "0%" and float(mlp["knee_medial vs ridge: dRMSE (N)"]) > 100
    assert table.loc[("ridge", "all"), "knee_medial vs ridge: wins"] == "-"
    assert (out / "subject-naive" / "mlp__force_plate" / "knee_medial_representative.png").is_file()
    index = (out / "index.md").read_text()
    assert "## subject-naive" in index and "](subject-naive/ridge__all/index.md)" in index
    assert "| mlp | all |" in capsys.readouterr().out
    page = (out / "index.html").read_text()  # the HTML twin links the sub-reports' HTML twins
    assert 'href="subject-naive/ridge__all/index.html"' in page
    assert (out / "subject-naive" / "mlp__all" / "index.html").is_file()
    sub = (out / "subject-naive" / "mlp__all" / "index.md").read_text()
    assert "reference: in vivo implant" in sub  # a knee force not labelled by OpenSim


def test_leave_one_subject_out_tests_every_stance_once(dataset, tmp_path, stand_in):
    out = tmp_path / "rep"
    assert main(["evaluate", str(dataset), "--out", str(out), "--models", "ridge", "--splits",
                 "leave-subject-out"]) == 0
    per = pd.read_csv(out / "per_trial.csv")
    assert per["fold"].nunique() == 6 and per["stance_id"].nunique() == 24 and len(per) == 24
    assert (per["fold"] == "subject=" + per["subject"]).all()
    folds = pd.read_csv(out / "folds_leave-subject-out_knee_medial.csv").set_index("model")
    assert list(folds.columns) == ["feature set"] + [f"subject=P{i}" for i in range(6)]
    first = per[per.fold == "subject=P0"]
    assert folds.loc["ridge", "subject=P0"] == f"{first.rmse.mean():.0f} / {first.r.mean():.2f}"


def test_split_seeds_rotate_the_test_subject_and_pool_every_test(dataset, tmp_path, stand_in, monkeypatch):
    monkeypatch.setattr(cmd, "write_report", lambda out, **kw: out)  # figures are not under test here
    out = tmp_path / "rep"
    seeds = [0, 1, 2, 3, 4, 5]
    assert main(["evaluate", str(dataset), "--out", str(out), "--models", "mlp", "--splits",
                 "subject-naive,subject-exposed", "--split-seeds", ",".join(map(str, seeds))]) == 0
    per = pd.read_csv(out / "per_trial.csv")
    stances = Dataset.load(dataset).stances()
    for split in ("subject-naive", "subject-exposed"):
        sp = per[(per.split == split) & (per.model == "ridge")]
        assert sorted(sp["split_seed"].unique()) == seeds
        expected = [ev.make_splits(split, stances, seed=s)[split]["test"] for s in seeds]
        assert len(sp) == sum(map(len, expected))  # every test of every repeat is pooled, none merged
        for s, test in zip(seeds, expected):
            assert sorted(sp.loc[sp.split_seed == s, "stance_id"]) == sorted(test)
    naive = per[(per.split == "subject-naive") & (per.model == "ridge")]
    for fold, grp in naive.groupby("fold"):  # fold named by its seed and the subject it tested
        assert fold.startswith(f"seed {grp.split_seed.iloc[0]} (test ") and fold.endswith(
            f"{', '.join(sorted(grp.subject.unique()))})")
    assert naive["subject"].nunique() > 1  # the repeats test different subjects
    # pairing with ridge is per stance and fold: a stance tested twice counts twice, mlp (the mean) never wins
    exposed = per[per.split == "subject-exposed"]
    assert exposed.groupby("stance_id").size().max() > 2  # some stance was tested in two repeats
    table = pd.read_csv(out / "comparison_subject-exposed.csv", dtype=str).set_index(["model", "feature set"])
    assert table.loc[("mlp", "all"), "knee_medial vs ridge: wins"] == "0%"
    per_fold = pd.read_csv(out / "folds_subject-exposed_knee_medial.csv")
    assert [c for c in per_fold.columns if c.startswith("seed ")] == [f"seed {s}" for s in seeds]
    assert "split seeds [0, 1, 2, 3, 4, 5]" in (out / "index.md").read_text()


def test_unique_tests_names_a_stance_tested_in_two_folds_apart():
    per = pd.DataFrame({"stance_id": ["a", "a", "b"], "fold": ["seed 0", "seed 1", "seed 0"],
                        "split_seed": [0, 1, 0], "rmse": [1.0, 2.0, 3.0]})
    preds = pd.DataFrame({"stance_id": ["a", "a", "a", "a", "b"], "fold": ["seed 0", "seed 0", "seed 1", "seed 1",
                                                                          "seed 0"],
                          "split_seed": [0, 0, 1, 1, 0], "stance_pct": [0, 100, 0, 100, 0]})
    p2, q2 = cmd.unique_tests(per, preds)
    assert list(p2["stance_id"]) == ["a (split seed 0)", "a (split seed 1)", "b (split seed 0)"]
    assert q2.groupby("stance_id").size().to_dict() == {"a (split seed 0)": 2, "a (split seed 1)": 2,
                                                        "b (split seed 0)": 1}
    once = per.iloc[[0, 2]]  # each stance tested once: names unchanged
    assert cmd.unique_tests(once, preds)[0] is once


def test_failed_runs_are_listed_and_the_rest_reported(dataset, tmp_path, stand_in, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", str(dataset), "--out", str(out), "--models", "bad,ridge", "--splits", "subject-exposed"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and "broken on purpose" in err
    index = (out / "index.md").read_text()
    assert "## Failed runs" in index and "## subject-exposed" in index


@pytest.mark.parametrize("argv, message", [
    (["--feature-sets", "nope"], "no feature set 'nope'"),
    (["--splits", "kfold"], "unknown split"),
    (["--target", "hip"], "no target ['hip']"),
    (["--seeds", "x"], "--seeds must be integers"),
    (["--split-seeds", "0,a"], "--split-seeds must be integers"),
    (["--by", "subject,pathology"], "--by ['pathology']: no such stance column"),
])
def test_user_errors_exit_2_with_one_line(dataset, tmp_path, stand_in, capsys, argv, message):
    assert main(["evaluate", str(dataset), "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_not_a_dataset_is_a_user_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a gaitforce dataset" in capsys.readouterr().err


def test_bundle_mode_scores_every_stance(dataset, tmp_path, monkeypatch):
    ds = Dataset.load(dataset)
    est = StandInEstimator("ridge").fit(ds)

    class FakeBundle:
        spec = {"input": {"columns": [f"f{j}" for j in range(6)]}, "targets": [{"name": "knee_medial", "unit": "N"}]}

        def predict_features(self, x):
            return np.c_[x, np.ones(len(x))] @ est.coef_

    module = types.ModuleType("gaitforce.learn.bundle")
    module.load_bundle = lambda path: FakeBundle()
    monkeypatch.setitem(sys.modules, "gaitforce.learn.bundle", module)
    out = tmp_path / "rep"
    assert main(["evaluate", str(dataset), "--out", str(out), "--bundle", str(tmp_path / "b")]) == 0
    per = pd.read_csv(out / "per_trial.csv")
    assert per["stance_id"].nunique() == 24 and per["rmse"].mean() == pytest.approx(NOISE_N, rel=0.3)
    assert (out / "summary_by_subject.csv").is_file()


def test_bundle_mode_refuses_a_bundle_in_other_units(dataset, tmp_path, monkeypatch, capsys):
    # a bundle predicting knee_medial in BW scored against a dataset in N would give nonsense errors
    class FakeBundle:
        spec = {"input": {"columns": [f"f{j}" for j in range(6)]}, "targets": [{"name": "knee_medial", "unit": "BW"}]}

        def predict_features(self, x):
            return np.ones((len(x), 1))

    module = types.ModuleType("gaitforce.learn.bundle")
    module.load_bundle = lambda path: FakeBundle()
    monkeypatch.setitem(sys.modules, "gaitforce.learn.bundle", module)
    assert main(["evaluate", str(dataset), "--out", str(tmp_path / "rep"), "--bundle", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other units" in err[0] and "knee_medial (BW vs N)" in err[0]
    assert not (tmp_path / "rep" / "per_trial.csv").exists()


@pytest.mark.slow
def test_real_estimator_ridge_recovers_the_linear_answer(dataset, tmp_path):
    pytest.importorskip("gaitforce.learn.training")
    out = tmp_path / "rep"
    assert main(["evaluate", str(dataset), "--out", str(out), "--models", "ridge", "--splits", "subject-naive",
                 "--threads", "1", "--device", "cpu"]) == 0
    per = pd.read_csv(out / "per_trial.csv")
    assert per["rmse"].mean() < 3 * NOISE_N and per["r"].mean() > 0.99


@pytest.mark.slow
def test_real_bundle_round_trip(dataset, tmp_path):
    training = pytest.importorskip("gaitforce.learn.training")
    ds = Dataset.load(dataset)
    ids = ds.stance_ids
    est = training.Estimator("ridge", verbose=False, threads=1, device="cpu").fit(ds.subset(ids[:16]))
    est.save(tmp_path / "bundle")
    out = tmp_path / "rep"
    assert main(["evaluate", str(dataset), "--out", str(out), "--bundle", str(tmp_path / "bundle")]) == 0
    per = pd.read_csv(out / "per_trial.csv")
    assert per["stance_id"].nunique() == 24 and per["rmse"].mean() < 3 * NOISE_N


# -- the protocol in the library, the strong baselines beside it ---------------------------------------------
def test_run_folds_scores_ridge_bw_beside_the_networks_and_it_beats_a_mean_predictor(tmp_path):
    from gaitforce.evaluate.protocol import comparison_table, repeated_folds, run_folds

    ds = Dataset.load(make_dataset(tmp_path / "ds"))
    f = ds.frames
    f["grf_x"], f["grf_y"], f["grf_z"] = f["f0"] * 50, 700 + 100 * f["f1"], f["f2"] * 10
    f["knee_medial"] = 1.5 * f["grf_y"] + 0.8 * f["grf_x"] + 200 * np.sin(np.pi * f["stance_pct"] / 100)
    folds = {"subject-naive": repeated_folds("subject-naive", ds.stances(), [0, 1])}
    per, preds, failures = run_folds(ds, folds, models=["mlp", "ridge-bw", "knn"], feature_sets=["all"],
                                     targets=["knee_medial"], seeds=[0], estimator=StandInEstimator)
    assert failures == [] and set(per.model) == {"mlp", "ridge-bw", "knn"}
    rmse = per.groupby("model")["rmse"].mean()
    # the force is linear in GRF/BW x BW and stance % terms the ridge-bw design nearly spans: a few N
    assert rmse["ridge-bw"] < 0.1 * rmse["mlp"] and rmse["ridge-bw"] < 40
    # every test stance of every repeat was scored by each model, none of them a training stance
    for fold, part in folds["subject-naive"].items():
        got = set(per[(per.fold == fold) & (per.model == "ridge-bw")].stance_id)
        assert got == set(part["test"]) and not got & set(part["train"])
    row = comparison_table(per, ["knee_medial"]).set_index("model").loc["mlp"]
    assert row["knee_medial best baseline"] == "ridge-bw"  # the lower mean RMSE of ridge-bw and kNN
    delta = per[per.model == "mlp"]["rmse"].mean() - rmse["ridge-bw"]  # same stances: the paired mean difference
    assert float(row["knee_medial vs best baseline: dRMSE (N)"]) == pytest.approx(delta, abs=0.5)
    assert float(row["knee_medial vs best baseline: p"]) < 0.01


def test_ridge_bw_with_knee_moments_in_the_repeated_folds(tmp_path):
    """ridge-bw+moments reads the knee moments / BW and lever arms: on a force linear in the adduction moment it
    is near exact where ridge-bw (GRF only) is not; without the moment columns it fails in one line."""
    from gaitforce.evaluate.baselines import BaselineEstimator
    from gaitforce.evaluate.protocol import repeated_folds, run_folds

    ds = Dataset.load(make_dataset(tmp_path / "ds"))
    f = ds.frames
    f["grf_x"], f["grf_y"], f["grf_z"] = f["f0"] * 50, 700 + 100 * f["f1"], f["f2"] * 10
    f["knee_add_lever"] = 0.03 + 0.01 * np.sin(f["f2"] * 3)
    f["knee_add_moment"] = f["knee_add_lever"] * f["grf_y"]
    f["knee_flex_moment"], f["knee_flex_lever"] = 0.02 * f["grf_y"], 0.02
    f["knee_medial"] = 1.0 * f["grf_y"] + 30.0 * f["knee_add_moment"]
    folds = {"subject-naive": repeated_folds("subject-naive", ds.stances(), [0])}
    per, _, failures = run_folds(ds, folds, models=["ridge-bw", "ridge-bw+moments"], feature_sets=["all"],
                                 targets=["knee_medial"], seeds=[0], estimator=StandInEstimator)
    rmse = per.groupby("model")["rmse"].mean()
    assert failures == [] and rmse["ridge-bw+moments"] < 1.0 < 0.1 * rmse["ridge-bw"]
    with pytest.raises(GaitforceError, match="knee_add_moment"):
        BaselineEstimator("ridge-bw+moments").fit(Dataset.load(make_dataset(tmp_path / "ds2")))


def test_subject_exposed_keeps_the_stances_of_one_walk_together():
    rows = []
    for s in ("a", "b", "c"):
        for w in range(6):
            for side in ("left", "right"):
                rows.append({"stance_id": f"{s}{w}{side}", "subject": s, "trial": f"{s}_walk{w}"})
    st = pd.DataFrame(rows)
    sizes = set()
    for seed in range(20):
        split = ev.subject_exposed_split(st, seed=seed, fractions=(0.6, 0.2, 0.2))
        where = {sid: k for k, ids in split.items() for sid in ids}
        for walk, g in st.groupby("trial"):
            assert len({where[i] for i in g.stance_id}) == 1, f"walk {walk} split across sets (seed {seed})"
        assert subjects_of(st, split["test"] + split["val"]) <= subjects_of(st, split["train"])
        sizes.add(len(split["test"]))
    assert sizes == {6}  # whole walks: round(7.2) = 7 stances asked, 3 or 4 walks of 2 tie: the fewer


# -- split-conformal intervals (evaluate.conformal): known answers -------------------------------------------
from gaitforce.evaluate import conformal as cf  # noqa: E402


@pytest.mark.parametrize("n, rank, level", [(10, 10, 1.0), (19, 18, 18 / 19), (9, 9, 1.0), (8, 9, np.inf),
                                            (99, 90, 90 / 99), (1000, 901, 0.901)])
def test_conformal_rank_and_level_are_the_finite_sample_ones(n, rank, level):
    assert cf.conformal_rank(n, 0.1) == rank
    assert cf.min_calibration(0.1) == 9 and cf.min_calibration(0.2) == 4  # ceil((n + 1) x 0.9), not spoiled by 0.9's float error at n = 9
    assert cf.conformal_level(n, 0.1) == pytest.approx(level)


def test_conformal_quantile_known_answers():
    s = np.arange(1.0, 11.0)[::-1]  # 10 scores, any order
    assert cf.conformal_quantile(s, 0.1) == 10.0  # rank ceil(11 x 0.9) = 10
    assert cf.conformal_quantile(s, 0.2) == 9.0  # rank ceil(11 x 0.8) = 9
    assert cf.conformal_quantile(s[:8], 0.1) == np.inf  # rank 9 of 8: no finite q has the guarantee
    assert cf.conformal_quantile(np.r_[s, np.nan], 0.1) == 10.0  # non-finite scores are left out
    # grouped, one score per group: the plain rule exactly
    for n in (9, 10, 19, 37):
        x = np.random.default_rng(n).random(n)
        assert cf.conformal_quantile(x, 0.1, groups=np.arange(n)) == cf.conformal_quantile(x, 0.1)
    # grouped, 10 groups: group i holds 4 frames of score i (+ frame noise): the stance-weighted rule gives each
    # group 1/11; 0.9 is first reached at the 10th group's largest frame (cumulative weight 10/11)
    g = np.repeat(np.arange(10), 4)
    x = g + np.tile([0.1, 0.2, 0.3, 0.4], 10)
    assert cf.conformal_quantile(x, 0.1, groups=g) == pytest.approx(9.4)
    # a stance of 100 frames weighs what a stance of 1 frame weighs: 9 low one-frame stances + one long high one
    g2 = np.r_[np.arange(9), np.full(100, 9)]
    x2 = np.r_[np.zeros(9), np.full(100, 5.0)]
    assert cf.conformal_quantile(x2, 0.1) == 5.0  # pooled frames: 100 of 109 frames are 5
    assert cf.conformal_quantile(x2, 0.1, groups=g2) == 5.0  # 9/11 < 0.9: the long stance is needed too
    assert cf.conformal_quantile(x2, 0.2, groups=g2) == 0.0  # 9/11 >= 0.8: the one long stance is not
    with pytest.raises(GaitforceError, match="alpha"):
        cf.conformal_quantile(s, 1.5)
    with pytest.raises(GaitforceError, match="labels"):
        cf.conformal_quantile(s, 0.1, groups=[1, 2])


def test_normalised_scores_interval_and_coverage_known_answers():
    y, m, s = np.array([10.0, 0.0, 3.0]), np.array([8.0, 1.0, 3.0]), np.array([1.0, 0.0, 2.0])
    np.testing.assert_allclose(cf.normalised_scores(y, m, s, 1.0), [1.0, 1.0, 0.0])
    lo, hi = cf.interval(m, s, 2.0, 1.0)
    np.testing.assert_allclose(lo, [4.0, -1.0, -3.0])
    np.testing.assert_allclose(hi, [12.0, 3.0, 9.0])
    lo_inf, _ = cf.interval(m, s, np.inf, 1.0)
    assert np.isnan(lo_inf).all()  # no finite q: no interval, never an infinite one
    c = cf.interval_coverage([0.0, 1.0, 2.0, 5.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0],
                             groups=["a", "a", "b", "b"])
    assert c["coverage"] == 0.5 and c["width"] == 1.0 and c["n_frames"] == 4  # bounds are inside
    assert c["stance_coverage"] == 0.5 and c["stance_coverage_min"] == 0.0 and c["n_stances"] == 2
    with pytest.raises(GaitforceError, match="eps"):
        cf.normalised_scores(y, m, s, 0.0)


def test_exchangeable_data_give_coverage_within_the_finite_sample_bounds():
    """Exchangeable heteroscedastic data, a known spread: over 3000 calibration draws of n = 19 the mean test
    coverage is k/(n+1) = 18/20 = 0.90 (continuous scores), inside [1 - alpha, 1 - alpha + 1/(n+1)]."""
    rng = np.random.default_rng(0)
    n, reps, m = 19, 3000, 200
    covers = []
    for _ in range(reps):
        sd = rng.uniform(0.5, 3.0, n + m)
        y = rng.normal(0.0, sd)
        q = cf.conformal_quantile(cf.normalised_scores(y[:n], 0.0, sd[:n], 1e-9), 0.1)
        lo, hi = cf.interval(0.0, sd[n:], q, 1e-9)
        covers.append(cf.interval_coverage(y[n:], lo, hi)["coverage"])
    mean = float(np.mean(covers))
    se = float(np.std(covers) / np.sqrt(reps))
    assert 0.9 - 3 * se <= mean <= 0.9 + 1 / (n + 1) + 3 * se
    assert mean == pytest.approx(18 / 20, abs=4 * se)


def test_grouped_calibration_keeps_stance_coverage_where_pooled_frames_fall_short():
    """Stances with a shared error (a random offset per stance, frames within one stance strongly correlated):
    with 9 calibration stances of 50 frames the pooled-frame quantile (n = 450 'independent' frames) gives too
    narrow intervals (mean stance coverage below 0.9); the stance-weighted one keeps it at or above 0.9."""
    rng = np.random.default_rng(1)
    n_st, frames, reps = 9, 50, 1500

    def draw(k):
        offset = rng.normal(0.0, 1.0, k)[:, None]
        return (offset + 0.2 * rng.normal(size=(k, frames))).ravel(), np.repeat(np.arange(k), frames)

    pooled, grouped = [], []
    for _ in range(reps):
        cal, g = draw(n_st)
        test, tg = draw(1)
        for q, out in ((cf.conformal_quantile(np.abs(cal), 0.1), pooled),
                       (cf.conformal_quantile(np.abs(cal), 0.1, groups=g), grouped)):
            out.append(cf.interval_coverage(test, -q + 0 * test, q + 0 * test, tg)["stance_coverage"])
    assert np.mean(grouped) >= 0.9 - 0.02
    assert np.mean(pooled) < np.mean(grouped) - 0.03



# -- score scales, the inner-fold choice, CV+ (issue 17 item 4, second round): known answers --------------------
def test_score_scales_and_scaled_intervals_known_answers():
    m, s = np.array([100.0, -200.0, 0.0]), np.array([1.0, 2.0, 0.0])
    np.testing.assert_allclose(cf.score_scale(m, s, "constant", 0.0), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(cf.score_scale(m, s, "normalised", 3.0), [4.0, 5.0, 3.0])
    np.testing.assert_allclose(cf.score_scale(m, s, "magnitude", 10.0), [110.0, 210.0, 10.0])
    np.testing.assert_allclose(cf.scaled_scores([104.0, -200.0, 6.0], m, s, "normalised", 3.0), [1.0, 0.0, 2.0])
    lo, hi = cf.scaled_interval(m, s, 2.0, "magnitude", 10.0)
    np.testing.assert_allclose(lo, [-120.0, -620.0, -20.0])
    np.testing.assert_allclose(hi, [320.0, 220.0, 20.0])
    assert np.isnan(cf.scaled_interval(m, s, np.inf, "constant", 0.0)[0]).all()
    # the plain normalised score is the c = eps member of the family
    np.testing.assert_allclose(cf.scaled_scores([1.0, 2.0, 3.0], m, s, "normalised", 0.5),
                               cf.normalised_scores([1.0, 2.0, 3.0], m, s, 0.5))
    with pytest.raises(GaitforceError, match="c must be positive"):
        cf.score_scale(m, s, "normalised", 0.0)
    with pytest.raises(GaitforceError, match="unknown score kind"):
        cf.score_scale(m, s, "quantile", 1.0)


def test_score_candidates_take_c_from_the_calibration_predictions():
    cands = cf.score_candidates(mean=[100.0, 300.0, 500.0], spread=[10.0, 20.0, 30.0], eps=2.0)
    by = {c["name"]: c for c in cands}
    assert cands[0]["kind"] == "constant"  # first: the constant width wins ties
    assert by["normalised, c = eps"]["c"] == 2.0
    assert by["normalised, c = 2 x median spread"]["c"] == pytest.approx(40.0)
    assert by["magnitude, c = 0.5 x median |mean|"]["c"] == pytest.approx(150.0)
    assert len(cands) == 2 + len(cf.SPREAD_C_FACTORS) + len(cf.MAGNITUDE_C_FACTORS)


def test_interval_score_known_answers():
    # inside: the width; 1 below with alpha 0.1: width + 2/0.1 x 1; 2 above: width + 20 x 2
    np.testing.assert_allclose(cf.interval_score([5.0, -1.0, 12.0], [0.0, 0.0, 0.0], [10.0, 10.0, 10.0], 0.1),
                               [10.0, 30.0, 50.0])


def _calibration_years(residual, n_years=3, per_year=12, seed=0):
    """One frame per stance; mean 100..1000 N; the residual a function of the mean; a spread that is noise."""
    rng = np.random.default_rng(seed)
    n = n_years * per_year
    mean = rng.uniform(100.0, 1000.0, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    y = mean + sign * residual(mean)
    spread = rng.uniform(5.0, 50.0, n)  # unrelated to the error
    return y, mean, spread, np.arange(n), np.repeat(np.arange(n_years), per_year)


def test_choose_score_picks_the_magnitude_score_when_errors_scale_with_force():
    y, m, s, g, f = _calibration_years(lambda m: 0.2 * m)
    cands = cf.score_candidates(m, s, eps=1.0)
    best, rows = cf.choose_score(y, m, s, g, f, cands, 0.1)
    assert best["kind"] == "magnitude"
    by = {r["name"]: r for r in rows}
    # at its coverage the magnitude interval is narrower than the constant one, which must reach 0.2 x 1000 N
    assert by[best["name"]]["width"] < by["constant"]["width"]
    assert by[best["name"]]["interval_score"] < by["constant"]["interval_score"]


def test_choose_score_keeps_the_constant_width_when_the_error_is_constant():
    y, m, s, g, f = _calibration_years(lambda m: 50.0 + 0 * m)
    best, rows = cf.choose_score(y, m, s, g, f, cf.score_candidates(m, s, eps=1.0), 0.1)
    assert best["kind"] == "constant"
    const = next(r for r in rows if r["kind"] == "constant")
    assert const["coverage"] == 1.0 and const["width"] == pytest.approx(100.0)  # q = 50 exactly: width 100
    with pytest.raises(GaitforceError, match="at least 2 calibration folds"):
        cf.choose_score(y, m, s, g, np.zeros_like(f), [const], 0.1)


def test_matched_constant_width_known_answers():
    y, m = [0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]
    assert cf.matched_constant_width(y, m, 0.5) == 2.0  # 2 of 4 within 1
    assert cf.matched_constant_width(y, m, 0.75) == 4.0  # 3 of 4 within 2
    assert cf.matched_constant_width(y, m, 1.0) == 6.0
    assert cf.matched_constant_width(y, m, 0.0) == 0.0


def test_cv_plus_interval_known_answers():
    # one fold model predicting 0, residuals 1..10, one frame per stance: the 10th value of 11 slots (alpha 0.1)
    lo, hi = cf.cv_plus_interval(np.zeros((1, 2)), np.zeros(10), np.arange(1.0, 11.0), np.arange(10), 0.1)
    np.testing.assert_allclose(lo, [-10.0, -10.0])
    np.testing.assert_allclose(hi, [10.0, 10.0])
    _, hi2 = cf.cv_plus_interval(np.zeros((1, 1)), np.zeros(10), np.arange(1.0, 11.0), np.arange(10), 0.2)
    assert hi2[0] == 9.0  # rank ceil(11 x 0.8) = 9
    # two fold models disagreeing on the test frame (0 and 100 N), residuals 1..5 each: the interval spans both
    k = np.repeat([0, 1], 5)
    r = np.tile(np.arange(1.0, 6.0), 2)
    lo, hi = cf.cv_plus_interval(np.array([[0.0], [100.0]]), k, r, np.arange(10), 0.1)
    assert (lo[0], hi[0]) == (-5.0, 105.0)
    # one fold model, stances of several frames: the stance-weighted split-conformal interval
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 4)
    res = np.abs(rng.normal(size=48))
    lo, hi = cf.cv_plus_interval(np.full((1, 3), 7.0), np.zeros(48), res, g, 0.1)
    q = cf.conformal_quantile(res, 0.1, g)
    np.testing.assert_allclose(hi, 7.0 + q)
    np.testing.assert_allclose(lo, 7.0 - q)
    with pytest.raises(GaitforceError, match="index the 1 fold models"):
        cf.cv_plus_interval(np.zeros((1, 1)), np.ones(10), np.ones(10), np.arange(10))

# -- intervals in the reports ----------------------------------------------------------------------------------
def test_bundle_mode_reports_the_interval_of_an_ensemble_bundle(tmp_path):
    import warnings

    from gaitforce.learn.ensemble import EnsembleEstimator

    ds = Dataset.load(make_dataset(tmp_path / "ds", n_subjects=6, stances_per_subject=6))
    ids = ds.stance_ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ens = EnsembleEstimator("mlp", members=3, epochs=30, width=8, threads=1, verbose=False, device="cpu")
        ens.fit(ds.subset(ids[:18]), ds.subset(ids[18:28]))  # 10 validation stances: q finite at 90 %
    assert ens.uncertainty_["targets"]["knee_medial"]["q"] is not None
    ens.save(tmp_path / "b")
    out = tmp_path / "rep"
    assert main(["evaluate", str(tmp_path / "ds"), "--out", str(out), "--bundle", str(tmp_path / "b")]) == 0
    preds = pd.read_csv(out / "predictions.csv.gz")
    _, lo, hi = ens.predict_interval(ds)
    np.testing.assert_allclose(preds["knee_medial_lo"], lo[:, 0], rtol=1e-4, atol=0.05)
    want = cf.interval_coverage(preds["knee_medial_ref"], preds["knee_medial_lo"], preds["knee_medial_hi"],
                                preds["stance_id"].to_numpy())
    table = pd.read_csv(out / "intervals.csv")
    assert table.loc[0, "coverage_pct"] == pytest.approx(100 * want["coverage"], abs=0.01)
    assert table.loc[0, "stances"] == 36 and table.loc[0, "mean_width"] == pytest.approx(want["width"], rel=1e-3)
    md = (out / "index.md").read_text()
    assert "## Intervals" in md and "90 % interval" in md


def test_report_interval_summary_is_empty_without_bounds():
    from gaitforce.evaluate.report import interval_summary

    p = pd.DataFrame({"stance_id": ["a", "a", "b"], "stance_pct": [0, 100, 0], "t_ref": [1.0, 2.0, 3.0],
                      "t_pred": [1.0, 2.0, 3.0]})
    assert interval_summary(p, ["t"]).empty
    p["t_lo"], p["t_hi"] = [0.0, 2.5, 3.5], [1.5, 3.0, 4.0]
    row = interval_summary(p, ["t"]).iloc[0]
    assert row["coverage_pct"] == pytest.approx(100 / 3) and row["stance_coverage_pct"] == pytest.approx(25.0)
    assert row["mean_width"] == pytest.approx(2.5 / 3) and row["frames"] == 3 and row["stances"] == 2


def test_evaluate_ensemble_option_scores_the_mean_and_calibrates_on_each_folds_validation(tmp_path, capsys):
    ds_path = make_dataset(tmp_path / "ds", n_subjects=5, stances_per_subject=10, frames=11)
    out = tmp_path / "rep"
    assert main(["evaluate", str(ds_path), "--out", str(out), "--models", "mlp", "--splits", "subject-naive",
                 "--ensemble", "2", "--epochs", "3", "--threads", "1", "--device", "cpu"]) == 0
    capsys.readouterr()
    rep = out / "subject-naive" / "mlp__all"
    preds = pd.read_csv(rep / "predictions.csv.gz")
    assert {"knee_medial_lo", "knee_medial_hi"} <= set(preds.columns)
    assert (preds["knee_medial_lo"] <= preds["knee_medial_pred"]).all()
    assert (rep / "intervals.csv").exists() and "## Intervals" in (rep / "index.md").read_text()
    # the strong baselines stay single models: no interval of theirs
    assert not (out / "subject-naive" / "ridge-bw__all" / "intervals.csv").exists()
    assert main(["evaluate", str(ds_path), "--out", str(tmp_path / "x"), "--ensemble", "1"]) == 2
    assert "at least 2 members" in capsys.readouterr().err
