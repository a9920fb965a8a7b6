"""C3D files through ezc3d: :func:`read_c3d` -> :class:`~gaitforce.Trial`, and :func:`write_c3d`.

Rules this reader applies (each one is stated so a lab can check it against its own pipeline):

- **Time**: frame ``i`` is at ``(first_frame + i) / rate`` s, with ``first_frame`` the header's 0-based first
  frame (``TRIAL:ACTUAL_START_FIELD - 1`` in Vicon files), so times and the EVENT group share one clock.
- **Markers**: scaled from ``POINT:UNITS`` (mm, cm, m) to m. A sample whose residual is negative, or whose three
  coordinates are exactly zero, is NaN. Model outputs named in ``POINT:ANGLES/FORCES/MOMENTS/POWERS/SCALARS/
  REACTIONS`` and unlabelled trajectories (``*12``) are skipped. With ``SUBJECTS:USES_PREFIXES`` the prefix of the
  subject who owns most markers is removed from their labels (``JW:RHeel`` -> ``RHeel``).
- **Force plates**: every platform type ezc3d supports (1-4). ezc3d returns each plate's wrench rotated into the lab
  frame; plates differ in whether that is the force *on the plate* (the usual case: negate it) or already the
  reaction. Because the ground can only push, the sign of each plate is set so that its vertical force under load
  is upward (stated in the trial's history). The free moment is ezc3d's ``Tz`` with the same sign. Units come from
  the plate channels' ``ANALOG:UNITS`` (else ezc3d's units) and are converted to N, N m, m. CoP is NaN where the
  vertical force is below ``cop_threshold`` (20 N).
- **Resampling to frames**: analog data are averaged over a window of ``2 * (n // 2) + 1`` analog samples centred on
  each frame's synchronous sample (``n`` analog samples per frame) -- an anti-aliasing box filter without lag.
  CoP is averaged weighted by the vertical force.
- **Vertical axis**: the lab axis carrying the largest summed |force| of all plates while loaded; without plates or
  load, Z. ``y_up=True`` turns a Z-up trial into the canonical frame with :meth:`Trial.to_y_up`.
- **EMG**: every analog channel that is not a force-plate channel, has a voltage unit (V, mV, uV) and is not a known
  non-EMG channel (load cell, goniometer, sync, 'dud', 'Pin 7' ...), or exactly the ``emg=`` names. Kept at the
  analog rate in volts.
- **Events**: ``EVENT`` group, ``Foot Strike`` -> ``heel_strike``, ``Foot Off`` -> ``toe_off``, context
  Right/Left -> side; other events are listed in ``meta['other_events']``.
- **Subject**: name from ``SUBJECTS:NAMES``; mass (kg) and height from ``PROCESSING`` (Bodymass, Height) or
  ``SUBJECTS`` (MASS, HEIGHT); a height above 300 is read as mm, above 3 as cm. Implausible values are dropped and
  noted in ``meta['subject_dropped']``.
- **Damage**: a non-C3D, corrupt or truncated file (fewer frames than the header declares) raises
  :class:`InputFileError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from gaitforce.constants import COP_THRESHOLD_N
from gaitforce.errors import (
    GaitforceError,
    InputFileError,
    MissingChannelError,
    UnitError,
)
from gaitforce.io.units import LENGTH_UNITS
from gaitforce.trial import Event, Subject, Trial

#: Vertical force (N) below which a plate counts as unloaded: its CoP is NaN and it does not vote on signs/axes.

FORCE_UNITS = {"n": 1.0, "kn": 1e3, "lbf": 4.4482216152605}
VOLT_UNITS = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "microv": 1e-6}
MODEL_OUTPUT_GROUPS = ("ANGLES", "FORCES", "MOMENTS", "POWERS", "SCALARS", "REACTIONS")
NON_EMG = re.compile(
    r"^(pin\s*\d+|dud|sync.*|trigger.*|load\s*cell.*|loadcell.*|gon(iometer)?.*|channel[_\s]*\d+|"
    r"[fm][xyz]\d*|.*force.*|.*moment.*|acc.*|.*accel.*|.*gyro.*|mag[xyz]?\d*|.*magnet.*|.*volt.*|.*battery.*)$",
    re.IGNORECASE,
)
EVENT_NAMES = {"foot strike": "heel_strike", "foot off": "toe_off"}


# -- reading --------------------------------------------------------------------------------------------------
def read_c3d(
    path: str | os.PathLike,
    *,
    emg: list[str] | None = None,
    y_up: bool = True,
    cop_threshold: float = COP_THRESHOLD_N,
) -> Trial:
    """Read a C3D file into a Trial in SI units (rules in the module docstring).

    ``emg``: analog channel names to read as EMG (default: every non-force-plate voltage channel that is not a
    known non-EMG channel). ``y_up``: convert to the canonical Y-up frame.
    """
    path = Path(path)
    c3d, plate_error = _load(path)
    params = c3d["parameters"]
    rate = float(c3d["header"]["points"]["frame_rate"])
    if not rate > 0:
        raise InputFileError("POINT rate is missing or zero", source=path)
    first = int(c3d["header"]["points"]["first_frame"])
    points = np.asarray(c3d["data"]["points"], dtype=float)
    n = points.shape[2]
    declared = _declared_frames(path, params)
    if declared is not None and n < declared:
        raise InputFileError(f"truncated: {n} of {declared} frames present", source=path)
    if n < 2:
        raise InputFileError(f"only {n} frame(s)", source=path)
    time = (first + np.arange(n)) / rate
    history = [f"read_c3d({path.name})"]

    names, markers, subject_name = _markers(c3d, points, path)
    forces, cop, moment, plate_names, up, notes = _plates(c3d, n, cop_threshold, path)
    history += notes
    if plate_error:
        history.append(f"force plates not read: {plate_error}")
    emg_data, emg_time, emg_names = _emg(c3d, first, rate, emg, path)
    events, other = _events(params)
    subject, dropped = _subject(params, subject_name)
    meta = {"first_frame": first, "c3d_first_time": float(time[0]), "other_events": other}
    if dropped:
        meta["subject_dropped"] = dropped
    if plate_error:
        meta["plate_error"] = plate_error
    try:
        trial = Trial(
            time=time, markers=markers, marker_names=names, forces=forces, cop=cop, free_moment=moment,
            plate_names=plate_names, emg=emg_data, emg_time=emg_time, emg_names=emg_names, events=events,
            subject=subject, source=str(path), up_axis=up, meta=meta, history=tuple(history),
        )
    except GaitforceError as err:
        raise err.with_source(path) from None
    return trial.to_y_up() if y_up else trial


def _load(path: Path):
    """ezc3d's c3d with force-plate data, or without it (and the reason) where ezc3d cannot analyse the plates."""
    import ezc3d

    if not path.is_file():
        raise InputFileError("no such file", source=path)
    try:
        return ezc3d.c3d(str(path), extract_forceplat_data=True), None
    except Exception as err:  # ezc3d raises OSError/RuntimeError/ValueError for damaged files
        first_error = _one_line(err)
    try:
        c3d = ezc3d.c3d(str(path))
    except Exception:
        raise InputFileError(f"not a readable C3D file ({first_error})", source=path) from None
    return c3d, first_error


