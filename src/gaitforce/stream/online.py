"""The online pipeline: one raw mocap sample in, the bundle's forces for each limb in stance out.

Per frame (:meth:`OnlinePipeline.process`):

1. units and axes: the :class:`~gaitforce.stream.layout.StreamLayout` turns the raw sample into markers,
   forces, CoP and free moments in SI units, Y-up;
2. causal filtering: :class:`gaitforce.signal.filters.CausalLowpass` with the bundle's ingest settings (cutoff and
   order; ``lowpass_cutoff=None`` in the bundle turns it off). Markers and forces share one filter (free
   moments are no feature and are not read); each plate's CoP has its own, restarted at each heel strike and fed only while that plate carries
   more than :data:`gaitforce.signal.filters.COP_LOAD_THRESHOLD` N, as offline. An occluded marker (NaN) holds its
   last filtered value (filter off: its last value) and the frame is flagged ``OCCLUDED``;
3. online stance detection, per plate, on the raw vertical force: heel strike when it rises above the bundle's
   ``stance_threshold``, toe off when it falls back. A plate already loaded when the stream (re)starts is
   ignored until it unloads (its heel strike was not seen: offline rejects such a stance too);
4. the stance frame, built from what is known at heel strike (see "Mismatch" below); the 18 marker slots come
   from the bundle's marker map, resolved once at start into a (18, M) weight matrix per side
   (:func:`gaitforce.data.features.resolve_slots` applied to unit vectors: the map is linear in the markers);
5. the bundle's feature columns, and one ONNX Runtime call per frame for the limbs in stance (session opened
   once, 1 intra-op thread).

Output row (:attr:`OnlinePipeline.output_names`): ``<target>_right``.., ``<target>_left``.., ``stance_time_right``,
``stance_time_left`` (s since heel strike; NaN in swing), for a calibrated ensemble bundle the interval's bounds
``<target>_lo_right``, ``<target>_hi_right``.., ``<target>_lo_left``, ``<target>_hi_left``.. (the same one ONNX
Runtime call gives the mean and the members' spread), then ``flags`` (bit mask, :data:`FLAGS`) and
``latency_ms`` (filled by the runner). A limb in swing has NaN forces.

The features are computed by the offline feature function itself (:func:`gaitforce.data.features.frame_features`,
with :func:`~gaitforce.data.features.stance_rotation`); with the filter off and the same stance frame they equal
it to 1e-9 (tested). What differs is only what a causal pipeline cannot know; the mismatch with the offline
features (``gaitforce.data.ingest.trial_frames``), stated:

- filter: the causal Butterworth lags (group delay ~ 2.6 / (2 pi cutoff) at low frequency: ~42 ms at 10 Hz,
  order 4) where the offline filter is zero-lag; it is the largest difference, and none for a bundle trained
  on a dataset ingested with ``lowpass_causal=True`` (``gaitforce ingest --causal-filter``);
- progression direction: offline, the marker-centroid displacement over the whole stance (future frames);
  online, the same centroid's displacement over the ``direction_window`` s (1 s, about one stride, which
  averages out the medio-lateral sway) before heel strike (fallback: the previous stance's direction, else lab
  +x, flagged ``NO_DIRECTION``). On synthetic walks the two headings differ by up to ~6 deg (the offline one
  carries the sway of its single stance), which moves distal slots by up to ~7 cm horizontally; vertical
  coordinates do not depend on it;
- origin: offline, the CoP at the first frame with >= 80 N; online the same, but frames before that frame
  (between the 20 N onset and 80 N: 1-3 frames at 100 Hz) use the current CoP and are flagged ``PROVISIONAL``;
- gaps: offline fills gaps up to ``max_gap`` by a spline through both sides; online holds the last value;
- side: offline, the foot marker nearest the mean CoP over the middle third of the stance; online, the side
  whose foot slots (heel, toe, metatarsals) are nearest the CoP at heel strike (within the bundle's
  ``foot_on_plate`` distance, as offline);
- a marker named in the stream but never seen is not filled by its segment's centroid (offline it is): its
  slot stays NaN and the frame has no prediction (``NO_PREDICTION``); stances shorter than ``min_duration``
  are predicted (offline drops them: their length is unknown until toe off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitforce import constants as C
from gaitforce.data import features
from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.signal.filters import COP_LOAD_THRESHOLD
from gaitforce.stream.filter import HoldLast, StreamFilter
from gaitforce.stream.layout import StreamLayout
from gaitforce.trial import SIDES, Trial

FLAG_OCCLUDED = 1  #: a marker the slots use was not seen this frame (held)
FLAG_DROPPED = 2  #: samples were missing before this one (timestamp gap)
FLAG_RESTART = 4  #: the stream restarted (gap > restart_gap): filters and stances reset
FLAG_PROVISIONAL = 8  #: stance origin not fixed yet (vertical force still under 80 N)
FLAG_NO_PREDICTION = 16  #: a limb in stance got no prediction (side unknown or a feature not finite)
FLAG_NO_DIRECTION = 32  #: progression direction fell back (too little motion before heel strike)
FLAG_LATE = 64  #: processed more than ``late_after`` s after its timestamp (the consumer fell behind)
FLAG_OUT_OF_RANGE = 128  #: a feature beyond the bundle's training range by more than its margin (learn.predict.OOD_MARGIN)
FLAG_IMPLAUSIBLE = 256  #: a value beyond physical bounds was dropped (treated as an occlusion)
FLAGS = {"occluded": FLAG_OCCLUDED, "dropped": FLAG_DROPPED, "restart": FLAG_RESTART,
         "provisional": FLAG_PROVISIONAL, "no_prediction": FLAG_NO_PREDICTION,
         "no_direction": FLAG_NO_DIRECTION, "late": FLAG_LATE, "out_of_range": FLAG_OUT_OF_RANGE,
         "implausible": FLAG_IMPLAUSIBLE}
#: physical bounds of a streamed value (SI, after the layout's units): beyond them a value is a glitch (1e30 from
#: a driver), dropped before the filter as an occlusion is, so it never enters the filter state and the limb
#: recovers on the next good frame
MAX_STREAM_FORCE_N = 10_000.0
MAX_STREAM_MARKER_M = 20.0
FOOT = [features.SLOTS.index(s) for s in features.FOOT_SLOTS]


@dataclass
class OnlineSettings:
    """Settings of the online pipeline; :meth:`from_bundle` takes them from the bundle's ingest settings."""

    lowpass_cutoff: float | None = 10.0
    lowpass_order: int = 4
    stance_threshold: float = C.STANCE_THRESHOLD_N
    origin_force: float = C.ORIGIN_MIN_FORCE_N
    max_dropout: float = C.MAX_DROPOUT_S
    foot_on_plate: float = C.FOOT_ON_PLATE_M
    direction_window: float = 1.0
    restart_gap: float = 0.5
    marker_map: object = "auto"

    @classmethod
    def from_bundle(cls, bundle, **overrides) -> "OnlineSettings":
        ing = bundle.ingest_settings or {}
        keys = ("lowpass_cutoff", "lowpass_order", "stance_threshold", "max_dropout", "foot_on_plate", "marker_map")
        return cls(**{**{k: ing[k] for k in keys if k in ing}, **overrides})


