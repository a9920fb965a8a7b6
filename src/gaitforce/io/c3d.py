"""C3D files through ezc3d: :func:`read_c3d` -> :class:`~gaitforce.Trial`, and :func:`write_c3d`.

Rules this reader applies (each one is stated so a lab can check it against its own pipeline):

- **Time**: frame ``i`` is at ``(first_frame + i) / rate`` s, with ``first_frame`` the header's 0-based first
  frame (``TRIAL:ACTUAL_START_FIELD - 1`` in Vicon files), so times and the EVENT group share one clock.
- **Markers**: scaled from ``POINT:UNITS`` (mm, cm, m in any spelling, e.g. ``mete``; none: mm if a coordinate
  exceeds 20) to m. When ``POINT:LABELS`` lists more names than there are points, the first names label the points. A sample whose residual is negative, or whose three
  coordinates are exactly zero, is NaN. Model outputs named in ``POINT:ANGLES/FORCES/MOMENTS/POWERS/SCALARS/
  REACTIONS`` and unlabelled trajectories (``*12``) are skipped. With ``SUBJECTS:USES_PREFIXES`` the prefix of the
  subject who owns most markers is removed from their labels (``JW:RHeel`` -> ``RHeel``).
- **Force plates**: every platform type ezc3d supports (1-4). ezc3d returns each plate's wrench rotated into the lab
  frame; plates differ in whether that is the force *on the plate* (the usual case: negate it) or already the
  reaction. Because the ground can only push, the sign of each plate is set so that its vertical force under load
  is upward (samples above 20% of the plate's peak vote; stated in the trial's history). The free moment is ezc3d's
  ``Tz`` with the same sign. Units come from the plate channels' ``ANALOG:UNITS`` when they are a force/moment unit;
  raw channels (V, ADC, none) are calibrated by ezc3d (SCALE, OFFSET, CAL_MATRIX) into N and N x the length unit.
  CoP is NaN where the vertical force is below ``cop_threshold`` (20 N), and for type-3 plates without sensor
  offsets. Plates without analog frames are dropped with the reason in ``meta['plate_error']``; above 25 kN a plate
  is a :class:`UnitError`.
- **Resampling to frames**: analog data are averaged over a window of ``2 * (n // 2) + 1`` analog samples centred on
  each frame's synchronous sample (``n`` analog samples per frame) -- an anti-aliasing box filter without lag.
  CoP is averaged weighted by the vertical force.
- **Vertical axis**: the lab axis carrying the largest summed |force| of all plates while loaded; without plates or
  load, Z. ``y_up=True`` turns a Z-up trial into the canonical frame with :meth:`Trial.to_y_up`.
- **EMG**: every analog channel that is not a force-plate channel, has a voltage unit (V, mV, uV) and is not a known
  non-EMG channel (load cell, goniometer, sync, 'dud', 'Pin 7', 'CH13' ...) nor a force/moment/CoP channel by name
  (:func:`is_force_channel`), or exactly the ``emg=`` names. Kept at the
  analog rate in volts.
- **Events**: ``EVENT`` group, ``Foot Strike`` -> ``heel_strike``, ``Foot Off`` -> ``toe_off``, context
  Right/Left -> side; other events are listed in ``meta['other_events']``. ``EVENT:TIMES`` is (2, n), minutes and
  seconds; a flat copy holds (minutes, seconds) pairs.
- **Subject**: name from ``SUBJECTS:NAMES``; mass (kg) and height from ``PROCESSING`` (Bodymass, Height) or
  ``SUBJECTS`` (MASS, HEIGHT); a height above 300 is read as mm, above 3 as cm. Implausible values are dropped and
  noted in ``meta['subject_dropped']``.
- **Damage**: an empty, non-C3D, SGI/MIPS, corrupt or truncated file (fewer frames than the header declares) raises
  :class:`InputFileError`; a file with no markers, plates or EMG to read a :class:`MissingChannelError`. Every
  failure is one line naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from gaitforce.constants import COP_THRESHOLD_N
from gaitforce.errors import (
    GaitforceError,
    InputFileError,
    MissingChannelError,
    UnitError,
)
from gaitforce.io.c3d_params import _one_line, _values
from gaitforce.io.c3d_plates import _plates
from gaitforce.io.units import length_factor, volt_factor
from gaitforce.trial import Event, Subject, Trial

MODEL_OUTPUT_GROUPS = ("ANGLES", "FORCES", "MOMENTS", "POWERS", "SCALARS", "REACTIONS")
NON_EMG = re.compile(
    r"^(pin\s*\d+|dud|sync.*|trigger.*|load\s*cell.*|loadcell.*|gon(iometer)?.*|ch(annel)?[_\s]*\d+|"
    r"[fm][xyz]\d*|.*force.*|.*moment.*|acc.*|.*accel.*|.*gyro.*|mag[xyz]?\d*|.*magnet.*|.*volt.*|.*battery.*)$",
    re.IGNORECASE,
)
#: Words and label parts (split at non-alphanumerics) that make an analog channel a force/moment/CoP channel.
FORCE_WORDS = re.compile(r"force|moment|torque|\bcop|cent(re|er).?of.?press|plate|platform|tapis|treadmill")
FORCE_TOKEN = re.compile(r"(fp|pf)?\d*[fmpt]\d*[xyz]\d*|(fp|pf)\d+|cop[xyz]?\d*|[xyz]cop\d*|cp[xyz]\d*")
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

    names, markers, subject_name, length, marker_notes = _markers(c3d, points, path)
    history += marker_notes
    if plate_error is None:
        forces, cop, moment, plate_names, up, notes, plate_error = _plates(c3d, n, rate, length, cop_threshold, path)
        history += notes
    else:
        forces = cop = moment = np.zeros((n, 0, 3))
        plate_names, up = [], "z"
    if plate_error:
        history.append(f"force plates not read: {plate_error}")
    emg_data, emg_time, emg_names = _emg(c3d, first, rate, emg, path)
    if not names and not plate_names and not emg_names:
        what = f"no force data ({plate_error})" if plate_error else "no force plates"
        raise MissingChannelError(f"nothing to read: no markers, {what}, no EMG", source=path)
    events, other, event_notes = _events(params)
    history += event_notes
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
    except ValueError as err:  # the file's parts disagree (shapes, times): a damaged or unusual file, not a bug here
        raise InputFileError(f"inconsistent data: {_one_line(err)}", source=path) from None
    return trial.to_y_up() if y_up else trial


#: ezc3d's advice meant for programmers, dropped from the one line a user sees
_EZC3D_NOISE = re.compile(
    r"\s*(If you want to ignore this error, set ignoreBadFormatting to true|please open a GitHub issue[^.!]*[.!]?"
    r"|:?\s*iostream error)\s*",
    re.IGNORECASE,
)


def _ezc3d_reason(err: Exception) -> str:
    text = _EZC3D_NOISE.sub(" ", _one_line(err)).strip(" ,:.;")
    return text or type(err).__name__


def _load(path: Path):
    """ezc3d's c3d with force-plate data, or without it (and the reason) where ezc3d cannot analyse the plates."""
    import ezc3d

    if not path.is_file():
        raise InputFileError("no such file", source=path)
    if path.stat().st_size == 0:
        raise InputFileError("empty file (0 bytes), not a C3D file", source=path)
    try:
        return ezc3d.c3d(str(path), extract_forceplat_data=True), None
    except Exception as err:  # ezc3d raises OSError/RuntimeError/ValueError for damaged files
        first_error = _ezc3d_reason(err)
    try:
        c3d = ezc3d.c3d(str(path))
    except Exception:
        if "mips" in first_error.lower():
            raise InputFileError(
                "SGI/MIPS byte order (processor type 86) is not supported by ezc3d: "
                "re-save the file in Intel (PC) byte order", source=path) from None
        if path.stat().st_size < 512:
            raise InputFileError(f"not a C3D file: only {path.stat().st_size} bytes", source=path) from None
        raise InputFileError(f"not a readable C3D file, damaged or truncated ({first_error})", source=path) from None
    return c3d, f"ezc3d cannot analyse them ({first_error})"


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
    except (OSError, IndexError, ValueError):
        return None
    order = ">" if processor == 86 else "<"
    first, last = np.frombuffer(head[6:10], dtype=f"{order}u2").astype(int)
    start, end = _values(params, "TRIAL", "ACTUAL_START_FIELD"), _values(params, "TRIAL", "ACTUAL_END_FIELD")
    if last == 65535 and start and end and len(start) >= 2 and len(end) >= 2:
        first = int(start[0]) % 65536 + 65536 * int(start[1])
        last = int(end[0]) % 65536 + 65536 * int(end[1])
    return int(last - first + 1) if last >= first else None


