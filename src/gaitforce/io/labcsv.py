"""The Knee Grand Challenge side files beside the raw C3Ds: ``*_knee_forces.csv`` and ``*_emg.csv``.

``*_knee_forces.csv`` holds the eTibia implant's four load cells in lbf (``PM, AM, AL, PL``: posterior/anterior,
medial/lateral) at the frame rate. The published calibration gives

- medial  = (0.9871 AM + 0.9683 PM + 0.0387 AL + 0.0211 PL) x 4.448 N
- lateral = (0.0129 AM + 0.0317 PM + 0.9613 AL + 0.9789 PL) x 4.448 N  (each coefficient 1 - the medial one)
- total   = (AM + PM + AL + PL) x 4.448 N = medial + lateral

The lateral weights were checked by least squares against ``Force.KneeLateral`` of the competition file
JW__GC4__jw_ngait_og3.mat: fitted (0.01290, 0.03170, 0.96135, 0.97895), RMS difference 0.02 N; peaks 1024.9 N
medial and 594.2 N lateral, as the README states.

Time rule: the CSVs' ``Time(sec)`` column starts 2 analog samples (1.67 ms at 1200 Hz) before the C3D's first
frame (``(ACTUAL_START_FIELD - 1) / rate``), yet the rows are the C3D's samples one for one: the EMG CSV matches
the C3D's analog EMG with r = 0.97 when row ``k`` is put on analog sample ``k`` and r < 0.5 one sample either side.
So a CSV is placed on the trial's clock by shifting its time so that its first row falls on the C3D's first frame
(``trial.meta['c3d_first_time']``, set by :func:`~gaitforce.io.c3d.read_c3d`) whenever the two starts differ by
less than one frame; otherwise (or without that meta) the CSV's time is taken as the trial's clock unchanged. Knee
forces are then linearly interpolated onto ``trial.time`` (NaN outside the CSV's span); EMG keeps its own rate.

:func:`read_c3d` does not pick these files up by itself: the names are a convention of one lab, and a stale or
mismatched sibling would silently put another trial's forces on this one. Pass them explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import InputFileError
from gaitforce.trial import Trial

LBF_TO_N = 4.448
MEDIAL_WEIGHTS = {"AM": 0.9871, "PM": 0.9683, "AL": 0.0387, "PL": 0.0211}
LATERAL_WEIGHTS = {k: round(1.0 - v, 4) for k, v in MEDIAL_WEIGHTS.items()}
LOAD_CELLS = ("PM", "AM", "AL", "PL")


def _read_csv(path: Path, kind: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputFileError("no such file", source=path)
    try:
        # rows end with a comma the header lacks: index_col=False keeps the first column as data
        df = pd.read_csv(path, index_col=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputFileError(f"not a readable {kind} CSV: {' '.join(str(err).split())}", source=path) from None
    df.columns = [str(c).strip() for c in df.columns]
    df = df.loc[:, [c for c in df.columns if c and not c.startswith("Unnamed")]]
    if df.empty or not str(df.columns[0]).lower().startswith("time"):
        raise InputFileError(f"{kind} CSV must start with a time column (got {list(df.columns)[:3]})", source=path)
    try:
        df = df.apply(pd.to_numeric, errors="raise")
    except (ValueError, TypeError):
        raise InputFileError(f"{kind} CSV holds non-numeric values", source=path) from None
    t = df.iloc[:, 0].to_numpy(float)
    if t.size < 2 or not np.all(np.diff(t) > 0):
        raise InputFileError(f"{kind} CSV time column is not strictly increasing", source=path)
    return df


def read_knee_forces(path: str | os.PathLike) -> pd.DataFrame:
    """Columns ``time`` (s, the CSV's own clock), ``knee_medial``, ``knee_lateral``, ``knee_total`` (N)."""
    path = Path(path)
    df = _read_csv(path, "knee forces")
    missing = [c for c in LOAD_CELLS if c not in df.columns]
    if missing:
        raise InputFileError(f"knee forces CSV lacks load cells {missing}", source=path)
    cells = {c: df[c].to_numpy(float) for c in LOAD_CELLS}
    medial = sum(w * cells[c] for c, w in MEDIAL_WEIGHTS.items()) * LBF_TO_N
    lateral = sum(w * cells[c] for c, w in LATERAL_WEIGHTS.items()) * LBF_TO_N
    total = sum(cells.values()) * LBF_TO_N
    return pd.DataFrame(
        {"time": df.iloc[:, 0].to_numpy(float), "knee_medial": medial, "knee_lateral": lateral, "knee_total": total}
    )


def read_emg_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Column ``time`` (s, the CSV's own clock) then one column per muscle, as written (volts)."""
    path = Path(path)
    df = _read_csv(path, "EMG")
    return df.rename(columns={df.columns[0]: "time"})


def _aligned_time(trial: Trial, t_csv: np.ndarray) -> tuple[np.ndarray, float]:
    """The CSV's time on the trial's clock and the shift applied (see the module docstring)."""
    start = trial.meta.get("c3d_first_time")
    if start is None or trial.n_frames < 2:
        return t_csv, 0.0
    shift = float(start) - float(t_csv[0])
    if abs(shift) < 1.0 / trial.rate:
        return t_csv + shift, shift
    return t_csv, 0.0


def attach_lab_csv(
    trial: Trial,
    *,
    knee_forces: str | os.PathLike | None = None,
    emg: str | os.PathLike | None = None,
) -> Trial:
    """The trial with the eTibia forces as signals ``knee_medial``, ``knee_lateral``, ``knee_total`` (N, on
    ``trial.time``, NaN outside the CSV) and/or the EMG CSV as the trial's EMG (replacing any analog EMG)."""
    out = trial
    if knee_forces is not None:
        kf = read_knee_forces(knee_forces)
        t, shift = _aligned_time(trial, kf["time"].to_numpy())
        signals = {}
        for name in ("knee_medial", "knee_lateral", "knee_total"):
            values = np.interp(trial.time, t, kf[name].to_numpy(), left=np.nan, right=np.nan)
            signals[name] = (values, "N")
        out = out.with_signals(
            note=f"attach_lab_csv(knee_forces={Path(knee_forces).name}, time shift {shift * 1000:+.2f} ms)", **signals
        )
    if emg is not None:
        df = read_emg_csv(emg)
        t, shift = _aligned_time(trial, df["time"].to_numpy())
        names = tuple(df.columns[1:])
        out = out.replace(
            emg=df[list(names)].to_numpy(float),
            emg_time=t,
            emg_names=names,
            note=f"attach_lab_csv(emg={Path(emg).name}, time shift {shift * 1000:+.2f} ms)",
        )
    return out
