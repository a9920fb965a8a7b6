"""The batched static optimisation (gaitforce.physics.so_batch): its solver against scipy and the moment
equality, and the whole SO stage against OpenSim's StaticOptimization on one real stance."""

from __future__ import annotations

import dataclasses

import shutil

import numpy as np
import pytest

from gaitforce.physics import so_batch


@pytest.fixture
def fetched_models_rajagopal():
    """Skip (not fail, not download) where OpenSim or the fetched Rajagopal model is absent."""
    pytest.importorskip("opensim")
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.model import model_file

    try:
        return model_file("rajagopal2015", download=False)
    except GaitforceError as err:
        pytest.skip(str(err))


def _problem(T=6, m=3, nm=8, seed=0):
    """Muscles (0.01..1, positive or negative moment arms x capacities) plus one unbounded reserve of 1 N m a
    coordinate, and demands a muscle set can mostly meet."""
    rng = np.random.default_rng(seed)
    arms = rng.normal(0, 0.04, (T, m, nm)) * rng.uniform(300, 1500, (T, 1, nm))
    A = np.concatenate([arms, np.broadcast_to(np.eye(m), (T, m, m))], axis=2)
    b = rng.normal(0, 10, (T, m))
    lower = np.r_[np.full(nm, 0.01), np.full(m, -np.inf)]
    upper = np.r_[np.ones(nm), np.full(m, np.inf)]
    return A, b, lower, upper


def test_batched_solution_meets_the_moments_and_matches_scipy_per_frame():
    from scipy.optimize import Bounds, LinearConstraint, minimize

    A, b, lower, upper = _problem()
    sol = so_batch.solve(A, b, lower, upper, tol=1e-8)
    assert sol.converged.all()
    assert np.abs(np.einsum("tmn,tn->tm", A, sol.x) - b).max() < 1e-8
    assert (sol.x >= lower - 1e-12).all() and (sol.x <= upper + 1e-12).all()
    cost = lambda x: np.sum(np.abs(x) ** 3)  # noqa: E731
    for t in range(len(b)):
        ref = minimize(cost, np.clip(np.zeros(A.shape[2]), lower, upper), jac=lambda x: 3 * x * np.abs(x),
                       hess=lambda x: np.diag(6 * np.abs(x)), method="trust-constr",
                       bounds=Bounds(lower, upper), constraints=[LinearConstraint(A[t], b[t], b[t])],
                       options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000})
        assert np.abs(A[t] @ ref.x - b[t]).max() < 1e-6
        assert cost(sol.x[t]) <= cost(ref.x) * (1 + 1e-8) + 1e-9
        np.testing.assert_allclose(sol.x[t], ref.x, atol=1e-4)


def test_warm_start_gives_the_cold_solution():
    A, b, lower, upper = _problem(T=20, seed=3)
    cold = so_batch.solve(A, b, lower, upper, stride=1)
    warm = so_batch.solve(A, b, lower, upper, stride=4)
    again = so_batch.solve(A, b, lower, upper, x0=cold.x, y0=cold.y)
    assert cold.converged.all() and warm.converged.all() and again.converged.all()
    np.testing.assert_allclose(warm.x, cold.x, atol=1e-6)
    np.testing.assert_allclose(again.x, cold.x, atol=1e-6)


def test_saturated_muscle_leaves_the_rest_to_the_reserve():
    # one coordinate, one muscle of 100 N m at full activation, a 150 N m demand: muscle at 1, reserve 50
    A = np.array([[[100.0, 1.0]]])
    sol = so_batch.solve(A, np.array([[150.0]]), [0.01, -np.inf], [1.0, np.inf])
    assert sol.converged.all()
    # unbounded, a = 1.5 would cost 3.4 against 1 + 50^3 for the reserve: the muscle saturates first
    np.testing.assert_allclose(sol.x[0, 0] * 100 + sol.x[0, 1], 150.0, atol=1e-6)
    assert sol.x[0, 0] == pytest.approx(1.0, abs=1e-6)


