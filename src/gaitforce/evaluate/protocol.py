"""The repeated-fold train-and-evaluate protocol of ``gaitforce evaluate``, as library functions.

:func:`repeated_folds` names the folds of a split scheme for every split seed; :func:`run_folds` trains each
model x feature set x seed on each fold's training stances (early stopping on its validation stances) and
scores the fold's test stances (per-stance metrics and prediction frames); :func:`comparison_table` and
:func:`fold_table` summarise them, ``ridge`` (:data:`BASELINE`) always beside with a paired test. The CLI
(:mod:`gaitforce.cli.evaluate`) only parses, calls these and writes the report.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from gaitforce import evaluate as ev
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.evaluate.baselines import BaselineEstimator

BASELINE = "ridge"
#: the strong baselines (:mod:`gaitforce.evaluate.baselines`) that ``--models`` may name beside the networks
BASELINE_MODELS = tuple(BaselineEstimator.MODELS)


def _score(ds: Dataset, pred: np.ndarray, targets: list[str], stances: pd.DataFrame, band=None):
    """(per_trial rows, prediction frames) of predictions ``pred`` for every frame of ``ds``; ``band``: (lo, hi)
    arrays like ``pred`` (an ensemble's interval), added to the prediction frames as ``<target>_lo``/``_hi``."""
    fr = ds.frames
    y_true = fr[targets].to_numpy(float)
    per = ev.per_trial_metrics(y_true, pred, fr["stance_id"].to_numpy(), body_weight=ev.body_weights(stances),
                               target_names=targets, units=ds.targets)
    preds = ev.predictions_frame(fr["stance_id"].to_numpy(), fr["stance_pct"].to_numpy(), y_true, pred, targets)
    if band is not None:
        for k, t in enumerate(targets):
            preds[f"{t}_lo"], preds[f"{t}_hi"] = band[0][:, k], band[1][:, k]
    return per, preds


def run_folds(ds: Dataset, folds: dict[str, dict[str, dict]], *, models: Sequence[str],
              feature_sets: Sequence[str], targets: Sequence[str], seeds: Sequence[int], estimator=None,
              threads=None, device: str = "auto", hyper: dict | None = None, ensemble: int | None = None,
              progress: Callable[[str], None] = lambda m: None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Train and score every split x fold x feature set x model x seed (``folds``: {split: {fold: split dict
    with ``split_seed``}}); ``estimator`` is the Estimator class (default :class:`gaitforce.learn.training.
    Estimator`). Returns the per-stance metrics (with stance info), the prediction frames and the failed runs,
    one line each (a failed run is listed, the others go on); every run failing is an error.

    ``ensemble`` (K >= 2): every model but the strong baselines is an ensemble of K seeds (``seed``, ``seed + 1``,
    ...; :class:`gaitforce.learn.ensemble.EnsembleEstimator`) scored by its mean, its interval calibrated on the
    fold's validation stances; the prediction frames then carry ``<target>_lo``/``_hi``."""
    if estimator is None:
        from gaitforce.learn.training import Estimator as estimator
    hyper, targets, stances = hyper or {}, list(targets), ds.stances()
    runs = [(s, f, m, fs, seed) for s in folds for f in folds[s] for fs in feature_sets for m in models
            for seed in seeds]
    per_rows, pred_rows, failures = [], [], []
    for i, (split, fold, model, fs, seed) in enumerate(runs, 1):
        part = folds[split][fold]
        label = f"{split}" + (f" [{fold}]" if fold != split else "") + f" {model} / {fs} / seed {seed}"
        t0 = time.perf_counter()
        try:
            if model in BASELINE_MODELS:  # ridge-bw / knn: GRF/BW + stance %, no feature set of their own
                est = BaselineEstimator(model, targets=tuple(targets))
            elif ensemble:
                from gaitforce.learn.ensemble import EnsembleEstimator

                est = EnsembleEstimator(model, members=int(ensemble), feature_set=fs, targets=tuple(targets),
                                        seed=seed, verbose=False, threads=threads, device=device, **hyper)
            else:
                est = estimator(model, feature_set=fs, targets=tuple(targets), seed=seed, verbose=False,
                                threads=threads, device=device, **hyper)
            val = ds.subset(part["val"]) if part["val"] else None
            est.fit(ds.subset(part["train"]), val)
            test = ds.subset(part["test"])
            band = None
            if getattr(est, "uncertainty_", None):
                pred, lo, hi = (np.asarray(v, dtype=float) for v in est.predict_interval(test))
                band = (lo, hi)
            else:
                pred = np.asarray(est.predict(test), dtype=float)
        except GaitforceError as err:
            failures.append(f"{label}: {err.line()}")
            progress(f"[{i}/{len(runs)}] {label}: FAILED: {err.line()}")
            continue
        per, preds = _score(test, pred, targets, stances, band)
        tags = {"split": split, "fold": fold, "split_seed": part["split_seed"], "model": model,
                "feature_set": fs, "seed": seed}
        per_rows.append(per.assign(**tags))
        pred_rows.append(preds.assign(**tags))
        msg = ", ".join(f"{t} {per.loc[per.target == t, 'rmse'].mean():.{ev.decimals(ds.targets.get(t, ''))}f} "
                        f"{ds.targets.get(t, '')}" for t in targets)
        progress(f"[{i}/{len(runs)}] {label}: {len(part['train'])}/{len(part['val'])}/{len(part['test'])} "
                 f"stances, test RMSE {msg} ({time.perf_counter() - t0:.1f} s)")
    if not per_rows:
        raise GaitforceError("every run failed:\n  " + "\n  ".join(failures))
    per_trial = ev.with_stance_info(pd.concat(per_rows, ignore_index=True), stances)
    return per_trial, pd.concat(pred_rows, ignore_index=True), failures


def repeated_folds(scheme: str, stances: pd.DataFrame, split_seeds: list[int]) -> dict[str, dict]:
    """{fold name: split + ``split_seed``} of ``scheme`` for every split seed.

    With one split seed the names are the scheme's own. With several each is prefixed ``seed <s>``, and a
    subject-naive fold is named by its test subjects (``seed 3 (test PS)``), so the per-fold table shows
    which subject each repeat held out.
    """
    out = {}
    subjects = stances.set_index("stance_id")["subject"].astype(str)
    for ss in split_seeds:
        for fold, part in ev.make_splits(scheme, stances, seed=ss).items():
            name = fold
            if len(split_seeds) > 1:
                name = f"seed {ss}" + ("" if fold == scheme else f" {fold}")
                if scheme == "subject-naive":
                    name += f" (test {', '.join(sorted(set(subjects[part['test']])))})"
            out[name] = {**part, "split_seed": ss}
    return out


def _paired_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Rows keyed for pairing by stance *and* fold: with repeated splits a stance is tested more than once."""
    return df.assign(stance_id=df["stance_id"].astype(str) + "@" + df["fold"].astype(str))


def comparison_table(per_trial: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Rows model x feature set of one split; per target RMSE / %BW / r as mean (SD), and vs ridge."""
    rows = []
    for (model, fs), grp in per_trial.groupby(["model", "feature_set"], sort=False):
        row = {"model": model, "feature set": fs}
        base = per_trial[(per_trial["model"] == BASELINE) & (per_trial["feature_set"] == fs)]
        for t in targets:
            g = grp[grp["target"] == t]
            if g.empty:
                continue
            unit = g["unit"].iloc[0]
            dec = ev.decimals(unit)
            row[f"{t} RMSE ({unit})"] = ev.mean_std(g["rmse"], dec)
            if unit == "N":
                row[f"{t} RMSE (%BW)"] = ev.mean_std(g["rmse_pct_bw"], 1)
            row[f"{t} r"] = ev.mean_std(g["r"], 2)
            if model != BASELINE and not base.empty:
                c = ev.paired_comparison(_paired_keys(g), _paired_keys(base[base["target"] == t]))
                row[f"{t} vs ridge: dRMSE ({unit})"] = f"{c['delta']:+.{dec}f}" if np.isfinite(c["delta"]) else "-"
                row[f"{t} vs ridge: wins"] = f"{c['wins']:.0%}" if np.isfinite(c["wins"]) else "-"
                row[f"{t} vs ridge: p"] = f"{c['p']:.3g}" if np.isfinite(c["p"]) else "-"
            best = best_baseline(per_trial, t)
            if best is not None and model not in (BASELINE, *BASELINE_MODELS):
                b = per_trial[(per_trial["model"] == best) & (per_trial["target"] == t)]
                if best == BASELINE:
                    b = b[b["feature_set"] == fs]
                c = ev.paired_comparison(_paired_keys(g), _paired_keys(b))
                row[f"{t} best baseline"] = best
                row[f"{t} vs best baseline: dRMSE ({unit})"] = (f"{c['delta']:+.{dec}f}" if np.isfinite(c["delta"])
                                                                else "-")
                row[f"{t} vs best baseline: p"] = f"{c['p']:.3g}" if np.isfinite(c["p"]) else "-"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.fillna("-") if len(table) else table


def best_baseline(per_trial: pd.DataFrame, target: str) -> str | None:
    """Of the strong baselines run (:data:`BASELINE_MODELS`, ridge-bw and knn), the one with the lowest mean
    per-stance RMSE on ``target``; None when none was run."""
    g = per_trial[(per_trial["target"] == target) & per_trial["model"].isin(BASELINE_MODELS)]
    if g.empty:
        return None
    return str(g.groupby("model")["rmse"].mean().idxmin())


def fold_table(per_trial: pd.DataFrame, target: str) -> tuple[pd.DataFrame, str]:
    """Rows model x feature set of one split, a column per fold: mean RMSE / mean r over its test stances
    (the layout of the paper's Table 5, one column per Grand Challenge year), and the target's unit."""
    rows = []
    g = per_trial[per_trial["target"] == target]
    unit = g["unit"].iloc[0] if len(g) else "N"
    dec = ev.decimals(unit)
    for (model, fs), grp in g.groupby(["model", "feature_set"], sort=False):
        row = {"model": model, "feature set": fs}
        for fold, f in grp.groupby("fold", sort=False):
            rmse, r = f["rmse"].mean(), f["r"].mean()
            row[str(fold)] = f"{rmse:.{dec}f} / {r:.2f}" if np.isfinite(rmse) else "-"
        rows.append(row)
    return pd.DataFrame(rows).fillna("-"), unit


def unique_tests(per_trial: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Name each test of a stance apart when repeated splits tested it in more than one fold
    (``<stance_id> (split seed <s>)``), so a report's figures never interleave two predictions of one stance."""
    if "split_seed" not in per_trial or per_trial.groupby("stance_id")["fold"].nunique().max() <= 1:
        return per_trial, predictions

    def key(df):
        return df["stance_id"].astype(str) + " (split seed " + df["split_seed"].astype(str) + ")"

    return per_trial.assign(stance_id=key(per_trial)), predictions.assign(stance_id=key(predictions))