@dataclass
class _Stance:
    plate: int
    side: str | None
    start: float
    rot: np.ndarray  # mirror + progression alignment, lab -> stance frame
    origin: np.ndarray | None = None
    last_loaded: float = 0.0
    no_direction: bool = False


def slot_weights(marker_names, marker_map, *, source: str = "", lines: list | None = None) -> dict[str, np.ndarray]:
    """{side: (18, M) weights} so that ``W @ markers`` gives the slot positions, as ``resolve_slots`` would.

    Found by applying :func:`gaitforce.data.features.resolve_slots` to M frames of unit vectors (the marker map is
    linear in the marker positions). Raises :class:`MissingChannelError` if a segment has no marker."""
    m = len(marker_names)
    eye = np.zeros((max(m, 2), m, 3))
    eye[np.arange(m), np.arange(m), 0] = 1.0
    probe = Trial(time=np.arange(eye.shape[0], dtype=float), markers=eye, marker_names=marker_names, source=source)
    out = {}
    for side in SIDES:
        pos, how, spec = features.resolve_slots(probe, marker_map, side=side)
        out[side] = np.ascontiguousarray(pos[:m, :, 0].T)
        if lines is not None:
            lines.append(f"{side}: {features.describe_slots(spec['name'], how)}")
    return out


