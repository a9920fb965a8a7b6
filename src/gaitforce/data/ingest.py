"""From trials to a dataset: preprocessing, stances, features and targets per frame.

:func:`trial_frames` is shared by ``gaitforce ingest`` and ``gaitforce predict``, so a model sees the same
features at training and use. Steps for one trial (all settings in :class:`IngestSettings`):

1. :func:`prepare`: to Y-up; :func:`~gaitforce.signal.gaps.fill_gaps` (``max_gap``). Stances are segmented
   on this trial (:func:`~gaitforce.signal.stances.segment`, the rules of :attr:`IngestSettings.stance_rules`):
   the force as recorded, so the zero-lag, causal and live paths put the same boundaries on the same data.
2. :func:`~gaitforce.signal.filters.lowpass` (zero-lag) or, with ``lowpass_causal``, the stream's causal
   filter, of markers, forces, CoP and free moment (``lowpass_cutoff``/``lowpass_order``; ``None`` skips it).
   Target signals (measured knee forces, EMG envelopes) are *not* filtered.
3. targets: :func:`gaitforce.data.targets.emg_targets` (normalisation ``emg_normalise``, recorded);
4. per accepted stance: cut from the filtered trial, marker slots (:func:`gaitforce.data.features.slot_trial`),
   the stance frame and the features (:func:`gaitforce.data.features.stance_features`).

Rows carry the identity columns of :mod:`gaitforce.data.dataset` (``stance_id`` from the stance record:
``<shortest unique tail of the file's path>#<k>``, unique in a dataset), the group columns
``competition``/``year`` where the trial's meta has them, every feature column, and the targets present.
Subjects: :mod:`gaitforce.data.subjects` (options or a ``subjects.csv`` sidecar for files that name none).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from gaitforce import __version__
from gaitforce import constants as C
from gaitforce.data import features
from gaitforce.data.dataset import ID_COLUMNS, Dataset
from gaitforce.data.subjects import SubjectInfo, find_sidecars
from gaitforce.data.targets import DEFAULT_EMG_MAP, KNEE_TARGETS, emg_targets, unit_of
from gaitforce.errors import GaitforceError, InputFileError
from gaitforce.io import READERS, read
from gaitforce.io.trc import find_grf_sibling
from gaitforce.signal.filters import lowpass, lowpass_causal
from gaitforce.signal.gaps import fill_gaps
from gaitforce.signal.mirror import swap_side_name
from gaitforce.signal.stances import Stance, StanceRules, accepted, cut, segment
from gaitforce.trial import Trial

GROUP_KEYS = ("competition", "year")


@dataclass
class IngestSettings:
    """Everything that decides a dataset's rows; stored in ``manifest['settings']`` and in model bundles."""

    marker_map: Any = "auto"  # 'auto', a packaged map name, a JSON path, or a map dict
    lowpass_cutoff: float | None = 10.0
    lowpass_order: int = 4
    lowpass_causal: bool = False  # True: the streaming (causal) filter, stances found on the unfiltered force
    max_gap: float = 0.1
    stance_threshold: float = C.STANCE_THRESHOLD_N
    min_duration: float = C.MIN_STANCE_S
    max_dropout: float = C.MAX_DROPOUT_S
    foot_on_plate: float = C.FOOT_ON_PLATE_M
    feature_sets: tuple[str, ...] = ("all", "kinematics", "force_plate", "angles_grf", "grf_moments")
    emg_window: float = 0.05
    emg_normalise: str = "max"  # the paper's trial maximum; "mvc": the file's MVC values
    emg_map: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_EMG_MAP.items()})
    targets: tuple[str, ...] = tuple(KNEE_TARGETS) + tuple(f"emg_{m}" for m in DEFAULT_EMG_MAP)

    def __post_init__(self):
        unknown = [s for s in self.feature_sets if s not in features.FEATURE_SETS]
        if unknown:
            raise GaitforceError(f"unknown feature sets {unknown} (known: {', '.join(features.FEATURE_SETS)})")
        if self.emg_normalise not in ("mvc", "max"):
            raise GaitforceError(f"emg_normalise must be 'mvc' or 'max', not {self.emg_normalise!r}")
        # settings wrong for every file are refused once here, not reported again for each file of a batch
        if self.lowpass_cutoff is not None:
            if not self.lowpass_cutoff > 0:
                raise GaitforceError(f"low-pass cutoff must be positive (or None to skip), not {self.lowpass_cutoff!r}")
            if self.lowpass_causal and self.lowpass_order < 1:
                raise GaitforceError(f"lowpass_order {self.lowpass_order} must be >= 1")
            if not self.lowpass_causal and (self.lowpass_order < 2 or self.lowpass_order % 2):
                raise GaitforceError(f"lowpass_order {self.lowpass_order} must be even and >= 2 (zero-lag filter)")
        for name in ("max_gap", "min_duration", "emg_window", "stance_threshold", "max_dropout", "foot_on_plate"):
            if not getattr(self, name) >= 0:
                raise GaitforceError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        self.feature_sets = tuple(self.feature_sets)
        self.targets = tuple(self.targets)
        self.stance_rules  # the stance rules' own checks, once

    @property
    def stance_rules(self) -> StanceRules:
        """The :class:`StanceRules` these settings cut stances with (also what the stream applies)."""
        return StanceRules(threshold=self.stance_threshold, min_duration=self.min_duration,
                           max_dropout=self.max_dropout, foot_on_plate=self.foot_on_plate)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["feature_sets"], d["targets"] = list(self.feature_sets), list(self.targets)
        if isinstance(self.marker_map, os.PathLike):
            d["marker_map"] = str(self.marker_map)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IngestSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise GaitforceError(f"unknown ingest settings {unknown}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------------------
# one trial
# ---------------------------------------------------------------------------------------------------------
def prepare(trial: Trial, settings: IngestSettings) -> Trial:
    """The trial stances are segmented on: Y-up, short gaps filled, not filtered."""
    return fill_gaps(trial.to_y_up(), max_gap=settings.max_gap)


def filtered(prepared: Trial, settings: IngestSettings) -> Trial:
    """The prepared trial low-passed as the settings say (zero-lag, causal, or not at all)."""
    if not settings.lowpass_cutoff:
        return prepared
    if settings.lowpass_causal:
        return lowpass_causal(prepared, cutoff=settings.lowpass_cutoff, order=settings.lowpass_order)
    return lowpass(prepared, cutoff=settings.lowpass_cutoff, order=settings.lowpass_order, signals=())


def trial_stances(trial: Trial, settings: IngestSettings | None = None, *, key: str | None = None,
                  root: str | os.PathLike | None = None) -> list[Stance]:
    """Every stance candidate of ``trial`` (accepted with ids, rejected with reasons), as ingest cuts them;
    frames are frames of ``trial``, so a consumer that needs the unfiltered frames of the dataset's stances
    (the physics labeller, the demo) cuts them from the raw trial and lines up row by row with the dataset."""
    settings = settings or IngestSettings()
    return segment(prepare(trial, settings), settings.stance_rules, key=key, root=root)


def no_stance_error(trial: Trial, stances: list[Stance]) -> GaitforceError:
    """'no usable stance phase', with why each candidate was rejected."""
    if not stances:
        return GaitforceError("no usable stance phase found: no plate is loaded above the stance threshold",
                              source=trial.source)
    why = "; ".join(s.describe() for s in stances[:4]) + (" ..." if len(stances) > 4 else "")
    hint = ("; give --side right|left for a file of one side's stances"
            if any("foot on plate unknown" in (s.reason or "") for s in stances) else "")
    return GaitforceError(f"no usable stance phase found ({len(stances)} rejected: {why}){hint}",
                          source=trial.source)


def trial_frames(trial: Trial, *, settings: IngestSettings | None = None, targets: Iterable[str] | None = None,
                 key: str | None = None, root: str | os.PathLike | None = None, markers: bool = True,
                 progression: str | None = None) -> pd.DataFrame:
    """One row per frame of every accepted stance in ``trial``: ID columns, groups, features, targets present.

    ``targets`` (default ``settings.targets``) are the target columns to add where the trial has them;
    ``gaitforce predict`` asks only for the bundle's. Targets are never required: a target the file lacks
    (or whose EMG channel is flat or empty) is simply absent, with the reason in ``attrs["target_notes"]``.
    ``key``/``root`` name the trial in stance ids (:func:`gaitforce.signal.stances.trial_key`).
    ``markers=False`` (a force-plate model): markers are not used (slot features NaN), the progression is
    ``progression`` (``+x``/``-x``/``+z``/``-z`` of the Y-up frame) or the stance's CoP travel
    (:func:`gaitforce.data.features.cop_progression`; treadmill when a plate carries
    :data:`~gaitforce.data.features.TREADMILL_STANCES` stances or more); ``attrs["assumed"]`` says what was taken.
    ``attrs["rejected"]`` lists the rejected candidates; ``attrs["slots"]`` gives per stance the marker map, the
    filled slots and the one-line description (:func:`gaitforce.data.features.describe_slots`).
    """
    settings = settings or IngestSettings()
    targets = tuple(settings.targets if targets is None else targets)
    pre = prepare(trial, settings)
    stances = segment(pre, settings.stance_rules, key=key, root=root)
    t, emg_how, target_notes = emg_targets(filtered(pre, settings), settings,
                                           [n for n in targets if n.startswith("emg_")])
    frames, slot_info, assumed = [], {}, []
    direction, treadmill = None, False
    if not markers:
        if progression is not None:
            if progression not in features.PROGRESSIONS:
                raise GaitforceError(f"progression {progression!r}: one of {', '.join(features.PROGRESSIONS)}")
            direction = np.array(features.PROGRESSIONS[progression])
            assumed.append(f"progression {progression} (given)")
        else:
            per_plate = pd.Series([s.plate_name for s in accepted(stances)]).value_counts()
            treadmill = bool(len(per_plate) and per_plate.max() >= features.TREADMILL_STANCES)
            assumed.append(f"treadmill ({per_plate.idxmax()} carries {per_plate.max()} stances): progression "
                           "opposite to each stance's CoP travel" if treadmill else
                           "overground: progression along each stance's CoP travel")
        words = {"meta": "the plate assignment or --side", "events": "heel-strike events"}
        how = sorted({words.get(s.side_from, s.side_from) for s in accepted(stances)} - {"markers"})
        if how:
            assumed.append(f"side from {' and '.join(how)}")
    for s in accepted(stances):
        stance = cut(t, s, rules=settings.stance_rules)
        if markers:
            st = features.slot_trial(stance, settings.marker_map)
            cols = features.stance_features(st)
        else:
            st = features.no_slot_trial(stance)
            d = direction if direction is not None else features.cop_progression(stance, treadmill=treadmill)
            if d is None and not treadmill:
                d = features.marker_progression(stance)
                if d is not None:
                    assumed.append(f"stance {s.id}: progression from the markers' travel (its CoP moves less "
                                   "than 5 cm)")
            if d is None:
                raise GaitforceError(f"stance {s.id}: no direction of progression (its CoP moves less than 5 cm"
                                     f"{'' if trial.markers is None else ' and its markers less than 10 cm'}): "
                                     "give --progression +x|-x|+z|-z", source=trial.source)
            cols = features.stance_features(st, d)
        n = st.n_frames
        df = pd.DataFrame({
            "stance_id": s.id,
            "trial": s.trial,
            "subject": s.subject,
            "side": s.side,
            "frame": np.arange(n),
            "time": st.time - st.time[0],
            "stance_pct": np.linspace(0.0, 100.0, n) if n > 1 else np.zeros(n),
            "mass": np.nan if trial.subject.mass is None else float(trial.subject.mass),
        })
        for g in GROUP_KEYS:
            if g in trial.meta:
                df[g] = trial.meta[g]
        feats = pd.DataFrame({c: cols[c] for c in features.feature_columns()})
        # a left stance is mirrored into the right-limb frame: its side-named signals swap (``*_l`` is the
        # stance limb's, read as ``*_r``), as the features' slots do
        signals = st.signals if s.side == "right" else {swap_side_name(k): v for k, v in st.signals.items()}
        present = pd.DataFrame({name: np.asarray(signals[name], float) for name in targets if name in signals})
        df = pd.concat([df, feats, present], axis=1)
        df.attrs["filled_slots"] = st.meta.get("filled_slots", {})
        df.attrs["marker_map"] = st.meta.get("marker_map")
        slot_info[s.id] = {"marker_map": st.meta.get("marker_map"), "filled_slots": st.meta.get("filled_slots", {}),
                           "line": st.meta.get("slots_line", "")}
        frames.append(df)
    if not frames:
        raise no_stance_error(trial, stances)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["filled_slots"] = frames[0].attrs["filled_slots"]
    out.attrs["marker_map"] = frames[0].attrs["marker_map"]
    out.attrs["slots"] = slot_info  # {stance_id: {'marker_map', 'filled_slots', 'line'}}
    out.attrs["assumed"] = assumed
    out.attrs["emg_normalised"] = emg_how
    out.attrs["target_notes"] = target_notes
    out.attrs["rejected"] = [s.describe() for s in stances if not s.accepted]
    return out


def trial_keys(files) -> dict[Path, str]:
    """{file: trial key}: the shortest tail of each file's path that no other file of the batch shares (its
    name, else ``s1/walk.c3d``, ...), so stance ids are short, readable and unique in one dataset."""
    parts = {Path(f): Path(f).resolve().parts for f in files}
    depth = {f: 1 for f in parts}
    while True:
        keys = {f: "/".join(p[-depth[f]:]) for f, p in parts.items()}
        seen: dict[str, list] = {}
        for f, k in keys.items():
            seen.setdefault(k, []).append(f)
        clash = [f for fs in seen.values() if len(fs) > 1 for f in fs if depth[f] < len(parts[f])]
        if not clash:
            return keys
        for f in clash:
            depth[f] += 1


# ---------------------------------------------------------------------------------------------------------
# many files
# ---------------------------------------------------------------------------------------------------------
def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders expanded (recursively, sorted) to the files a reader can read, less the
    ground-reaction files a TRC beside them reads (:func:`gaitforce.io.trc.find_grf_sibling`)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READERS)
            # a TRC's ground-reaction sibling (walk_grf.mot) is read with the TRC, not as a trial of its own
            siblings = {s.resolve() for f in found if f.suffix.lower() == ".trc" and (s := find_grf_sibling(f))}
            out.extend(f for f in found if f.resolve() not in siblings)
        else:
            out.append(p)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file_name(path) -> None:
    """A file whose name is not valid UTF-8 cannot become a stance id (Parquet and JSON need UTF-8): refused
    in one line, the batch going on."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        shown = os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
        raise InputFileError("file name has bytes that are not valid UTF-8: rename it", source=shown) from None


def unexpected_error(err: BaseException, path) -> InputFileError:
    """An unforeseen exception while reading one file of a batch, as that file's one-line failure."""
    first = str(err).splitlines()[0] if str(err) else ""
    shown = os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return InputFileError(f"cannot be read ({type(err).__name__}: {first[:200]})", source=shown)