# -- the EMG-informed criterion: sum |x|^3 + sum w (x - e)^2 ----------------------------------------------------
def test_tracking_weight_zero_is_the_plain_criterion():
    A, b, lower, upper = _problem(T=10, seed=5)
    plain = so_batch.solve(A, b, lower, upper)
    rng = np.random.default_rng(1)
    zero = so_batch.solve(A, b, lower, upper, track_weight=np.zeros(A.shape[2]),
                          track_target=rng.uniform(0, 1, (10, A.shape[2])))
    assert plain.converged.all() and zero.converged.all()
    np.testing.assert_allclose(zero.x, plain.x, atol=1e-9)


def test_large_tracking_weight_reproduces_feasible_targets():
    # targets that meet the demand exactly with the reserves at 0: as w grows the solution goes to them
    T, m, nm = 12, 3, 8
    A, _, lower, upper = _problem(T=T, m=m, nm=nm, seed=7)
    target = np.random.default_rng(2).uniform(0.05, 0.9, (T, nm))
    b = np.einsum("tmn,tn->tm", A[:, :, :nm], target)
    e = np.concatenate([target, np.zeros((T, m))], axis=1)
    w = np.r_[np.ones(nm), np.zeros(m)]
    plain = so_batch.solve(A, b, lower, upper)
    assert np.abs(plain.x[:, :nm] - target).max() > 0.1  # sum a^3 alone picks other activations
    errs = []
    for weight in (1e2, 1e4, 1e6):
        sol = so_batch.solve(A, b, lower, upper, track_weight=weight * w, track_target=e)
        assert sol.converged.all()
        assert np.abs(np.einsum("tmn,tn->tm", A, sol.x) - b).max() < 1e-6  # the moments still hold
        errs.append(np.abs(sol.x[:, :nm] - target).max())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-4
    assert np.abs(sol.x[:, nm:]).max() < 1e-3  # reserves back to ~0 N m


def test_tracking_matches_scipy_on_a_partly_tracked_problem():
    # moderate weight on three of eight muscles, targets not feasible on their own: the convex optimum per frame
    from scipy.optimize import Bounds, LinearConstraint, minimize

    A, b, lower, upper = _problem(T=4, seed=11)
    n = A.shape[2]
    w = np.zeros(n)
    w[[0, 3, 5]] = 0.7
    e = np.random.default_rng(4).uniform(0, 1, (4, n))
    sol = so_batch.solve(A, b, lower, upper, track_weight=w, track_target=e, tol=1e-8)
    assert sol.converged.all()
    for t in range(len(b)):
        cost = lambda x: np.sum(np.abs(x) ** 3) + np.sum(w * (x - e[t]) ** 2)  # noqa: E731
        ref = minimize(cost, np.clip(np.zeros(n), lower, upper), jac=lambda x: 3 * x * np.abs(x) + 2 * w * (x - e[t]),
                       hess=lambda x: np.diag(6 * np.abs(x) + 2 * w), method="trust-constr",
                       bounds=Bounds(lower, upper), constraints=[LinearConstraint(A[t], b[t], b[t])],
                       options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000})
        assert cost(sol.x[t]) <= cost(ref.x) * (1 + 1e-8) + 1e-9
        np.testing.assert_allclose(sol.x[t], ref.x, atol=1e-4)


def test_tracking_single_muscle_closed_form():
    # one coordinate, one muscle (arm 1), demand 0.2 met by the muscle and a 1 N m reserve r:
    # min a^3 + |r|^3 + w (a - e)^2, a + r = 0.2. With w = 0 a = r = 0.1; with e = 0.2 and w large a -> 0.2.
    A = np.array([[[1.0, 1.0]]])
    b = np.array([[0.2]])
    plain = so_batch.solve(A, b, [0.0, -np.inf], [1.0, np.inf])
    assert plain.x[0, 0] == pytest.approx(0.1, abs=1e-6)
    sol = so_batch.solve(A, b, [0.0, -np.inf], [1.0, np.inf], track_weight=[1.0, 0.0], track_target=[[0.2, 0.0]])
    # stationarity (r = 0.2 - a): 3 a^2 + 2 (a - 0.2) = 3 (0.2 - a)^2  ->  3.2 a = 0.52  ->  a = 0.1625
    assert sol.converged.all()
    assert sol.x[0, 0] == pytest.approx(0.1625, abs=1e-6)
    assert sol.x[0, 1] == pytest.approx(0.0375, abs=1e-6)


