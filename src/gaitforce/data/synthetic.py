"""A virtual walking cohort: the default data of ``gaitforce demo``, generated on any machine without files.

Every trial this module makes is **synthetic** (``meta["synthetic"] is True``, ``source`` starts with
``synthetic://``, ``subject.extra["synthetic"] is True``): a kinematic model of walking, not a measurement.
It exists so that the whole pipeline (ingest -> label -> train -> evaluate -> predict) can run and be tested
on a fresh machine. Do not report findings about people from it.

How a trial is made
-------------------
1. **Joint angles.** Normative 3-D walking curves of the pelvis (tilt, obliquity, rotation), hip (flexion,
   adduction, rotation), knee (flexion, adduction, rotation) and ankle (dorsiflexion, inversion, rotation) over
   the gait cycle, stored in ``data/normative_gait.json`` as six Fourier harmonics each. The harmonics were fitted
   (:func:`_fit_harmonics`) to key points that we read by eye from the *shape* of published normative means:
   Kadaba, Ramakrishnan & Wootten (1990) "Measurement of lower extremity kinematics during level walking",
   J Orthop Res 8:383-392; Winter (1991) "The Biomechanics and Motor Control of Human Gait", 2nd ed.,
   University of Waterloo Press; Perry (1992) "Gait Analysis: Normal and Pathological Function". They are
   plausible approximations of those curves, not copies of any data set. Each subject gets its own offsets and
   amplitude scales, each side its own offsets (a little asymmetry), each trial a speed: faster walking scales
   the sagittal amplitudes, raises cadence and shortens the stance fraction (the cycle is time-warped so toe
   off falls at the trial's stance fraction). Smooth random perturbations (three low-frequency sines per angle)
   make every cycle slightly different.
2. **Body.** Segment lengths from Winter's anthropometric ratios of stature (Winter 2009, "Biomechanics and
   Motor Control of Human Movement", 4th ed., Table 4.1: thigh 0.245 H, shank 0.246 H, ankle height 0.039 H,
   foot length 0.152 H, foot width 0.055 H), each scaled by a small individual factor; hip joint centres from
   the inter-ASIS distance by Bell, Pedersen & Brand (1990) J Biomech 23:617-621 (19 % posterior, 30 %
   inferior, 36 % lateral). Markers sit at fixed, individually perturbed places on each rigid segment.
3. **Forward kinematics.** Segment orientations are chained pelvis -> thigh -> shank -> foot with the
   OpenSim/ISB Cardan sequence Z-X-Y (flexion, adduction, rotation; pelvis: tilt, list, rotation) in the
   OpenSim lab frame (Y up, X forward, Z right). The pelvis position is not prescribed: it follows from the
   feet. The material point of the stance foot under the centre of pressure (heel early in stance, metatarsal
   heads late) is held still on the floor, so the pelvis velocity is minus that point's velocity relative to
   the pelvis, blended between the feet by their share of the vertical force in double support; the pelvis
   height puts that point on the floor. Walking direction is then turned onto +X.
4. **Ground reaction forces.** Vertical: ``sin(pi s)^0.5 (1 - d cos(4 pi s))`` over stance progress ``s``
   (a double hump whose dip ``d`` deepens with speed), scaled so that the vertical impulse over a stride
   equals body weight x stride time (steady walking, no net vertical momentum change). Anterior-posterior:
   braking then propulsion, ``-A sin(2 pi s) sin(pi s)^0.5`` (zero net impulse), peak ~0.2 BW at normal speed.
   Medio-lateral: ~0.05 BW towards the midline after a brief lateral blip. The CoP travels from under the
   heel to beyond the metatarsal heads along the foot as it moves; free moment about the vertical up to
   ~0.008 BW m. Two plates, ``FP1`` under a right stance and ``FP2`` under the next left stance, are placed
   under those footfalls; other footfalls miss the plates (their forces are not recorded, as in a lab).
   CoP is NaN where a plate carries less than :data:`COP_THRESHOLD` N.

Each trial spans two gait cycles at 100 Hz (``rate=``), starting in late right stance, so that the right
plate stance and the following left plate stance lie wholly inside it. Heel-strike/toe-off events of both
sides are attached (with the plate index when on a plate). The true joint angles are attached as signals
``true_<angle>_<side>`` (rad) so that marker-based angle estimates can be checked against them.

The marker set (:data:`MARKER_NAMES`, Plug-in-Gait-like names) covers the project's 18 input slots:
pelvis RASI, LASI, RPSI, LPSI and, per side (R/L prefix), a rigid four-marker thigh cluster THI1-4
(1 superior-anterior, 2 superior-posterior, 3 inferior-posterior, 4 inferior-anterior), lateral and medial
femoral epicondyle KNE/KNM, a four-marker shank cluster TIB1-4 (same numbering), lateral and medial malleolus
ANK/MED, heel HEE, toe TOE (2nd metatarsal head), and 1st/5th metatarsal heads MT1/MT5.

Subjects, trials and everything random come from ``numpy.random.SeedSequence(seed)`` spawned per subject and
per trial, so subject ``i`` of a cohort is the same whatever ``n_subjects`` is.

Why one module of ~740 lines: it is one generative model (body, walk, pose, ground reaction, closure) whose
private parts share the same body/walk records and constants; split, each file would import the others'
internals. The public surface is four functions: :func:`generate_trial`, :func:`generate_cohort`,
:func:`cohort_table`, :func:`write_cohort`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from gaitforce import constants as C
from gaitforce.errors import GaitforceError
from gaitforce.trial import Event, Subject, Trial

#: Version of the generator recorded in every trial's meta; bump it when the output changes.
GENERATOR_VERSION = 1

PELVIS_MARKERS = ("RASI", "LASI", "RPSI", "LPSI")
LIMB_MARKERS = ("THI1", "THI2", "THI3", "THI4", "KNE", "KNM", "TIB1", "TIB2", "TIB3", "TIB4",
                "ANK", "MED", "HEE", "TOE", "MT1", "MT5")
#: Every marker of a synthetic trial, in order: 4 pelvis, 16 right limb, 16 left limb.
MARKER_NAMES = PELVIS_MARKERS + tuple("R" + m for m in LIMB_MARKERS) + tuple("L" + m for m in LIMB_MARKERS)

#: Which segment carries each limb marker (without the side letter); pelvis markers sit on the pelvis.
SEGMENT_OF = {**{m: "thigh" for m in ("THI1", "THI2", "THI3", "THI4", "KNE", "KNM")},
              **{m: "shank" for m in ("TIB1", "TIB2", "TIB3", "TIB4", "ANK", "MED")},
              **{m: "foot" for m in ("HEE", "TOE", "MT1", "MT5")}}

PLATE_NAMES = ("FP1", "FP2")
#: Force plate size in m: along the walkway (X) and across it (Z).
PLATE_SIZE = (0.40, 0.60)
#: Vertical force (N) below which a plate's centre of pressure is NaN.
COP_THRESHOLD = C.COP_THRESHOLD_N
GRAVITY = C.G

#: Joint angles of the model (degrees in the curves, rad in the signals), sagittal ones first.
PELVIS_DOFS = ("pelvis_tilt", "pelvis_obliquity", "pelvis_rotation")
LIMB_DOFS = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion", "knee_adduction", "knee_rotation",
             "ankle_dorsiflexion", "ankle_inversion", "ankle_rotation")
SAGITTAL = ("hip_flexion", "knee_flexion", "ankle_dorsiflexion")

#: Normative toe-off as a fraction of the gait cycle (where the stored curves put it).
_NORMATIVE_TOE_OFF = 0.62
#: Height difference (m) over which the rolling contact passes from the heel to the metatarsal heads.
_ROLL_SCALE = 0.003
#: Half width of the knee-flexion closure bump around a heel strike, fraction of a stride.
_BUMP_HALF_WIDTH = 0.15
#: Softness (m) of the soft maximum that sets the pelvis height from the loaded feet.
_HEIGHT_SOFTNESS = 0.004
#: Internal oversampling of the simulation relative to the output rate (for the pelvis integration).
_OVERSAMPLE = 4


# --- normative curves ----------------------------------------------------------------------------------------
def _fit_harmonics(keypoints: Sequence[Sequence[float]], n_harmonics: int = 6) -> dict[str, Any]:
    """Fourier coefficients of the periodic cubic spline through ``(percent, degrees)`` key points.

    Returns ``{"a0", "a": [n], "b": [n]}`` with ``f(p) = a0 + sum_h a_h cos(2 pi h p) + b_h sin(2 pi h p)``.
    """
    from scipy.interpolate import CubicSpline

    pct = np.array([k[0] for k in keypoints] + [100.0]) / 100.0
    val = np.array([k[1] for k in keypoints] + [keypoints[0][1]], dtype=float)
    samples = CubicSpline(pct, val, bc_type="periodic")(np.arange(256) / 256)
    c = np.fft.rfft(samples) / 256
    return {
        "a0": round(float(c[0].real), 4) + 0.0,
        "a": [round(float(2 * c[h].real), 4) + 0.0 for h in range(1, n_harmonics + 1)],
        "b": [round(float(-2 * c[h].imag), 4) + 0.0 for h in range(1, n_harmonics + 1)],
    }


@lru_cache(maxsize=1)
def normative_curves() -> dict[str, dict[str, Any]]:
    """The stored normative curves: name -> {"keypoints", "a0", "a", "b"} (degrees)."""
    text = resources.files("gaitforce").joinpath("data/normative_gait.json").read_text()
    return json.loads(text)["curves"]


def normative_angle(name: str, phase) -> np.ndarray:
    """Normative angle ``name`` in degrees at gait-cycle fraction(s) ``phase`` (0 = heel strike)."""
    curve = normative_curves()[name]
    p = np.asarray(phase, dtype=float)
    h = np.arange(1, len(curve["a"]) + 1)
    arg = 2 * np.pi * p[..., None] * h
    return curve["a0"] + np.cos(arg) @ np.array(curve["a"]) + np.sin(arg) @ np.array(curve["b"])


# --- rotations ----------------------------------------------------------------------------------------------
def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) about lab/body axis 0 (x), 1 (y) or 2 (z) by ``angle`` rad (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros(np.shape(angle) + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., i, i] = c
    r[..., j, j] = c
    r[..., i, j] = -s
    r[..., j, i] = s
    return r


def _zxy(z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Body-fixed Z-X-Y Cardan rotation (OpenSim's CustomJoint order for pelvis and hip)."""
    return _rot(2, z) @ _rot(0, x) @ _rot(1, y)


