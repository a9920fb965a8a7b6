"""``gaitforce predict BUNDLE FILES... --out DIR``: per-frame forces for every stance phase of every file.

Each file is read, cut into stance phases and turned into features exactly as the bundle's training data were
(``gaitforce.ingest.trial_frames`` with the ingest settings stored in the bundle), then run through the ONNX
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
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GaitforceError


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
    p.set_defaults(func=run)


def stance_tables(bundle, frames: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{stance_id: per-frame table of predictions (+ measured targets)} for the frames of one trial."""
    pred = bundle.predict_frames(frames)
    out = {}
    for sid, idx in frames.groupby("stance_id", sort=False).groups.items():
        rows = frames.loc[idx]
        table = rows[["frame", "time", "stance_pct", "side"]].reset_index(drop=True)
        for t in bundle.targets:
            table[t] = pred.loc[idx, t].to_numpy(np.float64)
        for t in bundle.targets:
            if t in rows:
                table[f"{t}_measured"] = rows[t].to_numpy(np.float64)
        out[sid] = table
    return out


def _note_rate(bundle, trial, path) -> None:
    """A note (not an error) when the trial's frame rate is none the model was trained on (within 2 %)."""
    rates = bundle.spec.get("training_data", {}).get("sample_rates") or []
    rates = [r for r in rates if isinstance(r, (int, float)) and r > 0]
    if not rates or trial.n_frames < 2:
        return
    if all(abs(trial.rate - r) > 0.02 * r for r in rates):
        print(f"gaitforce: note: {path}: {trial.rate:.0f} Hz, the model was trained on "
              f"{', '.join(f'{r:g}' for r in rates)} Hz data", file=sys.stderr)


def check_mass(mass, *, option: str = "--mass") -> float | None:
    """A ``--mass KG`` value: None, or a plausible positive mass (the rule of :class:`gaitforce.trial.Subject`)."""
    if mass is None:
        return None
    if not (np.isfinite(mass) and 0 < mass < 500):
        raise GaitforceError(f"{option} {mass:g}: a subject mass in kg must be above 0 and below 500")
    return float(mass)


def _body_mass(bundle, frames: pd.DataFrame, path, mass: float | None) -> None:
    """Set ``frames["mass"]`` for a bundle that needs the body weight: ``mass`` when given, else the file's."""
    if not bundle.needs_body_weight:
        return
    if mass is not None:
        frames["mass"] = mass
    elif not np.isfinite(frames["mass"].to_numpy(np.float64)).all():
        raise GaitforceError("the model was trained on body-weight-normalised data and the file records no subject "
                             "mass: give --mass KG", source=path)


def predict_file(bundle, path: Path, out_dir: Path, settings, *, taken: dict | None = None,
                 mass: float | None = None) -> list[Path]:
    """Predict every stance of one file; returns the files written (STO, CSV per stance).

    ``taken``: {output file: the input file it came from} of the files already written in this batch; a file
    whose outputs would overwrite another's (the same trial name in two folders, ``w.c3d`` beside ``w.trc``)
    fails instead, and its own outputs are added to ``taken``."""
    from ..ingest import trial_frames
    from ..io import read
    from ..io.opensim import write_sto

    trial = read(path)
    _note_rate(bundle, trial, path)
    frames = trial_frames(trial, settings=settings, targets=bundle.targets)
    _body_mass(bundle, frames, path, mass)
    for note in frames.attrs.get("target_notes", []):
        print(f"gaitforce: note: {path}: {note} (no measured value in the CSV)", file=sys.stderr)
    tables = stance_tables(bundle, frames)
    stems = [f"{frames.loc[frames.stance_id == sid, 'trial'].iloc[0]}_stance{k}" for k, sid in enumerate(tables)]
    taken = {} if taken is None else taken
    clash = next((out_dir / f"{stem}.csv" for stem in stems if out_dir / f"{stem}.csv" in taken), None)
    if clash is not None:
        raise GaitforceError(f"its output {clash.name} would overwrite that of {taken[clash]} (same trial name); "
                             f"rename one or predict them into separate --out folders", source=path)
    written = []
    for stem, (sid, table) in zip(stems, tables.items()):
        sto = table[["time", *bundle.targets]]
        written.append(write_sto(out_dir / f"{stem}.sto", sto, name=f"gaitforce predictions {sid}"))
        table.to_csv(out_dir / f"{stem}.csv", index=False)
        written.append(out_dir / f"{stem}.csv")
    taken.update({f: path for f in written})
    return written


def run(args) -> int:
    from ..bundle import load_bundle
    from ..ingest import IngestSettings, expand_paths

    from .train import check_out_folder

    out_dir = check_out_folder(args.out)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    files = expand_paths(args.files)
    failures, n_files, n_out, taken = [], 0, 0, {}
    for path in files:
        try:
            written = predict_file(bundle, path, out_dir, settings, taken=taken, mass=mass)
        except GaitforceError as err:
            failures.append(err.with_source(path))
            continue
        n_files += 1
        n_out += len(written) // 2
        print(f"{path}: {len(written) // 2} stance(s)")
    print(f"wrote {n_out} stance(s) from {n_files} of {len(files)} file(s) to {out_dir}")
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for err in failures:
            print(f"  {err.line()}", file=sys.stderr)
        if n_files == 0:
            raise GaitforceError(f"none of {len(files)} file(s) could be processed")
        return 1
    return 0
