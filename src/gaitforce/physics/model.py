"""The musculoskeletal models, fetched at set-up time and never committed.

Two models are known (:data:`MODELS`, chosen with ``LabelSettings(model=...)`` / ``gaitforce label --model``):

- **gait14dof22musc** (the demo's; ``MODEL_NAME``, the file helpers' default): 3-D, 14 DOF, 11 Hill muscles a leg (gait2392 bone geometry and muscle
  parameters lumped, Delp et al. 1990 / Anderson & Pandy 1999 lineage, as published in the osim-rl package by
  Kidzinski et al. 2018). The fastest 3-D muscle model OpenSim 4.6 loads here (static optimisation about
  36-80 ms a frame), so the demo cohort and the Grand Challenge stances label in minutes on 2 cores. Its
  hamstrings, vasti and gastrocnemius are single lumped muscles, so it has no separate semimembranosus,
  biceps femoris, vastus medialis/lateralis, medial/lateral gastrocnemius or TFL (the paper's EMG muscles). Its
  foot-ground contact (HuntCrossleyForce + contact spheres) is removed: measured ground reactions are applied.
  Extracted from the osim-rl source distribution (``pip download``).
- **rajagopal2015** (``LabelSettings``' default since issue 15: the lower held-out medial error): Rajagopal et al. 2016 (IEEE TBME 63:2068), 40 Hill muscles a leg with separate heads
  (three vasti, rectus femoris, semimembranosus, semitendinosus, biceps long and short head, medial and lateral
  gastrocnemius, TFL, gluteus maximus/medius/minimus in three bundles each, ...), a patella on a coupled
  patellofemoral joint and a knee whose tibia translates with flexion (Walker et al. 1988). About 10x slower in
  SO, and the model whose separate lateral muscles (biceps, lateral gastrocnemius, TFL) carry part of the
  knee's frontal-plane moment. Its torque-driven arms are locked at the model's pose when no arm markers are
  used. Extracted from the nimblephysics wheel (``pip download --no-deps``; nimblephysics itself is never
  installed: it needs numpy 1 while OpenSim 4.6 needs numpy >= 2.1).

:func:`model_file` fetches a model into ``~/.cache/gaitforce/models`` the first time (or run
``scripts/fetch-model.sh``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from gaitforce.errors import GaitforceError

MODEL_NAME = "gait14dof22musc"  # default of spec()/model_file()/generic_model(); the labeller's: LabelSettings.model


@dataclass(frozen=True)
class Geometry:
    """Landmark-scaling geometry of a model's right leg in its default pose (m, body frames x fwd, y up, z right):
    hip centre in the pelvis frame, hip-knee and knee-ankle centre distances, ankle centre in the tibia frame."""

    hip_centre: tuple[float, float, float]
    femur_length: float
    tibia_length: float
    ankle_in_tibia: tuple[float, float, float]


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline must know of a model: where it comes from, its muscles (one leg, no ``_r``/``_l``)
    and target groups, the knee joint's name, knee-flexion sign, the coordinates that get strong residual
    actuators (no muscle crosses them), those locked when no markers drive them, the bodies scaled like another
    body (``scale_like``), and the geometry that landmark scaling uses."""

    name: str
    filename: str
    source: str  # pip requirement the file is taken from
    member: str  # the file's path inside that distribution
    muscles: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    knee_joint: str  # without the side suffix
    knee_flexion_sign: float  # +1: flexion positive
    free_coordinates: tuple[str, ...]
    locked_coordinates: tuple[str, ...]
    geometry: Geometry
    height: float  # m, of the generic model's subject (mass-and-height scaling)
    scale_like: dict[str, str] = field(default_factory=dict)
    lumped_heads: dict = field(default_factory=dict)

    def knee(self, side: str) -> str:
        return f"{self.knee_joint}_{side}"


#: gait14dof22musc's lumped two-head muscles whose knee-crossing attachments sit on one head only (the lumped
#: hamstrings insert where semimembranosus does, the lumped gastrocnemius arises from the medial condyle), so
#: their whole force loads the medial compartment. ``centre_lumped_heads`` moves those attachments, on the named
#: body, to the max-force-weighted medio-lateral position (z, m, right leg) of the heads they stand for, from
#: gait2392 (Delp et al. 1990): hamstrings = semimembranosus 1288 N (z -0.0194), semitendinosus 410 N
#: (-0.0146), biceps femoris long head 896 N (+0.0423); gastrocnemius = medial head 1113 N (-0.0235),
#: lateral head 488 N (+0.0272).
LUMPED_HEADS = {
    "hamstrings": ("tibia", (1288 * -0.0194 + 410 * -0.0146 + 896 * 0.0423) / (1288 + 410 + 896)),
    "gastroc": ("femur", (1113 * -0.0235 + 488 * 0.0272) / (1113 + 488)),
}

_PELVIS = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
_ARMS = tuple(f"{c}_{s}" for s in ("r", "l") for c in ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup",
                                                      "wrist_flex", "wrist_dev"))

