"""Labelling from given joint kinematics: another pipeline's inverse kinematics (an OpenSim ``.mot`` of
coordinates) instead of our scaling and IK, for trials that lack the landmarks our scaling needs (GC5's PS has
no medial epicondyle/malleolus markers and no static trial).

Stated rules:
- **Coordinates matched by name** to the model's (gait14dof22musc: pelvis_*, hip_flexion/adduction/rotation_[rl],
  knee_angle_[rl], ankle_angle_[rl], lumbar_extension; rajagopal2015 adds subtalar, mtp, the patella's
  knee_angle_*_beta, lumbar bending/rotation and the arms). Coordinates the file lacks are an error; extra ones
  are ignored. ``sign`` flips a convention: Rajagopal 2015 (and most current OpenSim models) count knee
  flexion positive, gait2392 and gait14dof22musc negative, so :func:`convention_signs` ("rajagopal2015" to
  "gait14dof22musc", :data:`RAJAGOPAL_SIGNS`) negates knee_angle_[rl]; between the same models it is empty.
- **Mass-and-height scaling**: every body is scaled uniformly by the subject's height over the generic model's
  (``ModelSpec.height``: gait2392 1.80 m, Rajagopal 1.70 m; no height: sizes unchanged), the segment masses in
  proportion to the subject's mass. So the foot sits where the given pelvis and joint angles put the
  height-scaled leg, not exactly where the subject's foot was; the ground reactions still act at the measured
  CoP (their moment arms about the joints come out right to the extent the subject's proportions are the
  generic ones).
- The lumbar extension is taken from the file (unlocked), the rest as in :func:`pipeline.run_trial`:
  ID, SO, JR on the coordinates, low-passed at ``settings.lowpass_hz``.
"""

from __future__ import annotations

import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError
from gaitforce.physics import files
from gaitforce.physics.model import spec
from gaitforce.physics.pipeline import (
    quiet_stdout,
    read_sto,
    run_id,
    static_optimisation_and_reaction,
    write_external_loads,
)
from gaitforce.physics.settings import LabelSettings
from gaitforce.trial import Trial

#: Sign per coordinate when kinematics from Rajagopal 2015 (knee flexion positive there) drive gait14dof22musc.
RAJAGOPAL_SIGNS = {"knee_angle_r": -1.0, "knee_angle_l": -1.0}


def convention_signs(source: str, target: str) -> dict[str, float]:
    """Sign per coordinate to take kinematics written for model ``source`` to model ``target`` (both names in
    :data:`gaitforce.physics.model.MODELS`): the knee flexion sign where the two models disagree."""
    if spec(source).knee_flexion_sign == spec(target).knee_flexion_sign:
        return {}
    return {"knee_angle_r": -1.0, "knee_angle_l": -1.0}
TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")


def mass_scaled_model(mass: float, settings: LabelSettings, *, locked=(), height: float | None = None):
    """The generic model with its segment masses scaled to ``mass`` kg, ready for ID/SO/JR; sizes unchanged, or,
    with ``height`` (m), every body scaled by height / the generic model's height. The coordinates ``locked``
    stay locked at the model's default values, every other one is free."""
    from gaitforce.physics.pipeline import finish_model, scaled_generic_model

    if mass is None or not np.isfinite(mass) or mass <= 0:
        raise GaitforceError(f"a positive subject mass is needed, not {mass!r}")
    factor = 1.0 if height is None else float(height) / spec(settings.model).height
    model = scaled_generic_model(None, mass, settings, uniform=factor, height=height)
    model.initSystem()
    return finish_model(model, settings, locked=tuple(locked))


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
    ``time`` and coordinate columns, e.g. :func:`gaitforce.io.sto.read_sto_table` of an IK ``.mot``), the
    ground reactions of ``loads`` applied to the calcaneus ``plates`` names (plate index -> 'r'/'l').
    Returns the result tables (``ik`` = the coordinates used, ``id``, ``so``, ``jr``) and seconds per stage."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    with quiet_stdout(work / "opensim.log"):
        seconds = {}
        tic = _time.perf_counter()
        # coordinates no marker could drive (lumbar, arms) that the file lacks stay locked at the model's default
        lockable = [n for n in spec(settings.model).locked_coordinates if n not in coordinates.columns]
        model = mass_scaled_model(loads.subject.mass, settings, locked=lockable, height=loads.subject.height)
        model_path = work / "model_scaled.osim"
        model.printToXML(str(model_path))
        names = [c.getName() for c in model.getCoordinateSet()]
        defaults = {n: model.getCoordinateSet().get(n).getDefaultValue() for n in lockable}
        if lockable:
            coordinates = coordinates.assign(**{n: np.rad2deg(v) if in_degrees else v for n, v in defaults.items()})
        coords = model_coordinates(coordinates, names, in_degrees=in_degrees, signs=signs, source=loads.source)
        files.write_mot(work / "ik.mot", coords["time"].to_numpy(), {n: coords[n].to_numpy() for n in names},
                        name="coordinates")
        ext_xml = write_external_loads(loads.to_y_up(), plates, work, settings)
        t0, t1 = float(coords["time"].iloc[0]), float(coords["time"].iloc[-1])
        seconds["scale"] = _time.perf_counter() - tic
        tic = _time.perf_counter()
        run_id(model_path, work / "ik.mot", ext_xml, t0, t1, work, settings)
        seconds["id"] = _time.perf_counter() - tic
        static_optimisation_and_reaction(model, model_path, ext_xml, t0, t1, work, settings, seconds)
    tables = {"ik": read_sto(work / "ik.mot"), "id": read_sto(work / "id.sto"),
              "so": read_sto(work / "so_so_force.sto"), "jr": read_sto(work / "jr_jr_ReactionLoads.sto")}
    return tables, seconds