def _apply(r: np.ndarray, v) -> np.ndarray:
    """Rotate a fixed local vector (3,) or per-frame vectors (N, 3) by per-frame matrices (N, 3, 3)."""
    v = np.asarray(v, dtype=float)
    return np.einsum("nij,j->ni", r, v) if v.ndim == 1 else np.einsum("nij,nj->ni", r, v)


# --- subjects and trials ------------------------------------------------------------------------------------
@dataclass
class _Body:
    """One virtual subject: anthropometry, marker placement and gait style."""

    id: str
    sex: str
    height: float
    mass: float
    lengths: dict[str, float]
    local: dict[str, np.ndarray]  # marker name -> position in its segment's frame
    offsets: dict[tuple[str, str], float]  # (side or "pelvis", dof) -> degrees
    scales: dict[str, float]  # dof -> amplitude factor
    speed: float  # preferred speed factor (1 = normative)
    asymmetry: float  # phase lag of the left side, fraction of a cycle
    toe_out: dict[str, float]  # foot progression angle per side, degrees (external +)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Walk:
    """One trial's gait parameters."""

    speed: float
    cadence: float  # steps per minute
    stance_fraction: float
    start_phase: float  # right-side gait-cycle phase at t = 0
    grf_dip: float
    grf_skew: float
    ap_peak: float  # BW
    ml_peak: float  # BW
    fm_peak: float  # BW x m
    wobble: dict[tuple[str, str], np.ndarray]  # (side, dof) -> (3, 3) amplitude deg, freq Hz, phase rad
    plate_jitter: np.ndarray  # (2, 2) m, x and z offsets of the plate centres

    @property
    def stride_time(self) -> float:
        return 120.0 / self.cadence


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


