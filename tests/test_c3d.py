"""read_c3d / write_c3d against small C3Ds built with ezc3d in tmp_path, with hand-computed answers."""

import ezc3d
import numpy as np
import pytest

from gaitforce import Event, Subject, Trial
from gaitforce.errors import (
    GaitforceError,
    InputFileError,
    MissingChannelError,
    UnitError,
)
from gaitforce.io.c3d import read_c3d, write_c3d

RATE, PER_FRAME, N = 100.0, 10, 20
# GRF on the body (lab, Z up), CoP and free moment on the body, while loaded
GRF = np.array([30.0, 20.0, 700.0])
CENTRE_MM = np.array([-300.0, 200.0, 0.0])
COP_M = np.array([-0.2, 0.4, 0.0])  # centre + (0.1, 0.2, 0) m
TZ = 5.0
# plate axes in the lab, as the corners below define them (x = -lab x, y = lab y, z down): columns of R
R = np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]])
CORNERS_MM = np.array([[-600, 650, 0], [0, 650, 0], [0, -250, 0], [-600, -250, 0]], float)
LOADED = slice(5, 15)


def plate_channels(reaction=False):
    """Type-2 channels (6, S): the force on the plate in plate axes, N and N mm (hand-derived)."""
    f_action = -GRF
    r = COP_M - CENTRE_MM / 1000.0
    m_action = np.cross(r, f_action) + np.array([0.0, 0.0, -TZ])
    wrench = np.concatenate([R.T @ f_action, R.T @ m_action * 1000.0])
    if reaction:
        wrench = -wrench
    out = np.zeros((6, N * PER_FRAME))
    out[:, LOADED.start * PER_FRAME : LOADED.stop * PER_FRAME] = wrench[:, None]
    return out


def make_c3d(path, *, units="mm", plate=True, reaction=False, first_frame=0):
    c = ezc3d.c3d()
    c["header"]["points"]["first_frame"] = first_frame
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE]
    c["parameters"]["POINT"]["UNITS"]["value"] = [units]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("A", "B", "LKneeAngles")
    c.add_parameter("POINT", "ANGLES", ["LKneeAngles"])
    scale = {"mm": 1000.0, "m": 1.0}[units]
    pts = np.ones((4, 3, N))
    pts[:3, 0, :] = (np.array([0.1, 0.2, 1.0]) * scale)[:, None]
    pts[:3, 1, :] = (np.array([0.3, -0.1, 0.5]) * scale)[:, None]
    pts[:3, 2, :] = 45.0
    pts[:3, 1, 3] = 0.0  # exact zeros: not seen
    c["data"]["points"] = pts
    res = np.zeros((1, 3, N))
    res[0, 1, 2] = -1.0  # negative residual: not seen
    c["data"]["meta_points"]["residuals"] = res
    emg = np.sin(np.arange(N * PER_FRAME) / 7.0)[None] * 1e-3
    analogs, labels, units_a = [emg, 0.5 * np.ones((1, N * PER_FRAME))], ["vasmed", "load cell"], ["V", "V"]
    if plate:
        analogs.insert(0, plate_channels(reaction))
        labels = ["Fx1", "Fy1", "Fz1", "Mx1", "My1", "Mz1"] + labels
        units_a = ["N"] * 3 + ["Nmm"] * 3 + units_a
    c["parameters"]["ANALOG"]["RATE"]["value"] = [RATE * PER_FRAME]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
    c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(units_a)
    c["data"]["analogs"] = np.concatenate(analogs)[None]
    if plate:
        for name, value in [("USED", [1]), ("TYPE", [2]), ("ZERO", [1, 0]), ("CHANNEL", np.arange(1, 7)[:, None])]:
            c.add_parameter("FORCE_PLATFORM", name, np.asarray(value, float))
            c["parameters"]["FORCE_PLATFORM"][name]["value"] = np.asarray(value, dtype=np.int64)
            c["parameters"]["FORCE_PLATFORM"][name]["type"] = 2
        c.add_parameter("FORCE_PLATFORM", "CORNERS", CORNERS_MM.T[:, :, None])
        c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, 1)))
    c.add_event(time=[0, 0.05], context="Right", label="Foot Strike")
    c.add_event(time=[0, 0.14], context="Right", label="Foot Off")
    c.add_parameter("SUBJECTS", "NAMES", ["S7"])
    c.add_parameter("PROCESSING", "Bodymass", [70.0])
    c.add_parameter("PROCESSING", "Height", [1750.0])
    c.write(str(path))
    return path


