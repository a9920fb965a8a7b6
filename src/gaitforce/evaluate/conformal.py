"""Split-conformal intervals from an ensemble's spread: calibration and coverage as pure functions.

An ensemble of ``K`` networks gives per frame a mean ``m`` and a spread ``s`` (the members' SD). On calibration
frames never trained on (validation stances), the **normalised conformity score** of a frame is
``|y - m| / (s + eps)`` (Lei et al. 2018, JASA 113:1094; Romano et al. 2019's normalised variant), ``eps`` a small
positive floor in the target's unit so a frame where the members agree still gets a finite score. With the
score quantile ``q`` at level ``1 - alpha`` the frame's interval is ``m +- q x (s + eps)``.

**Finite-sample level.** With ``n`` exchangeable calibration scores, ``q`` is the ``ceil((n + 1)(1 - alpha))``-th
smallest score (level ``ceil((n+1)(1-alpha))/n`` of the empirical distribution); a new exchangeable point is then
covered with probability in ``[1 - alpha, 1 - alpha + 1/(n + 1))`` (continuous scores). When
``ceil((n + 1)(1 - alpha)) > n`` no finite ``q`` has the guarantee and the quantile is ``inf``.

**Frames are not exchangeable, stances are.** The frames of one stance share a subject, a session and the
network's error at neighbouring instants, so the ``n`` of a frame-pooled quantile overstates the evidence.
With ``groups`` (the stance id of each frame) the quantile is the stance-weighted one: every calibration stance
``i`` of ``m_i`` frames carries weight ``1 / (n + 1)`` spread over its frames (``1 / (m_i (n + 1))`` each, ``n`` the
number of stances) and ``q`` is the smallest score whose cumulative weight reaches ``1 - alpha``. If the ``n``
calibration stances and a test stance are exchangeable, the expected **fraction of the test stance's frames**
inside its interval is then at least ``1 - alpha`` (symmetry argument: the same rule over all ``n + 1`` stances
gives a smaller ``q``, and by exchangeability its average coverage is at least ``1 - alpha``). With one frame per
stance it is exactly the level above. The guarantee is on the per-stance frame fraction in expectation, not
per frame of a given stance.

:func:`interval_coverage` measures on test frames the fraction inside the interval (pooled over frames, and the
mean of the per-stance fractions) and the interval width.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from gaitforce.errors import GaitforceError

#: the interval's miscoverage rate: 90 % intervals
ALPHA = 0.1
#: ``eps`` of the normalised score as a fraction of the target's training SD (fixed before any data was seen;
#: it only keeps a frame where the members agree exactly from scoring infinity)
EPS_FRACTION = 0.01


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise GaitforceError(f"alpha must be between 0 and 1, got {alpha!r}")
    return float(alpha)


def conformal_rank(n: int, alpha: float = ALPHA) -> int:
    """The rank ``ceil((n + 1)(1 - alpha))`` of the split-conformal quantile among ``n`` scores (may exceed
    ``n``: then no finite quantile has the guarantee). Rounded against float noise: (9+1) x 0.9 is 9, not 10."""
    alpha = _check_alpha(alpha)
    return int(math.ceil(round((n + 1) * (1.0 - alpha), 9)))


def conformal_level(n: int, alpha: float = ALPHA) -> float:
    """The finite-sample level ``ceil((n + 1)(1 - alpha)) / n`` (``inf`` when above 1 or ``n`` is 0)."""
    if n <= 0:
        return math.inf
    r = conformal_rank(n, alpha)
    return r / n if r <= n else math.inf


def min_calibration(alpha: float = ALPHA) -> int:
    """The fewest calibration scores (or stances) with a finite quantile: the smallest n with
    ``ceil((n + 1)(1 - alpha)) <= n`` (9 for alpha 0.1)."""
    n = 1
    while conformal_rank(n, alpha) > n:
        n += 1
    return n


def normalised_scores(y, mean, spread, eps) -> np.ndarray:
    """``|y - mean| / (spread + eps)``, elementwise (broadcast; ``eps`` > 0 per target or one value)."""
    eps = np.asarray(eps, dtype=np.float64)
    if not (np.all(np.isfinite(eps)) and np.all(eps > 0)):
        raise GaitforceError(f"eps must be positive and finite, got {eps}")
    spread = np.asarray(spread, dtype=np.float64)
    if np.any(spread[np.isfinite(spread)] < 0):
        raise GaitforceError("spread must not be negative")
    return np.abs(np.asarray(y, np.float64) - np.asarray(mean, np.float64)) / (spread + eps)


def conformal_quantile(scores, alpha: float = ALPHA, groups: Sequence | None = None) -> float:
    """The split-conformal quantile of calibration ``scores`` (1-D; non-finite ones are left out).

    Without ``groups``: the ``ceil((n + 1)(1 - alpha))``-th smallest of the ``n`` scores, ``inf`` when that rank
    exceeds ``n``. With ``groups`` (one label per score, e.g. the stance id): the stance-weighted quantile of the
    module docstring (a group's frames share its weight ``1 / (n_groups + 1)``); equal to the plain rule when
    every group holds one score."""
    alpha = _check_alpha(alpha)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if groups is None:
        s = np.sort(s[np.isfinite(s)])
        r = conformal_rank(len(s), alpha)
        return float(s[r - 1]) if 0 < r <= len(s) else math.inf
    g = np.asarray(groups).ravel()
    if len(g) != len(s):
        raise GaitforceError(f"groups has {len(g)} labels for {len(s)} scores")
    ok = np.isfinite(s)
    s, g = s[ok], g[ok]
    if not len(s):
        return math.inf
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    n = len(counts)
    w = 1.0 / (counts[inv] * (n + 1.0))
    order = np.argsort(s, kind="stable")
    s, w = s[order], w[order]
    cum = np.cumsum(w)
    # a tie shares one cumulative weight: the quantile is a score value whose weight at or below it reaches 1-alpha
    last_of_value = np.r_[s[1:] != s[:-1], True]
    need = 1.0 - alpha - 1e-12
    hit = np.flatnonzero(last_of_value & (cum >= need))
    return float(s[hit[0]]) if len(hit) else math.inf


def interval(mean, spread, q, eps) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) = ``mean -+ q x (spread + eps)`` (broadcast per target); NaN where mean or spread is NaN or q
    is not finite."""
    mean = np.asarray(mean, np.float64)
    q = np.asarray(q, np.float64)
    half = np.where(np.isfinite(q), q, np.nan) * (np.asarray(spread, np.float64) + np.asarray(eps, np.float64))
    return mean - half, mean + half


def interval_coverage(y, lo, hi, groups: Sequence | None = None) -> dict[str, Any]:
    """How often ``lo <= y <= hi`` over frames with finite y, lo and hi (1-D arrays).

    Returns ``coverage`` (fraction of frames), ``width`` (mean of ``hi - lo``), ``n_frames`` and, with ``groups``,
    ``stance_coverage`` (the mean over groups of each group's fraction: every stance weighs the same, the
    quantity the stance-weighted calibration targets), ``stance_coverage_min`` and ``n_stances``."""
    y, lo, hi = (np.asarray(v, np.float64).ravel() for v in (y, lo, hi))
    if not (len(y) == len(lo) == len(hi)):
        raise GaitforceError(f"y, lo and hi differ in length ({len(y)}, {len(lo)}, {len(hi)})")
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    inside = (lo[ok] <= y[ok]) & (y[ok] <= hi[ok])
    out: dict[str, Any] = {"coverage": float(inside.mean()) if ok.any() else math.nan,
                           "width": float(np.mean(hi[ok] - lo[ok])) if ok.any() else math.nan,
                           "n_frames": int(ok.sum())}
    if groups is not None:
        g = np.asarray(groups).ravel()
        if len(g) != len(y):
            raise GaitforceError(f"groups has {len(g)} labels for {len(y)} frames")
        g = g[ok]
        labels, inv = np.unique(g, return_inverse=True)
        per = np.bincount(inv, weights=inside.astype(float), minlength=len(labels)) / np.bincount(inv)
        out.update(stance_coverage=float(per.mean()) if len(per) else math.nan,
                   stance_coverage_min=float(per.min()) if len(per) else math.nan, n_stances=int(len(labels)))
    return out


def calibrate(y, mean, spread, eps, groups: Sequence | None, alpha: float = ALPHA) -> list[float]:
    """Per target (columns of the (N, K) arrays): the conformal quantile of the normalised scores (grouped by
    ``groups`` when given)."""
    y, mean, spread = (np.asarray(v, np.float64).reshape(len(v), -1) for v in (y, mean, spread))
    eps = np.broadcast_to(np.asarray(eps, np.float64), (y.shape[1],))
    return [conformal_quantile(normalised_scores(y[:, k], mean[:, k], spread[:, k], eps[k]), alpha, groups)
            for k in range(y.shape[1])]


def calibration_entry(q: Sequence[float], eps: Sequence[float], targets: Sequence[str], *, alpha: float,
                      n_stances: int, n_frames: int, on: str = "validation") -> dict[str, Any]:
    """The ``uncertainty`` entry of ``bundle.json``: q and eps per target (q ``None`` when not finite: too
    few calibration stances for the level), alpha, the level and what calibrated it."""
    return {"method": "split-conformal, normalised scores |y - mean| / (spread + eps), stance-weighted quantile",
            "alpha": float(alpha), "level": float(1 - alpha),
            "targets": {t: {"q": float(v) if math.isfinite(v) else None, "eps": float(e)}
                        for t, v, e in zip(targets, q, eps)},
            "calibration": {"set": on, "stances": int(n_stances), "frames": int(n_frames), "grouping": "stance"}}


def interval_params(entry: Mapping[str, Any], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(q, eps) per target from a bundle's ``uncertainty`` entry (q NaN where the entry has none)."""
    per = entry.get("targets", {})
    q = np.array([np.nan if per.get(t, {}).get("q") is None else float(per[t]["q"]) for t in targets])
    eps = np.array([float(per.get(t, {}).get("eps", np.nan)) for t in targets])
    return q, eps


# -- the score's scale: constant, normalised by the spread (additive c) or by the predicted magnitude -----------

#: the score families :func:`score_scale` knows: ``constant`` (|y - m|: a constant-width interval),
#: ``normalised`` (|y - m| / (s + c): the members' spread s plus an additive c), ``magnitude``
#: (|y - m| / (|m| + c): locally adaptive to the predicted force, errors scale with force)
SCORE_KINDS = ("constant", "normalised", "magnitude")
#: the additive ``c`` tried for ``normalised`` (x the calibration frames' median spread) and ``magnitude``
#: (x their median |mean|); fixed before any data was seen. ``normalised`` also tries ``eps`` (the plain score)
SPREAD_C_FACTORS = (0.5, 1.0, 2.0, 4.0)
MAGNITUDE_C_FACTORS = (0.1, 0.25, 0.5, 1.0)


def score_scale(mean, spread, kind: str, c: float) -> np.ndarray:
    """The per-frame scale ``d`` of the score ``|y - m| / d`` and of the interval ``m +- q d``: 1 (``constant``),
    ``spread + c`` (``normalised``) or ``|mean| + c`` (``magnitude``); ``c`` > 0 in the target's unit (ignored
    by ``constant``)."""
    mean = np.asarray(mean, np.float64)
    if kind == "constant":
        return np.ones_like(mean)
    if not (np.isfinite(c) and c > 0):
        raise GaitforceError(f"c must be positive and finite, got {c!r}")
    if kind == "normalised":
        spread = np.asarray(spread, np.float64)
        if np.any(spread[np.isfinite(spread)] < 0):
            raise GaitforceError("spread must not be negative")
        return spread + float(c)
    if kind == "magnitude":
        return np.abs(mean) + float(c)
    raise GaitforceError(f"unknown score kind {kind!r} (known: {', '.join(SCORE_KINDS)})")


def scaled_scores(y, mean, spread, kind: str, c: float) -> np.ndarray:
    """``|y - mean| / score_scale(mean, spread, kind, c)``."""
    return np.abs(np.asarray(y, np.float64) - np.asarray(mean, np.float64)) / score_scale(mean, spread, kind, c)


def scaled_interval(mean, spread, q: float, kind: str, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) = ``mean -+ q x score_scale(...)`` (NaN where q is not finite)."""
    half = (q if np.isfinite(q) else np.nan) * score_scale(mean, spread, kind, c)
    mean = np.asarray(mean, np.float64)
    return mean - half, mean + half


def score_candidates(mean, spread, eps: float) -> list[dict[str, Any]]:
    """The candidate scores, their ``c`` set from calibration predictions only (never their targets):
    ``constant``; ``normalised`` with ``c`` = ``eps`` and :data:`SPREAD_C_FACTORS` x the median spread;
    ``magnitude`` with :data:`MAGNITUDE_C_FACTORS` x the median |mean|. Each: ``kind``, ``c``, ``name``."""
    mean, spread = np.asarray(mean, np.float64), np.asarray(spread, np.float64)
    ms = float(np.nanmedian(spread)) if np.isfinite(spread).any() else 0.0
    mm = float(np.nanmedian(np.abs(mean))) if np.isfinite(mean).any() else 0.0
    out = [{"kind": "constant", "c": 0.0, "name": "constant"},
           {"kind": "normalised", "c": float(eps), "name": "normalised, c = eps"}]
    out += [{"kind": "normalised", "c": f * ms, "name": f"normalised, c = {f:g} x median spread"}
            for f in SPREAD_C_FACTORS if f * ms > 0]
    out += [{"kind": "magnitude", "c": f * mm, "name": f"magnitude, c = {f:g} x median |mean|"}
            for f in MAGNITUDE_C_FACTORS if f * mm > 0]
    return out


def interval_score(y, lo, hi, alpha: float = ALPHA) -> np.ndarray:
    """Per frame the interval score of a central ``1 - alpha`` interval (Gneiting & Raftery 2007, JASA 102:359,
    eq. 43): ``(hi - lo) + (2 / alpha) (lo - y) [y < lo] + (2 / alpha) (y - hi) [y > hi]``: the width plus a
    penalty for each miss, lower is better, minimised in expectation by the true alpha/2 and 1-alpha/2
    quantiles."""
    alpha = _check_alpha(alpha)
    y, lo, hi = (np.asarray(v, np.float64) for v in (y, lo, hi))
    return (hi - lo) + (2.0 / alpha) * (np.maximum(lo - y, 0.0) + np.maximum(y - hi, 0.0))


def choose_score(y, mean, spread, groups, folds, candidates: Sequence[Mapping[str, Any]],
                 alpha: float = ALPHA) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose the score on calibration predictions only, by leave-one-fold-out over ``folds`` (e.g. the
    calibration year of each frame): for every candidate and held-out fold, ``q`` is the stance-weighted
    quantile (``groups``) of the other folds' scores and the held-out fold's frames get the interval; the
    criterion is the mean over folds of the fold's mean :func:`interval_score` (each fold weighs the same).
    Returns (the chosen candidate, one row per candidate with ``interval_score``, ``coverage``, ``width``);
    ties go to the earlier candidate (the constant width first)."""
    y, mean, spread = (np.asarray(v, np.float64).ravel() for v in (y, mean, spread))
    groups, folds = np.asarray(groups).ravel(), np.asarray(folds).ravel()
    if not (len(y) == len(mean) == len(spread) == len(groups) == len(folds)):
        raise GaitforceError("y, mean, spread, groups and folds must have one entry per frame")
    labels = list(dict.fromkeys(folds.tolist()))
    if len(labels) < 2:
        raise GaitforceError(f"choosing a score needs at least 2 calibration folds, got {len(labels)}")
    rows = []
    for cand in candidates:
        kind, c = cand["kind"], float(cand["c"])
        s = scaled_scores(y, mean, spread, kind, c)
        per_score, per_cov, per_width = [], [], []
        for f in labels:
            held = folds == f
            q = conformal_quantile(s[~held], alpha, groups[~held])
            lo, hi = scaled_interval(mean[held], spread[held], q, kind, c)
            ok = np.isfinite(lo) & np.isfinite(y[held])
            if not ok.any():
                per_score.append(math.inf)
                per_cov.append(math.nan)
                per_width.append(math.inf)
                continue
            yy, ll, hh = y[held][ok], lo[ok], hi[ok]
            per_score.append(float(np.mean(interval_score(yy, ll, hh, alpha))))
            per_cov.append(float(np.mean((ll <= yy) & (yy <= hh))))
            per_width.append(float(np.mean(hh - ll)))
        rows.append({**cand, "interval_score": float(np.mean(per_score)), "coverage": float(np.nanmean(per_cov))
                     if np.isfinite(per_cov).any() else math.nan, "width": float(np.mean(per_width))})
    best = min(range(len(rows)), key=lambda i: (rows[i]["interval_score"], i))
    return dict(candidates[best]), rows


def matched_constant_width(y, mean, coverage: float) -> float:
    """The narrowest constant width ``2 w`` whose interval ``mean +- w`` covers at least ``coverage`` of the
    frames (finite ones): ``w`` the ``ceil(coverage x n)``-th smallest ``|y - mean|``. An evaluation yardstick
    (it looks at the frames it is measured on): a scaled interval is informative when it is narrower than the
    constant width at the coverage it reached."""
    r = np.abs(np.asarray(y, np.float64) - np.asarray(mean, np.float64)).ravel()
    r = np.sort(r[np.isfinite(r)])
    if not len(r) or not (0 <= coverage <= 1):
        return math.nan
    k = int(math.ceil(round(coverage * len(r), 9)))
    return 0.0 if k == 0 else float(2 * r[k - 1])


def _weighted_upper(values: np.ndarray, w: np.ndarray, level: float) -> np.ndarray:
    """Row-wise: the smallest value whose cumulative weight (ascending) reaches ``level``; inf when none."""
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(w[order], axis=1)
    hit = cum >= level - 1e-12
    idx = hit.argmax(axis=1)
    out = v[np.arange(len(v)), idx]
    return np.where(hit.any(axis=1), out, np.inf)


def cv_plus_interval(pred_test, member_of_residual, residuals, groups, alpha: float = ALPHA
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The CV+ interval (Barber et al. 2021, Ann Stat 49:486, section 4, K-fold CV+), stance-weighted.

    ``pred_test`` (M, N): each of M fold models' prediction for N test frames; ``member_of_residual`` (n,):
    which fold model left out calibration frame i (0..M-1); ``residuals`` (n,): ``|y_i - mu_{-k(i)}(x_i)|``,
    the frame's out-of-fold residual; ``groups`` (n,): the stance of each calibration frame (every stance
    weighs ``1 / (n_stances + 1)``, spread over its frames, as :func:`conformal_quantile`). Per test frame:
    ``hi`` the smallest ``mu_{-k(i)}(x) + R_i`` whose weight reaches ``1 - alpha``, ``lo`` the same rule on
    ``-(mu_{-k(i)}(x) - R_i)``, negated. With one frame per stance this is CV+'s
    ``ceil((1-alpha)(n+1))``-th value. Guarantee (i.i.d. units, folds a partition fixed independently of the
    data): coverage at least ``1 - 2 alpha - sqrt(2/n)``, and ``1 - 2 alpha`` for jackknife+ (one unit per
    fold)."""
    pred = np.asarray(pred_test, np.float64)
    if pred.ndim == 1:
        pred = pred[None, :]
    k = np.asarray(member_of_residual).ravel().astype(int)
    r = np.asarray(residuals, np.float64).ravel()
    g = np.asarray(groups).ravel()
    if not (len(k) == len(r) == len(g)):
        raise GaitforceError("member_of_residual, residuals and groups must have one entry per calibration frame")
    if len(k) and (k.min() < 0 or k.max() >= pred.shape[0]):
        raise GaitforceError(f"member_of_residual must index the {pred.shape[0]} fold models")
    ok = np.isfinite(r)
    k, r, g = k[ok], r[ok], g[ok]
    alpha = _check_alpha(alpha)
    if not len(r):
        nan = np.full(pred.shape[1], np.nan)
        return nan, nan.copy()
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    w = 1.0 / (counts[inv] * (len(counts) + 1.0))
    mu = pred[k, :].T  # (N, n): mu_{-k(i)}(x) per test frame and calibration frame
    hi = _weighted_upper(mu + r[None, :], w, 1.0 - alpha)
    lo = -_weighted_upper(-(mu - r[None, :]), w, 1.0 - alpha)
    return lo, hi


__all__ = ["ALPHA", "EPS_FRACTION", "conformal_rank", "conformal_level", "min_calibration", "normalised_scores", "conformal_quantile",
           "interval", "interval_coverage", "calibrate", "calibration_entry", "interval_params", "SCORE_KINDS",
           "SPREAD_C_FACTORS", "MAGNITUDE_C_FACTORS", "score_scale", "scaled_scores", "scaled_interval",
           "score_candidates", "interval_score", "choose_score", "matched_constant_width", "cv_plus_interval"]
