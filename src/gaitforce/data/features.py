"""Model inputs: 18 named marker slots, marker maps, the stance frame and the feature sets.

Slots (the paper's 18 markers: 4 pelvis + 14 of the stance limb), in model-input order:

========================  ===============================================================================
pelvis                    ``asis_ipsi``, ``asis_contra``, ``psis_ipsi``, ``psis_contra`` (ipsi = stance side)
thigh                     ``thigh_sup``, ``thigh_lat``, ``thigh_inf`` (technical markers, proximal to distal),
                          ``knee_lat``, ``knee_med`` (femoral epicondyles)
shank                     ``shank_sup``, ``shank_lat``, ``shank_inf``, ``ankle_lat``, ``ankle_med`` (malleoli)
foot                      ``heel``, ``toe`` (2nd metatarsal head / toe), ``foot_lat`` (5th metatarsal),
                          ``foot_med`` (1st metatarsal)
========================  ===============================================================================

Marker maps (JSON files in ``gaitforce/data/markers_*.json``, or a user file) give, per slot, candidate lab
marker names tried in order; ``{I}``/``{C}`` stand for the ipsilateral/contralateral side prefix of the map's
``sides`` (e.g. ``{I}KNE`` -> ``RKNE`` for a right stance, ``LKNE`` for a left one). A candidate may also be
``{"mean": [names...]}``, a virtual marker at the mean of those markers. A marker that is absent or never
seen does not match; names match after :func:`normalise_name` (case, spaces, dots, underscores, hyphens and a
``Subject:`` prefix ignored). Packaged maps: ``gc-mat``, ``gc-lab`` (Grand Challenge), ``plug-in-gait`` (full and
lower body), ``opensim`` (the OpenSim / AddBiomechanics / OpenCap example sets), ``cast-ior``, ``cleveland``
(Cleveland Clinic / Helen Hayes and long-form lower-case names); ``auto`` takes the one matching most slots.

**Fill rule**: a slot no candidate fills takes the centroid of the slots of its segment that were matched (per
frame), unless more than :data:`MAX_FILLED_SLOTS` (9) of the 18 slots would be filled or a segment has fewer than
:data:`MIN_SEGMENT_MARKERS` (2) distinct matched markers: then :class:`MissingChannelError`, naming the missing
slots. The filled slots are recorded in the trial's history, ``meta['filled_slots']``, the dataset manifest,
the bundle and the prediction CSV.

Stance frame: left stances are mirrored into the right-limb frame (:func:`gaitforce.signal.mirror.mirror_left`),
then rotated about the vertical so progression is +x (:func:`gaitforce.signal.mirror.align_progression`), then
translated so the origin is the CoP at heel strike (first frame with >= 80 N vertical GRF), on the floor: x forward, y up,
z to the right (lateral for the stance limb).

Feature sets (columns ``<slot>_x|y|z``, ``grf_x|y|z`` (N, on the body), ``cop_x|y|z`` (m), angles in deg,
knee moments in N m, lever arms in m):
``all`` (20, 3) = 18 slots + GRF + CoP; ``kinematics`` (18, 3); ``force_plate`` (2, 3) = GRF + CoP;
``angles_grf`` (4, 3) = hip, knee, ankle angles + GRF; ``grf_moments`` (1, 7) = GRF + the knee moments and
lever arms below. CoP at unloaded frames (NaN) takes the nearest loaded value.

Knee moments (physics-informed features, issue 17): the external moment of the GRF about the knee centre ``k``
(the mid-point of ``knee_lat`` and ``knee_med``), ``M = (CoP - k) x GRF``, in the stance frame (x forward, y up,
z lateral; a left stance is mirrored, so both sides read as a right limb): ``knee_add_moment = M_x`` (+ external
adduction: the GRF passes medial to the knee), ``knee_flex_moment = -M_z`` (+ external flexion: the GRF passes
behind the knee). Their lever arms are the moment over the GRF's component in that plane (frontal: y, z;
sagittal: x, y), i.e. the perpendicular distance of the GRF line from the knee centre in that plane (m), and 0
at frames whose in-plane force is under :data:`gaitforce.constants.COP_THRESHOLD_N`. Moments are in N m; a
``body_weight_norm`` estimator divides them by body weight (N), as it does the GRF (so the network sees m, i.e.
the moment in body weights x metres); datasets store no height, so they are not divided by height.

Joint angles: segment frames from markers (pelvis: z from contralateral to ipsilateral ASIS, x towards the
mid-ASIS from the mid-PSIS; hip centre by Bell et al. 1990, (-0.19, -0.30, +0.36) x inter-ASIS width in the
pelvis frame; thigh: y from the knee centre (mid-epicondyles) to the hip centre, z towards the lateral
epicondyle; shank: y from the ankle centre (mid-malleoli) to the knee centre, z towards the lateral malleolus;
foot: x from heel to toe, z towards the lateral malleolus). The distal frame relative to the proximal one is
decomposed as intrinsic Cardan angles Z-X-Y, which equals the joint coordinate system of Grood & Suntay
(flexion about the proximal z, ab/adduction about the floating axis, rotation about the distal y).
Signs: ``hip_flex`` + flexion, ``knee_flex`` + flexion, ``ankle_flex`` + dorsiflexion (with the constant offset
of the heel-toe line), ``*_add`` + adduction, ``*_rot`` + internal rotation.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from gaitforce.constants import COP_THRESHOLD_N, ORIGIN_MIN_FORCE_N
from gaitforce.errors import GaitforceError, InputFileError, MissingChannelError
from gaitforce.signal.mirror import _progression_direction
from gaitforce.trial import Trial

PELVIS_SLOTS = ("asis_ipsi", "asis_contra", "psis_ipsi", "psis_contra")
THIGH_SLOTS = ("thigh_sup", "thigh_lat", "thigh_inf", "knee_lat", "knee_med")
SHANK_SLOTS = ("shank_sup", "shank_lat", "shank_inf", "ankle_lat", "ankle_med")
FOOT_SLOTS = ("heel", "toe", "foot_lat", "foot_med")
SEGMENTS = {"pelvis": PELVIS_SLOTS, "thigh": THIGH_SLOTS, "shank": SHANK_SLOTS, "foot": FOOT_SLOTS}
SLOTS = PELVIS_SLOTS + THIGH_SLOTS + SHANK_SLOTS + FOOT_SLOTS
SEGMENT_OF = {slot: seg for seg, slots in SEGMENTS.items() for slot in slots}
AXES = ("x", "y", "z")
ANGLES = tuple(f"{j}_{a}" for j in ("hip", "knee", "ankle") for a in ("flex", "add", "rot"))

#: Vertical GRF (N) from which the CoP fixes the stance-frame origin (see :func:`heel_strike_origin`).
ORIGIN_MIN_FORCE = ORIGIN_MIN_FORCE_N
#: Bell et al. (1990) hip joint centre in the pelvis frame, as fractions of the inter-ASIS width.
BELL_HJC = np.array([-0.19, -0.30, 0.36])

SLOT_COLUMNS = [f"{s}_{a}" for s in SLOTS for a in AXES]
GRF_COLUMNS = [f"grf_{a}" for a in AXES]
COP_COLUMNS = [f"cop_{a}" for a in AXES]
#: external knee moments (N m) of the GRF about the knee centre and their lever arms (m); see the module doc
MOMENT_COLUMNS = ["knee_add_moment", "knee_flex_moment", "knee_add_lever", "knee_flex_lever"]
#: moment columns in N m: divided by body weight (N) like the GRF under ``body_weight_norm``
BW_SCALED_MOMENTS = ("knee_add_moment", "knee_flex_moment")
FEATURE_SETS = {
    "all": (SLOT_COLUMNS + GRF_COLUMNS + COP_COLUMNS, (20, 3)),
    "kinematics": (SLOT_COLUMNS, (18, 3)),
    "force_plate": (GRF_COLUMNS + COP_COLUMNS, (2, 3)),
    "angles_grf": (list(ANGLES) + GRF_COLUMNS, (4, 3)),
    "grf_moments": (GRF_COLUMNS + MOMENT_COLUMNS, (1, 7)),
}


# ---------------------------------------------------------------------------------------------------------
# marker maps
# ---------------------------------------------------------------------------------------------------------
PACKAGED_MAPS = {"gc-mat": "markers_gc_mat.json", "gc-lab": "markers_gc_lab.json",
                 "plug-in-gait": "markers_plug_in_gait.json", "opensim": "markers_opensim.json",
                 "cast-ior": "markers_cast_ior.json", "cleveland": "markers_cleveland.json"}
#: The fill rule's limits: a stance is refused when more than this many of the 18 slots would be filled ...
MAX_FILLED_SLOTS = 9
#: ... or when a segment has fewer than this many distinct matched markers (one marker gives no orientation,
#: and every slot filled from it would sit on that marker).
MIN_SEGMENT_MARKERS = 2


def list_marker_maps() -> list[str]:
    return list(PACKAGED_MAPS)


def normalise_name(name: str) -> str:
    """A marker name as maps match it: a ``Subject:`` prefix dropped, lower case, no spaces, dots, underscores
    or hyphens (``R.ASIS``, ``R_ASIS``, ``r asis`` and ``RASIS`` are one name)."""
    return re.sub(r"[^0-9a-z]", "", str(name).rsplit(":", 1)[-1].lower())


def load_marker_map(name_or_path: str | os.PathLike | Mapping) -> dict:
    """A marker map by packaged name (:func:`list_marker_maps`), JSON file path, or an already-loaded dict."""
    if isinstance(name_or_path, Mapping):
        spec = dict(name_or_path)
        source = spec.get("name", "(in memory)")
    elif str(name_or_path) in PACKAGED_MAPS:
        source = str(name_or_path)
        text = resources.files("gaitforce").joinpath("data", PACKAGED_MAPS[source]).read_text()
        spec = json.loads(text)
    else:
        source = Path(name_or_path)
        if not source.is_file():
            raise InputFileError(
                f"no marker map file (packaged maps: {', '.join(PACKAGED_MAPS)}, or 'auto')", source=source
            )
        try:
            spec = json.loads(source.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputFileError(f"marker map is not valid JSON: {err}", source=source) from None
        if not isinstance(spec, dict):
            raise InputFileError("marker map must be a JSON object with 'slots'", source=source)
    _validate_map(spec, source)
    return spec


def _validate_map(spec: dict, source) -> None:
    slots = spec.get("slots")
    if not isinstance(slots, dict):
        raise InputFileError("marker map needs a 'slots' object", source=source)
    unknown = sorted(set(slots) - set(SLOTS))
    if unknown:
        raise InputFileError(f"marker map names unknown slots {unknown} (slots: {', '.join(SLOTS)})", source=source)
    for slot, cands in slots.items():
        ok = isinstance(cands, list) and all(
            isinstance(c, str) or (isinstance(c, dict) and set(c) == {"mean"} and isinstance(c["mean"], list)
                                   and c["mean"] and all(isinstance(n, str) for n in c["mean"]))
            for c in cands)
        if not ok:
            raise InputFileError(f"marker map slot {slot!r}: a list of marker names or {{\"mean\": [names]}} "
                                 "is needed", source=source)
    sides = spec.get("sides", {"right": "R", "left": "L"})
    if not isinstance(sides, dict) or set(sides) != {"right", "left"} or not all(
            isinstance(v, str) for v in sides.values()):
        raise InputFileError("marker map 'sides' must give 'right' and 'left' prefixes", source=source)
    spec.setdefault("sides", sides)
    spec.setdefault("name", str(source))


def _expand(template: str, spec: dict, side: str) -> str:
    other = "left" if side == "right" else "right"
    return template.replace("{I}", spec["sides"][side]).replace("{C}", spec["sides"][other])


def _name_index(trial: Trial) -> dict[str, int]:
    """{normalised name: marker index} (the first marker of a normalised name wins)."""
    out: dict[str, int] = {}
    for k, name in enumerate(trial.marker_names):
        out.setdefault(normalise_name(name), k)
    return out


def _seen(trial: Trial, name: str, index: dict[str, int]) -> tuple[np.ndarray | None, str]:
    k = index.get(normalise_name(name))
    if k is None:
        return None, name
    xyz = np.asarray(trial.markers[:, k], float)
    return (xyz if np.isfinite(xyz).all(axis=1).any() else None), trial.marker_names[k]


def _candidate(trial: Trial, cand, spec: dict, side: str, index: dict[str, int] | None = None
               ) -> tuple[np.ndarray | None, str]:
    index = _name_index(trial) if index is None else index
    if isinstance(cand, str):
        return _seen(trial, _expand(cand, spec, side), index)
    parts = [_seen(trial, _expand(c, spec, side), index) for c in cand["mean"]]
    if any(p is None for p, _ in parts):
        return None, ""
    return np.mean([p for p, _ in parts], axis=0), "mean(" + ", ".join(n for _, n in parts) + ")"


def resolve_slots(trial: Trial, marker_map: str | Mapping = "auto", *, side: str | None = None):
    """Positions of the 18 slots, (T, 18, 3), ``{slot: how it was filled}`` (the file's marker name, a virtual
    marker ``mean(...)`` or ``centroid(segment: slots)``) and the map. ``side`` defaults to
    ``trial.meta['side']``. Names match after :func:`normalise_name`.

    The fill rule: a slot no candidate fills takes the centroid of its segment's matched slots, unless more than
    :data:`MAX_FILLED_SLOTS` slots would be filled or a segment has fewer than :data:`MIN_SEGMENT_MARKERS`
    distinct matched markers: then :class:`MissingChannelError`, naming the missing slots."""
    side = side or trial.meta.get("side")
    if side not in ("right", "left"):
        raise GaitforceError(f"stance side unknown ({side!r}): cannot pick the ipsilateral markers", source=trial.source)
    spec = choose_marker_map(trial, side=side) if marker_map == "auto" else load_marker_map(marker_map)
    index = _name_index(trial)
    pos = np.full((trial.n_frames, len(SLOTS), 3), np.nan)
    how: dict[str, str] = {}
    for k, slot in enumerate(SLOTS):
        for cand in spec["slots"].get(slot, []):
            xyz, name = _candidate(trial, cand, spec, side, index)
            if xyz is not None:
                pos[:, k], how[slot] = xyz, name
                break
    _check_fill_rule(trial, spec, side, how)
    for seg, slots in SEGMENTS.items():
        have = [s for s in slots if s in how]
        for slot in slots:
            if slot in how:
                continue
            idx = [SLOTS.index(s) for s in have]
            pos[:, SLOTS.index(slot)] = pos[:, idx].mean(axis=1)
            how[slot] = f"centroid({seg}: {', '.join(have)})"
    return pos, how, spec


def _check_fill_rule(trial: Trial, spec: dict, side: str, how: dict[str, str]) -> None:
    missing = [s for s in SLOTS if s not in how]
    thin = {seg: sorted({how[s] for s in slots if s in how}) for seg, slots in SEGMENTS.items()}
    thin = {seg: names for seg, names in thin.items() if len(names) < MIN_SEGMENT_MARKERS}
    if len(missing) <= MAX_FILLED_SLOTS and not thin:
        return
    why = []
    if len(missing) > MAX_FILLED_SLOTS:
        why.append(f"{len(missing)} of 18 slots would be filled (at most {MAX_FILLED_SLOTS})")
    for seg, names in thin.items():
        why.append(f"{seg} has {len(names)} marker{'' if len(names) == 1 else 's'}"
                   + (f" ({', '.join(names)})" if names else "") + f", {MIN_SEGMENT_MARKERS} needed")
    first = {s: _expand(c, spec, side) for s in missing for c in spec["slots"].get(s, [])[:1] if isinstance(c, str)}
    named = ", ".join(f"{s} ({first[s]}...)" if s in first else s for s in missing)
    raise MissingChannelError(
        f"too few markers for marker map {spec['name']!r} ({side} stance): {'; '.join(why)}; missing slots: "
        f"{named}; give --marker-map FILE.json naming this lab's markers (docs/readers.md, marker maps)",
        source=trial.source,
    )


def _score(trial: Trial, spec: dict, side: str, index: dict[str, int]) -> int:
    return sum(any(_candidate(trial, c, spec, side, index)[0] is not None for c in spec["slots"].get(slot, []))
               for slot in SLOTS)


def choose_marker_map(trial: Trial, *, side: str = "right") -> dict:
    """The packaged map whose candidates match the most slots in ``trial`` (ties: listed order)."""
    best, best_score = None, -1
    index = _name_index(trial)
    for name in PACKAGED_MAPS:
        spec = load_marker_map(name)
        score = _score(trial, spec, side, index)
        if score > best_score:
            best, best_score = spec, score
    if best_score < 6:
        shown = ", ".join(trial.marker_names[:8]) + (" ..." if len(trial.marker_names) > 8 else "")
        raise MissingChannelError(
            f"no packaged marker map fits this trial's markers (best: {best['name']!r}, {best_score} of 18 slots; "
            f"markers: {shown or 'none'}): give --marker-map FILE.json",
            source=trial.source,
        )
    return best


def describe_slots(map_name: str, how: Mapping[str, str]) -> str:
    """One line: the map, the slots matched, and the slots filled with what they were filled from."""
    filled = {s: h for s, h in how.items() if h.startswith("centroid")}
    text = f"marker map {map_name}: {len(how) - len(filled)} of {len(SLOTS)} slots matched"
    if not filled:
        return text + ", none filled"
    by_source: dict[str, list[str]] = {}
    for s, h in filled.items():
        by_source.setdefault(h, []).append(s)
    return text + f", {len(filled)} filled: " + "; ".join(f"{', '.join(s)} <- {h}" for h, s in by_source.items())


# ---------------------------------------------------------------------------------------------------------
# stance frame
# ---------------------------------------------------------------------------------------------------------
def slot_trial(trial: Trial, marker_map: str | Mapping = "auto") -> Trial:
    """The trial with its markers replaced by the 18 slots (named by slot), history and meta recording fills."""
    pos, how, spec = resolve_slots(trial, marker_map)
    filled = {s: h for s, h in how.items() if h.startswith("centroid")}
    return trial.replace(
        markers=pos,
        marker_names=SLOTS,
        meta={**trial.meta, "marker_map": spec["name"], "slot_sources": how, "filled_slots": filled,
              "slots_line": describe_slots(spec["name"], how)},
        note=f"slots from marker map {spec['name']!r}" + (f"; filled by segment centroid: {', '.join(filled)}" if filled else ""),
    )


def no_slot_trial(trial: Trial) -> Trial:
    """The trial with NaN slots, for a model that reads only the force plate (its marker features are NaN)."""
    return trial.replace(
        markers=np.full((trial.n_frames, len(SLOTS), 3), np.nan), marker_names=SLOTS,
        meta={**trial.meta, "marker_map": "none", "slot_sources": {}, "filled_slots": {},
              "slots_line": "no markers used (force-plate model)"},
        note="markers not used: force-plate model")


#: ``--progression`` values: the horizontal axis of the Y-up lab frame along which the subject walks.
PROGRESSIONS = {"+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0), "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0)}
#: A plate carrying this many stances of one trial is a treadmill (overground, a plate takes one step of a pass).
TREADMILL_STANCES = 3


def cop_progression(stance: Trial, *, treadmill: bool) -> np.ndarray | None:
    """Progression of a marker-less stance (Y-up) from its CoP travel, heel strike to toe off: along it
    overground; opposite to it on a treadmill, where the belt carries the foot backwards faster than the CoP
    rolls forward. None when the CoP moves less than 5 cm."""
    _, cop = grf_and_cop(stance.to_y_up())
    ok = np.flatnonzero(np.isfinite(cop).all(axis=1))
    if ok.size < 2:
        return None
    d = cop[ok[-1]] - cop[ok[0]]
    d[1] = 0.0
    if np.linalg.norm(d) < 0.05:
        return None
    d = d / np.linalg.norm(d)
    return -d if treadmill else d


def marker_progression(stance: Trial, *, min_travel: float = 0.1) -> np.ndarray | None:
    """Progression of a stance (Y-up) from its markers' travel, heel strike to toe off: the median horizontal
    displacement of the markers seen at both ends, whatever their names (the body moves about 0.5-0.8 m over a
    walking stance overground). None with fewer than 3 such markers or under ``min_travel`` m (a treadmill, a
    subject standing): the caller then has no direction from the markers."""
    if stance.markers is None or stance.n_frames < 2:
        return None
    y = stance.to_y_up().markers
    first, last = y[0], y[-1]
    ok = np.isfinite(first).all(axis=1) & np.isfinite(last).all(axis=1)
    if ok.sum() < 3:
        return None
    d = np.median(last[ok] - first[ok], axis=0)
    d[1] = 0.0
    if np.linalg.norm(d) < min_travel:
        return None
    return d / np.linalg.norm(d)


def grf_and_cop(trial: Trial) -> tuple[np.ndarray, np.ndarray]:
    """Force summed over plates (T, 3), NaN in frames where a plate's force is unknown, and the
    vertical-force-weighted CoP (T, 3) of the plates that are loaded and have a CoP; NaN where none is.
    (``Trial.total_grf`` instead makes the CoP unknown when any loaded plate's CoP is.)"""
    force = trial.forces.sum(axis=1)
    fv = trial.forces[:, :, trial.vertical_index]
    use = np.isfinite(trial.cop).all(axis=2) & (fv > 0)
    w = np.where(use, fv, 0.0)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cop = (np.nan_to_num(trial.cop) * w[:, :, None]).sum(axis=1) / total[:, None]
    cop[total <= 0] = np.nan
    return force, cop


def heel_strike_origin(trial: Trial, *, min_force: float | None = None) -> np.ndarray:
    """The heel-strike CoP, a 3-vector on the floor: the CoP at the first frame whose vertical GRF reaches
    ``min_force`` (default :data:`ORIGIN_MIN_FORCE`), else at the first loaded frame. Below ~80 N a plate's CoP
    is noise-dominated (Grand Challenge JW GC4 og3: 13 cm behind the heel marker at 39 N, 2 cm at 100 N)."""
    min_force = ORIGIN_MIN_FORCE if min_force is None else min_force
    force, cop = grf_and_cop(trial)
    ok = np.flatnonzero(np.isfinite(cop).all(axis=1) & (force[:, trial.vertical_index] >= min_force))
    if ok.size == 0:
        ok = np.flatnonzero(np.isfinite(cop).all(axis=1))
    if ok.size == 0:
        raise MissingChannelError("no loaded frame: the stance has no centre of pressure", source=trial.source)
    return cop[ok[0]].copy()


#: Reflection through the sagittal plane in the Y-up frame (a left stance into the right-limb frame).
MIRROR = np.diag([1.0, 1.0, -1.0])
UP = np.array([0.0, 1.0, 0.0])


def stance_rotation(direction: np.ndarray, side: str) -> np.ndarray:
    """The 3x3 map from the Y-up lab frame to the stance frame: a left stance mirrored (``MIRROR``), then rotated
    about the vertical so the (mirrored) horizontal ``direction`` of progression is +x, y up, z = x cross y."""
    m = MIRROR if side == "left" else np.eye(3)
    d = m @ np.asarray(direction, float)
    return np.array([d, UP, np.cross(d, UP)]) @ m


def stance_frame(trial: Trial, direction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rotation, origin)`` of a stance (Y-up, ``meta['side']``) by the offline rules: progression is
    ``direction`` where given (a horizontal vector in the Y-up lab frame), else the marker-centroid displacement
    over the stance (:func:`gaitforce.signal.mirror.align_progression`'s rule), the origin the heel-strike CoP
    (:func:`heel_strike_origin`) in the lab frame."""
    trial = trial.to_y_up()
    side = trial.meta.get("side")
    if side not in ("right", "left"):
        raise GaitforceError(f"stance side unknown ({side!r}): cannot build the stance frame", source=trial.source)
    d = _progression_direction(trial) if direction is None else np.asarray(direction, float)
    if d is None:
        raise GaitforceError("no direction of progression: markers and CoP move less than 5 cm", source=trial.source)
    return stance_rotation(d, side), heel_strike_origin(trial)


def to_stance_frame(trial: Trial) -> Trial:
    """The stance as a Trial in its stance frame (:func:`stance_frame`): mirrored if left, progression +x,
    origin at the heel-strike CoP."""
    rot, origin = stance_frame(trial)
    out = trial.to_y_up()
    out = out.replace(markers=out.markers - origin, cop=out.cop - origin, note="stance frame: origin moved").rotate(
        rot, note=f"stance frame: origin at the heel-strike CoP {np.round(origin, 4).tolist()} (m, lab), "
                  f"{'mirrored, ' if out.meta.get('side') == 'left' else ''}progression +x")
    return out.replace(meta={**out.meta, "stance_origin_lab": origin.tolist()})


# ---------------------------------------------------------------------------------------------------------
# joint angles
# ---------------------------------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _frame_from_y(y_vec: np.ndarray, z_hint: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation whose columns are x, y, z with y along ``y_vec`` and z near ``z_hint``."""
    y = _unit(y_vec)
    x = _unit(np.cross(y, z_hint))
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def segment_frames(p: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pelvis, thigh, shank and foot rotation matrices (T, 3, 3) and the hip centre from slot positions."""
    mid_asis = (p["asis_ipsi"] + p["asis_contra"]) / 2
    mid_psis = (p["psis_ipsi"] + p["psis_contra"]) / 2
    z_p = _unit(p["asis_ipsi"] - p["asis_contra"])
    y_p = _unit(np.cross(z_p, mid_asis - mid_psis))
    pelvis = np.stack([np.cross(y_p, z_p), y_p, z_p], axis=-1)
    width = np.linalg.norm(p["asis_ipsi"] - p["asis_contra"], axis=-1, keepdims=True)
    hjc = mid_asis + np.einsum("tij,j->ti", pelvis, BELL_HJC) * width
    kjc = (p["knee_lat"] + p["knee_med"]) / 2
    ajc = (p["ankle_lat"] + p["ankle_med"]) / 2
    thigh = _frame_from_y(hjc - kjc, p["knee_lat"] - p["knee_med"])
    shank = _frame_from_y(kjc - ajc, p["ankle_lat"] - p["ankle_med"])
    x_f = _unit(p["toe"] - p["heel"])
    y_f = _unit(np.cross(p["ankle_lat"] - p["ankle_med"], x_f))
    foot = np.stack([x_f, y_f, np.cross(x_f, y_f)], axis=-1)
    return {"pelvis": pelvis, "thigh": thigh, "shank": shank, "foot": foot, "hjc": hjc}


def cardan_zxy(proximal: np.ndarray, distal: np.ndarray) -> np.ndarray:
    """(T, 3) intrinsic Z-X-Y angles in degrees of ``distal`` relative to ``proximal`` (NaN where undefined)."""
    rel = np.einsum("tji,tjk->tik", proximal, distal)
    out = np.full((rel.shape[0], 3), np.nan)
    ok = np.isfinite(rel).all(axis=(1, 2))
    if ok.any():
        out[ok] = Rotation.from_matrix(rel[ok]).as_euler("ZXY", degrees=True)
    return out


def joint_angles(slots: np.ndarray) -> dict[str, np.ndarray]:
    """Hip, knee and ankle angles (deg) from slot positions (T, 18, 3), signs as in the module docstring."""
    p = {s: slots[:, k] for k, s in enumerate(SLOTS)}
    f = segment_frames(p)
    hip = cardan_zxy(f["pelvis"], f["thigh"])
    knee = cardan_zxy(f["thigh"], f["shank"])
    ankle = cardan_zxy(f["shank"], f["foot"])
    knee[:, 0] *= -1.0
    out = {}
    for name, a in (("hip", hip), ("knee", knee), ("ankle", ankle)):
        out[f"{name}_flex"], out[f"{name}_add"], out[f"{name}_rot"] = a[:, 0], a[:, 1], a[:, 2]
    return out


# ---------------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------------
def _hold_nearest(x: np.ndarray) -> np.ndarray:
    """Rows with NaN take the nearest finite row (ties: the earlier one)."""
    ok = np.flatnonzero(np.isfinite(x).all(axis=1))
    if ok.size == 0 or ok.size == len(x):
        return x
    idx = np.arange(len(x))
    pos = np.clip(np.searchsorted(ok, idx), 1, ok.size - 1) if ok.size > 1 else np.zeros_like(idx)
    left, right = ok[np.maximum(pos - 1, 0)], ok[pos]
    nearest = np.where(np.abs(idx - left) <= np.abs(right - idx), left, right)
    return x[nearest]


def _slices() -> dict[str, slice]:
    cols, out, k = feature_columns(), {}, 0
    for name, part in (("slots", SLOT_COLUMNS), ("grf", GRF_COLUMNS), ("cop", COP_COLUMNS), ("angles", ANGLES),
                       ("moments", MOMENT_COLUMNS)):
        assert cols[k:k + len(part)] == list(part)
        out[name] = slice(k, k + len(part))
        k += len(part)
    return out


def knee_moments(slots: np.ndarray, grf: np.ndarray, cop: np.ndarray) -> np.ndarray:
    """(T, 4) external knee adduction and flexion moments (N m) of the GRF about the knee centre and their lever
    arms (m), :data:`MOMENT_COLUMNS` order, from stance-frame ``slots`` (T, 18, 3) m, ``grf`` (T, 3) N (on the
    body) and ``cop`` (T, 3) m (see the module doc for axes and signs)."""
    knee = (slots[:, SLOTS.index("knee_lat")] + slots[:, SLOTS.index("knee_med")]) / 2
    r = cop - knee
    m_x = r[:, 1] * grf[:, 2] - r[:, 2] * grf[:, 1]
    m_z = r[:, 0] * grf[:, 1] - r[:, 1] * grf[:, 0]
    add, flex = m_x, -m_z
    f_front = np.hypot(grf[:, 1], grf[:, 2])
    f_sag = np.hypot(grf[:, 0], grf[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        lever_add = np.where(f_front >= COP_THRESHOLD_N, add / f_front, 0.0)
        lever_flex = np.where(f_sag >= COP_THRESHOLD_N, flex / f_sag, 0.0)
    lever_add[~np.isfinite(add)] = np.nan
    lever_flex[~np.isfinite(flex)] = np.nan
    return np.column_stack([add, flex, lever_add, lever_flex])


def frame_features(slots: np.ndarray, grf: np.ndarray, cop: np.ndarray, rotation: np.ndarray, origin: np.ndarray,
                   *, angles: bool = True, moments: bool = True, out: np.ndarray | None = None) -> np.ndarray:
    """Every feature of frames, (T, F) in :func:`feature_columns` order: the one feature function of ingest
    (:func:`stance_features`) and the live stream (:class:`gaitforce.stream.online.OnlinePipeline`).

    Inputs in the Y-up lab frame: ``slots`` (T, 18, 3) m, ``grf`` (T, 3) N, ``cop`` (T, 3) m; ``rotation``
    (3, 3) and ``origin`` (3,) give the stance frame (:func:`stance_rotation`). ``angles=False`` leaves the
    joint angles NaN (a model that does not read them), ``moments=False`` the knee moments and lever arms
    (:func:`knee_moments`); ``out`` is filled in place where given."""
    n = slots.shape[0]
    out = np.full((n, len(_SLICES_CACHE["cols"])), np.nan) if out is None else out
    sl = _SLICES_CACHE["sl"]
    s = (slots - origin) @ rotation.T
    out[:, sl["slots"]] = s.reshape(n, -1)
    out[:, sl["grf"]] = grf @ rotation.T
    out[:, sl["cop"]] = (cop - origin) @ rotation.T
    if angles:
        ang = joint_angles(s)
        out[:, sl["angles"]] = np.column_stack([ang[a] for a in ANGLES])
    if moments:
        out[:, sl["moments"]] = knee_moments(s, out[:, sl["grf"]], out[:, sl["cop"]])
    return out


def stance_features(stance: Trial, direction: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every feature column of a stance with slot markers (:func:`slot_trial`, or :func:`no_slot_trial`), in the
    lab frame: the stance frame by :func:`stance_frame` (``direction``: the progression, where given), CoP at
    unloaded frames held from the nearest loaded one."""
    if stance.marker_names != SLOTS:
        raise GaitforceError("stance_features needs a slot trial (see slot_trial)", source=stance.source)
    stance = stance.to_y_up()
    rot, origin = stance_frame(stance, direction)
    force, cop = grf_and_cop(stance)
    x = frame_features(np.asarray(stance.markers), force, _hold_nearest(cop), rot, origin)
    return {c: x[:, k] for k, c in enumerate(feature_columns())}


def feature_sets_manifest() -> dict[str, dict[str, Any]]:
    """``manifest['feature_sets']``: name -> {'columns', 'shape'}."""
    return {name: {"columns": list(cols), "shape": list(shape)} for name, (cols, shape) in FEATURE_SETS.items()}


def feature_columns() -> list[str]:
    """All feature columns in store order: slots, GRF, CoP, angles, knee moments and lever arms."""
    return SLOT_COLUMNS + GRF_COLUMNS + COP_COLUMNS + list(ANGLES) + MOMENT_COLUMNS


_SLICES_CACHE = {"cols": feature_columns(), "sl": _slices()}