@pytest.fixture
def c3d_file(tmp_path):
    return make_c3d(tmp_path / "walk.c3d")


def test_markers_mm_to_m_and_unseen_samples(c3d_file):
    trial = read_c3d(c3d_file, y_up=False)
    assert trial.marker_names == ("A", "B")  # the model output in POINT:ANGLES is skipped
    assert np.allclose(trial.marker("A"), [0.1, 0.2, 1.0])
    b = trial.marker("B")
    assert np.isnan(b[2]).all() and np.isnan(b[3]).all()  # residual < 0 and exact zeros
    assert np.allclose(b[[0, 1, 4]], [0.3, -0.1, 0.5])
    assert trial.rate == pytest.approx(RATE) and trial.up_axis == "z"


def test_metre_file_not_rescaled(tmp_path):
    trial = read_c3d(make_c3d(tmp_path / "m.c3d", units="m", plate=False), y_up=False)
    assert np.allclose(trial.marker("A"), [0.1, 0.2, 1.0])


def test_plate_moments_in_other_length_unit_than_positions_refused(tmp_path):
    # N mm moments with positions in m: ezc3d's CoP would be off by 1000, so the reader refuses
    with pytest.raises(UnitError, match="power of ten"):
        read_c3d(make_c3d(tmp_path / "mix.c3d", units="m"))


@pytest.mark.parametrize("reaction", [False, True])
def test_known_plate_load_gives_grf_cop_free_moment(tmp_path, reaction):
    trial = read_c3d(make_c3d(tmp_path / "p.c3d", reaction=reaction), y_up=False)
    assert trial.plate_names == ("FP1",)
    inner = slice(LOADED.start + 1, LOADED.stop - 1)  # frames whose whole window is loaded
    assert np.allclose(trial.forces[inner, 0], GRF, atol=1e-3)
    assert np.allclose(trial.cop[inner, 0], COP_M, atol=1e-6)
    assert np.allclose(trial.free_moment[inner, 0], [0, 0, TZ], atol=1e-3)
    assert np.allclose(trial.forces[:LOADED.start - 1, 0], 0.0)
    assert np.isnan(trial.cop[:LOADED.start - 1, 0]).all()  # unloaded: no CoP
    # edge frames straddle the step: a centred 11-sample window holds 6 (first) and 5 (last) loaded samples
    assert trial.forces[LOADED.start, 0, 2] == pytest.approx(700.0 * 6 / 11, rel=1e-4)
    assert trial.forces[LOADED.stop, 0, 2] == pytest.approx(700.0 * 5 / 11, rel=1e-4)


def test_y_up_conversion_of_plate_and_markers(c3d_file):
    trial = read_c3d(c3d_file)
    assert trial.up_axis == "y"
    assert np.allclose(trial.forces[10, 0], [30.0, 700.0, -20.0], atol=1e-3)  # (x, y, z) -> (x, z, -y)
    assert np.allclose(trial.marker("A")[0], [0.1, 1.0, -0.2])
    assert np.allclose(trial.free_moment[10, 0], [0.0, TZ, 0.0], atol=1e-3)


