"""From trials to a dataset: preprocessing, stance extraction, features and targets per frame.

:func:`trial_frames` is shared by ``gaitforce ingest`` and ``gaitforce predict``, so a model sees the same
features at training and use. Steps for one trial (all settings in :class:`IngestSettings`):

1. to Y-up; :func:`~gaitforce.preprocess.fill_gaps` (``max_gap``); :func:`~gaitforce.preprocess.lowpass` of
   markers, forces, CoP and free moment (``lowpass_cutoff``/``lowpass_order``; ``None`` skips it). Target signals
   (measured knee forces, EMG envelopes) are *not* filtered.
2. EMG targets ``emg_<muscle>`` (unit 1) for the seed's 8 muscles, on the kinematic frames of the whole trial:
   a file's own envelopes (``emg_env_<name>`` signals, the Grand Challenge .mat) divided by the MVC value
   (``emg_normalise='mvc'``, falling back to the trial maximum where no MVC is stored, recorded per source) or
   by the trial maximum (``'max'``); otherwise :func:`~gaitforce.preprocess.emg_envelope` of the raw EMG.
   Names map through ``emg_map`` (canonical -> lab names); ``semiten`` takes the medial hamstrings electrode,
   ``semimem`` in the Grand Challenge files (surface EMG cannot separate semitendinosus from semimembranosus).
   Targets are optional: a muscle whose channel is missing, flat or empty gets no target (noted per source in
   the manifest as ``target_notes``), so such a file still ingests and predicts.
3. stances: a trial that is one known stance (``meta['single_stance']`` with ``meta['stance_frames']``, as the
   Grand Challenge reader marks its gait cycles) is cut to those frames; any other goes through
   :func:`~gaitforce.preprocess.extract_stances` (``stance_threshold``, ``min_duration``).
4. per stance: marker slots (:func:`gaitforce.features.slot_trial`), stance frame, features.

Rows carry the identity columns of :mod:`gaitforce.dataset`, the group columns ``competition``/``year`` where
the trial's meta has them, every feature column, and the targets present.
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

from . import __version__, features, preprocess
from .dataset import ID_COLUMNS, Dataset
from .errors import GaitforceError, InputFileError
from .io import READERS, read
from .trial import Trial

#: The seed's 8 muscles (canonical names) and the lab names that feed them, tried in order.
DEFAULT_EMG_MAP = {
    "glut_med": ["gmed", "glut_med", "GluMed", "gluteus_medius"],
    "rect_fem": ["rf", "rect_fem", "RecFem", "rectus_femoris"],
    "vas_lat": ["vaslat", "vas_lat", "VasLat", "vastus_lateralis"],
    "vas_med": ["vasmed", "vas_med", "VasMed", "vastus_medialis"],
    "bic_fem": ["bifem", "bifeml", "bic_fem", "BFLH", "biceps_femoris"],
    "semiten": ["semiten", "semimem", "MedHam", "semitendinosus"],
    "soleus": ["soleus", "sol", "Soleus"],
    "tib_ant": ["tibant", "tib_ant", "TibAnt", "tibialis_anterior"],
}
KNEE_TARGETS = {"knee_medial": "N", "knee_lateral": "N", "knee_total": "N"}
GROUP_KEYS = ("competition", "year")


@dataclass
class IngestSettings:
    """Everything that decides a dataset's rows; stored in ``manifest['settings']`` and in model bundles."""

    marker_map: Any = "auto"  # 'auto', a packaged map name, a JSON path, or a map dict
    lowpass_cutoff: float | None = 10.0
    lowpass_order: int = 4
    lowpass_causal: bool = False  # True: the streaming (causal) filter, stances found on the unfiltered force
    max_gap: float = 0.1
    stance_threshold: float = 20.0
    min_duration: float = 0.25
    feature_sets: tuple[str, ...] = ("all", "kinematics", "force_plate", "angles_grf")
    emg_window: float = 0.05
    emg_normalise: str = "mvc"
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
        for name in ("max_gap", "min_duration", "emg_window"):
            if not getattr(self, name) >= 0:
                raise GaitforceError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        self.feature_sets = tuple(self.feature_sets)
        self.targets = tuple(self.targets)

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
def trial_id(trial: Trial) -> str:
    return Path(trial.source).stem if trial.source else str(trial.meta.get("trial", "trial"))


def _preprocess(trial: Trial, settings: IngestSettings) -> tuple[Trial, Trial | None]:
    """The gap-filled, filtered trial, and the trial to find stances on where that is not the same one: with
    the causal filter, the unfiltered (gap-filled) trial, as the stream finds stances on the raw force."""
    t = preprocess.fill_gaps(trial.to_y_up(), max_gap=settings.max_gap)
    if settings.lowpass_cutoff and settings.lowpass_causal:
        return preprocess.lowpass_causal(t, cutoff=settings.lowpass_cutoff, order=settings.lowpass_order), t
    if settings.lowpass_cutoff:
        t = preprocess.lowpass(t, cutoff=settings.lowpass_cutoff, order=settings.lowpass_order, signals=())
    return t, None


