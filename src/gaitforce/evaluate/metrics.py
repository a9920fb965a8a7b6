"""Per-stance metrics: RMSE (target unit and % body weight), Pearson r, peak error.

-------
:func:`per_trial_metrics` scores each stance and target: RMSE in the target's unit, RMSE in % body weight,
Pearson r and the error of the peak. :func:`summarise` turns those rows into "mean (std)" tables like the
paper's Tables 2-4.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from gaitforce.constants import G
from gaitforce.errors import GaitforceError

# ---------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------
METRIC_COLUMNS = ["rmse", "rmse_pct_bw", "r", "peak_error", "peak_error_pct_bw"]


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D signals, NaN-safe.

    Rules: frames where either signal is NaN are dropped first; with fewer than two frames left, or when
    either signal is constant there (zero variance: r is undefined), the result is NaN, never 0 or 1.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    sa, sb = np.sqrt(np.sum(da * da)), np.sqrt(np.sum(db * db))
    scale = max(np.abs(a).max(), np.abs(b).max(), np.finfo(float).tiny)
    if sa <= 1e-12 * scale * np.sqrt(a.size) or sb <= 1e-12 * scale * np.sqrt(b.size):
        return float("nan")
    return float(np.clip(np.sum(da * db) / (sa * sb), -1.0, 1.0))


def _as_2d(y, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise GaitforceError(f"{name} must be (N,) or (N, K), got shape {y.shape}")
    return y


#: Plausible body weights, N (15 to 500 kg): outside them a value is refused as a unit slip.
BODY_WEIGHT_RANGE = (150.0, 4905.0)


def _frame_weights(body_weight, stance_ids: np.ndarray) -> np.ndarray:
    """Body weight (N) per frame from a scalar, a per-frame array or a stance_id -> weight mapping."""
    n = len(stance_ids)
    if body_weight is None:
        return np.full(n, np.nan)
    if isinstance(body_weight, (Mapping, pd.Series)):
        w = pd.Series(stance_ids).map(dict(body_weight)).to_numpy(dtype=float)
    elif np.ndim(body_weight) == 0:
        w = np.full(n, float(body_weight))
    else:
        w = np.asarray(body_weight, dtype=float)
        if w.shape != (n,):
            raise GaitforceError(f"body_weight has shape {w.shape}, expected a scalar, ({n},) or a mapping")
    bad = np.isfinite(w) & (w <= 0)
    if bad.any():
        raise GaitforceError(f"body weight must be positive (N), got {w[bad][0]!r}")
    # a weight in N of a person of 15-500 kg lies in 147-4905 N; a value under 150 is most likely a mass in kg
    small, large = np.isfinite(w) & (w < BODY_WEIGHT_RANGE[0]), np.isfinite(w) & (w > BODY_WEIGHT_RANGE[1])
    if small.any():
        raise GaitforceError(f"body weight {w[small][0]:g} is below {BODY_WEIGHT_RANGE[0]:g} N: a mass in kg? "
                             f"give the weight in N (mass x 9.81)")
    if large.any():
        raise GaitforceError(f"body weight {w[large][0]:g} N is above {BODY_WEIGHT_RANGE[1]:g} N (500 kg)")
    return w


def per_trial_metrics(
    y_true,
    y_pred,
    stance_ids,
    *,
    body_weight=None,
    target_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Score each stance phase and target. One row per (stance, target), stances in first-seen order.

    Parameters
    ----------
    y_true, y_pred : (N,) or (N, K) arrays of frames, in the target's unit (N for forces).
    stance_ids : (N,) the stance of each frame.
    body_weight : body weight in **newtons** (mass x 9.81): a scalar, a per-frame (N,) array, or a mapping
        stance_id -> weight. Stances without one get NaN in the % body-weight columns.
    target_names : K names (default ``target_0`` ...). units : name -> unit (default "N"); the
        % body-weight columns are filled only for targets in N.

    Columns: ``stance_id, target, unit, n_frames, rmse, rmse_pct_bw, r, peak_true, peak_pred, peak_error,
    peak_error_pct_bw``. NaN rule: a frame where the reference or the prediction is NaN is left out of that
    target's metrics (``n_frames`` counts those used); a stance with no frame left gets NaN metrics.
    ``r`` is Pearson's r (:func:`pearson_r`: NaN for a constant signal). ``peak_error`` = max(pred) - max(true),
    signed (positive: the peak is over-predicted).
    """
    yt, yp = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    sid = np.asarray(stance_ids, dtype=object)
    if yt.shape != yp.shape or yt.shape[0] != sid.shape[0]:
        raise GaitforceError(f"shapes differ: y_true {yt.shape}, y_pred {yp.shape}, stance_ids {sid.shape}")
    k = yt.shape[1]
    names = [f"target_{i}" for i in range(k)] if target_names is None else list(target_names)
    if len(names) != k:
        raise GaitforceError(f"{len(names)} target names for {k} targets")
    units = dict(units or {})
    weights = _frame_weights(body_weight, sid)
    codes, uniques = pd.factorize(pd.Series(sid), sort=False)
    rows = []
    for s_idx, s in enumerate(uniques):
        idx = np.flatnonzero(codes == s_idx)
        w = weights[idx]
        bw = float(np.nanmean(w)) if np.isfinite(w).any() else float("nan")
        for j, name in enumerate(names):
            unit = units.get(name, "N")
            t, p = yt[idx, j], yp[idx, j]
            ok = np.isfinite(t) & np.isfinite(p)
            row = {"stance_id": s, "target": name, "unit": unit, "n_frames": int(ok.sum())}
            if ok.any():
                t, p = t[ok], p[ok]
                rmse = float(np.sqrt(np.mean((p - t) ** 2)))
                peak_t, peak_p = float(t.max()), float(p.max())
                row.update(rmse=rmse, r=pearson_r(t, p), peak_true=peak_t, peak_pred=peak_p,
                           peak_error=peak_p - peak_t)
            else:
                row.update(rmse=np.nan, r=np.nan, peak_true=np.nan, peak_pred=np.nan, peak_error=np.nan)
            scale = 100.0 / bw if unit == "N" else np.nan
            row["rmse_pct_bw"] = row["rmse"] * scale
            row["peak_error_pct_bw"] = row["peak_error"] * scale
            rows.append(row)
    cols = ["stance_id", "target", "unit", "n_frames", "rmse", "rmse_pct_bw", "r", "peak_true", "peak_pred",
            "peak_error", "peak_error_pct_bw"]
    return pd.DataFrame(rows, columns=cols)


def body_weights(stances: pd.DataFrame) -> dict:
    """stance_id -> body weight in N from the stance table's ``mass`` (kg) column (NaN masses skipped)."""
    if "mass" not in stances:
        return {}
    m = stances.set_index("stance_id")["mass"].astype(float)
    return (m[m.notna() & (m > 0)] * G).to_dict()


def with_stance_info(per_trial: pd.DataFrame, stances: pd.DataFrame, columns: Sequence[str] | None = None):
    """``per_trial`` with columns of the stance table (default: all but ``stance_id``) joined on stance_id."""
    cols = [c for c in (columns or stances.columns) if c != "stance_id" and c not in per_trial.columns]
    return per_trial.merge(stances[["stance_id", *cols]], on="stance_id", how="left")