def test_emg_events_subject_and_time(tmp_path):
    trial = read_c3d(make_c3d(tmp_path / "e.c3d", first_frame=50), y_up=False)
    assert trial.emg_names == ("vasmed",)  # plate channels and the load cell are not EMG
    assert trial.emg_rate == pytest.approx(1000.0)
    assert trial.emg[7, 0] == pytest.approx(np.sin(1.0) * 1e-3, rel=1e-5)
    assert trial.time[0] == pytest.approx(0.5) and trial.emg_time[0] == pytest.approx(0.5)
    assert [(e.name, e.side, round(e.time, 3)) for e in trial.events] == [
        ("heel_strike", "right", 0.05), ("toe_off", "right", 0.14)]
    assert trial.subject == Subject("S7", mass=70.0, height=1.75)
    picked = read_c3d(tmp_path / "e.c3d", emg=["load cell"])
    assert picked.emg_names == ("load cell",)
    with pytest.raises(MissingChannelError):
        read_c3d(tmp_path / "e.c3d", emg=["nope"])


def test_no_force_plate_gives_zero_plates(tmp_path):
    trial = read_c3d(make_c3d(tmp_path / "np.c3d", plate=False))
    assert trial.plate_names == () and trial.forces.shape == (N, 0, 3)
    assert trial.up_axis == "y"  # Z assumed vertical without plates, then converted


def test_truncated_and_foreign_files_raise_input_file_error(tmp_path, c3d_file):
    data = c3d_file.read_bytes()
    cut = tmp_path / "cut.c3d"
    cut.write_bytes(data[: len(data) - 1200])
    with pytest.raises(InputFileError, match="truncated|not a readable"):
        read_c3d(cut)
    stub = tmp_path / "stub.c3d"
    stub.write_bytes(data[:600])
    with pytest.raises(InputFileError):
        read_c3d(stub)
    text = tmp_path / "notes.c3d"
    text.write_text("this is not a C3D file\n" * 40)
    with pytest.raises(InputFileError) as err:
        read_c3d(text)
    assert "\n" not in str(err.value) and str(text) in str(err.value)


def test_cli_inspect_reports_bad_files_and_goes_on(tmp_path, c3d_file, capsys):
    from gaitforce.cli import main

    bad = tmp_path / "bad.c3d"
    bad.write_text("garbage")
    assert main(["inspect", str(bad), str(c3d_file)]) == 1
    out, err = capsys.readouterr()
    assert "subject:  S7" in out and "frames:   20 at 100.0 Hz" in out
    assert err.count("bad.c3d") == 1 and "Traceback" not in err


def linear_trial():
    n, rate = 30, 100.0
    t = 0.2 + np.arange(n) / rate
    markers = np.stack([np.stack([t, np.full(n, 0.9), 0.1 * t], 1), np.stack([t, np.full(n, 0.1), -0.1 * t], 1)], 1)
    markers[4, 1] = np.nan
    forces = np.zeros((n, 1, 3))
    forces[:, 0] = np.stack([10 + 100 * t, 600 + 200 * t, -5 - 20 * t], 1)  # Y up, linear in time
    cop = np.zeros((n, 1, 3))
    cop[:, 0] = np.stack([0.5 + 0.3 * t, np.zeros(n), 0.2 - 0.1 * t], 1)
    moment = np.zeros((n, 1, 3))
    moment[:, 0, 1] = 2.0 + 3.0 * t
    emg_t = 0.2 + np.arange(n * 10) / 1000.0
    return Trial(
        time=t, markers=markers, marker_names=["M1", "M2"], forces=forces, cop=cop, free_moment=moment,
        plate_names=["FP1"], emg=np.cos(emg_t * 40)[:, None] * 1e-4, emg_time=emg_t, emg_names=["rf"],
        events=[Event("heel_strike", 0.25, "left")], subject=Subject("RT", mass=61.0, height=1.62),
    )


