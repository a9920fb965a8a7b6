"""OpenSim STO/MOT/TRC readers and writers: header parsing, column rules, units, GRF merge, round trips, OpenSim
4.6 loading and the real files of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaitforce import io as gio
from gaitforce.errors import GaitforceError, InputFileError, UnitError
from gaitforce.io.columns import column_unit
from gaitforce.io.sto import read_mot, read_sto_table
from gaitforce.io.trc import find_grf_sibling, read_trc
from gaitforce.io.writers import write_mot_grf, write_sto, write_trc
from gaitforce.trial import Trial


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------
def _sto(path: Path, header: str, labels, rows, sep="\t") -> Path:
    body = sep.join(labels) + "\n" + "\n".join(sep.join(f"{v:.10g}" for v in r) for r in rows) + "\n"
    path.write_text(header + body)
    return path


def _v1(name, n_rows, n_cols, in_degrees="no"):
    return f"{name}\nversion=1\nnRows={n_rows}\nnColumns={n_cols}\ninDegrees={in_degrees}\nendheader\n"


def _trc_text(names, rows, *, rate=100.0, units="mm", n_frames=None, sep="\t", time_fmt="{:.5f}", first_frame=1):
    m = len(names)
    n = len(rows) if n_frames is None else n_frames
    head = [
        "PathFileType\t4\t(X/Y/Z)\ttest.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate}\t{rate}\t{n}\t{m}\t{units}\t{rate}\t{first_frame}\t{n}",
        "Frame#\tTime\t" + "\t\t\t".join(names),
        "\t\t" + "\t".join(f"{a}{i}" for i in range(1, m + 1) for a in "XYZ"),
        "",
    ]
    body = []
    for i, values in enumerate(rows):
        cells = [str(first_frame + i), time_fmt.format(i / rate)]
        cells += ["" if v is None else f"{v:.6f}" for v in values]
        body.append(sep.join(cells))
    return "\n".join(head + body) + "\n"


def _body_markers(n, *, scale=1.0):
    """A 4-marker 'body' (head, pelvis, two feet) walking along +X at 1.2 m/s, in m times ``scale``."""
    t = np.arange(n) / 100.0
    base = np.array([[0.0, 1.70, 0.0], [0.0, 1.00, 0.10], [0.10, 0.05, 0.10], [-0.10, 0.05, -0.10]])
    xyz = base[None] + np.stack([1.2 * t, 0 * t, 0 * t], axis=1)[:, None, :]
    return xyz * scale


# --------------------------------------------------------------------------------------------------------
# read_sto_table
# --------------------------------------------------------------------------------------------------------
def test_sto_version1_header_and_values(tmp_path):
    p = _sto(tmp_path / "a.sto", _v1("Results", 3, 3, "yes"), ["time", "a", "b"], [[0, 1, 2], [0.01, 3, 4], [0.02, 5, 6]])
    df, h = read_sto_table(p)
    assert h["name"] == "Results" and h["version"] == 1 and h["nRows"] == 3 and h["nColumns"] == 3
    assert h["inDegrees"] is True
    assert list(df.columns) == ["time", "a", "b"]
    np.testing.assert_array_equal(df["b"].to_numpy(), [2, 4, 6])


def test_sto_version3_whitespace_and_blank_first_line(tmp_path):
    header = "\nDataType=double\nversion=3\nOpenSimVersion=4.5\nendheader\n"
    p = _sto(tmp_path / "b.sto", header, ["time", "x", "y"], [[0, 1.5, -2], [1, 2.5, -3]], sep="   ")
    df, h = read_sto_table(p)
    assert h["version"] == 3 and h["DataType"] == "double" and h["OpenSimVersion"] == "4.5"
    assert "inDegrees" not in h and "name" not in h
    np.testing.assert_array_equal(df.to_numpy(), [[0, 1.5, -2], [1, 2.5, -3]])


def test_sto_simm_style_header(tmp_path):
    header = "name C:/x/walk.mot\ndatacolumns 2\ndatarows 2\nrange 0.000000 0.010000\nendheader \n"
    p = _sto(tmp_path / "c.mot", header, ["time", "v"], [[0, 7], [0.01, 8]])
    df, h = read_sto_table(p)
    assert h["name"] == "C:/x/walk.mot" and h["nColumns"] == 2 and h["nRows"] == 2 and h["range"] == "0.000000 0.010000"
    assert df["v"].tolist() == [7, 8]


def test_sto_msvc_nan_spelling_reads_as_nan(tmp_path):
    p = tmp_path / "n.sto"
    p.write_text(_v1("x", 2, 2) + "time\tv\n0\t-nan(ind)\n1\t2\n")
    df, _ = read_sto_table(p)
    assert np.isnan(df["v"][0]) and df["v"][1] == 2


@pytest.mark.parametrize(
    "text, needle",
    [
        ("x\nversion=1\ntime\tv\n0\t1\n", "endheader"),
        (_v1("x", 3, 2) + "time\tv\n0\t1\n1\t2\n", "nRows=3"),
        (_v1("x", 2, 2) + "time\tv\n0\t1\n1\tabc\n", "numbers"),
        (_v1("x", 2, 3) + "time\tv\tv\n0\t1\t1\n1\t2\t2\n", "duplicate"),
        (_v1("x", 2, 2) + "time\tv\n0\t1\t5\n1\t2\t6\n", "columns"),
        ("x\nversion=1\ninDegrees=maybe\nendheader\ntime\tv\n0\t1\n", "inDegrees"),
        ("x\nversion=1\nendheader\n\n", "labels"),
    ],
)
def test_sto_malformed_is_one_line_input_error(tmp_path, text, needle):
    p = tmp_path / "bad.sto"
    p.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_sto_table(p)
    line = str(info.value)
    assert needle in line and "\n" not in line and str(p) in line


def test_sto_wrong_ncolumns_is_recorded_not_fatal(tmp_path):
    # OpenSim 4.6 loads files whose nColumns disagrees with the labels (walking-examples/opensim/coordinates.sto).
    p = _sto(tmp_path / "w.sto", _v1("x", 2, 5), ["time", "v"], [[0, 1], [1, 2]])
    _, h = read_sto_table(p)
    assert h["warnings"] == ["header nColumns=5 but 2 columns"]


def test_dispatch_names_the_file(tmp_path):
    p = tmp_path / "broken.mot"
    p.write_text("no header at all\n1 2 3\n")
    with pytest.raises(GaitforceError, match="broken.mot: no 'endheader'"):
        gio.read(p)


# --------------------------------------------------------------------------------------------------------
# read_mot: GRF families
# --------------------------------------------------------------------------------------------------------
FAMILIES = {
    # family name in the file -> (column makers v, p, torque), expected plate name, expected side
    "bare": (lambda a: f"ground_force_v{a}", lambda a: f"ground_force_p{a}", lambda a: f"ground_torque_{a}", "ground", None),
    "numpre": (lambda a: f"1_ground_force_v{a}", lambda a: f"1_ground_force_p{a}", lambda a: f"1_ground_torque_{a}", "1", None),
    "numin": (lambda a: f"ground_force_2_v{a}", lambda a: f"ground_force_2_p{a}", lambda a: f"ground_torque_2_{a}", "2", None),
    "sidepre": (lambda a: f"R_ground_force_v{a}", lambda a: f"R_ground_force_p{a}", lambda a: f"R_ground_torque_{a}", "R", "right"),
    "sidein": (lambda a: f"ground_force_l_v{a}", lambda a: f"ground_force_l_p{a}", lambda a: f"ground_torque_l_{a}", "l", "left"),
    "body": (lambda a: f"calcn_r_force_v{a}", lambda a: f"calcn_r_force_p{a}", lambda a: f"calcn_r_torque_{a}", "calcn_r", "right"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_mot_grf_family_becomes_one_plate(tmp_path, family):
    fv, fp, ft, name, side = FAMILIES[family]
    n = 11
    time = np.arange(n) / 1000.0
    fy = np.linspace(0, 800, n)  # first sample unloaded
    cols = {"time": time}
    for a, val in zip("xyz", (0.1 * fy, fy, -0.05 * fy)):
        cols[fv(a)] = val
    for a, val in zip("xyz", (0.3 + time, np.zeros(n), 0.2 + 0 * time)):
        cols[fp(a)] = val
    for a, val in zip("xyz", (0 * time, 0.01 * fy, 0 * time)):
        cols[ft(a)] = val
    cols["pelvis_tx"] = np.full(n, 0.5)
    p = write_sto(tmp_path / f"{family}_grf.mot", pd.DataFrame(cols), in_degrees=True)
    tr = read_mot(p)
    assert tr.plate_names == (name,)
    assert tr.meta.get("plate_sides", {}).get(name) == side
    np.testing.assert_allclose(tr.forces[:, 0, 1], fy)
    np.testing.assert_allclose(tr.forces[:, 0, 0], 0.1 * fy)
    np.testing.assert_allclose(tr.free_moment[:, 0, 1], 0.01 * fy)
    assert np.isnan(tr.cop[0, 0]).all()  # unloaded (0 N < 10 N)
    np.testing.assert_allclose(tr.cop[1:, 0, 0], 0.3 + time[1:])
    assert tr.units["pelvis_tx"] == "m" and tr.signals["pelvis_tx"][0] == 0.5  # translations never scaled
    assert tr.rate == pytest.approx(1000.0)


def test_mot_force_on_plate_is_negated_to_force_on_body(tmp_path):
    n = 5
    cols = {"time": np.arange(n) / 100.0}
    for a, s in zip("xyz", (10.0, -700.0, 5.0)):
        cols[f"ground_force_v{a}"] = np.full(n, s)
    for a in "xyz":
        cols[f"ground_force_p{a}"] = np.full(n, 0.1)
        cols[f"ground_torque_{a}"] = np.full(n, 2.0 if a == "y" else 0.0)
    tr = read_mot(write_sto(tmp_path / "raw.mot", pd.DataFrame(cols)))
    np.testing.assert_allclose(tr.forces[:, 0], np.tile([-10.0, 700.0, -5.0], (n, 1)))
    np.testing.assert_allclose(tr.free_moment[:, 0, 1], -2.0)
    assert any("negated" in h for h in tr.history)


def test_mot_origin_moments_become_free_moment(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    F = np.column_stack([rng.uniform(-100, 100, n), rng.uniform(300, 900, n), rng.uniform(-50, 50, n)])
    P = np.column_stack([rng.uniform(0, 0.5, n), np.zeros(n), rng.uniform(-0.5, 0, n)])
    free = np.column_stack([np.zeros(n), rng.uniform(-5, 5, n), np.zeros(n)])
    M = np.cross(P, F) + free
    cols = {"time": np.arange(n) / 200.0}
    for k, a in enumerate("xyz"):
        cols[f"ground_force_1_v{a}"] = F[:, k]
        cols[f"ground_force_1_p{a}"] = P[:, k]
        cols[f"ground_force_1_m{a}"] = M[:, k]
    tr = read_mot(write_sto(tmp_path / "m.mot", pd.DataFrame(cols)))
    np.testing.assert_allclose(tr.free_moment[:, 0], free, atol=1e-9)
    assert any("moments about the origin" in h for h in tr.history)


def test_mot_implausible_torque_is_nan_not_wrong(tmp_path):
    n = 10
    cols = {"time": np.arange(n) / 100.0}
    for a, f, p, t in zip("xyz", (0, 700, 0), (0.2, 0, 0.3), (300, 5, 200)):
        cols[f"ground_force_v{a}"] = np.full(n, float(f))
        cols[f"ground_force_p{a}"] = np.full(n, float(p))
        cols[f"ground_torque_{a}"] = np.full(n, float(t))
    tr = read_mot(write_sto(tmp_path / "t.mot", pd.DataFrame(cols)))
    assert np.isnan(tr.free_moment).all() and tr.meta["free_moment_unknown"] == ["ground"]
    np.testing.assert_allclose(tr.forces[:, 0, 1], 700)


def test_mot_time_must_increase(tmp_path):
    p = _sto(tmp_path / "dup.mot", _v1("x", 3, 2), ["time", "v"], [[0, 1], [0.01, 2], [0.01, 3]])
    with pytest.raises(InputFileError, match="strictly increasing at data row 3"):
        read_mot(p)


# --------------------------------------------------------------------------------------------------------
# read_mot: other columns, units
# --------------------------------------------------------------------------------------------------------
def test_mot_kinematics_degrees_to_rad(tmp_path):
    p = _sto(
        tmp_path / "walk_ik.mot",
        "Coordinates\nversion=1\nnRows=2\nnColumns=4\ninDegrees=yes\nendheader\n",
        ["time", "knee_angle_r", "pelvis_ty", "hip_flexion_r_u"],
        [[0, 90, 0.95, 180], [0.01, 45, 0.96, -90]],
    )
    tr = read_mot(p)
    np.testing.assert_allclose(tr.signals["knee_angle_r"], [np.pi / 2, np.pi / 4])
    np.testing.assert_allclose(tr.signals["pelvis_ty"], [0.95, 0.96])
    np.testing.assert_allclose(tr.signals["hip_flexion_r_u"], [np.pi, -np.pi / 2])
    assert tr.units == {"knee_angle_r": "rad", "pelvis_ty": "m", "hip_flexion_r_u": "rad/s"}
    assert tr.plate_names == ()


def test_mot_radians_file_is_not_converted(tmp_path):
    p = _sto(
        tmp_path / "coordinates.sto",
        "Coordinates\ninDegrees=no\nDataType=double\nversion=3\nendheader\n",
        ["time", "/jointset/walker_knee_r/knee_angle_r/value", "/jointset/ground_pelvis/pelvis_tx/value"],
        [[0, 1.0, 0.2], [0.01, 0.5, 0.3]],
    )
    tr = read_mot(p)
    assert tr.units == {"knee_angle_r": "rad", "pelvis_tx": "m"}
    np.testing.assert_allclose(tr.signals["knee_angle_r"], [1.0, 0.5])


@pytest.mark.parametrize(
    "label, kind, expected",
    [
        ("walker_knee_r_on_tibia_r_in_tibia_r_fy", "other", ("walker_knee_r_on_tibia_r_in_tibia_r_fy", "N", False)),
        ("walker_knee_r_on_tibia_r_in_tibia_r_mx", "other", ("walker_knee_r_on_tibia_r_in_tibia_r_mx", "N m", False)),
        ("hip_r_on_femur_r_in_femur_r_pz", "other", ("hip_r_on_femur_r_in_femur_r_pz", "m", False)),
        ("knee_angle_r_moment", "dynamics", ("knee_angle_r_moment", "N m", False)),
        ("pelvis_ty_force", "dynamics", ("pelvis_ty_force", "N", False)),
        ("soleus_r", "forces", ("soleus_r", "N", False)),
        ("knee_angle_r_coordAct", "forces", ("knee_angle_r_coordAct", "N m", False)),
        ("pelvis_tx_coordAct", "forces", ("pelvis_tx_coordAct", "N", False)),
        ("lumbar_ext", "forces", ("lumbar_ext", "N m", False)),
        ("MZ", "forces", ("MZ", "N m", False)),
        ("ground_GRF2_Fy", "forces", ("ground_GRF2_Fy", "N", False)),
        ("ground_GRF2_px", "forces", ("ground_GRF2_px", "m", False)),
        ("soleus", "emg", ("emg_soleus", "1", False)),
        ("vaslat.activation", "coordinates", ("vaslat.activation", "1", False)),
        ("knee_tx_u", "coordinates", ("knee_tx_u", "m/s", False)),
        ("knee_flexion", "coordinates", ("knee_flexion", "rad", True)),
        ("knee_flexion", "other", ("knee_flexion", "unknown", False)),
    ],
)
def test_column_unit_rules(label, kind, expected):
    assert column_unit(label, kind=kind) == expected


def test_emg_file_signals(tmp_path):
    p = _sto(tmp_path / "emg.sto", "Electromyography\nversion=1\nnRows=2\nnColumns=3\ninDegrees=no\nendheader\n",
             ["time", "soleus", "gastrocnemius"], [[0, 0.1, 0.2], [0.0005, 0.15, 0.25]])
    tr = read_mot(p)
    assert tr.units == {"emg_soleus": "1", "emg_gastrocnemius": "1"}
    assert tr.meta["file_kind"] == "emg"


# --------------------------------------------------------------------------------------------------------
# read_trc
# --------------------------------------------------------------------------------------------------------
def test_trc_header_units_and_values(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    xyz = _body_markers(5, scale=1000.0)
    p = tmp_path / "walk.trc"
    p.write_text(_trc_text(names, [list(r.reshape(-1)) for r in xyz]))
    tr = read_trc(p)
    assert tr.marker_names == tuple(names)
    np.testing.assert_allclose(tr.markers, xyz / 1000.0, atol=1e-9)
    h = tr.meta["trc_header"]
    assert h["DataRate"] == 100.0 and h["NumFrames"] == 5 and h["NumMarkers"] == 4 and h["Units"] == "mm"
    assert h["CameraRate"] == 100.0 and h["OrigDataRate"] == 100.0
    assert tr.up_axis == "y" and tr.rate == pytest.approx(100.0)


def test_trc_cm_and_missing_cells(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(4, scale=100.0)]
    rows[1][3:6] = [None, None, None]  # Pelvis missing in frame 1 (empty cells)
    rows[2][6:9] = [0.0, 0.0, 0.0]  # RToe exact zeros: a missing-marker placeholder
    p = tmp_path / "gaps.trc"
    p.write_text(_trc_text(names, rows, units="cm"))
    tr = read_trc(p)
    assert np.isnan(tr.markers[1, 1]).all() and np.isnan(tr.markers[2, 2]).all()
    assert np.isfinite(tr.markers[3]).all()
    assert tr.markers[0, 0, 1] == pytest.approx(1.70)
    assert tr.meta["zero_markers_as_missing"] == 1
    # cells omitted rather than left empty (a truncated row) are an error, not markers silently missing (issue 14)
    rows[3] = rows[3][:9]
    p.write_text(_trc_text(names, rows, units="cm"))
    with pytest.raises(InputFileError, match="data row 4 has 11 cells, expected 14"):
        read_trc(p)


def test_trc_rounded_time_column_uses_header_rate(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(7, scale=1000.0)]
    p = tmp_path / "r60.trc"
    p.write_text(_trc_text(names, rows, rate=60.0, time_fmt="{:.3f}", first_frame=1))
    tr = read_trc(p)
    np.testing.assert_allclose(tr.time, np.arange(7) / 60.0, atol=1e-12)


def test_trc_time_disagreeing_with_rate_is_an_error(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(5, scale=1000.0)]
    text = _trc_text(names, rows, rate=100.0).replace("\n3\t0.02000", "\n3\t0.05000")
    p = tmp_path / "t.trc"
    p.write_text(text)
    with pytest.raises(InputFileError, match="Time column disagrees with DataRate=100"):
        read_trc(p)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda s: s.replace("\t5\t4\tmm", "\t9\t4\tmm"), "NumFrames=9"),
        (lambda s: s.replace("\t5\t4\tmm", "\t5\t3\tmm"), "NumMarkers=3"),
        (lambda s: s.replace("\tmm\t", "\tinch\t"), "Units='inch'"),
        (lambda s: s.replace("PathFileType", "Whatever"), "PathFileType"),
        (lambda s: s.replace("1700.000000", "17o0.000000", 1), "numbers"),
    ],
)
def test_trc_malformed(tmp_path, mutate, needle):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(5, scale=1000.0)]
    p = tmp_path / "bad.trc"
    p.write_text(mutate(_trc_text(names, rows)))
    with pytest.raises(InputFileError, match=needle) as info:
        read_trc(p)
    assert str(p) in str(info.value)


def test_trc_in_mm_labelled_m_is_a_unit_error_naming_the_file(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(5, scale=1000.0)]  # mm values
    p = tmp_path / "mislabelled.trc"
    p.write_text(_trc_text(names, rows, units="m"))
    with pytest.raises(UnitError, match="millimetres labelled as metres") as info:
        read_trc(p)
    assert info.value.source == str(p)
    with pytest.raises(UnitError, match="mislabelled.trc"):
        gio.read(p)


def test_trc_small_offsets_in_mm_labelled_m_still_caught(tmp_path):
    # Coordinates under 20 (so no absolute check fires) but a body 1700 'm' tall.
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(5, scale=10.0)]
    p = tmp_path / "tall.trc"
    p.write_text(_trc_text(names, rows, units="m"))
    with pytest.raises(UnitError, match="not a human body"):
        read_trc(p)


def test_trc_in_m_labelled_mm_is_a_unit_error(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    rows = [list(r.reshape(-1)) for r in _body_markers(5)]
    p = tmp_path / "tiny.trc"
    p.write_text(_trc_text(names, rows, units="mm"))
    with pytest.raises(UnitError, match="metres labelled as millimetres"):
        read_trc(p)


def test_trc_z_up_lab_is_detected(tmp_path):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    xyz = _body_markers(5, scale=1000.0)[:, :, [0, 2, 1]]  # height moved to Z
    p = tmp_path / "zup.trc"
    p.write_text(_trc_text(names, [list(r.reshape(-1)) for r in xyz]))
    tr = read_trc(p)
    assert tr.up_axis == "z"
    np.testing.assert_allclose(tr.to_y_up().markers[0, 0, 1], 1.70)


# --------------------------------------------------------------------------------------------------------
# GRF merge
# --------------------------------------------------------------------------------------------------------
def _grf_file(path, time, fy, *, cop_x=None):
    n = time.size
    cols = {"time": time}
    for a, val in zip("xyz", (np.zeros(n), fy, np.zeros(n))):
        cols[f"ground_force_r_v{a}"] = val
    cop_x = 0.1 * time if cop_x is None else cop_x
    for a, val in zip("xyz", (cop_x, np.zeros(n), np.full(n, 0.2))):
        cols[f"ground_force_r_p{a}"] = val
    for a in "xyz":
        cols[f"ground_torque_r_{a}"] = 0.01 * fy if a == "y" else np.zeros(n)
    return write_sto(path, pd.DataFrame(cols))


def _markers_file(path, n, rate=100.0):
    names = ["Head", "Pelvis", "RToe", "LToe"]
    path.write_text(_trc_text(names, [list(r.reshape(-1)) for r in _body_markers(n, scale=1000.0)], rate=rate))
    return path


def test_merge_window_mean_of_a_ramp(tmp_path):
    trc = _markers_file(tmp_path / "walk_new.trc", 20)
    tg = np.arange(0, 0.25, 0.001)
    _grf_file(tmp_path / "walk_grf.sto", tg, 500 + 1000 * tg)
    tr = read_trc(trc, grf="auto")
    assert tr.meta["grf_source"].endswith("walk_grf.sto")
    assert tr.plate_names == ("r",) and tr.meta["plate_sides"] == {"r": "right"}
    # 10 samples in [t - 5 ms, t + 5 ms): their mean is the ramp at t - 0.5 ms (frame 0 has only t >= 0: 5 samples)
    t = tr.time
    np.testing.assert_allclose(tr.forces[1:, 0, 1], 500 + 1000 * (t[1:] - 0.0005), rtol=1e-9)
    np.testing.assert_allclose(tr.forces[0, 0, 1], 500 + 1000 * 0.002)
    np.testing.assert_allclose(tr.free_moment[1:, 0, 1], 0.01 * (500 + 1000 * (t[1:] - 0.0005)), rtol=1e-9)
    assert any("window mean 1000 Hz -> 100 Hz" in h for h in tr.history)


def test_merge_cop_is_force_weighted_and_nan_when_unloaded(tmp_path):
    trc = _markers_file(tmp_path / "s.trc", 5)
    tg = np.arange(0, 0.05, 0.005)  # 200 Hz: two samples per 100 Hz frame
    fy = np.array([0, 0, 0, 0, 100, 300, 300, 300, 0, 0], float)
    cop = np.array([9, 9, 9, 9, 1.0, 2.0, 0.5, 0.5, 9, 9])
    grf = _grf_file(tmp_path / "s_grf.mot", tg, fy, cop_x=cop)
    tr = read_trc(trc, grf=grf)
    # frame 2 (window 15-25 ms) holds samples at 15 ms (F=0) and 20 ms (F=100): mean F 50, CoP 1.0 (weighted)
    # frame 3 (25-35 ms): F 300 and 300 -> CoP (2.0 + 0.5)/2 ; frame 0: unloaded -> NaN
    np.testing.assert_allclose(tr.forces[:, 0, 1], [0, 0, 50, 300, 150])
    np.testing.assert_allclose(tr.cop[2:4, 0, 0], [1.0, 1.25])
    assert np.isnan(tr.cop[0, 0]).all() and np.isnan(tr.cop[1, 0]).all()


def test_merge_cop_ignores_samples_below_the_cop_threshold(tmp_path):
    # a window holding a lightly loaded sample (5 N: CoP NaN in the file reader) and a loaded one (CoP 1.0 m):
    # the frame's CoP is the loaded sample's, not pulled towards the origin by the unknown CoP's weight
    trc = _markers_file(tmp_path / "edge.trc", 5)
    tg = np.arange(0, 0.05, 0.005)
    fy = np.array([0, 0, 0, 5, 300, 300, 300, 300, 0, 0], float)
    cop = np.array([9, 9, 9, 7.0, 1.0, 1.0, 1.0, 1.0, 9, 9])
    grf = _grf_file(tmp_path / "edge_grf.mot", tg, fy, cop_x=cop)
    tr = read_trc(trc, grf=grf)
    # frame 2 (15-25 ms): samples 15 ms (5 N, CoP unknown) and 20 ms (300 N, CoP 1.0): mean F 152.5, CoP 1.0
    np.testing.assert_allclose(tr.forces[2, 0, 1], 152.5)
    np.testing.assert_allclose(tr.cop[2, 0, 0], 1.0)


def test_merge_interpolates_a_slower_grf_and_leaves_uncovered_frames_nan(tmp_path):
    trc = _markers_file(tmp_path / "slow.trc", 10)
    tg = np.arange(0, 0.061, 0.02)  # 50 Hz, ends at 60 ms
    grf = _grf_file(tmp_path / "slow_grf.mot", tg, 400 + 2000 * tg)
    tr = read_trc(trc, grf=grf)
    t = tr.time
    inside = t <= 0.06 + 1e-12
    np.testing.assert_allclose(tr.forces[inside, 0, 1], 400 + 2000 * t[inside])
    assert np.isnan(tr.forces[~inside]).all() and tr.meta["grf_coverage"] == pytest.approx(0.7)


def test_merge_without_overlap_is_an_error(tmp_path):
    trc = _markers_file(tmp_path / "late.trc", 5)
    grf = _grf_file(tmp_path / "late_grf.mot", 10 + np.arange(0, 0.1, 0.001), np.full(100, 700.0))
    with pytest.raises(InputFileError, match="does not overlap"):
        read_trc(trc, grf=grf)


def test_auto_without_sibling_gives_markers_only(tmp_path):
    trc = _markers_file(tmp_path / "alone.trc", 5)
    tr = read_trc(trc, grf="auto")
    assert tr.plate_names == () and tr.meta["grf_source"] is None


def test_sibling_rules(tmp_path):
    for name in ("DM_x_grf.sto", "subj_walk_grf_filt.sto", "subj_walk_grf_raw.sto", "grf_walk.mot", "PS_a_kinetics.mot"):
        (tmp_path / name).write_text("")
    assert find_grf_sibling(tmp_path / "DM_x_new.trc").name == "DM_x_grf.sto"
    assert find_grf_sibling(tmp_path / "subj_walk.trc").name == "subj_walk_grf_filt.sto"  # filtered before raw
    assert find_grf_sibling(tmp_path / "markers_walk.trc").name == "grf_walk.mot"
    assert find_grf_sibling(tmp_path / "PS_a.trc").name == "PS_a_kinetics.mot"
    assert find_grf_sibling(tmp_path / "other.trc") is None


# --------------------------------------------------------------------------------------------------------
# writers: round trips
# --------------------------------------------------------------------------------------------------------
def test_write_sto_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"time": np.arange(50) / 120.0, "a": rng.normal(size=50), "b c": rng.normal(size=50) * 1e5})
    df.loc[3, "a"] = np.nan
    p = write_sto(tmp_path / "rt.sto", df, name="rt", in_degrees=True)
    back, h = read_sto_table(p)
    assert h["name"] == "rt" and h["inDegrees"] is True and h["nRows"] == 50 and h["nColumns"] == 3
    pd.testing.assert_frame_equal(back, df, rtol=1e-14, atol=0)


def test_write_sto_rejects_bad_input(tmp_path):
    with pytest.raises(GaitforceError, match="'time' column"):
        write_sto(tmp_path / "x.sto", pd.DataFrame({"a": [1.0]}))
    with pytest.raises(GaitforceError, match="strictly increasing"):
        write_sto(tmp_path / "x.sto", pd.DataFrame({"time": [0.0, 0.0], "a": [1.0, 2.0]}))


def _walk_trial(n=30, rate=120.0):
    rng = np.random.default_rng(2)
    t = 0.5 + np.arange(n) / rate
    markers = _body_markers(n) + rng.normal(scale=0.002, size=(n, 4, 3))
    markers[4, 1] = np.nan
    fy = np.clip(900 * np.sin(np.linspace(-0.3, 3.5, n)), 0, None)
    forces = np.zeros((n, 2, 3))
    forces[:, 0, 1] = fy
    forces[:, 0, 0] = 0.1 * fy
    forces[:, 1, 1] = fy[::-1]
    cop = np.zeros((n, 2, 3))
    cop[:, 0, 0] = 0.3 + 0.01 * np.arange(n)
    cop[:, 1, 2] = 0.2
    cop[forces[:, :, 1] < 10] = np.nan
    free = np.zeros((n, 2, 3))
    free[:, :, 1] = 0.005 * forces[:, :, 1]
    return Trial(time=t, markers=markers, marker_names=("Head", "Pelvis", "RToe", "LToe"), forces=forces, cop=cop,
                 free_moment=free, plate_names=("left plate", "right plate"))


@pytest.mark.parametrize("units", ["mm", "m"])
def test_write_trc_round_trip(tmp_path, units):
    tr = _walk_trial()
    back = read_trc(write_trc(tmp_path / "rt.trc", tr, units=units))
    assert back.marker_names == tr.marker_names
    np.testing.assert_allclose(back.time, tr.time, atol=1e-9)
    np.testing.assert_allclose(back.markers, tr.markers, atol=1e-9, equal_nan=True)
    assert back.meta["trc_header"]["Units"] == units and back.meta["trc_header"]["DataRate"] == pytest.approx(120.0)


def test_write_trc_turns_a_z_up_trial_to_y_up(tmp_path):
    tr = _walk_trial().to_z_up()
    back = read_trc(write_trc(tmp_path / "z.trc", tr))
    assert back.up_axis == "y"
    np.testing.assert_allclose(back.markers, tr.to_y_up().markers, atol=1e-9, equal_nan=True)


def test_write_mot_grf_round_trip(tmp_path):
    tr = _walk_trial()
    p = write_mot_grf(tmp_path / "rt_grf.mot", tr)
    _, h = read_sto_table(p)
    back = read_mot(p)
    assert back.plate_names == ("1", "2")  # names with spaces fall back to 1-based indices
    np.testing.assert_allclose(back.time, tr.time, atol=1e-12)
    np.testing.assert_allclose(back.forces, tr.forces, atol=1e-9)
    np.testing.assert_allclose(back.cop, tr.cop, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(back.free_moment, tr.free_moment, atol=1e-9)
    labels = list(read_sto_table(p)[0].columns)
    assert labels[1:4] == ["1_ground_force_vx", "1_ground_force_vy", "1_ground_force_vz"]
    assert "2_ground_torque_y" in labels


@pytest.mark.parametrize("names", [("1", "2"), ("r", "l"), ("ground", "1"), ("calcn_r", "calcn_l")])
def test_write_mot_grf_keeps_token_plate_names(tmp_path, names):
    tr = _walk_trial()
    tr = tr.replace(plate_names=names)
    back = read_mot(write_mot_grf(tmp_path / "names.mot", tr))
    assert back.plate_names == names
    np.testing.assert_allclose(back.forces, tr.forces, atol=1e-9)


def test_write_mot_grf_refuses_nan_forces(tmp_path):
    tr = _walk_trial()
    f = tr.forces.copy()
    f[3, 0, 1] = np.nan
    with pytest.raises(GaitforceError, match="NaN in 1 frames"):
        write_mot_grf(tmp_path / "nan.mot", tr.replace(forces=f))


def test_merge_written_files_reproduces_the_trial(tmp_path):
    tr = _walk_trial()
    write_trc(tmp_path / "w.trc", tr)
    write_mot_grf(tmp_path / "w_grf.mot", tr)
    back = read_trc(tmp_path / "w.trc", grf="auto")  # equal rates: interpolation at the same instants
    np.testing.assert_allclose(back.forces, tr.forces, atol=1e-9)
    np.testing.assert_allclose(back.cop, tr.cop, atol=1e-9, equal_nan=True)


# --------------------------------------------------------------------------------------------------------
# OpenSim 4.6 loads what we write
# --------------------------------------------------------------------------------------------------------
@pytest.mark.opensim
def test_opensim_loads_written_files(tmp_path):
    osim = pytest.importorskip("opensim")
    tr = _walk_trial()
    trc = write_trc(tmp_path / "o.trc", tr)
    grf = write_mot_grf(tmp_path / "o_grf.mot", tr)
    df = pd.DataFrame({"time": tr.time, "knee_angle_r": np.linspace(0, 1, tr.n_frames)})
    sto = write_sto(tmp_path / "o.sto", df, name="coords")

    table = osim.TimeSeriesTable(str(sto))
    assert table.getNumRows() == tr.n_frames and list(table.getColumnLabels()) == ["knee_angle_r"]
    assert table.getDependentColumn("knee_angle_r").to_numpy()[-1] == pytest.approx(1.0)

    vec3 = osim.TimeSeriesTableVec3(str(trc))
    assert list(vec3.getColumnLabels()) == list(tr.marker_names)
    assert vec3.getTableMetaDataAsString("Units") == "mm"
    head = vec3.getDependentColumn("Head")
    assert head[0].get(1) == pytest.approx(tr.markers[0, 0, 1] * 1000, abs=1e-6)
    assert np.isnan(vec3.getDependentColumn("Pelvis")[4].get(0))  # empty cells -> NaN

    forces = osim.TimeSeriesTable(str(grf))
    assert forces.getNumColumns() == 18
    vy = forces.getDependentColumn("1_ground_force_vy").to_numpy()
    np.testing.assert_allclose(vy, tr.forces[:, 0, 1], atol=1e-9)
    storage = osim.Storage(str(grf))  # the class ExternalLoads reads
    assert storage.getSize() == tr.n_frames


# --------------------------------------------------------------------------------------------------------
# real files
# --------------------------------------------------------------------------------------------------------
REAL_DIRS = ("walking-examples", "grand-challenge/gc6-dm-trc", "grand-challenge/gc5-ps-opensim")


@pytest.mark.realdata
def test_every_real_opensim_file_reads(shared_data):
    files = sorted(
        p for d in REAL_DIRS for p in (shared_data / d).rglob("*") if p.suffix.lower() in (".trc", ".mot", ".sto")
    )
    assert len(files) >= 75
    failures = []
    for p in files:
        try:
            tr = gio.read(p)
        except GaitforceError as err:
            failures.append(err.line())
            continue
        assert tr.n_frames > 1 and all(tr.units[k] for k in tr.signals), p
    assert failures == []


@pytest.mark.realdata
@pytest.mark.parametrize(
    "trc, mass",
    [
        ("grand-challenge/gc6-dm-trc/DM_ngait_og1_new.trc", 70.0),  # DM, competitions/*.mat
        ("grand-challenge/gc5-ps-opensim/PS_ngait_og_ss1.trc", 75.0),  # PS, competitions/*.mat
        ("walking-examples/opensim/markers_walk.trc", 85.0668),  # rajagopal2015 subject json
        ("walking-examples/addbiomechanics/opencap_test_original_walking1_markers.trc", 75.7),
    ],
)
def test_real_grf_peaks_are_walking_like(shared_data, trc, mass):
    tr = read_trc(shared_data / trc, grf="auto")
    assert tr.meta["grf_source"] is not None and tr.up_axis == "y"
    peaks = np.nanmax(tr.forces[:, :, 1], axis=0) / (mass * 9.81)
    loaded = peaks[peaks > 0.5]
    assert loaded.size >= 2 and np.all((loaded > 1.0) & (loaded < 1.3)), peaks


@pytest.mark.realdata
def test_real_known_facts(shared_data):
    ex = shared_data / "walking-examples" / "opensim"
    mw = read_trc(ex / "markers_walk.trc")
    assert mw.meta["trc_header"]["DataRate"] == 100.0 and mw.n_frames == 238 and len(mw.marker_names) == 41
    assert mw.meta["trc_header"]["Units"] == "mm" and 0.8 < np.nanmax(mw.markers[:, :, 1]) < 2.0  # m, Y up
    grf = read_mot(ex / "grf_walk.mot")
    assert grf.meta["rate"] == pytest.approx(2000.0) and grf.meta["plate_sides"] == {"r": "right", "l": "left"}
    s01 = read_trc(ex / "subject01_walk1.trc")
    assert s01.rate == pytest.approx(60.0)
    kin = read_mot(shared_data / "grand-challenge/gc5-ps-opensim/PS_ngait_og_ss1_kinematics.mot")
    knee = np.rad2deg(np.nanmax(kin.signal("knee_angle_r")))
    assert kin.units["knee_angle_r"] == "rad" and 50 < knee < 75  # swing knee flexion in walking, deg
    raw = read_mot(shared_data / "grand-challenge/gc6-dm-trc/DM_ngait_tm_ss1_grf_raw.sto")
    assert np.nanmax(raw.forces[:, :, 1]) > 600  # force-on-plate export turned into force on the body
