"""The EMG-informed SO criterion (gaitforce.physics.emg_so): settings, electrode-to-muscle mapping, the
calibration of the EMG-to-activation scales on joint moments, and the one-line failure without EMG."""

from __future__ import annotations

import numpy as np
import pytest

from gaitforce.errors import GaitforceError, MissingChannelError
from gaitforce.physics import LabelSettings, emg_so
from gaitforce.physics.label import cache_key, label_trial
from gaitforce.physics.so_batch import SOProblem, solve
from gaitforce.trial import Subject, Trial


def test_settings_criterion_default_and_checks():
    assert LabelSettings().criterion == "a3"
    with pytest.raises(ValueError):
        LabelSettings(criterion="emg3")
    with pytest.raises(ValueError):
        LabelSettings(criterion="emg", so="opensim")
    with pytest.raises(ValueError):
        LabelSettings(criterion="emg", emg_weight=-1.0)
    s = LabelSettings(criterion="emg", emg_weight=3.0)
    assert LabelSettings.from_dict(s.to_dict()) == s


def _trial(emg_env=None):
    t = np.arange(20) / 100.0
    signals = {} if emg_env is None else {f"emg_env_{k}": (v, "a.u.") for k, v in emg_env.items()}
    tr = Trial(time=t, markers=np.full((20, 1, 3), 0.5), marker_names=("RASI",), subject=Subject(id="s", mass=70.0),
               meta={"side": "right"}, source="s.mat")
    return tr.with_signals(**signals) if signals else tr


def test_no_emg_is_one_line_before_any_opensim_work(tmp_path):
    with pytest.raises(MissingChannelError) as err:
        label_trial(_trial(), settings=LabelSettings(criterion="emg"), work_dir=tmp_path / "w")
    assert "needs EMG" in err.value.line() and "\n" not in err.value.line()
    assert not (tmp_path / "w").exists()


def test_cache_key_of_a3_unchanged_by_emg_and_emg_key_follows_the_envelopes():
    a = _trial({"rf": np.linspace(0, 1, 20)})
    b = _trial({"rf": np.linspace(0, 2, 20)})
    assert cache_key(a, LabelSettings()) == cache_key(b, LabelSettings())  # sum a^3 does not read EMG
    emg = LabelSettings(criterion="emg")
    assert cache_key(a, emg) != cache_key(b, emg)
    assert cache_key(a, emg) != cache_key(a, LabelSettings(criterion="emg", emg_weight=2.0))
    assert cache_key(a, emg) != cache_key(a, LabelSettings())


def test_lumped_muscles_take_the_mean_of_their_normalised_electrodes():
    t = np.arange(10) / 100.0
    env = {"vasmed": np.linspace(0, 2, 10), "vaslat": 5 * np.ones(10), "rf": np.r_[np.zeros(5), np.ones(5)],
           "tfl": np.ones(10), "flat": np.zeros(10)}
    acts = ["vasti_r", "rect_fem_r", "vasti_l", "iliopsoas_r"]
    cols, targets, used = emg_so.muscle_targets(emg_so.EMGInput(t, env, "r"), acts, t, "gait14dof22musc")
    assert list(cols) == [0, 1]  # tfl has no muscle in gait14dof22musc; the left leg is not tracked
    np.testing.assert_allclose(targets[:, 0], (np.linspace(0, 1, 10) + 1) / 2)
    np.testing.assert_allclose(targets[:, 1], np.r_[np.zeros(5), np.ones(5)])
    assert used == {"vasti_r": ["vasmed", "vaslat"], "rect_fem_r": ["rf"]}
    with pytest.raises(GaitforceError, match="drives a muscle"):
        emg_so.muscle_targets(emg_so.EMGInput(t, {"tfl": np.ones(10)}, "r"), acts, t, "gait14dof22musc")


