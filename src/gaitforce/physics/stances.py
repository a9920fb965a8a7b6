"""Which frames the physics labels: the dataset's stances, cut from the unfiltered trial with every plate.

The segmentation is ingest's (:func:`gaitforce.data.ingest.trial_stances`), so each labelled stance lines up
frame by frame with the dataset's rows and carries the same ``stance_id``. Grand Challenge .mat files whose
raw two-leg recording is known (:func:`gaitforce.physics.sources.raw_source`) are re-cut from it, with that
subject's static trial.
"""

from __future__ import annotations

import os
from pathlib import Path

from gaitforce.data.ingest import IngestSettings, trial_stances
from gaitforce.data.subjects import SubjectInfo
from gaitforce.io import read
from gaitforce.signal.stances import cut
from gaitforce.trial import Trial


def read_for_labelling(path: str | os.PathLike, subjects: SubjectInfo | None = None) -> Trial:
    """The trial of ``path``, Y-up, a TRC with its GRF sibling merged, subject information applied."""
    path = Path(path)
    kwargs = {"grf": "auto"} if path.suffix.lower() == ".trc" else {}
    trial = read(path, **kwargs)
    if subjects is not None:
        trial = subjects.apply(trial, path)
    return trial.to_y_up()


def padded(trial: Trial, start: int, stop: int, pad_s: float, meta: dict | None = None) -> Trial:
    """Frames ``start:stop`` of ``trial`` with up to ``pad_s`` seconds of it before and after (as many as it has:
    no frame is invented), ``meta['stance_window'] = (a, b)`` the stance's frames in the result. The labeller
    (:func:`gaitforce.physics.label.label_trial`) runs IK, ID and SO on the whole window, so the filters' edges
    fall outside the stance, and returns the stance frames only. ``pad_s = 0``: the stance itself, no window."""
    n = int(round(max(pad_s, 0.0) * trial.rate)) if trial.n_frames > 1 else 0
    lo, hi = max(0, start - n), min(trial.n_frames, stop + n)
    part = trial.slice_frames(lo, hi)
    meta = {**part.meta, **(meta or {})}
    if (lo, hi) != (start, stop):
        meta["stance_window"] = (start - lo, stop - lo)
    else:
        meta.pop("stance_window", None)
    return part.replace(meta=meta)


def label_stances(trial: Trial, settings: IngestSettings | None = None, *, key: str | None = None,
                  path: str | os.PathLike | None = None, pad_s: float = 0.0) -> tuple[dict[str, Trial], Trial | None]:
    """``({stance_id: stance Trial}, static)`` of one trial: each accepted stance (ingest's rule; ids from the
    trial ``key``, default the file name) cut from the unfiltered trial with every plate kept (``meta['side']``,
    ``meta['stance_start']``); where a raw recording of ``path`` is known, cut from that with its static.
    ``pad_s`` > 0: each with up to that many seconds of its trial around it (:func:`padded`)."""
    from gaitforce.physics.sources import raw_source

    stances = [s for s in trial_stances(trial, settings, key=key) if s.accepted]
    out = {s.id: cut(trial, s, all_plates=True) for s in stances}
    if pad_s > 0:
        out = {s.id: padded(trial, s.start, s.stop, pad_s, out[s.id].meta) for s in stances}
    source = raw_source(Path(path or trial.source or ""), trial)
    if source is None:
        return out, None
    recut = {}
    for name, st in out.items():
        start = source.offset + int(st.meta["stance_start"])
        a, b = st.meta.get("stance_window", (0, st.n_frames))
        meta = {"side": st.meta["side"], "stance_start": st.meta["stance_start"],
                "labelled_from": str(source.trial.source)}
        recut[name] = padded(source.trial, start, start + b - a, pad_s, meta)
    return recut, source.static