def test_write_read_round_trip(tmp_path):
    trial = linear_trial()
    back = read_c3d(write_c3d(tmp_path / "rt.c3d", trial))
    assert back.marker_names == trial.marker_names
    assert np.allclose(back.time, trial.time)
    assert np.allclose(back.markers, trial.markers, atol=1e-6, equal_nan=True)
    inner = slice(1, -1)  # edge frames average over a window padded with the edge sample
    assert np.allclose(back.forces[inner], trial.forces[inner], atol=1e-3)
    assert np.allclose(back.cop[inner], trial.cop[inner], atol=1e-6)
    assert np.allclose(back.free_moment[inner], trial.free_moment[inner], atol=1e-4)
    assert np.allclose(back.emg, trial.emg, atol=1e-9) and back.emg_names == ("rf",)
    assert [(e.name, e.side) for e in back.events] == [("heel_strike", "left")]
    assert back.events[0].time == pytest.approx(0.25, abs=1e-6)
    assert back.subject.mass == pytest.approx(61.0) and back.subject.height == pytest.approx(1.62)


def test_read_dispatch_names_source(tmp_path):
    from gaitforce.io import read

    bad = tmp_path / "x.c3d"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(GaitforceError) as err:
        read(bad)
    assert err.value.source == str(bad)


# -- files labs write: each failure class seen in other labs' C3Ds (tests/test_c3d_corpus.py reads the real ones) --
def _set_point_count(path, n_points):
    """Patch a written C3D so that it stores ``n_points`` points while POINT:LABELS keeps all its names, as in
    c3d.org sample01 (48 labels, 26 points). ezc3d refuses to write such a file, so the header word and POINT:USED
    are rewritten in place; with identical points per frame the shorter frame stride reads the same values."""
    data = bytearray(path.read_bytes())
    data[2:4] = int(n_points).to_bytes(2, "little")
    start = (data[0] - 1) * 512
    pos, point_group = start + 4, None
    while pos < len(data) - 2:
        nchar, gid = int.from_bytes(data[pos:pos + 1], "little", signed=True), int.from_bytes(data[pos + 1:pos + 2], "little", signed=True)
        if nchar == 0:
            break
        name = bytes(data[pos + 2:pos + 2 + abs(nchar)]).upper()
        offset_at = pos + 2 + abs(nchar)
        offset = int.from_bytes(data[offset_at:offset_at + 2], "little", signed=True)
        if gid < 0 and name == b"POINT":
            point_group = -gid
        elif point_group is not None and gid == point_group and name == b"USED":
            kind, ndims = int.from_bytes(data[offset_at + 2:offset_at + 3], "little", signed=True), data[offset_at + 3]
            assert kind == 2 and ndims == 0
            data[offset_at + 4:offset_at + 6] = int(n_points).to_bytes(2, "little")
            path.write_bytes(bytes(data))
            return path
        if offset == 0:
            break
        pos = offset_at + offset
    raise AssertionError("POINT:USED not found")


def test_more_labels_than_points_uses_the_first_labels(tmp_path):
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE]
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("A", "B", "C", "D")
    pts = np.ones((4, 4, N))
    pts[:3] = np.array([100.0, 200.0, 900.0])[:, None, None]
    pts[3] = 0.0
    c["data"]["points"] = pts
    c["data"]["meta_points"]["residuals"] = np.zeros((1, 4, N))
    c.write(str(tmp_path / "labels.c3d"))
    path = _set_point_count(tmp_path / "labels.c3d", 2)
    assert ezc3d.c3d(str(path))["data"]["points"].shape[1] == 2  # the situation of sample01: 4 labels, 2 points
    trial = read_c3d(path, y_up=False)
    assert trial.marker_names == ("A", "B")
    assert np.allclose(trial.marker("B"), [0.1, 0.2, 0.9])
    assert any("4 names for 2 points" in h for h in trial.history)


