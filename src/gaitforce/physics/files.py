"""The labeller's OpenSim input files (Y-up, metres), written by :mod:`gaitforce.io.opensim`'s writers so the
labeller and ``gaitforce`` export one format: ``write_trc`` (markers), ``write_sto`` (coordinates, actuator
forces) and ``write_mot_grf`` (ground reactions, see :func:`write_grf`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.io.writers import write_mot_grf
from gaitforce.io.writers import write_sto as _write_sto
from gaitforce.io.writers import write_trc as _write_trc
from gaitforce.trial import Trial

#: A force below this with an unknown CoP is treated as an unloaded plate (the largest reader CoP threshold, C3D's).
UNLOADED_N = 20.0


def write_trc(path: Path, time: np.ndarray, markers: np.ndarray, names) -> Path:
    """Markers (T, M, 3) in m, Y-up, NaN for gaps (written as blanks, which OpenSim skips)."""
    trial = Trial(time=np.asarray(time, dtype=float), markers=np.asarray(markers, dtype=float),
                  marker_names=tuple(names), up_axis="y")
    return _write_trc(path, trial, units="m")


def write_mot(path: Path, time: np.ndarray, columns: dict[str, np.ndarray], *, name: str = "data") -> Path:
    """A storage file of named columns on ``time`` (not in degrees)."""
    return _write_sto(path, pd.DataFrame({"time": np.asarray(time, dtype=float), **columns}), name=name,
                      in_degrees=False)


def write_grf(path: Path, trial: Trial) -> tuple[Path, list[str]]:
    """The Y-up trial's plates as an ExternalLoads data file; returns it and each plate's column prefix
    (``1_``, ``2_``, ...: the plates are renamed by index so the prefixes are known). A NaN force, or a NaN CoP
    under a loaded plate, is an error (``write_mot_grf``'s rule) rather than a silent zero.

    Readers leave the CoP unknown below their own threshold (20 N for C3D, 10 N for MOT); such a frame's force
    has no point of application, so it is written as zero (at most ``UNLOADED_N`` = 20 N, at the first and last
    frames of a stance) rather than applied at the lab origin, where it would add a false moment."""
    n = len(trial.plate_names)
    forces = np.array(trial.forces, dtype=float)
    unloaded = np.isnan(trial.cop).any(axis=2) & (forces[:, :, 1] < UNLOADED_N)
    forces[unloaded] = 0.0
    plates = Trial(time=trial.time, forces=forces, cop=trial.cop, free_moment=trial.free_moment,
                   plate_names=tuple(str(i + 1) for i in range(n)), up_axis="y", source=trial.source)
    return write_mot_grf(path, plates), [f"{i + 1}_" for i in range(n)]
