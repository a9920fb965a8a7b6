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

from gaitforce.errors import GaitforceError
from gaitforce.physics.model import spec
from gaitforce.physics.settings import LabelSettings
from gaitforce.physics.split import medial_lateral_split
from gaitforce.trial import Trial

#: The targets every labelled trial gets (N), besides ``muscle_<name>`` per-muscle forces.
TARGETS = ("knee_medial", "knee_lateral", "knee_total", "glut_max", "glut_med", "quadriceps", "hamstrings")
PIPELINE_VERSION = 3  # 3: targets that replace a trial's own signal of the same name are cached too


def stance_side(trial: Trial, settings: LabelSettings) -> str:
    """'r' or 'l': the knee to label."""
    if settings.side != "stance":
        return settings.side[0]
    side = trial.meta.get("side")
    if side in ("right", "left"):
        return side[0]
    raise GaitforceError("trial has no meta['side']; label a stance phase or set side='right'/'left'",
                         source=trial.source)


def split_distance(tables: dict, side: str, settings: LabelSettings) -> float:
    """m between the medial and lateral contact points: ``intercondylar_ratio`` x the measured knee width of
    ``side`` where both are known, else ``intercondylar_distance``."""
    cal = tables.get("calibration")
    width = None if cal is None or f"knee_width_{side}" not in cal else float(cal[f"knee_width_{side}"].iloc[0])
    if settings.intercondylar_ratio is None or width is None or not np.isfinite(width):
        return settings.intercondylar_distance
    return settings.intercondylar_ratio * width


def targets_from_tables(tables: dict[str, pd.DataFrame], side: str, settings: LabelSettings) -> pd.DataFrame:
    """Per-frame targets (N) from the SO forces and the knee joint reaction of leg ``side``."""
    so, jr = tables["so"], tables["jr"]
    ms = spec(settings.model)
    prefix = f"{ms.knee(side)}_on_tibia_{side}_in_tibia_{side}_"
    compressive = -jr[prefix + "fy"].to_numpy()
    # medial-loading moment on the tibia about its anterior (x) axis: medial is -z on the right, +z on the left
    moment = (-1.0 if side == "r" else 1.0) * jr[prefix + "mx"].to_numpy()
    medial, lateral = medial_lateral_split(compressive, moment, distance=split_distance(tables, side, settings))
    out = pd.DataFrame({"time": jr["time"].to_numpy(), "knee_medial": medial, "knee_lateral": lateral,
                        "knee_total": medial + lateral})
    so_t = so["time"].to_numpy()
    for group, members in ms.groups.items():
        out[group] = np.interp(out["time"], so_t, sum(so[f"{m}_{side}"].to_numpy() for m in members))
    for m in ms.muscles:
        out[f"muscle_{m}"] = np.interp(out["time"], so_t, so[f"{m}_{side}"].to_numpy())
    return out


def cache_key(trial: Trial, settings: LabelSettings) -> str:
    """Hash of everything the labels depend on: the trial's data, subject mass, side, settings, model, version."""
    h = hashlib.sha256()
    for arr in (trial.time, trial.markers, trial.forces, trial.cop, trial.free_moment):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    fields = settings.to_dict()
    if fields.get("criterion") == "a3":  # the default criterion keeps the keys labels had before the option
        fields.pop("criterion")
        fields.pop("emg_weight")
    if fields.get("muscle_curves") == "degroote":  # the default curves keep the keys labels had before too
        fields.pop("muscle_curves")
    if fields.get("knee_muscle_strength") == 1.0:
        fields.pop("knee_muscle_strength")
    meta = {"markers": trial.marker_names, "plates": trial.plate_names, "mass": trial.subject.mass,
            "up": trial.up_axis, "side": trial.meta.get("side"), "settings": fields,
            "version": PIPELINE_VERSION}
    if settings.criterion == "emg":  # the EMG the criterion tracks (a3 keys stay as they were)
        for name in sorted(k for k in trial.signals if k.startswith("emg_env_")):
            h.update(name.encode() + np.ascontiguousarray(trial.signals[name], dtype=np.float64).tobytes())
        if trial.emg is not None:
            h.update(np.ascontiguousarray(trial.emg, dtype=np.float64).tobytes())
        for name in ("emg_norm", "emg_scales"):  # given by the caller (pooled calibration)
            if trial.meta.get(name) is not None:
                h.update(name.encode() + json.dumps(trial.meta[name], sort_keys=True, default=float).encode())
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def _to_frames(trial: Trial, table: pd.DataFrame) -> dict[str, tuple[np.ndarray, str]]:
    t = table["time"].to_numpy()
    return {c: (np.interp(trial.time, t, table[c].to_numpy()), "N") for c in table.columns if c != "time"}