def _event_file(path, times, n_frames=300):
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE]
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("A",)
    c["data"]["points"] = np.ones((4, 1, n_frames))
    c.add_parameter("EVENT", "USED", [2])
    c.add_parameter("EVENT", "LABELS", ["Foot Strike", "Foot Off"])
    c.add_parameter("EVENT", "CONTEXTS", ["Right", "Left"])
    c.add_parameter("EVENT", "TIMES", times)
    c.write(str(path))
    return path


@pytest.mark.parametrize("layout", ["pairs", "2xn"])
def test_event_times_flat_or_2xn_give_the_same_events(tmp_path, layout):
    # the C3D stores (minutes, seconds) per event; a flat copy interleaves them. Read row-major, the flat
    # [0, 1.57, 0, 2.2] put events at 94 s in a 3 s trial.
    times = np.array([0.0, 1.57, 0.0, 2.2]) if layout == "pairs" else np.array([[0.0, 0.0], [1.57, 2.2]])
    path = _event_file(tmp_path / "ev.c3d", times)
    if layout == "pairs":
        assert np.asarray(ezc3d.c3d(str(path))["parameters"]["EVENT"]["TIMES"]["value"]).ndim == 1
    trial = read_c3d(path)
    assert [(e.name, e.side, round(e.time, 4)) for e in trial.events] == [
        ("heel_strike", "right", 1.57), ("toe_off", "left", 2.2)]
    assert all(trial.time[0] <= e.time <= trial.time[-1] for e in trial.events)


def _plate_without_analogs(path, with_markers=True):
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE]
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    if with_markers:
        c["parameters"]["POINT"]["LABELS"]["value"] = ("A",)
        c["data"]["points"] = np.ones((4, 1, N)) * 500.0
    else:
        c["data"]["points"] = np.ones((4, 0, N))
    for name, value in [("USED", [1]), ("TYPE", [1]), ("ZERO", [1, 0]), ("CHANNEL", np.arange(1, 7)[:, None])]:
        c.add_parameter("FORCE_PLATFORM", name, np.asarray(value, float))
        c["parameters"]["FORCE_PLATFORM"][name]["value"] = np.asarray(value, dtype=np.int64)
        c["parameters"]["FORCE_PLATFORM"][name]["type"] = 2
    c.add_parameter("FORCE_PLATFORM", "CORNERS", CORNERS_MM.T[:, :, None])
    c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, 1)))
    c.write(str(path))
    return path


def test_plates_without_analog_frames_give_the_markers_alone(tmp_path):
    # c3d.org sample28, 561xxa01: FORCE_PLATFORM declares plates, the file holds no analog samples
    path = _plate_without_analogs(tmp_path / "noanalog.c3d")
    trial = read_c3d(path, y_up=False)
    assert trial.marker_names == ("A",) and trial.n_frames == N
    assert trial.plate_names == () and trial.forces.shape == (N, 0, 3) and trial.cop.shape == (N, 0, 3)
    assert "no analog frames" in trial.meta["plate_error"]
    assert any("force plates not read" in h for h in trial.history)
    assert "no analog frames" in trial.summary()  # gaitforce inspect says why there are no plates


def test_plates_without_analog_frames_and_no_markers_is_one_clear_error(tmp_path):
    path = _plate_without_analogs(tmp_path / "nothing.c3d", with_markers=False)
    with pytest.raises(MissingChannelError) as err:
        read_c3d(path)
    line = str(err.value)
    assert "\n" not in line and "nothing.c3d" in line and "no analog frames" in line


def _calibrated_plate(path, unit, kind=4):
    """The fixture's plate stored as raw channels in ``unit`` plus a (non-symmetric) calibration matrix:
    CAL @ channels = the type-2 wrench in N and N mm."""
    make_c3d(path)
    c = ezc3d.c3d(str(path))
    rng = np.random.default_rng(3)
    cal = np.diag([2.0, 3.0, 4.0, 500.0, 600.0, 700.0]) + rng.normal(0.0, 0.3, (6, 6))
    analogs = c["data"]["analogs"].copy()
    analogs[0, :6] = np.linalg.solve(cal, plate_channels())
    c["data"]["analogs"] = analogs
    c["parameters"]["FORCE_PLATFORM"]["TYPE"]["value"] = np.array([kind])
    c.add_parameter("FORCE_PLATFORM", "CAL_MATRIX", cal[:, :, None])
    c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple([unit] * 6 + ["V", "V"])
    c.write(str(path))
    return path