class OnlinePipeline:
    """Causal per-frame features and predictions for a stream of the given layout (see the module doc)."""

    def __init__(self, bundle, layout: StreamLayout, *, rate: float, settings: OnlineSettings | None = None):
        self.bundle = bundle
        self.layout = layout
        self.rate = float(rate)
        if not self.rate > 0:
            raise GaitforceError(f"stream rate {rate!r} Hz: a nominal rate is needed", source=layout.source)
        self.settings = settings or OnlineSettings.from_bundle(bundle)
        s = self.settings
        if not layout.plate_names:
            raise MissingChannelError("the stream has no force plate (Force + CoP channels)", source=layout.source)
        if not layout.marker_names:
            raise MissingChannelError("the stream has no marker (Position channels)", source=layout.source)
        known = features.feature_columns()
        unknown = [c for c in bundle.columns if c not in known]
        if unknown:
            raise MissingChannelError(f"the bundle's input columns {unknown[:4]} are no gaitforce features",
                                      source=str(bundle.path))
        self._col_idx = np.array([known.index(c) for c in bundle.columns], dtype=np.intp)
        # out-of-distribution bounds: the training range widened by OOD_MARGIN of its width (none stored: no flag)
        from gaitforce.learn.predict import OOD_MARGIN, feature_ranges

        ranges = feature_ranges(bundle.spec)
        lo = np.array([ranges.get(c, (-np.inf, np.inf))[0] for c in bundle.columns])
        hi = np.array([ranges.get(c, (-np.inf, np.inf))[1] for c in bundle.columns])
        width = np.where(np.isfinite(hi - lo), np.maximum(hi - lo, 1e-9), 0.0)
        self._ood_lo, self._ood_hi = lo - OOD_MARGIN * width, hi + OOD_MARGIN * width
        self._ood_counts = np.zeros(len(bundle.columns), dtype=np.int64)
        self._need_angles = bool(np.isin(bundle.columns, features.ANGLES).any())
        self._need_moments = bool(np.isin(bundle.columns, features.MOMENT_COLUMNS).any())
        try:
            #: the marker map's outcome per side (map, slots matched, filled and from what)
            self.slot_lines: list[str] = []
            self._w = slot_weights(layout.marker_names, s.marker_map, source=layout.source, lines=self.slot_lines)
        except MissingChannelError as err:
            raise MissingChannelError(f"stream channels do not match the bundle: {err.message}",
                                      source=layout.source) from None
        self._support = {side: (w != 0).astype(float) for side, w in self._w.items()}
        used = np.flatnonzero((self._w["right"] != 0).any(axis=0) | (self._w["left"] != 0).any(axis=0))
        self._used_markers = used
        self.n_markers, self.n_plates = len(layout.marker_names), len(layout.plate_names)
        self.targets = list(bundle.targets)
        k = len(self.targets)
        # a calibrated ensemble bundle: the interval's bounds per limb and target, after the stance times
        self.interval = bool(getattr(bundle, "has_interval", False))
        band = [f"{t}_{b}_{side}" for side in SIDES for t in self.targets for b in ("lo", "hi")] if self.interval else []
        self.output_names = ([f"{t}_{side}" for side in SIDES for t in self.targets]
                             + [f"stance_time_{side}" for side in SIDES] + band + ["flags", "latency_ms"])
        self.output_units = ([bundle.units[t] for _ in SIDES for t in self.targets] + ["s", "s"]
                             + [bundle.units[t] for _ in SIDES for t in self.targets for _b in ("lo", "hi")
                                if self.interval] + ["1", "ms"])
        if self.interval:
            q, eps = bundle.interval_params()
            self._q = np.where(np.isfinite(q), q, np.nan)
            self._eps = eps
        self._k = k
        self._out = np.full(len(self.output_names), np.nan)
        self._x = np.zeros((2, len(bundle.columns)), dtype=np.float32)
        self._feat = np.full(len(known), np.nan)
        onnx = bundle.spec["onnx"]
        self._session, self._in_name = bundle.session, onnx["input"]
        self._out_name = [onnx["output"]] + ([onnx["spread_output"]] if self.interval else [])
        self._session.run(self._out_name, {self._in_name: self._x})  # warm-up: the first run is slow
        nm, n_p = 3 * self.n_markers, 3 * self.n_plates
        self._sl = {"m": slice(0, nm), "f": slice(nm, nm + n_p), "c": slice(nm + n_p, nm + 2 * n_p)}
        n_ch = nm + 2 * n_p
        filt = s.lowpass_cutoff is not None and s.lowpass_cutoff > 0
        self._lp = (StreamFilter(n_ch, rate=self.rate, cutoff=s.lowpass_cutoff, order=s.lowpass_order) if filt
                    else HoldLast(n_ch))
        self._main = np.empty(n_ch)
        self._cop_raw = np.full((self.n_plates, 3), np.nan)
        self._ring_n = max(2, int(round(s.direction_window * self.rate)) + 1)
        self._ring = np.full((self._ring_n, self.n_markers, 3), np.nan)
        self.n_late = 0
        self.n_implausible = 0
        self.n_dropped = 0
        self.n_restarts = 0
        self.n_frames = 0
        self.n_stances = 0
        # set to a list to record (timestamp, side, features, stance rotation, stance origin, plate) per frame
        self.features_log: list | None = None
        self.reset()

    # -- state ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget filters, stances and history (a restarted stream)."""
        self._stance: list[_Stance | None] = [None] * self.n_plates
        self._blocked = np.zeros(self.n_plates, bool)
        self._lp.reset()
        self._ring[:] = np.nan
        self._ring_i = 0
        self._ring_count = 0
        self._last_ts: float | None = None
        self._last_dir: np.ndarray | None = None
        self._fresh = True

    @property
    def ood_frames(self) -> dict[str, int]:
        """Frames with a feature beyond its widened training range, per feature (``FLAG_OUT_OF_RANGE``)."""
        return {c: int(n) for c, n in zip(self.bundle.columns, self._ood_counts) if n}

    @property
    def active(self) -> dict[str, _Stance]:
        """{side: the newest stance of that side} for limbs loaded at this frame (a short dropout, merged into
        the stance as offline, has no prediction)."""
        out: dict[str, _Stance] = {}
        for st in self._stance:
            if (st is not None and st.side in SIDES and st.last_loaded == self._last_ts
                    and (st.side not in out or st.start > out[st.side].start)):
                out[st.side] = st
        return out

    # -- per frame --------------------------------------------------------------------------------------
    def process(self, sample, timestamp: float) -> np.ndarray | None:
        """One raw sample (layout order) at ``timestamp`` (s) -> the output row (reused: copy to keep it), or
        None for a sample older than the last one (counted in :attr:`n_late`, skipped)."""
        flags = 0
        if self._last_ts is not None:
            dt = timestamp - self._last_ts
            if dt <= 0:
                self.n_late += 1
                return None
            if dt > self.settings.restart_gap:
                self.reset()
                self.n_restarts += 1
                flags |= FLAG_RESTART
            elif dt > 1.5 / self.rate:
                self.n_dropped += int(round(dt * self.rate)) - 1
                flags |= FLAG_DROPPED
        self._last_ts = timestamp
        self.n_frames += 1
        m, f, c, _ = self.layout.split(np.asarray(sample, dtype=np.float64))  # free moments: no feature
        # one cheap test per frame (NaN compares False); the masks only for the rare frame that fails it
        if (np.abs(m).max(initial=0.0) > MAX_STREAM_MARKER_M or np.abs(f).max(initial=0.0) > MAX_STREAM_FORCE_N
                or np.abs(c).max(initial=0.0) > MAX_STREAM_MARKER_M):
            wild_m = np.abs(m) > MAX_STREAM_MARKER_M
            wild_f = (np.abs(f) > MAX_STREAM_FORCE_N).any(axis=1) | (np.abs(c) > MAX_STREAM_MARKER_M).any(axis=1)
            m, f, c = m.copy(), f.copy(), c.copy()
            m[wild_m.any(axis=1)] = np.nan  # the marker is occluded this frame
            f[wild_f], c[wild_f] = np.nan, np.nan  # the plate's force unknown: no load, held in the filter
            flags |= FLAG_IMPLAUSIBLE
            self.n_implausible += 1
        fv_raw = f[:, 1]  # NaN compares False: an unknown force is no load

        # CoP only where its plate carries load (as offline); stances per plate on the raw vertical force
        s = self.settings
        cop_raw = self._cop_raw
        cop_raw[:] = c
        cop_raw[~(fv_raw > COP_LOAD_THRESHOLD)] = np.nan
        loaded = fv_raw > s.stance_threshold
        if self._fresh:
            self._blocked = fv_raw > 2.0 * s.stance_threshold
            self._fresh = False
        onsets = []
        for p in range(self.n_plates):
            st = self._stance[p]
            if not loaded[p]:
                self._blocked[p] = False
                if st is not None and timestamp - st.last_loaded > s.max_dropout:
                    self._stance[p] = None
            elif not self._blocked[p] and st is None:
                onsets.append(p)  # the CoP filter starts afresh at each heel strike
                self._lp.restart(np.arange(self._sl["c"].start + 3 * p, self._sl["c"].start + 3 * p + 3))

        # causal filter (or, filter off, the same hold rule) of markers, forces and CoP
        sl = self._sl
        main = self._main
        main[sl["m"]] = m.reshape(-1)
        main[sl["f"]] = f.reshape(-1)
        main[sl["c"]] = cop_raw.reshape(-1)
        out = self._lp.step(main)
        mf = out[sl["m"]].reshape(self.n_markers, 3)
        ff = out[sl["f"]].reshape(self.n_plates, 3)
        cf = out[sl["c"]].reshape(self.n_plates, 3)
        held = self._lp.held[sl["m"]].reshape(self.n_markers, 3).any(axis=1)
        if held[self._used_markers].any():
            flags |= FLAG_OCCLUDED
        self._ring[self._ring_i] = mf
        self._ring_i = (self._ring_i + 1) % self._ring_n
        self._ring_count = min(self._ring_count + 1, self._ring_n)

        for p in range(self.n_plates):
            if not loaded[p] or self._blocked[p]:
                continue
            st = self._stance[p]
            if p in onsets:
                st = self._stance[p] = self._new_stance(p, timestamp)
            st.last_loaded = timestamp
            if st.side is None:
                st.side = self._side(mf, cf[p])
            if st.origin is None and fv_raw[p] >= s.origin_force and np.isfinite(cf[p]).all():
                st.origin = cf[p].copy()

        # features and one inference for the limbs in stance
        res = self._out
        res[:] = np.nan
        rows = []
        for side, st in self.active.items():
            if st.origin is None:
                flags |= FLAG_PROVISIONAL
            if st.no_direction:
                flags |= FLAG_NO_DIRECTION
            res[2 * self._k + SIDES.index(side)] = timestamp - st.start
            x = self._features(st, mf, ff, cf[st.plate])
            out_of_range = (x < self._ood_lo) | (x > self._ood_hi)
            if out_of_range.any():
                flags |= FLAG_OUT_OF_RANGE
                self._ood_counts += out_of_range
            if np.isfinite(x).all():
                self._x[len(rows)] = x
                rows.append(side)
            else:
                flags |= FLAG_NO_PREDICTION
        for st in self._stance:
            if st is not None and st.side not in SIDES:
                flags |= FLAG_NO_PREDICTION
        if rows:
            ys = self._session.run(self._out_name, {self._in_name: self._x[:len(rows)]})
            y = ys[0]
            for r, side in enumerate(rows):
                j = SIDES.index(side) * self._k
                res[j:j + self._k] = y[r]
                if self.interval:  # mean -+ q (spread + eps): lo, hi per target, after the two stance times
                    half = self._q * (ys[1][r] + self._eps)
                    b = 2 * self._k + 2 + 2 * j
                    res[b:b + 2 * self._k:2] = y[r] - half
                    res[b + 1:b + 2 * self._k:2] = y[r] + half
        res[-2] = flags
        return res

    def _new_stance(self, plate: int, timestamp: float) -> _Stance:
        self.n_stances += 1
        st = _Stance(plate=plate, side=None, start=timestamp, rot=np.eye(3), last_loaded=timestamp)
        d = self._direction()
        if d is None:
            d = self._last_dir if self._last_dir is not None else np.array([1.0, 0.0, 0.0])
            st.no_direction = True
        else:
            self._last_dir = d
        st.rot = d  # the rotation is made once the side is known (mirroring)
        return st

    def _direction(self) -> np.ndarray | None:
        """Horizontal unit vector of the marker-centroid displacement over the ring buffer (None: < 5 cm)."""
        if self._ring_count < 2:
            return None
        newest = (self._ring_i - 1) % self._ring_n
        oldest = (self._ring_i - self._ring_count) % self._ring_n
        a, b = self._ring[oldest], self._ring[newest]
        both = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        if not both.any():
            return None
        d = b[both].mean(axis=0) - a[both].mean(axis=0)
        d[1] = 0.0
        n = np.linalg.norm(d)
        return d / n if n > 0.05 else None

    def _side(self, mf: np.ndarray, cop: np.ndarray) -> str | None:
        """The side whose foot slots are nearest (horizontally) the CoP; None if unknown."""
        if not np.isfinite(cop).all():
            return None
        best, dist = None, np.inf
        for side in SIDES:
            feet = self._slots(side, mf)[FOOT]  # (4, 3)
            d = np.hypot(feet[:, 0] - cop[0], feet[:, 2] - cop[2])
            if np.isfinite(d).any() and np.nanmin(d) < dist:
                best, dist = side, float(np.nanmin(d))
        return best if dist < self.settings.foot_on_plate else None

    def _slots(self, side: str, mf: np.ndarray) -> np.ndarray:
        """(18, 3) slot positions; a slot using a marker not seen yet (NaN) is NaN, the others are not."""
        bad = np.isnan(mf).any(axis=1)
        if not bad.any():
            return self._w[side] @ mf
        slots = self._w[side] @ np.where(bad[:, None], 0.0, mf)
        slots[self._support[side] @ bad > 0] = np.nan
        return slots

    def _features(self, st: _Stance, mf: np.ndarray, ff: np.ndarray, cop: np.ndarray) -> np.ndarray:
        if st.rot.ndim == 1:  # direction only: build mirror + alignment now that the side is known
            st.rot = features.stance_rotation(st.rot, st.side)
        origin = st.origin if st.origin is not None else cop
        feat = self._feat
        features.frame_features(self._slots(st.side, mf)[None], ff[st.plate][None], cop[None], st.rot, origin,
                                angles=self._need_angles, moments=self._need_moments, out=feat[None])
        x = feat[self._col_idx]
        if self.features_log is not None:
            self.features_log.append((self._last_ts, st.side, feat.copy(), st.rot.copy(), np.array(origin, float),
                                      st.plate))
        return x
