"""One conformance test for every reader (MNE-style): each entry of ``CASES`` names a real file and the facts its
Trial must show. To add a reader's files, append ``Case(...)`` entries (or a small builder returning them).

A case is checked for: the sample rate, markers (count and/or a subset of names), SI units (pelvis height on the
vertical axis after Y-up conversion, GRF magnitude near body weight in mid-stance), extra signal peaks (e.g. a
knee force from an attached CSV), and a write/read round trip where the format has a writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from gaitforce import Trial
from gaitforce.io import read

pytestmark = pytest.mark.realdata


@dataclass(frozen=True)
class Case:
    path: str  #: relative to the shared data folder
    rate: float  #: kinematic frame rate, Hz
    n_markers: int | None = None
    markers: tuple[str, ...] = ()  #: a subset of marker names that must be present
    pelvis: tuple[str, ...] = ()  #: markers whose mean vertical position must lie in ``pelvis_range`` (m)
    pelvis_range: tuple[float, float] = (0.7, 1.2)
    body_weight: float | None = None  #: N; the largest summed vertical GRF must lie in 0.9-1.6 body weights
    n_plates: int | None = None
    emg: int | None = None  #: number of EMG channels
    peaks: dict[str, tuple[float, float]] = field(default_factory=dict)  #: signal -> (expected peak, tolerance)
    load: Callable[[str], Trial] | None = None  #: custom loader (path -> Trial); default gaitforce.io.read
    writer: Callable | None = None  #: (path, trial) -> None, read back with ``load`` for a round trip
    suffix: str = ""  #: extension of the round-trip file
    id: str = ""


def _c3d_writer():
    from gaitforce.io.c3d import write_c3d

    return write_c3d


def _jw_with_knee_csv(path: str) -> Trial:
    from gaitforce.io.labcsv import attach_lab_csv

    return attach_lab_csv(read(path), knee_forces=path.replace(".c3d", "_knee_forces.csv"))


GC = "grand-challenge"
JW_PELVIS = ("RAsis", "LAsis", "RPsis", "LPsis")
CASES: list[Case] = [
    Case(
        f"{GC}/jw-c3d/jw_ngait_og3.c3d", 120.0, n_markers=56, markers=("RHeel", "LToe", "Sacral"), pelvis=JW_PELVIS,
        body_weight=66.7 * 9.81, n_plates=3, emg=15, writer=_c3d_writer(), suffix=".c3d", id="jw-og3-c3d",
    ),
    Case(
        f"{GC}/jw-c3d/jw_ngait_og3.c3d", 120.0, peaks={"knee_medial": (1025.0, 3.0), "knee_lateral": (594.0, 3.0)},
        load=_jw_with_knee_csv, id="jw-og3-knee-csv",
    ),
    Case(
        f"{GC}/jw-c3d/DM_ngait_og1.c3d", 120.0, n_markers=54, pelvis=JW_PELVIS, n_plates=3, emg=16, id="dm-og1-c3d",
    ),
    Case(
        f"{GC}/gc5-ps-opensim/PS_ngait_og_ss1.c3d", 120.0, n_markers=51, pelvis=JW_PELVIS, n_plates=3, emg=16,
        id="ps-ss1-c3d",
    ),
    Case(
        f"{GC}/jw-c3d/jw_stairupf1.c3d", 120.0, markers=("RHeel", "synch_bar:synch_bar1"), pelvis=JW_PELVIS,
        pelvis_range=(0.7, 2.0), n_plates=3,  # climbing stairs: the pelvis rises ~0.5 m id="jw-stair-prefixed-c3d",
    ),
]


# -- OpenSim TRC (+ sibling GRF .mot/.sto) cases, from the OpenSim-files helper ---------------------------------
def _trc_with_grf(path: str) -> Trial:
    from gaitforce.io.trc import read_trc

    return read_trc(path, grf="auto")


def _trc_grf_writer(path, trial: Trial) -> None:
    from pathlib import Path

    from gaitforce.io.writers import write_mot_grf, write_trc

    write_trc(path, trial)
    write_mot_grf(Path(path).with_name(Path(path).stem + "_grf.mot"), trial)


_OSIM = dict(load=_trc_with_grf, writer=_trc_grf_writer, suffix=".trc")
CASES += [
    Case(
        f"{GC}/gc6-dm-trc/DM_ngait_og1_new.trc", 120.0, n_markers=68, markers=("R_Asis", "L_Heel"),
        pelvis=("R_Asis", "L_Asis", "R_Psis", "L_Psis"), body_weight=70.0 * 9.81, n_plates=3, id="dm-og1-trc", **_OSIM,
    ),
    Case(
        # no body_weight: PS's summed double-support GRF reaches 1.67 BW (1233 N at 75 kg) in the file and the C3D
        f"{GC}/gc5-ps-opensim/PS_ngait_og_ss1.trc", 120.0, n_markers=36, pelvis=JW_PELVIS, n_plates=3,
        id="ps-ss1-trc-kinetics", **_OSIM,
    ),
    Case(
        "walking-examples/opensim/markers_walk.trc", 100.0, n_markers=41, pelvis=("R.ASIS", "L.ASIS", "R.PSIS", "L.PSIS"),
        body_weight=85.0668 * 9.81, n_plates=2, id="osim-markers-walk-trc", **_OSIM,
    ),
    Case(
        "walking-examples/opensim/subject01_walk1.trc", 60.0, n_markers=41, pelvis=("R.ASIS", "L.ASIS", "V.Sacral"),
        n_plates=2, id="osim-subject01-trc", **_OSIM,
    ),
    Case(
        "walking-examples/addbiomechanics/opencap_test_original_walking1_markers.trc", 100.0, n_markers=51,
        pelvis=("r.ASIS", "L.ASIS", "r.PSIS", "L.PSIS"), body_weight=75.7 * 9.81, n_plates=2, id="opencap-walk-trc",
        **_OSIM,
    ),
]

# Grand Challenge .mat gait cycles (gaitforce.io.grand_challenge)
CASES.append(
    Case(
        f"{GC}/competitions/JW__GC4__jw_ngait_og3.mat", 120.0, n_markers=17, markers=("R_HEEL", "R_KNEE_MED", "SACRUM"),
        pelvis=("R_ASIS", "L_ASIS", "SACRUM"), body_weight=66.7 * 9.81, n_plates=1, emg=14,
        peaks={"knee_medial": (1025.0, 1.0), "knee_lateral": (594.0, 1.0)}, id="jw-og3-gc-mat",
    )
)


def _mid_stance_check(trial: Trial, body_weight: float) -> None:
    force, _, _ = trial.total_grf()
    peak = np.nanmax(force[:, trial.vertical_index])
    assert 0.9 * body_weight < peak < 1.6 * body_weight, f"peak vertical GRF {peak:.0f} N vs BW {body_weight:.0f} N"
    assert np.nanmin(force[:, trial.vertical_index]) > -0.1 * body_weight, "vertical GRF points down: sign wrong"


def _same(a: Trial, b: Trial) -> None:
    assert a.marker_names == b.marker_names and a.plate_names == b.plate_names
    assert np.allclose(a.time, b.time)
    assert np.allclose(a.markers, b.markers, atol=1e-5, equal_nan=True)
    # plates pass the frame-window average twice: equal within a few N for real (not frame-linear) data
    assert np.allclose(a.forces, b.forces, atol=0.02 * max(1.0, np.nanmax(np.abs(a.forces))))


@pytest.mark.parametrize("case", CASES, ids=[c.id or c.path for c in CASES])
def test_reader_conformance(case: Case, shared_data, tmp_path):
    path = shared_data / case.path
    if not path.exists():
        pytest.skip(f"{case.path} not in the shared data")
    load = case.load or read
    trial = load(str(path))

    assert trial.rate == pytest.approx(case.rate, rel=1e-3)
    assert trial.up_axis == "y"
    if case.n_markers is not None:
        assert len(trial.marker_names) == case.n_markers
    missing = set(case.markers) - set(trial.marker_names)
    assert not missing, f"markers missing: {sorted(missing)}"
    finite = trial.markers[np.isfinite(trial.markers)]
    assert finite.size and np.abs(finite).max() < 20.0, "markers not in metres"
    if case.pelvis:
        height = np.nanmean(np.stack([trial.marker(m)[:, 1] for m in case.pelvis]))
        lo, hi = case.pelvis_range
        assert lo < height < hi, f"pelvis height {height:.3f} m (vertical axis after Y-up conversion)"
    if case.n_plates is not None:
        assert len(trial.plate_names) == case.n_plates
    if case.body_weight is not None:
        _mid_stance_check(trial, case.body_weight)
    if case.emg is not None:
        assert len(trial.emg_names) == case.emg
    for name, (peak, tol) in case.peaks.items():
        assert np.nanmax(trial.signal(name)) == pytest.approx(peak, abs=tol), name
    if case.writer is not None:
        out = tmp_path / f"round_trip{case.suffix or path.suffix}"
        case.writer(out, trial)
        _same(trial, load(str(out)))
