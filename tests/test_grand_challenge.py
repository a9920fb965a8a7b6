"""The Grand Challenge .mat reader against facts of the real files (README checks, physics sanity)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.io import read
from gaitforce.io.grand_challenge import parse_name, read_gc_mat

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def comp(gc_dir):
    return gc_dir / "competitions"


@pytest.fixture(scope="module")
def jw_og3(comp):
    return read(comp / "JW__GC4__jw_ngait_og3.mat")


def test_parse_name():
    assert parse_name("JW__GC4__jw_ngait_og3.mat") == {"subject": "JW", "competition": "GC4", "year": 2013,
                                                       "trial": "jw_ngait_og3"}
    assert parse_name("DM__GC6__DM_ngait_og1.mat")["year"] == 2015
    assert parse_name("whatever.mat") == {}


def test_readme_check_jw_og3_peaks(jw_og3):
    # README: JW GC4 og3 peaks at 1025 N medial and 594 N lateral, inside the stance phase
    start, stop = jw_og3.meta["stance_frames"]
    assert np.max(jw_og3.signal("knee_medial")[start:stop]) == pytest.approx(1025, abs=1)
    assert np.max(jw_og3.signal("knee_lateral")[start:stop]) == pytest.approx(594, abs=1)
    np.testing.assert_allclose(jw_og3.signal("knee_total"), jw_og3.signal("knee_medial") + jw_og3.signal("knee_lateral"))


def test_subject_and_meta(jw_og3):
    assert jw_og3.subject.id == "JW"
    assert jw_og3.subject.height == pytest.approx(1.68)
    assert jw_og3.subject.mass == pytest.approx(66.7)
    assert jw_og3.meta["competition"] == "GC4" and jw_og3.meta["year"] == 2013
    assert jw_og3.rate == pytest.approx(120.0)
    assert jw_og3.n_frames == 136


def test_grf_points_up_and_carries_body_weight(jw_og3):
    start, stop = jw_og3.meta["stance_frames"]
    fy = jw_og3.forces[start:stop, 0, 1]
    # mean vertical GRF over a stance (double support included) is of the order of body weight
    assert 0.6 * jw_og3.subject.weight < fy.mean() < 1.1 * jw_og3.subject.weight
    assert fy.max() > jw_og3.subject.weight  # loading-response peak above body weight
    # braking then propulsion along +x (the walking direction of these trials)
    fx = jw_og3.forces[start:stop, 0, 0]
    n = stop - start
    assert fx[: n // 4].mean() < 0 < fx[3 * n // 4 :].mean()


def test_swing_is_unloaded_and_cop_nan_there(jw_og3):
    start, stop = jw_og3.meta["stance_frames"]
    assert np.all(np.abs(jw_og3.forces[stop:, 0, 1]) < 20)
    assert np.isnan(jw_og3.cop[stop + 5 :, 0, :]).all()
    cop = jw_og3.cop[start + 2 : stop - 2, 0, :]
    assert np.isfinite(cop).all()
    assert np.abs(cop[:, 1]).max() < 0.01  # CoP lies on the floor (y = 0)
    # the CoP moves forward from heel to toe by roughly a foot length
    assert 0.15 < cop[-1, 0] - cop[0, 0] < 0.35


def test_events_and_stance_frames(jw_og3):
    names = [(e.name, e.side) for e in jw_og3.events]
    assert names == [("heel_strike", "right"), ("toe_off", "right")]
    start, stop = jw_og3.meta["stance_frames"]
    toe_off = jw_og3.events[1].time
    assert jw_og3.time[stop - 1] <= toe_off <= jw_og3.time[stop]
    assert 0.55 < (stop - start) / jw_og3.n_frames < 0.7  # stance is ~60 % of the gait cycle


def test_marker_names_are_anatomically_placed(jw_og3):
    mid = jw_og3.n_frames // 4
    y = {n: jw_og3.marker(n)[mid, 1] for n in jw_og3.marker_names}
    z = {n: jw_og3.marker(n)[mid, 2] for n in jw_og3.marker_names}
    x = {n: jw_og3.marker(n)[mid, 0] for n in jw_og3.marker_names}
    assert y["R_ASIS"] > y["R_THIGH_SUP"] > y["R_KNEE_LAT"] > y["R_SHANK_SUP"] > y["R_ANKLE_LAT"] > y["R_TOE"]
    assert z["R_KNEE_LAT"] > z["R_KNEE_MED"] and z["R_ANKLE_LAT"] > z["R_ANKLE_MED"]  # z points right
    assert z["R_ASIS"] > z["L_ASIS"] and x["R_ASIS"] > x["SACRUM"]
    assert x["R_TOE"] > x["R_HEEL"]


def test_every_competition_file_reads(comp):
    files = sorted(comp.glob("*.mat"))
    assert len(files) == 29
    for f in files:
        t = read_gc_mat(f)
        assert len(t.marker_names) in (16, 17)
        assert t.meta["competition"] in {f"GC{i}" for i in range(1, 7)}
        start, stop = t.meta["stance_frames"]
        assert t.forces[start:stop, 0, 1].max() > t.subject.weight * 0.9
        assert np.isfinite(t.markers).all()
        assert t.emg.shape == (t.n_frames, len(t.emg_names))


def test_three_marker_foot_layout(comp):
    t = read(comp / "DM__GC6__DM_ngait_og1.mat")
    assert {"R_TOE_LAT", "R_TOE_MED"} <= set(t.marker_names) and "R_TOE" not in t.marker_names
    mid = t.n_frames // 4
    assert t.marker("R_TOE_LAT")[mid, 2] > t.marker("R_TOE_MED")[mid, 2]
    assert t.meta["mvc"]["gmed"] > 0
    assert read(comp / "PS__GC5__PS_ngait_og_ss1.mat").meta["mvc"] == {}  # PS files have no MVC


def test_corrupt_and_wrong_files_raise_one_line_errors(tmp_path, comp):
    bad = tmp_path / "XX__GC1__bad.mat"
    bad.write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(InputFileError) as err:
        read(bad)
    assert "XX__GC1__bad.mat" in err.value.line()
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"f": 100, "n": 10})
    with pytest.raises(GaitforceError, match="Segment"):
        read(other)


@pytest.mark.parametrize("field, value", [("f", np.array(["fast"])), ("height", np.array(["tall"]))])
def test_a_field_of_the_wrong_type_is_one_line_error(tmp_path, comp, field, value):
    """A Grand Challenge file whose field holds text where the format has a number: an InputFileError naming
    the file, not a ValueError traceback."""
    d = scipy.io.loadmat(comp / "JW__GC4__jw_ngait_og3.mat")
    d = {k: v for k, v in d.items() if not k.startswith("__")}
    d[field] = value
    path = tmp_path / "JW__GC4__typed.mat"
    scipy.io.savemat(path, d)
    with pytest.raises(InputFileError, match="unexpected type or shape") as err:
        read(path)
    assert "JW__GC4__typed.mat" in err.value.line()
