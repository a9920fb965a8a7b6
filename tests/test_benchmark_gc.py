"""The Grand Challenge benchmark: resampling, causal windows, folds, the run on a tiny synthetic cohort shaped
like the Grand Challenge (six years, JW and DM twice), the CLI, and (slow, real data) the reduced run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaitforce import benchmark_gc as b
from gaitforce.cli import main
from gaitforce.dataset import Dataset

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
    # the GRF-only set of the seed is registered as a 1 x 3 image
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
    seed_folds, strict = b.folds(ds, "seed"), b.folds(ds, "strict")
    subj = ds.stances().set_index("stance_id")["subject"]
    assert list(strict) == [str(y) for y in sorted(SUBJECTS)]
    for year, who in SUBJECTS.items():
        f = strict[str(year)]
        assert set(subj[f["test"]]) == {who}
        assert who not in set(subj[f["train"] + f["val"]])
    # the seed's protocol keeps JW's other year in the pool
    pool = seed_folds["2013"]["train"] + seed_folds["2013"]["val"]
    assert "JW" in set(subj[pool]) and not set(pool) & set(seed_folds["2013"]["test"])


def test_benchmark_end_to_end_on_a_gc_shaped_cohort(tmp_path):
    configs = [b.Config("seed-cnn", "paper-cnn", "grf", hyper=(("channels", 4), ("fc_width", 8))),
               b.Config("ridge-grf", "ridge", "grf"),
               b.Config("tcn5+bw+cop", "tcn", "force_plate", window=5, body_weight_norm=True,
                        hyper=(("layers", 1), ("channels", 4)))]
    res = b.run_benchmark(gc_like(n_per_year=2), seeds=(0, 1), configs=configs, n_points=11,
                          training={"epochs": 2, "patience": 1}, log=lambda m: None)
    ab = res.ablation
    assert list(ab["protocol"]).count("seed") == 3
    # the choice is the lowest validation score of the seed protocol, never a test number
    seed_rows = ab[ab.protocol == "seed"].set_index("config")
    assert res.chosen == seed_rows["val_rmse"].idxmin()
    assert {("seed-cnn", "strict"), ("ridge-grf", "strict"), (res.chosen, "strict")} <= set(res.years)
    yt = res.years[("ridge-grf", "seed")]
    assert list(yt.index) == sorted(SUBJECTS)
    assert np.isfinite(yt[["rmse_mean", "rmse_sd", "rmse_ens"]].to_numpy()).all()
    # the ensemble's per-year RMSE recomputed by hand from its frames
    f = res.frames[("ridge-grf", "seed")]
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


def test_ridge_on_a_linear_force_target_is_nearly_exact():
    """A medial force that is linear in the GRF is recovered by the ridge baseline in every year."""
    ds = gc_like()
    ds.frames["knee_medial"] = 1.6 * ds.frames["grf_y"] + 0.5 * ds.frames["grf_x"]
    res = b.run_benchmark(ds, seeds=(0,), configs=[b.Config("ridge-grf", "ridge", "grf")], n_points=21,
                          log=lambda m: None)
    assert res.years[("ridge-grf", "seed")]["rmse_ens"].max() < 2.0  # N, on forces near 1500 N


def test_cli_rejects_an_unknown_configuration(tmp_path, capsys):
    ds = gc_like().save(tmp_path / "ds")
    assert main(["benchmark", "grand-challenge", "--data", str(ds), "--configs", "nope", "--out",
                 str(tmp_path / "o")]) == 2
    assert "unknown configuration" in capsys.readouterr().err


def test_cli_rejects_a_folder_that_is_not_grand_challenge_data(tmp_path, capsys):
    assert main(["benchmark", "grand-challenge", "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "gaitforce: error:" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
def test_reduced_benchmark_on_the_grand_challenge(gc_dir, tmp_path):
    res = b.run_benchmark(gc_dir, reduced=True, log=lambda m: None)
    seed = res.years[("seed-cnn", "seed")]
    assert list(seed.index) == list(b.YEARS)
    assert len(b.load_gc(gc_dir).stance_ids) == 29
    # every year's medial force is predicted to within 0.8 body weights (forces of 1-2.5 BW)
    assert (seed["rmse_pct_bw_ens"] < 80).all()
