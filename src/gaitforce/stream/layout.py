"""Channel layout of a motion-capture LSL stream: which channel is which marker coordinate or plate component.

A gaitforce mocap stream (``type="Mocap"``, ``cf_double64``, one sample per kinematic frame) describes every
channel in its metadata, XDF style, under ``desc/channels/channel``:

=============  ============================================================================================
``label``      ``<object>_<component>``, e.g. ``RHEE_x``, ``FP1_Fy``
``type``       ``Position`` (a marker), ``Force``, ``CoP`` or ``Moment`` (free moment) of a force plate
``unit``       ``m``/``mm`` (Position, CoP), ``N`` (Force), ``N m``/``N mm`` (Moment)
``object``     the marker or plate name (optional: else the label up to its last ``_``)
``component``  ``x``/``y``/``z`` for positions, ``Fx``.. / ``COPx``.. / ``Tx``.. for plates (optional)
=============  ============================================================================================

``desc/up_axis`` is ``y`` (default; OpenSim frame) or ``z`` (a Z-up lab, turned Y-up by the rule of
:mod:`gaitforce.trial`). A layout converts a raw sample to SI units and Y-up with one precomputed index array
and scale vector (:meth:`StreamLayout.split`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.trial import Z_UP_TO_Y_UP, Trial

KINDS = ("Position", "Force", "CoP", "Moment")
_PLATE_COMPONENTS = {"Force": ("Fx", "Fy", "Fz"), "CoP": ("COPx", "COPy", "COPz"), "Moment": ("Tx", "Ty", "Tz")}
_UNIT_SCALE = {"Position": {"m": 1.0, "mm": 1e-3, "cm": 1e-2}, "CoP": {"m": 1.0, "mm": 1e-3, "cm": 1e-2},
               "Force": {"N": 1.0}, "Moment": {"N m": 1.0, "Nm": 1.0, "N mm": 1e-3, "Nmm": 1e-3}}


@dataclass(frozen=True)
class Channel:
    label: str
    type: str
    unit: str
    object: str
    component: str


@dataclass
class StreamLayout:
    """Markers and plates of a stream, and how to read them out of one raw sample."""

    channels: list[Channel]
    up_axis: str = "y"
    source: str = ""

    def __post_init__(self):
        if self.up_axis not in ("y", "z"):
            raise GaitforceError(f"stream up_axis must be 'y' or 'z', not {self.up_axis!r}", source=self.source)
        pos: dict[str, dict[str, int]] = {}
        plates: dict[str, dict[str, int]] = {}
        scale = np.ones(len(self.channels))
        for i, ch in enumerate(self.channels):
            if ch.type not in KINDS:
                continue  # other channels (e.g. EMG) are carried but not used
            units = _UNIT_SCALE[ch.type]
            if ch.unit not in units:
                raise GaitforceError(f"channel {ch.label!r}: unit {ch.unit!r} for {ch.type} (known: "
                                     f"{', '.join(units)})", source=self.source)
            scale[i] = units[ch.unit]
            if ch.type == "Position":
                comp = ch.component.lower()
                if comp not in ("x", "y", "z"):
                    raise GaitforceError(f"channel {ch.label!r}: component {ch.component!r} is not x/y/z",
                                         source=self.source)
                pos.setdefault(ch.object, {})[comp] = i
            else:
                comps = _PLATE_COMPONENTS[ch.type]
                if ch.component not in comps:
                    raise GaitforceError(f"channel {ch.label!r}: component {ch.component!r} is not one of "
                                         f"{', '.join(comps)}", source=self.source)
                plates.setdefault(ch.object, {})[ch.component] = i
        incomplete = [m for m, c in pos.items() if len(c) != 3]
        if incomplete:
            raise MissingChannelError(f"markers without all of x, y, z: {', '.join(incomplete)}", source=self.source)
        self.marker_names = tuple(pos)
        self.plate_names = tuple(p for p, c in plates.items() if all(k in c for k in _PLATE_COMPONENTS["Force"]))
        no_cop = [p for p in self.plate_names if not all(k in plates[p] for k in _PLATE_COMPONENTS["CoP"])]
        if no_cop:
            raise MissingChannelError(f"force plates without a centre of pressure: {', '.join(no_cop)}",
                                      source=self.source)
        zero = len(self.channels)  # index of an appended 0.0 for absent free-moment channels
        self._marker_idx = np.array([[pos[m][a] for a in "xyz"] for m in self.marker_names], dtype=np.intp)
        self._force_idx = np.array([[plates[p][k] for k in _PLATE_COMPONENTS["Force"]] for p in self.plate_names],
                                   dtype=np.intp).reshape(-1, 3)
        self._cop_idx = np.array([[plates[p][k] for k in _PLATE_COMPONENTS["CoP"]] for p in self.plate_names],
                                 dtype=np.intp).reshape(-1, 3)
        self._moment_idx = np.array([[plates[p].get(k, zero) for k in _PLATE_COMPONENTS["Moment"]]
                                     for p in self.plate_names], dtype=np.intp).reshape(-1, 3)
        self._scale = np.append(scale, 0.0)
        self._rot = Z_UP_TO_Y_UP if self.up_axis == "z" else None
        self._buf = np.zeros(len(self.channels) + 1)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def split(self, sample: np.ndarray):
        """A raw sample -> markers (M, 3) m, forces, CoP, free moments (P, 3) in SI units, Y-up."""
        buf = self._buf
        np.multiply(sample, self._scale[:-1], out=buf[:-1])
        m, f, c, t = buf[self._marker_idx], buf[self._force_idx], buf[self._cop_idx], buf[self._moment_idx]
        if self._rot is not None:
            m, f, c, t = m @ self._rot.T, f @ self._rot.T, c @ self._rot.T, t @ self._rot.T
        return m, f, c, t

    # -- building -----------------------------------------------------------------------------------------
    @classmethod
    def for_trial(cls, trial: Trial) -> "StreamLayout":
        """The layout a replay of ``trial`` uses: every marker, then every plate's force, CoP and free moment,
        in SI units and the trial's own up axis."""
        chans = [Channel(f"{m}_{a}", "Position", "m", m, a) for m in trial.marker_names for a in "xyz"]
        for p in trial.plate_names:
            for kind, unit in (("Force", "N"), ("CoP", "m"), ("Moment", "N m")):
                chans += [Channel(f"{p}_{c}", kind, unit, p, c) for c in _PLATE_COMPONENTS[kind]]
        return cls(chans, up_axis=trial.up_axis, source=trial.source)

    @staticmethod
    def trial_samples(trial: Trial) -> np.ndarray:
        """(T, C) samples of ``trial`` in :meth:`for_trial` order."""
        t = trial.n_frames
        parts = [trial.markers.reshape(t, -1)]
        for p in range(len(trial.plate_names)):
            parts += [trial.forces[:, p], trial.cop[:, p], trial.free_moment[:, p]]
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float64)

    def describe(self, info) -> None:
        """Write the layout into a ``pylsl.StreamInfo``'s ``desc``."""
        desc = info.desc()
        desc.append_child_value("up_axis", self.up_axis)
        desc.append_child_value("producer", "gaitforce")
        chans = desc.append_child("channels")
        for ch in self.channels:
            c = chans.append_child("channel")
            for key in ("label", "type", "unit", "object", "component"):
                c.append_child_value(key, getattr(ch, key))

    @classmethod
    def from_info(cls, info, *, source: str = "") -> "StreamLayout":
        """Parse a ``pylsl.StreamInfo`` (from ``inlet.info()``, which carries the full ``desc``)."""
        n = info.channel_count()
        desc = info.desc()
        up = desc.child_value("up_axis") or "y"
        ch = desc.child("channels").child("channel")
        chans = []
        while not ch.empty():
            label = ch.child_value("label")
            obj = ch.child_value("object")
            comp = ch.child_value("component")
            if not obj or not comp:
                obj, _, comp = label.rpartition("_")
            chans.append(Channel(label, ch.child_value("type"), ch.child_value("unit"), obj, comp))
            ch = ch.next_sibling()
        if len(chans) != n:
            raise MissingChannelError(f"stream metadata describes {len(chans)} channels, the stream has {n}: "
                                      "channel names cannot be matched", source=source)
        return cls(chans, up_axis=up.lower(), source=source)
