"""OpenSim text formats: STO/MOT tables and TRC marker files, read into and written from :class:`Trial`.

Readers
-------
- :func:`read_sto_table` -> ``(DataFrame, header)``: any OpenSim storage file (``.sto``/``.mot``), header
  versions 1-3 and the older SIMM style (``datacolumns``/``datarows``/``range``), tab or whitespace separated.
- :func:`read_mot` -> :class:`Trial`: ground-reaction families become force plates, every other column a
  per-frame signal with a unit (rules in :func:`column_unit`); the time base is the file's own.
- :func:`read_trc` -> :class:`Trial`: markers in m, header fields taken from the file (never guessed),
  optionally merged with a GRF file resampled onto the marker frames.

Writers
-------
:func:`write_sto`, :func:`write_trc`, :func:`write_mot_grf` write files OpenSim 4.6 loads
(``TimeSeriesTable``, ``TimeSeriesTableVec3``, ``ExternalLoads``).

Conventions (stated once, applied everywhere here)
--------------------------------------------------
- Axes: OpenSim files are Y-up. A file is kept ``up_axis='y'`` unless the data clearly say otherwise:
  for markers, when the median per-frame marker spread along Z exceeds twice that along Y and Z is the
  largest spread; for GRF, when the loaded plates' median |Fz| exceeds three times their median |Fy|.
- Force sign: ``Trial.forces`` is the force *on the body*. A plate whose loaded vertical force is mostly
  negative (a raw "force on the plate" export) has its force and torque negated, and the step is recorded.
- Torques: a plate's torque columns are taken as the free moment about the CoP, as ExternalLoads applies
  them. When they are instead moments about the lab origin (they match ``p x F`` to within half their
  size on loaded samples, as AddBiomechanics' ``_m[xyz]`` columns do) the free moment ``T - p x F`` is used.
- Centre of pressure is NaN where the plate's vertical force is below ``cop_threshold`` (default 10 N).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .units import LENGTH_UNITS
from ..errors import GaitforceError, InputFileError, UnitError
from ..trial import MAX_MARKER_COORD_M, Trial

__all__ = [
    "read_sto_table",
    "read_mot",
    "read_trc",
    "write_sto",
    "write_trc",
    "write_mot_grf",
    "column_unit",
    "find_grf_sibling",
    "merge_grf",
]

#: Vertical force (N) below which a plate counts as unloaded and its CoP is NaN.
COP_THRESHOLD_N = 10.0

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
# Column classification
# ------------------------------------------------------------------------------------------------------
#: A GRF family column: prefix, the force/torque word, an optional infix (plate id), component, axis.
_GRF_RE = re.compile(
    r"^(?P<pre>(?:[A-Za-z0-9]+_)*?)(?P<word>ground_force|ground_torque|ground_moment|force|torque|moment)"
    r"(?P<mid>(?:_[A-Za-z0-9]+)*?)_(?P<comp>[vpm]?)(?P<axis>[xyz])$",
    re.IGNORECASE,
)
_TRANSLATION_RE = re.compile(r"_t[xyz]$|^(?:.*_)?(?:tx|ty|tz)$", re.IGNORECASE)
#: Roots of coordinate names of the common gait models; a force-file column starting with one is an actuator.
_COORD_ROOTS = (
    "pelvis_", "hip_", "knee_", "ankle_", "subtalar_", "mtp_", "lumbar_", "arm_", "elbow_", "pro_sup",
    "wrist_", "patfem_", "back_", "neck_",
)
_RESIDUALS = {"fx": "N", "fy": "N", "fz": "N", "mx": "N m", "my": "N m", "mz": "N m"}


@dataclass
class _Family:
    key: str
    force: dict = field(default_factory=dict)  # axis -> column
    point: dict = field(default_factory=dict)
    torque: dict = field(default_factory=dict)
    torque_is_m: bool = False  # columns named ..._m[xyz] inside the force family


def _grf_family(label: str) -> tuple[str, str, str, bool] | None:
    """``label`` -> (family key, kind 'v'/'p'/'t', axis, from an _m column) or None when not a GRF column."""
    m = _GRF_RE.match(label)
    if not m:
        return None
    word = m["word"].lower()
    comp = m["comp"].lower()
    pre = m["pre"].rstrip("_")
    mid = m["mid"].lstrip("_")
    if word.endswith("force"):
        if comp not in ("v", "p", "m"):
            return None
        kind = "t" if comp == "m" else comp
    else:  # torque / moment columns have no component letter
        if comp:
            return None
        kind = "t"
    if word in ("force", "torque", "moment") and not pre:
        return None  # a bare "force_vx" names no body: not a family we know
    key = "_".join(s for s in (pre, mid) if s)
    return key or "ground", kind, m["axis"].lower(), comp == "m"


def side_of(key: str) -> str | None:
    """'right' / 'left' when a family key names a side (``r``, ``L``, ``calcn_r``, ``right``), else None."""
    tokens = [t.lower() for t in re.split(r"[_\W]+", key) if t]
    if any(t in ("r", "right") for t in tokens):
        return "right"
    if any(t in ("l", "left") for t in tokens):
        return "left"
    return None


def _file_kind(header: dict, path: Path) -> str:
    text = f"{header.get('name', '')} {path.stem}".lower()
    tokens = set(re.split(r"[_\W]+", text))
    if "electromyography" in tokens or "emg" in tokens:
        return "emg"
    if "modelforces" in tokens or "so_force" in text or "forcereporter" in tokens:
        return "forces"
    if tokens & {"coordinates", "kinematics", "ik"}:
        return "coordinates"
    if "inverse dynamics" in text or "id" in tokens:
        return "dynamics"
    if header.get("inDegrees") is True:
        return "coordinates"
    return "other"


def column_unit(label: str, *, kind: str = "other") -> tuple[str, str, bool]:
    """``(signal name, unit, is_angle)`` for a non-GRF column of a file of ``kind``.

    Rules, first match wins:
      1. joint-reaction ``*_on_*_in_*_f[xyz]`` "N", ``_m[xyz]`` "N m", ``_p[xyz]`` "m";
      2. reported external forces ``*_F[xyz]`` "N", ``*_T[xyz]`` "N m", ``*_p[xyz]`` "m";
      3. inverse dynamics ``*_moment`` "N m", ``*_force`` "N";
      4. OpenSim 4 state paths ``/jointset/<joint>/<coord>/value|speed`` become ``<coord>`` / ``<coord>_speed``;
         ``/activation`` and ``.activation`` "1", ``fiber_length`` "m";
      5. speeds (``*_u``, ``/speed``): "m/s" for translations, else "rad/s";
      6. translations (``*_tx/_ty/_tz``): "m"; in a force file, their actuators "N";
      7. EMG files: ``emg_<name>`` unit "1"; force files (static optimisation): residuals FX..MZ,
         actuators of coordinates (names starting with a gait-model coordinate root) "N m", muscles "N";
         coordinate files: "rad" (angles);
      8. anything else "unknown".
    """
    low = label.lower()
    name = label
    m = re.match(r"^/(?:jointset|forceset)/[^/]+/(?P<coord>[^/]+)/(?P<what>value|speed|activation)$", label)
    if m is None:
        m = re.match(r"^/(?:forceset)/(?P<coord>[^/]+)/(?P<what>activation)$", label)
    if m is not None:
        coord, what = m["coord"], m["what"]
        if what == "activation":
            return f"{coord}_activation", "1", False
        translation = bool(_TRANSLATION_RE.search(coord))
        if what == "speed":
            return f"{coord}_speed", "m/s" if translation else "rad/s", not translation
        return coord, "m" if translation else "rad", not translation
    if re.search(r"_on_.+_in_.+_[fmp][xyz]$", low):
        return name, {"f": "N", "m": "N m", "p": "m"}[low[-2]], False
    if re.search(r"_[FT][xyz]$", label) or (kind == "forces" and re.search(r"_p[xyz]$", label)):
        return name, {"F": "N", "T": "N m", "p": "m"}[label[-2]], False
    if low.endswith("_moment"):
        return name, "N m", False
    if low.endswith("_force") and kind != "forces":
        return name, "N", False
    if low.endswith((".activation", "_activation")):
        return name, "1", False
    if low.endswith(".fiber_length"):
        return name, "m", False
    if low.endswith("_u") or low.endswith("_speed"):
        base = re.sub(r"_(u|speed)$", "", label)
        translation = bool(_TRANSLATION_RE.search(base))
        return name, "m/s" if translation else "rad/s", not translation
    if kind == "emg":
        return f"emg_{name}", "1", False
    if kind == "forces":
        if low in _RESIDUALS:
            return name, _RESIDUALS[low], False
        base = re.sub(r"_(coordact|reserve|actuator|act)$", "", low)
        if base.startswith(_COORD_ROOTS) or base != low:
            return name, "N" if _TRANSLATION_RE.search(base) else "N m", False
        return name, "N", False
    if _TRANSLATION_RE.search(low):
        return name, "m", False
    if kind == "coordinates":
        return name, "rad", True
    return name, "unknown", False


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
    loaded = mag > 5 * COP_THRESHOLD_N
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
    width = max(len(r.split("\t")) if tabbed else len(r.split()) for r in rows)
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
                raise UnitError(
                    f"markers span {med:.3g} m per frame with Units={unit!r}, not a human body: "
                    f"the data look like {guess}",
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


def _window_mean(t_src, values, edges):
    """Mean of ``values`` (N, ...) over samples with ``edges[i] <= t < edges[i+1]``; NaN for empty windows.

    NaN samples are left out of their window's mean. A sample within 1% of its spacing of an edge counts as on
    it (files print times with few decimals), so it opens the later window."""
    tol = 0.01 * float(np.median(np.diff(t_src))) if t_src.size > 1 else 0.0
    lo = np.searchsorted(t_src, edges[:-1] - tol, side="left")
    hi = np.searchsorted(t_src, edges[1:] - tol, side="left")
    flat = values.reshape(len(values), -1)
    ok = np.isfinite(flat)
    csum = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(np.where(ok, flat, 0.0), axis=0)])
    ccount = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(ok, axis=0)])
    total = csum[hi] - csum[lo]
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[count == 0] = np.nan
    return out.reshape((len(edges) - 1,) + values.shape[1:])


def _interp(t_src, values, t_dst):
    flat = values.reshape(len(values), -1)
    out = np.full((len(t_dst), flat.shape[1]), np.nan)
    inside = (t_dst >= t_src[0]) & (t_dst <= t_src[-1])
    for k in range(flat.shape[1]):
        out[inside, k] = np.interp(t_dst[inside], t_src, flat[:, k])
    return out.reshape((len(t_dst),) + values.shape[1:])


def _mean_rate(trial: Trial) -> float:
    """Samples per second over the whole record (robust to times printed with few decimals)."""
    return float((trial.n_frames - 1) / trial.duration)


def merge_grf(markers: Trial, grf: Trial, *, cop_threshold: float = COP_THRESHOLD_N) -> Trial:
    """``markers`` with the plates (and signals) of ``grf`` resampled onto its frames.

    Force rate above the marker rate: each frame gets the mean over its window ``[t - dt/2, t + dt/2)``
    (force and free moment plain means, CoP weighted by vertical force over the samples whose CoP is known).
    Otherwise linear interpolation.
    Frames the GRF does not cover are NaN; CoP is NaN where the frame's vertical force is below
    ``cop_threshold``.
    """
    if grf.up_axis != markers.up_axis:
        raise InputFileError(
            f"the marker file is {markers.up_axis.upper()}-up but the GRF file {Path(grf.source).name} is "
            f"{grf.up_axis.upper()}-up",
            source=markers.source,
        )
    t = markers.time
    tg = grf.time
    overlap = min(t[-1], tg[-1]) - max(t[0], tg[0])
    if overlap <= 0:
        raise InputFileError(
            f"the GRF file {Path(grf.source).name} ({tg[0]:.3f}-{tg[-1]:.3f} s) does not overlap the markers "
            f"({t[0]:.3f}-{t[-1]:.3f} s)",
            source=markers.source,
        )
    v = markers.vertical_index
    higher = _mean_rate(grf) > markers.rate * 1.01
    if higher:
        dt = 1.0 / markers.rate
        edges = np.concatenate([t - dt / 2, [t[-1] + dt / 2]])
        F = _window_mean(tg, grf.forces, edges)
        T = _window_mean(tg, grf.free_moment, edges)
        # weight = vertical force where the CoP is known: a sample whose CoP is NaN (below the threshold)
        # must not count in the denominator, or the frame's CoP is pulled towards the origin
        fv = np.clip(np.nan_to_num(grf.forces[:, :, v]), 0, None)
        fv = np.where(np.isfinite(grf.cop).all(axis=2), fv, 0.0)
        num = _window_mean(tg, np.nan_to_num(grf.cop) * fv[:, :, None], edges)
        den = _window_mean(tg, fv, edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            P = num / den[:, :, None]
        signals = {k: _window_mean(tg, val, edges) for k, val in grf.signals.items()}
        how = f"window mean {_mean_rate(grf):.0f} Hz -> {markers.rate:.0f} Hz"
    else:
        F = _interp(tg, grf.forces, t)
        T = _interp(tg, grf.free_moment, t)
        P = _interp(tg, grf.cop, t)
        signals = {k: _interp(tg, val, t) for k, val in grf.signals.items()}
        how = f"linear interpolation {_mean_rate(grf):.0f} Hz -> {markers.rate:.0f} Hz"
    P[~(F[:, :, v] >= cop_threshold)] = np.nan
    covered = float(np.mean(np.isfinite(F).all(axis=(1, 2)))) if F.size else 1.0
    meta = {
        **markers.meta,
        "grf_source": str(grf.source),
        "grf_rate": _mean_rate(grf),
        "grf_coverage": covered,
        "grf_meta": dict(grf.meta),
    }
    if "plate_sides" in grf.meta:
        meta["plate_sides"] = dict(grf.meta["plate_sides"])
    units = {**markers.units, **grf.units}
    return dataclasses.replace(
        markers,
        forces=F,
        cop=P,
        free_moment=T,
        plate_names=grf.plate_names,
        signals={**markers.signals, **signals},
        units=units,
        meta=meta,
        history=markers.history + tuple(grf.history) + (f"merge GRF {Path(grf.source).name}: {how}",),
    )


# ------------------------------------------------------------------------------------------------------
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
