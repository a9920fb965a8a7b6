"""Labelling from given joint kinematics: another pipeline's inverse kinematics (an OpenSim ``.mot`` of
coordinates) instead of our scaling and IK, for trials that lack the landmarks our scaling needs (GC5's PS has
no medial epicondyle/malleolus markers and no static trial).

Stated rules:
- **Coordinates matched by name** to gait14dof22musc (pelvis_*, hip_flexion/adduction/rotation_[rl],
  knee_angle_[rl], ankle_angle_[rl], lumbar_extension). Coordinates the file lacks are an error; extra ones
  (subtalar, mtp, knee_angle_*_beta, lumbar bending/rotation) are ignored. ``sign`` flips a convention:
  Rajagopal 2015 (and most current OpenSim models) count knee flexion positive, gait2392 and this model
  negative, so :data:`RAJAGOPAL_SIGNS` negates knee_angle_[rl].
- **Mass-only scaling**: segment sizes stay the generic model's (gait2392 proportions, 1.8 m), the segment
  masses are scaled in proportion to the subject's mass. So the foot sits where the given pelvis and joint
  angles put the generic leg, not where the subject's foot was; the ground reactions still act at the
  measured CoP (their moment arms about the joints come out right to the extent the subject's segment lengths
  are the generic ones).
- The lumbar extension is taken from the file (unlocked), the rest as in :func:`pipeline.run_trial`:
  ID, SO, JR on the coordinates, low-passed at ``settings.lowpass_hz``.
"""

from __future__ import annotations

import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GaitforceError
from ..trial import Trial
from . import files
from .model import centre_lumped_heads, generic_model
from .pipeline import quiet_stdout, read_sto, run_id, static_optimisation_and_reaction, write_external_loads
from .settings import LabelSettings

#: Sign per coordinate when the kinematics come from Rajagopal 2015 (knee flexion positive there).
RAJAGOPAL_SIGNS = {"knee_angle_r": -1.0, "knee_angle_l": -1.0}
TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")


def mass_scaled_model(mass: float, settings: LabelSettings):
    """The generic model with its segment masses scaled to ``mass`` kg (sizes unchanged), ready for ID/SO/JR."""
    from .pipeline import finish_model, scaled_generic_model

    if mass is None or not np.isfinite(mass) or mass <= 0:
        raise GaitforceError(f"a positive subject mass is needed, not {mass!r}")
    model = scaled_generic_model(None, mass, settings)
    model.initSystem()
    return finish_model(model, settings, lock_lumbar=False)


def model_coordinates(table: pd.DataFrame, names, *, in_degrees: bool, signs: dict | None = None,
                      source=None) -> pd.DataFrame:
    """``time`` + one column per model coordinate ``names`` (radians / metres) taken by name from ``table``."""
    signs = signs or {}
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise GaitforceError(f"the kinematics lack the model's coordinates {', '.join(missing)}", source=source)
    out = {"time": table["time"].to_numpy(dtype=float)}
    for n in names:
        v = table[n].to_numpy(dtype=float) * signs.get(n, 1.0)
        if in_degrees and n not in TRANSLATIONS:
            v = np.deg2rad(v)
        if not np.isfinite(v).all():
            raise GaitforceError(f"coordinate {n} has NaN values", source=source)
        out[n] = v
    return pd.DataFrame(out)


def run_given_kinematics(coordinates: pd.DataFrame, loads: Trial, plates: dict[int, str], work: Path,
                         settings: LabelSettings, *, in_degrees: bool = True, signs: dict | None = None):
    """ID -> SO -> JR of the mass-scaled model (``loads.subject.mass``) driven by ``coordinates`` (a table with
    ``time`` and coordinate columns, e.g. :func:`gaitforce.io.opensim.read_sto_table` of an IK ``.mot``), the
    ground reactions of ``loads`` applied to the calcaneus ``plates`` names (plate index -> 'r'/'l').
    Returns the result tables (``ik`` = the coordinates used, ``id``, ``so``, ``jr``) and seconds per stage."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    with quiet_stdout(work / "opensim.log"):
        seconds = {}
        tic = _time.perf_counter()
        model = mass_scaled_model(loads.subject.mass, settings)
        model_path = work / "model_scaled.osim"
        model.printToXML(str(model_path))
        names = [c.getName() for c in model.getCoordinateSet()]
        coords = model_coordinates(coordinates, names, in_degrees=in_degrees, signs=signs, source=loads.source)
        files.write_mot(work / "ik.mot", coords["time"].to_numpy(), {n: coords[n].to_numpy() for n in names},
                        name="coordinates")
        ext_xml = write_external_loads(loads.to_y_up(), plates, work)
        t0, t1 = float(coords["time"].iloc[0]), float(coords["time"].iloc[-1])
        seconds["scale"] = _time.perf_counter() - tic
        tic = _time.perf_counter()
        run_id(model_path, work / "ik.mot", ext_xml, t0, t1, work, settings)
        seconds["id"] = _time.perf_counter() - tic
        static_optimisation_and_reaction(model, model_path, ext_xml, t0, t1, work, settings, seconds)
    tables = {"ik": read_sto(work / "ik.mot"), "id": read_sto(work / "id.sto"),
              "so": read_sto(work / "so_so_force.sto"), "jr": read_sto(work / "jr_jr_ReactionLoads.sto")}
    return tables, seconds
