"""The dataset store: many stance phases as one table of frames, on disk as Parquet + a JSON manifest.

Layout of a dataset folder::

    DIR/frames.parquet   one row per frame of every stance phase
    DIR/manifest.json    sources, settings, code version, column roles and units

Columns of ``frames.parquet``:

- identity: ``stance_id`` (unique per stance phase: the unit of evaluation, called "trial" in the paper's
  tables), ``trial`` (source trial id), ``subject``, ``side`` ('right'/'left' limb in stance), ``frame``
  (0-based within the stance), ``time`` (s from stance start), ``stance_pct`` (0-100), ``mass`` (kg), and any
  group columns (e.g. ``competition``, ``year``, ``pathology``) listed in ``manifest["groups"]``;
- features: listed in ``manifest["features"]`` in model-input order; named ``<slot>_<axis>`` for marker slots
  and ``grf_x``, ``cop_x`` ... for the force plate (see :mod:`gaitforce.data.features`);
- targets: listed in ``manifest["targets"]`` as name -> unit (e.g. ``knee_medial: N``).

``manifest["feature_sets"]`` names subsets of the features ("all", "force_plate", "kinematics",
"angles_grf") with the (rows, 3) shape each reshapes to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitforce.errors import GaitforceError, InputFileError

ID_COLUMNS = ["stance_id", "trial", "subject", "side", "frame", "time", "stance_pct", "mass"]
FRAMES_FILE = "frames.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass
class Dataset:
    """Frames of many stance phases plus the manifest that says what each column is."""

    frames: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        missing = [c for c in ID_COLUMNS if c not in self.frames.columns]
        if missing:
            raise InputFileError(f"dataset lacks columns {missing}", source=self.path)
        self.manifest.setdefault("features", [])
        self.manifest.setdefault("feature_sets", {})
        self.manifest.setdefault("targets", {})
        self.manifest.setdefault("groups", [])
        check_manifest(self.manifest, source=self.path)
        sets = [c for spec in self.manifest["feature_sets"].values() for c in spec.get("columns", [])]
        absent = [c for c in [*self.manifest["features"], *self.manifest["targets"], *self.manifest["groups"], *sets]
                  if c not in self.frames]
        if absent:
            raise InputFileError(f"manifest names columns the frames lack: {absent[:5]}", source=self.path)
        check_unique_stances(self.frames, source=self.path)

    # -- io ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> "Dataset":
        path = Path(path)
        frames_path, manifest_path = path / FRAMES_FILE, path / MANIFEST_FILE
        if not frames_path.exists() or not manifest_path.exists():
            raise InputFileError(f"not a gaitforce dataset (needs {FRAMES_FILE} and {MANIFEST_FILE})", source=path)
        try:
            manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputFileError(f"corrupt manifest: {err}", source=manifest_path) from None
        except RecursionError:
            raise InputFileError("corrupt manifest: nested too deeply", source=manifest_path) from None
        if not isinstance(manifest, dict):
            raise InputFileError("corrupt manifest: not a JSON object", source=manifest_path)
        try:
            frames = pd.read_parquet(frames_path)
        except Exception as err:  # pyarrow raises many types for a damaged file
            raise InputFileError(f"cannot read frames: {err}", source=frames_path) from None
        return cls(frames=frames, manifest=manifest, path=path)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, keep: tuple[str, ...] = ()) -> Path:
        """Write the dataset folder atomically (:func:`gaitforce.outputs.atomic_dir`): a kill or a full disk
        leaves the previous folder intact. An existing non-empty folder needs ``overwrite``; ``keep`` names
        entries of the old folder carried into the new one (``label``'s cache)."""
        from gaitforce.outputs import atomic_dir

        path = Path(path)
        text = json.dumps(self.manifest, indent=2, default=_json_default)
        with atomic_dir(path, overwrite=overwrite, keep=keep) as tmp:
            self.frames.to_parquet(tmp / FRAMES_FILE, index=False)
            (tmp / MANIFEST_FILE).write_text(text)
        self.path = path
        return path

    # -- views ---------------------------------------------------------------------------------------
    @property
    def targets(self) -> dict[str, str]:
        """Target name -> unit."""
        return dict(self.manifest["targets"])

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])

    def feature_columns(self, feature_set: str = "all") -> list[str]:
        """Columns of a named feature set, in model-input order."""
        if feature_set == "all" and "all" not in self.manifest["feature_sets"]:
            return self.features
        try:
            return list(self.manifest["feature_sets"][feature_set]["columns"])
        except KeyError:
            known = ", ".join(self.manifest["feature_sets"]) or "none"
            raise GaitforceError(f"no feature set {feature_set!r} (known: {known})", source=self.path) from None

    def feature_shape(self, feature_set: str = "all") -> tuple[int, int]:
        """The (rows, 3) image each frame's features reshape to."""
        spec = self.manifest["feature_sets"].get(feature_set)
        if spec and "shape" in spec:
            return tuple(spec["shape"])
        n = len(self.feature_columns(feature_set))
        return (n // 3, 3) if n % 3 == 0 else (n, 1)

    @property
    def stance_ids(self) -> list[str]:
        return list(pd.unique(self.frames["stance_id"]))

    def stances(self) -> pd.DataFrame:
        """One row per stance phase: its id, subject, trial, side, frame count and group columns."""
        cols = ["stance_id", "trial", "subject", "side", "mass", *self.manifest["groups"]]
        first = self.frames.groupby("stance_id", sort=False)[cols[1:]].first()
        first["n_frames"] = self.frames.groupby("stance_id", sort=False).size()
        return first.reset_index()

    def subset(self, stance_ids) -> "Dataset":
        """The frames of the given stance phases (order kept as in the store)."""
        keep = self.frames["stance_id"].isin(list(stance_ids))
        return Dataset(frames=self.frames[keep].reset_index(drop=True), manifest=self.manifest, path=self.path)

    def arrays(self, feature_set: str = "all", targets: list[str] | None = None):
        """(X (N, F), Y (N, K), stance_id (N,)) as float32/float32/object arrays."""
        targets = list(self.targets) if targets is None else targets
        missing = [t for t in targets if t not in self.frames]
        if missing:
            raise GaitforceError(f"dataset has no target {missing} (has: {list(self.targets)})", source=self.path)
        x = self.frames[self.feature_columns(feature_set)].to_numpy(np.float32)
        y = self.frames[targets].to_numpy(np.float32)
        return x, y, self.frames["stance_id"].to_numpy()

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return (
            f"Dataset({len(self.stance_ids)} stances, {len(self.frames)} frames, "
            f"{len(self.features)} features, targets={list(self.targets)})"
        )


def check_manifest(manifest: dict, *, source=None) -> None:
    """The manifest's column roles have the types the code reads (a hand-edited or hostile manifest is one
    line, not a KeyError or AttributeError later)."""

    def bad(what: str):
        return InputFileError(f"corrupt manifest: {what}", source=source)

    def names(value) -> bool:
        return isinstance(value, list) and all(isinstance(c, str) for c in value)

    if not names(manifest["features"]):
        raise bad("'features' must be a list of column names")
    if not isinstance(manifest["targets"], dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest["targets"].items()):
        raise bad("'targets' must be an object of column name -> unit")
    if not names(manifest["groups"]):
        raise bad("'groups' must be a list of column names")
    sets = manifest["feature_sets"]
    if not isinstance(sets, dict):
        raise bad("'feature_sets' must be an object")
    for name, spec in sets.items():
        if not isinstance(spec, dict) or not names(spec.get("columns")):
            raise bad(f"feature set {name!r} must be an object with a list of 'columns'")
        shape = spec.get("shape")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 2 and all(
                isinstance(v, int) and v > 0 for v in shape) and shape[0] * shape[1] == len(spec["columns"])):
            raise bad(f"feature set {name!r}: shape {shape!r} does not hold its {len(spec['columns'])} columns")
    for key in ("settings", "counts"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise bad(f"{key!r} must be an object")
    if "sources" in manifest and not (isinstance(manifest["sources"], list) and all(
            isinstance(x, dict) and isinstance(x.get("path", ""), str) for x in manifest["sources"])):
        raise bad("'sources' must be a list of objects with a 'path'")


def check_unique_stances(frames: pd.DataFrame, *, source=None) -> None:
    """One stance id must mean one stance: one trial, one subject, one side, frames 0..n-1 once each."""
    if frames.empty:
        return
    g = frames.groupby("stance_id", sort=False)
    per = g[["trial", "subject", "side"]].nunique(dropna=False)
    bad = per.index[(per > 1).any(axis=1)]
    if len(bad) == 0:
        dup = frames.duplicated(["stance_id", "frame"])
        bad = pd.unique(frames.loc[dup, "stance_id"]) if dup.any() else []
    if len(bad):
        raise InputFileError(f"stance id {bad[0]!r} names more than one stance ({len(bad)} such ids): stance ids "
                             "must be unique (ingest the files in one run from a common folder)", source=source)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")
