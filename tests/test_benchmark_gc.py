"""The Grand Challenge benchmark: resampling, causal windows, folds, the run on a tiny synthetic cohort shaped
like the Grand Challenge (six years, JW and DM twice), the CLI, and (slow, real data) the reduced run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaitforce.cli import main
from gaitforce.data.dataset import Dataset
from gaitforce.evaluate import grand_challenge as b

SUBJECTS = {2010: "JW", 2011: "DM", 2012: "SC", 2013: "JW", 2014: "PS", 2015: "DM"}
GRF = ["grf_x", "grf_y", "grf_z"]
COP = ["cop_x", "cop_y", "cop_z"]


def gc_like(n_per_year=3, frames=(30, 50), seed=0) -> Dataset:
    """Stances with a smooth vertical GRF and a medial force that is a known function of it and of mass."""
    rng = np.random.default_rng(seed)
    parts = []
    for year, subj in SUBJECTS.items():
        mass = {"JW": 65.0, "DM": 70.0, "SC": 78.0, "PS": 75.0}[subj]
        for k in range(n_per_year):
            n = int(frames[k % len(frames)])
            s = np.linspace(0, 1, n)
            fy = mass * 9.81 * (1.1 * np.sin(np.pi * s) + 0.05 * rng.normal())
            df = pd.DataFrame({"stance_id": f"{subj}{year}_{k}", "trial": f"{subj}{year}_{k}", "subject": subj,
                               "side": "right", "frame": np.arange(n), "time": np.arange(n) / 100.0,
                               "stance_pct": np.linspace(0, 100, n), "mass": mass, "year": year,
                               "grf_x": 0.1 * fy * np.cos(np.pi * s), "grf_y": fy, "grf_z": 0.02 * fy,
                               "cop_x": 0.25 * s, "cop_y": 0.0, "cop_z": 0.01 * k})
            df["knee_medial"] = 1.6 * fy + 30.0 * np.sin(2 * np.pi * s)
            parts.append(df)
    frames = pd.concat(parts, ignore_index=True)
    manifest = {"features": GRF + COP, "targets": {"knee_medial": "N"}, "groups": ["year"],
                "feature_sets": {"force_plate": {"columns": GRF + COP, "shape": [2, 3]},
                                 "all": {"columns": GRF + COP, "shape": [2, 3]}}}
    return Dataset(frames, manifest)


def test_resample_to_101_points_is_exact_for_a_linear_signal():
    ds = gc_like()
    f = ds.frames.copy()
    f["grf_z"] = 3.0 + 200.0 * f["time"]  # linear in time: interpolation must reproduce it exactly
    out = b.resample_stances(Dataset(f, ds.manifest), 101)
    assert out.frames.groupby("stance_id").size().eq(101).all()
    assert len(out.stance_ids) == len(ds.stance_ids)
    g = out.frames[out.frames.stance_id == "JW2010_1"]  # 50 frames at 100 Hz: 0.49 s long
    np.testing.assert_allclose(g["time"].to_numpy(), np.linspace(0, 0.49, 101))
    np.testing.assert_allclose(g["grf_z"].to_numpy(), 3.0 + 200.0 * np.linspace(0, 0.49, 101), rtol=1e-12)
    np.testing.assert_allclose(g["stance_pct"].to_numpy(), np.arange(101.0))
    assert (g["mass"] == 65.0).all() and (g["year"] == 2010).all()
    # the GRF-only set of the paper is registered as a 1 x 3 image
    assert out.feature_columns("grf") == GRF and out.feature_shape("grf") == (1, 3)


def test_window_columns_are_causal_and_stop_at_the_stance_start():
    ds = b.resample_stances(gc_like(), 11)
    name = b.add_window(ds, "grf", 4)
    assert name == "grf@w4" and ds.feature_shape(name) == (4, 3)
    cols = ds.feature_columns(name)
    assert cols[:3] == ["grf_x@-3", "grf_y@-3", "grf_z@-3"] and cols[-3:] == ["grf_x@-0", "grf_y@-0", "grf_z@-0"]
    for sid, g in ds.frames.groupby("stance_id"):
        y = g["grf_y"].to_numpy()
        for k in range(4):
            expected = y[np.maximum(np.arange(len(y)) - k, 0)]  # k frames back, the first frame repeated
            np.testing.assert_array_equal(g[f"grf_y@-{k}"].to_numpy(), expected.astype(np.float32))
    # a second window set sharing columns does not duplicate them
    b.add_window(ds, "force_plate", 4)
    assert not ds.frames.columns.duplicated().any()
    assert b.add_window(ds, "grf", 1) == "grf"


def test_strict_folds_never_train_on_the_test_subject():
    ds = gc_like()
    paper_folds, strict = b.folds(ds, "paper"), b.folds(ds, "strict")
    subj = ds.stances().set_index("stance_id")["subject"]
    assert list(strict) == [str(y) for y in sorted(SUBJECTS)]
    for year, who in SUBJECTS.items():
        f = strict[str(year)]
        assert set(subj[f["test"]]) == {who}
        assert who not in set(subj[f["train"] + f["val"]])
    # the paper's protocol keeps JW's other year in the pool
    pool = paper_folds["2013"]["train"] + paper_folds["2013"]["val"]
    assert "JW" in set(subj[pool]) and not set(pool) & set(paper_folds["2013"]["test"])


def test_benchmark_end_to_end_on_a_gc_shaped_cohort(tmp_path):
    configs = [b.Config("paper-replica", "paper-cnn", "grf", hyper=(("channels", 4), ("fc_width", 8))),
               b.Config("ridge-grf", "ridge", "grf"),
               b.Config("tcn5+bw+cop", "tcn", "force_plate", window=5, body_weight_norm=True,
                        hyper=(("layers", 1), ("channels", 4)))]
    res = b.run_benchmark(gc_like(n_per_year=2), seeds=(0, 1), configs=configs, n_points=11,
                          training={"epochs": 2, "patience": 1}, log=lambda m: None)
    ab = res.ablation
    assert list(ab["protocol"]).count("paper") == 3
    # the choice is the lowest validation score of the paper protocol, never a test number
    paper_rows = ab[ab.protocol == "paper"].set_index("config")
    assert res.chosen == paper_rows["val_rmse"].idxmin()
    assert {("paper-replica", "strict"), ("ridge-grf", "strict"), (res.chosen, "strict")} <= set(res.years)
    yt = res.years[("ridge-grf", "paper")]
    assert list(yt.index) == sorted(SUBJECTS)
    assert np.isfinite(yt[["rmse_mean", "rmse_sd", "rmse_ens"]].to_numpy()).all()
    # the ensemble's per-year RMSE recomputed by hand from its frames
    f = res.frames[("ridge-grf", "paper")]
    f = f[(f.seed == "ensemble") & (f.year == 2012)]
    assert f.stance_id.nunique() == 2
    by_hand = f.groupby("stance_id").apply(lambda g: np.sqrt(np.mean((g.pred - g.true) ** 2))).mean()
    assert yt.loc[2012, "rmse_ens"] == pytest.approx(by_hand)
    out = b.write_results(res, tmp_path / "out")
    table = pd.read_csv(out / "table.csv", index_col=0)
    assert table.loc["competition winners", "2010"] == "230" or int(table.loc["competition winners", "2010"]) == 230
    assert (out / "figures" / "gc_2015.png").stat().st_size > 1000
    settings = json.loads((out / "settings.json").read_text())
    assert settings["chosen"] == res.chosen and settings["runtime_s"] > 0
    index = (out / "index.md").read_text()
    assert f"reference: in vivo implant (eTibia), 12 test stances of {len(set(SUBJECTS.values()))} subjects" in index
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 6 and "<table>" in page


def test_ridge_on_a_linear_force_target_is_nearly_exact():
    """A medial force that is linear in the GRF is recovered by the ridge baseline in every year."""
    ds = gc_like()
    ds.frames["knee_medial"] = 1.6 * ds.frames["grf_y"] + 0.5 * ds.frames["grf_x"]
    res = b.run_benchmark(ds, seeds=(0,), configs=[b.Config("ridge-grf", "ridge", "grf")], n_points=21,
                          log=lambda m: None)
    assert res.years[("ridge-grf", "paper")]["rmse_ens"].max() < 2.0  # N, on forces near 1500 N


def test_cli_rejects_an_unknown_configuration(tmp_path, capsys):
    ds = gc_like().save(tmp_path / "ds")
    assert main(["benchmark", "grand-challenge", "--flat", "--data", str(ds), "--configs", "nope", "--out",
                 str(tmp_path / "o")]) == 2
    assert "unknown configuration" in capsys.readouterr().err
    assert main(["benchmark", "grand-challenge", "--data", str(ds), "--networks", "ridge-grf", "--out",
                 str(tmp_path / "o")]) == 2
    assert "not network configurations: ['ridge-grf']" in capsys.readouterr().err


def test_cli_rejects_a_folder_that_is_not_grand_challenge_data(tmp_path, capsys):
    assert main(["benchmark", "grand-challenge", "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "gaitforce: error:" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
def test_reduced_benchmark_on_the_grand_challenge(gc_dir, tmp_path):
    res = b.run_benchmark(gc_dir, reduced=True, log=lambda m: None)
    paper = res.years[("paper-replica", "paper")]
    assert list(paper.index) == list(b.YEARS)
    assert len(b.load_gc(gc_dir).stance_ids) == 29
    # every year's medial force is predicted to within 0.8 body weights (forces of 1-2.5 BW)
    assert (paper["rmse_pct_bw_ens"] < 80).all()


# ---------------------------------------------------------------------------------------------------------
# blends of two configurations, the weight chosen on validation only
# ---------------------------------------------------------------------------------------------------------
def test_best_blend_weight_finds_the_known_mix():
    t = np.sin(np.linspace(0, 3, 40))
    e = 0.3 * np.cos(np.linspace(0, 7, 40))
    key = np.repeat(["a", "b"], 20)
    assert b.best_blend_weight(t, t + e, t - e, key) == 0.5  # errors cancel at the midpoint
    assert b.best_blend_weight(t, t, t + e, key) == 1.0  # a perfect first member takes all the weight
    assert b.best_blend_weight(t, t + 3 * e, t - e, key) == 0.25  # 3e w - e (1 - w) = 0
    assert b.best_blend_weight(t, np.full(40, np.nan), t, key) == 0.5  # nothing usable: the stated default


def _frames(rows):
    """Frame tables from (fold, part, stance, year, true, pred_a, pred_b) with 3 frames each."""
    out = {"a": {"test": [], "val": []}, "b": {"test": [], "val": []}}
    for fold, part, sid, year, true, pa, pb in rows:
        for seed in ("0", "ensemble"):
            for m, p in (("a", pa), ("b", pb)):
                out[m][part].append(pd.DataFrame({
                    "stance_id": sid, "stance_pct": [0.0, 50.0, 100.0], "year": year, "mass": 70.0,
                    "fold": fold, "seed": seed, "true": np.asarray(true, float), "pred": np.asarray(p, float)}))
    return [{k: pd.concat(v, ignore_index=True) for k, v in out[m].items()} for m in ("a", "b")]


T = [100.0, 300.0, 200.0]
UP = [110.0, 320.0, 210.0]  # errors +10, +20, +10
DOWN = [90.0, 280.0, 190.0]


def test_blend_per_fold_weights_come_from_that_folds_validation_and_are_nested():
    # fold 2010: validation stance v1 says "all ridge" (a exact), v2 "half and half" (errors cancel)
    a, bb = _frames([("2010", "val", "v1", 2011, T, T, UP), ("2010", "val", "v2", 2012, T, UP, DOWN),
                     ("2010", "test", "t1", 2010, T, UP, DOWN),
                     ("2011", "val", "v3", 2012, T, UP, T), ("2011", "test", "t2", 2011, T, UP, DOWN)])
    splits = {"2010": {"train": [], "val": ["v1", "v2"], "test": ["t1"]},
              "2011": {"train": [], "val": ["v3"], "test": ["t2"]}}
    res, w = b.blend_frames(a, bb, splits, mode="fold")
    assert w["2011"] == 0.0  # b is exact on 2011's only validation stance
    assert 0.5 <= w["2010"] <= 1.0 and w["2010"] == b.best_blend_weight(
        np.r_[T, T], np.r_[T, UP], np.r_[UP, DOWN], np.repeat(["v1", "v2"], 3))
    t = res["test"]
    for fold, sid in (("2010", "t1"), ("2011", "t2")):
        got = t[(t.fold == fold) & (t.stance_id == sid)]
        assert len(got) == 6  # the single seed and the ensemble
        np.testing.assert_allclose(got["pred"].to_numpy()[:3], w[fold] * np.array(UP) + (1 - w[fold]) * np.array(DOWN))
    # nested validation: v1 is blended with the weight chosen on v2 alone (0.5), v2 with v1's (1.0: all a)
    v = res["val"].set_index("stance_id")
    np.testing.assert_allclose(v.loc["v1", "pred"], 0.5 * np.array(T) + 0.5 * np.array(UP))
    np.testing.assert_allclose(v.loc["v2", "pred"], UP)
    assert set(res["val"]["seed"]) == {"ensemble"}


def test_pooled_blend_weight_never_sees_the_test_year():
    # fold 2011 validates on a 2010 stance where b is exact; fold 2010 validates on a 2011 stance where a is
    # exact. Pooled, fold 2010's weight may use only stances of its pool (2011, 2012), never the 2010 stance.
    a, bb = _frames([("2010", "val", "s2011", 2011, T, T, UP), ("2010", "test", "s2010", 2010, T, UP, T),
                     ("2011", "val", "s2010", 2010, T, UP, T), ("2011", "test", "s2011", 2011, T, T, UP),
                     ("2012", "val", "v12", 2012, T, T, UP), ("2012", "test", "t12", 2012, T, UP, DOWN)])
    splits = {"2010": {"train": ["v12"], "val": ["s2011"], "test": ["s2010"]},
              "2011": {"train": [], "val": ["s2010"], "test": ["s2011"]},
              "2012": {"train": [], "val": ["v12"], "test": ["t12"]}}
    res, w = b.blend_frames(a, bb, splits, mode="pooled")
    assert w["2010"] == 1.0  # from s2011 (fold 2010's val) and v12 (fold 2012's val): a exact in both
    assert w["2011"] == 0.0  # only s2010 is in its pool: b exact
    # nested score of fold 2010: without its own validation stance s2011, only v12 (fold 2012) remains -> 1.0
    v = res["val"]
    np.testing.assert_allclose(v[v.fold == "2010"]["pred"], T)
    with pytest.raises(b.GaitforceError, match="unknown blend"):
        b.blend_frames(a, bb, splits, mode="mean")


def test_blends_in_the_benchmark_are_chosen_by_their_nested_validation(tmp_path):
    ds = gc_like(n_per_year=3)
    configs = [b.Config("paper-replica", "paper-cnn", "grf", hyper=(("channels", 4), ("fc_width", 8))),
               b.Config("ridge-grf", "ridge", "grf"),
               b.Config("blend", "blend", members=("ridge-grf", b.NETWORK)),
               b.Config("blend-pooled", "blend", members=("ridge-grf", b.NETWORK), blend_weight="pooled"),
               b.Config("blend-missing", "blend", members=("ridge-all", b.NETWORK))]
    logs = []
    res = b.run_benchmark(ds, seeds=(0,), configs=configs, n_points=11, training={"epochs": 2, "patience": 1},
                          log=logs.append)
    ab = res.ablation[res.ablation.protocol == "paper"].set_index("config")
    assert "blend-missing" not in ab.index and any("blend-missing: skipped" in m for m in logs)
    assert res.chosen == ab["val_rmse"].idxmin()
    assert res.settings["blend_members"]["blend"] == ["ridge-grf", "paper-replica"]
    # the blend's test predictions are its members' mixed with the per-fold weights
    w = res.blend_weights[("blend", "paper")]
    ridge, net, mix = (res.frames[(n, "paper")] for n in ("ridge-grf", "paper-replica", "blend"))
    expect = ridge["fold"].map(w) * ridge["pred"] + (1 - ridge["fold"].map(w)) * net["pred"]
    np.testing.assert_allclose(mix["pred"], expect)
    # its validation score is the nested one: recomputed from its stored validation frames
    assert ab.loc["blend", "val_rmse"] == pytest.approx(b.validation_score(res.val_frames[("blend", "paper")]))
    out = b.write_results(res, tmp_path / "o", figures=False)
    preds = pd.read_csv(out / "predictions.csv.gz")
    assert set(preds["part"]) == {"test", "val"} and "blend" in set(preds["config"])


# ---------------------------------------------------------------------------------------------------------
# nested selection: every choice from the training years only
# ---------------------------------------------------------------------------------------------------------
from gaitforce.evaluate import baselines as bl  # noqa: E402
from gaitforce.evaluate import nested as nb  # noqa: E402

TINY = [b.Config("tiny-cnn", "paper-cnn", "grf", body_weight_norm=True, hyper=(("channels", 4), ("fc_width", 8)))]


def run_tiny(ds, protocols=("paper",)):
    return nb.run_nested(ds, seeds=(0, 1), networks=("tiny-cnn",), configs=TINY, epoch_grid=(1, 2), n_points=11,
                         protocols=protocols, log=lambda m: None)


def test_inner_folds_use_the_pool_only_and_strict_hides_subjects():
    ds = gc_like()
    st = ds.stances()
    subj = st.set_index("stance_id")["subject"]
    year = st.set_index("stance_id")["year"]
    for protocol in ("paper", "strict"):
        for fold, split in nb.outer_folds(ds, protocol).items():
            assert split["val"] == [] and not set(split["train"]) & set(split["test"])
            inner = nb.inner_folds(st, split["train"], protocol)
            seen = set().union(*(set(v["train"]) | set(v["val"]) for v in inner.values()))
            assert seen <= set(split["train"])  # no test stance ever reaches selection
            assert sorted(sum((v["val"] for v in inner.values()), [])) == sorted(split["train"])  # each once
            for vy, v in inner.items():
                assert set(year[v["val"]]) == {int(vy)} and int(fold) not in set(year[v["train"]])
                if protocol == "strict":
                    assert not set(subj[v["val"]]) & set(subj[v["train"]])
                    assert not set(subj[split["test"]]) & set(subj[v["train"] + v["val"]])
    # the seed protocol's inner training may hold the validation subject's other year, as its outer fold does
    inner = nb.inner_folds(st, nb.outer_folds(ds, "paper")["2012"]["train"], "paper")
    assert "JW" in set(subj[inner["2010"]["train"]])


def test_a_test_years_targets_never_reach_its_folds_choices():
    """Corrupting 2012's in vivo force changes every other fold's inner scores (2012 is in their pools) but no
    choice or inner score of fold 2012: the test year is only predicted, never used to choose."""
    ds = gc_like(n_per_year=2)
    bad = Dataset(ds.frames.copy(), ds.manifest)
    rows = bad.frames["year"] == 2012
    bad.frames.loc[rows, "knee_medial"] = 5000.0 - 3.0 * bad.frames.loc[rows, "knee_medial"]
    clean, dirty = run_tiny(ds), run_tiny(bad)
    key = ["fold", "kind", "candidate", "hyper"]
    a = clean.inner_scores.set_index(key)["inner_rmse"]
    d = dirty.inner_scores.set_index(key)["inner_rmse"]
    np.testing.assert_allclose(a.xs("2012", level="fold"), d.xs("2012", level="fold"), rtol=1e-9)
    pd.testing.assert_series_equal(clean.choices.set_index("fold").loc["2012"],
                                   dirty.choices.set_index("fold").loc["2012"])
    others = a.drop("2012", level="fold")
    assert (np.abs(others - d.drop("2012", level="fold")) > 1.0).mean() > 0.9  # the corruption is felt elsewhere
    assert all("2012" not in c.split(",") for c in clean.choices.loc[clean.choices.fold == "2012", "inner_years"])


def test_nested_choices_are_the_lowest_inner_scores_and_ours_is_built_from_them(tmp_path):
    res = run_tiny(gc_like(n_per_year=2), protocols=("paper", "strict"))
    sc = res.inner_scores
    for _, ch in res.choices.iterrows():
        s = sc[(sc.protocol == ch.protocol) & (sc.fold == ch.fold)]
        net = s[s.kind == "network"].sort_values("inner_rmse").iloc[0]
        assert (net.candidate, int(net.hyper)) == (ch.network, ch.epochs)
        ridge = s[s.kind == "ridge-bw"].sort_values("inner_rmse").iloc[0]
        assert ridge.hyper == ch.ridge_alpha and ch.ours == ("blend" if ch.blend_inner_rmse < net.inner_rmse
                                                             else "network")
        # ours = w x ridge-bw + (1 - w) x the network ensemble on the test year
        f = {m: res.frames[(m, ch.protocol)] for m in ("ours", "network", "ridge-bw")}
        sel = {m: v[(v.fold == ch.fold) & (v.seed == "ensemble")] for m, v in f.items()}
        w = ch.blend_w if ch.ours == "blend" else 0.0
        np.testing.assert_allclose(sel["ours"]["pred"], w * sel["ridge-bw"]["pred"].to_numpy()
                                   + (1 - w) * sel["network"]["pred"].to_numpy())
    out = nb.write_nested(res, tmp_path / "o", figures=False)
    t = pd.read_csv(out / "table.csv", index_col=0)
    assert list(t.columns[:6]) == [str(y) for y in b.YEARS]
    assert {"competition winners", "Rane et al. 2019 (GRF only)", "ridge-bw [paper]", "kNN [paper]",
            "ours nested [paper]", "ours nested [strict]"} <= set(t.index)
    assert t.loc["competition winners", "2011"] == 312 and t.loc["Rane et al. 2019 (GRF only)", "2012"] == 464
    f = res.frames[("ours", "paper")]
    g = f[(f.seed == "ensemble") & (f.year == 2014)]
    by_hand = g.groupby("stance_id").apply(lambda s: np.sqrt(np.mean((s.pred - s.true) ** 2))).mean()
    assert t.loc["ours nested [paper]", "2014"] == pytest.approx(by_hand, abs=0.05)
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired.method) == {"ours", "network"} and (paired.n == 12).all()
    assert set(paired.baseline) <= {"ridge-bw", "knn"}


def test_ridge_bw_is_exact_on_a_force_linear_in_grf_and_knn_memorises():
    ds = b.resample_stances(gc_like(), 21)
    ds.frames["knee_medial"] = 1.6 * ds.frames["grf_y"] - 0.4 * ds.frames["grf_x"]
    ids = ds.stance_ids
    train, test = ds.subset(ids[:12]), ds.subset(ids[12:])
    pred = bl.RidgeBW(alpha=1e-6).fit(train).predict(test)
    assert np.abs(pred - test.frames["knee_medial"]).max() < 1e-3 * test.frames["knee_medial"].abs().max()
    knn = bl.KnnBW(k=1).fit(train).predict(train)
    np.testing.assert_allclose(knn, train.frames["knee_medial"], rtol=1e-9)
    # the context is causal: frames of a stance before t only, the first frame repeated
    x, bw = bl.design(ds.frames, context=3)
    g = ds.frames[ds.frames.stance_id == ids[1]]
    r = g.index.to_numpy()
    np.testing.assert_allclose(x[r[0], 1], x[r[0], 4])  # grf_y at t and t-1 on the first frame
    np.testing.assert_allclose(x[r[5], 4], g["grf_y"].iloc[4] / bw[r[5]])
    np.testing.assert_allclose(x[r, -2], g["stance_pct"] / 100.0)


# ---------------------------------------------------------------------------------------------------------
# knee moments in the nested benchmark (issue 17): ridge-bw+moments, a wider kNN grid, leave-one-subject-out
# ---------------------------------------------------------------------------------------------------------
MOMENTS = ["knee_add_moment", "knee_flex_moment", "knee_add_lever", "knee_flex_lever"]


def with_moments(ds: Dataset, seed=1) -> Dataset:
    """gc_like with knee-moment columns: an adduction moment whose shape differs per stance (a stance-specific
    lever arm), and a target that depends on it as well as on the GRF."""
    rng = np.random.default_rng(seed)
    f = ds.frames.copy()
    lever = f.groupby("stance_id")["grf_y"].transform(lambda s: rng.uniform(0.01, 0.06) + 0 * s)
    f["knee_add_lever"], f["knee_flex_lever"] = lever, 0.02
    f["knee_add_moment"], f["knee_flex_moment"] = lever * f["grf_y"], 0.02 * f["grf_y"]
    f["knee_medial"] = 0.8 * f["grf_y"] + 40.0 * f["knee_add_moment"]
    manifest = json.loads(json.dumps(ds.manifest))
    manifest["features"] += MOMENTS
    manifest["feature_sets"]["grf_moments"] = {"columns": GRF + MOMENTS, "shape": [1, 7]}
    return Dataset(f, manifest)


def test_ridge_bw_with_moments_sees_the_moments_divided_by_body_weight():
    ds = b.resample_stances(with_moments(gc_like()), 21)
    f = ds.frames
    x, bw = bl.design(f, context=2, moments=True)
    assert x.shape[1] == 2 * 7 + 2
    r = 30
    np.testing.assert_allclose(x[r, :7], [f.grf_x[r] / bw[r], f.grf_y[r] / bw[r], f.grf_z[r] / bw[r],
                                          f.knee_add_moment[r] / bw[r], f.knee_flex_moment[r] / bw[r],
                                          f.knee_add_lever[r], f.knee_flex_lever[r]])
    ids = ds.stance_ids
    train, test = ds.subset(ids[:12]), ds.subset(ids[12:])
    y = test.frames["knee_medial"].to_numpy()
    err = {m: np.sqrt(np.mean((bl.RidgeBW(alpha=1e-6, moments=m).fit(train).predict(test) - y) ** 2))
           for m in (False, True)}
    assert err[True] < 1e-3 * np.abs(y).max() < err[False]  # the target is linear in the moment, not in the GRF
    with pytest.raises(b.GaitforceError, match="knee_add_moment"):
        bl.design(gc_like().frames, moments=True)


def test_knn_grid_reaches_past_50():
    assert max(bl.KNN_KS) > 50 and 50 in bl.KNN_KS


def test_nested_with_moments_and_leave_one_subject_out(tmp_path):
    ds = with_moments(gc_like(n_per_year=2))
    res = nb.run_nested(ds, seeds=(0,), networks=("tiny-cnn",), configs=TINY, epoch_grid=(1, 2), n_points=11,
                        protocols=("paper", "subject"), log=lambda m: None)
    assert res.settings["baselines"] == ["ridge-bw", "ridge-bw+moments", "knn"]
    sc = res.inner_scores
    for _, ch in res.choices.iterrows():
        s = sc[(sc.protocol == ch.protocol) & (sc.fold == ch.fold)]
        rm = s[s.kind == "ridge-bw+moments"].sort_values("inner_rmse").iloc[0]
        assert rm.hyper == ch.ridge_moments_alpha
        # the blend takes the ridge (with or without moments) the inner folds rank first: here the moments
        ridge = s[s.kind.isin(["ridge-bw", "ridge-bw+moments"])].sort_values("inner_rmse").iloc[0]
        assert ch.blend_ridge == ridge.kind == "ridge-bw+moments"
    subj = ds.stances().set_index("stance_id")["subject"]
    sub = res.choices[res.choices.protocol == "subject"]
    assert sorted(sub.fold) == ["DM", "JW", "PS", "SC"]
    for fold, split in nb.outer_folds(ds, "subject").items():
        assert set(subj[split["test"]]) == {fold} and fold not in set(subj[split["train"]])
        inner = nb.inner_folds(ds.stances(), split["train"], "subject")
        assert sorted(inner) == sorted(set(subj[split["train"]]))
        for k, v in inner.items():
            assert set(subj[v["val"]]) == {k} and k not in set(subj[v["train"]])
    out = nb.write_nested(res, tmp_path / "o", figures=False)
    st = pd.read_csv(out / "subject_table.csv", index_col=0)
    assert {"ridge-bw", "ridge-bw+moments", "ours nested"} <= set(st.index) and (st["stances"] == 12).all()
    f = res.frames[("ridge-bw+moments", "subject")]
    g = f[(f.seed == "ensemble") & (f.fold == "PS")]
    by_hand = g.groupby("stance_id").apply(lambda s: np.sqrt(np.mean((s.pred - s.true) ** 2))).mean()
    assert st.loc["ridge-bw+moments", "PS"] == pytest.approx(by_hand, abs=0.05)
    assert st.loc["ridge-bw+moments", "all"] < 0.2 * st.loc["ridge-bw", "all"]  # linear in the moment: ~exact
    t = pd.read_csv(out / "table.csv", index_col=0)
    assert "ridge-bw+moments [paper]" in t.index and not any("[subject]" in i for i in t.index)
    p = pd.read_csv(out / "paired.csv")
    sp = p[p.protocol == "subject"]
    assert "ridge-bw" in set(sp.baseline) and sp.best_baseline.any() and (sp.n == 12).all()


@pytest.mark.slow
@pytest.mark.realdata
def test_grand_challenge_knee_adduction_moments_are_in_the_walking_range(gc_dir):
    """Every GC stance's peak external knee adduction moment (ingest's feature function) is 1-10 % BW x m,
    positive (the GRF passes medial to the knee in stance); its lever arm under 20 cm where the frontal force is
    >= 80 N (below that the plate's CoP is noise: there it reaches 39 cm)."""
    f = b.load_gc(gc_dir).frames
    bw = f["mass"] * 9.81
    peak = (f["knee_add_moment"] / bw).groupby(f["stance_id"]).max()
    assert len(peak) == 29 and peak.between(0.01, 0.10).all()
    loaded = np.hypot(f["grf_y"], f["grf_z"]) >= 80.0
    assert f.loc[loaded, "knee_add_lever"].abs().max() < 0.20 and np.isfinite(f[MOMENTS].to_numpy()).all()


# -- the interval's coverage, leave-one-year-out (evaluate.intervals_gc) -------------------------------------
def run_intervals_tiny(ds, tmp=None):
    from gaitforce.evaluate import intervals_gc as ig

    return ig.run_intervals(ds, network="tiny-cnn", configs=TINY, members=2, epochs=2, n_points=11,
                            protocols=("paper", "strict"), log=lambda m: None)


def test_interval_calibration_never_sees_the_test_year_and_the_table_adds_up(tmp_path):
    """q of fold 2012 comes from its pool's inner years only: corrupting 2012's force leaves it unchanged (and
    changes other folds' q, whose pools hold 2012); coverage and width in the table are those of the frames."""
    from gaitforce.evaluate import conformal as cf
    from gaitforce.evaluate import intervals_gc as ig

    ds = gc_like(n_per_year=2)
    bad = Dataset(ds.frames.copy(), ds.manifest)
    rows = bad.frames["year"] == 2012
    bad.frames.loc[rows, "knee_medial"] = 5000.0 - 3.0 * bad.frames.loc[rows, "knee_medial"]
    clean, dirty = run_intervals_tiny(ds), run_intervals_tiny(bad)
    c = clean.calibration.set_index(["protocol", "fold"])
    d = dirty.calibration.set_index(["protocol", "fold"])
    assert c.loc[("paper", "2012"), "q"] == pytest.approx(d.loc[("paper", "2012"), "q"], rel=1e-9)
    assert c.loc[("paper", "2012"), "calibration_stances"] == 10  # the 5 other years x 2 stances, each once
    assert (np.abs(c["q_abs"] - d["q_abs"]).drop(("paper", "2012")) > 1.0).mean() > 0.5
    f = clean.frames
    p = f[f.protocol == "paper"]
    assert np.isfinite(p["lo"]).all() and (p["lo"] <= p["mean"]).all() and (p["mean"] <= p["hi"]).all()
    # strict pools of 8 stances (the test subject's other year out) are too few for a finite 90 % q: no interval
    few = c.loc["strict"]["calibration_stances"] < cf.min_calibration(0.1)
    assert few.any() and np.isinf(c.loc["strict"].loc[few, "q"]).all()
    s = f[(f.protocol == "strict") & f.fold.isin(few[few].index)]
    assert len(s) and s["lo"].isna().all()
    t = clean.table.set_index(["protocol", "year"])
    g = f[f.protocol == "paper"]
    want = cf.interval_coverage(g["true"], g["lo"], g["hi"])
    assert t.loc[("paper", "all"), "coverage_pct"] == pytest.approx(100 * want["coverage"])
    assert t.loc[("paper", "all"), "width_N"] == pytest.approx(want["width"])
    assert set(t.index.get_level_values("year")) == {*map(str, SUBJECTS), "all"}
    out = ig.write_intervals(clean, tmp_path / "iv")
    assert {"coverage.csv", "coverage.md", "calibration.csv", "predictions.csv.gz", "settings.json"} <= \
        {p.name for p in out.iterdir()}
    assert (out / "figures" / "intervals_paper.png").stat().st_size > 10_000


def test_ridge_interval_baseline_calibrates_on_the_pool_only():
    from gaitforce.evaluate import conformal as cf
    from gaitforce.evaluate import intervals_gc as ig

    ds = gc_like(n_per_year=2)
    bad = Dataset(ds.frames.copy(), ds.manifest)
    rows = bad.frames["year"] == 2012
    bad.frames.loc[rows, "knee_medial"] = 5000.0 - 3.0 * bad.frames.loc[rows, "knee_medial"]
    clean, dirty = ig.ridge_intervals(ds, n_points=11), ig.ridge_intervals(bad, n_points=11)
    qc, qd = (f.groupby("fold")[["q", "ridge_alpha"]].first() for f in (clean, dirty))
    pd.testing.assert_series_equal(qc.loc["2012"], qd.loc["2012"])
    assert (np.abs(qc["q"] - qd["q"]).drop("2012") > 1.0).all()
    assert np.allclose(clean["hi"] - clean["lo"], 2 * clean["q"])  # constant width
    t = ig.ridge_table(clean).set_index(["protocol", "year"])
    c = cf.interval_coverage(clean["true"], clean["lo"], clean["hi"])
    assert t.loc[("paper", "all"), "coverage_pct"] == pytest.approx(100 * c["coverage"])


def test_leave_one_year_out_members_never_see_the_test_year_and_calibrate_on_the_pool_only(tmp_path):
    """Members differ in the training year they left out: fold 2012's members and calibration never see 2012,
    so corrupting 2012's force leaves that fold's predictions, chosen score and every q unchanged; the paper
    protocol's members are cached by training set (6 years: 15 pairs + 20 triples left out = 35 networks); the
    table's figures are those of the frames."""
    from gaitforce.evaluate import conformal as cf
    from gaitforce.evaluate import intervals_gc as ig

    ds = gc_like(n_per_year=2)
    bad = Dataset(ds.frames.copy(), ds.manifest)
    rows = bad.frames["year"] == 2012
    bad.frames.loc[rows, "knee_medial"] = 5000.0 - 3.0 * bad.frames.loc[rows, "knee_medial"]
    kw = dict(network="tiny-cnn", configs=TINY, epochs=2, n_points=11, protocols=("paper",), log=lambda m: None)
    clean, dirty = ig.run_group_intervals(ds, **kw), ig.run_group_intervals(bad, **kw)
    assert clean.settings["networks_trained"] == 35
    c = clean.calibration.set_index("fold")
    d = dirty.calibration.set_index("fold")
    for col in ("chosen", "q_const", "q_norm", "q_chosen", "calibration_stances"):
        assert c.loc["2012", col] == pytest.approx(d.loc["2012", col], rel=1e-9) if col != "chosen" else \
            c.loc["2012", col] == d.loc["2012", col]
    assert c.loc["2012", "calibration_stances"] == 10 and c.loc["2012", "test_members"] == 5
    assert (np.abs(c["q_const"] - d["q_const"]).drop("2012") > 1.0).all()
    fc, fd = (f[f.fold == "2012"].reset_index(drop=True) for f in (clean.frames, dirty.frames))
    np.testing.assert_allclose(fc["mean"], fd["mean"], rtol=1e-6)
    np.testing.assert_allclose(fc["lo_cvplus"], fd["lo_cvplus"], rtol=1e-6)
    assert (fc["spread"] > 0).all()  # members that saw different years disagree
    np.testing.assert_allclose(fc["hi_const"] - fc["lo_const"], 2 * c.loc["2012", "q_const"])
    t = clean.table.set_index(["protocol", "year", "method"])
    f = clean.frames
    for k in ig.GROUP_METHODS:
        want = cf.interval_coverage(f["true"], f[f"lo_{k}"], f[f"hi_{k}"])
        assert t.loc[("paper", "all", k), "coverage_pct"] == pytest.approx(100 * want["coverage"])
        assert t.loc[("paper", "all", k), "width_N"] == pytest.approx(want["width"])
    # the constant width at its own coverage is (nearly) its own matched width: ratio 1 up to the frame grid
    assert t.loc[("paper", "all", "const"), "width_ratio"] == pytest.approx(1.0, abs=0.15)
    # every candidate's test figures are reported for evaluation; the chosen one is the row the table holds
    ct = clean.candidates_test
    assert (ct.groupby("fold")["chosen"].sum() == 1).all()
    ch = ct[ct.chosen & (ct.fold == "2012")].iloc[0]
    assert ch["q"] == pytest.approx(c.loc["2012", "q_chosen"])
    want = cf.interval_coverage(fc["true"], fc["lo_chosen"], fc["hi_chosen"])
    assert ch["coverage"] == pytest.approx(want["coverage"]) and ch["width"] == pytest.approx(want["width"])
    out = ig.write_group_intervals(clean, tmp_path / "g")
    assert {"group_coverage.csv", "group_calibration.csv", "group_candidates.csv", "group_predictions.csv.gz",
            "group_settings.json"} <= {p.name for p in out.iterdir()}
