"""Summaries of per-stance metrics: mean (SD) tables, prediction frames, paired comparisons."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError
from gaitforce.evaluate.metrics import _as_2d


# ---------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------
def decimals(unit: str) -> int:
    """Decimals that show a value in ``unit``: 0 for forces in N (hundreds of N), 3 for anything else (EMG
    envelopes in unit 1 run 0-1: whole numbers would print every error as "0")."""
    return 0 if unit == "N" else 3


#: metric column -> (display label with {unit}, decimals; None: those of the target's unit, :func:`decimals`)
DISPLAY = {
    "rmse": ("RMSE ({unit})", None),
    "rmse_pct_bw": ("RMSE (%BW)", 1),
    "r": ("r", 2),
    "peak_error": ("peak error ({unit})", None),
}


def mean_std(values, decimals: int) -> str:
    """"216 (88)": mean and sample standard deviation (ddof=1) of the finite values; "-" when none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "-"
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return f"{np.mean(v):.{decimals}f} ({sd:.{decimals}f})"


def summarise(
    per_trial: pd.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    metrics: Sequence[str] = ("rmse", "rmse_pct_bw", "r", "peak_error"),
    formatted: bool = True,
) -> pd.DataFrame:
    """Mean (std) over stances of each metric, per target and per ``by`` group(s).

    With ``formatted=True`` (default) each cell reads like the paper's Tables 2-4, "216 (88)": mean and
    sample standard deviation (ddof=1) over stances, NaN rows left out (a metric with none left reads "-"),
    RMSE and peak error with the decimals of the target's unit (:func:`decimals`: "216 (88)" N, "0.052 (0.011)");
    columns are labelled with units ("RMSE (N)", "RMSE (%BW)", "r", "peak error (N)") and ``n`` counts the
    stances. With ``formatted=False`` the columns are ``<metric>_mean`` and ``<metric>_std`` floats.
    """
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    missing = [c for c in ["target", *by, *metrics] if c not in per_trial.columns]
    if missing:
        raise GaitforceError(f"per-trial table lacks columns {missing}")
    keys = [*by, "target"]
    rows = []
    for key, grp in per_trial.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        unit = grp["unit"].iloc[0] if "unit" in grp else "N"
        row["n"] = int(grp["stance_id"].nunique()) if "stance_id" in grp else len(grp)
        for m in metrics:
            v = grp[m].to_numpy(dtype=float)
            if formatted:
                label, dec = DISPLAY.get(m, (m, 2))
                row[label.format(unit=unit)] = mean_std(v, decimals(unit) if dec is None else dec)
            else:
                f = v[np.isfinite(v)]
                row[f"{m}_mean"] = float(np.mean(f)) if f.size else np.nan
                row[f"{m}_std"] = float(np.std(f, ddof=1)) if f.size > 1 else (0.0 if f.size else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def predictions_frame(stance_ids, stance_pct, y_true, y_pred, target_names: Sequence[str]) -> pd.DataFrame:
    """Frames of reference and prediction side by side: ``stance_id, stance_pct, <t>_ref, <t>_pred``."""
    yt, yp = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    out = pd.DataFrame({"stance_id": np.asarray(stance_ids, dtype=object), "stance_pct": np.asarray(stance_pct)})
    for j, t in enumerate(target_names):
        out[f"{t}_ref"] = yt[:, j]
        out[f"{t}_pred"] = yp[:, j]
    return out


def paired_comparison(per_trial: pd.DataFrame, baseline: pd.DataFrame, *, metric: str = "rmse") -> dict:
    """Compare a model with a baseline on the same stances and target.

    Returns ``delta`` (mean of model - baseline over stances present in both; negative: the model is better),
    ``wins`` (share of stances where the model's metric is lower), ``p`` (two-sided Wilcoxon signed-rank test
    on the paired differences; NaN with fewer than 2 pairs or all differences zero) and ``n`` (pairs).
    """
    from scipy.stats import wilcoxon

    keys = ["stance_id", "target"] + [c for c in ("seed",) if c in per_trial and c in baseline]
    both = per_trial[[*keys, metric]].merge(baseline[[*keys, metric]], on=keys, suffixes=("", "_base"))
    d = (both[metric] - both[f"{metric}_base"]).to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    out = {"n": int(d.size), "delta": float(np.mean(d)) if d.size else np.nan,
           "wins": float(np.mean(d < 0)) if d.size else np.nan, "p": np.nan}
    if d.size >= 2 and np.any(d != 0):
        out["p"] = float(wilcoxon(d).pvalue)
    return out