def _draw_body(seed: int, index: int) -> _Body:
    rng = _rng(seed, index)
    shift = _rng(seed).random(2)  # one random shift of the low-discrepancy sequence per cohort
    sex = "M" if index % 2 == 0 else "F"
    # stature and BMI quantiles from an additive-recurrence (R2) sequence: any first n subjects spread evenly
    q_height = (shift[0] + 0.5 + index * 0.7548776662466927) % 1.0
    q_bmi = (shift[1] + 0.5 + index * 0.5698402909980532) % 1.0
    height = 1.62 + 0.33 * q_height if sex == "M" else 1.50 + 0.30 * q_height  # m, uniform per sex
    bmi = 19.0 + 13.0 * q_bmi  # kg/m^2, uniform
    mass = float(np.clip(bmi * height**2, 50.0, 110.0))
    bmi = mass / height**2
    f = lambda: float(rng.normal(1.0, 0.03))  # noqa: E731 - individual factor on a ratio
    girth = math.sqrt(bmi / 24.0)
    h = height
    lengths = {
        "thigh": 0.245 * h * f(), "shank": 0.246 * h * f(), "ankle_height": 0.039 * h * f(),
        "foot": 0.152 * h * f(), "foot_width": 0.055 * h * f(), "asis": 0.140 * h * f() * girth**0.5,
        "pelvis_depth": 0.090 * h * f(), "psis": 0.050 * h * f(), "knee_width": 0.058 * h * f() * girth**0.5,
        "ankle_width": 0.040 * h * f(), "thigh_radius": 0.045 * h * f() * girth, "shank_radius": 0.030 * h * f() * girth,
    }
    local = _marker_layout(lengths, rng)
    # offsets: a subject-level part shared by both sides plus a small side-specific part (degrees). The hip's
    # flexion offset follows the pelvis tilt offset (the thigh's angle to the vertical is what walking needs).
    offsets = {("pelvis", dof): float(rng.normal(0.0, 2.5 if dof == "pelvis_tilt" else 0.5)) for dof in PELVIS_DOFS}
    # (frontal-plane offsets stay small: each degree of hip adduction narrows the step by ~3 cm)
    spread = {"hip_adduction": 0.6, "knee_adduction": 0.6}
    shared = {dof: float(rng.normal(0.0, 1.5 if dof in SAGITTAL else spread.get(dof, 1.0))) for dof in LIMB_DOFS}
    for dof in spread:
        shared[dof] = float(np.clip(shared[dof], -1.0, 0.8))
    shared["hip_flexion"] += offsets[("pelvis", "pelvis_tilt")]
    toe_out = float(rng.normal(7.0, 3.0))  # foot progression angle, degrees external
    for side in ("right", "left"):
        for dof in LIMB_DOFS:
            offsets[(side, dof)] = shared[dof] + float(rng.normal(0.0, 0.3 if dof in spread else 0.6))
    # amplitude scales: one for the sagittal plane (hip and knee together), one per other angle
    sagittal = float(np.clip(rng.normal(1.0, 0.06), 0.88, 1.12))
    scales = {dof: float(np.clip(sagittal + rng.normal(0.0, 0.02) if dof in SAGITTAL else rng.normal(1.0, 0.1), 0.75, 1.25))
              for dof in PELVIS_DOFS + LIMB_DOFS}
    return _Body(
        id=f"syn{index + 1:02d}", sex=sex, height=round(height, 3), mass=round(mass, 1), lengths=lengths,
        local=local, offsets=offsets, scales=scales, speed=float(np.clip(rng.normal(1.0, 0.06), 0.88, 1.12)),
        asymmetry=float(rng.normal(0.0, 0.005)),
        toe_out={side: toe_out + float(rng.normal(0.0, 1.5)) for side in ("right", "left")},
    )


def _cluster(rng, centre_angle_deg: float, radius: float, level: float, side: float, shape) -> list[np.ndarray]:
    """Four markers of a rigid plate on a segment's surface at ``level`` (y), facing ``centre_angle`` from lateral."""
    beta = math.radians(rng.normal(centre_angle_deg, 8.0))  # towards anterior
    alpha = math.radians(rng.normal(0.0, 10.0))  # in-plane twist of the plate
    centre = np.array([math.sin(beta) * radius, level, side * math.cos(beta) * radius])
    normal_rot = _rot(1, np.array(side * beta))  # plate turned about the long axis with its centre
    twist = _rot(2, np.array(alpha))
    return [centre + normal_rot @ (twist @ np.array([dx, dy, 0.0])) for dx, dy in shape]


