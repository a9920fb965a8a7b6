"""Preprocessing steps: each takes a :class:`~gaitforce.Trial` and returns a new one (or a list of them).

Filtering
    :func:`lowpass` is a zero-lag Butterworth low-pass (``scipy.signal.sosfiltfilt``). **Order convention**:
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

Stances
    :func:`detect_stances` finds loaded intervals of each plate's vertical force; :func:`extract_stances` cuts
    them out as Trials. A stance whose foot cannot be identified is marked ``side="unknown"`` by
    ``detect_stances``; ``extract_stances`` rejects it (with a reason) rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from scipy import signal as sps
from scipy.interpolate import CubicSpline
from scipy.ndimage import uniform_filter1d

from .errors import GaitforceError, MissingChannelError
from .trial import SIDES, Event, Trial

__all__ = [
    "lowpass",
    "zero_lag_sos",
    "CausalLowpass",
    "fill_gaps",
    "Stance",
    "RejectedStance",
    "detect_stances",
    "extract_stances",
    "side_of_name",
    "swap_side_name",
    "mirror",
    "mirror_left",
    "align_progression",
    "emg_envelope",
]

#: Finite runs shorter than this are left unfiltered by :func:`lowpass`.
MIN_RUN_FRAMES = 4
#: Vertical force (N) above which a plate's CoP is treated as defined when filtering.
COP_LOAD_THRESHOLD = 20.0
#: Largest distance (s) between a heel-strike event and a force onset for the event to name the stance's side.
EVENT_TOLERANCE = 0.05
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


# ---------------------------------------------------------------------------------------------------------
# marker-name sides
# ---------------------------------------------------------------------------------------------------------
_SIDE_PATTERNS = (
    # (regex, group holding the side letter/word); first match wins
    re.compile(r"^(?P<body>.+)(?P<sep>[_.\-])(?P<side>[rlRL])$"),  # knee_r, HEEL_L
    re.compile(r"^(?P<side>[rlRL])(?P<sep>[_.\-])(?P<body>.+)$"),  # R_HEEL, l_toe
    re.compile(r"^(?P<side>[Rr]ight|[Ll]eft|RIGHT|LEFT)(?P<sep>[_.\- ]?)(?P<body>.+)$"),  # RightHeel, left_toe
    re.compile(r"^(?P<side>[RL])(?P<sep>)(?P<body>[A-Z][A-Za-z0-9]+)$"),  # RHEE, LASI, RHeel, RMT5 (>= 3 chars)
)
_SWAP = {"r": "l", "l": "r", "R": "L", "L": "R", "right": "left", "left": "right", "Right": "Left",
         "Left": "Right", "RIGHT": "LEFT", "LEFT": "RIGHT"}


def _match_side(name: str):
    for pattern in _SIDE_PATTERNS:
        m = pattern.match(name)
        if m:
            return m
    return None


def side_of_name(name: str) -> str | None:
    """'right', 'left' or None from a channel name: ``*_r``/``*_l``, ``R_*``/``L_*``, ``Right*``/``Left*``,
    or a name of 3+ characters of R/L then a capital (``RHEE``, ``LASI``, ``RHeel``; not ``RF``, ``Lumbar``)."""
    m = _match_side(name)
    if m is None:
        return None
    return "right" if m.group("side")[0].lower() == "r" else "left"


def swap_side_name(name: str) -> str:
    """The contralateral name (``RHEE`` <-> ``LHEE``, ``knee_r`` <-> ``knee_l``); unsided names unchanged."""
    m = _match_side(name)
    if m is None:
        return name
    side = _SWAP[m.group("side")]
    start, stop = m.span("side")
    return name[:start] + side + name[stop:]


_FOOT_WORDS = re.compile(r"HEE|HEEL|CAL|TOE|MT|MET|FOOT|FM\d|MH\d|HALL", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# stances
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stance:
    """One foot contact on one plate: kinematic frames ``start:stop`` (stop exclusive), ``side`` 'right',
    'left' or 'unknown', ``side_from`` how the side was found ('markers', 'meta', 'events', 'none')."""

    plate: int
    side: str
    start: int
    stop: int
    plate_name: str = ""
    side_from: str = "markers"

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class RejectedStance:
    """A loaded interval that is not a usable stance, and why ('stance too short', 'cut by the start of the
    recording', 'cut by the end of the recording', 'foot on plate unknown')."""

    plate: int
    start: int
    stop: int
    reason: str
    plate_name: str = ""


def _merge_short_dropouts(runs, max_frames):
    merged = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= max_frames:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def detect_stances(
    trial: Trial,
    *,
    threshold: float = 20.0,
    min_duration: float = 0.25,
    max_dropout: float = 0.02,
    edge_force: float | None = None,
    rejected: list | None = None,
) -> list[Stance]:
    """Stance phases on every force plate from the vertical GRF, ordered by start frame.

    A stance is a run of frames with vertical force above ``threshold`` N; runs separated by a dropout of at
    most ``max_dropout`` s (force noise around the threshold) are merged. Rejected, with the reason appended
    to ``rejected`` (a list, if given): intervals cut by the recording and intervals shorter than
    ``min_duration`` s. NaN force counts as unloaded.

    Cut by the recording means loaded at the first (last) frame with a vertical force above ``edge_force``
    (default ``2 * threshold``): the recording then starts (ends) inside the stance. A first-frame force
    between ``threshold`` and ``edge_force`` is the loading onset itself -- a file trimmed at heel strike by a
    lower threshold, as the Grand Challenge stance files are (19-28 N at their first frame) -- and is kept,
    the stance starting at frame 0 (heel strike at the first frame's time).

    The foot on the plate is the side of the foot marker (heel, toe, metatarsal, ... named with R/L prefixes or
    ``_r``/``_l`` suffixes) nearest, in the horizontal plane, to the mean CoP over the middle third of the
    stance. If the trial has no sided foot markers (or, with one side only, none within 0.3 m), the side comes
    from ``meta['plate_sides'][plate_name]``, then ``meta['side']``, then a heel-strike event (on that plate or
    on none) within :data:`EVENT_TOLERANCE` s of the force onset; failing all, the stance is marked ``side='unknown'`` (:func:`extract_stances` rejects
    it).
    """
    if not trial.plate_names:
        raise MissingChannelError("no force plate: stances cannot be detected", source=trial.source)
    if trial.n_frames < 2:
        return []
    rate = trial.rate
    vi = trial.vertical_index
    edge = 2.0 * threshold if edge_force is None else float(edge_force)
    found = []
    for p, pname in enumerate(trial.plate_names):
        fv = np.nan_to_num(trial.forces[:, p, vi], nan=-np.inf)
        runs = _merge_short_dropouts(_runs(fv > threshold), int(round(max_dropout * rate)))
        for a, b in runs:
            reason = None
            if a == 0 and fv[0] > edge:
                reason = f"cut by the start of the recording ({fv[0]:.0f} N at the first frame)"
            elif b == trial.n_frames and fv[-1] > edge:
                reason = f"cut by the end of the recording ({fv[-1]:.0f} N at the last frame)"
            elif (b - a) / rate < min_duration:
                reason = f"stance too short ({(b - a) / rate:.3f} s < {min_duration:g} s)"
            if reason:
                if rejected is not None:
                    rejected.append(RejectedStance(p, a, b, reason, pname))
                continue
            side, how = _stance_side(trial, p, a, b)
            found.append(Stance(p, side, a, b, pname, how))
    return sorted(found, key=lambda s: (s.start, s.plate))


def _stance_side(trial: Trial, plate: int, start: int, stop: int) -> tuple[str, str]:
    side = _side_from_markers(trial, plate, start, stop)
    if side:
        return side, "markers"
    pname = trial.plate_names[plate]
    plate_sides = trial.meta.get("plate_sides") or {}
    if plate_sides.get(pname) in SIDES:
        return plate_sides[pname], "meta"
    if trial.meta.get("side") in SIDES:
        return trial.meta["side"], "meta"
    t0 = trial.time[start]
    sides = {e.side for e in trial.events if e.name == "heel_strike" and (e.plate in (None, plate))
             and abs(e.time - t0) <= EVENT_TOLERANCE}
    if len(sides) == 1:
        return sides.pop(), "events"
    return "unknown", "none"


def _side_from_markers(trial: Trial, plate: int, start: int, stop: int) -> str | None:
    feet = [(j, side_of_name(n)) for j, n in enumerate(trial.marker_names) if _FOOT_WORDS.search(n)]
    feet = [(j, s) for j, s in feet if s]
    if not feet:
        return None
    n = stop - start
    mid = slice(start + n // 3, stop - n // 3)
    cop = trial.cop[mid, plate, :]
    horizontal = [i for i in range(3) if i != trial.vertical_index]
    best = {}
    for j, s in feet:
        d = np.linalg.norm((trial.markers[mid, j, :] - cop)[:, horizontal], axis=1)
        if np.isfinite(d).any():
            best[s] = min(best.get(s, np.inf), float(np.nanmean(d)))
    if not best:
        return None
    side = min(best, key=best.get)
    if len(best) == 1 and best[side] > 0.3:
        return None
    return side


def _crossing_time(trial: Trial, fv: np.ndarray, i0: int, i1: int, threshold: float) -> float:
    """Time at which the vertical force crosses ``threshold`` between frames i0 and i1 (linear)."""
    if i0 < 0:  # the stance starts at the first frame
        return float(trial.time[0])
    if i1 >= trial.n_frames:  # the stance ends at the last frame
        return float(trial.time[-1])
    f0, f1 = fv[i0], fv[i1]
    if not (np.isfinite(f0) and np.isfinite(f1)) or f0 == f1:
        return float(trial.time[i1])
    w = np.clip((threshold - f0) / (f1 - f0), 0.0, 1.0)
    return float(trial.time[i0] + w * (trial.time[i1] - trial.time[i0]))


def extract_stances(trial: Trial, *, rejected: list | None = None, **detect_kw) -> list[Trial]:
    """Each detected stance as its own Trial (see :func:`detect_stances` for ``detect_kw``).

    Each keeps only its plate's force/CoP/free moment (one plate channel named as the plate), has meta
    ``side``, ``plate`` (plate name), ``plate_index``, ``stance_index`` (0, 1, ... in time order within the
    trial) and ``frame_offset``, and events ``heel_strike`` and ``toe_off`` for its side at the (linearly
    interpolated) threshold crossings; earlier heel-strike/toe-off events of that side in the window are
    replaced. Stances whose side is unknown are rejected (reason 'foot on plate unknown').
    """
    threshold = detect_kw.get("threshold", 20.0)
    stances = detect_stances(trial, rejected=rejected, **detect_kw)
    out = []
    for st in stances:
        if st.side not in SIDES:
            if rejected is not None:
                rejected.append(RejectedStance(st.plate, st.start, st.stop, "foot on plate unknown", st.plate_name))
            continue
        fv = trial.forces[:, st.plate, trial.vertical_index]
        hs = _crossing_time(trial, fv, st.start - 1, st.start, threshold)
        to = _crossing_time(trial, fv, st.stop - 1, st.stop, threshold)
        part = trial.slice_frames(st.start, st.stop, note=f"stance {len(out)}: frames {st.start}:{st.stop} on {st.plate_name}")
        events = [e for e in part.events if not (e.side == st.side and e.name in ("heel_strike", "toe_off"))]
        events += [Event("heel_strike", hs, st.side, plate=st.plate), Event("toe_off", to, st.side, plate=st.plate)]
        p = [st.plate]
        out.append(
            part.replace(
                forces=part.forces[:, p],
                cop=part.cop[:, p],
                free_moment=part.free_moment[:, p],
                plate_names=(st.plate_name,),
                events=tuple(events),
                meta={**part.meta, "side": st.side, "plate": st.plate_name, "plate_index": st.plate,
                      "stance_index": len(out), "side_from": st.side_from},
                note=f"extract_stances: {st.side} foot on {st.plate_name}, side from {st.side_from}",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# mirroring and alignment
# ---------------------------------------------------------------------------------------------------------
def _lateral_index(trial: Trial) -> int:
    """Medio-lateral axis: z in the Y-up (OpenSim) frame, y in a Z-up lab."""
    return 2 if trial.up_axis == "y" else 1


def mirror(trial: Trial) -> Trial:
    """Reflect the trial through the sagittal plane: the medio-lateral coordinate changes sign, L/R names swap.

    Positions and forces (polar vectors) map as ``v -> S v`` with ``S`` the reflection; moments (axial vectors)
    map as ``m -> det(S) S m = -S m``: the free moment's components in the sagittal plane flip and the
    medio-lateral one stays. Marker, EMG and signal names swap sides, as do events and ``meta['side']``.
    ``mirror(mirror(t))`` equals ``t``.
    """
    k = _lateral_index(trial)
    s = np.ones(3)
    s[k] = -1.0
    side = trial.meta.get("side")
    meta = dict(trial.meta)
    if side in SIDES:
        meta["side"] = "left" if side == "right" else "right"
    meta["mirrored"] = not bool(trial.meta.get("mirrored", False))
    signal_names = {key: swap_side_name(key) for key in trial.signals}
    return trial.replace(
        markers=trial.markers * s,
        marker_names=_swapped(trial.marker_names, "marker", trial),
        forces=trial.forces * s,
        cop=trial.cop * s,
        free_moment=trial.free_moment * -s,
        emg_names=_swapped(trial.emg_names, "EMG", trial),
        signals={signal_names[key]: v for key, v in trial.signals.items()},
        units={signal_names.get(key, key): u for key, u in trial.units.items()},
        events=tuple(Event(e.name, e.time, "left" if e.side == "right" else "right", e.plate) for e in trial.events),
        meta=meta,
        note="mirror: medio-lateral axis reflected, L/R names swapped, free moment as an axial vector",
    )


def _swapped(names, what, trial):
    new = tuple(swap_side_name(n) for n in names)
    if len(set(new)) != len(new):
        raise GaitforceError(f"{what} names clash after swapping left/right: {', '.join(names)}", source=trial.source)
    return new


def mirror_left(trial: Trial) -> Trial:
    """A left stance mirrored into the right-limb frame (see :func:`mirror`); right stances unchanged.

    The side is ``trial.meta['side']`` (set by :func:`extract_stances`); a trial without one is an error.
    """
    side = trial.meta.get("side")
    if side == "right":
        return trial
    if side == "left":
        return mirror(trial).replace(note="mirror_left: left stance mirrored into the right-limb frame")
    raise GaitforceError(
        f"mirror_left needs a stance with meta['side'] 'right' or 'left', not {side!r} (use extract_stances)",
        source=trial.source,
    )


def _progression_direction(trial: Trial) -> np.ndarray | None:
    """Horizontal unit vector of progression: marker-centroid displacement, else the loaded CoP path."""
    h = [i for i in range(3) if i != trial.vertical_index]
    m = trial.markers
    if m.shape[1]:
        seen = np.isfinite(m).all(axis=2)  # (T, M)
        frames = np.flatnonzero(seen.any(axis=1))
        if frames.size >= 2:
            first, last = frames[0], frames[-1]
            both = seen[first] & seen[last]
            if both.any():
                d = m[last, both].mean(axis=0) - m[first, both].mean(axis=0)
                d[trial.vertical_index] = 0.0
                if np.linalg.norm(d[h]) > 0.05:
                    return d / np.linalg.norm(d)
    _, cop, _ = trial.total_grf()
    ok = np.flatnonzero(np.isfinite(cop).all(axis=1))
    if ok.size >= 2:
        d = cop[ok[-1]] - cop[ok[0]]
        d[trial.vertical_index] = 0.0
        if np.linalg.norm(d[h]) > 0.05:
            return d / np.linalg.norm(d)
    return None


def align_progression(trial: Trial) -> Trial:
    """Rotate about the vertical axis so the direction of progression is +x (origin unchanged).

    Progression is the horizontal displacement of the centroid of the markers seen at both the first and the
    last frame with a seen marker; if that is under 5 cm (or there are no markers), the path of the loaded CoP
    from its first to its last defined frame. Neither moving 5 cm raises :class:`GaitforceError`.
    """
    d = _progression_direction(trial)
    if d is None:
        raise GaitforceError("no direction of progression: markers and CoP move less than 5 cm", source=trial.source)
    up = np.zeros(3)
    up[trial.vertical_index] = 1.0
    if trial.up_axis == "y":  # rows: new x, new y (up), new z = x cross y
        rot = np.array([d, up, np.cross(d, up)])
    else:  # rows: new x, new y = z cross x, new z (up)
        rot = np.array([d, np.cross(up, d), up])
    angle = float(np.degrees(np.arctan2(d[2] if trial.up_axis == "y" else d[1], d[0])))
    out = trial.rotate(rot, note=f"align_progression: rotated about the vertical so progression is +x "
                                  f"(progression was {angle:.1f} deg from +x)")
    return out.replace(meta={**out.meta, "progression_angle_deg": angle})


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