def _synthetic_problem(T=40, seed=0):
    """Three tracked muscles and one untracked (iliopsoas) about three leg coordinates plus a pelvis residual;
    the ID moments are produced by known scales x envelopes plus a known iliopsoas activation."""
    rng = np.random.default_rng(seed)
    acts = ["hamstrings_r", "vasti_r", "gastroc_r", "iliopsoas_r", "reserve_hip_flexion_r", "reserve_knee_angle_r",
            "reserve_ankle_angle_r", "residual_pelvis_tilt"]
    coords = ["hip_flexion_r", "knee_angle_r", "ankle_angle_r", "pelvis_tilt"]
    muscle = np.array([True] * 4 + [False] * 4)
    arms = np.zeros((T, 4, 8))
    arms[:, 0, 0], arms[:, 1, 0] = -0.06, -0.03  # hamstrings: hip extension, knee flexion
    arms[:, 1, 1] = 0.04  # vasti
    arms[:, 1, 2], arms[:, 2, 2] = -0.02, -0.05  # gastroc
    arms[:, 0, 3] = 0.03  # iliopsoas
    arms[:, :, :4] *= 1 + 0.2 * np.sin(np.linspace(0, 3, T))[:, None, None]
    arms[:, 3, :4] = 0.01  # every muscle also pulls on the pelvis
    for k in range(4):
        arms[:, k, 4 + k] = 1.0
    gain = np.r_[[2500.0, 6000.0, 1600.0, 1500.0], [1.0, 1.0, 1.0, 1000.0]] * np.ones((T, 1))
    env = np.clip(rng.uniform(0, 1, (T, 3)) + np.linspace(0, 0.5, T)[:, None], 0, None)
    env /= env.max(axis=0)
    scales = np.array([0.3, 0.15, 0.6])
    ilio = 0.2 + 0.1 * np.cos(np.linspace(0, 4, T))
    x = np.c_[scales * env, ilio, np.zeros((T, 3)), rng.normal(0, 0.01, T)]
    A = arms * gain[:, None, :]
    demand = np.einsum("tmn,tn->tm", A, x)
    lower = np.r_[np.full(4, 0.01), np.full(4, -np.inf)]
    upper = np.r_[np.ones(4), np.full(4, np.inf)]
    problem = SOProblem(time=np.arange(T) / 100.0, actuators=acts, muscle=muscle, coordinates=coords, arms=arms,
                        gain=gain, demand=demand, lower=lower, upper=upper)
    return problem, env, scales, ilio


def test_scales_calibrated_on_moments_recover_known_scales():
    problem, env, scales, _ = _synthetic_problem()
    s, info = emg_so.calibrate_scales(problem, np.array([0, 1, 2]), env, "r", ridge=0.0)
    np.testing.assert_allclose(s, scales, atol=1e-6)
    assert info["rows"] == ["hip_flexion_r", "knee_angle_r", "ankle_angle_r"]  # no residual row
    assert info["untracked"] == ["iliopsoas_r"]
    assert info["moment_rms_Nm"] < 1e-6
    s_ridge, _ = emg_so.calibrate_scales(problem, np.array([0, 1, 2]), env, "r")  # the default small ridge
    np.testing.assert_allclose(s_ridge, scales, rtol=0.05)


def test_long_stance_takes_the_sparse_path_to_the_same_scales():
    # 400 frames x 1 untracked muscle + 3 scales > 400 unknowns: the block-diagonal sparse least squares
    problem, env, scales, _ = _synthetic_problem(T=400, seed=5)
    s, info = emg_so.calibrate_scales(problem, np.array([0, 1, 2]), env, "r", ridge=0.0)
    np.testing.assert_allclose(s, scales, atol=1e-3)
    assert info["moment_rms_Nm"] < 0.05


def test_pooled_calibration_over_stacked_stances_and_given_scales():
    # two stances made with the same scales: stacked, one fit recovers them; given scales bypass the calibration
    p1, e1, scales, _ = _synthetic_problem(T=30, seed=1)
    p2, e2, _, _ = _synthetic_problem(T=25, seed=3)
    stacked = emg_so.stack_problems([p1, p2])
    assert stacked.A.shape[0] == 55
    s, _ = emg_so.calibrate_scales(stacked, np.array([0, 1, 2]), np.concatenate([e1, e2]), "r", ridge=0.0)
    np.testing.assert_allclose(s, scales, atol=1e-6)
    given = {"hamstrings_r": 0.5, "vasti_r": 0.25, "gastroc_r": 0.125}
    emg = emg_so.EMGInput(p1.time, {"semimem": e1[:, 0], "vasmed": e1[:, 1], "medgas": e1[:, 2]}, "r",
                          norm={"semimem": 2 * e1[:, 0].max()}, scales=given)
    w, e, info = emg_so.tracking(p1, emg, LabelSettings(model="gait14dof22musc", criterion="emg"))
    assert info == {"given_scales": True, "weight": 1.0, "electrodes": {"hamstrings_r": ["semimem"],
                    "vasti_r": ["vasmed"], "gastroc_r": ["medgas"]}, "scales": given}
    np.testing.assert_allclose(e[:, 0], np.clip(0.5 * e1[:, 0] / 2, 0.01, 1))  # the given normaliser
    np.testing.assert_allclose(e[:, 1], np.clip(0.25 * e1[:, 1], 0.01, 1))
    with pytest.raises(GaitforceError, match="no given EMG scale"):
        emg_so.tracking(p1, emg_so.EMGInput(p1.time, {"semimem": e1[:, 0]}, "r", scales={"vasti_r": 1.0}),
                        LabelSettings(model="gait14dof22musc", criterion="emg"))


