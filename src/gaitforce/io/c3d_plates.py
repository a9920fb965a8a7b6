"""C3D force plates: ezc3d's platform extraction (scale, offset, calibration matrix), units, signs, CoP."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from gaitforce.errors import InputFileError, UnitError
from gaitforce.io.c3d_params import _values
from gaitforce.io.units import force_factor, moment_factor

#: Largest plausible force (N) on one plate; beyond it the plate's units or calibration are wrong.
MAX_PLATE_FORCE_N = 25_000.0
#: An unloaded plate's vertical reading up to this size (N) is an instrument offset (an amplifier not zeroed before
#: the capture) and is removed; a larger one is left (a subject standing on the plate the whole capture).
MAX_ZERO_OFFSET_N = 60.0
#: ... and is only removed if the plate also bears a real step (this much more than the offset, N) ...
OFFSET_STEP_N = 200.0
#: ... and its unloaded samples last at least this long (s).
OFFSET_QUIET_S = 0.1


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


#: channel (0-based, within the plate's FORCE_PLATFORM:CHANNEL column) holding a force and a moment, per type
_FORCE_CHANNEL = {1: 2, 2: 2, 3: 4, 4: 2}
_MOMENT_CHANNEL = {1: 5, 2: 5, 4: 5}  # type 3 stores only forces: ezc3d derives moments from the plate geometry


def _plate_factors(k: int, kind: int, unit_of, length: float, path) -> tuple[float, float, str | None]:
    """(N per force unit, N m per moment unit, a note) of plate ``k`` of type ``kind``.

    A channel unit that is a force (N, nt, Newtons, kN, lbf) or a moment (Nmm, N.mm, ntmm, N-m...) is used as
    stated. Any other unit (V, mV, ADC, counts, none) means the channels are raw: ezc3d's calibration (SCALE,
    OFFSET, CAL_MATRIX) gives its output in N and N times the file's length unit, which is then used.
    """
    f_unit = unit_of(_FORCE_CHANNEL.get(kind, 2))
    f_factor = force_factor(f_unit) if f_unit else None
    note = None
    if f_factor is None:
        note = f"FP{k + 1}: channels in {f_unit or 'no unit'!r}, ezc3d's calibrated output taken as N"
        f_factor = 1.0
    m_unit = unit_of(_MOMENT_CHANNEL[kind]) if kind in _MOMENT_CHANNEL else None
    parsed = moment_factor(m_unit) if m_unit else None
    if parsed is None:
        return f_factor, f_factor * length, note
    m_factor, m_length = parsed
    if kind in (2, 4) and abs(m_length - length) > 1e-12:
        raise UnitError(
            f"plate {k + 1}: moments in {m_unit!r} but positions in {'m' if length == 1 else 'mm' if length == 1e-3 else 'cm'}; "
            "ezc3d's CoP would be wrong by a power of ten",
            source=path,
        )
    return f_factor, m_factor, note


def _no_sensor_offsets(params, i: int) -> bool:
    """True when a type-3 (Kistler) plate's ORIGIN gives its sensors no offset (a = b = 0): ezc3d's moments are
    then zero and its CoP sits at the plate centre whatever the load (c3d.org sample15)."""
    origin = np.asarray(_values(params, "FORCE_PLATFORM", "ORIGIN", []) or [], dtype=float)
    if origin.size < 3 * (i + 1):
        return True
    a, b = origin.reshape(-1, 3)[i][:2]
    return abs(a) < 1e-9 and abs(b) < 1e-9


def zero_offset(fv: np.ndarray, rate: float, *, band: float = 10.0) -> float | None:
    """The unloaded reading of a plate (N, vertical, on the body) from its analog samples ``fv``, or None when
    there is none to remove: the median of the samples within ``band`` N of the 20th percentile (the quiet,
    unloaded part of a walking capture), kept when they last :data:`OFFSET_QUIET_S` s or more, the plate also
    bears a step :data:`OFFSET_STEP_N` N above it, and it is between 2 N and :data:`MAX_ZERO_OFFSET_N` N in size
    (c3d.org sample01: 21 and 31 N, so the plates read as loaded through the whole capture)."""
    fv = fv[np.isfinite(fv)]
    if fv.size == 0:
        return None
    quiet = fv[np.abs(fv - np.percentile(fv, 20)) <= band]
    if quiet.size < OFFSET_QUIET_S * rate:
        return None
    base = float(np.median(quiet))
    if not 2.0 <= abs(base) <= MAX_ZERO_OFFSET_N or fv.max() < base + OFFSET_STEP_N:
        return None
    return base


def _plates(c3d, n: int, rate: float, length: float, threshold: float, path):
    """Per-frame GRF (on the body), CoP and free moment of every plate, the up axis, notes for the history and
    the reason the plates could not be read (None if read)."""
    params = c3d["parameters"]
    platforms = c3d["data"].get("platform", []) if hasattr(c3d["data"], "get") else []
    empty = np.zeros((n, 0, 3))
    none = (empty, empty, empty, [], "z", [])
    if not platforms:
        return (*none, None)
    n_analog = min(np.asarray(pf["force"]).shape[-1] for pf in platforms)
    if n_analog == 0:
        return (*none, f"{len(platforms)} plate(s) declared but no analog frames")
    a_rate = float(c3d["header"]["analogs"]["frame_rate"] or 0.0)
    per_frame = int(round(a_rate / rate)) if a_rate > 0 else n_analog // n
    if per_frame < 1:
        return (*none, f"analog rate {a_rate:g} Hz is below the frame rate {rate:g} Hz")
    if n_analog < (n - 1) * per_frame + 1:
        return (*none, f"plate data cover {n_analog} analog samples, {n} frames need {n * per_frame}")
    analog_units = [str(s).strip() for s in _values(params, "ANALOG", "UNITS", []) or []]
    try:
        channels = np.asarray(params["FORCE_PLATFORM"]["CHANNEL"]["value"], dtype=int)
        channels = channels.reshape(channels.shape[0], -1)  # (channels per plate, plates)
    except (KeyError, TypeError, ValueError):
        return (*none, "FORCE_PLATFORM:CHANNEL is missing or unreadable")
    kinds = [int(t) for t in _values(params, "FORCE_PLATFORM", "TYPE", []) or []]

    raw_f, raw_cop, raw_tz, names, notes, unknown_cop = [], [], [], [], [], []
    stop = min(n * per_frame, n_analog)
    for i, pf in enumerate(platforms):
        kind = kinds[i] if i < len(kinds) else 2
        chans = channels[:, i] - 1 if i < channels.shape[1] else np.full(channels.shape[0], -1)
        unit_of = lambda k: analog_units[chans[k]] if 0 <= k < len(chans) and 0 <= chans[k] < len(analog_units) else None  # noqa: E731,B023
        f_factor, m_factor, note = _plate_factors(i, kind, unit_of, length, path)
        if note:
            notes.append(note)
        raw_f.append(np.asarray(pf["force"], dtype=float)[:, :stop] * f_factor)
        cop_i = np.asarray(pf["center_of_pressure"], dtype=float)[:, :stop] * length
        if kind == 3 and _no_sensor_offsets(params, i):
            notes.append(f"FP{i + 1}: type-3 plate without sensor offsets (FORCE_PLATFORM:ORIGIN a = b = 0): CoP unknown")
            unknown_cop.append(i)
        raw_cop.append(cop_i)
        raw_tz.append(np.asarray(pf["Tz"], dtype=float)[:, :stop] * m_factor)
        names.append(f"FP{i + 1}")
    if stop < n * per_frame:  # the last frame's window runs past the data: repeat the last sample
        pad = lambda a: np.concatenate([a, np.repeat(a[:, -1:], n * per_frame - stop, axis=1)], axis=1)  # noqa: E731
        raw_f, raw_cop, raw_tz = [pad(a) for a in raw_f], [pad(a) for a in raw_cop], [pad(a) for a in raw_tz]
    raw_f = np.stack(raw_f)  # (P, 3, S)
    raw_cop, raw_tz = np.stack(raw_cop), np.stack(raw_tz)

    loaded = np.linalg.norm(raw_f, axis=1) > threshold  # (P, S)
    load_per_axis = np.array([np.abs(raw_f[:, k, :])[loaded].sum() for k in range(3)])
    if load_per_axis.sum() == 0:
        vertical, up = 2, "z"
        notes.append("no plate loaded: Z taken as vertical")
    else:
        vertical = int(np.argmax(load_per_axis))
        if vertical == 0:
            raise InputFileError("the plates' largest force is along X; an X-up lab is not supported", source=path)
        up = "zy"[vertical == 1]
    signs = []
    for p in range(len(names)):  # the sign under real load, not of an unloaded plate's offset (sample02 FP2: -12 N)
        fv = np.nan_to_num(raw_f[p, vertical])
        big = np.abs(fv) > max(threshold, 0.2 * np.abs(fv).max())
        signs.append(-1.0 if fv[big].sum() < 0 else 1.0)
    flipped = [names[p] for p, s in enumerate(signs) if s < 0]
    notes.append(
        f"force plates: vertical axis {'xyz'[vertical].upper()}; "
        + (f"negated (force on plate -> on body): {', '.join(flipped)}" if flipped else "already the reaction on the body")
    )
    signs = np.asarray(signs)[:, None, None]
    grf, tz = raw_f * signs, raw_tz * signs
    for p in range(len(names)):  # amplifiers not zeroed: an unloaded plate reading tens of N looks loaded
        base = zero_offset(grf[p, vertical], a_rate if a_rate > 0 else rate * per_frame)
        if base is not None:
            quiet = np.abs(grf[p, vertical] - base) <= 10.0
            offset = np.nanmedian(grf[p][:, quiet], axis=1)
            grf[p] -= offset[:, None]
            notes.append(f"{names[p]}: unloaded offset ({', '.join(f'{v:.1f}' for v in offset)}) N removed "
                         "(median of its unloaded samples); CoP as computed by ezc3d from the raw channels")
    fz = grf[:, vertical, :]
    weights = np.where(fz > threshold, fz, 0.0)[:, None, :].repeat(3, axis=1)
    cop_src = np.where(weights > 0, np.nan_to_num(raw_cop), 0.0)
    forces = _frame_mean(grf, per_frame)
    moment = _frame_mean(np.nan_to_num(tz), per_frame)
    cop = _frame_mean(cop_src, per_frame, weights)
    cop[(forces[:, vertical, :] < threshold)[:, None, :].repeat(3, axis=1)] = np.nan
    cop[unknown_cop] = np.nan
    peak = np.nanmax(np.abs(forces)) if np.isfinite(forces).any() else 0.0
    if peak > MAX_PLATE_FORCE_N:
        raise UnitError(
            f"plate forces reach {peak:.3g} N (> {MAX_PLATE_FORCE_N:.0f} N): the plate units or calibration are wrong",
            source=path,
        )
    to_tp3 = lambda a: a.transpose(2, 0, 1)[:n]  # noqa: E731 - (P, 3, T) -> (T, P, 3)
    return to_tp3(forces), to_tp3(cop), to_tp3(moment), names, up, notes, None


