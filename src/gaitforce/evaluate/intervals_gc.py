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


def _prepare(data, network: str, configs, n_points: int, training: dict | None):
    """The configuration, the resampled dataset, its windowed feature set, the training keywords (epochs come
    from the protocol), the stances and the target of every frame: what both protocols start from."""
    known = {c.name: c for c in (*gc.CONFIGS, *(configs or ()))}
    cfg = known[network]
    base = data if isinstance(data, Dataset) else gc.load_gc(data)
    ds = gc.resample_stances(base, n_points)
    fs = gc.add_window(ds, cfg.features, cfg.window)
    train_kw = {**gc.TRAINING, **(training or {})}
    train_kw.pop("epochs", None)
    return cfg, ds, fs, train_kw, ds.stances(), ds.frames[gc.TARGET].to_numpy(np.float64)


def run_intervals(data: str | Path | Dataset, *, network: str = NETWORK, epochs: int = EPOCHS,
                  members: int = MEMBERS, alpha: float = conformal.ALPHA, protocols: Sequence[str] = ("paper",),
                  n_points: int = 101, threads: int = 1, training: dict | None = None, seed: int = 0,
                  configs: Sequence[gc.Config] | None = None, log=print) -> IntervalResult:
    """Run the protocol of the module docstring; returns per-frame predictions and the coverage table."""
    from gaitforce.learn.ensemble import EnsembleEstimator

    t0 = time.perf_counter()
    cfg, ds, fs, train_kw, stances, y_all = _prepare(data, network, configs, n_points, training)

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


# -- members that differ in what they saw: one per left-out training year (issue 17 item 4, second round) -------

@dataclass
class GroupIntervalResult:
    frames: pd.DataFrame  # test frames: protocol, fold, year, stance_id, true, mean, spread, lo_<method>, hi_<method>
    calibration: pd.DataFrame  # per protocol x fold: chosen score, its c and q, q of every reported method
    candidates: pd.DataFrame  # per protocol x fold x candidate: inner leave-one-year-out interval score, coverage
    table: pd.DataFrame  # per protocol x year (+ all) x method: coverage, width, matched constant width
    settings: dict = field(default_factory=dict)
    runtime_s: float = 0.0
    candidates_test: pd.DataFrame = field(default_factory=pd.DataFrame)  # every candidate on the test year (never chooses)
    calibration_frames: pd.DataFrame = field(default_factory=pd.DataFrame)  # the pool's scored frames per fold


#: the intervals :func:`run_group_intervals` reports (column suffix -> what it is)
GROUP_METHODS = {
    "const": "constant width, q of |y - mean| (the bar)",
    "norm": "normalised |y - mean| / (spread + eps) (the first round's score)",
    "chosen": "score chosen on the inner years (interval score), constant / normalised + c / magnitude + c",
    "cvplus": "CV+ over the training years (each year's residual from the member that left it out)",
}


