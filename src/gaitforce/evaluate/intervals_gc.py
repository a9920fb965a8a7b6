"""Measured coverage of the ensemble's 90 % interval on the Grand Challenge, leave-one-year-out.

Protocol (``paper`` folds of :func:`gaitforce.evaluate.nested.outer_folds`; ``strict`` also available): for each
test year the **pool** is the stances of the other years (strict: less the test subject's other year).

1. **Calibration scores, never from the test year**: an inner leave-one-year-out over the pool
   (:func:`gaitforce.evaluate.nested.inner_folds`). For each inner year an ensemble of ``members`` networks of
   one fixed configuration (``network``, ``epochs``: set before this run, not chosen on it) is trained on the
   pool's other years and predicts the inner year; every pool stance is then scored once, by an ensemble that
   never trained on it and on a year it never saw, as the test year will be. Scores are the normalised
   ``|y - mean| / (spread + eps)``; ``q`` is their stance-weighted conformal quantile
   (:func:`gaitforce.evaluate.conformal.conformal_quantile`, ``alpha``). This is cross-conformal (the inner
   ensembles are not the final one), the practical form when five years are all the calibration there is; its
   worst-case guarantee is weaker than split-conformal's (Barber et al. 2021: 1 - 2 alpha for jackknife+).
2. **Test**: an ensemble trained on the whole pool predicts the test year; interval ``mean +- q (spread + eps)``.
3. **Baseline interval** beside it: the same ensemble mean with a constant-width interval, ``q`` the conformal
   quantile of the absolute residuals ``|y - mean|`` (spread ignored) on the same calibration predictions. A
   spread that carries information gives the same coverage with narrower or better-placed intervals.

Reported per year and overall: the fraction of test frames inside the interval (pooled frames, and the mean of
the per-stance fractions), the mean width (N), and the ensemble mean's per-stance RMSE (N).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from gaitforce.data.dataset import Dataset
from gaitforce.evaluate import conformal
from gaitforce.evaluate import grand_challenge as gc
from gaitforce.evaluate import nested

NETWORK = "tcn15+bw"
EPOCHS = 20
MEMBERS = 5


@dataclass
class IntervalResult:
    frames: pd.DataFrame  # test frames: protocol, fold, year, stance_id, stance_pct, true, mean, spread, lo, hi, ...
    calibration: pd.DataFrame  # per protocol x fold: q, eps, calibration stances / frames
    table: pd.DataFrame  # per protocol x year (+ all): coverage, width, rmse, for both intervals
    settings: dict = field(default_factory=dict)
    runtime_s: float = 0.0


def run_intervals(data: str | Path | Dataset, *, network: str = NETWORK, epochs: int = EPOCHS,
                  members: int = MEMBERS, alpha: float = conformal.ALPHA, protocols: Sequence[str] = ("paper",),
                  n_points: int = 101, threads: int = 1, training: dict | None = None, seed: int = 0,
                  configs: Sequence[gc.Config] | None = None, log=print) -> IntervalResult:
    """Run the protocol of the module docstring; returns per-frame predictions and the coverage table."""
    from gaitforce.learn.ensemble import EnsembleEstimator

    t0 = time.perf_counter()
    known = {c.name: c for c in (*gc.CONFIGS, *(configs or ()))}
    cfg = known[network]
    base = data if isinstance(data, Dataset) else gc.load_gc(data)
    ds = gc.resample_stances(base, n_points)
    fs = gc.add_window(ds, cfg.features, cfg.window)
    train_kw = {**gc.TRAINING, **(training or {})}
    train_kw.pop("epochs", None)
    stances = ds.stances()
    y_all = ds.frames[gc.TARGET].to_numpy(np.float64)

    def ensemble(train_ids) -> EnsembleEstimator:
        ens = EnsembleEstimator(cfg.model, members=members, interval_alpha=alpha, feature_set=fs, targets=(gc.TARGET,),
                                seed=seed, threads=threads, verbose=False, device="cpu", epochs=epochs, **train_kw,
                                **cfg.estimator_kwargs())
        return ens.fit(ds.subset(list(train_ids)), None, calibrate=False)

    rows, cal_rows = [], []
    for protocol in protocols:
        for fold, split in nested.outer_folds(ds, protocol).items():
            pool = split["train"]
            parts = []
            for vy, v in nested.inner_folds(stances, pool, protocol).items():
                val = ds.subset(v["val"])
                m, s = ensemble(v["train"]).predict_spread(val)
                parts.append(pd.DataFrame({"stance_id": val.frames["stance_id"].to_numpy(),
                                           "true": val.frames[gc.TARGET].to_numpy(np.float64),
                                           "mean": m[:, 0], "spread": s[:, 0]}))
            cal = pd.concat(parts, ignore_index=True)
            eps = conformal.EPS_FRACTION * float(np.nanstd(y_all[np.isin(ds.frames["stance_id"], pool)]))
            scores = conformal.normalised_scores(cal["true"], cal["mean"], cal["spread"], eps)
            q = conformal.conformal_quantile(scores, alpha, cal["stance_id"].to_numpy())
            q_abs = conformal.conformal_quantile(np.abs(cal["true"] - cal["mean"]), alpha, cal["stance_id"].to_numpy())
            test = ds.subset(split["test"])
            m, s = ensemble(pool).predict_spread(test)
            lo, hi = conformal.interval(m[:, 0], s[:, 0], q, eps)
            f = test.frames
            rows.append(pd.DataFrame({
                "protocol": protocol, "fold": fold, "year": f["year"].to_numpy(), "subject": f["subject"].astype(str),
                "stance_id": f["stance_id"].to_numpy(), "stance_pct": f["stance_pct"].to_numpy(),
                "mass": f["mass"].to_numpy(), "true": f[gc.TARGET].to_numpy(np.float64), "mean": m[:, 0],
                "spread": s[:, 0], "lo": lo, "hi": hi, "lo_const": m[:, 0] - q_abs, "hi_const": m[:, 0] + q_abs}))
            cal_rows.append({"protocol": protocol, "fold": fold, "q": q, "eps": eps, "q_abs": q_abs,
                             "calibration_stances": int(cal["stance_id"].nunique()), "calibration_frames": len(cal),
                             "calibration_mean_spread": float(cal["spread"].mean())})
            cov = conformal.interval_coverage(rows[-1]["true"], lo, hi)
            log(f"[{protocol}] {fold}: q {q:.2f} (eps {eps:.1f} N) from {cal['stance_id'].nunique()} stances; test "
                f"coverage {100 * cov['coverage']:.0f} %, width {cov['width']:.0f} N "
                f"({time.perf_counter() - t0:.0f} s)")
    frames = pd.concat(rows, ignore_index=True)
    res = IntervalResult(frames=frames, calibration=pd.DataFrame(cal_rows), table=coverage_table(frames),
                         runtime_s=time.perf_counter() - t0)
    res.settings = {"network": network, "epochs": epochs, "members": members, "alpha": alpha,
                    "protocols": list(protocols), "n_points": n_points, "threads": threads, "seed": seed,
                    "training": {**train_kw, "epochs": epochs}, "eps_fraction": conformal.EPS_FRACTION,
                    "calibration": "inner leave-one-year-out over the pool (cross-conformal), stance-weighted"}
    return res


def ridge_intervals(data: str | Path | Dataset, *, alpha: float = conformal.ALPHA,
                    protocols: Sequence[str] = ("paper",), n_points: int = 101) -> pd.DataFrame:
    """The strongest simple baseline's interval under the same protocol: ridge-bw
    (:class:`gaitforce.evaluate.baselines.RidgeBW`) with its penalty chosen on the pool's inner years (lowest
    per-stance RMSE, as the nested benchmark chooses it) and a constant-width conformal interval, q the
    stance-weighted quantile of ``|y - pred|`` over the same inner predictions. Test frames: protocol, fold,
    year, stance_id, true, pred, lo, hi, q, ridge_alpha."""
    from gaitforce.evaluate.baselines import RIDGE_ALPHAS, RidgeBW, design

    base = data if isinstance(data, Dataset) else gc.load_gc(data)
    ds = gc.resample_stances(base, n_points)
    stances = ds.stances()
    x, bw = design(ds.frames)
    y = ds.frames[gc.TARGET].to_numpy(np.float64)
    sid = ds.frames["stance_id"].to_numpy()

    def rows(ids):
        return np.flatnonzero(np.isin(sid, list(ids)))

    out = []
    for protocol in protocols:
        for fold, split in nested.outer_folds(ds, protocol).items():
            inner = nested.inner_folds(stances, split["train"], protocol)
            preds = {}
            for a in RIDGE_ALPHAS:
                preds[a] = np.concatenate([
                    RidgeBW(alpha=a, target=gc.TARGET).fit_arrays(x[rows(v["train"])], bw[rows(v["train"])],
                                                                  y[rows(v["train"])]).predict_arrays(
                        x[rows(v["val"])], bw[rows(v["val"])]) for v in inner.values()])
            val = np.concatenate([rows(v["val"]) for v in inner.values()])
            best = min(RIDGE_ALPHAS, key=lambda a: gc._mean_stance_rmse(y[val], preds[a], sid[val]))
            q = conformal.conformal_quantile(np.abs(y[val] - preds[best]), alpha, sid[val])
            tr, te = rows(split["train"]), rows(split["test"])
            p = RidgeBW(alpha=best, target=gc.TARGET).fit_arrays(x[tr], bw[tr], y[tr]).predict_arrays(x[te], bw[te])
            out.append(pd.DataFrame({"protocol": protocol, "fold": fold, "year": ds.frames["year"].to_numpy()[te],
                                     "stance_id": sid[te], "true": y[te], "pred": p, "lo": p - q, "hi": p + q,
                                     "q": q, "ridge_alpha": best}))
    return pd.concat(out, ignore_index=True)


def ridge_table(frames: pd.DataFrame) -> pd.DataFrame:
    """Per protocol and year (and ``all``): coverage (%), mean width (N) and per-stance RMSE (N) of
    :func:`ridge_intervals`."""
    out = []
    for protocol, fp in frames.groupby("protocol", sort=False):
        for year, g in [(str(y), g) for y, g in fp.groupby("year")] + [("all", fp)]:
            sid = g["stance_id"].to_numpy()
            c = conformal.interval_coverage(g["true"], g["lo"], g["hi"], sid)
            out.append({"protocol": protocol, "year": year, "coverage_pct": 100 * c["coverage"], "width_N": c["width"],
                        "rmse_N": gc._mean_stance_rmse(g["true"].to_numpy(), g["pred"].to_numpy(), sid)})
    return pd.DataFrame(out)


def coverage_table(frames: pd.DataFrame) -> pd.DataFrame:
    """Per protocol and year (and ``all``): coverage (frames, %), stance-mean coverage (%), mean width (N) of the
    ensemble interval and of the constant-width baseline, and the mean's per-stance RMSE (N)."""
    out = []
    for protocol, fp in frames.groupby("protocol", sort=False):
        groups = [(str(y), g) for y, g in fp.groupby("year")] + [("all", fp)]
        for year, g in groups:
            sid = g["stance_id"].to_numpy()
            a = conformal.interval_coverage(g["true"], g["lo"], g["hi"], sid)
            b = conformal.interval_coverage(g["true"], g["lo_const"], g["hi_const"], sid)
            rmse = gc._mean_stance_rmse(g["true"].to_numpy(), g["mean"].to_numpy(), sid)
            out.append({"protocol": protocol, "year": year, "stances": a["n_stances"], "frames": a["n_frames"],
                        "coverage_pct": 100 * a["coverage"], "stance_coverage_pct": 100 * a["stance_coverage"],
                        "min_stance_coverage_pct": 100 * a["stance_coverage_min"], "width_N": a["width"],
                        "const_coverage_pct": 100 * b["coverage"], "const_width_N": b["width"],
                        "rmse_N": rmse, "mean_spread_N": float(g["spread"].mean())})
    return pd.DataFrame(out)


