"""``gaitforce label DATASET_OR_FILES... --out DIR``: per-frame internal forces from OpenSim (see
:mod:`gaitforce.physics`) for every stance phase, in parallel on Dask, resumable through a per-trial cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gaitforce.errors import GaitforceError, InputFileError


def _number(minimum: float, *, above: bool = False, unit: str = ""):
    """An argparse type: a finite number >= ``minimum`` (> with ``above``); a bad value is a one-line usage
    error."""
    import math

    bound = f"{'>' if above else '>='} {minimum:g}{' ' + unit if unit else ''}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum)):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, not {text}")
        return value

    return parse


_seconds = _number(0.0, unit="s")  # --pad
_factor = _number(0.0, above=True)  # --knee-strength
_weight = _number(0.0)  # --emg-weight


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
    p.add_argument("--subject", metavar="ID", help="subject of every file (TRC/MOT files name none)")
    p.add_argument("--mass", type=float, metavar="KG", help="subject mass where the files carry none")
    p.add_argument("--height", type=float, metavar="M", help="subject height where the files carry none")
    p.add_argument("--subjects", metavar="CSV", help="subjects file (file_or_glob,subject,mass_kg,height_m); "
                   "default: subjects.csv in the folders given")
    p.add_argument("--side", choices=("stance", "right", "left"), default="stance", help="knee to label")
    p.add_argument("--model", choices=("gait14dof22musc", "rajagopal2015"), default="rajagopal2015",
                   help="musculoskeletal model: rajagopal2015 (40 muscles a leg with the separate vasti, hamstrings, "
                        "gastrocnemius heads and TFL; the lower held-out medial error) or gait14dof22musc (11 lumped "
                        "muscles a leg, ~10x faster SO)")
    p.add_argument("--so", choices=("batched", "opensim"), default="batched",
                   help="static optimisation: batched (all frames of a stance at once, the same problem; default) "
                        "or opensim (OpenSim's StaticOptimization, the reference, ~8x slower stage)")
    p.add_argument("--criterion", choices=("a3", "emg"), default="a3",
                   help="SO cost: a3 (sum of cubed activations; default) or emg (also tracks the file's EMG "
                        "envelopes, scaled on the inverse-dynamics moments; files without EMG fail)")
    p.add_argument("--emg-weight", type=_weight, default=1.0, metavar="W", help="weight of the EMG tracking term")
    p.add_argument("--grf-lowpass", action=argparse.BooleanOptionalAction, default=True,
                   help="low-pass the ground reactions at the coordinates' cutoff (6 Hz) before inverse dynamics "
                        "(default; --no-grf-lowpass: as recorded)")
    p.add_argument("--pad", type=_seconds, default=0.2, metavar="S",
                   help="label each stance with up to S seconds of its trial on each side (as many as it has), cut "
                        "after; 0: the stance alone")
    p.add_argument("--strength", choices=("generic", "handsfield2014"), default="generic",
                   help="maximum isometric forces: the model's, or scaled to the subject's mass and height "
                        "(Handsfield et al. 2014 muscle volume)")
    p.add_argument("--knee-strength", type=_factor, default=None, metavar="F",
                   help="multiply the maximum isometric force of every knee-crossing muscle by F (a strength "
                        "reduction, as the Grand Challenge GC5 reference model did with 0.6; default: the library's "
                        "LabelSettings.knee_muscle_strength, see docs/physics.md)")
    p.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (default: local)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import pandas as pd

    from gaitforce.data.ingest import IngestSettings, expand_paths, per_file, trial_keys
    from gaitforce.data.subjects import SubjectInfo, find_sidecars, read_subjects
    from gaitforce.physics import LabelSettings, label_dataset
    from gaitforce.physics.merge import merge_labels
    from gaitforce.physics.stances import label_stances, read_for_labelling

    from gaitforce.outputs import atomic_file, check_output

    # an existing --out is a previous run to resume (it has the cache) or needs --overwrite
    resume = (Path(args.out) / "cache").is_dir()
    out = check_output(args.out, overwrite=args.overwrite, allow_existing=resume)
    settings = LabelSettings(side=args.side, model=args.model, so=args.so, criterion=args.criterion,
                             emg_weight=args.emg_weight, grf_lowpass=args.grf_lowpass, pad_s=args.pad,
                             strength=args.strength,
                             **({} if args.knee_strength is None else {"knee_muscle_strength": args.knee_strength}))
    dataset = None
    first = Path(args.paths[0])
    if len(args.paths) == 1 and (first / "manifest.json").exists():
        from gaitforce.data.dataset import Dataset

        dataset = Dataset.load(first)
        files = [Path(s["path"]) for s in dataset.manifest.get("sources", [])]
        ingest = IngestSettings.from_dict(dataset.manifest.get("settings", {}))
        known = set(map(str, dataset.frames["trial"].unique()))
        # datasets ingested before stance ids carried the file's suffix used the stem: label those ids as they are
        keys = {Path(s["path"]): s.get("trial") or (Path(s["path"]).stem if Path(s["path"]).stem in known
                                                    else Path(s["path"]).name)
                for s in dataset.manifest.get("sources", [])}
    else:
        files = expand_paths(args.paths)
        ingest, keys = IngestSettings(), trial_keys(files)
    if not files:
        raise InputFileError("no trial files to label", source=args.paths[0])
    tables = (read_subjects(args.subjects),) if args.subjects else tuple(find_sidecars(args.paths))
    subjects = SubjectInfo(subject=args.subject, mass=args.mass, height=args.height, tables=tables)
    static = read_for_labelling(Path(args.static), subjects) if args.static else None
    stances, statics, failures = {}, {}, []
    def stances_of(p):
        found, source_static = label_stances(read_for_labelling(p, subjects), ingest, key=keys[p], path=p,
                                           pad_s=settings.pad_s)
        if not found:
            raise GaitforceError("no usable stance phase found")
        return found, source_static

    for path in files:
        got = per_file(path, stances_of, failures)
        if got is not None:
            stances.update(got[0])
            statics.update({name: static or got[1] for name in got[0]})
    if not stances:
        if len(failures) == 1:  # one file, one line: its own
            raise failures[0]
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)
        raise GaitforceError(f"nothing to label: none of {len(files)} file(s) gave a stance")
    stats: dict = {}
    labels, failed = label_dataset(stances, out_dir=out, settings=settings, static=statics, stats=stats,
                                   scheduler=args.scheduler, n_workers=args.workers, progress=not args.no_progress)
    print(f"{len(stats['cached'])} stance(s) from the cache, {len(stats['computed'])} computed")
    failures += failed
    if labels:
        if dataset is None:
            table = pd.concat([df.assign(stance_id=name, trial=name.rsplit("#", 1)[0]) for name, df in labels.items()],
                              ignore_index=True)
            with atomic_file(out / "labels.parquet") as tmp:
                table.to_parquet(tmp, index=False)
            print(f"wrote {out / 'labels.parquet'}: {len(labels)} stances, {len(table)} frames")
        else:
            merged = merge_labels(dataset, labels, failures=failures)
            kept = merged.manifest["physics"]["kept_own"]
            if kept:
                print(f"kept the dataset's own {', '.join(kept)}; physics values as physics_<name>")
            merged.save(out, overwrite=True, keep=("cache", "work"))  # checked above; the cache stays
            print(f"wrote {out}: dataset with {len(merged.manifest['physics']['targets'])} physics targets on "
                  f"{merged.manifest['physics']['labelled_stances']} stances")
    if failures:
        print(f"{len(failures)} stance(s)/file(s) failed:", file=sys.stderr)
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)
        return 1 if labels else 2
    if not labels:  # nothing labelled and nothing written is not a success
        print("gaitforce: error: no stance was labelled", file=sys.stderr)
        return 2
    return 0