def test_tracking_solution_follows_calibrated_emg():
    # the moments were made by scales x envelopes: with a large weight the EMG criterion returns those
    # activations (plain sum a^3 does not), and the moment equality still holds
    problem, env, scales, ilio = _synthetic_problem(seed=2)
    t = problem.time
    emg = emg_so.EMGInput(t, {"semimem": env[:, 0], "bifem": env[:, 0], "vasmed": env[:, 1], "vaslat": env[:, 1],
                              "medgas": env[:, 2], "latgas": env[:, 2]}, "r")
    w, e, info = emg_so.tracking(problem, emg, LabelSettings(model="gait14dof22musc", criterion="emg", emg_weight=1e4))
    assert set(info["scales"]) == {"hamstrings_r", "vasti_r", "gastroc_r"}
    np.testing.assert_allclose(list(info["scales"].values()), scales, rtol=0.05)
    sol = solve(problem.A, problem.demand, problem.lower, problem.upper, track_weight=w, track_target=e)
    plain = solve(problem.A, problem.demand, problem.lower, problem.upper)
    assert sol.converged.all() and plain.converged.all()
    truth = np.clip(scales * env, 0.01, 1)
    assert np.abs(sol.x[:, :3] - truth).max() < 0.03
    assert np.abs(plain.x[:, :3] - truth).max() > 0.05


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
def test_emg_criterion_on_a_grand_challenge_stance_tracks_the_scaled_envelopes(gc_dir, tmp_path, fetched_model):
    # JW GC4 og1 (the stance whose gastrocnemius sum a^3 drives to 0.94 in late stance): the tracked muscles come
    # closer to their calibrated EMG than sum a^3 leaves them, scales within [0, 1], the moments still met
    import json

    import pandas as pd

    from gaitforce.io.grand_challenge import read_gc_mat
    from gaitforce.physics.pipeline import read_sto

    mat = read_gc_mat(gc_dir / "competitions" / "JW__GC4__jw_ngait_og1.mat").to_y_up()
    a, b = mat.meta["stance_frames"]
    st = mat.slice_frames(a, b).replace(meta={**mat.meta, "side": "right"})
    label_trial(st, settings=LabelSettings(model="gait14dof22musc"), work_dir=tmp_path / "a3")
    label_trial(st, settings=LabelSettings(model="gait14dof22musc", criterion="emg", emg_weight=10.0), work_dir=tmp_path / "emg")
    info = json.loads((tmp_path / "emg" / "emg_calibration.json").read_text())
    assert "gastroc_r" in info["scales"] and "iliopsoas_r" in info["untracked"]
    assert all(0.0 <= s <= 1.0 for s in info["scales"].values())
    assert info["moment_rms_Nm"] < info["id_rms_Nm"]  # the EMG explains part of the ID moments
    act = {k: read_sto(tmp_path / k / "so_so_activation.sto") for k in ("a3", "emg")}
    env = {k[len("emg_env_"):]: np.asarray(v) for k, v in st.signals.items() if k.startswith("emg_env_")}
    emg = emg_so.EMGInput(np.asarray(st.time), env, "r")
    t = act["emg"]["time"].to_numpy()
    cols, targets, _ = emg_so.muscle_targets(emg, list(act["emg"].columns[1:]), t, "gait14dof22musc")
    names = [act["emg"].columns[1 + c] for c in cols]
    target = pd.DataFrame(targets * np.array([info["scales"][n] for n in names]), columns=names)
    err = {k: float(np.sqrt(np.mean((act[k][names].to_numpy() - target.to_numpy()) ** 2))) for k in act}
    assert err["emg"] < 0.8 * err["a3"]  # measured: 0.112 against 0.159 (w = 10)


def test_targets_hold_the_ends_within_half_a_frame_and_refuse_a_longer_window():
    # SO's times come from ik.mot, written with rounding: a last time a hair past the EMG's is the last frame
    t = np.arange(10) / 100.0
    emg = emg_so.EMGInput(t, {"rf": np.linspace(0.1, 1.0, 10)}, "r")
    _, targets, _ = emg_so.muscle_targets(emg, ["rect_fem_r"], t + 1e-7, "gait14dof22musc")
    assert np.isfinite(targets).all() and targets[-1, 0] == pytest.approx(1.0)
    with pytest.raises(GaitforceError, match="spans"):
        emg_so.muscle_targets(emg, ["rect_fem_r"], np.arange(12) / 100.0, "gait14dof22musc")
