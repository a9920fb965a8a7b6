"""Writers of files OpenSim 4.6 loads: STO, TRC, and MOT ground-reaction files."""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError
from gaitforce.io.sto import COP_THRESHOLD_N
from gaitforce.io.units import LENGTH_UNITS
from gaitforce.trial import Trial


# Writers
# ------------------------------------------------------------------------------------------------------
def _fmt_rows(matrix: np.ndarray) -> str:
    buf = io.StringIO()
    np.savetxt(buf, matrix, fmt="%.15g", delimiter="\t")
    return buf.getvalue().replace("nan", "NaN")


def write_sto(path: str | os.PathLike, df: pd.DataFrame, *, name: str = "gaitforce", in_degrees: bool = False) -> Path:
    """Write a table as an OpenSim version-1 storage file (``.sto``/``.mot``).

    ``df`` holds a ``time`` column (or a time index named ``time``) and numeric columns; labels must be unique
    and free of tabs/newlines. Values are written with 15 significant digits, NaN as ``NaN``.
    """
    path = Path(path)
    if "time" not in df.columns:
        if df.index.name == "time":
            df = df.reset_index()
        else:
            raise GaitforceError("write_sto needs a 'time' column (or an index named 'time')", source=path)
    cols = ["time"] + [c for c in df.columns if c != "time"]
    labels = [str(c) for c in cols]
    if len(set(labels)) != len(labels):
        raise GaitforceError("write_sto: column labels must be unique", source=path)
    if any(re.search(r"[\t\r\n]", s) or not s.strip() for s in labels):
        raise GaitforceError("write_sto: column labels must be non-empty and free of tabs/newlines", source=path)
    values = df[cols].to_numpy(dtype=float)
    time = values[:, 0]
    if time.size > 1 and not np.all(np.diff(time) > 0):
        raise GaitforceError("write_sto: time must be strictly increasing", source=path)
    head = (
        f"{name}\nversion=1\nnRows={len(values)}\nnColumns={len(labels)}\n"
        f"inDegrees={'yes' if in_degrees else 'no'}\nendheader\n" + "\t".join(labels) + "\n"
    )
    path.write_text(head + _fmt_rows(values), encoding="utf-8")
    return path


def _uniform_rate(trial: Trial, path: Path) -> float:
    if trial.n_frames < 2:
        raise GaitforceError("a TRC needs at least 2 frames", source=path)
    dt = np.diff(trial.time)
    rate = 1.0 / float(np.median(dt))
    if np.max(np.abs(dt * rate - 1.0)) > 0.01:
        raise GaitforceError("TRC needs a uniform frame rate; resample the trial first", source=path)
    return rate


def write_trc(path: str | os.PathLike, trial: Trial, *, units: str = "mm") -> Path:
    """Write the trial's markers as a TRC (``PathFileType 4``), Y-up (a Z-up trial is turned by
    :meth:`Trial.to_y_up`), in ``units`` (mm by default), NaN as empty cells."""
    path = Path(path)
    if units not in ("mm", "cm", "m"):
        raise GaitforceError(f"write_trc: units must be mm, cm or m, not {units!r}", source=path)
    if not trial.marker_names:
        raise GaitforceError("the trial has no markers to write", source=path)
    if any(re.search(r"[\t\r\n]", n) for n in trial.marker_names):
        raise GaitforceError("marker names must be free of tabs/newlines", source=path)
    trial = trial.to_y_up()
    rate = _uniform_rate(trial, path)
    n, m = trial.n_frames, len(trial.marker_names)
    xyz = trial.markers / LENGTH_UNITS[units]
    frame = np.arange(1, n + 1)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:.10g}\t{rate:.10g}\t{n}\t{m}\t{units}\t{rate:.10g}\t1\t{n}",
        "Frame#\tTime\t" + "\t\t\t".join(trial.marker_names) + "\t\t",
        "\t\t" + "\t".join(f"{a}{i}" for i in range(1, m + 1) for a in "XYZ"),
        "",
    ]
    flat = xyz.reshape(n, 3 * m)
    body = []
    for i in range(n):
        cells = [str(frame[i]), f"{trial.time[i]:.10g}"]
        cells += ["" if not math.isfinite(x) else f"{x:.10g}" for x in flat[i]]
        body.append("\t".join(cells))
    path.write_text("\n".join(lines + body) + "\n", encoding="utf-8")
    return path


_SAFE_PLATE = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")


def _grf_prefixes(plate_names) -> list[str]:
    """Column prefix per plate: ``<name>_`` when every name is a plain token that reads back as itself
    (``1``, ``R``, ``calcn_r``; ``ground`` -> the bare ``ground_force_*`` family), else ``<i>_`` (1-based)."""
    words = ("force", "torque", "moment", "ground")
    ok = [
        n == "ground" or (_SAFE_PLATE.match(n) and not any(w in n.lower() for w in words)) for n in plate_names
    ]
    if all(ok) and len({n.lower() for n in plate_names}) == len(plate_names):
        return ["" if n == "ground" else f"{n}_" for n in plate_names]
    return [f"{j + 1}_" for j in range(len(plate_names))]


def write_mot_grf(path: str | os.PathLike, trial: Trial, *, cop_threshold: float = COP_THRESHOLD_N) -> Path:
    """Write the trial's force plates as an ExternalLoads-compatible GRF ``.mot``.

    Each plate becomes the family ``N_ground_force_v[xyz]`` (force on the body, N), ``N_ground_force_p[xyz]``
    (CoP, m) and ``N_ground_torque_[xyz]`` (free moment, N m), Y-up, where ``N`` is the plate's name when all
    names are plain tokens that read back unchanged (``1``, ``r``, ``calcn_r``; ``ground`` is the bare family),
    else its 1-based index. NaN CoP
    (an unloaded plate) is written as 0 where the vertical force is below ``cop_threshold``; NaN forces are
    an error (OpenSim cannot apply them).
    """
    path = Path(path)
    if not trial.plate_names:
        raise GaitforceError("the trial has no force plates to write", source=path)
    trial = trial.to_y_up()
    if not np.isfinite(trial.forces).all():
        bad = int((~np.isfinite(trial.forces).all(axis=(1, 2))).sum())
        raise GaitforceError(f"forces are NaN in {bad} frames; trim the trial to the covered frames", source=path)
    cols = {"time": trial.time}
    prefixes = _grf_prefixes(trial.plate_names)
    for j in range(len(trial.plate_names)):
        f, p, t = trial.forces[:, j], trial.cop[:, j].copy(), np.nan_to_num(trial.free_moment[:, j])
        missing = ~np.isfinite(p).all(axis=1)
        if np.any(missing & (f[:, 1] >= cop_threshold)):
            raise GaitforceError(
                f"plate {trial.plate_names[j]}: CoP is NaN while the plate is loaded", source=path
            )
        p[missing] = 0.0
        for i, a in enumerate("xyz"):
            cols[f"{prefixes[j]}ground_force_v{a}"] = f[:, i]
        for i, a in enumerate("xyz"):
            cols[f"{prefixes[j]}ground_force_p{a}"] = p[:, i]
        for i, a in enumerate("xyz"):
            cols[f"{prefixes[j]}ground_torque_{a}"] = t[:, i]
    return write_sto(path, pd.DataFrame(cols), name=path.name, in_degrees=False)
