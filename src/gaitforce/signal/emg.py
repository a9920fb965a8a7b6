"""EMG envelopes on the kinematic frames."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.ndimage import uniform_filter1d

from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.trial import Trial


# ---------------------------------------------------------------------------------------------------------
# EMG
# ---------------------------------------------------------------------------------------------------------
def emg_envelope(trial: Trial, *, window: float = 0.05, mvc: Mapping[str, float] | None = None) -> Trial:
    """EMG envelopes on the kinematic frames, as signals ``emg_<name>`` with unit "1".

    Per channel: subtract the mean (offset), full-wave rectify, moving RMS over ``window`` s centred on each
    sample (an odd number of samples, edges reflected), then divide by the within-trial maximum of the
    envelope, or by ``mvc[name]`` (the MVC envelope peak, in the raw unit) if given; finally interpolated
    linearly to the kinematic frames (NaN outside the EMG's time span). NaN samples are excluded from the
    offset and the RMS; where more than half of a window is NaN the envelope is NaN.
    """
    if not trial.emg_names or trial.emg.shape[0] < 2:
        raise MissingChannelError("no EMG in trial", source=trial.source)
    if mvc is not None:
        missing = [n for n in trial.emg_names if n not in mvc]
        if missing:
            raise MissingChannelError(f"no MVC value for EMG {', '.join(missing)}", source=trial.source)
        bad = [n for n in trial.emg_names if not (np.isfinite(mvc[n]) and mvc[n] > 0)]
        if bad:
            raise GaitforceError(f"MVC values must be positive: {', '.join(bad)}", source=trial.source)
    rate = trial.emg_rate
    n = max(1, int(round(window * rate)))
    n += 1 - n % 2  # odd, so the window is centred
    env = rms_envelope(trial.emg, n)
    out = {}
    for k, name in enumerate(trial.emg_names):
        e = env[:, k]
        scale = float(mvc[name]) if mvc is not None else np.nanmax(e) if np.isfinite(e).any() else np.nan
        if not (np.isfinite(scale) and scale > 0):
            raise GaitforceError(f"EMG {name} is flat or empty: cannot normalise", source=trial.source)
        y = np.interp(trial.time, trial.emg_time, e / scale, left=np.nan, right=np.nan)
        out[f"emg_{name}"] = (y, "1")
    norm = "MVC" if mvc is not None else "within-trial maximum"
    return trial.with_signals(
        note=f"emg_envelope: offset removed, rectified, centred moving RMS over {n} samples ({n / rate * 1000:.0f} ms), "
        f"normalised to the {norm}, resampled to the kinematic frames",
        **out,
    )


def rms_envelope(emg: np.ndarray, n: int) -> np.ndarray:
    """Offset-removed, rectified, centred moving RMS over ``n`` samples of each column of ``emg`` (T, K).

    Not normalised. NaN samples are skipped; windows more than half NaN give NaN.
    """
    x = np.asarray(emg, dtype=float)
    ok = np.isfinite(x)
    counts = ok.sum(axis=0)
    offset = np.where(ok, x, 0.0).sum(axis=0) / np.maximum(counts, 1)  # mean of the finite samples
    r = np.abs(np.where(ok, x - offset, 0.0))
    power = uniform_filter1d(r * r, n, axis=0, mode="reflect")
    share = uniform_filter1d(ok.astype(float), n, axis=0, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        env = np.sqrt(power / share)
    env[share <= 0.5] = np.nan
    return env
