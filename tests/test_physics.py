"""Physics labeller: medial/lateral split, hip-centre regression, landmark names, cache keys and resume,
failure reporting, and inverse dynamics on a static pose with a hand-computed answer (OpenSim)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaitforce.physics import (
    LabelSettings,
    cache_key,
    label_dataset,
    medial_lateral_split,
)
from gaitforce.physics.label import _label_task, _pack
from gaitforce.physics.landmarks import body_of, find_landmarks, harrington_offset
from gaitforce.trial import Subject, Trial


def test_split_by_moment_balance_hand_numbers():
    # F = 1000 N, M = 10 N m, d = 0.04 m: medial = 500 + 250, lateral = 500 - 250
    med, lat = medial_lateral_split([1000.0], [10.0], distance=0.04)
    assert med[0] == pytest.approx(750.0) and lat[0] == pytest.approx(250.0)
    # moment loading the lateral side
    med, lat = medial_lateral_split([1000.0], [-5.0], distance=0.05)
    assert med[0] == pytest.approx(400.0) and lat[0] == pytest.approx(600.0)


def test_split_lift_off_puts_all_force_on_one_side():
    med, lat = medial_lateral_split([1000.0, 1000.0], [30.0, -30.0], distance=0.04)
    np.testing.assert_allclose(med, [1000.0, 0.0])
    np.testing.assert_allclose(lat, [0.0, 1000.0])
    with pytest.raises(ValueError):
        medial_lateral_split([1.0], [0.0], distance=0.0)


def test_harrington_hip_centre_hand_numbers():
    # width 250 mm, depth 150 mm: x = -0.24*150 - 9.9, y = -0.30*250 - 10.9, z = 0.33*250 + 7.3 (mm)
    np.testing.assert_allclose(harrington_offset(0.25, 0.15, "r"), [-0.0459, -0.0859, 0.0898], atol=1e-9)
    assert harrington_offset(0.25, 0.15, "l")[2] == pytest.approx(-0.0898)


def test_landmark_names_from_several_marker_sets():
    dm = find_landmarks(["R_Asis", "L_Asis", "R_Knee_Lateral", "RankleMedial", "R_Heel", "R_Toe", "R_ToeMedial"])
    assert dm[("asis", "r")] == "R_Asis" and dm[("ankle_med", "r")] == "RankleMedial"
    assert dm[("toe", "r")] == "R_Toe" and dm[("knee_lat", "r")] == "R_Knee_Lateral"
    pig = find_landmarks(["LASI", "RPSI", "LKNE", "RMKNE", "LANK", "RHEE", "LTOE", "SACR"])
    assert pig[("asis", "l")] == "LASI" and pig[("knee_med", "r")] == "RMKNE" and pig[("psis", "mid")] == "SACR"
    assert pig[("knee_lat", "l")] == "LKNE" and ("knee_med", "l") not in pig
    assert body_of("RThighSuperior") == "femur_r" and body_of("L_Shank_Lateral") == "tibia_l"
    assert body_of("LMidfootMedial") == "calcn_l" and body_of("RPatella") is None and body_of("Sternum") is None


def _trial(mass=70.0, shift=0.0, markers=("RASI",)) -> Trial:
    t = np.arange(5) / 100.0
    xyz = np.full((5, len(markers), 3), 0.5) + shift
    return Trial(time=t, markers=xyz, marker_names=markers, subject=Subject(id="s", mass=mass),
                 meta={"side": "right"}, source="s.trc")


def test_cache_key_follows_data_and_settings_not_history():
    base, settings = _trial(), LabelSettings()
    key = cache_key(base, settings)
    assert key == cache_key(_trial(), LabelSettings())
    assert key == cache_key(base.replace(note="a processing note"), settings)
    assert key != cache_key(_trial(shift=1e-6), settings)
    assert key != cache_key(_trial(mass=71.0), settings)
    assert key != cache_key(base, LabelSettings(intercondylar_distance=0.05))
    assert key != cache_key(base.replace(meta={"side": "left"}), settings)
    assert LabelSettings.from_dict(settings.to_dict()) == settings


def test_cached_trials_are_not_recomputed(tmp_path):
    trial, settings = _trial(), LabelSettings()
    cache = tmp_path / "cache"
    cache.mkdir()
    stored = pd.DataFrame({"frame": np.arange(5), "time": trial.time, "knee_medial": np.arange(5.0)})
    stored.to_parquet(cache / f"{cache_key(trial, settings)}.parquet")
    # an unreachable scheduler proves no cluster is contacted: the cached result is returned as is
    labels, failures = label_dataset({"s#0": trial}, out_dir=tmp_path, settings=settings,
                                     scheduler="tcp://127.0.0.1:1", progress=False)
    assert failures == []
    pd.testing.assert_frame_equal(labels["s#0"], stored)


def test_failing_trial_is_reported_not_raised(tmp_path):
    pytest.importorskip("opensim")
    result = _label_task(_pack(_trial()), None, LabelSettings().to_dict(), str(tmp_path / "w"),
                         str(tmp_path / "x.parquet"))
    assert result["ok"] is False and "landmarks" in result["error"]
    assert not (tmp_path / "x.parquet").exists()



@pytest.mark.opensim
def test_lumped_heads_moved_to_their_midline_only_sideways(fetched_model):
    osim = pytest.importorskip("opensim")
    from gaitforce.physics.model import LUMPED_HEADS, centre_lumped_heads, generic_model

    # hand numbers: (1288*-0.0194 + 410*-0.0146 + 896*0.0423)/2594, (1113*-0.0235 + 488*0.0272)/1601
    assert LUMPED_HEADS["hamstrings"][1] == pytest.approx(0.0026706, abs=1e-6)
    assert LUMPED_HEADS["gastroc"][1] == pytest.approx(-0.008046, abs=1e-6)

    def points(model, muscle):
        ps = model.getMuscles().get(muscle).getGeometryPath().getPathPointSet()
        out = []
        for i in range(ps.getSize()):
            p = osim.PathPoint.safeDownCast(ps.get(i))
            if p is not None:
                out.append((p.getParentFrame().getName(), p.get_location().to_numpy().copy()))
        return out

    model = generic_model()
    before = {m: points(model, m) for m in ("hamstrings_r", "hamstrings_l", "gastroc_r", "vasti_r")}
    shifts = centre_lumped_heads(model)
    assert set(shifts) == {"hamstrings_r", "hamstrings_l", "gastroc_r", "gastroc_l"}
    after = {m: points(model, m) for m in before}
    tib_r = [loc for body, loc in after["hamstrings_r"] if body == "tibia_r"]
    tib_l = [loc for body, loc in after["hamstrings_l"] if body == "tibia_l"]
    assert tib_r[0][2] == pytest.approx(0.0026706, abs=1e-6) and tib_l[0][2] == pytest.approx(-0.0026706, abs=1e-6)
    fem = [loc for body, loc in after["gastroc_r"] if body == "femur_r"]
    assert fem[0][2] == pytest.approx(-0.008046, abs=1e-6)
    for m in before:  # x and y (sagittal moment arms) never change; other bodies' points and muscles untouched
        for (b0, l0), (b1, l1) in zip(before[m], after[m]):
            np.testing.assert_allclose(l0[:2], l1[:2])
            if not ((m.startswith("hamstrings") and b0.startswith("tibia")) or (m.startswith("gastroc") and b0.startswith("femur"))):
                np.testing.assert_allclose(l0, l1)


def test_split_distance_from_knee_width_or_constant():
    from gaitforce.physics.label import split_distance

    tables = {"calibration": pd.DataFrame([{"knee_width_r": 0.10, "knee_width_l": 0.09}])}
    assert split_distance(tables, "r", LabelSettings(intercondylar_ratio=0.45)) == pytest.approx(0.045)
    assert split_distance(tables, "l", LabelSettings(intercondylar_ratio=0.5)) == pytest.approx(0.045)
    assert split_distance(tables, "r", LabelSettings(intercondylar_ratio=None)) == pytest.approx(0.040)
    assert split_distance({}, "r", LabelSettings(intercondylar_ratio=0.45, intercondylar_distance=0.05)) == 0.05


def test_quiet_stdout_sends_native_output_to_the_log(tmp_path, capfd):
    import os

    from gaitforce.physics.pipeline import quiet_stdout

    with quiet_stdout(tmp_path / "o.log"):
        os.write(1, b"MODEL: chatter\n")
    os.write(1, b"after\n")
    assert (tmp_path / "o.log").read_bytes() == b"MODEL: chatter\n"
    assert capfd.readouterr().out == "after\n"


def _walk(n=60, start=0):
    t = np.arange(n) / 120.0
    base = np.stack([np.array([0.1, 0.9, 0.1]), np.array([0.1, 0.9, -0.1]), np.array([-0.05, 0.95, 0.0])])
    xyz = base[None] + np.stack([1.2 * t, 0.02 * np.sin(9 * t), 0 * t], 1)[:, None, :]
    return Trial(time=t, markers=xyz, marker_names=("R_Asis", "L_Asis", "Sacral"), source="raw.trc")


def test_align_offset_finds_the_cut_and_refuses_another_recording():
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.sources import align_offset

    raw = _walk()
    cut = raw.slice_frames(17, 47)
    part = Trial(time=cut.time - cut.time[0], markers=cut.markers, marker_names=("R_ASIS", "L_ASIS", "SACRUM"))
    assert align_offset(raw, part) == 17
    other = Trial(time=part.time, markers=part.markers + [0.0, 0.0, 0.05], marker_names=part.marker_names)
    with pytest.raises(GaitforceError, match="does not match"):
        align_offset(raw, other)


def test_per_trial_statics_enter_the_cache_key(tmp_path, monkeypatch):
    """label_dataset takes one static per trial; a stance cached under another static is not reused."""
    trial, settings = _trial(), LabelSettings()
    static_a, static_b = _trial(shift=0.1), _trial(shift=0.2)
    cache = tmp_path / "cache"
    cache.mkdir()
    key = cache_key(trial, settings) + cache_key(static_a, settings)[:8]
    stored = pd.DataFrame({"frame": np.arange(5), "time": trial.time, "knee_medial": np.arange(5.0)})
    stored.to_parquet(cache / f"{key}.parquet")
    labels, failures = label_dataset({"s#0": trial}, out_dir=tmp_path, settings=settings, static={"s#0": static_a},
                                     scheduler="tcp://127.0.0.1:1", progress=False)
    assert failures == [] and list(labels) == ["s#0"]
    import dask.distributed

    def no_cluster(*args, **kwargs):
        raise RuntimeError("cluster contacted")

    monkeypatch.setattr(dask.distributed, "Client", no_cluster)
    with pytest.raises(RuntimeError, match="cluster contacted"):  # not cached under static_b: must be computed
        label_dataset({"s#0": trial}, out_dir=tmp_path, settings=settings, static={"s#0": static_b},
                      scheduler="tcp://127.0.0.1:1", progress=False)


@pytest.mark.realdata
def test_dm_gc6_mat_is_found_in_its_raw_recording(gc_dir):
    from gaitforce.io.grand_challenge import read_gc_mat
    from gaitforce.physics.sources import raw_source

    path = gc_dir / "competitions" / "DM__GC6__DM_ngait_og1.mat"
    mat = read_gc_mat(path)
    src = raw_source(path, mat)
    assert src.offset == 199 and src.trial.subject.mass == pytest.approx(70.0) and src.static is not None
    np.testing.assert_allclose(src.trial.marker("R_Asis")[199:199 + mat.n_frames], mat.to_y_up().marker("R_ASIS"),
                               atol=0.01)
    ps = gc_dir / "competitions" / "PS__GC5__PS_ngait_og_ss1.mat"
    assert raw_source(ps, read_gc_mat(ps)) is None


@pytest.mark.realdata
def test_gc5_reference_is_aligned_on_the_instrumented_left_knee(gc_dir):
    """The independent Rajagopal SO/JR of GC5 tracks PS's measured medial force (r > 0.8 over the cycle) only
    with the left knee and the whole-trial time base; a wrong side or window gives r near 0."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("physics_gc5", Path(__file__).parents[1] / "benchmarks" / "physics_gc5.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main([])
    assert len(rows) == 5
    assert all(r["medial_cycle"]["r"] > 0.85 for r in rows)
    assert all(r["medial_stance"]["rmse_BW"] < 0.5 for r in rows)


