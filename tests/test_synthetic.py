"""The virtual walking cohort: rigid segments, feet on the plates, GRF physics, reproducibility, ranges."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from gaitforce.data import synthetic as syn
from gaitforce.errors import GaitforceError


@pytest.fixture(scope="module")
def clean():
    """Four noise-free trials of two subjects."""
    return syn.generate_cohort(n_subjects=2, trials_per_subject=2, seed=3, marker_noise=0.0, force_noise=0.0)


@pytest.fixture(scope="module")
def cohort():
    """The default demo cohort (with measurement noise)."""
    return syn.generate_cohort()


def _m(trial, name):
    return trial.marker(name)


def _plate_stance(trial, plate):
    """(first, last) frame index where the plate carries more than 20 N."""
    idx = np.flatnonzero(trial.forces[:, plate, 1] > 20.0)
    return idx[0], idx[-1]


# -- kinematics ---------------------------------------------------------------------------------------------
def test_marker_set_is_the_documented_one(clean):
    tr = clean[0]
    assert tr.marker_names == syn.MARKER_NAMES
    assert len(tr.marker_names) == 36
    for side in "RL":
        for m in ("THI1", "THI2", "THI3", "THI4", "KNE", "KNM", "TIB1", "TIB2", "TIB3", "TIB4", "ANK", "MED", "HEE", "TOE"):
            assert side + m in tr.marker_names
    assert {"RASI", "LASI", "RPSI", "LPSI"} <= set(tr.marker_names)
    assert np.isfinite(tr.markers).all()


@pytest.mark.parametrize("segment", ["pelvis", "R_thigh", "R_shank", "R_foot", "L_thigh", "L_shank", "L_foot"])
def test_segments_are_rigid(clean, segment):
    if segment == "pelvis":
        names = list(syn.PELVIS_MARKERS)
    else:
        side, seg = segment.split("_")
        names = [side + m for m, s in syn.SEGMENT_OF.items() if s == seg]
    for tr in clean:
        for a, b in itertools.combinations(names, 2):
            dist = np.linalg.norm(_m(tr, a) - _m(tr, b), axis=1)
            assert np.ptp(dist) < 1e-9, (segment, a, b)
            assert dist.min() > 0.005


def test_markers_on_different_segments_move_relative_to_each_other(clean):
    tr = clean[0]
    dist = np.linalg.norm(_m(tr, "RASI") - _m(tr, "RANK"), axis=1)
    assert np.ptp(dist) > 0.05  # the knee flexes


def test_noise_is_added_when_asked(clean):
    noisy = syn.generate_trial(seed=3, marker_noise=0.001, force_noise=0.0)
    diff = noisy.markers - clean[0].markers
    assert abs(diff.std() - 0.001) < 0.0001
    assert abs(diff.mean()) < 0.0002


def test_y_up_walking_along_plus_x(clean):
    for tr in clean:
        assert tr.up_axis == "y"
        pelvis = (_m(tr, "RASI") + _m(tr, "LASI")) / 2
        assert pelvis[-1, 0] - pelvis[0, 0] > 1.5  # two strides forward
        assert abs(pelvis[-1, 2] - pelvis[0, 2]) < 0.1  # no drift across
        assert np.all(np.diff(pelvis[:, 0]) > 0)
        # the right side of the body is +z
        assert np.all(_m(tr, "RASI")[:, 2] > _m(tr, "LASI")[:, 2])
        assert np.all(_m(tr, "RASI")[:, 1] > _m(tr, "RKNE")[:, 1]) and np.all(_m(tr, "RKNE")[:, 1] > _m(tr, "RANK")[:, 1])


# -- force plates and timing --------------------------------------------------------------------------------
def test_events_match_plate_loading(clean):
    for tr in clean:
        dt = 1.0 / tr.rate
        for plate, side in enumerate(("right", "left")):
            first, last = _plate_stance(tr, plate)
            hs = [e for e in tr.events if e.plate == plate and e.name == "heel_strike"]
            to = [e for e in tr.events if e.plate == plate and e.name == "toe_off"]
            assert len(hs) == len(to) == 1 and hs[0].side == to[0].side == side
            assert abs(hs[0].time - tr.time[first]) <= 1.5 * dt
            assert abs(to[0].time - tr.time[last]) <= 1.5 * dt
            assert 0 < first and last < tr.n_frames - 1  # the plate stance lies wholly inside the trial
        # right plate first, then left; each side alternates heel strike / toe off
        assert _plate_stance(tr, 0)[0] < _plate_stance(tr, 1)[0]
        for side in ("right", "left"):
            names = [e.name for e in tr.events if e.side == side]
            assert all(a != b for a, b in zip(names, names[1:]))


def test_foot_stands_on_its_plate(clean):
    for tr in clean:
        for plate, pre in ((0, "R"), (1, "L")):
            first, last = _plate_stance(tr, plate)
            corners = np.array(tr.meta["plate_corners"][plate])
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            loaded = slice(first, last + 1)
            cop = tr.cop[loaded, plate]
            assert np.all((cop[:, [0, 2]] > lo[[0, 2]]) & (cop[:, [0, 2]] < hi[[0, 2]]))
            assert np.allclose(cop[:, 1], 0.0)
            # CoP travels forward from under the heel towards the toe
            assert cop[-1, 0] - cop[0, 0] > 0.5 * 0.152 * tr.subject.height
            heel, toe = _m(tr, pre + "HEE")[loaded], _m(tr, pre + "TOE")[loaded]
            assert abs(cop[0, 0] - heel[0, 0]) < 0.08  # starts under the heel
            for marker in (heel, toe):
                assert np.all((marker[:, [0, 2]] > lo[[0, 2]] - 0.05) & (marker[:, [0, 2]] < hi[[0, 2]] + 0.05))
            # the foot is still while flat (the middle third of stance): toe marker moves < 1 cm
            k = last - first
            mid = slice(first + k // 3, first + 2 * k // 3)
            assert np.ptp(_m(tr, pre + "TOE")[mid][:, [0, 2]], axis=0).max() < 0.01
            # the other foot never stands on this plate (it may swing over it)
            other = "left" if pre == "R" else "right"
            events = [e for e in tr.events if e.side == other]
            for name in ("HEE", "TOE"):
                p = _m(tr, other[0].upper() + name)
                for e in events:
                    if e.name == "heel_strike":
                        f = int(round(e.time * tr.rate))
                        assert not (lo[0] - 0.02 < p[f, 0] < hi[0] + 0.02), (tr.source, e)


def test_unloaded_plate_has_no_cop(clean):
    for tr in clean:
        off = tr.forces[:, :, 1] < syn.COP_THRESHOLD
        assert np.isnan(tr.cop[off]).all()
        assert np.isfinite(tr.cop[~off]).all()


def test_vertical_impulse_is_body_weight_times_stride_time(clean):
    for tr in clean:
        dt = 1.0 / tr.rate
        bw = tr.subject.weight
        stride = tr.meta["stride_time"]
        impulse = np.trapezoid(tr.forces[:, :, 1], dx=dt, axis=0)  # one right + one left stance
        assert impulse.sum() == pytest.approx(bw * stride, rel=0.02)
        # steady walking: no net fore-aft or medio-lateral impulse over a stance
        for plate in range(2):
            assert abs(np.trapezoid(tr.forces[:, plate, 0], dx=dt)) < 0.01 * bw * stride
        ml = np.trapezoid(tr.forces[:, :, 2], dx=dt, axis=0)
        assert ml[0] < 0 < ml[1]  # medial: right foot pushed to -z, left to +z


def test_grf_shape_is_a_double_hump(cohort):
    for tr in cohort:
        bw = tr.subject.weight
        for plate in range(2):
            fy = tr.forces[:, plate, 1] / bw
            first, last = _plate_stance(tr, plate)
            k = last - first
            early = fy[first: first + k // 2].max()
            late = fy[first + k // 2: last + 1].max()
            valley = fy[first + 2 * k // 5: first + 3 * k // 5].min()
            assert 1.05 < early < 1.35 and 1.0 < late < 1.35
            assert valley < min(early, late) - 0.15
            fx = tr.forces[first: last + 1, plate, 0] / bw
            assert fx[: k // 3].min() < -0.1 and fx[2 * k // 3:].max() > 0.1  # braking then propulsion
            assert np.abs(tr.free_moment[:, plate, 1]).max() < 0.02 * bw


# -- reproducibility ----------------------------------------------------------------------------------------
def test_same_seed_same_cohort_and_subjects_independent_of_cohort_size():
    a = syn.generate_cohort(n_subjects=2, trials_per_subject=1, seed=7)
    b = syn.generate_cohort(n_subjects=3, trials_per_subject=1, seed=7)
    for x, y in zip(a, b):
        assert x.source == y.source and x.subject == y.subject
        np.testing.assert_array_equal(x.markers, y.markers)
        np.testing.assert_array_equal(x.forces, y.forces)
    c = syn.generate_cohort(n_subjects=2, trials_per_subject=1, seed=8)
    assert not np.allclose(a[0].markers[:50], c[0].markers[:50])


def test_trials_of_a_subject_differ():
    a, b = syn.generate_cohort(n_subjects=1, trials_per_subject=2, seed=0)
    assert a.subject == b.subject
    assert a.meta["speed"] != b.meta["speed"]


# -- plausibility -------------------------------------------------------------------------------------------
def test_cohort_ranges(cohort):
    table = syn.cohort_table(cohort)
    assert len(table) == 32 and table["subject"].nunique() == 8
    assert table["height"].between(1.5, 1.95).all() and table["mass"].between(50, 110).all()
    assert table["height"].max() - table["height"].min() > 0.2  # varied sizes
    assert set(table["sex"]) == {"F", "M"}
    assert table["speed"].between(0.8, 1.8).all() and 1.0 < table["speed"].mean() < 1.5
    assert table["cadence"].between(95, 130).all()
    assert (table["stride_length"] / table["height"]).between(0.6, 1.0).all()
    assert table["stance_fraction"].between(0.58, 0.66).all()
    assert table["step_width"].between(0.03, 0.25).all()
    # faster walkers of one subject take longer strides
    for _, g in table.groupby("subject"):
        g = g.sort_values("speed")
        assert g["stride_length"].iloc[-1] >= g["stride_length"].iloc[0]


def test_pelvis_height_and_step_length(cohort):
    for tr in cohort:
        pelvis = (_m(tr, "RASI") + _m(tr, "LASI")) / 2
        h = tr.subject.height
        assert 0.48 * h < pelvis[:, 1].min() and pelvis[:, 1].max() < 0.62 * h
        assert 0.015 < np.ptp(pelvis[:, 1]) < 0.09  # vertical excursion of walking
        # step length: heel marker positions at the two plate heel strikes
        hs = [e for e in tr.events if e.plate is not None and e.name == "heel_strike"]
        frames = [int(round(e.time * tr.rate)) for e in hs]
        step = _m(tr, "LHEE")[frames[1], 0] - _m(tr, "RHEE")[frames[0], 0]
        assert 0.3 * h < step < 0.5 * h


def test_feet_do_not_sink_into_the_floor(cohort):
    for tr in cohort:
        for pre in "RL":
            assert _m(tr, pre + "HEE")[:, 1].min() > -0.015
            assert _m(tr, pre + "TOE")[:, 1].min() > -0.015


def test_marked_synthetic(cohort):
    for tr in cohort:
        assert tr.meta["synthetic"] is True
        assert tr.source.startswith("synthetic://") and tr.subject.extra["synthetic"] is True
        assert tr.subject.id in tr.source
        assert tr.history and "synthetic" in tr.history[0]


def test_true_angles_follow_the_normative_knee(cohort):
    tr = cohort[0]
    knee = np.degrees(tr.signal("true_knee_flexion_r"))
    assert tr.units["true_knee_flexion_r"] == "rad"
    assert 45 < knee.max() < 80 and -10 < knee.min() < 15


# -- the stored curves ----------------------------------------------------------------------------------------
def test_normative_coefficients_match_their_keypoints():
    data = json.loads((syn.resources.files("gaitforce") / "data/normative_gait.json").read_text())
    for name, curve in data["curves"].items():
        refit = syn._fit_harmonics(curve["keypoints"], data["harmonics"])
        np.testing.assert_allclose(curve["a"], refit["a"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(curve["b"], refit["b"], atol=1e-4, err_msg=name)
        pct, deg = np.array(curve["keypoints"]).T
        assert np.abs(syn.normative_angle(name, pct / 100) - deg).max() < 1.0, name


def test_normative_knee_landmarks():
    # loading-response flexion, near-extension in mid stance, peak swing flexion ~60 deg at ~72 %
    knee = syn.normative_angle("knee_flexion", np.arange(100) / 100)
    assert 55 < knee.max() < 65 and 68 <= int(np.argmax(knee)) <= 76
    assert knee[12:16].max() > 15 and knee[35:45].min() < 6


# -- errors and files ---------------------------------------------------------------------------------------
def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(GaitforceError):
        syn.generate_cohort(n_subjects=0)
    with pytest.raises(GaitforceError):
        syn.generate_trial(rate=5.0)
    with pytest.raises(GaitforceError):
        syn.write_cohort(tmp_path, [], fmt="xlsx")


def test_other_rate(clean):
    tr = syn.generate_trial(seed=3, rate=120.0, marker_noise=0.0, force_noise=0.0)
    assert tr.rate == pytest.approx(120.0)
    assert tr.duration == pytest.approx(clean[0].duration, abs=0.01)


@pytest.mark.parametrize("fmt", ["c3d", "trc"])
def test_write_cohort_round_trip(tmp_path, clean, fmt):
    from gaitforce.io import read

    trials = clean[:1]
    paths = syn.write_cohort(tmp_path, trials, fmt=fmt)
    manifest = json.loads(paths[-1].read_text())
    assert manifest["synthetic"] is True and manifest["trials"][0]["mass"] == trials[0].subject.mass
    data = paths[0]
    assert data.suffix == f".{fmt}" and data.stem == "syn01_walk01"
    back = read(data, grf="auto") if fmt == "trc" else read(data)
    tr = trials[0]
    assert back.n_frames == tr.n_frames
    idx = [back.marker_names.index(n) for n in tr.marker_names]
    np.testing.assert_allclose(back.markers[:, idx], tr.markers, atol=1e-3)
    assert back.forces.shape[1] >= 2
    np.testing.assert_allclose(back.forces[:, :2, 1].max(axis=0), tr.forces[:, :, 1].max(axis=0), rtol=0.02)