def run_group_intervals(data: str | Path | Dataset, *, network: str = NETWORK, epochs: int = EPOCHS,
                        alpha: float = conformal.ALPHA, protocols: Sequence[str] = ("paper",), n_points: int = 101,
                        threads: int = 1, training: dict | None = None, seed: int = 0,
                        configs: Sequence[gc.Config] | None = None, member_group: str = "year",
                        member_seeds: int = 1, log=print) -> GroupIntervalResult:
    """Intervals from **leave-one-year-out members** (a grouped jackknife / cross-conformal ensemble).

    For each outer fold (test year ``t``, pool ``P`` of training years; ``strict``: less ``t``'s subject):

    1. **Test ensemble**: one member per pool year ``j``, trained on ``P`` less ``j`` (``strict``: less ``j``'s
       subject too, as :func:`gaitforce.evaluate.nested.inner_folds`); members with the same training set are
       one member. Mean and spread (population SD) over the members: the spread is how much the prediction
       moves when one year (one session or subject) is left out of training, the variability the test error
       is made of, not seed noise.
    2. **Calibration, never from ``t``**: every pool year ``j`` is predicted by the ensemble built the same way
       on ``P`` less ``j`` (its members leave out one more year), so every pool stance gets a mean and spread
       from an ensemble that never saw its year, as the test year will.
    3. **Score chosen on the pool only**: :func:`gaitforce.evaluate.conformal.choose_score` over
       :func:`~gaitforce.evaluate.conformal.score_candidates` (constant; ``|y - m| / (s + c)``;
       ``|y - m| / (|m| + c)``; ``c`` from the calibration predictions), by leave-one-calibration-year-out
       interval score; ``q`` of the chosen score over all calibration stances (stance-weighted).
    4. Reported beside it on the same test mean: the constant-width interval (the bar), the plain normalised
       score (``c = eps``), and **CV+** (Barber et al. 2021): each test member's residuals on the year it
       left out, ``[mu_{-j}(x) -+ R_i]`` quantiles, stance-weighted.

    ``member_group="subject"``: one member per **subject** of the training stances instead (each trained
    without that subject's stances: leave-one-subject-out members); the calibration years stay as above.
    ``member_seeds``: seeds per left-out group (members = groups x seeds; 1: the group alone varies).

    Members are cached by training set and seed (the same stances and seed give the same network), so folds
    share them: paper protocol, 6 years: 6 x 5 / 2 pairs + 20 triples of years left out, 35 networks.
    """
    from gaitforce.learn.training import CollapseWarning, Estimator
    import warnings

    t0 = time.perf_counter()
    cfg, ds, fs, train_kw, stances, y_all = _prepare(data, network, configs, n_points, training)
    sid_all = ds.frames["stance_id"].to_numpy()
    cache: dict = {}
    n_trained = [0]

    if member_group not in ("year", "subject"):
        raise ValueError(f"member_group must be 'year' or 'subject', got {member_group!r}")
    subject_of = stances.set_index("stance_id")["subject"].astype(str)

    def member(train_ids, s=seed):
        key = (frozenset(train_ids), s)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CollapseWarning)
                cache[key] = Estimator(cfg.model, feature_set=fs, targets=(gc.TARGET,), seed=s, threads=threads,
                                       verbose=False, device="cpu", epochs=epochs, **train_kw,
                                       **cfg.estimator_kwargs()).fit(ds.subset(sorted(key[0])), None)
            n_trained[0] += 1
        return cache[key]

    def loo_ensemble(pool_ids, protocol):
        """{left-out year: (the year member that left it out, the year's ids)} (CV+ residuals) and the
        ensemble's unique members (year or subject members, x seeds)."""
        inner = nested.inner_folds(stances, pool_ids, protocol)
        by_year = {j: (member(v["train"]), v["val"]) for j, v in inner.items() if len(v["train"])}
        if member_group == "year":
            sets = [v["train"] for v in inner.values() if len(v["train"])]
        else:
            pool_ids = list(pool_ids)
            subj = subject_of.reindex(pool_ids).to_numpy()
            sets = [[i for i, sj in zip(pool_ids, subj) if sj != s] for s in sorted(set(subj))]
            sets = [t for t in sets if t]
        unique = {}
        for t in sets:
            for k in range(member_seeds):
                m = member(t, seed + k)
                unique[id(m)] = m
        return by_year, list(unique.values())

    def predict(members, sub: Dataset) -> np.ndarray:
        return np.stack([m.predict(sub)[:, 0] for m in members])  # (M, N)

    rows, cal_rows, cand_rows, cand_test, cal_frames = [], [], [], [], []
    for protocol in protocols:
        for fold, split in nested.outer_folds(ds, protocol).items():
            pool = split["train"]
            test_members, test_unique = loo_ensemble(pool, protocol)
            # calibration: each pool year j predicted by the leave-one-year-out ensemble of P less j
            parts, cv_parts = [], []
            inner = nested.inner_folds(stances, pool, protocol)
            for j, v in inner.items():
                val = ds.subset(v["val"])
                _, members_j = loo_ensemble(v["train"], protocol)
                yj = val.frames[gc.TARGET].to_numpy(np.float64)
                pj = predict(members_j, val)
                parts.append(pd.DataFrame({"stance_id": val.frames["stance_id"].to_numpy(), "cal_year": j,
                                           "true": yj, "mean": pj.mean(axis=0), "spread": pj.std(axis=0),
                                           "members": len(members_j)}))
                if j not in test_members or not members_j:
                    raise ValueError(f"[{protocol}] {fold}: pool year {j} leaves no training stances")
                mj = test_members[j][0]
                year_members = list({id(m): m for m, _ in test_members.values()}.values())
                cv_parts.append(pd.DataFrame({"stance_id": val.frames["stance_id"].to_numpy(), "cal_year": j,
                                              "residual": np.abs(yj - mj.predict(val)[:, 0]),
                                              "member": [m is mj for m in year_members].index(True)}))
            cal = pd.concat(parts, ignore_index=True)
            cv = pd.concat(cv_parts, ignore_index=True)
            eps = conformal.EPS_FRACTION * float(np.nanstd(y_all[np.isin(sid_all, pool)]))
            cands = conformal.score_candidates(cal["mean"], cal["spread"], eps)
            chosen, cand_table = conformal.choose_score(cal["true"], cal["mean"], cal["spread"], cal["stance_id"],
                                                        cal["cal_year"], cands, alpha)
            cand_rows += [{"protocol": protocol, "fold": fold, **r} for r in cand_table]
            g_cal = cal["stance_id"].to_numpy()
            methods = {"const": {"kind": "constant", "c": 0.0}, "norm": {"kind": "normalised", "c": eps},
                       "chosen": chosen}
            q = {k: conformal.conformal_quantile(conformal.scaled_scores(cal["true"], cal["mean"], cal["spread"],
                                                                         m["kind"], m["c"]), alpha, g_cal)
                 for k, m in methods.items()}
            test = ds.subset(split["test"])
            pt = predict(test_unique, test)
            mean, spread = pt.mean(axis=0), pt.std(axis=0)
            f = test.frames
            out = {"protocol": protocol, "fold": fold, "year": f["year"].to_numpy(),
                   "subject": f["subject"].astype(str).to_numpy(), "stance_id": f["stance_id"].to_numpy(),
                   "stance_pct": f["stance_pct"].to_numpy(), "mass": f["mass"].to_numpy(),
                   "true": f[gc.TARGET].to_numpy(np.float64), "mean": mean, "spread": spread,
                   "members": len(test_unique)}
            for k, m in methods.items():
                out[f"lo_{k}"], out[f"hi_{k}"] = conformal.scaled_interval(mean, spread, q[k], m["kind"], m["c"])
            year_members = list({id(m): m for m, _ in test_members.values()}.values())
            out["lo_cvplus"], out["hi_cvplus"] = conformal.cv_plus_interval(
                predict(year_members, test), cv["member"].to_numpy(), cv["residual"].to_numpy(), cv["stance_id"].to_numpy(), alpha)
            rows.append(pd.DataFrame(out))
            cal_frames.append(cal.assign(protocol=protocol, fold=fold))
            for cand in cands:  # evaluation only: how every candidate would have done on the test year
                qc = conformal.conformal_quantile(conformal.scaled_scores(cal["true"], cal["mean"], cal["spread"],
                                                                          cand["kind"], cand["c"]), alpha, g_cal)
                lo_c, hi_c = conformal.scaled_interval(mean, spread, qc, cand["kind"], cand["c"])
                cc = conformal.interval_coverage(out["true"], lo_c, hi_c)
                cand_test.append({"protocol": protocol, "fold": fold, "name": cand["name"], "kind": cand["kind"],
                                  "c": cand["c"], "q": qc, "coverage": cc["coverage"], "width": cc["width"],
                                  "frames": cc["n_frames"], "chosen": cand["name"] == chosen["name"]})
            cal_rows.append({"protocol": protocol, "fold": fold, "chosen": chosen["name"], "chosen_kind": chosen["kind"],
                             "chosen_c": chosen["c"], "eps": eps, **{f"q_{k}": v for k, v in q.items()},
                             "calibration_stances": int(cal["stance_id"].nunique()), "calibration_frames": len(cal),
                             "calibration_mean_spread": float(cal["spread"].mean()),
                             "test_members": len(test_unique)})
            r = rows[-1]
            cov = {k: conformal.interval_coverage(r["true"], r[f"lo_{k}"], r[f"hi_{k}"]) for k in GROUP_METHODS}
            log(f"[{protocol}] {fold}: {len(test_unique)} members, chose {chosen['name']} (c {chosen['c']:.0f} N, "
                f"q {q['chosen']:.2f}); test coverage / width: "
                + ", ".join(f"{k} {100 * c['coverage']:.0f} % {c['width']:.0f} N" for k, c in cov.items())
                + f" ({n_trained[0]} networks, {time.perf_counter() - t0:.0f} s)")
    frames = pd.concat(rows, ignore_index=True)
    res = GroupIntervalResult(frames=frames, calibration=pd.DataFrame(cal_rows), candidates=pd.DataFrame(cand_rows),
                              table=group_table(frames, alpha), runtime_s=time.perf_counter() - t0,
                              candidates_test=pd.DataFrame(cand_test),
                              calibration_frames=pd.concat(cal_frames, ignore_index=True))
    res.settings = {"network": network, "epochs": epochs, "members": f"one per left-out training {member_group} "
                    f"x {member_seeds} seed(s)", "member_group": member_group, "member_seeds": member_seeds,
                    "alpha": alpha,
                    "protocols": list(protocols), "n_points": n_points, "threads": threads, "seed": seed,
                    "training": {**train_kw, "epochs": epochs}, "eps_fraction": conformal.EPS_FRACTION,
                    "networks_trained": n_trained[0], "methods": GROUP_METHODS,
                    "spread_c_factors": list(conformal.SPREAD_C_FACTORS),
                    "magnitude_c_factors": list(conformal.MAGNITUDE_C_FACTORS),
                    "calibration": "each pool year by the leave-one-year-out ensemble of the other pool years; score "
                                   "chosen by leave-one-calibration-year-out interval score; stance-weighted q"}
    return res