def _emg_targets(trial: Trial, settings: IngestSettings,
                 wanted: Iterable[str] | None = None) -> tuple[Trial, str | None, list[str]]:
    """The trial with ``emg_<canonical>`` signals, how they were normalised (None: no EMG), and notes.

    Only the canonical muscles whose ``emg_<muscle>`` is in ``wanted`` (default: every muscle of
    ``settings.emg_map``) are built. A muscle whose channel is missing, flat, empty or has no positive
    maximum is left out and named in the notes: a target that cannot be measured is absent, never an error.
    """
    muscles = [c for c in settings.emg_map if wanted is None or f"emg_{c}" in set(wanted)]
    out, how, notes = {}, None, []
    if not muscles:
        return trial, None, notes
    file_env = {k[len("emg_env_"):]: v for k, v in trial.signals.items() if k.startswith("emg_env_")}
    mvc = dict(trial.meta.get("mvc") or {})
    if file_env:
        for canon in muscles:
            name = next((n for n in settings.emg_map[canon] if n in file_env), None)
            if name is None:
                continue
            env = np.asarray(file_env[name], float)
            if settings.emg_normalise == "mvc" and mvc.get(name, 0) > 0:
                scale, kind = mvc[name], "file envelope / MVC"
            else:
                scale = np.nanmax(env) if np.isfinite(env).any() else np.nan
                kind = "file envelope / trial maximum"
            if not (np.isfinite(scale) and scale > 0):
                notes.append(f"emg_{canon} left out: envelope {name} is flat or empty")
                continue
            how = how if how == "file envelope / trial maximum" else kind
            out[f"emg_{canon}"] = (env / scale, "1")
    elif trial.emg_names and trial.emg.shape[0] > 1:
        how = "emg_envelope / trial maximum"
        for canon in muscles:
            name = next((n for n in settings.emg_map[canon] if n in trial.emg_names), None)
            if name is None:
                continue
            k = trial.emg_names.index(name)
            one = trial.replace(emg=trial.emg[:, [k]], emg_names=(name,))
            try:
                env = preprocess.emg_envelope(one, window=settings.emg_window).signals[f"emg_{name}"]
            except GaitforceError as err:
                notes.append(f"emg_{canon} left out: {err.message}")
                continue
            out[f"emg_{canon}"] = (env, "1")
    if not out:
        return trial, None, notes
    return trial.with_signals(note=f"EMG targets ({how}) for {', '.join(out)}", **out), how, notes


def _stances(trial: Trial, settings: IngestSettings, detect: Trial | None = None) -> list[Trial]:
    if trial.meta.get("single_stance") and trial.meta.get("stance_frames") is not None:
        start, stop = (int(v) for v in trial.meta["stance_frames"])
        return [trial.slice_frames(start, stop, note=f"stance from meta: frames {start}:{stop}")]
    if detect is None:
        return preprocess.extract_stances(trial, threshold=settings.stance_threshold,
                                          min_duration=settings.min_duration)
    # causal filter: stances found on the unfiltered force and CoP (no lag), each then given the filtered channels
    base = int(detect.meta.get("frame_offset", 0))
    out = []
    for st in preprocess.extract_stances(detect.replace(signals=trial.signals, units=trial.units),
                                         threshold=settings.stance_threshold, min_duration=settings.min_duration):
        a = int(st.meta.get("frame_offset", 0)) - base
        rows, plate = slice(a, a + st.n_frames), [int(st.meta["plate_index"])]
        out.append(st.replace(markers=trial.markers[rows], forces=trial.forces[rows][:, plate],
                              cop=trial.cop[rows][:, plate], free_moment=trial.free_moment[rows][:, plate],
                              note="stance found on the unfiltered force; causally filtered channels"))
    return out


def stance_windows(trial: Trial, *, settings: IngestSettings | None = None) -> list[tuple[int, int, str]]:
    """``(start, stop, side)`` of every stance phase ingest cuts from ``trial``, as frame indices of ``trial``.

    The stances are found exactly as :func:`trial_frames` finds them (gap fill, low-pass, stance rule, or a
    file's own stance frames), so a consumer that needs the unfiltered frames of the dataset's stances (the
    physics labeller, the demo) can cut them from the raw trial and line up row by row with the dataset."""
    settings = settings or IngestSettings()
    base = int(trial.meta.get("frame_offset", 0))
    out = []
    pre, detect = _preprocess(trial, settings)
    for st in _stances(pre, settings, detect):
        start = int(st.meta.get("frame_offset", 0)) - base
        out.append((start, start + st.n_frames, st.meta.get("side", trial.meta.get("side", "right"))))
    return out


