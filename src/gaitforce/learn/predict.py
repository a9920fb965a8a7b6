"""Prediction of trial files with a model bundle: features cut exactly as the bundle's training data were
(:func:`gaitforce.data.ingest.trial_frames` with the bundle's ingest settings), one STO and one CSV per stance."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError


def stance_tables(bundle, frames: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{stance_id: per-frame table of predictions (+ measured targets)} for the frames of one trial, with the
    marker map and the filled slots of the stance (``marker_map``, ``filled_slots``: ``slot<-source`` joined by
    ``; ``) where the frames record them, and ``ood_features`` (the features outside the bundle's training
    ranges, :func:`out_of_range`, joined by ``;``; empty: none) where the bundle stores ranges. A calibrated
    ensemble bundle adds ``<target>_lo`` and ``<target>_hi`` after the targets: the per-frame interval at the
    bundle's level (90 %), see :mod:`gaitforce.learn.ensemble`."""
    cols = interval_columns(bundle)
    pred = bundle.predict_frames(frames, interval=True) if cols else bundle.predict_frames(frames)
    slots = frames.attrs.get("slots", {})
    ranges = feature_ranges(bundle.spec)
    out = {}
    for sid, idx in frames.groupby("stance_id", sort=False).groups.items():
        rows = frames.loc[idx]
        table = rows[["stance_id", "frame", "time", "stance_pct", "side"]].reset_index(drop=True)
        for t in bundle.targets:
            table[t] = pred.loc[idx, t].to_numpy(np.float64)
        for t in cols:
            table[t] = pred.loc[idx, t].to_numpy(np.float64)
        for t in bundle.targets:
            if t in rows:
                table[f"{t}_measured"] = rows[t].to_numpy(np.float64)
        info = slots.get(sid)
        if info is not None:
            table["marker_map"] = info.get("marker_map") or ""
            table["filled_slots"] = "; ".join(f"{k}<-{v}" for k, v in info.get("filled_slots", {}).items())
        if ranges:
            table["ood_features"] = ";".join(out_of_range(rows, ranges))
        out[sid] = table
    return out


def interval_columns(bundle) -> list[str]:
    """``<target>_lo``, ``<target>_hi`` per target of a bundle with a calibrated interval; [] otherwise."""
    if not getattr(bundle, "has_interval", False):
        return []
    return [f"{t}_{b}" for t in bundle.targets for b in ("lo", "hi")]


#: Out-of-distribution rule: a feature leaves its training range [min, max] when a stance has values below
#: min - OOD_MARGIN x (max - min) or above max + OOD_MARGIN x (max - min) ...
OOD_MARGIN = 0.25
#: ... in at least this fraction of its frames (a one-frame spike at a stance edge is not a flag).
OOD_MIN_FRACTION = 0.05


def feature_ranges(spec: dict) -> dict[str, tuple[float, float]]:
    """The bundle's training feature ranges ({column: (min, max)}; entries that are not two finite numbers with
    min <= max are ignored; empty for a bundle written before they were stored)."""
    raw = spec.get("input", {}).get("feature_ranges")
    out = {}
    if isinstance(raw, dict):
        for c, v in raw.items():
            if (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             and np.isfinite(x) for x in v) and v[0] <= v[1]):
                out[str(c)] = (float(v[0]), float(v[1]))
    return out


