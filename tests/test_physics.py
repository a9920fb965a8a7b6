"""Physics labeller: medial/lateral split, hip-centre regression, landmark names, cache keys and resume,
failure reporting, and inverse dynamics on a static pose with a hand-computed answer (OpenSim)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaitforce.physics import LabelSettings, cache_key, label_dataset, medial_lateral_split
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
@pytest.mark.slow
def test_inverse_dynamics_static_pose_matches_hand_moment(tmp_path):
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
