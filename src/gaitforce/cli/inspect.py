"""``gaitforce inspect FILE...``: what each file holds (``Trial.summary()`` + the stance phases found), or the
summary of a dataset folder. Bad files are reported one line each; the rest are still inspected; exit 1 if any
failed."""

from __future__ import annotations

import sys
from pathlib import Path

from gaitforce.errors import GaitforceError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show what motion-capture files or a dataset folder hold",
        description="Print each trial's summary (subject, frames, markers, plates, EMG, events, stance phases) or "
        "a dataset folder's summary. Folders without a dataset are searched for readable files.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="C3D/TRC/MOT/STO/MAT files, or folders")
    p.add_argument("--no-stances", action="store_true", help="do not detect stance phases")
    p.add_argument("--marker-map", default="auto", metavar="auto|NAME|FILE.json",
                   help="marker map whose slots are reported for each usable stance (default: auto)")
    p.set_defaults(func=run)


def run(args) -> int:
    marker_map = getattr(args, "marker_map", "auto")
    if marker_map != "auto":
        from gaitforce.data.features import load_marker_map

        load_marker_map(marker_map)  # a missing or malformed map: one error before any file
    failures: list[str] = []
    for target in _expand([Path(p) for p in args.paths], failures):
        from gaitforce.data.ingest import per_file

        failed: list = []
        text = per_file(target, lambda p: _describe(p, stances=not args.no_stances, marker_map=marker_map), failed)
        if text is None:
            failures += [f.line() for f in failed]
            continue
        print(text)
        print()
    for line in failures:
        print(f"gaitforce: error: {line}", file=sys.stderr)
    if failures:
        print(f"gaitforce inspect: {len(failures)} of the inputs failed", file=sys.stderr)
    return 1 if failures else 0


def _is_dataset(path: Path) -> bool:
    from gaitforce.data.dataset import FRAMES_FILE, MANIFEST_FILE

    return path.is_dir() and (path / FRAMES_FILE).exists() and (path / MANIFEST_FILE).exists()


def _expand(paths: list[Path], failures: list[str]) -> list[Path]:
    """Files and dataset folders to inspect; a plain folder is searched (recursively) for readable files."""
    from gaitforce.io import READERS

    out = []
    for p in paths:
        if _is_dataset(p):
            out.append(p)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in READERS and f.is_file())
            if not found:
                failures.append(f"{p}: no readable files in folder")
            out.extend(found)
        else:
            out.append(p)
    return out


def _describe(path: Path, *, stances: bool, marker_map="auto") -> str:
    if _is_dataset(path):
        from gaitforce.data.dataset import Dataset

        return _dataset_summary(Dataset.load(path))
    from gaitforce.io import read

    trial = read(path)
    text = trial.summary()
    if stances:
        text += "\n" + _stance_lines(trial, marker_map)
    return text


def _slot_lines(trial, found, marker_map) -> list[str]:
    """The marker map's outcome per usable stance (map, slots matched, filled and from what, or why refused),
    identical lines once."""
    from gaitforce.data.features import describe_slots, resolve_slots
    from gaitforce.data.ingest import IngestSettings, prepare
    from gaitforce.signal.stances import cut

    settings = IngestSettings(marker_map=marker_map)
    pre = prepare(trial, settings)
    lines: dict[str, list[str]] = {}
    for s in found:
        if not s.accepted:
            continue
        try:
            _, how, spec = resolve_slots(cut(pre, s, rules=settings.stance_rules), marker_map)
            line = describe_slots(spec["name"], how)
        except GaitforceError as err:
            line = f"markers refused: {err.message}"
        lines.setdefault(line, []).append(s.side)
    return [f"slots:    {line} ({', '.join(sorted(set(sides)))} stance{'s' if len(sides) > 1 else ''})"
            for line, sides in lines.items()]


def _stance_lines(trial, marker_map="auto") -> str:
    from gaitforce.data.ingest import trial_stances

    if not trial.plate_names and not trial.meta.get("single_stance"):
        return "stances:  none (no force plates)"
    found = trial_stances(trial)
    if not found:
        return "stances:  none found (no plate loaded above the stance threshold)"
    ok = [s for s in found if s.accepted]
    lines = [f"stances:  {len(ok)} usable" + (f", {len(found) - len(ok)} rejected" if len(ok) < len(found) else "")]
    for s in found:
        t0, t1 = trial.time[s.start], trial.time[max(s.stop - 1, s.start)]
        name = s.plate_name or "file's own stance frames"
        what = s.id if s.accepted else f"rejected: {s.reason}"
        lines.append(f"          {name} {s.side}: frames {s.start}-{s.stop} ({t0:.3f}-{t1:.3f} s)  {what}")
    lines.extend(_slot_lines(trial, found, marker_map))
    return "\n".join(lines)


def _dataset_summary(ds) -> str:
    st = ds.stances()
    lines = [
        f"dataset:  {ds.path}",
        f"stances:  {len(st)} from {st['trial'].nunique()} trials of {st['subject'].nunique()} subjects, "
        f"{len(ds)} frames",
        f"features: {len(ds.features)}; sets: {', '.join(ds.manifest['feature_sets']) or 'none'}",
        "targets:  " + (", ".join(f"{k} [{v}]" for k, v in ds.targets.items()) or "none"),
    ]
    for group in ds.manifest.get("groups", []):
        counts = st[group].value_counts().sort_index()
        lines.append(f"{group + ':':10}" + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    sides = st["side"].value_counts()
    lines.append("sides:    " + ", ".join(f"{k} ({v})" for k, v in sides.items()))
    return "\n".join(lines)
