"""Labelling trials with internal forces: per-frame targets from the OpenSim pipeline, a per-trial cache,
and parallel labelling of many trials on Dask."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GaitforceError
from ..trial import Trial
from .model import GROUPS, MODEL_NAME, MUSCLES
from .settings import LabelSettings
from .split import medial_lateral_split

#: The targets every labelled trial gets (N), besides ``muscle_<name>`` per-muscle forces.
TARGETS = ("knee_medial", "knee_lateral", "knee_total", "glut_max", "glut_med", "quadriceps", "hamstrings")
PIPELINE_VERSION = 1


def stance_side(trial: Trial, settings: LabelSettings) -> str:
    """'r' or 'l': the knee to label."""
    if settings.side != "stance":
        return settings.side[0]
    side = trial.meta.get("side")
    if side in ("right", "left"):
        return side[0]
    raise GaitforceError("trial has no meta['side']; label a stance phase or set side='right'/'left'",
                         source=trial.source)


def targets_from_tables(tables: dict[str, pd.DataFrame], side: str, settings: LabelSettings) -> pd.DataFrame:
    """Per-frame targets (N) from the SO forces and the knee joint reaction of leg ``side``."""
    so, jr = tables["so"], tables["jr"]
    prefix = f"knee_{side}_on_tibia_{side}_in_tibia_{side}_"
    compressive = -jr[prefix + "fy"].to_numpy()
    # medial-loading moment on the tibia about its anterior (x) axis: medial is -z on the right, +z on the left
    moment = (-1.0 if side == "r" else 1.0) * jr[prefix + "mx"].to_numpy()
    medial, lateral = medial_lateral_split(compressive, moment, distance=settings.intercondylar_distance)
    out = pd.DataFrame({"time": jr["time"].to_numpy(), "knee_medial": medial, "knee_lateral": lateral,
                        "knee_total": medial + lateral})
    so_t = so["time"].to_numpy()
    for group, members in GROUPS.items():
        out[group] = np.interp(out["time"], so_t, sum(so[f"{m}_{side}"].to_numpy() for m in members))
    for m in MUSCLES:
        out[f"muscle_{m}"] = np.interp(out["time"], so_t, so[f"{m}_{side}"].to_numpy())
    return out


def cache_key(trial: Trial, settings: LabelSettings) -> str:
    """Hash of everything the labels depend on: the trial's data, subject mass, side, settings, model, version."""
    h = hashlib.sha256()
    for arr in (trial.time, trial.markers, trial.forces, trial.cop, trial.free_moment):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    meta = {"markers": trial.marker_names, "plates": trial.plate_names, "mass": trial.subject.mass,
            "up": trial.up_axis, "side": trial.meta.get("side"), "settings": settings.to_dict(),
            "model": MODEL_NAME, "version": PIPELINE_VERSION}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def _to_frames(trial: Trial, table: pd.DataFrame) -> dict[str, tuple[np.ndarray, str]]:
    t = table["time"].to_numpy()
    return {c: (np.interp(trial.time, t, table[c].to_numpy()), "N") for c in table.columns if c != "time"}


def label_trial(trial: Trial, *, settings: LabelSettings | None = None, static: Trial | None = None,
                work_dir=None) -> Trial:
    """``trial`` with the target signals (N) of its stance knee added on its frames.

    ``static``: a standing trial of the same subject with the bony landmarks, used to scale the model and
    place the tracking markers (default: ``trial`` itself, which must then show the landmarks).
    ``work_dir`` keeps the OpenSim files (inputs, results, setup XML); by default a temporary folder is used
    and removed unless ``settings.keep_files``.
    """
    from .pipeline import run_trial

    settings = settings or LabelSettings()
    side = stance_side(trial, settings)
    temp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="gaitforce-label-")) if temp else Path(work_dir)
    try:
        tables, seconds = run_trial(trial, work, settings, static=static)
        targets = targets_from_tables(tables, side, settings)
    finally:
        if temp and not settings.keep_files:
            shutil.rmtree(work, ignore_errors=True)
    labelled = trial.with_signals(note=f"physics.label_trial({MODEL_NAME}, side={side})", **_to_frames(trial, targets))
    return labelled.replace(meta={**trial.meta, "physics_seconds": seconds, "physics_dir": str(work)})