def _check_body_scale(xyz: np.ndarray, unit: str, path) -> None:
    """Raise :class:`UnitError` when the markers, scaled by the file's unit, cannot be a human body: the median
    per-frame extent of the visible markers (frames with >= 3) outside the range of :data:`BODY_SPAN_M`
    (markers in metres in a file that says mm collapse to millimetres)."""
    import warnings

    from gaitforce.io.sto import BODY_SPAN_M

    if xyz.shape[1] < 3:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        span = (np.nanmax(xyz, axis=1) - np.nanmin(xyz, axis=1)).max(axis=1)
    span = span[np.isfinite(span) & (np.isfinite(xyz).all(axis=2).sum(axis=1) >= 3)]
    if not span.size:
        return
    med = float(np.median(span))
    lo, hi = BODY_SPAN_M
    if not lo <= med <= hi:
        seems = "millimetres" if med > hi else "metres"
        raise UnitError(f"markers span {med:.3g} m per frame with POINT:UNITS={unit!r}, not a human body: "
                        f"markers look like {seems} but the file says {unit}", source=path)


def _length_factor(unit: str, path) -> float:
    factor = length_factor(unit)
    if factor is None:
        raise UnitError(f"unknown length unit {unit!r} in POINT:UNITS", source=path)
    return factor