@pytest.mark.opensim
@pytest.mark.slow
def test_inverse_dynamics_static_pose_matches_hand_moment(tmp_path, fetched_model):
    """No gravity, neutral pose, 700 N straight up under the right foot 5 cm in front of the ankle centre:
    the ankle must resist -35 N m (plantarflexion), the hip -700 N x its horizontal lever, the pelvis -700 N."""
    osim = pytest.importorskip("opensim")
    from gaitforce.physics import files
    from gaitforce.physics.model import generic_model
    from gaitforce.physics.pipeline import run_id, write_external_loads

    model = generic_model()
    model.set_gravity(osim.Vec3(0, 0, 0))
    state = model.initSystem()
    for c in model.getCoordinateSet():
        c.setValue(state, 0.94 if c.getName() == "pelvis_ty" else 0.0, False)
    model.realizePosition(state)
    ankle = model.getBodySet().get("talus_r").getPositionInGround(state)
    model_path = tmp_path / "model.osim"
    model.printToXML(str(model_path))
    time = np.arange(8) * 0.01
    coords = {c.getName(): np.zeros(8) for c in model.getCoordinateSet()}
    coords["pelvis_ty"] = np.full(8, 0.94)
    files.write_mot(tmp_path / "ik.mot", time, coords, name="coords")
    point = np.array([ankle.get(0) + 0.05, 0.0, ankle.get(2)])
    trial = Trial(time=time, forces=np.tile([0.0, 700.0, 0.0], (8, 1, 1)), cop=np.tile(point, (8, 1, 1)),
                  free_moment=np.zeros((8, 1, 3)), plate_names=("1",))
    ext = write_external_loads(trial, {0: "r"}, tmp_path)
    gen = run_id(model_path, tmp_path / "ik.mot", ext, 0.0, 0.07, tmp_path, LabelSettings(lowpass_hz=-1))
    assert gen["ankle_angle_r_moment"].to_numpy() == pytest.approx(np.full(8, -35.0), abs=1e-6)
    hip = model.getBodySet().get("femur_r").getPositionInGround(state)
    expected_hip = -700.0 * (point[0] - hip.get(0))  # about -31.9 N m for the generic model
    assert gen["hip_flexion_r_moment"].to_numpy() == pytest.approx(np.full(8, expected_hip), abs=1e-6)
    # (the knee's generalised force also holds the work of the tibia's coupled translation, so no hand value)
    assert abs(gen["knee_angle_r_moment"].iloc[0]) > 30
    assert gen["pelvis_ty_force"].to_numpy() == pytest.approx(np.full(8, -700.0), abs=1e-6)


