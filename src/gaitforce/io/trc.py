"""TRC marker files read into a :class:`Trial` (markers in m, header fields from the file)."""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import UnitError
from gaitforce.io.grf import merge_grf
from gaitforce.io.sto import (
    BODY_SPAN_M,
    COP_THRESHOLD_N,
    NAN_STRINGS,
    _err,
    _read_text,
    _short,
    read_mot,
)
from gaitforce.io.units import LENGTH_UNITS
from gaitforce.trial import MAX_MARKER_COORD_M, Trial


# ------------------------------------------------------------------------------------------------------
# TRC
# ------------------------------------------------------------------------------------------------------
def _split(line: str) -> list[str]:
    return [s.strip() for s in line.split("\t")] if "\t" in line else line.split()


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and re.fullmatch(r"[+-]?\d+", text.strip()) else value


def _trc_header(lines: list[str], path: Path) -> tuple[dict, list[str], int]:
    """Parse the 5 header lines: -> (fields, marker names, index of the first data line)."""
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise _err("not a TRC file: first line must start with 'PathFileType'", path)
    keys = lines[1].split()
    values = lines[2].split()
    if len(keys) != len(values):
        raise _err(f"header has {len(keys)} field names but {len(values)} values", path)
    fields = {k: _number(v) for k, v in zip(keys, values)}
    for key in ("DataRate", "NumFrames", "NumMarkers", "Units"):
        if key not in fields:
            raise _err(f"header lacks {key}", path)
    try:
        rate = float(fields["DataRate"])
        n_frames, n_markers = int(fields["NumFrames"]), int(fields["NumMarkers"])
    except (TypeError, ValueError):
        raise _err("header DataRate/NumFrames/NumMarkers are not numbers", path) from None
    if not (rate > 0 and math.isfinite(rate)):
        raise _err(f"header DataRate={fields['DataRate']!r} is not a positive rate", path)
    if str(fields["Units"]).lower() not in LENGTH_UNITS:
        raise _err(f"header Units={fields['Units']!r} is not one of mm, cm, m", path)
    fields["DataRate"], fields["NumFrames"], fields["NumMarkers"] = rate, n_frames, n_markers
    cells = _split(lines[3].rstrip("\r\n"))
    if len(cells) < 2 or cells[0].lower() != "frame#" or cells[1].lower() != "time":
        raise _err("line 4 must start with 'Frame#' and 'Time'", path)
    names = [c for c in cells[2:] if c]
    if len(names) != n_markers:
        raise _err(f"header says NumMarkers={n_markers} but line 4 names {len(names)} markers", path)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise _err(f"duplicate marker names: {', '.join(dupes[:5])}", path)
    coords = [c for c in _split(lines[4]) if c]
    if len(coords) != 3 * n_markers:
        raise _err(f"line 5 has {len(coords)} coordinate labels, expected {3 * n_markers}", path)
    return fields, names, 5


