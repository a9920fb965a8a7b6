"""Reader for the Knee Grand Challenge gait cycles distributed as MATLAB structs (``SUBJECT__GCn__trial.mat``).

Each file holds one **gait cycle** of the right leg (instrumented knee), heel strike to the next heel strike
of the same foot, in a Y-up lab frame (x = direction of walking, z = right), markers in m. The stance phase is
its first ~60 %: the vertical ground reaction force is above zero from the first frame to toe off and zero
during swing. The data folder's README calls a file "one stance phase"; the force data say otherwise, so
the reader keeps the whole cycle and marks the stance with events (see below).

What the reader returns (:func:`read_gc_mat`):

- markers (m): ``Segment[1..4].rM`` named by matching the inter-marker distances against the raw C3D files of
  the same trials (JW GC4 og3, DM GC6 og1; see ``docs/ingest.md``): pelvis ``R_ASIS, L_ASIS, SACRUM``;
  thigh ``R_THIGH_SUP, R_THIGH_LAT, R_THIGH_INF`` then the epicondyles ``R_KNEE_LAT, R_KNEE_MED``; shank
  ``R_SHANK_SUP, R_SHANK_LAT, R_SHANK_INF`` then the malleoli ``R_ANKLE_LAT, R_ANKLE_MED``; foot with 4
  markers ``R_HEEL, R_TOE, R_MIDFOOT_LAT, R_MIDFOOT_SUP`` (GC1, GC2, GC4), with 3 markers
  ``R_HEEL, R_TOE_LAT, R_TOE_MED`` (GC3, GC5, GC6).
- one force plate ``FP1``: ``Joint.F`` is the force of the foot on the ground (vertical component negative),
  so the ground reaction force on the body is ``-Joint.F``, and the free moment ``-Joint.M``; the CoP is
  ``Segment[0].Q`` rows 3-5, set to NaN where the vertical GRF is at most :data:`COP_MIN_FORCE` N (the file
  holds placeholder values there).
- EMG: ``Emg.<muscle>_raw`` as stored (already rectified, sampled at the frame rate; unit as in the file,
  treated as arbitrary units), names as in the file (``gmed``, ``rf``, ``semimem`` ...). The file's own linear
  envelopes ``Emg.<muscle>`` become signals ``emg_env_<muscle>`` (unit ``a.u.``); ``Mvc.<muscle>`` (same
  unit, absent for PS) go to ``meta['mvc']``.
- signals ``knee_medial``, ``knee_lateral`` (``Force.KneeMedial/KneeLateral``) and ``knee_total`` (their
  sum), N: the in vivo tibial contact force of the eTibia implant.
- subject id, competition (``GCn``) and year (2009 + n) from the file name; height cm -> m; mass from
  ``weight`` or ``mass`` (kg); sex from ``gender`` (``Homme``/``man`` -> ``male``).
- events (right side): heel strike at the first frame, toe off at the first frame after the loaded run
  where the vertical GRF falls to :data:`CONTACT_THRESHOLD` N or below (interpolated), and
  ``meta['stance_frames'] = (0, stop)`` (stop exclusive), ``meta['side'] = 'right'``,
  ``meta['single_stance'] = True`` (one usable stance whose side is known, so ingest need not detect it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.io

from gaitforce.errors import InputFileError, MissingChannelError
from gaitforce.trial import Event, Subject, Trial

#: Vertical GRF (N) at or below which the CoP stored in the file is a placeholder (set to NaN).
COP_MIN_FORCE = 1.0
#: Vertical GRF (N) that separates contact from swing when placing the toe-off event.
CONTACT_THRESHOLD = 20.0

_NAME = re.compile(r"^(?P<subject>[A-Za-z0-9]+)__GC(?P<gc>[1-6])__(?P<trial>.+)\.mat$")

PELVIS = ("R_ASIS", "L_ASIS", "SACRUM")
THIGH = ("R_THIGH_SUP", "R_THIGH_LAT", "R_THIGH_INF", "R_KNEE_LAT", "R_KNEE_MED")
SHANK = ("R_SHANK_SUP", "R_SHANK_LAT", "R_SHANK_INF", "R_ANKLE_LAT", "R_ANKLE_MED")
FOOT = {4: ("R_HEEL", "R_TOE", "R_MIDFOOT_LAT", "R_MIDFOOT_SUP"), 3: ("R_HEEL", "R_TOE_LAT", "R_TOE_MED")}
_SEX = {"homme": "male", "man": "male", "male": "male", "m": "male", "femme": "female", "woman": "female",
        "female": "female", "f": "female"}


def parse_name(path: str | os.PathLike) -> dict:
    """``{'subject', 'competition', 'year', 'trial'}`` from ``SUBJECT__GCn__trial.mat`` (empty dict if no match)."""
    m = _NAME.match(Path(path).name)
    if not m:
        return {}
    gc = int(m.group("gc"))
    return {"subject": m.group("subject"), "competition": f"GC{gc}", "year": 2009 + gc, "trial": m.group("trial")}


def _load(path: Path) -> dict:
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises ValueError/TypeError/MatReadError for damaged files
        raise InputFileError(f"not a readable MATLAB file: {err}", source=path) from None


def _field(obj, name: str, path: Path):
    try:
        return getattr(obj, name) if not isinstance(obj, dict) else obj[name]
    except (AttributeError, KeyError):
        raise MissingChannelError(f"Grand Challenge file lacks field {name!r}", source=path) from None


def _markers(segments, n: int, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    if len(segments) != 5:
        raise InputFileError(f"expected 5 segments (ground, foot, shank, thigh, pelvis), found {len(segments)}", source=path)
    blocks, names = [], []
    for seg, expected in ((1, None), (2, SHANK), (3, THIGH), (4, PELVIS)):
        rm = np.asarray(_field(segments[seg], "rM", path), dtype=float)
        if rm.ndim != 3 or rm.shape[0] != 3 or rm.shape[2] != n:
            raise InputFileError(f"Segment[{seg}].rM has shape {rm.shape}, expected (3, markers, {n})", source=path)
        labels = FOOT.get(rm.shape[1]) if seg == 1 else expected
        if labels is None or len(labels) != rm.shape[1]:
            raise InputFileError(f"Segment[{seg}] has {rm.shape[1]} markers: layout not known", source=path)
        blocks.append(np.transpose(rm, (2, 1, 0)))
        names.extend(labels)
    return np.concatenate(blocks, axis=1), tuple(names)


def _toe_off(time: np.ndarray, fy: np.ndarray) -> tuple[int, float]:
    """(stop frame exclusive, interpolated toe-off time) of the first loaded run of ``fy``."""
    loaded = fy > CONTACT_THRESHOLD
    if not loaded.any():
        return 0, float(time[0])
    first = int(np.argmax(loaded))
    after = np.flatnonzero(~loaded[first:])
    if after.size == 0:
        return len(fy), float(time[-1])
    stop = first + int(after[0])
    f0, f1 = fy[stop - 1], fy[stop]
    w = float(np.clip((CONTACT_THRESHOLD - f0) / (f1 - f0), 0, 1)) if f1 != f0 else 1.0
    return stop, float(time[stop - 1] + w * (time[stop] - time[stop - 1]))


def _emg(d: dict, n: int, path: Path):
    emg = d.get("Emg")
    if emg is None or not hasattr(emg, "_fieldnames"):
        return None, (), {}, {}
    names = [f[:-4] for f in emg._fieldnames if f.endswith("_raw")]
    raw = np.column_stack([np.asarray(getattr(emg, f"{m}_raw"), float).reshape(-1) for m in names])
    if raw.shape[0] != n:
        raise InputFileError(f"EMG has {raw.shape[0]} samples, the trial {n} frames", source=path)
    env = {f"emg_env_{m}": (np.asarray(getattr(emg, m), float).reshape(-1), "a.u.") for m in names if m in emg._fieldnames}
    mvc_struct = d.get("Mvc")
    mvc = {}
    if hasattr(mvc_struct, "_fieldnames"):
        mvc = {m: float(getattr(mvc_struct, m)) for m in mvc_struct._fieldnames if np.size(getattr(mvc_struct, m)) == 1}
    return raw, tuple(names), env, mvc


def read_gc_mat(path: str | os.PathLike) -> Trial:
    """Read one Grand Challenge gait cycle (see the module docstring for every field and convention)."""
    path = Path(path)
    d = _load(path)
    try:
        return _read(d, path)
    except (ValueError, TypeError, IndexError) as err:  # a field of another type or shape than the format's
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"a Grand Challenge field has an unexpected type or shape: {first}", source=path) from None


def _read(d: dict, path: Path) -> Trial:
    rate = float(_field(d, "f", path))
    n = int(_field(d, "n", path))
    if rate <= 0 or n < 2:
        raise InputFileError(f"implausible rate {rate} Hz or frame count {n}", source=path)
    time = np.arange(n) / rate
    markers, names = _markers(np.atleast_1d(_field(d, "Segment", path)), n, path)

    joint = _field(d, "Joint", path)
    grf = -np.asarray(_field(joint, "F", path), float).T  # force on the body
    free = -np.asarray(_field(joint, "M", path), float).T
    cop = np.asarray(_field(np.atleast_1d(d["Segment"])[0], "Q", path), float)[3:6].T.copy()
    if grf.shape != (n, 3) or cop.shape != (n, 3):
        raise InputFileError(f"Joint.F or the CoP do not have {n} frames", source=path)
    if not np.isfinite(grf[:, 1]).any():
        raise InputFileError("vertical ground reaction force is all NaN: no stance", source=path)
    if np.nanmax(grf[:, 1]) < CONTACT_THRESHOLD:
        raise InputFileError("vertical ground reaction force never exceeds 20 N: no stance", source=path)
    cop[grf[:, 1] <= COP_MIN_FORCE] = np.nan

    force = _field(d, "Force", path)
    medial = np.asarray(_field(force, "KneeMedial", path), float).reshape(-1)
    lateral = np.asarray(_field(force, "KneeLateral", path), float).reshape(-1)
    if medial.size != n or lateral.size != n:
        raise InputFileError(f"knee forces do not have {n} frames", source=path)

    raw, emg_names, env, mvc = _emg(d, n, path)
    info = parse_name(path)
    mass = d.get("weight", d.get("mass"))
    height = d.get("height")
    sex = _SEX.get(str(d.get("gender", "")).strip().lower())
    subject = Subject(
        id=info.get("subject", path.stem),
        mass=None if mass is None else float(mass),
        height=None if height is None else float(height) / 100.0,
        sex=sex,
        pathology=("knee_replacement",),
    )
    stop, t_off = _toe_off(time, grf[:, 1])
    meta = {
        "side": "right",
        "single_stance": True,
        "stance_frames": (0, stop),
        "gait_cycle": True,
        "mvc": mvc,
        "emg_note": "Emg.<muscle>_raw as stored: rectified, resampled to the frame rate, unit as in the file",
        "format": "grand-challenge-mat",
    }
    meta.update({k: info[k] for k in ("competition", "year", "trial") if k in info})
    signals = {"knee_medial": medial, "knee_lateral": lateral, "knee_total": medial + lateral}
    units = {"knee_medial": "N", "knee_lateral": "N", "knee_total": "N"}
    for key, (values, unit) in env.items():
        signals[key], units[key] = values, unit
    return Trial(
        time=time,
        markers=markers,
        marker_names=names,
        forces=grf[:, None, :],
        cop=cop[:, None, :],
        free_moment=free[:, None, :],
        plate_names=("FP1",),
        emg=raw,
        emg_time=None if raw is None else time,
        emg_names=emg_names,
        signals=signals,
        units=units,
        events=(Event("heel_strike", float(time[0]), "right", plate=0), Event("toe_off", t_off, "right", plate=0)),
        subject=subject,
        source=str(path),
        up_axis="y",
        meta=meta,
        history=(f"read_gc_mat({path.name}): GRF = -Joint.F, CoP from Segment[0].Q[3:6], gait cycle with stance 0:{stop}",),
    )
