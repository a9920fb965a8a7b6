"""OpenSim STO/MOT tables (:func:`read_sto_table`), and MOT ground-reaction files read into a :class:`Trial`
(:func:`read_mot`). The conventions (axes, force sign, torques, CoP threshold) are stated once, in
:mod:`gaitforce.io.opensim`."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.constants import COP_THRESHOLD_N
from gaitforce.errors import InputFileError
from gaitforce.io.columns import _Family, _file_kind, _grf_family, column_unit, side_of
from gaitforce.trial import Trial

#: Vertical force (N) below which a plate counts as unloaded and its CoP is NaN.
#: Loaded-sample force (N) above which a plate's axes tell which is vertical.
AXIS_FORCE_N = 50.0

#: A free moment larger than this lever arm (m) times the plate's force is not a free moment.
FREE_MOMENT_LEVER_M = 0.1

#: TRC ``Units`` values -> factor to metres.

#: Plausible span (m) of one body's markers in one frame (median over frames); outside it the unit is wrong.
BODY_SPAN_M = (0.02, 10.0)

#: Spellings of NaN written by C/C++ runtimes (MSVC prints ``-nan(ind)``), read as NaN.
NAN_STRINGS = ["-nan(ind)", "nan(ind)", "-nan", "1.#QNAN", "-1.#QNAN", "1.#IND", "-1.#IND", "-NaN", "NAN"]

_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"no", "false", "0", "n"}


def _err(message: str, path) -> InputFileError:
    return InputFileError(message, source=path)


# ------------------------------------------------------------------------------------------------------
# STO / MOT table
# ------------------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _err("no such file", path) from None
    except IsADirectoryError:
        raise _err("is a folder, not a file", path) from None
    if b"\x00" in raw[:4096]:
        raise _err("binary data, not an OpenSim text file", path)
    return raw.decode("utf-8", errors="replace")


def _parse_header(lines: list[str], path: Path) -> dict:
    """Header lines (before ``endheader``) -> dict of typed values; free text kept under ``comments``."""
    header: dict = {"comments": []}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            header[key.strip()] = value.strip()
            continue
        parts = line.split(None, 1)
        key = parts[0]
        if key in ("datacolumns", "datarows"):  # SIMM / OpenSim 1.x style
            header["nColumns" if key == "datacolumns" else "nRows"] = parts[1].strip() if len(parts) > 1 else ""
        elif key == "range" and len(parts) > 1:
            header["range"] = parts[1].strip()
        elif key == "name" and len(parts) > 1 and i == 0:
            header["name"] = parts[1].strip()
        elif i == 0 and "name" not in header:
            header["name"] = line
        else:
            header["comments"].append(line)
    for key in ("nRows", "nColumns", "version"):
        if key in header:
            try:
                header[key] = int(header[key])
            except ValueError:
                raise _err(f"header {key}={header[key]!r} is not an integer", path) from None
    if "inDegrees" in header:
        value = str(header["inDegrees"]).lower()
        if value in _TRUE:
            header["inDegrees"] = True
        elif value in _FALSE:
            header["inDegrees"] = False
        else:
            raise _err(f"header inDegrees={header['inDegrees']!r} is neither yes nor no", path)
    return header


def read_sto_table(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read an OpenSim ``.sto``/``.mot`` file into ``(DataFrame, header)``.

    The DataFrame has the file's column labels in order (normally ``time`` first), float values. The header
    dict holds every ``key=value`` line (``nRows``, ``nColumns``, ``version`` as int, ``inDegrees`` as bool),
    ``name`` (the first line when it is not ``key=value``) and ``comments`` (other free-text lines).
    A malformed file raises :class:`InputFileError` naming the problem in one line.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    end = next((i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader"), None)
    if end is None:
        raise _err("no 'endheader' line: not an OpenSim storage file", path)
    header = _parse_header(lines[:end], path)
    label_at = next((i for i in range(end + 1, len(lines)) if lines[i].strip()), None)
    if label_at is None:
        raise _err("no column labels after 'endheader'", path)
    label_line = lines[label_at].strip("\r\n")
    labels = [s.strip() for s in label_line.split("\t")] if "\t" in label_line else label_line.split()
    while labels and not labels[-1]:
        labels.pop()
    if any(not s for s in labels):
        raise _err(f"empty column label on line {label_at + 1}", path)
    dupes = sorted({s for s in labels if labels.count(s) > 1})
    if dupes:
        raise _err(f"duplicate column labels: {', '.join(dupes[:5])}", path)
    body = "\n".join(lines[label_at + 1 :])
    try:
        df = pd.read_csv(
            io.StringIO(body), sep=r"\s+", header=None, dtype=float, engine="c", na_values=NAN_STRINGS
        )
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(np.empty((0, len(labels))))
    except (ValueError, pd.errors.ParserError) as exc:
        raise _err(f"data rows are not all numbers with {len(labels)} columns ({_short(exc)})", path) from None
    if df.shape[1] != len(labels):
        raise _err(f"{len(labels)} column labels but {df.shape[1]} data columns", path)
    df.columns = labels
    n_cols = header.get("nColumns")
    if n_cols is not None and n_cols != len(labels):
        # OpenSim 4.6 itself loads such files (the labels line rules), so this is recorded, not fatal.
        header.setdefault("warnings", []).append(f"header nColumns={n_cols} but {len(labels)} columns")
    n_rows = header.get("nRows")
    if n_rows is not None and n_rows != len(df):
        raise _err(f"header says nRows={n_rows} but the file has {len(df)} data rows (truncated?)", path)
    return df, header


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else type(exc).__name__


# ------------------------------------------------------------------------------------------------------
# MOT -> Trial
# ------------------------------------------------------------------------------------------------------
def _families(labels) -> tuple[dict[str, _Family], list[str]]:
    fams: dict[str, _Family] = {}
    rest: list[str] = []
    for label in labels:
        hit = _grf_family(label)
        if hit is None:
            rest.append(label)
            continue
        key, kind, axis, is_m = hit
        fam = fams.setdefault(key.lower(), _Family(key=key))
        slot = {"v": fam.force, "p": fam.point, "t": fam.torque}[kind]
        if axis in slot:
            rest.append(label)  # a second column for the same slot: keep as a signal, do not guess
            continue
        slot[axis] = label
        fam.torque_is_m |= is_m
    plates, partial = {}, []
    for k, fam in fams.items():
        if len(fam.force) == 3:
            plates[k] = fam
        else:
            partial.extend([*fam.force.values(), *fam.point.values(), *fam.torque.values()])
    return plates, rest + partial


def _vec(df: pd.DataFrame, cols: dict) -> np.ndarray:
    out = np.zeros((len(df), 3))
    for i, axis in enumerate("xyz"):
        if axis in cols:
            out[:, i] = df[cols[axis]].to_numpy(float)
    return out


def _vertical_axis_of_forces(forces: np.ndarray) -> str:
    """'y' unless the loaded samples' |Fz| clearly dominates |Fy| (see the module docstring)."""
    mag = np.linalg.norm(np.nan_to_num(forces), axis=-1)
    loaded = mag > AXIS_FORCE_N
    if not loaded.any():
        return "y"
    fy = np.median(np.abs(forces[..., 1][loaded]))
    fz = np.median(np.abs(forces[..., 2][loaded]))
    return "z" if fz > 3 * fy else "y"


