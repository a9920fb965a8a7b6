"""Low-pass filters: zero-lag (offline) and causal (streaming) Butterworth, NaN-aware.

    ``order`` is the order of the *effective* forward-backward filter, as gait papers mean it ("4th-order
    zero-lag Butterworth"): a filter of order ``order // 2`` is designed and run forward then backward, which
    doubles the order and squares the gain. Squaring the gain would move the -3 dB point below the design
    cutoff, so the design cutoff is raised (Winter's correction, exact here for the bilinear transform) so
    that the *effective* filter's gain at ``cutoff`` is 1/sqrt(2) (-3 dB). ``order`` must therefore be even.
    :class:`CausalLowpass` is the streaming counterpart: a causal Butterworth of order ``order`` (single pass,
    so -3 dB at ``cutoff`` by construction), carried state, for live data.

NaN rules
    ``lowpass`` never filters across a gap: each finite run of a channel is filtered on its own and NaN stays
    NaN (run :func:`fill_gaps` first to bridge short marker gaps). Runs of fewer than
    :data:`MIN_RUN_FRAMES` frames are left unfiltered (too short to filter). The centre of pressure is filtered
    only where its plate is loaded (raw vertical force above :data:`COP_LOAD_THRESHOLD` N); unloaded CoP values
    are left as they are. EMG (``trial.emg`` and ``emg_*`` signals) is not low-passed: use :func:`emg_envelope`.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import signal as sps

from gaitforce.constants import COP_THRESHOLD_N
from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.trial import Trial

#: Finite runs shorter than this are left unfiltered by :func:`lowpass`.
MIN_RUN_FRAMES = 4
#: Vertical force (N) above which a plate's CoP is treated as defined when filtering.
COP_LOAD_THRESHOLD = COP_THRESHOLD_N
#: Largest relative spread of frame intervals accepted as uniform sampling by the filters.
UNIFORM_TOLERANCE = 0.01

# ---------------------------------------------------------------------------------------------------------
# zero-lag low-pass
# ---------------------------------------------------------------------------------------------------------
def zero_lag_sos(*, cutoff: float, order: int, rate: float) -> np.ndarray:
    """Second-order sections of the one-pass filter that, run forward and backward, is a Butterworth-like
    low-pass of effective order ``order`` with its -3 dB point exactly at ``cutoff`` Hz.

    The design order is ``order // 2``; the design cutoff ``f_d`` satisfies
    ``tan(pi f_d / rate) = tan(pi cutoff / rate) / (sqrt(2) - 1) ** (1 / (2 * (order // 2)))`` so that the
    squared (two-pass) gain ``1 / (1 + (tan(pi f / rate) / tan(pi f_d / rate)) ** (2 n))`` equals
    ``1 / sqrt(2)`` at ``f = cutoff``.
    """
    order = int(order)
    if order < 2 or order % 2:
        raise GaitforceError(
            f"lowpass order {order} must be even and >= 2: it is the effective order of the forward-backward "
            "filter (a filter of order/2 run twice)"
        )
    _check_cutoff(cutoff, rate)
    n = order // 2
    correction = (np.sqrt(2.0) - 1.0) ** (1.0 / (2 * n))
    design = rate / np.pi * np.arctan(np.tan(np.pi * cutoff / rate) / correction)
    return sps.butter(n, design, btype="low", fs=rate, output="sos")


def _check_cutoff(cutoff: float, rate: float) -> None:
    if not (0 < cutoff < rate / 2):
        raise GaitforceError(f"low-pass cutoff {cutoff} Hz must lie between 0 and the Nyquist rate {rate / 2:g} Hz")


def _check_uniform(trial: Trial) -> float:
    rate = trial.rate
    dt = np.diff(trial.time)
    if dt.size and np.ptp(dt) > UNIFORM_TOLERANCE / rate:
        raise GaitforceError(
            "frames are not evenly spaced (intervals vary by "
            f"{100 * np.ptp(dt) * rate:.1f}%): resample before filtering",
            source=trial.source,
        )
    return rate


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Start/stop (exclusive) of each run of True in a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _filtfilt_run(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sosfiltfilt along axis 0 of one finite run, the padding shortened for short runs."""
    if x.shape[0] < MIN_RUN_FRAMES:
        return x
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    return sps.sosfiltfilt(sos, x, axis=0, padlen=min(default_pad, x.shape[0] - 1))


def _filter_columns(sos: np.ndarray, x: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Zero-lag filter every column of ``x`` (T, ...) along time, each finite run (and ``where`` run) apart."""
    shape = x.shape
    flat = np.array(x, dtype=float).reshape(shape[0], -1)
    ok = np.isfinite(flat)
    if where is not None:
        ok &= np.asarray(where, bool).reshape(shape[0], -1) if where.ndim > 1 else where[:, None]
    out = flat.copy()
    whole = ok.all(axis=0)
    if whole.any():
        out[:, whole] = _filtfilt_run(sos, flat[:, whole])
    for j in np.flatnonzero(~whole):
        for a, b in _runs(ok[:, j]):
            out[a:b, j] = _filtfilt_run(sos, flat[a:b, j])
    return out.reshape(shape)


def lowpass(trial: Trial, *, cutoff: float = 10.0, order: int = 4, signals: Iterable[str] | None = None) -> Trial:
    """Zero-lag Butterworth low-pass of markers, forces, CoP, free moment and per-frame signals.

    ``order`` is the effective order of the forward-backward filter and ``cutoff`` its -3 dB point (see the
    module docstring and :func:`zero_lag_sos`). ``signals`` names the signals to filter; by default every
    signal except EMG envelopes (``emg_*``). Gaps (NaN) are never filtered across; CoP only where loaded.
    """
    if trial.n_frames < 2:
        return trial
    rate = _check_uniform(trial)
    sos = zero_lag_sos(cutoff=cutoff, order=order, rate=rate)
    names = [k for k in trial.signals if not k.startswith("emg_")] if signals is None else list(signals)
    missing = [k for k in names if k not in trial.signals]
    if missing:
        raise MissingChannelError(f"signals to filter not in trial: {', '.join(missing)}", source=trial.source)
    new_signals = dict(trial.signals)
    for key in names:
        new_signals[key] = _filter_columns(sos, trial.signals[key])
    loaded = trial.forces[:, :, trial.vertical_index] > COP_LOAD_THRESHOLD  # (T, P)
    cop_where = np.repeat(loaded[:, :, None], 3, axis=2)
    return trial.replace(
        markers=_filter_columns(sos, trial.markers),
        forces=_filter_columns(sos, trial.forces),
        cop=_filter_columns(sos, trial.cop, cop_where),
        free_moment=_filter_columns(sos, trial.free_moment),
        signals=new_signals,
        note=f"lowpass: zero-lag Butterworth, effective order {order}, -3 dB at {cutoff:g} Hz "
        f"(order {order // 2} run forward and backward, cutoff corrected); NaN runs and unloaded CoP not filtered",
    )


def lowpass_causal(trial: Trial, *, cutoff: float = 10.0, order: int = 4) -> Trial:
    """The streaming filter applied offline: a causal Butterworth (:class:`CausalLowpass`, single pass of
    ``order``, -3 dB at ``cutoff``) of markers, forces and free moment from the trial's first frame, and of each
    plate's CoP restarted at the start of each run where that plate carries more than
    :data:`COP_LOAD_THRESHOLD` N and fed only in it (CoP elsewhere as it was), as the online pipeline does. A NaN
    sample holds the channel's last output (the stream's rule). Per-frame signals are not filtered.

    Features from a trial filtered so lag the motion exactly as the online features do (~2.6 / (2 pi cutoff) s,
    ~42 ms at 10 Hz, order 4), so a model trained on them sees online what it saw in training."""
    if trial.n_frames < 2:
        return trial
    rate = _check_uniform(trial)

    def run(block: np.ndarray) -> np.ndarray:
        flat = np.asarray(block, float).reshape(len(block), -1)
        if flat.shape[1] == 0:
            return np.asarray(block, float)
        return CausalLowpass(flat.shape[1], rate=rate, cutoff=cutoff, order=order).process(flat).reshape(block.shape)

    cop = np.array(trial.cop, dtype=float)
    loaded = trial.forces[:, :, trial.vertical_index] > COP_LOAD_THRESHOLD
    for plate in range(cop.shape[1]):
        for a, b in _runs(loaded[:, plate]):
            cop[a:b, plate] = run(trial.cop[a:b, plate])
    return trial.replace(
        markers=run(trial.markers), forces=run(trial.forces), cop=cop, free_moment=run(trial.free_moment),
        note=f"lowpass_causal: causal Butterworth, order {order}, -3 dB at {cutoff:g} Hz, as the stream applies it "
        f"(CoP restarted at each loaded run; NaN holds the last output)",
    )


# ---------------------------------------------------------------------------------------------------------
# causal (streaming) low-pass
# ---------------------------------------------------------------------------------------------------------
class CausalLowpass:
    """Causal Butterworth low-pass for streams: ``order`` and the -3 dB ``cutoff`` are those of the single pass.

    Each channel's state is initialised at its first finite sample as if the signal had been constant before
    (``sosfilt_zi`` scaled by that sample), so a stream starting at a non-zero level has no start transient.
    A NaN input on a channel leaves that channel's state untouched and repeats its last output (NaN before the
    first finite sample); :attr:`held` is the boolean mask of channels held at the last call (per row for
    :meth:`process`).
    """

    def __init__(self, n_channels: int, *, rate: float, cutoff: float = 10.0, order: int = 4):
        _check_cutoff(cutoff, rate)
        if int(order) < 1:
            raise GaitforceError(f"filter order {order} must be >= 1")
        self.n_channels = int(n_channels)
        self.rate = float(rate)
        self.cutoff = float(cutoff)
        self.order = int(order)
        self.sos = sps.butter(self.order, self.cutoff, btype="low", fs=self.rate, output="sos")
        self._zi_unit = sps.sosfilt_zi(self.sos)  # (sections, 2)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next finite sample of each channel initialises it again."""
        self._zi = np.zeros((len(self.sos), 2, self.n_channels))
        self._started = np.zeros(self.n_channels, bool)
        self._last = np.full(self.n_channels, np.nan)
        self.held = np.zeros(self.n_channels, bool)

    def _row(self, x: np.ndarray) -> np.ndarray:
        finite = np.isfinite(x)
        new = finite & ~self._started
        if new.any():
            self._zi[:, :, new] = self._zi_unit[:, :, None] * x[new][None, None, :]
            self._started |= new
        if finite.any():
            y, zi = sps.sosfilt(self.sos, x[finite][None, :], axis=0, zi=self._zi[:, :, finite])
            self._zi[:, :, finite] = zi
            self._last[finite] = y[0]
        return self._last.copy()

    def step(self, x_row) -> np.ndarray:
        """Filter one frame of ``n_channels`` values; returns the filtered frame."""
        x = np.asarray(x_row, dtype=float).reshape(self.n_channels)
        self.held = ~np.isfinite(x)
        return self._row(x)

    def process(self, block) -> np.ndarray:
        """Filter a block of frames (T, n_channels); equal to calling :meth:`step` on each row."""
        x = np.asarray(block, dtype=float).reshape(-1, self.n_channels)
        finite = np.isfinite(x)
        out = np.empty_like(x)
        complete = finite.all(axis=1)
        i = 0
        for a, b in _runs(complete) + [(x.shape[0], x.shape[0])]:
            for r in range(i, a):  # rows with a NaN: channel by channel
                out[r] = self._row(x[r])
            if a < b and not self._started.all():  # first row initialises the channels not yet started
                out[a] = self._row(x[a])
                a += 1
            if a < b:  # a run of complete rows on started channels: one vectorised sosfilt
                out[a:b], self._zi = sps.sosfilt(self.sos, x[a:b], axis=0, zi=self._zi)
                self._last = out[b - 1].copy()
            i = b
        self.held = ~finite
        return out


