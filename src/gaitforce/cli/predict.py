"""``gaitforce predict BUNDLE FILES... --out DIR``: per-frame forces for every stance phase of every file.

Each file is read, cut into stance phases and turned into features exactly as the bundle's training data were
(``gaitforce.data.ingest.trial_frames`` with the ingest settings stored in the bundle), then run through the ONNX
model. Per stance, ``DIR/<trial>_stance<k>.sto`` (OpenSim storage: time + one column per target) and
``DIR/<trial>_stance<k>.csv`` (frame, time, stance %, side of the stance leg, predictions, and the measured
target where the file has one, as ``<target>_measured``) are written. Targets are never required: a measured
target the file lacks (or whose EMG channel is flat) is left out of the CSV, with a note. A file that fails is
reported in one line and the others are still processed (exit 1); exit 2 if none could be processed.

A model trained with body-weight normalisation needs the subject's mass: ``--mass KG`` (used for every file,
over the file's own), else the mass the file records (C3D/MAT subject metadata); a file with neither fails in
one line."""

from __future__ import annotations

import sys

from gaitforce.errors import GaitforceError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict per-frame forces of each stance in trial files with a model bundle",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("bundle", metavar="BUNDLE", help="model bundle folder (model.onnx + bundle.json)")
    p.add_argument("files", nargs="+", metavar="FILE", help="trial files or folders (.c3d, .trc, .mat ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the STO and CSV files")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--mass", type=float, default=None, metavar="KG",
                   help="subject mass for a model trained with body-weight normalisation (default: the file's)")
    p.add_argument("--subject", metavar="ID", help="subject of every file (TRC/MOT files name none)")
    p.add_argument("--height", type=float, metavar="M", help="subject height of every file")
    p.add_argument("--marker-map", metavar="NAME|FILE.json",
                   help="marker map for these files instead of the bundle's (a packaged name, 'auto', or a JSON "
                   "file: docs/readers.md)")
    p.add_argument("--side", choices=("right", "left"),
                   help="side of stances the file does not side itself (no foot markers, no plate assignment)")
    p.add_argument("--progression", choices=("+x", "-x", "+z", "-z"),
                   help="force-plate models: walking direction along an axis of the Y-up frame (default: each "
                   "stance's CoP travel, reversed on a treadmill; write --progression=-x for a minus sign)")
    p.add_argument("--subjects", metavar="CSV", help="subjects file (file_or_glob,subject,mass_kg,height_m); "
                   "default: subjects.csv in the folders given")
    p.set_defaults(func=run)


def run(args) -> int:
    from gaitforce.cli.train import check_out_folder
    from gaitforce.data.ingest import IngestSettings, expand_paths
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.predict import check_mass, marker_map_setting, predict_file
    from gaitforce.outputs import atomic_dir

    out_dir = check_out_folder(args.out, args.overwrite)
    mass = check_mass(args.mass)
    bundle = load_bundle(args.bundle, intra_op_num_threads=args.threads)
    if mass is not None and not bundle.needs_body_weight:
        print("gaitforce: note: --mass is not used: the model takes no body weight", file=sys.stderr)
    stored = bundle.ingest_settings
    if stored is None:
        print("gaitforce: note: the bundle stores no ingest settings; using the defaults", file=sys.stderr)
    try:
        settings = IngestSettings.from_dict(stored or {})
    except (TypeError, ValueError) as err:
        raise GaitforceError(f"bundle's ingest settings are unusable: {err}", source=args.bundle) from None
    if args.marker_map:
        settings = marker_map_setting(settings, args.marker_map)
    from gaitforce.data.ingest import per_file, trial_keys
    from gaitforce.data.subjects import SubjectInfo, find_sidecars, read_subjects

    tables = (read_subjects(args.subjects),) if args.subjects else tuple(find_sidecars(args.files))
    subjects = SubjectInfo(subject=args.subject, mass=mass, height=args.height, tables=tables)
    files = expand_paths(args.files)
    keys = trial_keys(files)
    failures, n_files, n_out, taken = [], 0, 0, {}
    # every output goes into one temporary folder, renamed into place at the end: Ctrl-C leaves nothing half-made
    with atomic_dir(out_dir, overwrite=args.overwrite) as tmp:
        for path in files:
            written = per_file(path, lambda p: predict_file(
                bundle, p, tmp, settings, taken=taken, mass=mass, key=keys[p], subjects=subjects, side=args.side,
                progression=args.progression), failures)
            if written is None:
                continue
            n_files += 1
            n_out += len(written) // 2
            print(f"{path}: {len(written) // 2} stance(s)")
        if n_files == 0:  # nothing to keep: the previous output stays as it was
            if len(failures) == 1:  # one file, one line: its own
                raise failures[0]
            _list_failures(failures)
            raise GaitforceError(f"none of {len(files)} file(s) could be processed")
    print(f"wrote {n_out} stance(s) from {n_files} of {len(files)} file(s) to {out_dir}")
    _list_failures(failures)
    return 1 if failures else 0


def _list_failures(failures) -> None:
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)