def group_table(frames: pd.DataFrame, alpha: float = conformal.ALPHA) -> pd.DataFrame:
    """Per protocol, year (and ``all``) and method of :data:`GROUP_METHODS`: coverage (% of frames), mean width
    (N), mean interval score (N), the **matched constant width** (the narrowest constant width on the same mean
    covering as many of these frames; an evaluation yardstick that looks at the test frames) and the width ratio
    (width / matched constant width: below 1, the interval's shape beats a constant width at its coverage);
    ``spread_err_spearman``: the rank correlation of the spread with ``|y - mean|`` over the frames (is the
    spread informative at all), ``magnitude_err_spearman`` the same for ``|mean|``."""
    out = []
    for protocol, fp in frames.groupby("protocol", sort=False):
        for year, g in [(str(y), g) for y, g in fp.groupby("year")] + [("all", fp)]:
            sid = g["stance_id"].to_numpy()
            rmse = gc._mean_stance_rmse(g["true"].to_numpy(), g["mean"].to_numpy(), sid)
            err = (g["true"] - g["mean"]).abs()
            rho_s = float(err.corr(g["spread"], method="spearman"))
            rho_m = float(err.corr(g["mean"].abs(), method="spearman"))
            for k in GROUP_METHODS:
                if f"lo_{k}" not in g:
                    continue
                c = conformal.interval_coverage(g["true"], g[f"lo_{k}"], g[f"hi_{k}"], sid)
                ok = np.isfinite(g[f"lo_{k}"]) & np.isfinite(g[f"hi_{k}"])
                iscore = float(np.mean(conformal.interval_score(g["true"][ok], g[f"lo_{k}"][ok], g[f"hi_{k}"][ok],
                                                                alpha))) if ok.any() else np.nan
                matched = conformal.matched_constant_width(g["true"][ok], g["mean"][ok], c["coverage"])
                out.append({"protocol": protocol, "year": year, "method": k, "stances": c["n_stances"],
                            "coverage_pct": 100 * c["coverage"], "stance_coverage_pct": 100 * c["stance_coverage"],
                            "width_N": c["width"], "matched_const_width_N": matched,
                            "width_ratio": c["width"] / matched if matched > 0 else np.nan,
                            "interval_score_N": iscore, "rmse_N": rmse, "mean_spread_N": float(g["spread"].mean()),
                            "spread_err_spearman": rho_s, "magnitude_err_spearman": rho_m})
    return pd.DataFrame(out)