def trial_frames(trial: Trial, *, settings: IngestSettings | None = None,
                 targets: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per frame of every stance in ``trial``: ID columns, groups, features, targets present.

    ``targets`` (default ``settings.targets``) are the target columns to add where the trial has them;
    ``gaitforce predict`` asks only for the bundle's. Targets are never required: a target the file lacks
    (or whose EMG channel is flat or empty) is simply absent, with the reason in ``attrs["target_notes"]``.
    """
    settings = settings or IngestSettings()
    targets = tuple(settings.targets if targets is None else targets)
    pre, detect = _preprocess(trial, settings)
    t, emg_how, target_notes = _emg_targets(pre, settings, [n for n in targets if n.startswith("emg_")])
    tid = trial_id(trial)
    frames = []
    for k, stance in enumerate(_stances(t, settings, detect)):
        st = features.to_stance_frame(features.slot_trial(stance, settings.marker_map))
        cols = features.stance_features(st)
        n = st.n_frames
        side = stance.meta.get("side", "right")
        df = pd.DataFrame({
            "stance_id": f"{tid}#{k}",
            "trial": tid,
            "subject": trial.subject.id,
            "side": side,
            "frame": np.arange(n),
            "time": st.time - st.time[0],
            "stance_pct": np.linspace(0.0, 100.0, n) if n > 1 else np.zeros(n),
            "mass": np.nan if trial.subject.mass is None else float(trial.subject.mass),
        })
        for g in GROUP_KEYS:
            if g in trial.meta:
                df[g] = trial.meta[g]
        feats = pd.DataFrame({c: cols[c] for c in features.feature_columns()})
        present = pd.DataFrame({name: np.asarray(st.signals[name], float)
                                for name in targets if name in st.signals})
        df = pd.concat([df, feats, present], axis=1)
        df.attrs["filled_slots"] = st.meta.get("filled_slots", {})
        df.attrs["marker_map"] = st.meta.get("marker_map")
        frames.append(df)
    if not frames:
        raise GaitforceError("no usable stance phase found", source=trial.source)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["filled_slots"] = frames[0].attrs["filled_slots"]
    out.attrs["marker_map"] = frames[0].attrs["marker_map"]
    out.attrs["emg_normalised"] = emg_how
    out.attrs["target_notes"] = target_notes
    return out


# ---------------------------------------------------------------------------------------------------------
# many files
# ---------------------------------------------------------------------------------------------------------
def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders expanded (recursively, sorted) to the files a reader can read."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READERS))
        else:
            out.append(p)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_dataset(paths, *, settings: IngestSettings | None = None, progress: bool = True):
    """Read every file, build its frames, keep going past failures: ``(Dataset, failures)``.

    ``failures`` is a list of :class:`GaitforceError` (one line each, naming the file). Raises
    :class:`InputFileError` if no file gave a stance, with every file's failure in its ``failures``.
    """
    settings = settings or IngestSettings()
    if not (isinstance(settings.marker_map, str) and settings.marker_map == "auto"):
        features.load_marker_map(settings.marker_map)  # a missing or malformed map: one error, not one per file
    files = expand_paths(paths)
    if not files:
        raise InputFileError("no readable files found", source=", ".join(map(str, paths)))
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="ingest", unit="file")
    parts, sources, failures = [], [], []
    for path in iterator:
        try:
            trial = read(path)
            df = trial_frames(trial, settings=settings)
        except GaitforceError as err:
            failures.append(err.with_source(path))
            continue
        parts.append(df)
        sources.append({"path": str(path), "sha256": sha256(path), "stances": int(df["stance_id"].nunique()),
                        "marker_map": df.attrs.get("marker_map"), "filled_slots": df.attrs.get("filled_slots", {}),
                        "emg_normalised": df.attrs.get("emg_normalised"),
                        "target_notes": list(df.attrs.get("target_notes", []))})
    if not parts:
        err = InputFileError(f"none of {len(files)} files could be ingested: {failures[0].line() if failures else ''}")
        err.failures = failures  # every file's reason, for the CLI to list
        raise err
    frames = pd.concat(parts, ignore_index=True)
    groups = [g for g in GROUP_KEYS if g in frames]
    targets = {t: _unit(t) for t in settings.targets if t in frames}
    feature_cols = features.feature_columns()
    frames = frames[ID_COLUMNS + groups + feature_cols + list(targets)]
    sets = {k: v for k, v in features.feature_sets_manifest().items() if k in settings.feature_sets}
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": __version__,
        "settings": settings.to_dict(),
        "sources": sources,
        "failures": [f.line() for f in failures],
        "features": feature_cols,
        "feature_sets": sets,
        "targets": targets,
        "groups": groups,
        "counts": {"files": len(files), "ingested": len(sources), "failed": len(failures),
                   "stances": int(frames["stance_id"].nunique()), "frames": len(frames),
                   "subjects": int(frames["subject"].nunique())},
    }
    return Dataset(frames=frames, manifest=manifest), failures


def _unit(target: str) -> str:
    return KNEE_TARGETS.get(target, "1" if target.startswith("emg_") else "")