def _markers(c3d, points: np.ndarray, path):
    """(names, (T, M, 3) in m, subject name, metres per file length unit, notes) of the labelled markers."""
    params = c3d["parameters"]
    n_points = points.shape[1]
    labels = [str(s).strip() for s in _values(params, "POINT", "LABELS", [])]
    notes = []
    if len(labels) > n_points:  # POINT:LABELS may list more names than POINT:USED points: the first ones label them
        notes.append(f"POINT:LABELS lists {len(labels)} names for {n_points} points: the first {n_points} used")
        labels = labels[:n_points]
    labels += [f"_{i}" for i in range(len(labels), n_points)]  # more points than labels: never kept
    skip = set()
    for group in MODEL_OUTPUT_GROUPS:
        skip.update(str(s).strip() for s in _values(params, "POINT", group, []) or [])
    units = [str(u).strip() for u in _values(params, "POINT", "UNITS", []) or []]
    xyz = points[:3].transpose(2, 1, 0).copy()  # (T, M, 3)
    if units and units[0]:
        factor = _length_factor(units[0], path)
    else:  # no unit stated: decide from the magnitude, like Trial's own mm check
        finite = xyz[np.isfinite(xyz)]
        factor = 1e-3 if finite.size and np.abs(finite).max() > 20.0 else 1.0
        notes.append(f"POINT:UNITS absent: {'mm' if factor < 1 else 'm'} assumed from the coordinates' magnitude")
    residuals = np.asarray(c3d["data"]["meta_points"]["residuals"], dtype=float)
    if residuals.ndim == 3 and residuals.shape[1:] == (n_points, xyz.shape[0]):
        bad = (residuals[0].T < 0) | np.all(xyz == 0.0, axis=2)
    else:
        bad = np.all(xyz == 0.0, axis=2)
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
    kept = xyz[:, keep, :]
    # the labelled markers only (model outputs such as angles in degrees are no positions)
    _check_body_scale(kept, units[0] if units and units[0] else ("mm" if factor < 1 else "m"), path)
    return names, kept, subject, factor, notes


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


def is_force_channel(label: str) -> bool:
    """True for an analog label that names a force, moment or CoP channel in any lab's spelling: ``Fz1``,
    ``F1X1`` (CODA), ``FP1_FX``, ``PF2-FX``, ``TAPIS FZ1`` (Qualisys), ``Force.Fx1``, ``Moment.Mz``, ``CoPx``,
    ``Px1`` / ``Tz1`` (type-1 plates). Such a channel is never EMG."""
    low = str(label).strip().lower()
    if FORCE_WORDS.search(low):
        return True
    return any(FORCE_TOKEN.fullmatch(tok) for tok in re.split(r"[^a-z0-9]+", low) if tok)