def test_tracking_rejects_bad_weights():
    A, b, lower, upper = _problem(T=2)
    with pytest.raises(ValueError):
        so_batch.solve(A, b, lower, upper, track_weight=-np.ones(A.shape[2]), track_target=np.zeros((2, A.shape[2])))
    with pytest.raises(ValueError):
        so_batch.solve(A, b, lower, upper, track_weight=np.ones(A.shape[2]))


def test_settings_reject_an_unknown_solver():
    from gaitforce.physics import LabelSettings

    assert LabelSettings().so == "batched"
    with pytest.raises(ValueError):
        LabelSettings(so="ipopt")


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("model_name", ["gait14dof22musc", "rajagopal2015"])
def test_batched_so_matches_opensim_so_on_a_dm_stance(tmp_path, gc_dir, fetched_model, model_name):
    """DM GC6 og1 (both models; Rajagopal's SO by OpenSim takes ~45 s): OpenSim's SO and JR, then the batched SO
    + the same JR in a copy of the folder: activations within 0.02 and the medial force within 2 % RMS of
    OpenSim's."""
    pytest.importorskip("opensim")
    if model_name != "gait14dof22musc":
        from gaitforce.errors import GaitforceError
        from gaitforce.physics.model import model_file

        try:
            model_file(model_name, download=False)
        except GaitforceError as err:
            pytest.skip(str(err))
    import importlib.util
    from pathlib import Path

    import opensim as osim

    from gaitforce.physics import LabelSettings
    from gaitforce.physics.label import targets_from_tables
    from gaitforce.physics.pipeline import (
        quiet_stdout,
        read_sto,
        run_trial,
        static_optimisation_and_reaction,
    )

    spec = importlib.util.spec_from_file_location(
        "physics_speed", Path(__file__).resolve().parents[1] / "benchmarks" / "physics_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.GC = gc_dir
    stances, statics = bench.dm_stances(["og1"])
    name, trial = next(iter(stances.items()))
    ref_settings = LabelSettings(model=model_name, so="opensim")
    ours_settings = LabelSettings(model=model_name)
    work = tmp_path / "ref"
    tables, _ = run_trial(trial, work, ref_settings, static=statics[name])
    ours = tmp_path / "ours"
    shutil.copytree(work, ours)
    t = tables["ik"]["time"].to_numpy()
    seconds: dict = {}
    with quiet_stdout(ours / "opensim.log"):
        model = osim.Model(str(ours / "model_scaled.osim"))
        model.initSystem()
        static_optimisation_and_reaction(model, ours / "model_scaled.osim", ours / "external_loads.xml",
                                         float(t[0]), float(t[-1]), ours, ours_settings, seconds)
    assert seconds["so_max_residual"] < 1e-6
    a_ref, a_our = read_sto(work / "so_so_activation.sto"), read_sto(ours / "so_so_activation.sto")
    mus = [c for c in a_ref.columns if c != "time" and not c.startswith(("reserve_", "residual_"))]
    assert len(a_our) == len(a_ref) == len(t)
    assert np.abs(a_our[mus].to_numpy() - a_ref[mus].to_numpy()).max() < 0.02
    side = trial.meta["side"][0]
    ref = targets_from_tables(tables, side, ref_settings)["knee_medial"].to_numpy()
    got = targets_from_tables({**tables, "so": read_sto(ours / "so_so_force.sto"),
                               "jr": read_sto(ours / "jr_jr_ReactionLoads.sto")}, side, ours_settings)["knee_medial"]
    assert np.sqrt(np.mean((got.to_numpy() - ref) ** 2)) < 0.02 * np.sqrt(np.mean(ref ** 2))


# -- what the batched SO takes from OpenSim ---------------------------------------------------------------------
@pytest.mark.opensim
def test_natural_quintic_spline_is_opensims_gcv_spline(tmp_path):
    """OpenSim's GCVSplineSet (degree 5, as AnalyzeTool and SO build it) is the natural interpolating quintic:
    its first derivative, and the derivative of a spline of that, equal ours to ~1e-9 of the signal's scale."""
    osim = pytest.importorskip("opensim")
    from gaitforce.physics import files

    t = np.arange(60) / 100.0 - 0.2  # times before 0 too, as a padded storage has
    rng = np.random.default_rng(1)
    cols = {"a": np.sin(2 * np.pi * 1.3 * t), "b": 0.3 * t ** 3 - t, "c": np.cumsum(rng.normal(0, 0.01, len(t)))}
    sto = osim.Storage(str(files.write_mot(tmp_path / "x.mot", t, cols)))
    u_sto = osim.GCVSplineSet(5, sto).constructStorage(1)
    a_sto = osim.GCVSplineSet(5, u_sto).constructStorage(1)
    y = np.stack(list(cols.values()), axis=1)
    u = so_batch.natural_quintic_derivative(t, y)
    a = so_batch.natural_quintic_derivative(t, u)
    for k, name in enumerate(cols):
        ref_u, ref_a = so_batch._column(u_sto, name), so_batch._column(a_sto, name)
        assert len(ref_u) == len(t)  # every row, also those before t = 0
        np.testing.assert_allclose(u[:, k], ref_u, atol=1e-9 * np.abs(ref_u).max())
        np.testing.assert_allclose(a[:, k], ref_a, atol=1e-7 * np.abs(ref_a).max())


def _rajagopal_stance_files(tmp_path, start=0.0):
    """The finished Rajagopal model (tmp_path/model.osim) and an IK-like file in degrees from ``start`` s: the
    knee flexing 10..60 deg, the hip and ankle moving, the patella's coupled coordinate in *radians*, as
    OpenSim's IK writes a coupled coordinate."""
    import pandas as pd

    from gaitforce.io.writers import write_sto
    from gaitforce.physics import LabelSettings
    from gaitforce.physics.pipeline import finish_model, scaled_generic_model

    settings = LabelSettings(model="rajagopal2015")
    model = finish_model(scaled_generic_model(None, 75.0, settings), settings)
    model.printToXML(str(tmp_path / "model.osim"))
    t = start + np.arange(50) / 100.0
    phase = 2 * np.pi * (t - start) / 0.98
    cols = {}
    for c in model.getCoordinateSet():
        v = c.getDefaultValue()
        cols[c.getName()] = np.full(len(t), np.rad2deg(v) if c.getMotionType() == 1 else v)
    knee = 35 - 25 * np.cos(phase)
    cols.update(knee_angle_r=knee, knee_angle_r_beta=np.deg2rad(knee), hip_flexion_r=20 * np.sin(phase),
                ankle_angle_r=10 * np.sin(phase + 1), pelvis_ty=np.full(len(t), 0.95))
    write_sto(tmp_path / "ik.mot", pd.DataFrame({"time": t, **cols}), name="Coordinates", in_degrees=True)
    return tmp_path / "model.osim", tmp_path / "ik.mot", settings, knee


@pytest.mark.opensim
def test_states_read_coupled_coordinates_in_radians_and_every_frame(tmp_path, fetched_models_rajagopal):
    """A coupled coordinate (the patella's knee_angle_r_beta) stays in radians in an IK file in degrees: the
    states must not convert it again (it came out 57x too small, moment arms of the quadriceps off by up to
    a third); and a file starting at t = 0 keeps its frames in place after padding (OpenSim's
    ``Storage.getDataColumn`` starts at t = 0 by default and dropped the padded rows before it)."""
    import opensim as osim

    model_path, ik, settings, knee = _rajagopal_stance_files(tmp_path, start=0.0)
    model = osim.Model(str(model_path))
    model.initSystem()
    t, names, q, u, udot = so_batch._states(model, ik, settings.lowpass_hz)
    k, beta = names.index("knee_angle_r"), names.index("knee_angle_r_beta")
    np.testing.assert_allclose(q[:, beta], q[:, k], atol=1e-12)
    np.testing.assert_allclose(q[:, k], np.deg2rad(knee), atol=np.deg2rad(0.5))  # filtered at 6 Hz, in place
    np.testing.assert_allclose(u[:, k], np.gradient(np.deg2rad(knee), t), atol=0.1 * np.abs(u[:, k]).max())


@pytest.mark.opensim
@pytest.mark.parametrize("stride", [1, 4])
def test_moment_arms_and_capacities_match_opensim(tmp_path, fetched_models_rajagopal, stride):
    """The coupler-projected moment arms about the knee equal OpenSim's MomentArmSolver (exactly at key frames,
    within 1 mm between them), and the capacities OpenSim's calcInextensibleTendonActiveFiberForce at every
    frame (the DeGroote-Fregly formula between key frames: within 0.5 % of the muscle's largest)."""
    import opensim as osim

    model_path, ik, settings, _ = _rajagopal_stance_files(tmp_path, start=0.3)
    problem = so_batch.extract(model_path, ik, None, settings, arm_stride=stride)
    model = osim.Model(str(model_path))
    state = model.initSystem()
    t, names, q, u, _ = so_batch._states(model, ik, settings.lowpass_hz)
    cs = model.getCoordinateSet()
    knee = cs.get("knee_angle_r")
    row = problem.coordinates.index("knee_angle_r")
    cols = {m: problem.actuators.index(m) for m in ("vasmed_r", "recfem_r", "bfsh_r", "gasmed_r")}
    for i in range(len(t)):
        for j, name in enumerate(names):
            if not cs.get(name).get_locked():
                cs.get(name).setValue(state, float(q[i, j]), False)
            cs.get(name).setSpeedValue(state, float(u[i, j]))
        model.realizeVelocity(state)
        for m, col in cols.items():
            mus = model.getMuscles().get(m)
            arm = mus.computeMomentArm(state, knee)
            tol = 1e-6 if i % stride == 0 else 1e-3
            assert problem.arms[i, row, col] == pytest.approx(arm, abs=tol), (m, i)
            cap = mus.calcInextensibleTendonActiveFiberForce(state, 1.0)
            assert problem.gain[i, col] == pytest.approx(cap, abs=5e-3 * problem.gain[:, col].max()), (m, i)
    vasmed = problem.arms[:, row, cols["vasmed_r"]]
    assert np.abs(vasmed).min() > 0.02  # the quadriceps' arm through the patella, not the near-0 of the old bug


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
def test_in_process_demand_is_the_id_tools_on_the_one_leg_mat_route(tmp_path, gc_dir, fetched_model):
    """DM GC6 og1 from the competitions .mat (one leg recorded, the other's coordinates locked, times from
    ~0 s): the demand computed in-process (SO's states and accelerations, InverseDynamicsSolver with the
    route's external loads) equals the inverse dynamics tool's on every unconstrained coordinate, and the
    locked leg has no equality row."""
    pytest.importorskip("opensim")
    from gaitforce.io.grand_challenge import read_gc_mat
    from gaitforce.physics import LabelSettings
    from gaitforce.physics.pipeline import quiet_stdout, read_sto, run_trial

    mat = read_gc_mat(gc_dir / "competitions" / "DM__GC6__DM_ngait_og1.mat").to_y_up()
    a, b = mat.meta["stance_frames"]
    settings = LabelSettings()
    run_trial(mat.slice_frames(a, b), tmp_path, settings)
    t = read_sto(tmp_path / "ik.mot")["time"].to_numpy()
    model, ext = tmp_path / "model_scaled.osim", tmp_path / "external_loads.xml"
    with quiet_stdout(tmp_path / "opensim.log"):
        id_file = so_batch.run_id_for_so(model, ext, float(t[0]), float(t[-1]), float(np.median(np.diff(t))),
                                         tmp_path, settings)
        ours = so_batch.extract(model, tmp_path / "ik.mot", None, settings, ext_xml=ext)
        tool = so_batch.extract(model, tmp_path / "ik.mot", id_file, settings)
    assert not any(c.endswith("_l") for c in ours.coordinates) and "knee_angle_r" in ours.coordinates
    scale = np.abs(tool.demand).max(axis=0)
    assert scale[ours.coordinates.index("pelvis_ty")] > 500  # the body weight is in it
    np.testing.assert_allclose(ours.demand, tool.demand, atol=0.02)  # N m / N, of demands up to ~1000


@pytest.mark.opensim
def test_too_few_frames_is_one_line_not_a_traceback(tmp_path, fetched_models_rajagopal):
    import opensim as osim

    from gaitforce.errors import GaitforceError
    from gaitforce.io.writers import write_sto
    from gaitforce.physics.pipeline import read_sto

    model_path, ik, settings, _ = _rajagopal_stance_files(tmp_path)
    table = read_sto(ik).iloc[:5]
    write_sto(tmp_path / "short.mot", table, name="Coordinates", in_degrees=True)
    model = osim.Model(str(model_path))
    model.initSystem()
    with pytest.raises(GaitforceError, match="too few"):
        so_batch._states(model, tmp_path / "short.mot", None)  # no padding: 5 knots
