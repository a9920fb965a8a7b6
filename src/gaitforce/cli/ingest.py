"""``gaitforce ingest PATHS... --out DIR``: build a dataset (frames.parquet + manifest.json) from trial files."""

from __future__ import annotations

import sys

from gaitforce.errors import GaitforceError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="build a dataset of stance phases (features + targets) from trial files or folders",
        description="Read every file (folders are searched for readable files), cut stance phases, compute "
        "features and targets, and write DIR/frames.parquet + DIR/manifest.json. Files that fail are listed "
        "at the end (exit 1); the dataset of the others is still written. Exit 2 if none could be read.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="trial files (.mat, .c3d, .trc ...) or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    p.add_argument("--marker-map", default="auto", metavar="auto|NAME|FILE.json",
                   help="marker map: 'auto' (default) picks the packaged map that fits, or plug-in-gait, opensim, "
                   "cast-ior, cleveland, gc-mat, gc-lab, or a JSON file (docs/readers.md)")
    p.add_argument("--lowpass", type=float, default=10.0, metavar="HZ", help="low-pass cutoff (0: none; default 10)")
    p.add_argument("--causal-filter", action="store_true",
                   help="filter as the live stream does (causal Butterworth; stances found on the unfiltered force), "
                        "so a model trained on this dataset sees the same features online (docs/streaming.md)")
    p.add_argument("--emg-normalise", choices=("max", "mvc"), default="max",
                   help="EMG targets divided by the trial maximum (the paper's, default) or the file's MVC values")
    p.add_argument("--subject", metavar="ID", help="subject of every file (TRC/MOT files name none)")
    p.add_argument("--mass", type=float, metavar="KG", help="subject mass of every file")
    p.add_argument("--height", type=float, metavar="M", help="subject height of every file")
    p.add_argument("--subjects", metavar="CSV", help="subjects file (file_or_glob,subject,mass_kg,height_m); "
                   "default: subjects.csv in the folders given")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from gaitforce.data.ingest import (  # heavy (scipy.signal): imported on use
        IngestSettings,
        build_dataset,
    )
    from gaitforce.data.subjects import SubjectInfo, find_sidecars, read_subjects
    from gaitforce.outputs import check_output

    check_output(args.out, overwrite=args.overwrite)  # before reading a file
    settings = IngestSettings(marker_map=args.marker_map, lowpass_cutoff=args.lowpass or None,
                              lowpass_causal=args.causal_filter, emg_normalise=args.emg_normalise)
    tables = (read_subjects(args.subjects),) if args.subjects else tuple(find_sidecars(args.paths))
    subjects = SubjectInfo(subject=args.subject, mass=args.mass, height=args.height, tables=tables)
    try:
        dataset, failures = build_dataset(args.paths, settings=settings, progress=not args.no_progress,
                                          subjects=subjects)
    except GaitforceError as err:
        failed = getattr(err, "failures", [])
        if len(failed) == 1:  # one file, one line: its own
            raise failed[0] from None
        _list_failures(failed)  # the error line names only the first
        raise
    out = dataset.save(args.out, overwrite=args.overwrite)
    c = dataset.manifest["counts"]
    print(f"wrote {out}: {c['stances']} stances, {c['frames']} frames from {c['ingested']} files "
          f"({c['subjects']} subjects); targets: {', '.join(dataset.targets) or 'none'}")
    if c.get("unknown_subject_stances"):
        print(f"gaitforce: note: {c['unknown_subject_stances']} stance(s) have no subject: subject-split evaluation "
              "will refuse them (name them with --subject or a subjects.csv)", file=sys.stderr)
    _print_marker_maps(dataset.manifest.get("sources", []))
    for w in dataset.manifest.get("warnings", []):
        print(f"gaitforce: warning: {w}", file=sys.stderr)
    _list_failures(failures)
    return 1 if failures else 0


def _print_marker_maps(sources) -> None:
    """One line per distinct marker-map outcome (map, slots matched, slots filled and from what), with its count."""
    counts: dict[str, int] = {}
    for src in sources:
        for line in src.get("slots", []):
            counts[line] = counts.get(line, 0) + 1
    for line, n in counts.items():
        print(f"{n} file(s): {line}")


def _list_failures(failures) -> None:
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)


__all__ = ["register", "run", "GaitforceError"]
