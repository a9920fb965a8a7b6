"""Stance phases: the one segmentation of a trial into :class:`Stance` records, and cutting them out.

:func:`segment` is the only place that decides where stances lie. Ingest, label, predict, the demo and the
benchmarks call it (through :func:`gaitforce.data.ingest.trial_stances`), and the stream applies the same
:class:`StanceRules` online. It returns every candidate: accepted stances carry a unique ``id``
(``<trial key>#<k>``, ``k`` counting accepted stances in time order), rejected ones their ``reason``.

Where stances come from
    A trial whose reader marked it as one known stance (``meta['single_stance']`` with ``meta['stance_frames']``,
    as the Grand Challenge .mat gait cycles are) is that stance, checked like any other (inside the trial,
    loaded, at least ``min_duration`` long). Any other trial: each plate's vertical force is thresholded
    (:func:`detect_stances`). Detection runs on the force as recorded (gap-filled, never low-passed), so the
    offline (zero-lag), causal and live paths put the same boundaries on the same data.

Trial key
    :func:`trial_key`: the source path relative to the ingest root, with its suffix (``s1/walk.c3d``), so two
    files named alike in two folders never share an id; a trial with no source uses ``meta['trial']``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gaitforce import constants as C
from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.signal.filters import _runs
from gaitforce.signal.mirror import _FOOT_WORDS, side_of_name
from gaitforce.trial import SIDES, Event, Trial

#: Largest distance (s) between a heel-strike event and a force onset for the event to name the stance's side.
EVENT_TOLERANCE = C.EVENT_TOLERANCE_S


@dataclass(frozen=True)
class StanceRules:
    """What makes a stance (defaults from :mod:`gaitforce.constants`); stored in manifests and bundles."""

    threshold: float = C.STANCE_THRESHOLD_N
    min_duration: float = C.MIN_STANCE_S
    max_dropout: float = C.MAX_DROPOUT_S
    edge_force: float | None = None  # None: 2 x threshold
    foot_on_plate: float = C.FOOT_ON_PLATE_M
    event_tolerance: float = C.EVENT_TOLERANCE_S

    def __post_init__(self):
        for name in ("threshold", "min_duration", "max_dropout", "foot_on_plate", "event_tolerance"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise GaitforceError(f"stance rule {name} must be a number >= 0, not {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "StanceRules":
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise GaitforceError(f"unknown stance rules {unknown} (known: {', '.join(sorted(names))})")
        return cls(**d)


@dataclass(frozen=True)
class Stance:
    """One foot contact: frames ``start:stop`` (stop exclusive) of the trial it was found in.

    ``id`` is unique within a dataset (``<trial key>#<k>``; empty for a rejected candidate), ``trial`` the
    trial key, ``subject`` the subject id, ``source`` the file, ``side`` 'right', 'left' or 'unknown',
    ``plate`` the plate index (-1: a file's own stance frames with no plate named), ``side_from`` how the side
    was found ('markers', 'meta', 'events', 'none'), ``reason`` why a candidate was rejected (None: accepted).
    """

    start: int
    stop: int
    side: str
    plate: int = -1
    plate_name: str = ""
    side_from: str = ""
    reason: str | None = None
    id: str = ""
    trial: str = ""
    subject: str = "unknown"
    source: str = ""
    index: int = -1

    @property
    def n_frames(self) -> int:
        return self.stop - self.start

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        where = f"frames {self.start}:{self.stop}" + (f" on {self.plate_name}" if self.plate_name else "")
        return f"{self.side} stance, {where}" + (f": {self.reason}" if self.reason else "")


def trial_key(source: str | os.PathLike | None, root: str | os.PathLike | None = None, *,
              fallback: str = "trial") -> str:
    """The trial part of stance ids: ``source`` relative to ``root`` (posix, suffix kept), or its file name
    where it does not lie under ``root`` or no root is given; ``fallback`` for a trial without a source."""
    if not source:
        return fallback
    src = Path(source)
    if root is not None:
        try:
            return src.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return src.name


def _merge_short_dropouts(runs, max_frames):
    merged = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= max_frames:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def detect_stances(trial: Trial, rules: StanceRules | None = None, *, rejected: list | None = None,
                   **overrides) -> list[Stance]:
    """Loaded intervals of every plate's vertical GRF, ordered by start frame (accepted ones, side possibly
    'unknown'); rejected intervals (with their ``reason``) are appended to ``rejected`` if given.

    A stance is a run of frames with vertical force above ``rules.threshold`` N; runs separated by a dropout of
    at most ``max_dropout`` s (force noise around the threshold) are merged. Rejected: intervals cut by the
    recording and intervals shorter than ``min_duration`` s. NaN force counts as unloaded. ``overrides``
    (``threshold=``, ``min_duration=``, ...) replace single rules.

    Cut by the recording means loaded at the first (last) frame with a vertical force above ``edge_force``
    (default ``2 * threshold``): the recording then starts (ends) inside the stance. A first-frame force
    between ``threshold`` and ``edge_force`` is the loading onset itself -- a file trimmed at heel strike by a
    lower threshold, as the Grand Challenge stance files are (19-28 N at their first frame) -- and is kept,
    the stance starting at frame 0 (heel strike at the first frame's time).

    The foot on the plate is the side of the foot marker (heel, toe, metatarsal, ... named with R/L prefixes or
    ``_r``/``_l`` suffixes) nearest, in the horizontal plane, to the mean CoP over the middle third of the
    stance. If the trial has no sided foot markers (or, with one side only, none within ``foot_on_plate`` m),
    the side comes from ``meta['plate_sides'][plate_name]``, then ``meta['side']``, then a heel-strike event
    (on that plate or on none) within ``event_tolerance`` s of the force onset; failing all, the stance is
    marked ``side='unknown'`` (:func:`segment` rejects it).
    """
    rules = dataclasses.replace(rules or StanceRules(), **overrides)
    threshold = rules.threshold
    min_duration, max_dropout, edge_force = rules.min_duration, rules.max_dropout, rules.edge_force
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
                    rejected.append(Stance(a, b, 'unknown', p, pname, 'none', reason))
                continue
            side, how = _stance_side(trial, p, a, b, rules)
            found.append(Stance(a, b, side, p, pname, how))
    return sorted(found, key=lambda s: (s.start, s.plate))


def _stance_side(trial: Trial, plate: int, start: int, stop: int, rules: StanceRules) -> tuple[str, str]:
    side = _side_from_markers(trial, plate, start, stop, rules.foot_on_plate)
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
             and abs(e.time - t0) <= rules.event_tolerance}
    if len(sides) == 1:
        return sides.pop(), "events"
    return "unknown", "none"


def _side_from_markers(trial: Trial, plate: int, start: int, stop: int, foot_on_plate: float) -> str | None:
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
    if len(best) == 1 and best[side] > foot_on_plate:
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


def _own_stance(trial: Trial, rules: StanceRules) -> Stance:
    """The stance a reader marked (``meta['stance_frames']``), checked as detected ones are."""
    try:
        start, stop = (int(v) for v in trial.meta["stance_frames"])
    except (TypeError, ValueError):
        return Stance(0, 0, "unknown", reason=f"stance frames {trial.meta['stance_frames']!r} are not two frame indices")
    side = trial.meta.get("side") if trial.meta.get("side") in SIDES else "unknown"
    plate = int(trial.meta.get("plate_index", -1))
    name = trial.plate_names[plate] if 0 <= plate < len(trial.plate_names) else ""
    reason = None
    if not (0 <= start < stop <= trial.n_frames):
        reason = f"the file's stance frames {start}:{stop} lie outside its {trial.n_frames} frames"
    elif trial.n_frames < 2 or (stop - start) / trial.rate < rules.min_duration:
        dur = f"{(stop - start) / trial.rate:.3f} s" if trial.n_frames > 1 else f"{stop - start} frame(s)"
        reason = f"stance too short ({dur} < {rules.min_duration:g} s)"
    elif trial.plate_names:
        fv = trial.forces[start:stop, :, trial.vertical_index]
        if not (np.nan_to_num(fv, nan=-np.inf) > rules.threshold).any():
            reason = f"no plate carries more than {rules.threshold:g} N in the file's stance frames"
    if reason is None and side not in SIDES:
        reason = "foot on plate unknown (the file names no side)"
    return Stance(start, stop, side, plate, name, "meta", reason)


def segment(trial: Trial, rules: StanceRules | None = None, *, key: str | None = None,
            root: str | os.PathLike | None = None) -> list[Stance]:
    """Every stance candidate of ``trial`` in time order: accepted ones with ids ``<key>#<k>``, rejected ones
    with their reason. ``key`` defaults to :func:`trial_key` of the trial's source relative to ``root``.

    Frames are frames of ``trial``. Run it on the trial as recorded (gap-filled, not low-passed); cut the
    stances from any trial on the same frames (a filtered one: :func:`cut`)."""
    rules = rules or StanceRules()
    key = key or trial_key(trial.source, root, fallback=str(trial.meta.get("trial", "trial")))
    if trial.meta.get("single_stance") and trial.meta.get("stance_frames") is not None:
        found = [_own_stance(trial, rules)]
    else:
        if not trial.plate_names:
            raise MissingChannelError("no force plate: stances cannot be detected", source=trial.source)
        rejected: list[Stance] = []
        found = detect_stances(trial, rules, rejected=rejected)
        found = [s if s.side in SIDES else dataclasses.replace(s, reason=_unknown_side_reason(trial, s))
                 for s in found]
        found = sorted(found + rejected, key=lambda s: (s.start, s.plate))
    out, k = [], 0
    for s in found:
        s = dataclasses.replace(s, trial=key, subject=trial.subject.id, source=str(trial.source or ""))
        if s.accepted:
            s = dataclasses.replace(s, id=f"{key}#{k}", index=k)
            k += 1
        out.append(s)
    return out


def _unknown_side_reason(trial: Trial, s: Stance) -> str:
    feet = [n for n in trial.marker_names if _FOOT_WORDS.search(n) and side_of_name(n)]
    if not feet:
        return ("foot on plate unknown: no foot marker named with a side (RHEE, L_TOE ...), no plate side, "
                "trial side or heel-strike event in the file")
    return f"foot on plate unknown: no foot marker within the foot-on-plate distance of {s.plate_name}'s CoP"


def accepted(stances) -> list[Stance]:
    return [s for s in stances if s.accepted]


def cut(trial: Trial, stance: Stance, *, all_plates: bool = False, rules: StanceRules | None = None) -> Trial:
    """The stance's frames of ``trial`` as a Trial (any trial on the frames :func:`segment` saw: raw,
    filtered, causally filtered).

    Meta ``side``, ``stance_id``, ``stance_index``, ``stance_start`` (frame in ``trial``), ``plate`` and
    ``plate_index``; events ``heel_strike`` and ``toe_off`` of its side at the (linearly interpolated)
    threshold crossings replace earlier ones of that side in the window. With ``all_plates`` every plate is
    kept (the physics labeller applies every loaded plate); else only the stance's own plate (features).
    """
    if not stance.accepted:
        raise GaitforceError(f"stance rejected: {stance.reason}", source=trial.source)
    rules = rules or StanceRules()
    part = trial.slice_frames(stance.start, stance.stop,
                              note=f"stance {stance.id or stance.index}: frames {stance.start}:{stance.stop}"
                                   + (f" on {stance.plate_name}" if stance.plate_name else ""))
    meta = {**part.meta, "side": stance.side, "stance_id": stance.id, "stance_index": stance.index,
            "stance_start": stance.start, "side_from": stance.side_from}
    if stance.plate < 0 or not trial.plate_names:
        return part.replace(meta=meta)
    fv = trial.forces[:, stance.plate, trial.vertical_index]
    hs = _crossing_time(trial, fv, stance.start - 1, stance.start, rules.threshold)
    to = _crossing_time(trial, fv, stance.stop - 1, stance.stop, rules.threshold)
    events = [e for e in part.events if not (e.side == stance.side and e.name in ("heel_strike", "toe_off"))]
    events += [Event("heel_strike", hs, stance.side, plate=stance.plate),
               Event("toe_off", to, stance.side, plate=stance.plate)]
    meta.update(plate=stance.plate_name, plate_index=stance.plate)
    if all_plates:
        return part.replace(events=tuple(events), meta=meta)
    p = [stance.plate]
    return part.replace(forces=part.forces[:, p], cop=part.cop[:, p], free_moment=part.free_moment[:, p],
                        plate_names=(stance.plate_name,), events=tuple(events), meta=meta,
                        note=f"stance: {stance.side} foot on {stance.plate_name}, side from {stance.side_from}")


def extract_stances(trial: Trial, *, rejected: list | None = None, **rules) -> list[Trial]:
    """Each accepted stance of :func:`segment` cut out with its own plate (``rules``: :class:`StanceRules`
    fields); rejected candidates are appended to ``rejected`` if given."""
    r = StanceRules(**rules)
    out = []
    for s in segment(trial, r):
        if s.accepted:
            out.append(cut(trial, s, rules=r))
        elif rejected is not None:
            rejected.append(s)
    return out
