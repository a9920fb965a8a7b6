"""Small private writers of OpenSim's TRC and MOT files (Y-up, metres) for the labeller's inputs.

Kept here until :mod:`gaitforce.io.opensim` provides ``write_trc``/``write_mot_grf``; only the columns
OpenSim's tools need are written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_trc(path: Path, time: np.ndarray, markers: np.ndarray, names) -> Path:
    """Markers (T, M, 3) in m, NaN for gaps (written as blanks, which OpenSim skips)."""
    names = list(names)
    rate = 1.0 / float(np.median(np.diff(time)))
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{Path(path).name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:.6f}\t{rate:.6f}\t{len(time)}\t{len(names)}\tm\t{rate:.6f}\t1\t{len(time)}",
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names),
        "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(len(names))),
        "",
    ]
    for k, t in enumerate(time):
        row = markers[k].reshape(-1)
        cells = ["" if not np.isfinite(v) else f"{v:.6f}" for v in row]
        lines.append(f"{k + 1}\t{t:.6f}\t" + "\t".join(cells))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_mot(path: Path, time: np.ndarray, columns: dict[str, np.ndarray], *, name: str = "data") -> Path:
    """A storage file of named columns on ``time`` (not in degrees)."""
    keys = list(columns)
    data = np.column_stack([time] + [np.asarray(columns[k], dtype=float) for k in keys])
    header = [name, "version=1", f"nRows={data.shape[0]}", f"nColumns={data.shape[1]}", "inDegrees=no", "endheader",
              "\t".join(["time", *keys])]
    body = "\n".join("\t".join(f"{v:.8g}" for v in row) for row in data)
    Path(path).write_text("\n".join(header) + "\n" + body + "\n")
    return Path(path)
