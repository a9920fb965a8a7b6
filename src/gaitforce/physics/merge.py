"""The one rule that puts physics labels into a dataset (``gaitforce label DATASET`` and the demo).

Labels are matched to the dataset's rows on ``stance_id`` + ``frame``. A stance labelled with a different
number of frames than the dataset holds is a failure (its labels are not used). Rows of stances without labels
keep NaN targets (every row is kept). A target the dataset already holds (the Grand Challenge's measured
``knee_medial``) is kept and the physics value goes beside it as ``physics_<name>``, unless ``replace`` is
set, when the physics value replaces it (and the manifest says so).
"""

from __future__ import annotations

import json

import pandas as pd

from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError

KEYS = ("stance_id", "frame")


def merge_labels(ds: Dataset, labels: dict[str, pd.DataFrame], *, replace: bool = False,
                 failures: list | None = None) -> Dataset:
    """``ds`` with the label columns of ``labels`` ({stance_id: frame table}) added by the module's rule;
    frame-count mismatches are appended to ``failures`` as :class:`GaitforceError`."""
    failures = [] if failures is None else failures
    counts = ds.frames.groupby("stance_id").size()
    parts = []
    for sid, table in labels.items():
        n = int(counts.get(sid, 0))
        if n == 0:
            failures.append(GaitforceError("labelled, but the dataset has no such stance", source=sid))
            continue
        if len(table) != n:
            failures.append(GaitforceError(f"labelled {len(table)} frames, the dataset has {n}", source=sid))
            continue
        parts.append(table.drop(columns=[c for c in ("time", "trial", "stance_id") if c in table]).assign(stance_id=sid))
    if not parts:
        raise GaitforceError("no stance was labelled: " + "; ".join(f.line() for f in failures[:3]))
    table = pd.concat(parts, ignore_index=True)
    targets = [c for c in table.columns if c not in KEYS]
    already = bool(ds.manifest.get("physics"))
    clash = {} if (replace or already) else {c: f"physics_{c}" for c in targets if c in ds.frames}
    table = table.rename(columns=clash)
    targets = [clash.get(c, c) for c in targets]
    frames = ds.frames.drop(columns=[c for c in targets if c in ds.frames])
    frames = frames.merge(table, on=list(KEYS), how="left")
    manifest = json.loads(json.dumps(ds.manifest, default=str))
    manifest["targets"] = {**manifest.get("targets", {}), **{t: "N" for t in targets}}
    manifest["physics"] = {"targets": targets, "labelled_stances": int(table["stance_id"].nunique()),
                           "kept_own": sorted(clash), "replaced": sorted(c for c in targets if c in ds.frames and replace),
                           "failures": [f.line() for f in failures]}
    return Dataset(frames=frames, manifest=manifest)