@pytest.mark.parametrize("unit", ["V", "ADC", ""])
def test_plate_channels_in_volts_with_calibration_matrix(tmp_path, unit):
    # channels in V/ADC are raw: ezc3d's platform extraction applies CAL_MATRIX and gives N and N mm
    trial = read_c3d(_calibrated_plate(tmp_path / "cal.c3d", unit), y_up=False)
    inner = slice(LOADED.start + 1, LOADED.stop - 1)
    assert np.allclose(trial.forces[inner, 0], GRF, atol=0.05)
    assert np.allclose(trial.cop[inner, 0], COP_M, atol=1e-3)
    assert np.allclose(trial.free_moment[inner, 0], [0, 0, TZ], atol=0.05)
    assert any("calibrated output taken as N" in h for h in trial.history)
    assert trial.emg_names == ("vasmed",)
    platform = ezc3d.c3d(str(tmp_path / "cal.c3d"), extract_forceplat_data=True)["data"]["platform"][0]
    assert np.nanmax(trial.forces[:, 0, 2]) == pytest.approx(np.abs(platform["force"][2]).max(), rel=1e-3)


def test_unit_spellings_of_old_files(tmp_path):
    # c3d.org sample15 writes 'mete' (4-character units); sample01 'nt' / 'ntmm'; others 'Newtons'
    path = make_c3d(tmp_path / "spell.c3d", units="m", plate=False)
    c = ezc3d.c3d(str(path))
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mete"]
    c.write(str(path))
    assert np.allclose(read_c3d(path, y_up=False).marker("A"), [0.1, 0.2, 1.0])
    path = make_c3d(tmp_path / "nt.c3d")
    c = ezc3d.c3d(str(path))
    c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(["nt"] * 3 + ["ntmm"] * 3 + ["V", "V"])
    c.write(str(path))
    trial = read_c3d(path, y_up=False)
    assert np.allclose(trial.forces[10, 0], GRF, atol=1e-3)
    c["parameters"]["POINT"]["UNITS"]["value"] = ["furlong"]
    c.write(str(path))
    with pytest.raises(UnitError, match="furlong"):
        read_c3d(path)


def test_unit_factors():
    from gaitforce.io.units import (
        force_factor,
        length_factor,
        moment_factor,
        volt_factor,
    )

    assert [length_factor(u) for u in ("mm", "Millimeters", "mete", "m", "cm", "centim", "met", "", "V")] == [
        1e-3, 1e-3, 1.0, 1.0, 1e-2, 1e-2, None, None, None]
    assert [force_factor(u) for u in ("N", "nt", "Newtons", "kN", "V", "ADC")] == [1.0, 1.0, 1.0, 1e3, None, None]
    assert force_factor("lbf") == pytest.approx(4.4482216)
    for unit, want in [("Nmm", (1e-3, 1e-3)), ("N.mm", (1e-3, 1e-3)), ("ntmm", (1e-3, 1e-3)), ("N-M", (1.0, 1.0)),
                       ("Newton meters", (1.0, 1.0)), ("Nmete", (1.0, 1.0)), ("kN m", (1e3, 1.0))]:
        assert moment_factor(unit) == pytest.approx(want), unit
    assert moment_factor("V") is None and moment_factor("Newtons") is None
    assert volt_factor("Volts") == 1.0 and volt_factor("mV") == 1e-3 and volt_factor("N") is None