def test_given_coordinates_matched_by_name_with_sign_and_units():
    from gaitforce.errors import GaitforceError
    from gaitforce.physics.given import RAJAGOPAL_SIGNS, model_coordinates

    table = pd.DataFrame({"time": [0.0, 0.01], "knee_angle_r": [30.0, 60.0], "pelvis_ty": [0.95, 0.96],
                          "hip_flexion_r": [10.0, -10.0], "mtp_angle_r": [5.0, 5.0]})
    out = model_coordinates(table, ["pelvis_ty", "hip_flexion_r", "knee_angle_r"], in_degrees=True,
                            signs=RAJAGOPAL_SIGNS)
    assert list(out.columns) == ["time", "pelvis_ty", "hip_flexion_r", "knee_angle_r"]  # mtp ignored
    np.testing.assert_allclose(out["knee_angle_r"], -np.deg2rad([30.0, 60.0]))  # flexion is negative here
    np.testing.assert_allclose(out["hip_flexion_r"], np.deg2rad([10.0, -10.0]))
    np.testing.assert_allclose(out["pelvis_ty"], [0.95, 0.96])  # translations are metres, never converted
    with pytest.raises(GaitforceError, match="ankle_angle_r"):
        model_coordinates(table, ["ankle_angle_r"], in_degrees=True)


