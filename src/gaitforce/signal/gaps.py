"""Gap filling of marker trajectories."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from gaitforce.signal.filters import _runs
from gaitforce.trial import Trial


# ---------------------------------------------------------------------------------------------------------
# gap filling
# ---------------------------------------------------------------------------------------------------------
def fill_gaps(trial: Trial, *, max_gap: float = 0.1) -> Trial:
    """Fill marker gaps of at most ``max_gap`` seconds by a cubic spline through the marker's seen frames.

    A gap is a run of frames where the marker is not seen (any coordinate NaN) with seen frames on both sides;
    its length is (missing frames) x (frame interval). Longer gaps, and gaps at the start or end of the
    trial (which would need extrapolation), are left NaN. The spline (``scipy.interpolate.CubicSpline``,
    not-a-knot) passes through every seen frame of that marker, so a cubic trajectory is filled exactly.
    The history records how many gaps were filled and left.
    """
    if trial.n_frames < 2 or not trial.marker_names:
        return trial.replace(note=f"fill_gaps(max_gap={max_gap:g} s): no markers")
    max_frames = int(np.floor(max_gap * trial.rate + 1e-9))
    markers = np.array(trial.markers)
    filled = filled_frames = left = edge = 0
    for j in range(markers.shape[1]):
        seen = np.isfinite(markers[:, j, :]).all(axis=1)
        if seen.all() or seen.sum() < 2:
            edge += int(not seen.all())
            continue
        gaps = _runs(~seen)
        spline = None
        for a, b in gaps:
            if a == 0 or b == trial.n_frames:
                edge += 1
            elif b - a > max_frames:
                left += 1
            else:
                if spline is None:
                    spline = CubicSpline(trial.time[seen], markers[seen, j, :], axis=0)
                markers[a:b, j, :] = spline(trial.time[a:b])
                filled += 1
                filled_frames += b - a
    return trial.replace(
        markers=markers,
        note=f"fill_gaps(max_gap={max_gap:g} s): filled {filled} gaps ({filled_frames} frames) by cubic spline, "
        f"left {left} longer gaps and {edge} gaps at the trial edges",
    )