def label_trial(trial: Trial, *, settings: LabelSettings | None = None, static: Trial | None = None,
                work_dir=None) -> Trial:
    """``trial`` with the target signals (N) of its stance knee added on its frames (replacing signals of the same
    name, e.g. a Grand Challenge file's measured ``knee_medial``; ``meta['physics_targets']`` lists them).

    ``static``: a standing trial of the same subject with the bony landmarks, used to scale the model and
    place the tracking markers (default: ``trial`` itself, which must then show the landmarks).
    A trial with ``meta['stance_window'] = (a, b)`` (:func:`gaitforce.physics.stances.padded`) is labelled
    whole and returned cut to its frames ``a:b``.
    ``work_dir`` keeps the OpenSim files (inputs, results, setup XML); by default a temporary folder is used
    and removed unless ``settings.keep_files``.
    """
    from gaitforce.physics.pipeline import run_trial

    settings = settings or LabelSettings()
    side = stance_side(trial, settings)
    temp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="gaitforce-label-")) if temp else Path(work_dir)
    emg = None
    if settings.criterion == "emg":  # before any OpenSim work: no EMG is a one-line error
        from gaitforce.physics.emg_so import from_trial

        emg = from_trial(trial, side)
    try:
        tables, seconds = run_trial(trial, work, settings, static=static, emg=emg)
        targets = targets_from_tables(tables, side, settings)
    finally:
        if temp and not settings.keep_files:
            shutil.rmtree(work, ignore_errors=True)
    if "stance_window" in trial.meta:  # labelled on a padded window (physics.stances.padded): the stance only
        a, b = trial.meta["stance_window"]
        window = trial.n_frames
        trial = trial.slice_frames(int(a), int(b))
        trial = trial.replace(meta={**{k: v for k, v in trial.meta.items() if k != "stance_window"},
                                    "labelled_window_frames": window})
    labelled = trial.with_signals(note=f"physics.label_trial({settings.model}, side={side})", **_to_frames(trial, targets))
    return labelled.replace(meta={**trial.meta, "physics_seconds": seconds, "physics_dir": str(work),
                                  "physics_targets": [c for c in targets.columns if c != "time"]})


# -- many trials ------------------------------------------------------------------------------------------
def _pack(trial: Trial) -> dict:
    """A Trial as plain picklable fields (its mappings are read-only proxies, which do not pickle)."""
    import dataclasses

    out = {f.name: getattr(trial, f.name) for f in dataclasses.fields(trial)}
    out["signals"], out["units"], out["meta"] = dict(trial.signals), dict(trial.units), dict(trial.meta)
    s = trial.subject
    out["subject"] = {"id": s.id, "mass": s.mass, "height": s.height, "sex": s.sex, "pathology": s.pathology,
                      "extra": dict(s.extra)}
    return out


def _unpack(data: dict) -> Trial:
    from gaitforce.trial import Subject

    return Trial(**{**data, "subject": Subject(**data["subject"])})


def _cache_file(cache: Path, key: str) -> Path:
    return cache / f"{key}.parquet"


def _label_task(packed: dict, static: dict | None, settings: dict, work: str, cache_file: str) -> dict:
    """Run on a worker: label one trial, store its targets in the cache (atomically), never raise."""
    try:
        trial = _unpack(packed)
        out = label_trial(trial, settings=LabelSettings.from_dict(settings),
                          static=None if static is None else _unpack(static), work_dir=work)
        # every target, also one that replaced a signal of the same name (a Grand Challenge file's own knee_medial)
        names = list(out.meta["physics_targets"])
        Path(work, "seconds.json").write_text(json.dumps(out.meta.get("physics_seconds", {})))
        table = pd.DataFrame({"frame": np.arange(out.n_frames), "time": out.time,
                              **{k: out.signals[k] for k in names}})
        tmp = Path(cache_file).with_suffix(".part")
        table.to_parquet(tmp, index=False)
        tmp.replace(cache_file)
        return {"ok": True, "seconds": out.meta.get("physics_seconds", {})}
    except GaitforceError as err:
        return {"ok": False, "error": err.line()}
    except Exception as err:  # OpenSim raises RuntimeError for models/data it cannot solve
        return {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}