@pytest.mark.opensim
@pytest.mark.slow
@pytest.mark.realdata
def test_given_kinematics_muscles_track_the_gc5_reference(gc_dir, tmp_path, fetched_model):
    """Our ID/SO driven by GC5's own Rajagopal IK: the soleus and glut_max of the left leg follow the
    independent Rajagopal SO (r > 0.9 over the trial); a knee sign or a degree/radian slip breaks this."""
    import dataclasses

    from gaitforce.io.sto import read_sto_table
    from gaitforce.io.trc import read_trc
    from gaitforce.physics.given import RAJAGOPAL_SIGNS, run_given_kinematics
    from gaitforce.physics.landmarks import find_landmarks
    from gaitforce.physics.pipeline import assign_plates

    gc5, stem = gc_dir / "gc5-ps-opensim", "PS_ngait_og_ss1"
    loads = read_trc(gc5 / f"{stem}.trc", grf=gc5 / f"{stem}_kinetics.mot").to_y_up()
    loads = loads.replace(subject=dataclasses.replace(loads.subject, mass=75.0), note="test mass")
    plates = assign_plates(loads, find_landmarks(loads.marker_names))
    assert plates[0] == "l"  # the plate under PS's left heel at the start of the trial
    kin, _ = read_sto_table(gc5 / f"{stem}_kinematics.mot")
    tables, _ = run_given_kinematics(kin, loads, plates, tmp_path, LabelSettings(model="gait14dof22musc"),
                                      signs=RAJAGOPAL_SIGNS)
    ref, _ = read_sto_table(gc5 / f"{stem}_SO_force.sto")
    so = tables["so"]
    for ours, theirs in (("soleus_l", ["soleus_l"]), ("glut_max_l", ["glmax1_l", "glmax2_l", "glmax3_l"])):
        b = np.interp(so["time"], ref["time"], sum(ref[m].to_numpy() for m in theirs))
        assert np.corrcoef(so[ours].to_numpy(), b)[0, 1] > 0.9
    assert tables["ik"]["knee_angle_l"].max() < 0.2  # flexion negative in this model