def _marker_layout(L: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Marker positions in their segment frames (x anterior, y proximal, z right), with placement scatter."""
    jitter = lambda: rng.normal(0.0, 0.004, 3)  # noqa: E731 - anatomical landmark palpation scatter, m
    d = L["asis"]
    out = {
        "RASI": np.array([0.0, 0.0, d / 2]) + jitter(), "LASI": np.array([0.0, 0.0, -d / 2]) + jitter(),
        "RPSI": np.array([-L["pelvis_depth"], 0.0, L["psis"] / 2]) + jitter(),
        "LPSI": np.array([-L["pelvis_depth"], 0.0, -L["psis"] / 2]) + jitter(),
    }
    thigh_shape = [(0.045, 0.05), (-0.035, 0.055), (-0.04, -0.05), (0.04, -0.045)]
    shank_shape = [(0.035, 0.045), (-0.03, 0.05), (-0.035, -0.04), (0.03, -0.045)]
    fl, ha, fw = L["foot"], L["ankle_height"], L["foot_width"]
    for prefix, s in (("R", 1.0), ("L", -1.0)):
        thigh = _cluster(rng, 15.0, L["thigh_radius"] + 0.02, -0.6 * L["thigh"], s, thigh_shape)
        shank = _cluster(rng, 30.0, L["shank_radius"] + 0.02, -0.5 * L["shank"], s, shank_shape)
        for i in range(4):
            out[f"{prefix}THI{i + 1}"] = thigh[i]
            out[f"{prefix}TIB{i + 1}"] = shank[i]
        out[f"{prefix}KNE"] = np.array([0.0, -L["thigh"], s * L["knee_width"] / 2]) + jitter()
        out[f"{prefix}KNM"] = np.array([0.0, -L["thigh"], -s * L["knee_width"] / 2]) + jitter()
        out[f"{prefix}ANK"] = np.array([-0.008, -L["shank"] - 0.005, s * L["ankle_width"] / 2]) + jitter()
        out[f"{prefix}MED"] = np.array([0.005, -L["shank"] + 0.008, -s * L["ankle_width"] / 2]) + jitter()
        out[f"{prefix}HEE"] = np.array([-0.27 * fl, -ha + 0.035, 0.0]) + jitter()
        out[f"{prefix}TOE"] = np.array([0.50 * fl, -ha + 0.028, -s * 0.01]) + jitter()
        out[f"{prefix}MT1"] = np.array([0.45 * fl, -ha + 0.02, -s * 0.5 * fw]) + jitter()
        out[f"{prefix}MT5"] = np.array([0.38 * fl, -ha + 0.015, s * 0.5 * fw]) + jitter()
    return out


def _sole_points(L: dict[str, float], side: float) -> tuple[np.ndarray, np.ndarray]:
    """Heel and metatarsal-head points of the sole in the foot frame (on the floor in neutral standing)."""
    ha, fl = L["ankle_height"], L["foot"]
    return np.array([-0.20 * fl, -ha, side * 0.004]), np.array([0.48 * fl, -ha, -side * 0.005])


def _draw_walk(seed: int, index: int, trial: int, body: _Body) -> _Walk:
    rng = _rng(seed, index, trial + 1)
    speed = float(np.clip(body.speed * rng.uniform(0.88, 1.12), 0.8, 1.25))
    cadence = 112.0 * speed**0.5 * math.sqrt(1.72 / body.height) * float(rng.normal(1.0, 0.02))
    stance = float(np.clip(0.62 - 0.08 * (speed - 1.0) + rng.normal(0.0, 0.005), 0.585, 0.655))
    wobble = {}
    for side in ("right", "left", "pelvis"):
        for dof in (PELVIS_DOFS if side == "pelvis" else LIMB_DOFS):
            sigma = 0.5 if dof in SAGITTAL else 0.4
            amp = rng.normal(0.0, sigma / math.sqrt(1.5), 3)  # three sines -> std ~ sigma
            wobble[(side, dof)] = np.stack([amp, rng.uniform(0.2, 1.5, 3), rng.uniform(0, 2 * np.pi, 3)])
    return _Walk(
        speed=speed, cadence=cadence, stance_fraction=stance, start_phase=float(rng.uniform(0.40, 0.47)),
        grf_dip=float(0.25 + 0.35 * (speed - 1.0) + rng.normal(0.0, 0.015)), grf_skew=float(rng.normal(0.04, 0.03)),
        ap_peak=float(0.20 * speed**1.5 * rng.normal(1.0, 0.08)), ml_peak=float(0.05 * rng.normal(1.0, 0.15)),
        fm_peak=float(0.008 * rng.normal(1.0, 0.2)), wobble=wobble, plate_jitter=rng.uniform(-0.02, 0.02, (2, 2)),
    )


# --- the simulation -----------------------------------------------------------------------------------------
def _warp(phase: np.ndarray, stance_fraction: float) -> np.ndarray:
    """Smooth time warp of the gait cycle that moves toe off from ``stance_fraction`` to the normative 0.62."""
    a = (_NORMATIVE_TOE_OFF - stance_fraction) / math.sin(2 * math.pi * stance_fraction)
    return phase + a * np.sin(2 * np.pi * phase)


@lru_cache(maxsize=4)
def _coefficients(dofs: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Means (D,) and harmonic coefficients (2H, D) of the curves ``dofs``: cos terms first, then sin."""
    curves = normative_curves()
    means = np.array([curves[d]["a0"] for d in dofs])
    coef = np.array([curves[d]["a"] + curves[d]["b"] for d in dofs]).T
    return means, coef


def _angles(body: _Body, walk: _Walk, side: str, phase: np.ndarray, t: np.ndarray,
            pelvis: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Joint angles (degrees) of one side (or the pelvis, side="pelvis") over time.

    For a limb, the ``pelvis`` angles are needed: the ankle's dorsiflexion and rotation are not drawn from their
    own curves but set so that the foot does not slip on the floor whatever the subject's offsets: the
    foot-floor angle ``hip - tilt - knee + ankle`` follows the normative ``foot_pitch`` curve (flat from 12
    to 30 % of the cycle) and the foot's yaw (pelvis, hip, knee and ankle rotations summed) stays at the
    subject's foot progression angle (toe out).
    """
    dofs = PELVIS_DOFS if side == "pelvis" else LIMB_DOFS
    means, coef = _coefficients(dofs)
    q = _warp(phase, walk.stance_fraction)
    arg = 2 * np.pi * q[:, None] * np.arange(1, coef.shape[0] // 2 + 1)
    swing = np.concatenate([np.cos(arg), np.sin(arg)], axis=1) @ coef  # (N, D): the curves minus their means
    gain = np.array([body.scales[d] * (walk.speed**0.6 if d in SAGITTAL else 1.0) for d in dofs])
    offset = np.array([body.offsets[(side, d)] for d in dofs])
    amp, freq, ph = np.stack([walk.wobble[(side, d)] for d in dofs], axis=1)  # (D, 3) each
    wobble = np.einsum("dk,ndk->nd", amp, np.sin(2 * np.pi * freq * t[:, None, None] + ph))
    values = means + gain * swing + offset + wobble
    out = {d: values[:, i] for i, d in enumerate(dofs)}
    if pelvis is not None:
        # the foot lands flat: the ankle angle makes the foot-floor angle follow its normative curve
        pitch = normative_angle("foot_pitch", q) + wobble[:, dofs.index("ankle_dorsiflexion")] * 0.3
        out["ankle_dorsiflexion"] = pitch - (out["hip_flexion"] - pelvis["pelvis_tilt"] - out["knee_flexion"])
        # and does not twist on the floor: yaw about the vertical held at the foot progression angle
        sign = 1.0 if side == "right" else -1.0
        yaw = -sign * body.toe_out[side] + wobble[:, dofs.index("ankle_rotation")] * 0.3
        out["ankle_rotation"] = sign * (yaw - pelvis["pelvis_rotation"]) - out["hip_rotation"] - out["knee_rotation"]
    return out


def _stance_shapes(walk: _Walk, phase: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame GRF shapes of one foot in body weights (vertical, AP, medial) and the CoP progress ``u``."""
    loaded = phase < walk.stance_fraction
    s = np.where(loaded, phase / walk.stance_fraction, 0.0)
    env = np.sqrt(np.clip(np.sin(np.pi * s), 0.0, None)) * loaded
    vertical = env * (1.0 - walk.grf_dip * np.cos(4 * np.pi * s)) * (1.0 + walk.grf_skew * (0.5 - s) * 2)
    # scale: impulse over a stride = BW x stride time, half from each foot (analytic mean of the shape on a grid)
    grid = (np.arange(4000) + 0.5) / 4000
    ref = np.sqrt(np.sin(np.pi * grid)) * (1 - walk.grf_dip * np.cos(4 * np.pi * grid)) * (1 + walk.grf_skew * (0.5 - grid) * 2)
    vertical = vertical * (0.5 / walk.stance_fraction) / ref.mean()
    ap_ref = np.sin(2 * np.pi * grid) * np.sqrt(np.sin(np.pi * grid))
    ap = -walk.ap_peak * np.sin(2 * np.pi * s) * env / ap_ref.max()
    medial = walk.ml_peak * np.sin(np.pi * s) * (1.0 - 1.6 * np.exp(-s / 0.04)) * loaded
    free = -walk.fm_peak * np.sin(2 * np.pi * s) * env
    u = 1.15 * (0.5 * s + 0.5 * s * s * (3 - 2 * s))  # CoP progress: 0 under the heel, 1 under the MT heads
    return {"loaded": loaded, "s": s, "vertical": vertical, "ap": ap, "medial": medial, "free": free, "u": u}


def _segments(body: _Body, ang: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Orientations (N, 3, 3) of the pelvis and each side's thigh, shank and foot from the angles (degrees)."""
    rad = {k: {d: np.radians(v) for d, v in a.items()} for k, a in ang.items()}
    p = rad["pelvis"]
    rot = {"pelvis": _zxy(-p["pelvis_tilt"], -p["pelvis_obliquity"], p["pelvis_rotation"])}
    for side, s in (("right", 1.0), ("left", -1.0)):
        a = rad[side]
        rot[f"{side}_thigh"] = rot["pelvis"] @ _zxy(a["hip_flexion"], s * a["hip_adduction"], s * a["hip_rotation"])
        rot[f"{side}_shank"] = rot[f"{side}_thigh"] @ _zxy(-a["knee_flexion"], s * a["knee_adduction"], s * a["knee_rotation"])
        rot[f"{side}_foot"] = rot[f"{side}_shank"] @ _zxy(a["ankle_dorsiflexion"], s * a["ankle_inversion"], s * a["ankle_rotation"])
    return rot


def _pose(body: _Body, walk: _Walk, t: np.ndarray, knee_bump: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Angles, segment orientations, joint centres, sole points and GRF shapes over ``t`` (pelvis at the origin)."""
    L, d, T = body.lengths, body.lengths["asis"], walk.stride_time
    phase = {"right": (walk.start_phase + t / T) % 1.0}
    phase["left"] = (phase["right"] - 0.5 - body.asymmetry) % 1.0
    ang = {"pelvis": _angles(body, walk, "pelvis", phase["right"], t)}
    for side in ("right", "left"):
        ang[side] = _angles(body, walk, side, phase[side], t, pelvis=ang["pelvis"])
        if knee_bump is not None:
            ang[side]["knee_flexion"] = ang[side]["knee_flexion"] + knee_bump[side]
            ang[side]["ankle_dorsiflexion"] = ang[side]["ankle_dorsiflexion"] + knee_bump[side]  # foot pitch kept
    rot = _segments(body, ang)
    out = {"phase": phase, "ang": ang, "rot": rot, "origin": {}, "sole": {}, "shape": {}}
    for side, s in (("right", 1.0), ("left", -1.0)):
        hjc = _apply(rot["pelvis"], [-0.19 * d, -0.30 * d, s * 0.36 * d])
        kjc = hjc + _apply(rot[f"{side}_thigh"], [0.0, -L["thigh"], 0.0])
        ajc = kjc + _apply(rot[f"{side}_shank"], [0.0, -L["shank"], 0.0])
        out["origin"][side] = {"thigh": hjc, "shank": kjc, "foot": ajc}
        out["sole"][side] = tuple(ajc + _apply(rot[f"{side}_foot"], p) for p in _sole_points(L, s))
        out["shape"][side] = _stance_shapes(walk, phase[side])
    return out


def _pelvis_path(pose: dict[str, Any], dt: float) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Pelvis origin path (N, 3) that keeps each loaded foot's rolling contact point still on the floor.

    Returns the path, the feet's load shares (2, N) and the contact points relative to the pelvis.
    """
    fv = np.stack([pose["shape"]["right"]["vertical"], pose["shape"]["left"]["vertical"]])
    if np.any(fv.sum(axis=0) <= 0):
        raise AssertionError("synthetic gait has a flight phase; stance fraction must exceed 0.5")
    w = fv / fv.sum(axis=0)
    vel = np.zeros((fv.shape[1], 3))
    need = np.zeros((2, fv.shape[1]))
    contact = {}
    for k, side in enumerate(("right", "left")):
        heel, mtp = pose["sole"][side]
        # the foot rolls on whichever sole point is lower (heel early, metatarsal heads late; both when flat)
        v = (0.5 * (1.0 + np.tanh((heel[:, 1] - mtp[:, 1]) / (2 * _ROLL_SCALE))))[:, None]
        contact[side] = (1 - v) * heel + v * mtp
        vel -= w[k][:, None] * ((1 - v) * np.gradient(heel, dt, axis=0) + v * np.gradient(mtp, dt, axis=0))
        need[k] = -contact[side][:, 1]
    pelvis = np.zeros_like(vel)
    pelvis[1:] = np.cumsum(0.5 * (vel[1:] + vel[:-1]) * dt, axis=0)
    # height: a load-weighted soft maximum of the heights each loaded foot needs, so that in double support
    # neither foot goes through the floor (the one needing less floats by the legs' length mismatch)
    with np.errstate(divide="ignore"):
        pelvis[:, 1] = _HEIGHT_SOFTNESS * np.logaddexp.reduce(need / _HEIGHT_SOFTNESS + np.log(w), axis=0)
    return pelvis, w, contact


def _knee_bumps(body: _Body, walk: _Walk, t: np.ndarray, amplitude: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Extra knee flexion (degrees): a raised-cosine bump of ``amplitude[side][k]`` around each heel strike k."""
    out = {}
    half = _BUMP_HALF_WIDTH * walk.stride_time
    for side, times in _strike_times(body, walk, t[-1]).items():
        x = t[:, None] - times[None, :]
        win = np.where(np.abs(x) < half, 0.5 * (1 + np.cos(np.pi * x / half)), 0.0)
        out[side] = win @ amplitude[side]
    return out


def _strike_times(body: _Body, walk: _Walk, t_end: float) -> dict[str, np.ndarray]:
    """Heel-strike times (s) of each side in [-stride, t_end + stride]."""
    T = walk.stride_time
    k = np.arange(-2, int(t_end / T) + 3)
    right = (k - walk.start_phase) * T
    left = (k + 0.5 + body.asymmetry - walk.start_phase) * T
    keep = lambda x: x[(x > -T) & (x < t_end + T)]  # noqa: E731
    return {"right": keep(right), "left": keep(left)}


def _closure(body: _Body, walk: _Walk, t_end: float, rate: float) -> dict[str, np.ndarray]:
    """Knee-flexion bumps that put each heel on the floor at its heel strike.

    Subject offsets and random perturbations change the legs' effective lengths, so a swinging heel would
    reach the floor early (penetrate) or late. Two coarse passes (A = 0 and A = 5 degrees) give each strike's
    heel height as a linear function of its bump amplitude, solved for height 0 and clipped to -5..15 degrees.
    """
    t = np.arange(0.0, t_end + 0.5 / rate, 1.0 / rate)
    times = _strike_times(body, walk, t_end)
    heights = []
    for a in (0.0, 5.0):
        amp = {side: np.full(len(x), a) for side, x in times.items()}
        pose = _pose(body, walk, t, _knee_bumps(body, walk, t, amp))
        pelvis, _, _ = _pelvis_path(pose, 1.0 / rate)
        h = {}
        for side, x in times.items():
            heel_y = pelvis[:, 1] + pose["sole"][side][0][:, 1]
            h[side] = np.interp(x, t, heel_y, left=np.nan, right=np.nan)
        heights.append(h)
    out = {}
    for side in times:
        h0, h1 = heights[0][side], heights[1][side]
        with np.errstate(invalid="ignore", divide="ignore"):
            a = -h0 * 5.0 / (h1 - h0)
        out[side] = np.clip(np.nan_to_num(a), -5.0, 15.0)
    return out


def _simulate(body: _Body, walk: _Walk, *, rate: float, marker_noise: float, force_noise: float,
              seed: int, index: int, trial: int, with_angles: bool, diagnostics: dict | None = None) -> Trial:
    L = body.lengths
    T = walk.stride_time
    n_out = int(math.floor(2.0 * T * rate)) + 1
    n = (n_out - 1) * _OVERSAMPLE + 1
    dt = 1.0 / (rate * _OVERSAMPLE)
    t = np.arange(n) * dt
    bumps = _knee_bumps(body, walk, t, _closure(body, walk, t[-1], rate))
    pose = _pose(body, walk, t, bumps)
    phase, ang, rot = pose["phase"], pose["ang"], pose["rot"]
    pelvis, w, contact = _pelvis_path(pose, dt)

    # positions relative to the pelvis origin (mid-ASIS), lab orientation; markers at the output frames only
    take = slice(0, n, _OVERSAMPLE)
    rel = {m: _apply(rot["pelvis"][take], body.local[m]) for m in PELVIS_MARKERS}
    shapes = pose["shape"]
    for side, s, pre in (("right", 1.0, "R"), ("left", -1.0, "L")):
        origin = pose["origin"][side]
        for m in LIMB_MARKERS:
            seg = SEGMENT_OF[m]
            rel[pre + m] = origin[seg][take] + _apply(rot[f"{side}_{seg}"][take], body.local[pre + m])
        sh = shapes[side]
        cop_local = np.stack([np.interp(sh["u"], [0, 1], [-0.20 * L["foot"], 0.48 * L["foot"]]),
                              np.full(n, -L["ankle_height"]),
                              s * (0.010 - 0.022 * sh["u"])], axis=1)
        sh["cop_rel"] = origin["foot"] + _apply(rot[f"{side}_foot"], cop_local)
        sh["sole_rel"] = pose["sole"][side]

    # heading: turn the mean walking direction (over the first whole stride) onto +x
    k_stride = int(round(T / dt))
    dx, dz = pelvis[min(k_stride, n - 1), [0, 2]] - pelvis[0, [0, 2]]
    heading = _rot(1, np.array(math.atan2(dz, dx)))  # rotation about +y taking (dx, 0, dz) to +x
    lab = lambda rel_pos: (pelvis + rel_pos) @ heading.T  # noqa: E731
    markers = (pelvis[take, None, :] + np.stack([rel[m] for m in MARKER_NAMES], axis=1)) @ heading.T

    if diagnostics is not None:  # internal quantities for tests of the kinematic model
        diagnostics.update(t=t, weights=w, pelvis=lab(np.zeros((n, 3))), stance={k: v["loaded"] for k, v in shapes.items()},
                           sole={k: tuple(lab(p) for p in v["sole_rel"]) for k, v in shapes.items()},
                           contact={k: lab(v) for k, v in contact.items()})

    # plates under the first whole right stance and the following left stance
    hs = {side: _strikes(phase[side], walk.stance_fraction) for side in ("right", "left")}
    right = next((a, b) for a, b in hs["right"] if a > 0 and b < n - 1)
    left = next((a, b) for a, b in hs["left"] if a > right[0] and b < n - 1)
    forces = np.zeros((n, 2, 3))
    cop = np.full((n, 2, 3), np.nan)
    free = np.zeros((n, 2, 3))
    centres = []
    walkway_z = float(np.mean(lab(np.zeros((n, 3)))[:, 2]))
    bw = body.mass * GRAVITY
    for p, (side, (a, b)) in enumerate((("right", right), ("left", left))):
        sh = shapes[side]
        sl = slice(a, b + 1)
        s_sign = 1.0 if side == "right" else -1.0
        f = np.zeros((n, 3))
        f[:, 0] = sh["ap"] * bw
        f[:, 1] = sh["vertical"] * bw
        f[:, 2] = -s_sign * sh["medial"] * bw  # towards the midline
        mask = np.zeros(n, bool)
        mask[sl] = sh["loaded"][sl]
        forces[mask, p] = f[mask]  # directions are defined in the turned (walkway) frame already
        free[mask, p, 1] = s_sign * sh["free"][mask] * bw
        cop_lab = lab(sh["cop_rel"])
        cop_lab[:, 1] = 0.0
        cop[mask, p] = cop_lab[mask]
        loaded_cop = cop_lab[mask]
        centres.append(np.array([(loaded_cop[:, 0].min() + loaded_cop[:, 0].max()) / 2, 0.0, walkway_z]))
    # lab origin: FP1 centre on the floor (plates jittered a little about the footfalls)
    origin = centres[0] + np.array([walk.plate_jitter[0, 0], 0.0, walk.plate_jitter[0, 1]])
    centres = [c + np.array([j[0], 0.0, j[1]]) - origin for c, j in zip(centres, walk.plate_jitter)]
    markers = markers - origin
    cop = cop - origin

    # down to the output rate, then measurement noise
    rng = _rng(seed, index, trial + 1, 1)
    if marker_noise:
        markers = markers + rng.normal(0.0, marker_noise, markers.shape)
    forces = forces[take] + (rng.normal(0.0, force_noise, (n_out, 2, 3)) if force_noise else 0.0)
    cop = cop[take]
    cop[forces[:, :, 1] < COP_THRESHOLD] = np.nan
    free = free[take]
    time = t[take]

    events = []
    for side in ("right", "left"):
        plate = 0 if side == "right" else 1
        on_plate = right if side == "right" else left
        for a, b in hs[side]:
            p_idx = plate if (a, b) == on_plate else None
            if 0 < a < n:
                events.append(Event("heel_strike", float(t[a]), side, p_idx))
            if 0 < b < n - 1:
                events.append(Event("toe_off", float(t[b + 1]), side, p_idx))

    corners = []
    for c in centres:
        hx, hz = PLATE_SIZE[0] / 2, PLATE_SIZE[1] / 2
        corners.append([[c[0] + sx * hx, 0.0, c[2] + sz * hz] for sx, sz in ((1, 1), (-1, 1), (-1, -1), (1, -1))])
    pelvis_lab = lab(np.zeros((n, 3)))[take] - origin
    stride_len = float(np.linalg.norm(np.diff(pelvis_lab[[0, min(int(round(T * rate)), n_out - 1)]][:, [0, 2]], axis=0)))
    heel = {side: markers[:, MARKER_NAMES.index(("R" if side == "right" else "L") + "HEE")] for side in ("right", "left")}
    meta = {
        "synthetic": True, "generator": f"gaitforce.data.synthetic v{GENERATOR_VERSION}", "seed": seed,
        "subject_index": index, "trial_index": trial, "speed": round(stride_len / T, 4),
        "speed_factor": round(walk.speed, 4), "cadence": round(walk.cadence, 2), "stride_time": round(T, 4),
        "stride_length": round(stride_len, 4), "stance_fraction": round(walk.stance_fraction, 4),
        "plate_corners": corners, "plate_size": list(PLATE_SIZE), "plate_sides": ["right", "left"],
        "step_width": round(float(abs(np.nanmean(cop[:, 0, 2]) - np.nanmean(cop[:, 1, 2]))), 4),
        "heel_height_at_strike": round(float(np.mean([heel[e.side][int(round(e.time * rate)), 1]
                                                      for e in events if e.name == "heel_strike"])), 4),
    }
    signals, units = {}, {}
    if with_angles:
        for side, suffix in (("right", "_r"), ("left", "_l"), ("pelvis", "")):
            for dof, v in ang[side].items():
                signals[f"true_{dof}{suffix}"] = np.radians(v[take])
                units[f"true_{dof}{suffix}"] = "rad"
    return Trial(
        time=time, markers=markers, marker_names=MARKER_NAMES, forces=forces, cop=cop, free_moment=free,
        plate_names=PLATE_NAMES, signals=signals, units=units, events=tuple(events),
        subject=Subject(id=body.id, mass=body.mass, height=body.height, sex=body.sex,
                        extra={"synthetic": True, "speed_factor": round(body.speed, 4)}),
        source=f"synthetic://{body.id}/{body.id}_walk{trial + 1:02d}", up_axis="y", meta=meta,
        history=(f"synthetic: generated by gaitforce.data.synthetic v{GENERATOR_VERSION} (seed={seed}, subject={index}, trial={trial})",),
    )


def _strikes(phase: np.ndarray, stance_fraction: float) -> list[tuple[int, int]]:
    """(first loaded frame, last loaded frame) of every stance in ``phase``, clipped to the samples."""
    loaded = phase < stance_fraction
    edges = np.diff(loaded.astype(int))
    starts = list(np.flatnonzero(edges == 1) + 1)
    stops = list(np.flatnonzero(edges == -1))
    if loaded[0]:
        starts.insert(0, 0)
    if loaded[-1]:
        stops.append(len(phase) - 1)
    return list(zip(starts, stops))


# --- public API ---------------------------------------------------------------------------------------------
def generate_trial(*, seed: int = 0, subject: int = 0, trial: int = 0, rate: float = 100.0,
                   marker_noise: float = 0.0005, force_noise: float = 1.0, with_angles: bool = True) -> Trial:
    """Trial ``trial`` of virtual subject ``subject`` of the cohort drawn from ``seed`` (see the module doc).

    ``marker_noise`` (m) and ``force_noise`` (N) are the standard deviations of white measurement noise
    added to every marker coordinate and force component (0 turns it off).
    """
    if not 20.0 <= rate <= 1000.0:
        raise GaitforceError(f"synthetic rate {rate!r} Hz outside 20-1000 Hz")
    body = _draw_body(seed, subject)
    walk = _draw_walk(seed, subject, trial, body)
    return _simulate(body, walk, rate=rate, marker_noise=marker_noise, force_noise=force_noise,
                     seed=seed, index=subject, trial=trial, with_angles=with_angles)


def generate_cohort(*, n_subjects: int = 8, trials_per_subject: int = 4, seed: int = 0, rate: float = 100.0,
                    marker_noise: float = 0.0005, force_noise: float = 1.0, with_angles: bool = True) -> list[Trial]:
    """A virtual cohort: ``n_subjects`` subjects of varied size and gait, ``trials_per_subject`` walks each.

    Deterministic for ``seed``; subject ``i`` is the same whatever ``n_subjects`` is. Every trial is marked
    synthetic (``meta["synthetic"]``, ``source="synthetic://<subject>/<subject>_walk<NN>"``: the trial name alone
    is unique across the cohort, so stance ids built from it do not collide).
    """
    if n_subjects < 1 or trials_per_subject < 1:
        raise GaitforceError("a synthetic cohort needs at least one subject and one trial per subject")
    return [
        generate_trial(seed=seed, subject=i, trial=j, rate=rate, marker_noise=marker_noise,
                       force_noise=force_noise, with_angles=with_angles)
        for i in range(n_subjects)
        for j in range(trials_per_subject)
    ]


def cohort_table(trials: Iterable[Trial]):
    """One row per trial: subject, sex, height, mass, speed, cadence, stride length, stance fraction, ..."""
    import pandas as pd

    rows = []
    for tr in trials:
        m = tr.meta
        rows.append({
            "source": tr.source, "subject": tr.subject.id, "sex": tr.subject.sex, "height": tr.subject.height,
            "mass": tr.subject.mass, "speed": m.get("speed"), "cadence": m.get("cadence"),
            "stride_length": m.get("stride_length"), "stance_fraction": m.get("stance_fraction"),
            "step_width": m.get("step_width"), "frames": tr.n_frames,
            "peak_vgrf_bw": float(np.nanmax(tr.forces[:, :, 1])) / tr.subject.weight,
        })
    return pd.DataFrame(rows)


def write_cohort(folder: str | os.PathLike, trials: Iterable[Trial], *, fmt: str = "c3d") -> list[Path]:
    """Write ``trials`` to ``folder`` as ``<trial>.c3d`` or ``<trial>.trc`` + ``<trial>_grf.mot``, plus ``cohort.json``.

    ``<trial>`` is the last part of the trial's source (``syn01_walk01``).

    ``cohort.json`` lists each file with its subject's id, mass (kg), height (m), sex and ``"synthetic": true``
    (TRC/MOT files cannot carry them). Returns the paths written (data files first, then cohort.json).
    """
    if fmt not in ("c3d", "trc"):
        raise GaitforceError(f"unknown synthetic cohort format {fmt!r} (c3d or trc)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, entries = [], []
    for tr in trials:
        stem = tr.source.rstrip("/").rsplit("/", 1)[-1] or tr.subject.id
        if fmt == "c3d":
            from gaitforce.io.c3d import write_c3d

            path = folder / f"{stem}.c3d"
            write_c3d(path, tr)
            files = [path]
        else:
            from gaitforce.io.writers import write_mot_grf, write_trc

            path = folder / f"{stem}.trc"
            grf = folder / f"{stem}_grf.mot"
            write_trc(path, tr)
            write_mot_grf(grf, tr)
            files = [path, grf]
        written += files
        s = tr.subject
        entries.append({"files": [f.name for f in files], "subject": s.id, "mass": s.mass, "height": s.height,
                        "sex": s.sex, "synthetic": True, "source": tr.source})
    manifest = folder / "cohort.json"
    manifest.write_text(json.dumps({"synthetic": True, "generator": f"gaitforce.data.synthetic v{GENERATOR_VERSION}",
                                    "trials": entries}, indent=1))
    return written + [manifest]
