"""Marker slots, maps, fill rule, stance frame and joint angles against constructed known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gaitforce.data import features as F
from gaitforce.errors import InputFileError, MissingChannelError
from gaitforce.trial import Trial

# A standing right leg in the Y-up frame (x forward, z right), metres
NEUTRAL = {
    "asis_ipsi": (0.0, 1.0, 0.12), "asis_contra": (0.0, 1.0, -0.12),
    "psis_ipsi": (-0.15, 1.0, 0.05), "psis_contra": (-0.15, 1.0, -0.05),
    "thigh_sup": (0.02, 0.8, 0.13), "thigh_lat": (0.0, 0.7, 0.15), "thigh_inf": (0.03, 0.6, 0.1),
    # knee and ankle centres straight below the Bell hip centre (-0.0456, 0.928, 0.0864): all angles zero
    "knee_lat": (-0.0456, 0.5, 0.1364), "knee_med": (-0.0456, 0.5, 0.0364),
    "shank_sup": (0.03, 0.4, 0.1), "shank_lat": (0.0, 0.3, 0.13), "shank_inf": (0.02, 0.2, 0.1),
    "ankle_lat": (-0.0456, 0.08, 0.1264), "ankle_med": (-0.0456, 0.08, 0.0464),
    "heel": (-0.05, 0.03, 0.09), "toe": (0.15, 0.03, 0.09), "foot_lat": (0.1, 0.03, 0.13), "foot_med": (0.1, 0.03, 0.05),
}


def _slots(n=3):
    return np.repeat(np.array([NEUTRAL[s] for s in F.SLOTS])[None], n, axis=0)


def test_slot_layout_and_feature_sets():
    assert len(F.SLOTS) == 18 and len(set(F.SLOTS)) == 18
    for name, (cols, shape) in F.FEATURE_SETS.items():
        assert len(cols) == shape[0] * shape[1], name
    assert F.FEATURE_SETS["all"][0][:3] == ["asis_ipsi_x", "asis_ipsi_y", "asis_ipsi_z"]
    assert F.FEATURE_SETS["all"][0][-6:] == ["grf_x", "grf_y", "grf_z", "cop_x", "cop_y", "cop_z"]


def test_neutral_posture_has_zero_angles():
    for name, value in F.joint_angles(_slots()).items():
        np.testing.assert_allclose(value, 0.0, atol=1e-9, err_msg=name)


def test_hip_centre_follows_bell():
    p = {s: _slots()[:, k] for k, s in enumerate(F.SLOTS)}
    hjc = F.segment_frames(p)["hjc"][0]
    # pelvis frame = lab frame here, width 0.24 m: (-0.19, -0.30, 0.36) x 0.24 from the mid-ASIS (0, 1, 0)
    np.testing.assert_allclose(hjc, [-0.0456, 1.0 - 0.072, 0.0864], atol=1e-12)


def _rotate_about(slots, pivot, rot, names):
    out = slots.copy()
    for s in names:
        k = F.SLOTS.index(s)
        out[:, k] = (slots[:, k] - pivot) @ rot.T + pivot
    return out


@pytest.mark.parametrize("axis,expect", [("z", "flex"), ("x", "add"), ("y", "rot")])
def test_knee_angles_recover_a_known_rotation(axis, expect):
    slots = _slots()
    # put the neutral shank/foot under the thigh's axes first: the neutral angles are the reference
    base = F.joint_angles(slots)
    kjc = (slots[0, F.SLOTS.index("knee_lat")] + slots[0, F.SLOTS.index("knee_med")]) / 2
    deg = 20.0
    sign = -1.0 if axis == "z" else 1.0  # knee flexion is a negative rotation about z
    rot = Rotation.from_euler(axis, sign * deg, degrees=True).as_matrix()
    moved = _rotate_about(slots, kjc, rot, F.SHANK_SLOTS[:3] + F.SHANK_SLOTS[3:] + F.FOOT_SLOTS)
    got = F.joint_angles(moved)
    for a in ("flex", "add", "rot"):
        want = base[f"knee_{a}"] + (deg if a == expect else 0.0)
        np.testing.assert_allclose(got[f"knee_{a}"], want, atol=1e-9)
    # the hip did not move
    np.testing.assert_allclose(got["hip_flex"], base["hip_flex"], atol=1e-9)


def test_hip_flexion_sign_and_value():
    slots = _slots()
    base = F.joint_angles(slots)
    p = {s: slots[0, k] for k, s in enumerate(F.SLOTS)}
    hjc = F.segment_frames({s: slots[:, k] for k, s in enumerate(F.SLOTS)})["hjc"][0]
    rot = Rotation.from_euler("z", 30, degrees=True).as_matrix()  # knee swings forward: flexion
    leg = F.THIGH_SLOTS + F.SHANK_SLOTS + F.FOOT_SLOTS
    moved = _rotate_about(slots, hjc, rot, leg)
    got = F.joint_angles(moved)
    assert got["hip_flex"][0] == pytest.approx(base["hip_flex"][0] + 30, abs=1e-9)
    assert got["knee_flex"][0] == pytest.approx(base["knee_flex"][0], abs=1e-9)
    knee = moved[0, F.SLOTS.index("knee_lat")]
    assert knee[1] > p["knee_lat"][1] and knee[0] > p["knee_lat"][0]  # the knee rose and moved forward


def _trial(names, positions, side="right"):
    n = positions.shape[0]
    return Trial(time=np.arange(n) / 100, markers=positions, marker_names=names, meta={"side": side}, source="mem.c3d")


def test_plug_in_gait_map_with_left_stance_and_centroid_fill():
    names = ["LASI", "RASI", "LPSI", "RPSI", "LTHI", "LKNE", "LTIB", "LANK", "LHEE", "LTOE", "RKNE"]
    pos = np.arange(len(names) * 3, dtype=float).reshape(1, -1, 3).repeat(4, axis=0) / 100
    t = _trial(names, pos, side="left")
    slots, how, spec = F.resolve_slots(t, "plug-in-gait")
    assert spec["name"] == "plug-in-gait"
    assert how["asis_ipsi"] == "LASI" and how["asis_contra"] == "RASI" and how["knee_lat"] == "LKNE"
    # thigh_sup has no marker: centroid of the thigh slots present (thigh_lat, knee_lat)
    assert how["thigh_sup"].startswith("centroid(thigh")
    k = F.SLOTS.index
    np.testing.assert_allclose(slots[:, k("thigh_sup")], (slots[:, k("thigh_lat")] + slots[:, k("knee_lat")]) / 2)
    np.testing.assert_allclose(slots[:, k("heel")], pos[:, names.index("LHEE")])


def test_virtual_mean_candidate_and_auto_choice():
    names = ["R_ASIS", "L_ASIS", "SACRUM", "R_THIGH_SUP", "R_THIGH_LAT", "R_THIGH_INF", "R_KNEE_LAT", "R_KNEE_MED",
             "R_SHANK_SUP", "R_SHANK_LAT", "R_SHANK_INF", "R_ANKLE_LAT", "R_ANKLE_MED", "R_HEEL", "R_TOE_LAT", "R_TOE_MED"]
    pos = np.random.default_rng(0).normal(size=(5, len(names), 3)) * 0.1
    t = _trial(names, pos)
    slots, how, spec = F.resolve_slots(t, "auto")
    assert spec["name"] == "gc-mat"
    assert how["toe"] == "mean(R_TOE_LAT, R_TOE_MED)"
    assert how["psis_ipsi"] == how["psis_contra"] == "SACRUM"
    np.testing.assert_allclose(slots[:, F.SLOTS.index("toe")], pos[:, -2:].mean(axis=1))


def test_missing_segment_raises_naming_the_slot_and_file(tmp_path):
    names = ["RASI", "LASI", "RPSI", "LPSI", "RTHI", "RKNE", "RTIB", "RANK"]  # no foot marker at all
    t = _trial(names, np.zeros((3, len(names), 3)))
    with pytest.raises(MissingChannelError) as err:
        F.resolve_slots(t, "plug-in-gait")
    assert "heel" in err.value.message and "RHEE" in err.value.message and err.value.source == "mem.c3d"


def test_never_seen_marker_does_not_count_as_present():
    names = ["RASI", "LASI", "RPSI", "LPSI", "RTHI", "RKNE", "RTIB", "RANK", "RHEE", "RTOE", "RKNM"]
    pos = np.ones((3, len(names), 3))
    pos[:, names.index("RKNM")] = np.nan
    _, how, _ = F.resolve_slots(_trial(names, pos), "plug-in-gait")
    assert how["knee_med"].startswith("centroid")


def test_user_map_file_and_bad_maps(tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"name": "mine", "sides": {"right": "R", "left": "L"}, "slots": {"heel": ["{I}HEEL"]}}))
    assert F.load_marker_map(good)["name"] == "mine"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"slots": {"elbow": ["X"]}}))
    with pytest.raises(InputFileError, match="unknown slots"):
        F.load_marker_map(bad)
    with pytest.raises(InputFileError):
        F.load_marker_map(tmp_path / "absent.json")


def test_stance_frame_origin_mirror_and_cop_fill():
    n = 50
    t_ = np.arange(n) / 100
    slots = _slots(n)
    # walk along -z in a Y-up lab (pelvis moves 0.5 m), left stance: mirrored then aligned to +x
    slots[:, :4, 2] -= np.linspace(0, 0.5, n)[:, None]
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 1] = 700.0
    forces[0, 0, 1] = 0.0
    cop = np.tile([0.3, 0.0, 2.0], (n, 1))[:, None, :]
    cop[0] = np.nan
    trial = Trial(time=t_, markers=slots, marker_names=F.SLOTS, forces=forces, cop=cop, plate_names=("FP1",),
                  meta={"side": "left"}, source="mem")
    st = F.to_stance_frame(trial)
    cols = F.stance_features(st)
    assert cols["cop_x"][1] == pytest.approx(0.0, abs=1e-12) and cols["cop_z"][5] == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(cols["cop_x"]).all()  # the unloaded first frame holds the nearest loaded CoP
    # progression is +x after alignment: the pelvis moved forward 0.5 m
    assert cols["asis_ipsi_x"][-1] - cols["asis_ipsi_x"][0] == pytest.approx(0.5, abs=1e-9)
    assert cols["grf_y"][10] == pytest.approx(700.0)


def test_unknown_force_is_nan_not_zero():
    # a frame whose plate force is unknown (GRF file not covering it, or a merged dropout) has an unknown GRF
    # feature: NaN (left out downstream), never 0 N presented as a measured unloaded frame
    n = 6
    forces = np.tile([10.0, 700.0, -5.0], (n, 1))[:, None, :]
    forces[3] = np.nan
    cop = np.tile([0.3, 0.0, 0.1], (n, 1))[:, None, :]
    cop[3] = np.nan
    trial = Trial(time=np.arange(n) / 100, forces=forces, cop=cop, plate_names=("FP1",))
    force, c = F.grf_and_cop(trial)
    assert np.isnan(force[3]).all() and np.isnan(c[3]).all()
    np.testing.assert_allclose(force[[0, 1, 2, 4, 5]], np.tile([10.0, 700.0, -5.0], (5, 1)))


# ---------------------------------------------------------------------------------------------------------
# knee moments of the GRF (physics-informed features): hand-computed known answers
# ---------------------------------------------------------------------------------------------------------
KNEE_CENTRE = np.array([-0.0456, 0.5, 0.0864])  # mid-point of NEUTRAL's epicondyles


def _moments(grf, cop, *, side="right", n=1):
    """The moment columns of frame_features for NEUTRAL slots (mirrored for a left stance), lab = stance frame."""
    slots, grf, cop = _slots(n), np.tile(np.asarray(grf, float), (n, 1)), np.tile(np.asarray(cop, float), (n, 1))
    if side == "left":  # the mirror image in the lab: z -> -z
        slots, grf, cop = slots * [1, 1, -1], grf * [1, 1, -1], cop * [1, 1, -1]
    rot = F.stance_rotation(np.array([1.0, 0.0, 0.0]), side)
    x = F.frame_features(slots, grf, cop, rot, np.zeros(3))
    cols = F.feature_columns()
    return {c: x[:, cols.index(c)] for c in F.MOMENT_COLUMNS}


def test_vertical_force_medial_and_behind_the_knee_gives_known_moments():
    # 700 N straight up, CoP on the floor 5 cm medial of and 4 cm behind the knee centre (0.5 m above the floor):
    # adduction = 0.05 m x 700 N = 35 N m, flexion = 0.04 m x 700 N = 28 N m; lever arms 0.05 and 0.04 m
    cop = KNEE_CENTRE + [-0.04, -0.5, -0.05]
    for side in ("right", "left"):
        m = _moments([0.0, 700.0, 0.0], cop, side=side)
        np.testing.assert_allclose(m["knee_add_moment"], 35.0, atol=1e-9, err_msg=side)
        np.testing.assert_allclose(m["knee_flex_moment"], 28.0, atol=1e-9, err_msg=side)
        np.testing.assert_allclose(m["knee_add_lever"], 0.05, atol=1e-12, err_msg=side)
        np.testing.assert_allclose(m["knee_flex_lever"], 0.04, atol=1e-12, err_msg=side)
    # lateral of and in front of the knee: the signs turn (external abduction and extension moments)
    m = _moments([0.0, 700.0, 0.0], KNEE_CENTRE + [0.02, -0.5, 0.03])
    np.testing.assert_allclose([m["knee_add_moment"][0], m["knee_flex_moment"][0]], [-21.0, -14.0], atol=1e-9)


def test_shear_force_moments_and_lever_arm_threshold():
    # 100 N forward on the foot, CoP under the knee: it swings the shank forward = extension, 0.5 m x 100 N
    m = _moments([100.0, 0.0, 0.0], KNEE_CENTRE + [0.0, -0.5, 0.0])
    np.testing.assert_allclose(m["knee_flex_moment"], -50.0, atol=1e-9)
    np.testing.assert_allclose(m["knee_flex_lever"], -0.5, atol=1e-12)
    # no frontal-plane force: no adduction moment, and its lever arm is 0 (under COP_THRESHOLD_N), not inf
    np.testing.assert_allclose([m["knee_add_moment"][0], m["knee_add_lever"][0]], [0.0, 0.0], atol=1e-12)
    # 10 N medial shear on the foot (on the body: -z), 0.5 m below the knee: M_x = r_y F_z = -0.5 x -10 = +5
    m = _moments([0.0, 0.0, -10.0], KNEE_CENTRE + [0.0, -0.5, 0.0])
    np.testing.assert_allclose(m["knee_add_moment"], 5.0, atol=1e-9)
    np.testing.assert_allclose(m["knee_add_lever"], 0.0, atol=1e-12)  # 10 N < 20 N: lever arm undefined -> 0


def test_moments_follow_the_stance_frame_and_can_be_skipped():
    # the same stance moved and turned in the lab: the moments do not change (they live in the stance frame)
    cop = KNEE_CENTRE + [-0.04, -0.5, -0.05]
    want = _moments([30.0, 700.0, -20.0], cop)
    turn = Rotation.from_euler("y", 130, degrees=True).as_matrix()
    shift = np.array([2.0, 0.0, -1.0])
    slots = _slots(1) @ turn.T + shift
    grf, cop_lab = np.array([[30.0, 700.0, -20.0]]) @ turn.T, cop[None] @ turn.T + shift
    rot = F.stance_rotation(turn @ [1.0, 0.0, 0.0], "right")
    x = F.frame_features(slots, grf, cop_lab, rot, shift)
    for k, c in enumerate(F.MOMENT_COLUMNS):
        np.testing.assert_allclose(x[:, F.feature_columns().index(c)], want[c], atol=1e-9, err_msg=c)
    off = F.frame_features(slots, grf, cop_lab, rot, shift, moments=False)
    assert np.isnan(off[:, [F.feature_columns().index(c) for c in F.MOMENT_COLUMNS]]).all()
    assert F.FEATURE_SETS["grf_moments"] == (F.GRF_COLUMNS + F.MOMENT_COLUMNS, (1, 7))


def test_body_weight_norm_scales_moments_not_lever_arms():
    from gaitforce.learn.training import Estimator

    cols = ["grf_y", "knee_add_moment", "knee_add_lever", "knee_flex_moment@-3", "knee_flex_lever@-3", "cop_x"]
    assert Estimator._force_inputs(cols).tolist() == [True, True, False, True, False, False]
