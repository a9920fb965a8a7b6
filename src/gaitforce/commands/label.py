"""``gaitforce label DATASET_OR_FILES... --out DIR``: per-frame internal forces from OpenSim (see
:mod:`gaitforce.physics`) for every stance phase, in parallel on Dask, resumable through a per-trial cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from ..errors import GaitforceError, InputFileError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label",
        help="compute physics targets (knee contact, muscle forces) with OpenSim for trials or a dataset",
        description="Scale a musculoskeletal model, then inverse kinematics, inverse dynamics, static "
        "optimisation and the knee joint reaction for every stance phase. Files (or folders of them) give "
        "DIR/labels.parquet; a dataset folder (frames.parquet + manifest.json) gives a copy of the dataset in "
        "DIR with the targets added. Results are cached in DIR/cache: a rerun redoes only unfinished stances. "
        "Stances that fail are listed at the end (exit 1).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a dataset folder, or trial files / folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--static", metavar="FILE", help="static (standing) trial of the subject, for scaling")
    p.add_argument("--mass", type=float, metavar="KG", help="subject mass where the files carry none")
    p.add_argument("--side", choices=("stance", "right", "left"), default="stance", help="knee to label")
    p.add_argument("--model", choices=("gait14dof22musc", "rajagopal2015"), default="gait14dof22musc",
                   help="musculoskeletal model: gait14dof22musc (11 lumped muscles a leg, fast) or rajagopal2015 "
                        "(40 muscles a leg with the separate vasti, hamstrings, gastrocnemius heads and TFL; ~10x "
                        "slower SO)")
    p.add_argument("--so", choices=("batched", "opensim"), default="batched",
                   help="static optimisation: batched (all frames of a stance at once, the same problem; default) "
                        "or opensim (OpenSim's StaticOptimization, the reference, ~8x slower stage)")
    p.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (default: local)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _read(path: Path, mass: float | None = None):
    import dataclasses

    from .. import io

    kwargs = {"grf": "auto"} if path.suffix.lower() == ".trc" else {}
    trial = io.read(path, **kwargs).to_y_up()
    if mass is not None:
        trial = trial.replace(subject=dataclasses.replace(trial.subject, mass=mass), note=f"mass set to {mass} kg")
    return trial


def stances_of(trial, *, threshold: float = 20.0, min_duration: float = 0.25, ingest_settings: dict | None = None) -> dict:
    """name -> stance Trial (all plates kept, meta side and stance_start), named ``<trial id>#<k>`` as the dataset
    does. With ``ingest_settings`` (a dataset manifest's), the stances are cut exactly as ingest cut them
    (its gap filling, low-pass and stance rule, or a file's own stance frames), so frames match the dataset's."""
    from .. import ingest
    from ..preprocess import extract_stances

    if ingest_settings is not None:
        windows = ingest.stance_windows(trial, settings=ingest.IngestSettings.from_dict(ingest_settings))
    else:
        base = int(trial.meta.get("frame_offset", 0))
        windows = [(int(st.meta.get("frame_offset", 0)) - base, int(st.meta.get("frame_offset", 0)) - base + st.n_frames,
                    st.meta.get("side", trial.meta.get("side")))
                   for st in extract_stances(trial, threshold=threshold, min_duration=min_duration)]
    out = {}
    for k, (start, stop, side) in enumerate(windows):
        full = trial.slice_frames(start, stop)
        out[f"{ingest.trial_id(trial)}#{k}"] = full.replace(meta={**full.meta, "side": side, "stance_start": start})
    return out


def _on_raw_source(path: Path, trial, stances: dict):
    """Stances re-cut from the file's raw recording where :func:`gaitforce.physics.sources.raw_source` knows
    one (Grand Challenge .mat files hold too few markers for the model), with that subject's static trial."""
    from ..physics.sources import raw_source

    source = raw_source(path, trial)
    if source is None:
        return stances, None
    out = {}
    for name, st in stances.items():
        start = source.offset + int(st.meta["stance_start"])
        cut = source.trial.slice_frames(start, start + st.n_frames)
        out[name] = cut.replace(meta={**cut.meta, "side": st.meta["side"], "labelled_from": str(source.trial.source)})
    return out, source.static


def run(args) -> int:
    from ..ingest import expand_paths
    from ..physics import LabelSettings, label_dataset

    settings = LabelSettings(side=args.side, model=args.model, so=args.so)
    out = Path(args.out)
    dataset = None
    first = Path(args.paths[0])
    if len(args.paths) == 1 and (first / "manifest.json").exists():
        from ..dataset import Dataset

        dataset = Dataset.load(first)
        files = [Path(s["path"]) for s in dataset.manifest.get("sources", [])]
        ingest = dataset.manifest.get("settings", {})
        detect = {"ingest_settings": ingest}
    else:
        files = expand_paths(args.paths)
        detect = {}
    if not files:
        raise InputFileError("no trial files to label", source=args.paths[0])
    static = _read(Path(args.static), args.mass) if args.static else None
    stances, statics, failures = {}, {}, []
    for path in files:
        try:
            trial = _read(path, args.mass)
            found = stances_of(trial, **detect)
            found, source_static = _on_raw_source(path, trial, found)
            stances.update(found)
            statics.update({name: static or source_static for name in found})
        except GaitforceError as err:
            failures.append(err.with_source(path))
    stats: dict = {}
    labels, failed = label_dataset(stances, out_dir=out, settings=settings, static=statics, stats=stats,
                                   scheduler=args.scheduler, n_workers=args.workers, progress=not args.no_progress)
    print(f"{len(stats['cached'])} stance(s) from the cache, {len(stats['computed'])} computed")
    failures += failed
    if labels:
        table = pd.concat([df.assign(stance_id=name, trial=name.split("#")[0]) for name, df in labels.items()],
                          ignore_index=True)
        if dataset is None:
            table.to_parquet(out / "labels.parquet", index=False)
            print(f"wrote {out / 'labels.parquet'}: {len(labels)} stances, {len(table)} frames")
        else:
            _merge_into(dataset, table, out, failures)
    if failures:
        print(f"{len(failures)} stance(s)/file(s) failed:", file=sys.stderr)
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)
        return 1 if labels else 2
    return 0


def _merge_into(dataset, table: pd.DataFrame, out: Path, failures: list) -> None:
    """Add the target columns to the dataset's frames (matched on stance_id + frame) and save it in ``out``."""
    from ..physics import TARGETS

    frames = dataset.frames
    counts = frames.groupby("stance_id").size()
    got = table.groupby("stance_id").size()
    for sid in got.index:
        if sid in counts.index and counts[sid] != got[sid]:
            failures.append(GaitforceError(f"labelled {got[sid]} frames, dataset has {counts[sid]}", source=sid))
            table = table[table["stance_id"] != sid]
    targets = [c for c in table.columns if c not in ("frame", "time", "stance_id", "trial")]
    # a target the dataset already holds (the Grand Challenge's measured knee_medial, ...) is kept; the
    # physics value goes beside it as physics_<name>
    clash = {c: f"physics_{c}" for c in targets if c in frames and not dataset.manifest.get("physics")}
    if clash:
        table = table.rename(columns=clash)
        targets = [clash.get(c, c) for c in targets]
        print(f"kept the dataset's own {', '.join(clash)}; physics values as physics_<name>")
    merged = frames.drop(columns=[c for c in targets if c in frames]).merge(
        table[["stance_id", "frame", *targets]], on=["stance_id", "frame"], how="left")
    manifest = json.loads(json.dumps(dataset.manifest, default=str))
    manifest["targets"] = {**manifest.get("targets", {}), **{t: "N" for t in targets}}
    manifest["physics"] = {"targets": [clash.get(t, t) for t in TARGETS],
                           "labelled_stances": int(table["stance_id"].nunique())}
    type(dataset)(frames=merged, manifest=manifest).save(out)
    print(f"wrote {out}: dataset with {len(targets)} physics targets on {table['stance_id'].nunique()} stances")
