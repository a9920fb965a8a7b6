"""Sides of marker names, mirroring of left stances to the right, progression alignment."""

from __future__ import annotations

import re

import numpy as np

from gaitforce.errors import GaitforceError
from gaitforce.trial import SIDES, Event, Trial

# ---------------------------------------------------------------------------------------------------------
# marker-name sides
# ---------------------------------------------------------------------------------------------------------
_SIDE_PATTERNS = (
    # (regex, group holding the side letter/word); first match wins
    re.compile(r"^(?P<body>.+)(?P<sep>[_.\- ])(?P<side>[rlRL])$"),  # knee_r, HEEL_L, heel l
    re.compile(r"^(?P<side>[rlRL])(?P<sep>[_.\- ])(?P<body>.+)$"),  # R_HEEL, l_toe, r heel
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


_FOOT_WORDS = re.compile(r"HEE|HEEL|CAL|TOE|MT|MET|FOOT|FM\d|MH\d|FT\d|HALL", re.IGNORECASE)


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