def write_group_intervals(res: GroupIntervalResult, out: str | Path) -> Path:
    """``group_coverage.csv/.md``, ``group_calibration.csv``, ``group_candidates.csv`` (inner scores),
    ``group_candidates_test.csv`` (every candidate on the test years: evaluation only), ``group_calibration_frames``,
    ``group_predictions.csv.gz``, ``group_settings.json``."""
    import json

    from gaitforce.evaluate.report import markdown_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out / "group_coverage.csv", index=False)
    (out / "group_coverage.md").write_text(markdown_table(res.table.round(2)) + "\n")
    res.calibration.to_csv(out / "group_calibration.csv", index=False)
    res.candidates.to_csv(out / "group_candidates.csv", index=False)
    res.candidates_test.to_csv(out / "group_candidates_test.csv", index=False)
    res.calibration_frames.to_csv(out / "group_calibration_frames.csv.gz", index=False)
    res.frames.to_csv(out / "group_predictions.csv.gz", index=False)
    (out / "group_settings.json").write_text(json.dumps({**res.settings, "runtime_s": round(res.runtime_s, 1)},
                                                        indent=1, default=str))
    return out


__all__ = ["IntervalResult", "run_intervals", "ridge_intervals", "ridge_table", "coverage_table", "plot_bands",
           "write_intervals", "GroupIntervalResult", "GROUP_METHODS", "run_group_intervals", "group_table",
           "write_group_intervals"]