def _trc_data(lines: list[str], n_markers: int, path: Path) -> np.ndarray:
    rows = [ln for ln in lines if ln.strip()]
    if not rows:
        raise _err("no data rows", path)
    want = 2 + 3 * n_markers
    tabbed = "\t" in rows[0]
    counts = [len(r.rstrip("\r\n").split("\t")) if tabbed else len(r.split()) for r in rows]
    width = max(counts)
    short = next((i for i, c in enumerate(counts) if c < want), None)
    if short is not None:  # a truncated row: its last markers would silently become NaN and be filled
        raise _err(f"data row {short + 1} has {counts[short]} cells, expected {want} (2 + 3 x {n_markers} markers): "
                   "missing cells; write an empty cell for a missing marker", path)
    try:
        df = pd.read_csv(
            io.StringIO("\n".join(rows)), sep="\t" if tabbed else r"\s+", header=None,
            names=range(max(width, want)), dtype=float, skipinitialspace=True, engine="c",
            na_values=NAN_STRINGS,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise _err(f"data rows are not all numbers ({_short(exc)})", path) from None
    data = df.to_numpy(float)
    extra = data[:, want:]
    if extra.size and np.isfinite(extra).any():
        row = int(np.flatnonzero(np.isfinite(extra).any(axis=1))[0])
        raise _err(f"data row {row + 1} has more than {want} values", path)
    data = data[:, :want]
    if not np.isfinite(data[:, :2]).all():
        row = int(np.flatnonzero(~np.isfinite(data[:, :2]).all(axis=1))[0])
        raise _err(f"data row {row + 1} lacks its frame number or time", path)
    return data


def _check_marker_scale(markers: np.ndarray, unit: str, path: Path) -> None:
    """Raise :class:`UnitError` when the markers cannot be a body measured in ``unit``."""
    finite = markers[np.isfinite(markers)]
    if finite.size == 0:
        return
    biggest = float(np.max(np.abs(finite)))
    hint = "millimetres labelled as metres?" if biggest > MAX_MARKER_COORD_M else "wrong Units?"
    if biggest > MAX_MARKER_COORD_M:
        raise UnitError(
            f"markers reach {biggest:.0f} m with Units={unit!r}: the data look like {hint}", source=path
        )
    if markers.shape[1] >= 3:
        span = _per_frame_span(markers).max(axis=1)
        span = span[np.isfinite(span) & (np.isfinite(markers).all(axis=2).sum(axis=1) >= 3)]
        if span.size:
            med = float(np.median(span))
            lo, hi = BODY_SPAN_M
            if not (lo <= med <= hi):
                guess = "millimetres labelled as metres" if med > hi else "metres labelled as millimetres"
                seems = "millimetres" if med > hi else "metres"
                raise UnitError(
                    f"markers span {med:.3g} m per frame with Units={unit!r}, not a human body: "
                    f"the data look like {guess} (markers look like {seems} but the file says {unit})",
                    source=path,
                )


def _per_frame_span(markers: np.ndarray) -> np.ndarray:
    """(T, 3) extent of the visible markers along each axis per frame; NaN for frames with none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames give NaN, as wanted
        return np.nanmax(markers, axis=1) - np.nanmin(markers, axis=1)


def _marker_up_axis(markers: np.ndarray) -> str:
    """'y' unless the per-frame spread along Z clearly dominates (see the module docstring)."""
    if markers.shape[1] < 3:
        return "y"
    span = _per_frame_span(markers)
    span = span[np.isfinite(span).all(axis=1)]
    if span.size == 0:
        return "y"
    med = np.median(span, axis=0)
    if not np.isfinite(med).all():
        return "y"
    return "z" if med[2] > 2 * med[1] and med[2] == med.max() else "y"


def read_trc(
    path: str | os.PathLike,
    *,
    grf: str | os.PathLike | None = "auto",
    cop_threshold: float = COP_THRESHOLD_N,
) -> Trial:
    """Read a TRC marker file into a Trial (markers in m).

    The header (``DataRate``, ``CameraRate``, ``NumFrames``, ``NumMarkers``, ``Units``, ``OrigDataRate``...)
    is taken from the file and kept in ``meta['trc_header']``. Times are ``t0 + (frame - frame0) / DataRate``
    from the header; a Time column that disagrees with them by more than a quarter frame is an error.
    Empty cells and exact ``0 0 0`` triplets (a missing-marker placeholder) are NaN. ``Units`` mm/cm/m are
    converted to m and checked against a human body's size (a file in mm labelled m raises
    :class:`UnitError`). ``up_axis`` stays 'y' unless the markers clearly say Z is up.

    ``grf``: ``"auto"`` (the default) uses a sibling file (see :func:`find_grf_sibling`; none found -> markers
    only, and the history says so), a path names a GRF ``.mot``/``.sto``, None reads markers only. The GRF is merged onto the marker frames:
    averaged over each frame's window when its rate is higher, interpolated otherwise; frames it does not
    cover get NaN forces.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    fields, names, first = _trc_header(lines, path)
    data = _trc_data(lines[first:], len(names), path)
    rate = fields["DataRate"]
    if data.shape[0] != fields["NumFrames"]:
        raise _err(f"header says NumFrames={fields['NumFrames']} but the file has {data.shape[0]} rows", path)
    frame = data[:, 0]
    if np.any(np.diff(frame) <= 0):
        raise _err("Frame# is not strictly increasing", path)
    time = data[0, 1] + (frame - frame[0]) / rate
    off = np.abs(time - data[:, 1])
    if off.max() > max(0.25 / rate, 6e-4):
        row = int(np.argmax(off))
        raise _err(
            f"Time column disagrees with DataRate={rate:g} Hz (row {row + 1}: {data[row, 1]:g} s vs "
            f"{time[row]:g} s)",
            path,
        )
    unit = str(fields["Units"])
    scale = LENGTH_UNITS[unit.lower()]
    xyz = data[:, 2:].reshape(len(data), len(names), 3)
    zero = (xyz == 0).all(axis=2)
    xyz = xyz * scale
    xyz[zero] = np.nan
    _check_marker_scale(xyz, unit, path)
    up = _marker_up_axis(xyz)
    history = [f"read_trc({path.name}): Units {unit} -> m" + (", Z-up by marker spread" if up == "z" else "")]
    meta = {
        "format": "trc",
        "trc_header": {k: v for k, v in fields.items()},
        "rate": rate,
        "first_frame": int(frame[0]),
    }
    if zero.any():
        meta["zero_markers_as_missing"] = int(zero.sum())
    trial = Trial(
        time=time,
        markers=xyz,
        marker_names=tuple(names),
        source=str(path),
        up_axis=up,
        meta=meta,
        history=tuple(history),
    )
    if grf is None:
        return trial
    if isinstance(grf, str) and grf == "auto":
        found = find_grf_sibling(path)
        if found is None:
            return trial.replace(meta={**trial.meta, "grf_source": None}, note="grf=auto: no sibling GRF file")
        grf = found
    grf_trial = read_mot(Path(grf), cop_threshold=cop_threshold)
    return merge_grf(trial, grf_trial, cop_threshold=cop_threshold)


def find_grf_sibling(trc_path: str | os.PathLike) -> Path | None:
    """The GRF file beside a TRC, first existing of: ``<stem>_grf.mot|.sto``, ``<stem>_grf_filt``,
    ``<stem>_kinetics.mot``, ``<stem>_grf_raw``, where ``stem`` is the TRC's stem and that stem with a trailing
    ``_new``/``_markers`` removed; and ``grf_<rest>`` for ``markers_<rest>``."""
    p = Path(trc_path)
    stems = [p.stem]
    for suffix in ("_new", "_markers", "_marker"):
        if p.stem.endswith(suffix):
            stems.append(p.stem[: -len(suffix)])
    candidates = []
    for stem in stems:
        for tail in ("_grf", "_grf_filt", "_kinetics", "_forces", "_grf_raw"):
            for ext in (".mot", ".sto"):
                candidates.append(p.with_name(stem + tail + ext))
    if p.stem.startswith("markers_"):
        candidates += [p.with_name("grf_" + p.stem[len("markers_") :] + ext) for ext in (".mot", ".sto")]
    return next((c for c in candidates if c.is_file()), None)