MODELS = {
    "gait14dof22musc": ModelSpec(
        name="gait14dof22musc", filename="gait14dof22musc_20170320.osim", source="osim-rl==3.0.11",
        member="osim/models/gait14dof22musc_20170320.osim",
        muscles=("abd", "add", "hamstrings", "bifemsh", "glut_max", "iliopsoas", "rect_fem", "vasti", "gastroc",
                 "soleus", "tib_ant"),
        groups={"glut_max": ("glut_max",),
                "glut_med": ("abd",),  # the single hip abductor lumps gluteus medius and minimus
                "quadriceps": ("rect_fem", "vasti"),
                "hamstrings": ("hamstrings", "bifemsh")},
        knee_joint="knee", knee_flexion_sign=-1.0,
        free_coordinates=_PELVIS + ("hip_rotation_r", "hip_rotation_l", "lumbar_extension"),
        locked_coordinates=("lumbar_extension",),
        geometry=Geometry(hip_centre=(-0.0707, -0.0661, 0.0835), femur_length=0.3960, tibia_length=0.43,
                          ankle_in_tibia=(0.0, -0.43, 0.0)),
        height=1.80,  # gait2392's generic subject: 1.8 m, 75.2 kg
        lumped_heads=LUMPED_HEADS),
    "rajagopal2015": ModelSpec(
        name="rajagopal2015", filename="Rajagopal2015.osim",
        source="nimblephysics==0.10.52.1", member="nimblephysics/models/rajagopal_data/Rajagopal2015.osim",
        muscles=("addbrev", "addlong", "addmagDist", "addmagIsch", "addmagMid", "addmagProx", "bflh", "bfsh", "edl",
                 "ehl", "fdl", "fhl", "gaslat", "gasmed", "glmax1", "glmax2", "glmax3", "glmed1", "glmed2",
                 "glmed3", "glmin1", "glmin2", "glmin3", "grac", "iliacus", "perbrev", "perlong", "piri", "psoas",
                 "recfem", "sart", "semimem", "semiten", "soleus", "tfl", "tibant", "tibpost", "vasint", "vaslat",
                 "vasmed"),
        groups={"glut_max": ("glmax1", "glmax2", "glmax3"),
                "glut_med": ("glmed1", "glmed2", "glmed3"),
                "quadriceps": ("recfem", "vasint", "vaslat", "vasmed"),
                "hamstrings": ("bflh", "bfsh", "semimem", "semiten")},
        knee_joint="walker_knee", knee_flexion_sign=1.0,
        free_coordinates=_PELVIS + ("lumbar_extension", "lumbar_bending", "lumbar_rotation") + _ARMS,
        locked_coordinates=("lumbar_extension", "lumbar_bending", "lumbar_rotation") + _ARMS,
        # measured on the file: hip_r in the pelvis, tibia_r origin in femur_r, ankle_r in tibia_r
        geometry=Geometry(hip_centre=(-0.056276, -0.07849, 0.07726), femur_length=0.404427,
                          tibia_length=0.400125, ankle_in_tibia=(-0.01, -0.40, 0.0)),
        height=1.70,  # Rajagopal et al. 2016: the generic subject is 1.70 m, 75 kg
        scale_like={"patella_r": "femur_r", "patella_l": "femur_l",
                    **{f"{b}_{s}": "torso" for b in ("humerus", "ulna", "radius", "hand") for s in ("r", "l")}}),
}