def _emg(c3d, first: int, rate: float, wanted, path):
    params = c3d["parameters"]
    analogs = np.asarray(c3d["data"]["analogs"], dtype=float)
    if analogs.size == 0:
        if wanted:
            raise MissingChannelError(f"no analog channels; EMG {wanted} not found", source=path)
        return None, None, ()
    analogs = analogs[0]
    labels = [str(s).strip() for s in _values(params, "ANALOG", "LABELS", []) or []][: analogs.shape[0]]
    units = [str(s).strip() for s in _values(params, "ANALOG", "UNITS", []) or []]
    units += [""] * (len(labels) - len(units))
    n_frames = max(1, c3d["data"]["points"].shape[2])
    a_rate = float(c3d["header"]["analogs"]["frame_rate"]) or rate * max(1, analogs.shape[1] // n_frames)
    plate_channels = set()
    if "FORCE_PLATFORM" in params and "CHANNEL" in params["FORCE_PLATFORM"]:
        plate_channels = {
            int(c) - 1 for c in np.asarray(params["FORCE_PLATFORM"]["CHANNEL"]["value"]).reshape(-1) if c > 0
        }
    if wanted is not None:
        missing = [w for w in wanted if w not in labels]
        if missing:
            raise MissingChannelError(f"EMG channels not in file: {', '.join(missing)}", source=path)
        idx = [labels.index(w) for w in wanted]
    else:
        idx = [
            i for i, lab in enumerate(labels)
            if i not in plate_channels and volt_factor(units[i]) is not None
            and not NON_EMG.match(lab) and not is_force_channel(lab)
        ]
    if not idx:
        return None, None, ()
    scale = np.array([volt_factor(units[i]) or 1.0 for i in idx])
    data = analogs[idx].T * scale
    emg_time = first / rate + np.arange(data.shape[0]) / a_rate
    return data, emg_time, tuple(labels[i] for i in idx)


def _event_times(value, used: int):
    """EVENT:TIMES as (2, n): minutes row, seconds row. The C3D stores a 2 x n array with the first index
    fastest, so a flat copy interleaves (minutes, seconds) pairs; a (n, 2) copy is transposed; a flat array of
    one value per event holds seconds."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 2 and arr.shape[0] == 2:
        return arr
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr.T
    flat = arr.reshape(-1)
    if flat.size == used and flat.size % 2:
        return np.vstack([np.zeros(flat.size), flat])
    flat = flat[: flat.size - flat.size % 2]
    pairs = flat.reshape(-1, 2).T
    whole = lambda m: bool(m.size) and np.all(np.isfinite(m)) and np.all(m >= 0) and np.allclose(m, np.round(m))  # noqa: E731
    if whole(pairs[0]):
        return pairs
    rows = flat.reshape(2, -1)
    return rows if whole(rows[0]) else pairs


def _events(params):
    labels = _values(params, "EVENT", "LABELS", []) or []
    contexts = _values(params, "EVENT", "CONTEXTS", []) or []
    used = int((_values(params, "EVENT", "USED", [0]) or [0])[0])
    events, other, notes = [], [], []
    if not used:
        return events, other, notes
    try:
        raw = params["EVENT"]["TIMES"]["value"]
    except (KeyError, TypeError):
        return events, other, ["EVENT:USED without EVENT:TIMES: events not read"]
    times = _event_times(raw, used)
    if np.asarray(raw).ndim != 2:
        notes.append("EVENT:TIMES stored flat: read as (minutes, seconds) pairs")
    for k in range(min(used, len(labels), times.shape[1])):
        t = 60.0 * times[0, k] + times[1, k]
        if not np.isfinite(t):
            continue
        label = str(labels[k]).strip()
        side = str(contexts[k]).strip().lower() if k < len(contexts) else ""
        name = EVENT_NAMES.get(label.lower())
        if name and side in ("right", "left"):
            events.append(Event(name, float(t), side))
        else:
            other.append({"label": label, "context": side, "time": float(t)})
    return events, other, notes


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


from gaitforce.io.c3d_write import write_c3d  # noqa: E402,F401  (the writer, re-exported)
