"""One trial through OpenSim 4.6: scale -> inverse kinematics -> inverse dynamics -> static optimisation ->
joint reaction at the knees. Inputs, outputs and the resolved setup XML of every tool are written to ``work``.

Why one module of ~440 lines: it is one tool chain whose steps pass OpenSim objects and work-folder files to
each other in order; the model registry, landmarks, file writers and the batched SO live in their own modules.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError
from gaitforce.physics import files
from gaitforce.physics.landmarks import Calibration, calibrate, find_landmarks
from gaitforce.physics.model import centre_lumped_heads, generic_model, spec
from gaitforce.physics.settings import LabelSettings
from gaitforce.trial import Trial


def read_sto(path) -> pd.DataFrame:
    """An OpenSim storage file as a DataFrame (columns as in the file, ``time`` first)."""
    path = Path(path)
    with path.open() as fh:
        for n, line in enumerate(fh):
            if line.strip().lower() == "endheader":
                break
    return pd.read_csv(path, sep=r"\s+", skiprows=n + 1)


def assign_plates(trial: Trial, cal_names: dict[str, str], *, max_distance: float = 0.25) -> dict[int, str]:
    """Plate index -> 'r' or 'l': the foot whose heel/toe mid-point is nearest the plate's CoP when loaded
    (median horizontal distance), if that is at most ``max_distance`` m. In a one-leg recording a plate farther
    than that from the tracked foot is the other foot's and is not applied; with both feet tracked, a loaded
    plate far from both is an error (plates and markers not in one lab frame), never a load silently dropped."""
    out = {}
    for i in range(len(trial.plate_names)):
        fy = trial.forces[:, i, 1]
        loaded = fy > 20.0
        if not loaded.any():
            continue
        cop = trial.cop[loaded, i, :]
        dist = {}
        for s in ("r", "l"):
            if ("heel", s) not in cal_names or ("toe", s) not in cal_names:
                continue  # a leg without foot markers (one-leg recordings) gets no plate
            foot = (trial.marker(cal_names["heel", s]) + trial.marker(cal_names["toe", s]))[loaded] / 2
            d = np.linalg.norm((cop - foot)[:, [0, 2]], axis=1)
            dist[s] = np.nanmedian(d)
        if dist and min(dist.values()) <= max_distance:
            out[i] = min(dist, key=dist.get)
        elif len(dist) == 2:
            raise GaitforceError(f"plate {trial.plate_names[i]}: its centre of pressure lies "
                                 f"{min(dist.values()):.2f} m from the nearest foot (at most {max_distance} m "
                                 f"expected): are the plates and the markers in the same lab frame?",
                                 source=trial.source)
    return out


def scaled_generic_model(scales: dict[str, float] | None, mass: float, settings: LabelSettings,
                         *, scale_set_xml: Path | None = None, uniform: float = 1.0, height: float | None = None):
    """The generic model (lumped heads centred per ``settings``) with uniform size factors per body
    (``scales``: body -> factor; None: every body ``uniform``) and its segment masses scaled to ``mass`` kg.
    With ``settings.strength == 'handsfield2014'`` the maximum isometric forces are scaled to a subject of
    ``mass`` kg and ``height`` m (unknown height: the generic height x the mean thigh and shank size factor)
    by :func:`gaitforce.physics.model.strength_factor`."""
    import opensim as osim

    from gaitforce.physics.model import muscle_parameters, scale_strength, strength_factor

    ms = spec(settings.model)
    model = generic_model(ms.name)
    if settings.centre_lumped_heads and ms.lumped_heads:
        centre_lumped_heads(model, ms.lumped_heads)
        model.finalizeConnections()
    state = model.initSystem()
    generic_muscles = muscle_parameters(model)
    generic_mass = model.getTotalMass(state)
    if scales is None:
        bodies = model.getBodySet()
        scales = {bodies.get(i).getName(): float(uniform) for i in range(bodies.getSize())}
    else:
        scales = {**scales, **{b: scales[like] for b, like in ms.scale_like.items() if like in scales}}
    scale_set = osim.ScaleSet()
    for body, factor in scales.items():
        sc = osim.Scale()
        sc.setSegmentName(body)
        sc.setScaleFactors(osim.Vec3(factor, factor, factor))
        sc.setApply(True)
        scale_set.cloneAndAppend(sc)
    if scale_set_xml is not None:
        scale_set.printToXML(str(scale_set_xml))
    model.scale(state, scale_set, True, float(mass))
    if settings.strength == "handsfield2014":
        if height is None or not np.isfinite(height):
            legs = [scales[b] for b in ("femur_r", "tibia_r", "femur_l", "tibia_l") if b in scales]
            height = ms.height * (float(np.mean(legs)) if legs else 1.0)
        scale_strength(model, generic_muscles, strength_factor(mass, height, generic_mass, ms.height))
        model.initSystem()
    return model


def build_model(trial: Trial, cal: Calibration, settings: LabelSettings, path: Path):
    import opensim as osim

    mass = trial.subject.mass
    if mass is None:
        raise GaitforceError("the subject's mass is needed to scale the model", source=trial.source)
    model = scaled_generic_model(cal.scales, mass, settings, scale_set_xml=path.with_name("scale_set.xml"),
                                 height=trial.subject.height)
    state = model.initSystem()
    for name in ("knee_angle_r", "knee_angle_l"):
        model.getCoordinateSet().get(name).setValue(state, 0.0)
    model.realizePosition(state)
    placed = []
    for marker, (body, loc) in cal.markers.items():
        if loc[0] == "knee_centre":
            tibia = model.getBodySet().get(body.replace("femur", "tibia"))
            centre = tibia.findStationLocationInAnotherFrame(state, osim.Vec3(0, 0, 0), model.getBodySet().get(body))
            loc = (centre.get(0), centre.get(1), centre.get(2) + loc[1])
        placed.append((marker, body, tuple(map(float, loc))))
    for marker, body, loc in placed:
        model.addMarker(osim.Marker(marker, model.getBodySet().get(body), osim.Vec3(*loc)))
    model = finish_model(model, settings)
    untracked = [s for s in ("r", "l") if s not in cal.legs]
    if untracked:
        lock_leg(model, untracked)
    return model


#: Coordinates of one leg (with the side suffix) in both models.
LEG_COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle", "subtalar_angle",
                   "mtp_angle")


def lock_leg(model, sides) -> None:
    """Lock the coordinates of the legs ``sides`` at the model's default pose: a recording of one leg (the Grand
    Challenge .mat files) has no markers to drive the other. Its knee reaction is then not a result, but the
    tracked leg's is unaffected: a leg's joint moments come from its own motion and ground reaction, and the
    untracked leg carries no plate (see :func:`assign_plates`)."""
    coords = model.getCoordinateSet()
    for side in sides:
        for c in LEG_COORDINATES:
            if coords.contains(f"{c}_{side}"):
                coords.get(f"{c}_{side}").set_locked(True)
    model.initSystem()


def finish_model(model, settings: LabelSettings, *, lock_lumbar: bool = True, locked=None):
    """Rigid-tendon DeGroote-Fregly muscles, the lock of the coordinates no marker drives (lumbar, arms:
    ``ModelSpec.locked_coordinates`` when ``lock_lumbar``, or exactly the names ``locked`` when given; the others
    of that list are unlocked) and the reserve/residual actuators (none on a coordinate that a constraint drives,
    e.g. Rajagopal's patella)."""
    import opensim as osim

    ms = spec(settings.model)
    if locked is None:
        locked = ms.locked_coordinates if lock_lumbar else ()

    # rigid tendons, so no fibre-equilibrium solve can fail on an odd pose (SO here uses F = a * Fmax; with
    # muscle_physiology the DeGroote-Fregly 2016 curves, which take rigid tendons, replace Thelen 2003's)
    if getattr(settings, "muscle_curves", "degroote") == "degroote":  # 'model': the file's own muscles kept
        osim.DeGrooteFregly2016Muscle.replaceMuscles(model)
    if getattr(settings, "knee_muscle_strength", 1.0) != 1.0:  # physics/strength.py
        from gaitforce.physics.strength import scale_knee_muscles

        scale_knee_muscles(model, ms.knee_joint, settings.knee_muscle_strength)
    for i in range(model.getMuscles().getSize()):
        model.updMuscles().get(i).set_ignore_tendon_compliance(True)
    # lumbar: no trunk landmarks are used, so the trunk stays in the model's neutral posture (unless the
    # coordinates are given, see physics.given)
    for name in ms.locked_coordinates:
        model.getCoordinateSet().get(name).set_locked(name in locked)
    state = model.initSystem()
    dependent = {c.getName() for c in model.getCoordinateSet() if c.isDependent(state)}  # before any addForce
    for coord in model.getCoordinateSet():
        if coord.getName() in dependent:
            continue
        act = osim.CoordinateActuator(coord.getName())
        free = coord.getName() in ms.free_coordinates
        act.setName(("residual_" if free else "reserve_") + coord.getName())
        act.setOptimalForce(settings.free_optimal_force if free else settings.reserve_optimal_force)
        act.setMinControl(-np.inf)
        act.setMaxControl(np.inf)
        model.addForce(act)
    model.finalizeConnections()
    model.initSystem()
    return model


def _mean_frame(trial: Trial, names) -> np.ndarray:
    xyz = np.array(trial.select_markers(names).markers, dtype=float)
    xyz[(xyz == 0).all(axis=2)] = np.nan
    return np.nanmean(xyz, axis=0)


def _run_ik(model, model_path: Path, trc: Path, names, t0, t1, out: Path, settings: LabelSettings, setup: Path):
    import opensim as osim

    ik = osim.InverseKinematicsTool()
    ik.setName(out.stem)
    ik.setModel(model)
    ik.set_model_file(str(model_path))
    ik.set_marker_file(str(trc))
    tasks = ik.getIKTaskSet()
    for name in names:
        task = osim.IKMarkerTask()
        task.setName(name)
        task.setApply(True)
        task.setWeight(1.0)
        tasks.cloneAndAppend(task)
    ik.set_accuracy(settings.ik_accuracy)
    ik.setStartTime(t0)
    ik.setEndTime(t1)
    ik.set_output_motion_file(str(out))
    ik.set_results_directory(str(out.parent))
    ik.set_report_errors(True)
    ik.printToXML(str(setup))
    if not ik.run():
        raise GaitforceError("inverse kinematics failed")
    return read_sto(out)


def register_markers(model, static: Trial, trial: Trial, cal: Calibration, settings: LabelSettings, work: Path):
    """Pose the model on the static trial by IK on the landmarks, then fix every other marker of ``trial`` on
    its body (see :func:`landmarks.body_of`) where the static trial shows it. Markers take the trial's names."""
    import opensim as osim

    from gaitforce.physics.landmarks import body_of, norm_name

    landmarks = list(cal.markers)
    frame = _mean_frame(static, landmarks)
    trc = files.write_trc(work / "static.trc", np.array([0.0, 0.01]), np.stack([frame, frame]), landmarks)
    model_path = work / "model_landmarks.osim"
    model.printToXML(str(model_path))
    pose = _run_ik(model, model_path, trc, landmarks, 0.0, 0.01, work / "ik_static.mot", settings,
                   work / "setup_ik_static.xml")
    state = model.initSystem()
    for coord in model.getCoordinateSet():
        value = float(pose[coord.getName()].iloc[0])
        if coord.getMotionType() == 1:  # rotational: IK writes degrees
            value = np.deg2rad(value)
        coord.setValue(state, value, False)
    model.assemble(state)
    model.realizePosition(state)
    static_by_norm = {norm_name(n): n for n in static.marker_names}
    trial_by_norm = {norm_name(n): n for n in trial.marker_names}
    # landmark markers take the walking trial's spelling of their names
    for i in range(model.getMarkerSet().getSize()):
        m = model.getMarkerSet().get(i)
        if norm_name(m.getName()) in trial_by_norm:
            m.setName(trial_by_norm[norm_name(m.getName())])
    have = {norm_name(model.getMarkerSet().get(i).getName()) for i in range(model.getMarkerSet().getSize())}
    added = []
    for key, name in trial_by_norm.items():
        body = body_of(name)
        if key in have or body is None or key not in static_by_norm:
            continue
        pos = _mean_frame(static, [static_by_norm[key]])[0]
        if not np.isfinite(pos).all():
            continue
        local = model.getGround().findStationLocationInAnotherFrame(state, osim.Vec3(*map(float, pos)),
                                                                     model.getBodySet().get(body))
        added.append((name, body, local))
    for name, body, local in added:
        model.addMarker(osim.Marker(name, model.getBodySet().get(body), local))
    model.finalizeConnections()
    model.initSystem()
    return model


def lowpass_plates(trial: Trial, cutoff: float) -> Trial:
    """The Y-up ``trial``'s ground reactions through the zero-lag Butterworth (4th order effective, -3 dB at
    ``cutoff`` Hz, :func:`gaitforce.signal.filters.lowpass`) that OpenSim's tools apply to the coordinates at the
    same cutoff (``LabelSettings.lowpass_hz``): forces and free moments over the whole window, each plate's CoP
    only over the frames where it carries more than ``COP_THRESHOLD_N``. Afterwards a frame whose filtered
    vertical force is below that threshold is unloaded (force, free moment 0, CoP undefined), and a loaded frame
    whose CoP was undefined before filtering (the filter spreads the force a frame or two) takes the nearest
    defined CoP of its plate."""
    from gaitforce.constants import COP_THRESHOLD_N
    from gaitforce.signal.filters import lowpass

    out = lowpass(trial, cutoff=cutoff, order=4, signals=[])
    forces, cop, moment = np.array(out.forces), np.array(out.cop), np.array(out.free_moment)
    for p in range(forces.shape[1]):
        unloaded = forces[:, p, 1] < COP_THRESHOLD_N
        forces[unloaded, p] = 0.0
        moment[unloaded, p] = 0.0
        raw_loaded = (trial.forces[:, p, 1] > COP_THRESHOLD_N) & np.isfinite(trial.cop[:, p]).all(axis=1)
        cop[~raw_loaded, p] = np.nan
        if raw_loaded.any():
            have = np.flatnonzero(raw_loaded)
            for i in np.flatnonzero(~unloaded & ~raw_loaded):
                cop[i, p] = cop[have[np.argmin(np.abs(have - i))], p]
        cop[unloaded, p] = np.nan
    return out.replace(forces=forces, cop=cop, free_moment=moment, markers=trial.markers)


def write_external_loads(trial: Trial, plates: dict[int, str], work: Path,
                         settings: LabelSettings | None = None) -> Path:
    """``work/grf.mot`` (every plate of the Y-up ``trial``) and ``work/external_loads.xml`` applying plate ``i``
    to the calcaneus ``plates[i]`` ('r'/'l'); plates not in ``plates`` are written but not applied. With
    ``settings.grf_lowpass`` the plates are low-passed first (:func:`lowpass_plates`)."""
    import opensim as osim

    if settings is not None and settings.grf_lowpass:
        trial = lowpass_plates(trial, settings.lowpass_hz)
    grf, prefixes = files.write_grf(work / "grf.mot", trial)
    loads = osim.ExternalLoads()
    for i, side in plates.items():
        p = prefixes[i]
        ef = osim.ExternalForce()
        ef.setName(f"plate{i + 1}_on_calcn_{side}")
        ef.set_applied_to_body(f"calcn_{side}")
        ef.set_force_expressed_in_body("ground")
        ef.set_point_expressed_in_body("ground")
        ef.set_force_identifier(f"{p}ground_force_v")
        ef.set_point_identifier(f"{p}ground_force_p")
        ef.set_torque_identifier(f"{p}ground_torque_")
        loads.cloneAndAppend(ef)
    loads.setDataFileName(str(grf))
    xml = work / "external_loads.xml"
    loads.printToXML(str(xml))
    return xml


@contextlib.contextmanager
def quiet_stdout(log: Path):
    """Send what OpenSim prints straight to the C++ standard output (model summaries, tool banners, which its
    ``Logger`` levels do not reach) to ``log`` instead of the terminal, and OpenSim's ``Logger`` file to ``log``
    too: by default OpenSim creates ``opensim.log`` in the current directory, outside any output folder. After
    the block OpenSim keeps no log file."""
    sys.stdout.flush()
    saved = os.dup(1)
    logger = _opensim_logger()
    try:
        if logger is not None:
            logger.removeFileSink()  # the default ./opensim.log
            logger.addFileSink(str(log))
        with open(log, "ab") as fh:
            os.dup2(fh.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    finally:
        os.close(saved)
        if logger is not None:
            logger.removeFileSink()


def _opensim_logger():
    try:
        import opensim
    except ImportError:
        return None
    return getattr(opensim, "Logger", None)


def run_trial(trial: Trial, work: Path, settings: LabelSettings, *, static: Trial | None = None,
              emg=None) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Run the whole pipeline on ``trial`` in folder ``work``; returns the result tables and seconds per stage.
    OpenSim's console output goes to ``work/opensim.log``. ``work`` is made absolute: OpenSim resolves the file
    names inside a setup XML against the XML's folder, so a relative path would be joined twice."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    with quiet_stdout(work / "opensim.log"):
        return _run_trial(trial, work, settings, static=static, emg=emg)


def _run_trial(trial: Trial, work: Path, settings: LabelSettings, *, static: Trial | None = None, emg=None):

    trial = trial.to_y_up()
    t0, t1 = float(trial.time[0]), float(trial.time[-1])
    seconds = {}
    tic = _time.perf_counter()

    static = trial if static is None else static.to_y_up()
    cal = calibrate(static, spec(settings.model).geometry)
    lm = find_landmarks(trial.marker_names)
    model_path = work / "model_scaled.osim"
    model = build_model(static, cal, settings, model_path)
    model = register_markers(model, static, trial, cal, settings, work)
    model.printToXML(str(model_path))
    plates = assign_plates(trial, lm)
    ext_xml = write_external_loads(trial, plates, work, settings)
    model_markers = {model.getMarkerSet().get(i).getName() for i in range(model.getMarkerSet().getSize())}
    names = []
    for name in trial.marker_names:
        xyz = trial.marker(name)
        if name in model_markers and (np.isfinite(xyz).all(1) & ~(xyz == 0).all(1)).any():
            names.append(name)
    xyz = np.array(trial.select_markers(names).markers)
    xyz[(xyz == 0).all(axis=2)] = np.nan
    trc = files.write_trc(work / "markers.trc", trial.time, xyz, names)
    seconds["scale"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    _run_ik(model, model_path, trc, names, t0, t1, work / "ik.mot", settings, work / "setup_ik.xml")
    seconds["ik"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    run_id(model_path, work / "ik.mot", ext_xml, t0, t1, work, settings)
    seconds["id"] = _time.perf_counter() - tic

    static_optimisation_and_reaction(model, model_path, ext_xml, t0, t1, work, settings, seconds, emg=emg)

    tables = {
        "calibration": pd.DataFrame([cal.measures]),
        "ik": read_sto(work / "ik.mot"),
        "id": read_sto(work / "id.sto"),
        "so": read_sto(work / "so_so_force.sto"),
        "jr": read_sto(work / "jr_jr_ReactionLoads.sto"),
    }
    return tables, seconds


def static_optimisation_and_reaction(model, model_path: Path, ext_xml: Path, t0: float, t1: float, work: Path,
                                     settings: LabelSettings, seconds: dict, *, emg=None) -> None:
    """SO (``work/so_so_force.sto``) then the knee joint reactions (``work/jr_jr_ReactionLoads.sto``) on the
    coordinates in ``work/ik.mot``; stage seconds into ``seconds``. ``emg``: the EMG for ``criterion='emg'``."""
    import opensim as osim

    tic = _time.perf_counter()
    if settings.so == "batched":  # the same problem, all frames at once (physics/so_batch.py)
        from gaitforce.physics.so_batch import static_optimisation

        parts = static_optimisation(model_path, ext_xml, t0, t1, work, settings, emg=emg)
        seconds.update({f"so_{k}": v for k, v in parts.items()})
    else:
        so = osim.StaticOptimization()
        so.setName("so")
        so.setUseModelForceSet(True)
        so.setActivationExponent(3)
        so.setUseMusclePhysiology(settings.muscle_physiology)
        so.setConvergenceCriterion(1e-4)
        so.setMaxIterations(200)
        _analyze(work, "so", model_path, ext_xml, t0, t1, settings, so).run()
    seconds["so"] = _time.perf_counter() - tic

    tic = _time.perf_counter()
    jr = osim.JointReaction()
    jr.setName("jr")
    jr.setForcesFileName(str(_actuator_forces(work / "so_so_force.sto", model, work / "so_actuator_forces.sto")))
    knees = [spec(settings.model).knee(s) for s in ("r", "l")]
    for prop, values in (("joint_names", knees), ("apply_on_bodies", ["child"]),
                         ("express_in_frame", ["child"])):
        arr = osim.ArrayStr()
        for v in values:
            arr.append(v)
        getattr(jr, {"joint_names": "setJointNames", "apply_on_bodies": "setOnBody",
                     "express_in_frame": "setInFrame"}[prop])(arr)
    _analyze(work, "jr", model_path, ext_xml, t0, t1, settings, jr).run()
    seconds["jr"] = _time.perf_counter() - tic



def run_id(model_path: Path, coordinates: Path, ext_xml: Path, t0: float, t1: float, work: Path,
           settings: LabelSettings, *, name: str = "id") -> pd.DataFrame:
    """Inverse dynamics (muscles and actuators excluded) -> generalised forces per coordinate, ``work/<name>.sto``."""
    import opensim as osim

    idt = osim.InverseDynamicsTool()
    idt.setName(name)
    idt.setModelFileName(str(model_path))
    idt.setCoordinatesFileName(str(coordinates))
    idt.setExternalLoadsFileName(str(ext_xml))
    idt.setLowpassCutoffFrequency(settings.lowpass_hz)
    excluded = osim.ArrayStr()
    excluded.append("Muscles")
    excluded.append("Actuators")
    idt.setExcludedForces(excluded)
    idt.setStartTime(t0)
    idt.setEndTime(t1)
    idt.setResultsDir(str(work))
    idt.setOutputGenForceFileName(f"{name}.sto")
    idt.printToXML(str(work / f"setup_{name}.xml"))
    osim.InverseDynamicsTool(str(work / f"setup_{name}.xml")).run()
    return read_sto(work / f"{name}.sto")


def _actuator_forces(so_file: Path, model, out: Path) -> Path:
    """The SO force file cut to the model's actuators: JointReaction reads its forces file by column, and the
    passive-force and potential-energy columns (duplicated names) SO also writes corrupt that reading."""
    table = read_sto(so_file)
    names = [model.getActuators().get(i).getName() for i in range(model.getActuators().getSize())]
    return files.write_mot(out, table["time"].to_numpy(), {n: table[n].to_numpy() for n in names}, name="forces")


def _analyze(work, name, model_path, ext_xml, t0, t1, settings, analysis):
    import opensim as osim

    tool = osim.AnalyzeTool()
    tool.setName(name)
    tool.setModelFilename(str(model_path))
    tool.setCoordinatesFileName(str(work / "ik.mot"))
    tool.setLowpassCutoffFrequency(settings.lowpass_hz)
    tool.setExternalLoadsFileName(str(ext_xml))
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    tool.setResultsDir(str(work))
    tool.setSolveForEquilibrium(False)
    tool.getAnalysisSet().cloneAndAppend(analysis)
    setup = work / f"setup_{name}.xml"
    tool.printToXML(str(setup))
    return osim.AnalyzeTool(str(setup))