def spec(name: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` called ``name`` (default :data:`MODEL_NAME`); an unknown name is a one-line error."""
    name = name or MODEL_NAME
    try:
        return MODELS[name]
    except KeyError:
        raise GaitforceError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def cache_dir() -> Path:
    return Path(os.environ.get("GAITFORCE_CACHE", Path.home() / ".cache" / "gaitforce"))


def _download(requirement: str, tmp: str) -> Path:
    """``pip download`` one distribution without its dependencies (an sdist for osim-rl, a fixed manylinux
    cp311 wheel for nimblephysics, whatever this machine is), returns the file."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp]
    if requirement.startswith("osim-rl"):
        cmd += ["--no-binary", ":all:"]
    else:
        cmd += ["--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "311",
                "--implementation", "cp", "--abi", "cp311"]
    done = subprocess.run(cmd + [requirement], capture_output=True, text=True)
    if done.returncode != 0:
        raise GaitforceError(f"could not download {requirement} for its model: {done.stderr.strip()[-300:]}")
    return next(p for p in Path(tmp).iterdir() if p.suffix in (".gz", ".whl", ".zip"))


def _extract(archive: Path, member: str) -> bytes:
    if archive.suffix == ".gz":
        with tarfile.open(archive) as tar:
            found = next(m for m in tar.getmembers() if m.name.endswith(member))
            return tar.extractfile(found).read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def model_file(name: str | None = None, *, download: bool = True) -> Path:
    """Path of the original model file in the cache, fetched from its distribution if absent."""
    ms = spec(name)
    target = cache_dir() / "models" / ms.filename
    if target.exists():
        return target
    if not download:
        raise GaitforceError(f"model {ms.name} not in {target.parent}; run scripts/fetch-model.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = _extract(_download(ms.source, tmp), ms.member)
    tmp_target = target.with_suffix(".part")
    tmp_target.write_bytes(data)
    tmp_target.replace(target)
    return target


def centre_lumped_heads(model, lumped_heads: dict | None = None) -> dict[str, float]:
    """Move the knee-crossing attachments of the lumped muscles (``lumped_heads``, default :data:`LUMPED_HEADS`)
    medio-laterally to where the heads they lump act on average; returns the shift (m, +z) applied per muscle.
    Only z changes, so sagittal moment arms are kept. A model with separate heads has nothing to centre."""
    import opensim as osim

    shifts = {}
    for side, sign in (("r", 1.0), ("l", -1.0)):
        for muscle, (body, z_mid) in (LUMPED_HEADS if lumped_heads is None else lumped_heads).items():
            points = model.updMuscles().get(f"{muscle}_{side}").updGeometryPath().updPathPointSet()
            on_body = [osim.PathPoint.safeDownCast(points.get(i)) for i in range(points.getSize())]
            on_body = [p for p in on_body if p is not None and p.getParentFrame().getName() == f"{body}_{side}"]
            if not on_body:
                continue
            delta = sign * z_mid - on_body[0].get_location().get(2)
            for p in on_body:
                loc = p.get_location()
                p.set_location(osim.Vec3(loc.get(0), loc.get(1), loc.get(2) + delta))
            shifts[f"{muscle}_{side}"] = float(delta)
    return shifts


def generic_model(name: str | None = None):
    """The model ``name`` as an ``opensim.Model`` with foot contact forces, contact geometry and the model's own
    coordinate actuators removed (the pipeline adds its reserve and residual actuators to every model alike)."""
    import opensim as osim

    osim.Logger.setLevelString("error")  # the model names bone meshes that are not shipped (display only)
    model = osim.Model(str(model_file(name)))
    forces = model.updForceSet()
    for i in reversed(range(forces.getSize())):
        if forces.get(i).getConcreteClassName() in ("HuntCrossleyForce", "ElasticFoundationForce",
                                                    "SmoothSphereHalfSpaceForce", "CoordinateActuator"):
            forces.remove(i)
    geometry = model.updContactGeometrySet()
    for i in reversed(range(geometry.getSize())):
        geometry.remove(i)
    markers = model.updMarkerSet()  # the pipeline places its own, named as the trial's
    for i in reversed(range(markers.getSize())):
        markers.remove(i)
    for coord in ("hip_rotation_r", "hip_rotation_l"):  # locked in osim-rl for its control task; free for gait
        model.updCoordinateSet().get(coord).set_locked(False)
    model.finalizeConnections()
    return model


# -- subject-scaled muscle strength (LabelSettings.strength, issue 15 item 3) -----------------------------
def muscle_volume_cm3(mass: float, height: float) -> float:
    """Total lower-limb muscle volume (cm^3) of a person of ``mass`` kg and ``height`` m by the regression of
    Handsfield et al. 2014 (J Biomech 47:631, 24 adults, MRI; R^2 = 0.92): V = 47.05 m h + 1289.6. The
    same rule Rajagopal et al. 2016 used to set their model's maximum forces."""
    return 47.05 * float(mass) * float(height) + 1289.6


def strength_factor(mass: float, height: float, generic_mass: float, generic_height: float) -> float:
    """The subject's muscle volume over the generic model subject's (Handsfield et al. 2014). Each muscle
    keeps its share of the total volume (Handsfield et al. found the individual volumes proportional to the
    total), so its physiological cross-section, and so its maximum isometric force, scales with this volume
    ratio divided by its optimal fibre length ratio (PCSA = volume / fibre length)."""
    return muscle_volume_cm3(mass, height) / muscle_volume_cm3(generic_mass, generic_height)


def muscle_parameters(model) -> dict[str, tuple[float, float]]:
    """Muscle name -> (maximum isometric force N, optimal fibre length m)."""
    muscles = model.getMuscles()
    return {muscles.get(i).getName(): (muscles.get(i).getMaxIsometricForce(), muscles.get(i).getOptimalFiberLength())
            for i in range(muscles.getSize())}


def scale_strength(model, generic: dict[str, tuple[float, float]], volume_ratio: float) -> dict[str, float]:
    """Set each muscle's maximum isometric force to generic Fmax x ``volume_ratio`` x generic l_opt / scaled
    l_opt (``generic``: :func:`muscle_parameters` of the model before its geometry was scaled; OpenSim's scaling
    changes the fibre lengths with the muscle paths, never the forces). Returns the factor per muscle."""
    factors = {}
    muscles = model.updMuscles()
    for i in range(muscles.getSize()):
        m = muscles.get(i)
        f0, l0 = generic[m.getName()]
        factors[m.getName()] = volume_ratio * l0 / m.getOptimalFiberLength()
        m.setMaxIsometricForce(f0 * factors[m.getName()])
    return factors