def test_force_channel_names_are_never_emg(tmp_path):
    # Qualisys and other systems name plate channels that FORCE_PLATFORM may not list, in volts
    force_like = ["FP1_FX", "PF2-FX", "TAPIS FZ1", "F1X1", "Force.Fz3", "CoPx", "Moment.Mz1"]
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("A",)
    c["data"]["points"] = np.ones((4, 1, N))
    labels = force_like + ["R_TA", "CH3", "vasmed"]
    c["parameters"]["ANALOG"]["RATE"]["value"] = [RATE * PER_FRAME]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
    c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(["V"] * len(labels))
    c["data"]["analogs"] = np.ones((1, len(labels), N * PER_FRAME)) * 1e-3
    c.write(str(tmp_path / "q.c3d"))
    trial = read_c3d(tmp_path / "q.c3d")
    assert trial.emg_names == ("R_TA", "vasmed")  # generic CHn channels are not EMG either
    from gaitforce.io.c3d import is_force_channel

    assert all(is_force_channel(name) for name in force_like)
    assert not any(is_force_channel(name) for name in ("R_TA", "EMG1", "vasmed", "L.Gastroc", "RTRE", "Pin 7"))


def test_plate_sign_not_fooled_by_an_unloaded_offset(tmp_path):
    # c3d.org sample02 FP2: a -12 N Fz offset plus shear offsets exceeds 20 N for most of the trial, while the
    # stance is short; the sign must follow the stance.
    path = make_c3d(tmp_path / "off.c3d")
    c = ezc3d.c3d(str(path))
    analogs = c["data"]["analogs"].copy()
    offset = np.array([15.0, -15.0, -14.0])  # plate axes (z down): -14 N reads as +14 N up, against the load
    stance = np.zeros(N * PER_FRAME, bool)
    stance[10 * PER_FRAME: LOADED.stop * PER_FRAME] = True  # a short stance: frames 10-14 of 20
    analogs[0, :6, ~stance] = 0.0
    for k in range(3):  # an amplifier's offset is there in every sample, loaded or not
        analogs[0, k, :] += offset[k]
    c["data"]["analogs"] = analogs
    c.write(str(path))
    trial = read_c3d(path, y_up=False)
    # the offset is measured on the unloaded samples and removed: the stance reads the true GRF, swing reads 0;
    # on the body in lab axes: plate x = -lab x, z down, then negated (force on plate -> on body)
    assert np.allclose(trial.forces[12, 0], GRF, atol=1e-3)
    assert np.allclose(trial.forces[:8, 0], 0.0, atol=1e-3)
    assert any("unloaded offset (15.0, 15.0, -14.0) N removed" in h for h in trial.history)


def test_a_standing_subject_is_not_taken_for_an_offset():
    from gaitforce.io.c3d_plates import zero_offset

    rate = 1000.0
    walk = np.full(3000, 21.0)  # unzeroed amplifier, then a step of ~800 N
    walk[1000:1600] += 800.0 * np.sin(np.linspace(0, np.pi, 600))
    assert zero_offset(walk, rate) == pytest.approx(21.0)
    assert zero_offset(walk - 21.0, rate) is None  # zeroed already: nothing to remove
    assert zero_offset(np.full(3000, 400.0), rate) is None  # standing on the plate the whole capture
    assert zero_offset(np.full(3000, 21.0), rate) is None  # never stepped on: no step to show it is an offset
    assert zero_offset(walk + 60.0, rate) is None  # 81 N is too large to be taken for an offset


def test_empty_and_tiny_files_one_line(tmp_path):
    empty = tmp_path / "Empty.c3d"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty file") as err:
        read_c3d(empty)
    assert "\n" not in str(err.value) and "Empty.c3d" in str(err.value)
    tiny = tmp_path / "tiny.c3d"
    tiny.write_bytes(b"\x02P" + b"\x00" * 100)
    with pytest.raises(InputFileError) as err:
        read_c3d(tiny)
    assert "\n" not in str(err.value) and "ignoreBadFormatting" not in str(err.value)