def _declared_frames(path: Path, params) -> int | None:
    """Frame count the file's own header declares (ezc3d reports what it could read, so a cut file looks whole).

    Header words 4-5 hold the 1-based first and last frame as 16-bit integers in the processor's byte order
    (parameter section byte 4: 84 Intel, 85 DEC, 86 MIPS); beyond 65535 frames ``TRIAL:ACTUAL_START/END_FIELD``
    (two 16-bit words, low first) are used.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
            fh.seek((head[0] - 1) * 512 + 3)
            processor = fh.read(1)[0]
    except (OSError, IndexError):
        return None
    order = ">" if processor == 86 else "<"
    first, last = np.frombuffer(head[6:10], dtype=f"{order}u2").astype(int)
    start, end = _values(params, "TRIAL", "ACTUAL_START_FIELD"), _values(params, "TRIAL", "ACTUAL_END_FIELD")
    if last == 65535 and start and end and len(start) >= 2 and len(end) >= 2:
        first = int(start[0]) % 65536 + 65536 * int(start[1])
        last = int(end[0]) % 65536 + 65536 * int(end[1])
    return int(last - first + 1) if last >= first else None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _values(params, group: str, name: str, default=None):
    try:
        value = params[group][name]["value"]
    except (KeyError, TypeError):
        return default
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist() if value.size else default
    return list(value) if len(value) else default


def _length_factor(unit: str, path) -> float:
    key = unit.strip().lower()
    if key not in LENGTH_UNITS:
        raise UnitError(f"unknown length unit {unit!r}", source=path)
    return LENGTH_UNITS[key]


def _markers(c3d, points: np.ndarray, path):
    params = c3d["parameters"]
    labels = [str(s).strip() for s in _values(params, "POINT", "LABELS", [])]
    labels += [f"_{i}" for i in range(len(labels), points.shape[1])]  # more points than labels: never kept
    skip = set()
    for group in MODEL_OUTPUT_GROUPS:
        skip.update(str(s).strip() for s in _values(params, "POINT", group, []) or [])
    units = _values(params, "POINT", "UNITS")
    xyz = points[:3].transpose(2, 1, 0).copy()  # (T, M, 3)
    if units:
        factor = _length_factor(str(units[0]), path)
    else:  # no unit stated: decide from the magnitude, like Trial's own mm check
        finite = xyz[np.isfinite(xyz)]
        factor = 1e-3 if finite.size and np.abs(finite).max() > 20.0 else 1.0
    residuals = np.asarray(c3d["data"]["meta_points"]["residuals"], dtype=float)[0].T  # (T, M)
    bad = (residuals < 0) | np.all(xyz == 0.0, axis=2)
    xyz[bad] = np.nan
    xyz *= factor

    prefix, subject = _subject_prefix(params, labels)
    keep, names = [], []
    for i, label in enumerate(labels):
        if label in skip or re.fullmatch(r"\*\d+|_\d+", label) or not label:
            continue
        name = label[len(prefix):] if prefix and label.startswith(prefix) else label
        if name in names:
            name = label
        if name in names:
            continue  # a duplicate label: keep the first
        keep.append(i)
        names.append(name)
    return names, xyz[:, keep, :], subject


def _subject_prefix(params, labels):
    """(prefix to strip, subject name): the subject who owns most markers when labels carry prefixes."""
    subjects = _values(params, "SUBJECTS", "NAMES", []) or []
    prefixes = _values(params, "SUBJECTS", "LABEL_PREFIXES", []) or []
    uses = (_values(params, "SUBJECTS", "USES_PREFIXES", [0]) or [0])[0]
    if uses and prefixes:
        counts = [sum(lab.startswith(p) for lab in labels) for p in prefixes]
        best = int(np.argmax(counts))
        name = subjects[best] if best < len(subjects) else prefixes[best].rstrip(":")
        return prefixes[best], str(name).strip()
    return "", (str(subjects[0]).strip() if subjects else "unknown")


def _frame_mean(x: np.ndarray, per_frame: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of analog samples (last axis) over a window centred on each frame's synchronous sample."""
    if per_frame == 1:
        return x.copy()
    size = 2 * (per_frame // 2) + 1
    if weights is None:
        return uniform_filter1d(x, size=size, axis=-1, mode="nearest")[..., ::per_frame]
    num = uniform_filter1d(x * weights, size=size, axis=-1, mode="nearest")[..., ::per_frame]
    den = uniform_filter1d(weights, size=size, axis=-1, mode="nearest")[..., ::per_frame]
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _force_unit(label_unit: str | None, fallback: str, path) -> float:
    for unit in (label_unit, fallback):
        if unit and unit.strip().lower() in FORCE_UNITS:
            return FORCE_UNITS[unit.strip().lower()]
    raise UnitError(f"force plate force unit {label_unit or fallback!r} is not a force unit", source=path)


def _moment_unit(unit: str, path) -> tuple[float, float]:
    """(factor to N m, the length factor) of a unit like 'Nmm', 'N.mm', 'N m'."""
    m = re.fullmatch(r"\s*(n|kn|lbf)[\s.*·]*(mm|cm|m)\s*", unit.lower())
    if not m:
        raise UnitError(f"force plate moment unit {unit!r} is not understood", source=path)
    return FORCE_UNITS[m.group(1)] * LENGTH_UNITS[m.group(2)], LENGTH_UNITS[m.group(2)]


def _plates(c3d, n: int, threshold: float, path):
    """Per-frame GRF (on the body), CoP and free moment of every plate, the up axis and notes for the history."""
    params = c3d["parameters"]
    platforms = c3d["data"].get("platform", []) if hasattr(c3d["data"], "get") else []
    empty = np.zeros((n, 0, 3))
    if not platforms:
        return empty, empty, empty, [], "z", []
    analog_units = [str(s).strip() for s in _values(params, "ANALOG", "UNITS", [])]
    channels = np.asarray(params["FORCE_PLATFORM"]["CHANNEL"]["value"])
    n_analog = platforms[0]["force"].shape[1]
    per_frame = max(1, n_analog // n)
    position_factor = _length_factor(platforms[0]["unit_position"], path)

    raw_f, raw_cop, raw_tz, names = [], [], [], []
    for i, pf in enumerate(platforms):
        chans = channels[:, i] - 1 if channels.ndim == 2 else channels - 1
        unit_of = lambda k: analog_units[chans[k]] if chans[k] < len(analog_units) else None  # noqa: E731
        f_factor = _force_unit(unit_of(2), pf["unit_force"], path)
        m_factor, m_length = _moment_unit(unit_of(5) or pf["unit_moment"], path)
        if abs(m_length - position_factor) > 1e-12 and len(chans) == 6 and int(
            np.asarray(params["FORCE_PLATFORM"]["TYPE"]["value"]).reshape(-1)[i]
        ) in (2, 4):
            raise UnitError(
                f"plate {i + 1}: moments in {unit_of(5)!r} but positions in {pf['unit_position']!r}; "
                "ezc3d's CoP would be wrong by a power of ten",
                source=path,
            )
        raw_f.append(np.asarray(pf["force"], dtype=float)[:, : n * per_frame] * f_factor)
        raw_cop.append(np.asarray(pf["center_of_pressure"], dtype=float)[:, : n * per_frame] * position_factor)
        raw_tz.append(np.asarray(pf["Tz"], dtype=float)[:, : n * per_frame] * m_factor)
        names.append(f"FP{i + 1}")
    raw_f = np.stack(raw_f)  # (P, 3, S)
    raw_cop, raw_tz = np.stack(raw_cop), np.stack(raw_tz)

    loaded = np.linalg.norm(raw_f, axis=1) > threshold  # (P, S)
    load_per_axis = np.array([np.abs(raw_f[:, k, :])[loaded].sum() for k in range(3)])
    notes = []
    if load_per_axis.sum() == 0:
        vertical, up = 2, "z"
        notes.append("no plate loaded: Z taken as vertical")
    else:
        vertical = int(np.argmax(load_per_axis))
        if vertical == 0:
            raise InputFileError("the plates' largest force is along X; an X-up lab is not supported", source=path)
        up = "zy"[vertical == 1]
    signs = []
    for p in range(len(names)):
        fv = raw_f[p, vertical, loaded[p]]
        sign = -1.0 if fv.size and np.median(fv) < 0 else 1.0
        signs.append(sign)
    flipped = [names[p] for p, s in enumerate(signs) if s < 0]
    notes.append(
        f"force plates: vertical axis {'xyz'[vertical].upper()}; "
        + (f"negated (force on plate -> on body): {', '.join(flipped)}" if flipped else "already the reaction on the body")
    )
    signs = np.asarray(signs)[:, None, None]
    grf, tz = raw_f * signs, raw_tz * signs
    fz = grf[:, vertical, :]
    weights = np.where(fz > threshold, fz, 0.0)[:, None, :].repeat(3, axis=1)
    cop_src = np.where(weights > 0, np.nan_to_num(raw_cop), 0.0)
    forces = _frame_mean(grf, per_frame)
    moment = _frame_mean(np.nan_to_num(tz), per_frame)
    cop = _frame_mean(cop_src, per_frame, weights)
    cop[(forces[:, vertical, :] < threshold)[:, None, :].repeat(3, axis=1)] = np.nan
    to_tp3 = lambda a: a.transpose(2, 0, 1)[:n]  # noqa: E731 - (P, 3, T) -> (T, P, 3)
    return to_tp3(forces), to_tp3(cop), to_tp3(moment), names, up, notes


def _emg(c3d, first: int, rate: float, wanted, path):
    params = c3d["parameters"]
    analogs = np.asarray(c3d["data"]["analogs"], dtype=float)
    if analogs.size == 0:
        if wanted:
            raise MissingChannelError(f"no analog channels; EMG {wanted} not found", source=path)
        return None, None, ()
    analogs = analogs[0]
    labels = [str(s).strip() for s in _values(params, "ANALOG", "LABELS", [])]
    units = [str(s).strip() for s in _values(params, "ANALOG", "UNITS", [])] or [""] * len(labels)
    a_rate = float(c3d["header"]["analogs"]["frame_rate"]) or rate * max(1, analogs.shape[1] // max(1, c3d["data"]["points"].shape[2]))
    plate_channels = set()
    if "FORCE_PLATFORM" in params and "CHANNEL" in params["FORCE_PLATFORM"]:
        plate_channels = {int(c) - 1 for c in np.asarray(params["FORCE_PLATFORM"]["CHANNEL"]["value"]).reshape(-1) if c > 0}
    if wanted is not None:
        missing = [w for w in wanted if w not in labels]
        if missing:
            raise MissingChannelError(f"EMG channels not in file: {', '.join(missing)}", source=path)
        idx = [labels.index(w) for w in wanted]
    else:
        idx = [
            i for i, lab in enumerate(labels)
            if i not in plate_channels and i < len(units) and units[i].lower() in VOLT_UNITS and not NON_EMG.match(lab)
        ]
    if not idx:
        return None, None, ()
    scale = np.array([VOLT_UNITS.get(units[i].lower(), 1.0) if i < len(units) else 1.0 for i in idx])
    data = analogs[idx].T * scale
    emg_time = first / rate + np.arange(data.shape[0]) / a_rate
    return data, emg_time, tuple(labels[i] for i in idx)


def _events(params):
    labels = _values(params, "EVENT", "LABELS", []) or []
    contexts = _values(params, "EVENT", "CONTEXTS", []) or []
    used = int((_values(params, "EVENT", "USED", [0]) or [0])[0])
    events, other = [], []
    if not used:
        return events, other
    times = np.asarray(params["EVENT"]["TIMES"]["value"], dtype=float).reshape(2, -1)
    for k in range(min(used, len(labels), times.shape[1])):
        t = 60.0 * times[0, k] + times[1, k]
        label = str(labels[k]).strip()
        side = str(contexts[k]).strip().lower() if k < len(contexts) else ""
        name = EVENT_NAMES.get(label.lower())
        if name and side in ("right", "left"):
            events.append(Event(name, float(t), side))
        else:
            other.append({"label": label, "context": side, "time": float(t)})
    return events, other


def _first_number(params, candidates):
    for group, name in candidates:
        values = _values(params, group, name)
        if values:
            try:
                v = float(values[0])
            except (TypeError, ValueError):
                continue
            if np.isfinite(v) and v > 0:
                return v
    return None


def _subject(params, name: str):
    mass = _first_number(params, [("PROCESSING", "Bodymass"), ("PROCESSING", "BodyMass"), ("SUBJECTS", "MASS"), ("SUBJECTS", "WEIGHT"), ("SUBJECT", "MASS")])
    height = _first_number(params, [("PROCESSING", "Height"), ("SUBJECTS", "HEIGHT"), ("SUBJECT", "HEIGHT")])
    if height is not None:
        height = height / 1000.0 if height > 300 else height / 100.0 if height > 3 else height
    dropped = {}
    if mass is not None and not 0 < mass < 500:
        dropped["mass"], mass = mass, None
    if height is not None and not 0.3 < height < 3.0:
        dropped["height"], height = height, None
    return Subject(id=name or "unknown", mass=mass, height=height), dropped


# -- writing --------------------------------------------------------------------------------------------------
def write_c3d(path: str | os.PathLike, trial: Trial) -> Path:
    """Write markers (mm), force plates (type 2, the force on the plate in N / N mm), EMG (V), events and the
    subject's mass/height to a Z-up C3D that :func:`read_c3d` reads back to the same trial (up to float32
    precision and the frame-window average, which is exact for data linear within a frame).

    Each plate is written as a rectangle in the floor centred on its mean loaded CoP, large enough to hold every
    CoP. The analog rate is the EMG rate rounded to a whole multiple of the frame rate (or the frame rate without
    EMG); plate data are linearly interpolated onto it. Time is kept when it starts on a whole frame.
    """
    import ezc3d

    path = Path(path)
    t = trial.to_z_up()
    rate = t.rate
    n = t.n_frames
    per_frame = max(1, int(round(t.emg_rate / rate))) if t.emg_names and t.emg_rate else 1
    a_rate = rate * per_frame
    first = int(round(t.time[0] * rate))
    if abs(first / rate - t.time[0]) > 1e-6 or first < 0:
        first = 0  # time does not start on a whole frame: written from frame 0
    c = ezc3d.c3d()
    c["header"]["points"]["first_frame"] = first
    c["parameters"]["POINT"]["RATE"]["value"] = [rate]
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(t.marker_names)
    pts = np.zeros((4, len(t.marker_names), n))
    xyz = t.markers.transpose(2, 1, 0) * 1000.0
    seen = np.isfinite(xyz).all(axis=0)
    pts[:3] = np.where(seen, xyz, 0.0)
    pts[3] = 1.0
    c["data"]["points"] = pts
    if len(t.marker_names):
        c["data"]["meta_points"]["residuals"] = np.where(seen, 0.0, -1.0)[None]

    a_time = t.time[0] + np.arange(n * per_frame) / a_rate
    channels, labels, units = [], [], []
    corners, chan_idx = [], []
    for p, name in enumerate(t.plate_names):
        wrench, corner = _plate_channels(t, p)
        chan_idx.append([len(labels) + k + 1 for k in range(6)])
        for k, axis in enumerate(("Fx", "Fy", "Fz", "Mx", "My", "Mz")):
            channels.append(np.interp(a_time, t.time, wrench[:, k]))
            labels.append(f"{axis}{p + 1}")
            units.append("N" if k < 3 else "Nmm")
        corners.append(corner)
    for k, name in enumerate(t.emg_names):
        channels.append(np.interp(a_time, t.emg_time, t.emg[:, k]))
        labels.append(name)
        units.append("V")
    if channels:
        c["parameters"]["ANALOG"]["RATE"]["value"] = [a_rate]
        c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
        c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(units)
        c["data"]["analogs"] = np.asarray(channels)[None]
    if t.plate_names:
        p = len(t.plate_names)
        _add_int_parameter(c, "FORCE_PLATFORM", "USED", [p])
        _add_int_parameter(c, "FORCE_PLATFORM", "TYPE", [2] * p)
        _add_int_parameter(c, "FORCE_PLATFORM", "ZERO", [1, 0])
        c.add_parameter("FORCE_PLATFORM", "CORNERS", np.asarray(corners).transpose(2, 1, 0))
        c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, p)))
        _add_int_parameter(c, "FORCE_PLATFORM", "CHANNEL", np.asarray(chan_idx).T)
    for e in t.events:
        label = {"heel_strike": "Foot Strike", "toe_off": "Foot Off"}.get(e.name, e.name)
        minutes = float(np.floor(e.time / 60.0))
        c.add_event(time=[minutes, e.time - 60.0 * minutes], context=e.side.capitalize(), label=label)
    c.add_parameter("SUBJECTS", "NAMES", [t.subject.id])
    if t.subject.mass is not None:
        c.add_parameter("PROCESSING", "Bodymass", [float(t.subject.mass)])
    if t.subject.height is not None:
        c.add_parameter("PROCESSING", "Height", [float(t.subject.height) * 1000.0])
    try:
        c.write(str(path))
    except Exception as err:
        raise InputFileError(f"cannot write C3D: {_one_line(err)}", source=path) from None
    return path


