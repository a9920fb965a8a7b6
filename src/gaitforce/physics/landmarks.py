"""Subject calibration from bony landmarks: which trial markers are which landmark, segment scale factors,
and the model's marker set built in code.

Landmarks used (per side): anterior and posterior superior iliac spines (ASIS, PSIS; a single sacral marker
stands in for both PSIS), lateral and medial femoral epicondyles, lateral and medial malleoli, heel and toe
(2nd metatarsal head / toe tip). Names are matched after lower-casing and dropping separators, with a side
prefix ``r``/``l``/``right``/``left`` (``R_Knee_Lateral``, ``RKNE``, ``RMKNE``, ``RankleMedial``, ...).

Joint centres: hip by the Harrington et al. 2007 (J Biomech 40:595-602) regression on pelvis width and depth;
knee and ankle as the mid-points of the epicondyles and malleoli. Scale factors (uniform per segment): pelvis
and trunk by ASIS width, femur by hip-knee centre distance, tibia and foot by knee-ankle centre distance.
Model markers are then placed in the scaled model's body frames from the measured geometry: ASIS/PSIS from
the hip centres, epicondyles and malleoli at the model's knee/ankle centre +- half the measured width along
the body's medio-lateral axis, heel and toe at their heights above the floor in the foot-flat frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from gaitforce.errors import MissingChannelError
from gaitforce.trial import Trial

ALIASES = {
    "asis": ("asis", "asi"),
    "psis": ("psis", "psi"),
    "knee_lat": ("kneelateral", "kneelat", "kne", "lfe", "lke", "lepi", "latknee"),
    "knee_med": ("kneemedial", "kneemed", "mkne", "knm", "mfe", "mke", "mepi", "medknee"),
    "ankle_lat": ("anklelateral", "anklelat", "ank", "lmal", "lma", "latankle"),
    "ankle_med": ("anklemedial", "anklemed", "mank", "mmal", "mma", "med", "medankle"),
    "heel": ("heel", "hee", "cal", "calc"),
    "toe": ("toe", "toetip", "mt2", "smh", "2mh", "toemed"),
}
SACRAL = ("sacral", "sacrum", "sacr", "vsacral")
REQUIRED = ("asis", "knee_lat", "ankle_lat", "heel", "toe")
#: Knee and ankle widths (m) used when neither side has its medial marker.
DEFAULT_WIDTH = {"knee": 0.10, "ankle": 0.07}

def _pelvis_width(hjc_z: float) -> float:
    """The ASIS width (m) whose Harrington et al. 2007 hip centre lies ``hjc_z`` m from the midline."""
    return (hjc_z * 1000 - 7.3) / 0.33 / 1000


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_landmarks(names) -> dict[tuple[str, str], str]:
    """(landmark, side) -> marker name, for every landmark found among ``names``."""
    found = {}
    for name in names:
        n = _norm(name)
        for side, prefixes in (("r", ("right", "r")), ("l", ("left", "l"))):
            for prefix in prefixes:
                if not n.startswith(prefix):
                    continue
                rest = n[len(prefix):]
                for landmark, aliases in ALIASES.items():
                    if rest in aliases:
                        found.setdefault((landmark, side), name)
        if n in SACRAL:
            found.setdefault(("psis", "mid"), name)
    return found


@dataclass
class Calibration:
    """Scale factors per body and marker locations (body, xyz in the scaled body frame) per marker name."""

    scales: dict[str, float]
    markers: dict[str, tuple[str, tuple[float, float, float]]]
    measures: dict[str, float] = field(default_factory=dict)
    legs: tuple[str, ...] = ("r", "l")  # the legs with landmarks (the other leg, if any, is not tracked)


def harrington_offset(width: float, depth: float, side: str) -> np.ndarray:
    """Hip centre from the ASIS mid-point in the pelvis frame (x fwd, y up, z right), m."""
    w, d = width * 1000, depth * 1000
    z = 0.33 * w + 7.3
    return np.array([-0.24 * d - 9.9, -0.30 * w - 10.9, z if side == "r" else -z]) / 1000


def _marker(trial: Trial, name: str) -> np.ndarray:
    """Positions of a marker with exact (0, 0, 0) samples taken as missing (the TRC convention for gaps)."""
    xyz = np.array(trial.marker(name), dtype=float)
    xyz[(xyz == 0).all(axis=1)] = np.nan
    return xyz


def legs_with_landmarks(lm: dict) -> tuple[str, ...]:
    """The sides ('r', 'l') whose lateral epicondyle, lateral malleolus, heel and toe are all among ``lm``."""
    return tuple(s for s in ("r", "l") if all((k, s) in lm for k in REQUIRED if k != "asis"))


def calibrate(trial: Trial, geometry=None) -> Calibration:
    """Scale factors and marker set for ``trial`` (Y-up, m), for a model of ``geometry`` (a
    :class:`gaitforce.physics.model.Geometry`; default the default model's)."""
    if geometry is None:
        from gaitforce.physics.model import spec

        geometry = spec().geometry
    model_hjc, model_femur = np.array(geometry.hip_centre, dtype=float), geometry.femur_length
    model_tibia, model_ankle = geometry.tibia_length, np.array(geometry.ankle_in_tibia, dtype=float)
    lm = find_landmarks(trial.marker_names)
    legs = legs_with_landmarks(lm)
    missing = [f"{s}:asis" for s in ("r", "l") if ("asis", s) not in lm]
    if not legs:
        missing += [f"{s}:{k}" for k in REQUIRED if k != "asis" for s in ("r", "l") if (k, s) not in lm]
        missing.append("(all of one leg at least)")
    if not any(("knee_med", s) in lm for s in "rl") or not any(("ankle_med", s) in lm for s in "rl"):
        missing.append("a medial epicondyle and a medial malleolus (one side at least)")
    if not (("psis", "r") in lm and ("psis", "l") in lm) and ("psis", "mid") not in lm:
        missing.append("both psis (or a sacral marker)")
    if missing:
        raise MissingChannelError(
            f"markers for the landmarks {', '.join(missing)} not found (see gaitforce.physics.landmarks.ALIASES)",
            source=trial.source,
        )
    p = {key: _marker(trial, name) for key, name in lm.items()}
    asis_mid = (p["asis", "r"] + p["asis", "l"]) / 2
    psis_mid = (p["psis", "r"] + p["psis", "l"]) / 2 if ("psis", "r") in p and ("psis", "l") in p else p["psis", "mid"]
    z = p["asis", "r"] - p["asis", "l"]
    width = np.nanmedian(np.linalg.norm(z, axis=1))
    depth = np.nanmedian(np.linalg.norm(asis_mid - psis_mid, axis=1))
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    x = asis_mid - psis_mid
    x = x - (x * z).sum(1, keepdims=True) * z
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(z, x)
    rot = np.stack([x, y, z], axis=2)  # columns: pelvis axes in the lab

    def nanmed_dist(a, b):
        return float(np.nanmedian(np.linalg.norm(a - b, axis=1)))

    def width_of(joint, s):
        if (f"{joint}_med", s) in p:
            return nanmed_dist(p[f"{joint}_lat", s], p[f"{joint}_med", s])
        other = "l" if s == "r" else "r"
        if (f"{joint}_med", other) in p:
            return nanmed_dist(p[f"{joint}_lat", other], p[f"{joint}_med", other])
        return DEFAULT_WIDTH[joint]

    def centre(joint, s, w):
        if (f"{joint}_med", s) in p:
            return (p[f"{joint}_lat", s] + p[f"{joint}_med", s]) / 2
        sign = 1.0 if s == "r" else -1.0  # the pelvis z axis points right
        return p[f"{joint}_lat", s] - sign * w / 2 * z

    measures = {"pelvis_width": float(width), "pelvis_depth": float(depth)}
    femur, tibia, knee_w, ankle_w = [], [], {}, {}
    for s in legs:
        knee_w[s] = width_of("knee", s)
        ankle_w[s] = width_of("ankle", s)
        hjc = asis_mid + np.einsum("tij,j->ti", rot, harrington_offset(width, depth, s))
        kjc = centre("knee", s, knee_w[s])
        ajc = centre("ankle", s, ankle_w[s])
        femur.append(nanmed_dist(hjc, kjc))
        tibia.append(nanmed_dist(kjc, ajc))
    s_pelvis = width / _pelvis_width(model_hjc[2])
    s_femur = float(np.mean(femur)) / model_femur
    s_tibia = float(np.mean(tibia)) / model_tibia
    measures.update(femur_length=float(np.mean(femur)), tibia_length=float(np.mean(tibia)))
    scales = {"pelvis": s_pelvis, "torso": s_pelvis, "head": s_pelvis}
    for s in ("r", "l"):
        scales.update({f"femur_{s}": s_femur, f"tibia_{s}": s_tibia, f"talus_{s}": s_tibia,
                       f"calcn_{s}": s_tibia, f"toes_{s}": s_tibia})

    markers = {}
    hjc_model = model_hjc * s_pelvis
    mid = np.mean([hjc_model - harrington_offset(width, depth, "r") * [1, 1, 1],
                   hjc_model * [1, 1, -1] - harrington_offset(width, depth, "l")], axis=0)
    markers[lm["asis", "r"]] = ("pelvis", tuple(mid + [0, 0, width / 2]))
    markers[lm["asis", "l"]] = ("pelvis", tuple(mid - [0, 0, width / 2]))
    if ("psis", "r") in lm and ("psis", "l") in lm:
        half = nanmed_dist(p["psis", "r"], p["psis", "l"]) / 2
        markers[lm["psis", "r"]] = ("pelvis", tuple(mid + [-depth, 0, half]))
        markers[lm["psis", "l"]] = ("pelvis", tuple(mid + [-depth, 0, -half]))
    else:
        markers[lm["psis", "mid"]] = ("pelvis", tuple(mid + [-depth, 0, 0]))
    for s in ("r", "l"):  # a leg without its landmarks takes the other's widths and places no markers
        if s not in legs:
            other = legs[0]
            measures[f"knee_width_{s}"], measures[f"ankle_width_{s}"] = knee_w[other], ankle_w[other]
            continue
        lat = 1.0 if s == "r" else -1.0
        markers[lm["knee_lat", s]] = (f"femur_{s}", ("knee_centre", lat * knee_w[s] / 2))
        ankle = tuple(model_ankle * s_tibia)
        markers[lm["ankle_lat", s]] = (f"tibia_{s}", (ankle[0], ankle[1], lat * ankle_w[s] / 2))
        if ("knee_med", s) in lm:
            markers[lm["knee_med", s]] = (f"femur_{s}", ("knee_centre", -lat * knee_w[s] / 2))
        if ("ankle_med", s) in lm:
            markers[lm["ankle_med", s]] = (f"tibia_{s}", (ankle[0], ankle[1], -lat * ankle_w[s] / 2))
        heel, toe = p["heel", s], p["toe", s]
        h_heel, h_toe, length = _foot_flat(heel, toe, trial.rate, s_tibia)
        markers[lm["heel", s]] = (f"calcn_{s}", (-0.005, h_heel, 0.0))
        markers[lm["toe", s]] = (f"calcn_{s}", (-0.005 + length, h_toe, 0.0))
        measures[f"knee_width_{s}"] = knee_w[s]
        measures[f"ankle_width_{s}"] = ankle_w[s]
    return Calibration(scales=scales, markers=markers, measures=measures, legs=legs)


def _foot_flat(heel: np.ndarray, toe: np.ndarray, rate: float, scale: float):
    """Heel and toe marker heights above the floor (y=0) and their horizontal distance, at foot flat.

    Foot flat: the frame, among those where both markers lie within 3 cm of their lowest height, where their
    vertical speeds are smallest. Without such a frame, generic values scaled with the tibia are used.
    """
    ok = np.isfinite(heel).all(1) & np.isfinite(toe).all(1)
    if ok.sum() >= 3:
        hy, ty = heel[:, 1], toe[:, 1]
        low = ok & (hy < np.nanmin(hy[ok]) + 0.03) & (ty < np.nanmin(ty[ok]) + 0.03)
        speed = np.abs(np.gradient(np.where(ok, hy, 0.0))) + np.abs(np.gradient(np.where(ok, ty, 0.0)))
        speed = speed * rate
        if low.any() and np.nanmin(speed[low]) < 0.1:
            k = int(np.argmin(np.where(low, speed, np.inf)))
            d = toe[k] - heel[k]
            return float(hy[k]), float(ty[k]), float(np.hypot(d[0], d[2]))
    return 0.035 * scale, 0.025 * scale, 0.20 * scale


#: Body of a tracking (non-landmark) marker, by keyword in its side-less normalised name.
BODY_KEYWORDS = (
    (("thigh", "thi", "femur"), "femur"),
    (("shank", "tib", "leg", "shin"), "tibia"),
    (("heel", "toe", "midfoot", "hindfoot", "foot", "mt", "meta", "cal", "fm", "vm"), "calcn"),
)
PELVIS_KEYWORDS = ("asis", "psis", "asi", "psi", "sacr", "pelvis", "iliac")


def body_of(name: str) -> str | None:
    """Model body a tracking marker rides on, or None (trunk, arms, patella: not used)."""
    n = _norm(name)
    if any(k in n for k in PELVIS_KEYWORDS):
        return "pelvis"
    for side, prefixes in (("r", ("right", "r")), ("l", ("left", "l"))):
        for prefix in prefixes:
            if n.startswith(prefix):
                rest = n[len(prefix):]
                if "patella" in rest or "knee" in rest or "ankle" in rest:
                    return None
                for keys, body in BODY_KEYWORDS:
                    if any(rest.startswith(k) for k in keys):
                        return f"{body}_{side}"
    return None


def norm_name(name: str) -> str:
    return _norm(name)
