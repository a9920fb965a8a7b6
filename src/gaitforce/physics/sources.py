"""Where the physics gets a better input for a file than the file itself.

The Grand Challenge ``competitions/*.mat`` files hold the pelvis and the instrumented (right, or mirrored to
right) leg only: its epicondyles, malleoli, foot and cluster markers and that foot's plate, no other leg and no
static trial. They are labelled as they are, as one-leg recordings (``landmarks.calibrate`` scales both legs from
the tracked one, ``pipeline.lock_leg`` locks the other at the model's pose, and the other foot gets no plate).
For the stances whose raw two-leg motion capture is in the shared data, :func:`raw_source` returns that
recording (markers + plates), a static trial of the subject, and the frame of the raw recording where the
``.mat`` starts (found by matching the pelvis markers, which both hold in the same lab frame), and the labeller
uses those instead. Known raw sources:

- DM, GC6 overground trials og1, og3-og6: ``gc6-dm-trc/DM_ngait_<trial>_new.trc`` + ``_grf.sto``, static trial
  ``jw-c3d/DM_staticfor1.c3d``, right knee.

(JW's GC4 C3Ds have no static trial and no knee or ankle landmarks in the walking trials; PS's GC5 C3Ds neither;
their .mat files are the better source.)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaitforce.errors import GaitforceError
from gaitforce.trial import Trial

_DM_GC6 = re.compile(r"^DM__GC6__DM_ngait_(og\d+)\.mat$", re.IGNORECASE)
_PELVIS = (("R_ASIS", "R_Asis"), ("L_ASIS", "L_Asis"), ("SACRUM", "Sacral"))


@dataclass(frozen=True)
class RawSource:
    """The raw recording of a file (``trial``, Y-up, with the subject's mass), its subject's ``static`` trial,
    and ``offset``: the frame of ``trial`` where the file's frame 0 lies."""

    trial: Trial
    static: Trial | None
    offset: int


def raw_source(path, mat_trial: Trial) -> RawSource | None:
    """The raw recording behind Grand Challenge file ``path`` (already read as ``mat_trial``), or None."""
    from gaitforce import io

    path = Path(path)
    m = _DM_GC6.match(path.name)
    if not m:
        return None
    root = path.resolve().parent.parent
    trc = root / "gc6-dm-trc" / f"DM_ngait_{m.group(1)}_new.trc"
    static_file = root / "jw-c3d" / "DM_staticfor1.c3d"
    if not trc.exists():
        return None
    subject = dataclasses.replace(mat_trial.subject, id="DM")
    raw = io.read(trc, grf="auto").to_y_up().replace(subject=subject, note="subject from the competitions .mat")
    static = None
    if static_file.exists():
        static = io.read(static_file).to_y_up().replace(subject=subject, note="subject from the competitions .mat")
    if abs(raw.rate - mat_trial.rate) > 1e-6 * mat_trial.rate:
        raise GaitforceError(f"raw recording at {raw.rate:g} Hz, .mat at {mat_trial.rate:g} Hz", source=path)
    return RawSource(trial=raw, static=static, offset=align_offset(raw, mat_trial.to_y_up(), source=path))


def align_offset(raw: Trial, part: Trial, *, source=None, tolerance: float = 0.01) -> int:
    """Frame of ``raw`` where ``part`` (a cut of the same recording, same rate and lab frame) begins: the shift
    with the least mean squared distance between their pelvis markers. Raises if the best match is worse than
    ``tolerance`` m RMS (not the same recording)."""
    a = np.stack([raw.marker(r) for _, r in _PELVIS], 0)  # (3, T, 3)
    b = np.stack([part.marker(p) for p, _ in _PELVIS], 0)
    n = b.shape[1]
    if raw.n_frames < n:
        raise GaitforceError("raw recording shorter than the file it should contain", source=source)
    errs = np.array([np.nanmean((a[:, k:k + n] - b) ** 2) for k in range(raw.n_frames - n + 1)])
    k = int(np.nanargmin(errs))
    if not np.sqrt(errs[k]) < tolerance:
        raise GaitforceError(f"raw recording does not match the file (pelvis RMS {np.sqrt(errs[k]):.3f} m)",
                             source=source)
    return k