def _add_int_parameter(c, group: str, name: str, value) -> None:
    """An integer parameter (ezc3d's ``add_parameter`` stores numbers as floats; readers need INT here)."""
    value = np.asarray(value, dtype=np.int64)
    c.add_parameter(group, name, value.astype(np.float64))
    c["parameters"][group][name]["value"] = value
    c["parameters"][group][name]["type"] = 2


def _plate_channels(t: Trial, p: int):
    """Type-2 channels (T, 6) of plate ``p`` of a Z-up trial (force on the plate, N and N mm, plate axes: x = lab
    x, y = -lab y, z = down) and its 4 corners (4, 3) in mm."""
    grf = np.nan_to_num(t.forces[:, p, :])
    cop = t.cop[:, p, :]
    loaded = np.isfinite(cop).all(axis=1)
    centre = np.nanmean(cop[loaded], axis=0) if loaded.any() else np.zeros(3)
    half = np.array([0.3, 0.2])
    if loaded.any():
        half = np.maximum(half, np.abs(cop[loaded, :2] - centre[:2]).max(axis=0) + 0.05)
    r = np.where(loaded[:, None], cop - centre, 0.0)
    action_f = -grf
    action_m = np.cross(r, action_f) - np.nan_to_num(t.free_moment[:, p, :])
    to_plate = np.diag([1.0, -1.0, -1.0])  # lab -> plate axes (a rotation of 180 degrees about x)
    wrench = np.hstack([action_f @ to_plate.T, (action_m @ to_plate.T) * 1000.0])
    a, b = half
    corners = centre + np.array([[a, -b, 0.0], [-a, -b, 0.0], [-a, b, 0.0], [a, b, 0.0]])
    return wrench, corners * 1000.0
