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


def label_stances(trial: Trial, settings: IngestSettings | None = None, *, key: str | None = None,
                  path: str | os.PathLike | None = None) -> tuple[dict[str, Trial], Trial | None]:
    """``({stance_id: stance Trial}, static)`` of one trial: each accepted stance (ingest's rule; ids from the
    trial ``key``, default the file name) cut from the unfiltered trial with every plate kept (``meta['side']``,
    ``meta['stance_start']``); where a raw recording of ``path`` is known, cut from that with its static."""
    from gaitforce.physics.sources import raw_source

    stances = [s for s in trial_stances(trial, settings, key=key) if s.accepted]
    out = {s.id: cut(trial, s, all_plates=True) for s in stances}
    source = raw_source(Path(path or trial.source or ""), trial)
    if source is None:
        return out, None
    recut = {}
    for name, st in out.items():
        start = source.offset + int(st.meta["stance_start"])
        part = source.trial.slice_frames(start, start + st.n_frames)
        recut[name] = part.replace(meta={**part.meta, "side": st.meta["side"], "stance_start": st.meta["stance_start"],
                                         "labelled_from": str(source.trial.source)})
    return recut, source.static
