"""The one central data type: :class:`Trial`.

A ``Trial`` holds one capture (or one stance phase cut from it) in SI units on a single kinematic time base:

========================  ==============  =======================================================
field                     shape           unit / meaning
========================  ==============  =======================================================
``time``                  (T,)            s, strictly increasing
``markers``               (T, M, 3)       m, lab frame; NaN where a marker was not seen
``marker_names``          M names
``forces``                (T, P, 3)       N, ground reaction force on the body, per force plate
``cop``                   (T, P, 3)       m, centre of pressure per plate (NaN when unloaded)
``free_moment``           (T, P, 3)       N m, free moment about the CoP, per plate
``plate_names``           P names
``emg``                   (T2, K)         V (raw) or 1 (envelopes), on its own time base ``emg_time``
``emg_names``             K names
``signals``               name -> (T,)    any other per-frame channel (targets, joint angles)
``units``                 name -> str     unit of each entry of ``signals``
``events``                tuple[Event]    heel strikes / toe offs, per side
``subject``               Subject         id, mass (kg), height (m), sex, pathology flags
``up_axis``               'y' or 'z'      the lab's vertical axis (see :func:`to_y_up`)
``meta``                  dict            free-form facts (stance side, competition, frame offset)
``history``               tuple[str]      the processing steps applied, oldest first
========================  ==============  =======================================================

Force data are resampled to the kinematic frames at the reader boundary (mean over each frame's window, an
anti-aliasing box filter), so every per-frame channel shares ``time``. EMG keeps its own rate.

Trials are immutable: arrays are copied on construction and made read-only, and every processing step
returns a new Trial through :meth:`Trial.replace`, which records the step in ``history``.

Axis rule: the canonical frame of the dataset is OpenSim's (Y up, X forward, Z to the right). A Z-up lab
(X forward, Y left, Z up) is turned into it by ``(x, y, z) -> (x, z, -y)``, a rotation of -90 degrees about X.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from gaitforce.constants import body_weight
from gaitforce.errors import GaitforceError, MissingChannelError, UnitError

SIDES = ("right", "left")

#: Largest plausible marker coordinate in metres; a trial beyond it was almost surely recorded in mm.
MAX_MARKER_COORD_M = 20.0

#: Rotation taking Z-up lab vectors (x fwd, y left, z up) to Y-up OpenSim vectors (x fwd, y up, z right).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Subject:
    """Who was measured. ``mass`` in kg, ``height`` in m."""

    id: str = "unknown"
    mass: float | None = None
    height: float | None = None
    sex: str | None = None
    pathology: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.mass is not None and not (0 < self.mass < 500):
            raise UnitError(f"subject mass {self.mass!r} kg is not plausible")
        if self.height is not None and not (0.3 < self.height < 3.0):
            raise UnitError(f"subject height {self.height!r} m is not plausible (cm given as m?)")
        object.__setattr__(self, "pathology", tuple(self.pathology))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def weight(self) -> float | None:
        """Body weight in N (mass x 9.81), or None."""
        return body_weight(self.mass)


@dataclass(frozen=True)
class Event:
    """A gait event: ``name`` is 'heel_strike' or 'toe_off', ``time`` in s, ``side`` 'right' or 'left'."""

    name: str
    time: float
    side: str
    plate: int | None = None

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"event side must be one of {SIDES}, not {self.side!r}")


def _array(value, shape_tail: tuple[int, ...], name: str, n: int | None) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, copy=True)
    if arr.ndim != 1 + len(shape_tail):
        raise ValueError(f"{name} must have {1 + len(shape_tail)} dimensions, got shape {arr.shape}")
    for i, want in enumerate(shape_tail):
        if want >= 0 and arr.shape[1 + i] != want:
            raise ValueError(f"{name} has shape {arr.shape}, expected (..., {shape_tail})")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} frames, time has {n}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Trial:
    """One capture or stance phase in SI units on one kinematic time base (see the module docstring)."""

    time: np.ndarray
    markers: np.ndarray | None = None
    marker_names: tuple[str, ...] = ()
    forces: np.ndarray | None = None
    cop: np.ndarray | None = None
    free_moment: np.ndarray | None = None
    plate_names: tuple[str, ...] = ()
    emg: np.ndarray | None = None
    emg_time: np.ndarray | None = None
    emg_names: tuple[str, ...] = ()
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    subject: Subject = field(default_factory=Subject)
    source: str = ""
    up_axis: str = "y"
    meta: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[str, ...] = ()

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        time = np.array(self.time, dtype=np.float64, copy=True).reshape(-1)
        if time.size > 1 and not np.all(np.diff(time) > 0):
            raise ValueError("time must be strictly increasing")
        time.setflags(write=False)
        set_("time", time)
        n = time.size

        m = len(self.marker_names)
        markers = np.empty((n, 0, 3)) if self.markers is None else self.markers
        set_("markers", _array(markers, (m, 3), "markers", n))
        set_("marker_names", tuple(str(s) for s in self.marker_names))
        if len(set(self.marker_names)) != m:
            raise ValueError("marker names must be unique")
        finite = self.markers[np.isfinite(self.markers)]
        if finite.size and np.max(np.abs(finite)) > MAX_MARKER_COORD_M:
            raise UnitError(
                f"marker coordinates reach {np.max(np.abs(finite)):.0f} m: "
                "the data look like millimetres labelled as metres"
            )

        p = len(self.plate_names)
        for name in ("forces", "cop", "free_moment"):
            value = getattr(self, name)
            set_(name, _array(np.zeros((n, p, 3)) if value is None else value, (p, 3), name, n))
        set_("plate_names", tuple(str(s) for s in self.plate_names))

        k = len(self.emg_names)
        if self.emg is None:
            set_("emg", _array(np.empty((0, k)), (k,), "emg", None))
            set_("emg_time", _array(np.empty(0), (), "emg_time", None))
        else:
            set_("emg", _array(self.emg, (k,), "emg", None))
            if self.emg_time is None:
                raise ValueError("emg needs emg_time")
            set_("emg_time", _array(self.emg_time, (), "emg_time", self.emg.shape[0]))
        set_("emg_names", tuple(str(s) for s in self.emg_names))

        signals = {}
        for key, value in dict(self.signals).items():
            arr = np.array(value, dtype=np.float64, copy=True)
            if arr.shape[:1] != (n,):
                raise ValueError(f"signal {key!r} has shape {arr.shape}, expected ({n}, ...)")
            arr.setflags(write=False)
            signals[str(key)] = arr
        set_("signals", MappingProxyType(signals))
        units = {str(k): str(v) for k, v in dict(self.units).items()}
        missing = set(signals) - set(units)
        if missing:
            raise ValueError(f"signals without a unit: {sorted(missing)}")
        set_("units", MappingProxyType(units))

        set_("events", tuple(sorted(self.events, key=lambda e: e.time)))
        if self.up_axis not in ("y", "z"):
            raise ValueError(f"up_axis must be 'y' or 'z', not {self.up_axis!r}")
        set_("meta", MappingProxyType(dict(self.meta)))
        set_("history", tuple(self.history))
        set_("source", str(self.source))

    # -- basic facts -------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.time.size)

    @property
    def rate(self) -> float:
        """Kinematic sample rate in Hz (from the median frame interval)."""
        if self.time.size < 2:
            raise GaitforceError("a trial of fewer than 2 frames has no sample rate", source=self.source)
        return float(1.0 / np.median(np.diff(self.time)))

    @property
    def emg_rate(self) -> float | None:
        if self.emg_time.size < 2:
            return None
        return float(1.0 / np.median(np.diff(self.emg_time)))

    @property
    def duration(self) -> float:
        return float(self.time[-1] - self.time[0]) if self.time.size else 0.0

    @property
    def vertical_index(self) -> int:
        """Index of the vertical axis in 3-vectors (1 for Y-up, 2 for Z-up)."""
        return 1 if self.up_axis == "y" else 2

    # -- access --------------------------------------------------------------------------------------
    def marker(self, name: str) -> np.ndarray:
        """Positions of one marker, (T, 3) in m."""
        try:
            return self.markers[:, self.marker_names.index(name), :]
        except ValueError:
            raise MissingChannelError(f"marker {name!r} not in trial", source=self.source) from None

    def signal(self, name: str) -> np.ndarray:
        try:
            return self.signals[name]
        except KeyError:
            raise MissingChannelError(f"channel {name!r} not in trial", source=self.source) from None

    def total_grf(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Force, CoP and free moment summed over plates, (T, 3) each.

        The combined CoP is the vertical-force-weighted mean of the plates' CoPs (NaN where no plate is loaded);
        the free moments add.
        """
        force = self.forces.sum(axis=1)
        fv = np.clip(self.forces[:, :, self.vertical_index], 0.0, None)
        loaded = fv > 0
        # unloaded plates contribute nothing; a loaded plate whose CoP is unknown makes the total unknown
        weighted = np.where(loaded[:, :, None], self.cop * fv[:, :, None], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cop = weighted.sum(axis=1) / fv.sum(axis=1)[:, None]
        cop[~loaded.any(axis=1)] = np.nan
        return force, cop, np.nan_to_num(self.free_moment).sum(axis=1)

    # -- change --------------------------------------------------------------------------------------
    def replace(self, *, note: str | None = None, **changes) -> "Trial":
        """A new Trial with ``changes`` applied; ``note`` (the step's description) is added to the history."""
        history = self.history + ((note,) if note else ())
        return dataclasses.replace(self, history=history, **changes)

    def with_signals(self, note: str | None = None, **signals: tuple[np.ndarray, str]) -> "Trial":
        """A new Trial with extra per-frame channels, given as ``name=(values, unit)``."""
        sig = dict(self.signals)
        units = dict(self.units)
        for key, (values, unit) in signals.items():
            sig[key] = values
            units[key] = unit
        return self.replace(signals=sig, units=units, note=note)

    def slice_frames(self, start: int, stop: int, *, note: str | None = None) -> "Trial":
        """Frames ``start:stop`` (kinematic indices); EMG and events are cut to the same time span."""
        if not (0 <= start < stop <= self.n_frames):
            raise ValueError(f"frame range {start}:{stop} outside 0:{self.n_frames}")
        t0, t1 = self.time[start], self.time[stop - 1]
        dt = 0.5 / self.rate if self.n_frames > 1 else 0.0
        emg_mask = (self.emg_time >= t0 - dt) & (self.emg_time <= t1 + dt)
        return self.replace(
            time=self.time[start:stop],
            markers=self.markers[start:stop],
            forces=self.forces[start:stop],
            cop=self.cop[start:stop],
            free_moment=self.free_moment[start:stop],
            emg=self.emg[emg_mask],
            emg_time=self.emg_time[emg_mask],
            signals={k: v[start:stop] for k, v in self.signals.items()},
            events=tuple(e for e in self.events if t0 - dt <= e.time <= t1 + dt),
            meta={**self.meta, "frame_offset": int(self.meta.get("frame_offset", 0)) + start},
            note=note or f"slice_frames({start}, {stop})",
        )

    def select_markers(self, names: Iterable[str]) -> "Trial":
        names = tuple(names)
        idx = [self.marker_names.index(n) for n in names if n in self.marker_names]
        missing = [n for n in names if n not in self.marker_names]
        if missing:
            raise MissingChannelError(f"markers not in trial: {', '.join(missing)}", source=self.source)
        return self.replace(markers=self.markers[:, idx, :], marker_names=names)

    def rotate(self, rotation: np.ndarray, *, up_axis: str | None = None, note: str | None = None) -> "Trial":
        """Apply a 3x3 rotation to every spatial vector (markers, forces, CoP, free moment)."""
        r = np.asarray(rotation, dtype=float)
        return self.replace(
            markers=self.markers @ r.T,
            forces=self.forces @ r.T,
            cop=self.cop @ r.T,
            free_moment=self.free_moment @ r.T,
            up_axis=up_axis or self.up_axis,
            note=note or "rotate",
        )

    def to_y_up(self) -> "Trial":
        """This trial in OpenSim's Y-up frame, by the rule ``(x, y, z) -> (x, z, -y)`` for Z-up labs."""
        if self.up_axis == "y":
            return self
        return self.rotate(Z_UP_TO_Y_UP, up_axis="y", note="to_y_up: (x, y, z) -> (x, z, -y)")

    def to_z_up(self) -> "Trial":
        """This trial in a Z-up lab frame, the inverse of :meth:`to_y_up`."""
        if self.up_axis == "z":
            return self
        return self.rotate(Z_UP_TO_Y_UP.T, up_axis="z", note="to_z_up: (x, y, z) -> (x, -z, y)")

    # -- description ---------------------------------------------------------------------------------
    def summary(self) -> str:
        """A few lines saying what the trial holds (used by ``gaitforce inspect``)."""
        lines = [f"source:   {self.source or '(in memory)'}"]
        s = self.subject
        lines.append(
            f"subject:  {s.id}  mass={_fmt(s.mass, 'kg')}  height={_fmt(s.height, 'm')}  sex={s.sex or '?'}"
            + (f"  pathology={','.join(s.pathology)}" if s.pathology else "")
        )
        if self.n_frames > 1:
            lines.append(f"frames:   {self.n_frames} at {self.rate:.1f} Hz ({self.duration:.2f} s), {self.up_axis.upper()} up")
        else:
            lines.append(f"frames:   {self.n_frames}")
        if self.marker_names:
            seen = np.isfinite(self.markers).all(axis=2).mean(axis=0)
            lines.append(f"markers:  {len(self.marker_names)} (m), visible {100 * seen.mean():.0f}% of frames on average")
            lines.append("          " + ", ".join(self.marker_names))
        else:
            lines.append("markers:  none")
        if self.plate_names:
            for i, name in enumerate(self.plate_names):
                f = self.forces[:, i, :]
                lines.append(f"plate:    {name}: peak |F| {np.nanmax(np.linalg.norm(f, axis=1)):.0f} N")
        else:  # a reader that dropped the file's plates says why in meta['plate_error']
            why = self.meta.get("plate_error")
            lines.append("plates:   none" + (f" (not read: {why})" if why else ""))
        if self.emg_names:
            lines.append(f"emg:      {len(self.emg_names)} channels at {self.emg_rate or 0:.0f} Hz: {', '.join(self.emg_names)}")
        for key, value in self.signals.items():
            lines.append(f"signal:   {key} [{self.units[key]}] peak {np.nanmax(np.abs(value)):.4g}")
        for e in self.events:
            lines.append(f"event:    {e.side} {e.name} at {e.time:.3f} s" + (f" (plate {e.plate})" if e.plate is not None else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Trial({self.source or 'in memory'!s}, {self.n_frames} frames, {len(self.marker_names)} markers, "
            f"{len(self.plate_names)} plates, {len(self.emg_names)} emg, signals={list(self.signals)})"
        )


def _fmt(value, unit):
    return "?" if value is None else f"{value:.3g} {unit}"