def plot_bands(frames: pd.DataFrame, path: str | Path, *, protocol: str = "paper", level: float = 0.9) -> Path:
    """One panel per test year: measured force, ensemble mean and the interval band over stance (every stance
    of the year, in BW), the year's coverage in the title."""
    from gaitforce._plot import subplots
    from gaitforce.constants import G

    f = frames[frames["protocol"] == protocol]
    years = sorted(f["year"].unique())
    fig, axes = subplots(2, (len(years) + 1) // 2, figsize=(4.2 * ((len(years) + 1) // 2), 6.4), sharey=True,
                             squeeze=False)
    for ax, year in zip(axes.ravel(), years):
        g = f[f["year"] == year]
        for k, (sid, s) in enumerate(g.groupby("stance_id", sort=False)):
            bw = float(s["mass"].iloc[0]) * G
            x = s["stance_pct"].to_numpy()
            ax.fill_between(x, s["lo"] / bw, s["hi"] / bw, color="tab:blue", alpha=0.12, lw=0,
                            label=f"{100 * level:.0f} % interval" if k == 0 else None)
            ax.plot(x, s["mean"] / bw, color="tab:blue", lw=0.9, label="ensemble mean" if k == 0 else None)
            ax.plot(x, s["true"] / bw, color="k", lw=0.9, ls="--", label="measured (in vivo)" if k == 0 else None)
        cov = conformal.interval_coverage(g["true"], g["lo"], g["hi"])
        ax.set_title(f"{year}: {g['stance_id'].nunique()} stances, coverage {100 * cov['coverage']:.0f} %, "
                     f"width {cov['width']:.0f} N", fontsize=9)
        ax.set_xlabel("stance (%)")
    for ax in axes[:, 0]:
        ax.set_ylabel("medial knee force (BW)")
    for ax in axes.ravel()[len(years):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_intervals(res: IntervalResult, out: str | Path, *, figures: bool = True) -> Path:
    """``coverage.csv/.md``, ``calibration.csv``, ``predictions.csv.gz``, ``settings.json`` and
    ``figures/intervals_<protocol>.png``."""
    import json

    from gaitforce.evaluate.report import markdown_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out / "coverage.csv", index=False)
    (out / "coverage.md").write_text(markdown_table(res.table.round(1)) + "\n")
    res.calibration.to_csv(out / "calibration.csv", index=False)
    res.frames.to_csv(out / "predictions.csv.gz", index=False)
    (out / "settings.json").write_text(json.dumps({**res.settings, "runtime_s": round(res.runtime_s, 1)}, indent=1,
                                                  default=str))
    if figures:
        for protocol in res.frames["protocol"].unique():
            plot_bands(res.frames, out / "figures" / f"intervals_{protocol}.png", protocol=protocol,
                       level=1 - res.settings.get("alpha", conformal.ALPHA))
    return out


__all__ = ["IntervalResult", "run_intervals", "ridge_intervals", "ridge_table", "coverage_table", "plot_bands",
           "write_intervals"]
