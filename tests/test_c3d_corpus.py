"""Conformance of read_c3d over C3D files from other labs and systems (``../shared/data/c3d-corpus``: BTKData's
Vicon Plug-in Gait files, c3d.org samples of many vendors and processor formats, other lab files; see its README).

Every file must give either a Trial that satisfies basic invariants, or one GaitforceError line naming the file;
never another exception. ``EXPECTED`` holds the measured outcome of each file (docs/c3d-corpus.md) as known
answers. Skipped where ../shared/data is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

from gaitforce import Trial
from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.io import read
from gaitforce.io.c3d import is_force_channel

pytestmark = pytest.mark.realdata

CORPUS = SHARED / "c3d-corpus"
FILES = sorted(p.name for p in CORPUS.glob("*") if p.suffix.lower() == ".c3d") if CORPUS.is_dir() else []

#: file -> (markers, plates, frame rate, EMG channels) of the Trial, or (error class, words of its line)
EXPECTED = {
    "PiG_PiG_Calibration3_FF.c3d": (52, 0, 100.0, 0),
    "PiG_PiG_Motion-FlatFoot-Hole.c3d": (113, 2, 100.0, 10),
    "PiG_PiG_Motion-FlatFoot-One.c3d": (113, 2, 100.0, 10),
    "PiG_PiG_Motion3_noFF.c3d": (52, 3, 100.0, 16),
    "c3d.org_sample01_Eb015pr.c3d": (26, 2, 50.0, 0),
    "c3d.org_sample01_Eb015vr.c3d": (26, 2, 50.0, 0),
    "c3d.org_sample02_Dec_real.c3d": (36, 2, 50.0, 0),
    "c3d.org_sample02_sgi_int.c3d": (InputFileError, "MIPS"),
    "c3d.org_sample04_sub_labels.c3d": (86, 2, 60.0, 16),
    "c3d.org_sample09_PlugInC3D.c3d": (54, 2, 60.0, 16),
    "c3d.org_sample10_TYPE-2.C3D": (13, 1, 60.0, 0),
    "c3d.org_sample10_TYPE-4.C3D": (13, 1, 60.0, 0),
    "c3d.org_sample10_type-2a.c3d": (21, 2, 60.0, 8),
    "c3d.org_sample15_FP1.C3D": (8, 1, 60.0, 0),
    "c3d.org_sample15_FP2.C3D": (8, 1, 60.0, 0),
    "c3d.org_sample28_dynamic.C3D": (26, 0, 100.0, 0),
    "c3d.org_sample28_standing.C3D": (28, 0, 100.0, 0),
    "others_561xxa01_anonym.C3D": (26, 0, 100.0, 0),
    "others_ADemo1_rewrite_c3d_pc_float.c3d": (24, 1, 200.0, 8),
    "others_Empty.c3d": (InputFileError, "empty file"),
}


def _read(name: str):
    """The Trial, or the GaitforceError; any other exception fails the test."""
    try:
        return read(CORPUS / name)
    except GaitforceError as err:
        return err


def _ezc3d_platforms(name: str):
    import ezc3d

    return ezc3d.c3d(str(CORPUS / name), extract_forceplat_data=True)["data"]["platform"]


@pytest.mark.parametrize("name", FILES or ["(corpus absent)"])
def test_every_file_gives_a_trial_or_one_clear_line(shared_data, name):
    result = _read(name)
    if isinstance(result, GaitforceError):
        line = str(result)
        assert "\n" not in line and name in line, line
        assert "Traceback" not in line and "ignoreBadFormatting" not in line and "GitHub" not in line
        return
    trial = result
    assert isinstance(trial, Trial)
    t = trial.time
    assert trial.n_frames >= 2 and np.isfinite(t).all() and np.all(np.diff(t) > 0)
    assert trial.rate > 0
    m, p = len(trial.marker_names), len(trial.plate_names)
    assert trial.markers.shape == (trial.n_frames, m, 3)
    for arr in (trial.forces, trial.cop, trial.free_moment):
        assert arr.shape == (trial.n_frames, p, 3)
    assert m or p, "a trial without markers or plates"
    # markers in metres: a lab fits in 20 m, and a body is taller than 5 cm
    finite = trial.markers[np.isfinite(trial.markers)]
    if finite.size:
        assert 0.05 < np.abs(finite).max() < 20.0
    assert trial.up_axis == "y"
    if p:
        assert np.isfinite(trial.forces).all() and np.isfinite(trial.free_moment).all()
        fy = trial.forces[..., 1]
        assert 100.0 < fy.max() < 5000.0, f"peak vertical GRF {fy.max():.0f} N"  # a person, in N
        assert fy.max() > -fy.min()  # the ground pushes up
        loaded = fy > 20.0
        assert not np.isfinite(trial.cop[~loaded]).any()  # no CoP on an unloaded plate
    # EMG: own time base, never a force/moment/CoP channel
    assert trial.emg.shape == (trial.emg_time.size, len(trial.emg_names))
    assert not [e for e in trial.emg_names if is_force_channel(e)]
    # events on the trial's clock, within it
    times = [e.time for e in trial.events] + [o["time"] for o in trial.meta["other_events"]]
    margin = 1.0 / trial.rate
    assert all(t[0] - margin <= x <= t[-1] + margin for x in times), (times, t[0], t[-1])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_known_outcome(shared_data, name):
    if not (CORPUS / name).exists():
        pytest.skip(f"{name} not in the corpus")
    result, want = _read(name), EXPECTED[name]
    if isinstance(want[0], type):
        assert isinstance(result, want[0]) and want[1] in result.message, result
        return
    assert isinstance(result, Trial), result
    n_markers, n_plates, rate, n_emg = want
    assert (len(result.marker_names), len(result.plate_names), len(result.emg_names)) == (n_markers, n_plates, n_emg)
    assert result.rate == pytest.approx(rate, rel=1e-6)


@pytest.mark.parametrize("name", [n for n, w in EXPECTED.items() if not isinstance(w[0], type) and w[1]])
def test_plate_peaks_match_ezc3d(shared_data, name):
    """Each plate's peak vertical GRF equals ezc3d's platform output (calibrated by ezc3d) up to the frame-window
    average (the peak of a 1 kHz signal averaged over a frame is a little lower)."""
    trial = read(CORPUS / name)
    platforms = _ezc3d_platforms(name)
    for p, pf in enumerate(platforms):
        ours = trial.forces[:, p, 1].max()
        theirs = np.abs(np.asarray(pf["force"])[2]).max()
        assert ours == pytest.approx(theirs, rel=0.05), (trial.plate_names[p], ours, theirs)


def test_sample15_plate_in_mete_units_read(shared_data):
    # 'mete' (POINT:UNITS) and 'Newtons' plate channels: refused before, now read as m and N
    trial = read(CORPUS / "c3d.org_sample15_FP1.C3D")
    theirs = np.abs(_ezc3d_platforms("c3d.org_sample15_FP1.C3D")[0]["force"][2]).max()
    assert trial.forces[:, 0, 1].max() == pytest.approx(theirs, rel=0.02)
    assert 250.0 < theirs < 320.0
    assert 1.0 < np.nanmax(np.abs(trial.markers)) < 3.0  # metres, not mm
    # the Kistler plate has no sensor offsets (ORIGIN a = b = 0): ezc3d's CoP would sit at the plate centre
    assert not np.isfinite(trial.cop).any()
    assert any("CoP unknown" in h for h in trial.history)


def test_adc_plate_and_codacs_emg(shared_data):
    # CODA (Charnwood) file: plate channels in 'ADC' are calibrated by ezc3d, the muscles are EMG, F1X1... not
    trial = read(CORPUS / "others_ADemo1_rewrite_c3d_pc_float.c3d")
    assert trial.emg_names[:4] == ("R.Quads", "R.Med.Hams", "R.Ant.Tib", "R.Gastroc")
    assert 600.0 < trial.forces[:, 0, 1].max() < 700.0


def test_labels_beyond_points_and_plates_without_analogs(shared_data):
    t01 = read(CORPUS / "c3d.org_sample01_Eb015pr.c3d")
    assert t01.marker_names[:3] == ("RFT1", "RFT2", "RFT3") and len(t01.marker_names) == 26
    t28 = read(CORPUS / "c3d.org_sample28_dynamic.C3D")
    assert t28.plate_names == () and "no analog frames" in t28.meta["plate_error"]


def test_event_times_within_trial(shared_data):
    trial = read(CORPUS / "PiG_PiG_Motion3_noFF.c3d")
    assert len(trial.events) == 12
    assert trial.time[0] <= min(e.time for e in trial.events) and max(e.time for e in trial.events) <= trial.time[-1]


def test_inspect_over_the_corpus(shared_data, capsys):
    from gaitforce.cli import main

    errors = [n for n, w in EXPECTED.items() if isinstance(w[0], type) and (CORPUS / n).exists()]
    assert main(["inspect", "--no-stances", str(CORPUS)]) == (1 if errors else 0)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("gaitforce: error:")]
    assert len(lines) == len(errors) and "Traceback" not in err + out
    assert "plates:   none (not read: 1 plate(s) declared but no analog frames)" in out