def per_file(path, fn, failures: list):
    """``fn(path)`` for one file of a batch. Its :class:`GaitforceError`, or any unforeseen exception (as
    :func:`unexpected_error`), is appended to ``failures`` as that file's one line and None returned, so the
    batch goes on; a name that is not UTF-8 is refused first; Ctrl-C and MemoryError pass through."""
    try:
        check_file_name(path)
        return fn(path)
    except GaitforceError as err:
        failures.append(err.with_source(path))
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # a reader's unforeseen failure on one file must not lose the batch
        failures.append(unexpected_error(err, path))
    return None


def build_dataset(paths, *, settings: IngestSettings | None = None, progress: bool = True,
                  subjects: SubjectInfo | None = None):
    """Read every file, build its frames, keep going past failures: ``(Dataset, failures)``.

    ``failures`` is a list of :class:`GaitforceError` (one line each, naming the file). Raises
    :class:`InputFileError` if no file gave a stance, with every file's failure in its ``failures``.
    Stance ids are :func:`trial_keys` of the files and the stance index; ``subjects`` (default: the
    ``subjects.csv`` sidecars of the paths given) names subjects the files do not.
    """
    settings = settings or IngestSettings()
    if not (isinstance(settings.marker_map, str) and settings.marker_map == "auto"):
        features.load_marker_map(settings.marker_map)  # a missing or malformed map: one error, not one per file
    files = expand_paths(paths)
    if not files:
        raise InputFileError("no readable files found", source=", ".join(map(str, paths)))
    keys = trial_keys(files)
    if subjects is None:
        subjects = SubjectInfo(tables=tuple(find_sidecars(paths)))
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="ingest", unit="file")
    parts, sources, failures, warned = [], [], [], []
    for path in iterator:
        def frames_of(p):
            t = subjects.apply(read(p), p)
            return t, trial_frames(t, settings=settings, key=keys[p])

        got = per_file(path, frames_of, failures)
        if got is None:
            continue
        trial, df = got
        empty = [t for t in settings.targets if t in df and not df[t].notna().any()]
        if empty:  # a target the file has but never measured: kept as NaN, said aloud
            warned.append(f"{path}: target(s) {', '.join(empty)} are NaN in every frame")
        parts.append(df)
        sources.append({"path": str(path), "trial": str(df["trial"].iloc[0]), "subject": trial.subject.id,
                        "sha256": sha256(path), "stances": int(df["stance_id"].nunique()),
                        "rejected": list(df.attrs.get("rejected", [])),
                        "marker_map": df.attrs.get("marker_map"), "filled_slots": df.attrs.get("filled_slots", {}),
                        "slots": sorted({v["line"] for v in df.attrs.get("slots", {}).values()}),
                        "emg_normalised": df.attrs.get("emg_normalised"),
                        "target_notes": list(df.attrs.get("target_notes", []))})
    if not parts:
        err = InputFileError(f"none of {len(files)} files could be ingested: {failures[0].line() if failures else ''}")
        err.failures = failures  # every file's reason, for the CLI to list
        raise err
    frames = pd.concat(parts, ignore_index=True)
    groups = [g for g in GROUP_KEYS if g in frames]
    targets = {t: unit_of(t) for t in settings.targets if t in frames}
    feature_cols = features.feature_columns()
    frames = frames[ID_COLUMNS + groups + feature_cols + list(targets)]
    sets = {k: v for k, v in features.feature_sets_manifest().items() if k in settings.feature_sets}
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": __version__,
        "settings": settings.to_dict(),
        "constants": {"g": C.G, "stance_rules": settings.stance_rules.to_dict(),
                      "cop_threshold_n": C.COP_THRESHOLD_N, "origin_min_force_n": C.ORIGIN_MIN_FORCE_N},
        "emg_normalisation": settings.emg_normalise,
        "sources": sources,
        "failures": [f.line() for f in failures],
        "warnings": warned,
        "features": feature_cols,
        "feature_sets": sets,
        "targets": targets,
        "groups": groups,
        "counts": {"files": len(files), "ingested": len(sources), "failed": len(failures),
                   "stances": int(frames["stance_id"].nunique()), "frames": len(frames),
                   "subjects": int(frames["subject"].nunique()),
                   "unknown_subject_stances": int(frames.loc[frames["subject"] == "unknown", "stance_id"].nunique())},
    }
    return Dataset(frames=frames, manifest=manifest), failures


