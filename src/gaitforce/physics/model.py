"""The musculoskeletal model: gait14dof22musc (3-D, 14 DOF, 22 Hill muscles), fetched at set-up time.

Why this model: it is the fastest 3-D muscle model that OpenSim 4.6 loads here (static optimisation about
36 ms/frame against 0.42 s/frame for Rajagopal 2015), so the demo cohort and the 29 Grand Challenge stances
label in minutes on 2 cores. It carries the gait2392 bone geometry and muscle parameters lumped to 11 muscles a
leg (Delp et al. 1990 / Anderson & Pandy 1999 lineage, as published in the osim-rl package by Kidzinski et
al. 2018). Its foot-ground contact (HuntCrossleyForce + contact spheres), used for forward simulation in
osim-rl, is removed: measured ground reactions are applied instead.

The model file is never committed: :func:`model_file` extracts it from the osim-rl source distribution
(downloaded with ``pip download``) into ``~/.cache/gaitforce/models`` the first time (or run
``scripts/fetch-model.sh``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..errors import GaitforceError

MODEL_NAME = "gait14dof22musc"
_SDIST = "osim-rl==3.0.11"
_MEMBER = "osim/models/gait14dof22musc_20170320.osim"

#: Muscles of one leg in the model (without the _r/_l suffix) and the target groups built from them.
MUSCLES = ("abd", "add", "hamstrings", "bifemsh", "glut_max", "iliopsoas", "rect_fem", "vasti", "gastroc",
           "soleus", "tib_ant")
GROUPS = {
    "glut_max": ("glut_max",),
    "glut_med": ("abd",),  # the model's single hip abductor lumps gluteus medius and minimus
    "quadriceps": ("rect_fem", "vasti"),
    "hamstrings": ("hamstrings", "bifemsh"),
}


#: Lumped two-head muscles of the model whose knee-crossing attachments sit on one head only (the lumped
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


def cache_dir() -> Path:
    return Path(os.environ.get("GAITFORCE_CACHE", Path.home() / ".cache" / "gaitforce"))


def model_file(*, download: bool = True) -> Path:
    """Path of the original model file in the cache, fetched from the osim-rl sdist if absent."""
    target = cache_dir() / "models" / "gait14dof22musc_20170320.osim"
    if target.exists():
        return target
    if not download:
        raise GaitforceError(f"model {MODEL_NAME} not in {target.parent}; run scripts/fetch-model.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, _SDIST]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise GaitforceError(f"could not download {_SDIST} for the model: {done.stderr.strip()[-300:]}")
        sdist = next(Path(tmp).glob("osim-rl-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(_MEMBER))
            data = tar.extractfile(member).read()
    tmp_target = target.with_suffix(".part")
    tmp_target.write_bytes(data)
    tmp_target.replace(target)
    return target


def centre_lumped_heads(model) -> dict[str, float]:
    """Move the knee-crossing attachments of the lumped muscles (:data:`LUMPED_HEADS`) medio-laterally to where
    the heads they lump act on average; returns the shift (m, +z) applied per muscle. Only z changes, so
    sagittal moment arms are kept."""
    import opensim as osim

    shifts = {}
    for side, sign in (("r", 1.0), ("l", -1.0)):
        for muscle, (body, z_mid) in LUMPED_HEADS.items():
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


def generic_model():
    """The model as an ``opensim.Model`` with the foot contact forces and contact geometry removed."""
    import opensim as osim

    osim.Logger.setLevelString("error")  # the model names bone meshes that are not shipped (display only)
    model = osim.Model(str(model_file()))
    forces = model.updForceSet()
    for i in reversed(range(forces.getSize())):
        if forces.get(i).getConcreteClassName() in ("HuntCrossleyForce", "ElasticFoundationForce",
                                                    "SmoothSphereHalfSpaceForce"):
            forces.remove(i)
    geometry = model.updContactGeometrySet()
    for i in reversed(range(geometry.getSize())):
        geometry.remove(i)
    for name in ("hip_rotation_r", "hip_rotation_l"):  # locked in osim-rl for its control task; free for gait
        model.updCoordinateSet().get(name).set_locked(False)
    model.finalizeConnections()
    return model