def test_grf_file_zeroes_a_small_force_whose_cop_is_unknown(tmp_path):
    """A C3D frame at 11 N has no CoP (reader threshold 20 N): written as 0 N, not refused nor put at the origin."""
    from gaitforce.io.sto import read_mot
    from gaitforce.physics.files import write_grf

    n = 5
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 1] = [11.0, 300.0, 600.0, 300.0, 5.0]
    cop = np.full((n, 1, 3), 0.5)
    cop[[0, 4]] = np.nan
    trial = Trial(time=np.arange(n) / 100, forces=forces, cop=cop, plate_names=["FP1"], up_axis="y")
    path, prefixes = write_grf(tmp_path / "grf.mot", trial)
    back = read_mot(path)
    assert prefixes == ["1_"]
    assert np.allclose(back.forces[:, 0, 1], [0.0, 300.0, 600.0, 300.0, 0.0])
    assert np.allclose(back.cop[1:4, 0, 0], 0.5)


def test_quiet_stdout_sends_opensim_logger_file_to_the_log_not_the_working_dir(tmp_path):
    """OpenSim's Logger opens ./opensim.log by default; inside quiet_stdout it writes to the given log."""
    pytest.importorskip("opensim")
    import subprocess
    import sys

    code = ("import opensim as o\n"
            "from gaitforce.physics.pipeline import quiet_stdout\n"
            "with quiet_stdout(__import__('pathlib').Path('out/o.log')):\n"
            "    o.Logger.setLevelString('info')\n"
            "    o.Logger.setLevelString('error')\n")
    (tmp_path / "out").mkdir()
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    assert not (tmp_path / "opensim.log").exists()
    assert "Set log level to Info" in (tmp_path / "out" / "o.log").read_text()


def test_local_cluster_has_no_dashboard_and_no_port_warning_when_8787_is_taken():
    import socket
    import warnings

    from gaitforce.physics.label import local_cluster

    holder = socket.socket()
    try:
        try:
            holder.bind(("", 8787))
            holder.listen()
        except OSError:
            pass  # already held by something else: the case the warning was about
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cluster = local_cluster(1)
        assert not [w for w in caught if "already in use" in str(w.message)]
        try:
            assert cluster.scheduler.http_server.port != 8787
            assert cluster.dashboard_link is None or "8787" not in str(cluster.dashboard_link)
        finally:
            cluster.close()
    finally:
        holder.close()


def _plate_trial(n=120, rate=100.0, noise=0.0):
    """One plate under a 700 N half-sine from frame 20 to 90, CoP fixed at (0.3, 0, 0.1) where loaded, and a
    30 Hz ripple of ``noise`` N on the vertical force."""
    t = np.arange(n) / rate
    fy = np.zeros(n)
    fy[20:90] = 700.0 * np.sin(np.pi * np.arange(70) / 69)
    fy[20:90] += noise * np.sin(2 * np.pi * 30.0 * t[20:90])
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 1] = fy
    forces[:, 0, 0] = 0.1 * fy
    cop = np.full((n, 1, 3), np.nan)
    loaded = fy > 20.0
    cop[loaded, 0] = (0.3, 0.0, 0.1)
    return Trial(time=t, forces=forces, cop=cop, free_moment=np.zeros((n, 1, 3)), plate_names=("1",), up_axis="y")