def label_dataset(trials, *, out_dir, settings: LabelSettings | None = None, static=None,
                  scheduler: str | None = None, n_workers: int | None = None, progress: bool = True,
                  stats: dict | None = None, dashboard_address: str | None = None):
    """Label many trials (stance phases) in parallel on Dask; returns ``(labels, failures)``.

    ``trials``: a mapping name -> Trial (or a list, named by source and index). Each result is cached in
    ``out_dir/cache/<key>.parquet`` under :func:`cache_key` (trial data + settings + model), so a rerun or a
    killed run redoes only unfinished trials; OpenSim files go to ``out_dir/work/<name>``. ``scheduler``: the
    address of a running Dask scheduler; by default a ``LocalCluster`` of single-threaded worker processes
    (OpenSim is not thread-safe). ``labels``: name -> DataFrame (frame, time, targets); ``failures``: list
    of :class:`GaitforceError`, one per failed trial, the others still labelled. ``static``: one static
    Trial for all, or a mapping name -> static Trial (or None) per trial. ``stats``: a dict to fill with the
    names taken from the cache (``"cached"``) and the names sent to the workers (``"computed"``).
    ``dashboard_address`` (e.g. ``":8787"``): serve the local cluster's Dask dashboard there; by default there is
    none, and the scheduler's small HTTP server takes a free loopback port (no "port 8787 in use" warning).
    """
    from dask.distributed import Client, as_completed

    settings = settings or LabelSettings()
    if not isinstance(trials, dict):
        from gaitforce.signal.stances import trial_key

        trials = {f"{trial_key(t.source)}#{i}": t for i, t in enumerate(trials)}
    out_dir = Path(out_dir)
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    statics = dict(static) if isinstance(static, dict) else {name: static for name in trials}
    keys = {name: cache_key(t, settings) + ("" if statics.get(name) is None else
                                            cache_key(statics[name], settings)[:8])
            for name, t in trials.items()}
    todo = [n for n in trials if not _cache_file(cache, keys[n]).exists()]
    if stats is not None:
        stats["cached"] = [n for n in trials if n not in todo]
        stats["computed"] = list(todo)
    failures: list[GaitforceError] = []
    if todo:
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            import os

            workers = n_workers or max(1, min(len(todo), (os.cpu_count() or 2)))
            cluster = local_cluster(workers, dashboard_address)
            client = Client(cluster)
        try:
            packed = {id(st): _pack(st) for st in statics.values() if st is not None}
            futures = {}
            for name in todo:
                work = out_dir / "work" / _safe(name)
                st = statics.get(name)
                fut = client.submit(_label_task, _pack(trials[name]), None if st is None else packed[id(st)],
                                    settings.to_dict(), str(work),
                                    str(_cache_file(cache, keys[name])), key=f"label-{keys[name]}", pure=False)
                futures[fut] = name
            done = as_completed(futures)
            if progress:
                from tqdm import tqdm

                done = tqdm(done, total=len(futures), desc="label", unit="trial")
            for fut in done:
                result = fut.result()
                if not result["ok"]:
                    failures.append(GaitforceError(result["error"], source=futures[fut]))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    labels = {}
    for name in trials:
        path = _cache_file(cache, keys[name])
        if path.exists():
            labels[name] = pd.read_parquet(path)
    return labels, failures


def local_cluster(n_workers: int, dashboard_address: str | None = None):
    """A ``LocalCluster`` of single-threaded worker processes; a dashboard only at ``dashboard_address``.
    ``dashboard_address=None`` alone would still bind the scheduler's HTTP server to port 8787 (and warn "Port
    8787 is already in use" when another cluster holds it); a free loopback port does neither."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=dashboard_address,
                        scheduler_kwargs=None if dashboard_address else {"dashboard_address": "127.0.0.1:0"})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
