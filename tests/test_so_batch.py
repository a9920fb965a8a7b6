"""The batched static optimisation (gaitforce.physics.so_batch): its solver against scipy and the moment
equality, and the whole SO stage against OpenSim's StaticOptimization on one real stance."""

from __future__ import annotations

import dataclasses

import shutil

import numpy as np
import pytest

from gaitforce.physics import so_batch


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


def test_settings_reject_an_unknown_solver():
    from gaitforce.physics import LabelSettings

    assert LabelSettings().so == "batched"
    with pytest.raises(ValueError):
        LabelSettings(so="ipopt")


@pytest.mark.opensim
@pytest.mark.slow
def test_batched_so_matches_opensim_so_on_a_dm_stance(tmp_path, gc_dir, fetched_model):
    """DM GC6 og1 (gait14dof22musc): OpenSim's SO and JR, then the batched SO + the same JR in a copy of the
    folder: activations within 0.02 and the medial force within 2 % RMS of OpenSim's."""
    pytest.importorskip("opensim")
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
    ref_settings = LabelSettings(so="opensim", model="gait14dof22musc")
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
                                         float(t[0]), float(t[-1]), ours, dataclasses.replace(ref_settings, so="batched"), seconds)
    assert seconds["so_max_residual"] < 1e-6
    a_ref, a_our = read_sto(work / "so_so_activation.sto"), read_sto(ours / "so_so_activation.sto")
    mus = [c for c in a_ref.columns if c != "time" and not c.startswith(("reserve_", "residual_"))]
    assert len(a_our) == len(a_ref) == len(t)
    assert np.abs(a_our[mus].to_numpy() - a_ref[mus].to_numpy()).max() < 0.02
    side = trial.meta["side"][0]
    ref = targets_from_tables(tables, side, ref_settings)["knee_medial"].to_numpy()
    got = targets_from_tables({**tables, "so": read_sto(ours / "so_so_force.sto"),
                               "jr": read_sto(ours / "jr_jr_ReactionLoads.sto")}, side, ref_settings)["knee_medial"]
    assert np.sqrt(np.mean((got.to_numpy() - ref) ** 2)) < 0.02 * np.sqrt(np.mean(ref ** 2))
