import numpy as np
import pytest

from gaitforce import Event, Subject, Trial
from gaitforce.errors import MissingChannelError, UnitError


def make_trial(n=50, up="z"):
    t = np.arange(n) / 100.0
    markers = np.stack([np.stack([t, 0.1 * np.ones(n), np.ones(n)], 1), np.stack([t, -0.1 * np.ones(n), 0.5 * np.ones(n)], 1)], 1)
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 2] = 700.0
    cop = np.zeros((n, 1, 3))
    cop[:, 0, 0] = 0.3
    return Trial(
        time=t,
        markers=markers,
        marker_names=["A", "B"],
        forces=forces,
        cop=cop,
        plate_names=["FP1"],
        up_axis=up,
        events=[Event("heel_strike", 0.1, "right", plate=0)],
        subject=Subject("S1", mass=70.0, height=1.75),
    )


def test_copies_and_read_only():
    src = np.zeros((3, 1, 3))
    trial = Trial(time=[0, 0.01, 0.02], markers=src, marker_names=["M"])
    src[:] = 5.0
    assert trial.markers.max() == 0.0
    with pytest.raises(ValueError):
        trial.markers[0, 0, 0] = 1.0


def test_shape_checks():
    with pytest.raises(ValueError, match="frames"):
        Trial(time=[0, 0.01], markers=np.zeros((3, 1, 3)), marker_names=["M"])
    with pytest.raises(ValueError, match="increasing"):
        Trial(time=[0, 0.0])
    with pytest.raises(ValueError, match="unit"):
        Trial(time=[0, 0.01], signals={"x": [1, 2]})


def test_millimetres_labelled_metres_rejected():
    with pytest.raises(UnitError, match="millimetres"):
        Trial(time=[0, 0.01], markers=np.full((2, 1, 3), 1200.0), marker_names=["M"])


def test_implausible_subject_rejected():
    with pytest.raises(UnitError):
        Subject("x", height=175.0)


def test_axis_rule_round_trip_and_direction():
    trial = make_trial(up="z")
    y_up = trial.to_y_up()
    # vertical force moves from z to y, lab left (+y) becomes -z (OpenSim z points right)
    assert np.allclose(y_up.forces[:, 0], [0, 700.0, 0])
    assert np.allclose(y_up.marker("A")[0], [0, 1.0, -0.1])
    back = y_up.to_z_up()
    assert np.allclose(back.markers, trial.markers)
    assert y_up.history[-1].startswith("to_y_up")
    assert y_up.vertical_index == 1 and trial.vertical_index == 2


def test_slice_keeps_events_and_offset():
    trial = make_trial()
    cut = trial.slice_frames(5, 20)
    assert cut.n_frames == 15
    assert cut.meta["frame_offset"] == 5
    assert [e.time for e in cut.events] == [0.1]
    assert cut.slice_frames(2, 4).meta["frame_offset"] == 7


def test_total_grf_weights_cop_by_vertical_force():
    n = 4
    forces = np.zeros((n, 2, 3))
    forces[:, 0, 2] = 300.0
    forces[:, 1, 2] = 100.0
    cop = np.zeros((n, 2, 3))
    cop[:, 0, 0] = 1.0
    cop[:, 1, 0] = 2.0
    trial = Trial(time=np.arange(n) / 100, forces=forces, cop=cop, plate_names=["a", "b"], up_axis="z")
    f, c, _ = trial.total_grf()
    assert np.allclose(f[:, 2], 400.0)
    assert np.allclose(c[:, 0], (300 * 1 + 100 * 2) / 400)


def test_missing_marker_names_source():
    trial = make_trial().replace(source="x.c3d")
    with pytest.raises(MissingChannelError, match="x.c3d"):
        trial.marker("nope")


def test_rate_and_summary():
    trial = make_trial()
    assert trial.rate == pytest.approx(100.0)
    text = trial.summary()
    assert "2 (m)" in text and "FP1" in text and "heel_strike" in text


def test_total_grf_unknown_cop_on_loaded_plate_stays_nan():
    forces = np.zeros((2, 2, 3))
    forces[:, :, 2] = [[300.0, 100.0], [300.0, 0.0]]
    cop = np.zeros((2, 2, 3))
    cop[0, 1] = np.nan  # loaded plate b, CoP unknown -> total unknown
    cop[1, 1] = np.nan  # unloaded plate b, CoP unknown -> ignored
    cop[:, 0, 0] = 1.0
    trial = Trial(time=[0, 0.01], forces=forces, cop=cop, plate_names=["a", "b"], up_axis="z")
    _, c, _ = trial.total_grf()
    assert np.isnan(c[0]).all()
    assert np.allclose(c[1], [1.0, 0, 0])
