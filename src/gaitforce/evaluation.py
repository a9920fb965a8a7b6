"""Evaluation: how stance phases are split into train / val / test, and how predictions are scored.

Everything here is a pure function: stance tables and arrays in, split dicts and DataFrames out. The unit of
evaluation is the stance phase (``stance_id``; the seed paper calls it a "trial").

Splits
------
Each splitter takes the stance table (:meth:`gaitforce.dataset.Dataset.stances`: one row per stance with
``stance_id``, ``subject`` and any group columns) and returns ``{"train": [...], "val": [...], "test": [...]}``
of stance ids, each list in the order of the stance table. The same ``seed`` gives the same split.

- :func:`subject_naive_split`: no subject appears in two sets (generalisation to new people).
- :func:`subject_exposed_split`: a random split of stances, then each held-out stance's subject is given at
  least one stance in training (the seed paper's "subject-exposed" setting).
- :func:`leave_one_group_out`: one split per value of a column (e.g. ``year``: the Grand Challenge setting),
  optionally dropping from training the stances an ``exclude`` predicate names (:func:`same_subject` gives
  the "strict" variant that also hides the test subject's other year).

Metrics
-------
:func:`per_trial_metrics` scores each stance and target: RMSE in the target's unit, RMSE in % body weight,
Pearson r and the error of the peak. :func:`summarise` turns those rows into "mean (std)" tables like the
seed's Tables 2-4.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import GaitforceError

#: Standard gravity (m s^-2): body weight (N) = mass (kg) x G.
G = 9.81

Split = dict[str, list]
SET_NAMES = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------
def _check_stances(stances: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in ["stance_id", *columns] if c not in stances.columns]
    if missing:
        raise GaitforceError(f"stance table lacks columns {missing} (has {list(stances.columns)})")
    if stances["stance_id"].duplicated().any():
        dup = stances.loc[stances["stance_id"].duplicated(), "stance_id"].iloc[0]
        raise GaitforceError(f"stance table lists stance {dup!r} twice")
    if len(stances) == 0:
        raise GaitforceError("no stances to split")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or f[0] <= 0:
        raise GaitforceError(
            f"fractions must be three non-negative numbers (train, val, test) with train > 0, got {fractions!r}"
        )
    return f / f.sum()


def _ordered(stances: pd.DataFrame, mask) -> list:
    """Stance ids where ``mask`` holds, in the order of the stance table."""
    return stances.loc[np.asarray(mask, dtype=bool), "stance_id"].tolist()


def _nearest_prefix(counts: np.ndarray, target: float, max_k: int) -> int:
    """The k in [1, max_k] whose first-k count sum is nearest ``target`` (ties: the smaller k)."""
    sums = np.cumsum(counts[:max_k])
    return int(np.argmin(np.abs(sums - target))) + 1


def subject_naive_split(
    stances: pd.DataFrame, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, column: str = "subject"
) -> Split:
    """Split stances so that no subject (or other ``column`` value) is in two sets.

    Rule, for few subjects as in the Grand Challenge (4 subjects):

    1. The subjects are sorted, then shuffled with ``numpy.random.default_rng(seed)``.
    2. Test takes the first k subjects of that order, k >= 1 chosen so that their stance count is nearest
       ``fractions[2] * n_stances`` (ties: fewer subjects), leaving enough subjects for the other sets.
    3. Val takes the next subjects by the same rule against ``fractions[1] * n_stances``.
    4. Train takes the rest (always at least one subject).

    A set whose fraction is 0 stays empty; every other set gets at least one subject, so at least
    1 + (val > 0) + (test > 0) subjects are needed, else :class:`GaitforceError`.
    """
    _check_stances(stances, [column])
    f = _check_fractions(fractions)
    subj = stances[column].astype(str)
    counts = subj.value_counts()
    names = np.array(sorted(counts.index))
    names = names[np.random.default_rng(seed).permutation(len(names))]
    n_counts = counts.reindex(names).to_numpy()
    needed = 1 + int(f[1] > 0) + int(f[2] > 0)
    if len(names) < needed:
        raise GaitforceError(
            f"a {column}-naive split with fractions {tuple(fractions)} needs at least {needed} distinct "
            f"{column} values, the data have {len(names)} ({', '.join(names)})"
        )
    n_total, pos = len(stances), 0
    chosen: dict[str, set] = {}
    for name, frac, reserve in (("test", f[2], 1 + int(f[1] > 0)), ("val", f[1], 1)):
        if frac == 0:
            chosen[name] = set()
            continue
        k = _nearest_prefix(n_counts[pos:], frac * n_total, len(names) - pos - reserve)
        chosen[name] = set(names[pos : pos + k])
        pos += k
    chosen["train"] = set(names[pos:])
    return {s: _ordered(stances, subj.isin(chosen[s])) for s in SET_NAMES}


def subject_exposed_split(
    stances: pd.DataFrame, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, column: str = "subject"
) -> Split:
    """A random split of stances in which every held-out stance's subject also has a stance in training.

    Rule:

    1. The stances are shuffled with ``numpy.random.default_rng(seed)``; the first ``round(fractions[2] * n)``
       go to test, the next ``round(fractions[1] * n)`` to val, the rest to train.
    2. For each subject with no stance in train, its held-out stance that came first in the shuffle is moved
       to train. One moved stance is enough: afterwards every val and test stance has at least one stance of
       the same subject in training. (A subject with a single stance therefore always trains.)

    Test and val may so end up smaller than asked; a split whose test set ends empty raises
    :class:`GaitforceError` (too few stances per subject).
    """
    _check_stances(stances, [column])
    f = _check_fractions(fractions)
    n = len(stances)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(f[2] * n)), int(round(f[1] * n))
    label = np.full(n, "train", dtype=object)
    label[order[:n_test]] = "test"
    label[order[n_test : n_test + n_val]] = "val"
    subj = stances[column].astype(str).to_numpy()
    trained = set(subj[label == "train"])
    for i in order:  # shuffle order: the first held-out stance of an untrained subject moves
        if label[i] != "train" and subj[i] not in trained:
            label[i] = "train"
            trained.add(subj[i])
    if n_test > 0 and not np.any(label == "test"):
        raise GaitforceError("subject-exposed split left no test stance: each subject needs at least two stances")
    return {s: _ordered(stances, label == s) for s in SET_NAMES}


def same_subject(pool: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """``exclude`` predicate for :func:`leave_one_group_out`: the pool's stances of the test subjects.

    With ``column="year"`` on the Grand Challenge this is the "strict" variant: predicting DM's 2011 trials,
    DM's 2015 trials are left out of training too.
    """
    return pool["subject"].isin(set(test["subject"])).to_numpy()


def leave_one_group_out(
    stances: pd.DataFrame,
    column: str,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    exclude: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray] | None = None,
) -> dict[str, Split]:
    """One split per value of ``column``: that value's stances are the test set.

    Returns ``{str(value): {"train", "val", "test"}}`` in sorted order of the values. For each value:

    - test: the stances whose ``column`` equals it;
    - the pool: all other stances, less those ``exclude(pool, test)`` marks True (a boolean array over the
      pool's rows; e.g. :func:`same_subject`);
    - val: ``round(val_fraction * len(pool))`` stances of the pool drawn at random (at least one when
      ``val_fraction > 0`` and the pool has two or more), train the rest.

    Stances with a missing ``column`` value are never tested; they stay in the pools. The random draws use one
    ``numpy.random.default_rng(seed)`` in fold order, so the same seed gives the same folds.
    """
    _check_stances(stances, [column])
    if not 0 <= val_fraction < 1:
        raise GaitforceError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    values = stances[column]
    groups = sorted(values.dropna().unique(), key=str)
    if len(groups) < 2:
        raise GaitforceError(f"leave-one-{column}-out needs at least two {column} values, found {len(groups)}")
    rng = np.random.default_rng(seed)
    folds: dict[str, Split] = {}
    for g in groups:
        is_test = (values == g).to_numpy()
        pool = stances[~is_test]
        keep = np.ones(len(pool), dtype=bool)
        if exclude is not None:
            keep = ~np.asarray(exclude(pool, stances[is_test]), dtype=bool)
        pool = pool[keep]
        if len(pool) == 0:
            raise GaitforceError(f"leaving out {column}={g!r} leaves no stance to train on")
        n_val = int(round(val_fraction * len(pool)))
        if val_fraction > 0 and len(pool) >= 2:
            n_val = min(max(n_val, 1), len(pool) - 1)
        val_ids = set(pool["stance_id"].to_numpy()[rng.permutation(len(pool))[:n_val]])
        ids = stances["stance_id"]
        folds[str(g)] = {
            "train": _ordered(stances, ids.isin(set(pool["stance_id"]) - val_ids)),
            "val": _ordered(stances, ids.isin(val_ids)),
            "test": _ordered(stances, is_test),
        }
    return folds


def _scheme_naive(stances, seed):
    return {"subject-naive": subject_naive_split(stances, seed=seed)}


def _scheme_exposed(stances, seed):
    return {"subject-exposed": subject_exposed_split(stances, seed=seed)}


def _scheme_logo(column, exclude=None):
    def scheme(stances, seed):
        folds = leave_one_group_out(stances, column, seed=seed, exclude=exclude)
        return {f"{column}={k}": v for k, v in folds.items()}

    return scheme


#: Named split schemes for the CLI: name -> f(stances, seed) -> {fold name: split}.
SCHEMES: dict[str, Callable[[pd.DataFrame, int], dict[str, Split]]] = {
    "subject-naive": _scheme_naive,
    "subject-exposed": _scheme_exposed,
    "leave-subject-out": _scheme_logo("subject"),
    "leave-year-out": _scheme_logo("year"),
    "leave-year-out-strict": _scheme_logo("year", exclude=same_subject),
}


def make_splits(scheme: str, stances: pd.DataFrame, *, seed: int = 0) -> dict[str, Split]:
    """The folds of a named split scheme (see :data:`SCHEMES`): {fold name: split}."""
    try:
        fn = SCHEMES[scheme]
    except KeyError:
        raise GaitforceError(f"unknown split {scheme!r} (known: {', '.join(SCHEMES)})") from None
    return fn(stances, seed)


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

    With ``formatted=True`` (default) each cell reads like the seed's Tables 2-4, "216 (88)": mean and
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
