"""Merging a ground-reaction trial onto the frames of a marker trial."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gaitforce.errors import InputFileError
from gaitforce.io.sto import COP_THRESHOLD_N
from gaitforce.trial import Trial


def _window_mean(t_src, values, edges):
    """Mean of ``values`` (N, ...) over samples with ``edges[i] <= t < edges[i+1]``; NaN for empty windows.

    NaN samples are left out of their window's mean. A sample within 1% of its spacing of an edge counts as on
    it (files print times with few decimals), so it opens the later window."""
    tol = 0.01 * float(np.median(np.diff(t_src))) if t_src.size > 1 else 0.0
    lo = np.searchsorted(t_src, edges[:-1] - tol, side="left")
    hi = np.searchsorted(t_src, edges[1:] - tol, side="left")
    flat = values.reshape(len(values), -1)
    ok = np.isfinite(flat)
    csum = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(np.where(ok, flat, 0.0), axis=0)])
    ccount = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(ok, axis=0)])
    total = csum[hi] - csum[lo]
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[count == 0] = np.nan
    return out.reshape((len(edges) - 1,) + values.shape[1:])


def _interp(t_src, values, t_dst):
    flat = values.reshape(len(values), -1)
    out = np.full((len(t_dst), flat.shape[1]), np.nan)
    inside = (t_dst >= t_src[0]) & (t_dst <= t_src[-1])
    for k in range(flat.shape[1]):
        out[inside, k] = np.interp(t_dst[inside], t_src, flat[:, k])
    return out.reshape((len(t_dst),) + values.shape[1:])


def _mean_rate(trial: Trial) -> float:
    """Samples per second over the whole record (robust to times printed with few decimals)."""
    return float((trial.n_frames - 1) / trial.duration)


def merge_grf(markers: Trial, grf: Trial, *, cop_threshold: float = COP_THRESHOLD_N) -> Trial:
    """``markers`` with the plates (and signals) of ``grf`` resampled onto its frames.

    Force rate above the marker rate: each frame gets the mean over its window ``[t - dt/2, t + dt/2)``
    (force and free moment plain means, CoP weighted by vertical force over the samples whose CoP is known).
    Otherwise linear interpolation.
    Frames the GRF does not cover are NaN; CoP is NaN where the frame's vertical force is below
    ``cop_threshold``.
    """
    if grf.up_axis != markers.up_axis:
        raise InputFileError(
            f"the marker file is {markers.up_axis.upper()}-up but the GRF file {Path(grf.source).name} is "
            f"{grf.up_axis.upper()}-up",
            source=markers.source,
        )
    t = markers.time
    tg = grf.time
    overlap = min(t[-1], tg[-1]) - max(t[0], tg[0])
    if overlap <= 0:
        raise InputFileError(
            f"the GRF file {Path(grf.source).name} ({tg[0]:.3f}-{tg[-1]:.3f} s) does not overlap the markers "
            f"({t[0]:.3f}-{t[-1]:.3f} s)",
            source=markers.source,
        )
    v = markers.vertical_index
    higher = _mean_rate(grf) > markers.rate * 1.01
    if higher:
        dt = 1.0 / markers.rate
        edges = np.concatenate([t - dt / 2, [t[-1] + dt / 2]])
        F = _window_mean(tg, grf.forces, edges)
        T = _window_mean(tg, grf.free_moment, edges)
        # weight = vertical force where the CoP is known: a sample whose CoP is NaN (below the threshold)
        # must not count in the denominator, or the frame's CoP is pulled towards the origin
        fv = np.clip(np.nan_to_num(grf.forces[:, :, v]), 0, None)
        fv = np.where(np.isfinite(grf.cop).all(axis=2), fv, 0.0)
        num = _window_mean(tg, np.nan_to_num(grf.cop) * fv[:, :, None], edges)
        den = _window_mean(tg, fv, edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            P = num / den[:, :, None]
        signals = {k: _window_mean(tg, val, edges) for k, val in grf.signals.items()}
        how = f"window mean {_mean_rate(grf):.0f} Hz -> {markers.rate:.0f} Hz"
    else:
        F = _interp(tg, grf.forces, t)
        T = _interp(tg, grf.free_moment, t)
        P = _interp(tg, grf.cop, t)
        signals = {k: _interp(tg, val, t) for k, val in grf.signals.items()}
        how = f"linear interpolation {_mean_rate(grf):.0f} Hz -> {markers.rate:.0f} Hz"
    P[~(F[:, :, v] >= cop_threshold)] = np.nan
    covered = float(np.mean(np.isfinite(F).all(axis=(1, 2)))) if F.size else 1.0
    meta = {
        **markers.meta,
        "grf_source": str(grf.source),
        "grf_rate": _mean_rate(grf),
        "grf_coverage": covered,
        "grf_meta": dict(grf.meta),
    }
    if "plate_sides" in grf.meta:
        meta["plate_sides"] = dict(grf.meta["plate_sides"])
    units = {**markers.units, **grf.units}
    return dataclasses.replace(
        markers,
        forces=F,
        cop=P,
        free_moment=T,
        plate_names=grf.plate_names,
        signals={**markers.signals, **signals},
        units=units,
        meta=meta,
        history=markers.history + tuple(grf.history) + (f"merge GRF {Path(grf.source).name}: {how}",),
    )


# ------------------------------------------------------------------------------------------------------