def read_mot(path: str | os.PathLike, *, cop_threshold: float = COP_THRESHOLD_N) -> Trial:
    """Read an OpenSim ``.mot``/``.sto`` into a Trial on the file's own time base.

    Ground-reaction column families (``ground_force_v[xyz]``, ``1_ground_force_*``, ``ground_force_1_*``,
    ``r_ground_force_*``/``l_*``, ``ground_force_r_*``, ``calcn_r_force_*``, with ``*_p[xyz]`` CoP and
    ``*ground_torque_[xyz]`` / ``*_m[xyz]`` torques) become one force plate each, named by the family's
    identifier (``1``, ``r``, ``calcn_r``; ``ground`` when bare) with ``meta['plate_sides']`` where the
    identifier names a side. Other columns become ``signals`` with units by :func:`column_unit`; angles in a
    file with ``inDegrees=yes`` are converted to rad. A file without ``inDegrees`` is taken as radians, as
    OpenSim does.
    """
    path = Path(path)
    df, header = read_sto_table(path)
    if df.shape[1] < 2:
        raise _err("no data columns besides time", path)
    time_label = df.columns[0]
    if time_label.lower() not in ("time", "t", "frame", "frame#"):
        raise _err(f"first column is {time_label!r}, expected 'time'", path)
    if len(df) == 0:
        raise _err("no data rows", path)
    time = df[time_label].to_numpy(float)
    if not np.all(np.isfinite(time)):
        raise _err("time column holds NaN or infinite values", path)
    bad = np.flatnonzero(np.diff(time) <= 0)
    if bad.size:
        raise _err(f"time is not strictly increasing at data row {bad[0] + 2} (t={time[bad[0] + 1]:g})", path)
    df = df.drop(columns=[time_label])

    history = [f"read_mot({path.name})"]
    plates, rest = _families(df.columns)
    names, forces, cops, moments, sides, unknown_moment = [], [], [], [], {}, []
    notes = []
    for fam in plates.values():
        f = _vec(df, fam.force)
        p = _vec(df, fam.point) if fam.point else np.full_like(f, np.nan)
        t = _vec(df, fam.torque)
        names.append(fam.key)
        forces.append(f)
        cops.append(p)
        moments.append(t)
        side = side_of(fam.key)
        if side:
            sides[fam.key] = side
    up_axis = "y"
    if names:
        F = np.stack(forces, axis=1)
        P = np.stack(cops, axis=1)
        T = np.stack(moments, axis=1)
        up_axis = _vertical_axis_of_forces(F)
        v = 1 if up_axis == "y" else 2
        for j, name in enumerate(names):
            fv = F[:, j, v]
            big = np.abs(fv) > cop_threshold
            if big.any() and np.sum(fv[big]) < 0:
                F[:, j] *= -1
                T[:, j] *= -1
                notes.append(f"plate {name}: force and torque negated (vertical force was negative: force on the plate)")
            if np.isfinite(P[:, j]).all() and np.any(T[:, j]):
                loaded = F[:, j, v] > 5 * cop_threshold
                if loaded.sum() >= 3:
                    cross = np.cross(P[loaded, j], F[loaded, j])
                    resid = np.median(np.linalg.norm(T[loaded, j] - cross, axis=1))
                    size = np.median(np.linalg.norm(T[loaded, j], axis=1))
                    if size > 0 and resid < 0.5 * size:
                        T[:, j] = T[:, j] - np.cross(P[:, j], F[:, j])
                        notes.append(f"plate {name}: torques were moments about the origin; free moment = T - p x F")
                    lever = np.median(np.linalg.norm(T[loaded, j], axis=1) / np.linalg.norm(F[loaded, j], axis=1))
                    if lever > FREE_MOMENT_LEVER_M:
                        T[:, j] = np.nan
                        unknown_moment.append(name)
                        notes.append(
                            f"plate {name}: torques are {lever:.2f} m x |F|, neither a free moment nor moments about "
                            "the origin; free moment set NaN"
                        )
            unloaded = ~(F[:, j, v] >= cop_threshold)
            P[unloaded, j] = np.nan
    else:
        F = P = T = None
    history.extend(notes)

    kind = _file_kind(header, path)
    in_degrees = header.get("inDegrees")
    signals, units, converted = {}, {}, 0
    for label in rest:
        name, unit, is_angle = column_unit(label, kind=kind)
        values = df[label].to_numpy(float)
        if is_angle and in_degrees:
            values = np.deg2rad(values)
            converted += 1
        if name in signals:
            raise _err(f"two columns map to the signal name {name!r}", path)
        signals[name] = values
        units[name] = unit
    if converted:
        history.append(f"{converted} angle columns converted from degrees to rad (inDegrees=yes)")

    meta = {
        "format": path.suffix.lower().lstrip("."),
        "file_kind": kind,
        "header": _jsonable_header(header),
        "rate": float((time.size - 1) / (time[-1] - time[0])) if time.size > 1 else None,
    }
    if sides:
        meta["plate_sides"] = sides
    if in_degrees is None:
        meta["in_degrees_missing"] = True
    if unknown_moment:
        meta["free_moment_unknown"] = unknown_moment
    return Trial(
        time=time,
        forces=F,
        cop=P,
        free_moment=T,
        plate_names=tuple(names),
        signals=signals,
        units=units,
        source=str(path),
        up_axis=up_axis,
        meta=meta,
        history=tuple(history),
    )


def _jsonable_header(header: dict) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in header.items()}