def out_of_range(values: pd.DataFrame | dict, ranges: dict[str, tuple[float, float]], *,
                 margin: float = OOD_MARGIN, min_fraction: float = OOD_MIN_FRACTION) -> list[str]:
    """The features of one stance's frames that leave their training range by more than ``margin`` x the range
    in at least ``min_fraction`` of the frames, worst first (by how far past the margin, in range widths)."""
    found = []
    for c, (lo, hi) in ranges.items():
        if c not in values:
            continue
        x = np.asarray(values[c], np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        width = max(hi - lo, 1e-9)
        over = np.maximum(lo - margin * width - x, x - hi - margin * width)
        if np.mean(over > 0) >= min_fraction and (over > 0).any():
            found.append((float(over.max() / width), c))
    return [c for _, c in sorted(found, reverse=True)]


def ood_line(path, flags: dict[str, list[str]], *, shown: int = 6) -> str | None:
    """One console line for a file: its stances flagged out of distribution and their features."""
    bad = {sid: f for sid, f in flags.items() if f}
    if not bad:
        return None
    parts = [("#" + sid.rsplit("#", 1)[1] if "#" in sid else sid) + ": " + ", ".join(f[:shown])
             + (f" (+{len(f) - shown} more)" if len(f) > shown else "") for sid, f in bad.items()]
    return (f"{path}: OUT OF DISTRIBUTION: {len(bad)} of {len(flags)} stance(s) have features beyond the training "
            f"range by more than {OOD_MARGIN:.0%} of it: " + "; ".join(parts))


def _note(msg: str) -> None:
    print(f"gaitforce: note: {msg}", file=sys.stderr)


def _note_rate(bundle, trial, path, note=_note) -> None:
    """A note (not an error) when the trial's frame rate is none the model was trained on (within 2 %)."""
    rates = bundle.spec.get("training_data", {}).get("sample_rates") or []
    rates = [r for r in rates if isinstance(r, (int, float)) and r > 0]
    if not rates or trial.n_frames < 2:
        return
    if all(abs(trial.rate - r) > 0.02 * r for r in rates):
        note(f"{path}: {trial.rate:.0f} Hz, the model was trained on {', '.join(f'{r:g}' for r in rates)} Hz data")


def check_mass(mass, *, option: str = "--mass") -> float | None:
    """A ``--mass KG`` value: None, or a plausible positive mass (the rule of :class:`gaitforce.trial.Subject`)."""
    if mass is None:
        return None
    if not (np.isfinite(mass) and 0 < mass < 500):
        raise GaitforceError(f"{option} {mass:g}: a subject mass in kg must be above 0 and below 500")
    return float(mass)


def marker_map_setting(settings, marker_map: str):
    """``settings`` with the marker map of a ``--marker-map`` option (checked once here: a missing or malformed
    map is one error, not one per file)."""
    import dataclasses

    from gaitforce.data.features import load_marker_map

    if marker_map != "auto":
        load_marker_map(marker_map)
    return dataclasses.replace(settings, marker_map=marker_map)


def _body_mass(bundle, frames: pd.DataFrame, path, mass: float | None) -> None:
    """Set ``frames["mass"]`` for a bundle that needs the body weight: ``mass`` when given, else the file's."""
    if not bundle.needs_body_weight:
        return
    if mass is not None:
        frames["mass"] = mass
    elif not np.isfinite(frames["mass"].to_numpy(np.float64)).all():
        raise GaitforceError("the model was trained on body-weight-normalised data and the file records no subject "
                             "mass: give --mass KG", source=path)


def output_stem(trial_key: str, k: int) -> str:
    """``<trial key without suffix, folders joined by __>_stance<k>``: ``s1/walk.c3d`` -> ``s1__walk_stance0``."""
    return f"{Path(trial_key).with_suffix('').as_posix().replace('/', '__')}_stance{k}"


def uses_markers(bundle) -> bool:
    """Whether the bundle reads any marker feature (slots or joint angles); False: a force-plate model."""
    from gaitforce.data.features import ANGLES, SLOT_COLUMNS

    marker_cols = set(SLOT_COLUMNS) | set(ANGLES)
    return any(c in marker_cols for c in bundle.columns)


def predict_file(bundle, path: Path, out_dir: Path, settings, *, taken: dict | None = None,
                 mass: float | None = None, key: str | None = None, subjects=None, note=_note,
                 side: str | None = None, progression: str | None = None) -> list[Path]:
    """Predict every stance of one file; returns the files written (STO, CSV per stance).

    Stance ids (the CSV's ``stance_id`` column) are ``key`` (default: the file's name; a batch passes
    :func:`gaitforce.data.ingest.trial_keys`) and the stance index, as ingest names them; ``subjects``
    (:class:`gaitforce.data.subjects.SubjectInfo`) names the subject and mass where the file does not.

    ``taken``: {output file: the input file it came from} of the files already written in this batch; a file
    whose outputs would overwrite another's (the same trial name in two folders, ``w.c3d`` beside ``w.trc``)
    fails instead, and its own outputs are added to ``taken``.

    A force-plate model (:func:`uses_markers` False) needs no markers: ``side`` ('right'/'left') is the side of
    stances the file does not side itself (by foot markers or plate assignment), ``progression``
    (``+x``/``-x``/``+z``/``-z``) the walking direction, else it is taken from the CoP travel (treadmill
    detected); what was assumed is noted."""
    from gaitforce.data.ingest import trial_frames
    from gaitforce.io import read
    from gaitforce.io.writers import write_sto

    trial = read(path)
    if subjects is not None:
        trial = subjects.apply(trial, path)
    if side is not None:
        trial = trial.replace(meta={**trial.meta, "side": side}, note=f"side {side} given (--side)")
    _note_rate(bundle, trial, path, note)
    markers = uses_markers(bundle)
    try:
        frames = trial_frames(trial, settings=settings, targets=bundle.targets, key=key or Path(path).name,
                              markers=markers, progression=None if markers else progression)
    except GaitforceError:
        why = trial.meta.get("plate_error")
        if not trial.plate_names and why:  # the reader's reason, not the generic "no force plate"
            raise GaitforceError(f"no force data ({why})", source=path) from None
        raise
    if frames.attrs.get("assumed"):
        note(f"{path}: force-plate model, assumed: " + "; ".join(frames.attrs["assumed"]))
    for line in dict.fromkeys(v["line"] for v in frames.attrs.get("slots", {}).values() if v.get("line")):
        note(f"{path}: {line}")
    _body_mass(bundle, frames, path, mass)
    for n in frames.attrs.get("target_notes", []):
        note(f"{path}: {n} (no measured value in the CSV)")
    tables = stance_tables(bundle, frames)
    line = ood_line(path, {sid: [f for f in str(t["ood_features"].iloc[0]).split(";") if f]
                           for sid, t in tables.items() if "ood_features" in t})
    if line:
        note(line)
    stems = [output_stem(frames.loc[frames.stance_id == sid, "trial"].iloc[0], k) for k, sid in enumerate(tables)]
    taken = {} if taken is None else taken
    clash = next((out_dir / f"{stem}.csv" for stem in stems if out_dir / f"{stem}.csv" in taken), None)
    if clash is not None:
        raise GaitforceError(f"its output {clash.name} would overwrite that of {taken[clash]} (same trial name); "
                             f"rename one or predict them into separate --out folders", source=path)
    written = []
    for stem, (sid, table) in zip(stems, tables.items()):
        sto = table[["time", *bundle.targets, *interval_columns(bundle)]]
        written.append(write_sto(out_dir / f"{stem}.sto", sto, name=f"gaitforce predictions {sid}"))
        table.to_csv(out_dir / f"{stem}.csv", index=False)
        written.append(out_dir / f"{stem}.csv")
    taken.update({f: path for f in written})
    return written