def test_grf_lowpass_same_cutoff_cop_only_where_loaded():
    from gaitforce.physics.pipeline import lowpass_plates
    from gaitforce.signal.filters import zero_lag_sos
    from scipy.signal import sosfreqz

    raw = _plate_trial(noise=50.0)
    out = lowpass_plates(raw, 6.0)
    clean = lowpass_plates(_plate_trial(noise=0.0), 6.0)
    # the 30 Hz ripple is gone: |gain| of the 4th-order zero-lag filter at 30 Hz (6 Hz cutoff) is ~0.0016
    _, h = sosfreqz(zero_lag_sos(cutoff=6.0, order=4, rate=100.0), worN=[30.0], fs=100.0)
    assert abs(h[0]) ** 2 < 0.002
    # on the trial the ripple (50 N, gated to the stance, so it leaks below 30 Hz) drops to under a tenth
    assert np.max(np.abs(raw.forces[:, 0, 1] - _plate_trial().forces[:, 0, 1])) > 45.0  # 50 sin(72 deg) sampled
    assert np.max(np.abs(out.forces[:, 0, 1] - clean.forces[:, 0, 1])) < 5.0
    fy = out.forces[:, 0, 1]
    unloaded = fy < 20.0
    assert unloaded[:18].all() and unloaded[-25:].all() and not unloaded[30:80].any()
    assert (out.forces[unloaded] == 0).all() and np.isnan(out.cop[unloaded]).all()
    # a constant CoP stays where it was on every loaded frame, also where the filter spread the force
    np.testing.assert_allclose(out.cop[~unloaded, 0], np.tile([0.3, 0.0, 0.1], ((~unloaded).sum(), 1)), atol=1e-12)
    assert out.forces[55, 0, 1] == pytest.approx(700.0, rel=0.02)  # the peak kept (6 Hz passes a 0.7 s half-sine)


def test_padded_window_takes_only_frames_the_trial_has():
    from gaitforce.physics.stances import padded

    trial = _plate_trial()  # 120 frames at 100 Hz
    mid = padded(trial, 30, 60, 0.2)
    assert mid.n_frames == 70 and mid.meta["stance_window"] == (20, 50)
    assert mid.time[20] == pytest.approx(trial.time[30])
    edge = padded(trial, 5, 110, 0.2, {"side": "right"})  # 5 frames before, 10 after: no frame invented
    assert edge.n_frames == 120 and edge.meta["stance_window"] == (5, 110) and edge.meta["side"] == "right"
    plain = padded(trial, 30, 60, 0.0)
    assert plain.n_frames == 30 and "stance_window" not in plain.meta


def test_label_trial_runs_on_the_window_and_returns_the_stance_frames(monkeypatch):
    import gaitforce.physics.label as label_mod
    import gaitforce.physics.pipeline as pipeline
    from gaitforce.physics.stances import padded

    seen = {}

    def fake_run(trial, work, settings, static=None, emg=None):
        seen["frames"] = trial.n_frames
        return {}, {"ik": 0.0}

    def fake_targets(tables, side, settings):  # a target equal to the time of each frame labelled
        t = seen_trial["t"].time
        return pd.DataFrame({"time": t, "knee_medial": t * 1000.0})

    trial = _plate_trial().replace(meta={"side": "right"})
    window = padded(trial, 30, 60, 0.2, {"side": "right"})
    seen_trial = {"t": window}
    monkeypatch.setattr(pipeline, "run_trial", fake_run)
    monkeypatch.setattr(label_mod, "targets_from_tables", fake_targets)
    out = label_mod.label_trial(window, settings=LabelSettings(pad_s=0.2, keep_files=False))
    assert seen["frames"] == 70  # IK/ID/SO saw the padded window
    assert out.n_frames == 30 and "stance_window" not in out.meta and out.meta["labelled_window_frames"] == 70
    np.testing.assert_allclose(out.signals["knee_medial"], trial.time[30:60] * 1000.0)


def test_new_settings_validated_and_in_the_cache_key():
    assert LabelSettings().grf_lowpass and LabelSettings().pad_s == 0.2 and LabelSettings().strength == "generic"
    trial = _plate_trial().replace(meta={"side": "right"})
    keys = {cache_key(trial, LabelSettings(**kw)) for kw in
            ({}, {"grf_lowpass": False}, {"pad_s": 0.0}, {"strength": "handsfield2014"})}
    assert len(keys) == 4
    with pytest.raises(ValueError):
        LabelSettings(strength="strong")
    with pytest.raises(ValueError):
        LabelSettings(pad_s=-0.1)
