"""Model bundles: a trained surrogate as ``model.onnx`` + ``bundle.json``, safe to load from anyone.

``save_bundle(estimator, DIR, dataset_manifest=..., metrics=...)`` writes

- ``DIR/model.onnx``: the network(s) with the input and target normalisation folded into the graph, so the
  graph maps raw features ``features`` (N, F) float32 to ``targets`` (N, K) float32 in the targets' units; the
  batch axis is dynamic; exported with PyTorch's ``torch.export``-based exporter at opset :data:`OPSET`, all
  weights inside the one file;
- ``DIR/bundle.json``: everything needed to use the model correctly (see :data:`SCHEMA_VERSION` and
  :func:`validate_spec`): model name and hyperparameters, the input spec (feature set, column order, the
  (rows, 3) image shape, marker map and the dataset's ingest settings), target names + units, frame rate,
  training-data summary, metrics, library versions and the SHA-256 of ``model.onnx``.

``load_bundle(DIR)`` checks the JSON (required keys and types), the ONNX file's SHA-256, that the graph uses
only standard ONNX operators and embedded weights, and that its input/output sizes match the JSON, then opens
an ONNX Runtime session. Nothing is unpickled and no Python from the bundle runs: a bundle from an untrusted
source can at worst give wrong numbers, and a damaged or tampered one fails with one :class:`GaitforceError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GaitforceError, InputFileError

SCHEMA_VERSION = 1
FORMAT = "gaitforce-bundle"
OPSET = 18
MODEL_FILE = "model.onnx"
SPEC_FILE = "bundle.json"
INPUT_NAME = "features"
OUTPUT_NAME = "targets"
_STANDARD_DOMAINS = {"", "ai.onnx"}
MAX_SPEC_BYTES = 64 * 2**20


class BundleError(InputFileError):
    """A model bundle that is missing, damaged, tampered with or of another schema."""


# -- writing -------------------------------------------------------------------------------------------
def save_bundle(estimator, path, *, dataset_manifest: dict | None, metrics: dict | None = None) -> Path:
    """Write ``estimator`` (fitted) as a bundle in folder ``path``; returns the folder."""
    estimator._check_fitted()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model_path = path / MODEL_FILE
    export_onnx(estimator.folded_module(), len(estimator.columns_), model_path)
    spec = bundle_spec(estimator, dataset_manifest=dataset_manifest or {}, metrics=metrics)
    data = model_path.read_bytes()
    spec["onnx"]["sha256"] = _sha256(data)
    spec["onnx"]["opset"] = _opset(data)
    validate_spec(spec, source=path / SPEC_FILE)
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n")
    return path


def export_onnx(module, n_features: int, out: Path) -> None:
    """Export a (N, F) -> (N, K) CPU module to a single-file ONNX graph with a dynamic batch axis."""
    import torch

    try:
        import onnxscript  # noqa: F401 - the exporter needs it; say so plainly rather than deep in torch
    except ImportError:
        raise GaitforceError("writing a bundle needs the 'onnxscript' package (pip install onnxscript)") from None
    module = module.cpu().eval()
    example = torch.zeros(2, n_features, dtype=torch.float32)
    with warnings.catch_warnings(), _quiet_export():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    # write to a temporary file in the same folder, then rename: no half-written model is ever left
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx.tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        program.save(str(tmp_path), external_data=False)
        os.replace(tmp_path, out)
    finally:
        tmp_path.unlink(missing_ok=True)


class _quiet_export:
    """Silence the exporter's progress prints and torchvision notices (it writes to stdout and logging)."""

    def __enter__(self):
        import contextlib
        import io
        import logging

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        log = logging.getLogger("torch.onnx")
        self._level = log.level
        log.setLevel(logging.ERROR)
        self._log = log
        return self

    def __exit__(self, *exc):
        self._log.setLevel(self._level)
        self._stack.close()
        return False


def bundle_spec(estimator, *, dataset_manifest: dict, metrics: dict | None) -> dict[str, Any]:
    """The ``bundle.json`` content for a fitted estimator (the ONNX hash is filled in by the writer)."""
    settings = dataset_manifest.get("settings")
    marker_map = settings.get("marker_map") if isinstance(settings, dict) else None
    if marker_map is not None and not isinstance(marker_map, (str, dict)):
        marker_map = str(marker_map)
    hyper = estimator.model_hyperparameters()
    extra = {}
    alphas = [getattr(net, "alpha_", None) for net in estimator.nets_]
    if any(a is not None for a in alphas):
        extra["chosen_alpha"] = alphas
    training = {**estimator.training_parameters(), "best_epoch": list(estimator.best_epoch_),
                "val_rmse_normalised": list(estimator.val_rmse_), "dropped_rows": dict(estimator.n_dropped_),
                **extra}
    data = dict(estimator.training_data_)
    rate = data.pop("sample_rate", None)
    return _json_safe({
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "model": {"name": estimator.model, "hyperparameters": hyper, "training": training},
        "input": {
            "feature_set": estimator.feature_set,
            "columns": list(estimator.columns_),
            "shape": list(estimator.input_shape_),
            "dtype": "float32",
            "marker_map": marker_map,
            "ingest_settings": settings if isinstance(settings, dict) else None,
        },
        "targets": [{"name": n, "unit": u} for n, u in zip(estimator.targets, estimator.target_units_)],
        "sample_rate": rate,
        "training_data": data,
        "metrics": metrics if metrics is not None else {},
        "versions": _versions(),
        "onnx": {"file": MODEL_FILE, "sha256": "", "opset": OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME},
    })


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gaitforce", "torch", "onnx", "onnxruntime", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _json_safe(obj):
    """Plain JSON types; NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _opset(data: bytes) -> int:
    """The default-domain opset the exporter actually wrote."""
    import onnx

    model = onnx.load_model_from_string(data)
    return int(next(o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- checking ------------------------------------------------------------------------------------------
_NUM = (int, float)


def _check(cond: bool, what: str, source) -> None:
    if not cond:
        raise BundleError(f"invalid bundle.json: {what}", source=source)


def _typed(d: dict, key: str, types, where: str, source, *, optional: bool = False):
    _check(isinstance(d, dict), f"{where} must be an object", source)
    if key not in d:
        _check(optional, f"{where}.{key} is missing", source)
        return None
    value = d[key]
    if value is None and optional:
        return None
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
    names = "/".join(t.__name__ for t in _as_tuple(types))
    _check(ok, f"{where}.{key} must be {names}, not {type(value).__name__}", source)
    return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def validate_spec(spec: Any, *, source=None) -> dict:
    """Check a ``bundle.json`` object: schema version, required keys and their types. Returns it."""
    _check(isinstance(spec, dict), "the top level must be an object", source)
    version = _typed(spec, "schema_version", int, "bundle", source)
    _check(version == SCHEMA_VERSION, f"schema_version {version} is not supported (this gaitforce reads "
           f"{SCHEMA_VERSION})", source)
    _check(spec.get("format") == FORMAT, f"format must be {FORMAT!r}", source)

    model = _typed(spec, "model", dict, "bundle", source)
    _typed(model, "name", str, "model", source)
    _typed(model, "hyperparameters", dict, "model", source)
    _typed(model, "training", dict, "model", source, optional=True)

    inp = _typed(spec, "input", dict, "bundle", source)
    _typed(inp, "feature_set", str, "input", source)
    columns = _typed(inp, "columns", list, "input", source)
    _check(len(columns) > 0 and all(isinstance(c, str) for c in columns), "input.columns must be names", source)
    _check(len(set(columns)) == len(columns), "input.columns has duplicates", source)
    shape = _typed(inp, "shape", list, "input", source)
    _check(len(shape) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape),
           "input.shape must be two positive integers", source)
    _check(shape[0] * shape[1] == len(columns), f"input.shape {shape} does not hold {len(columns)} columns", source)
    _typed(inp, "marker_map", (str, dict), "input", source, optional=True)
    _typed(inp, "ingest_settings", dict, "input", source, optional=True)

    targets = _typed(spec, "targets", list, "bundle", source)
    _check(len(targets) > 0, "targets is empty", source)
    for i, t in enumerate(targets):
        _typed(t, "name", str, f"targets[{i}]", source)
        _typed(t, "unit", str, f"targets[{i}]", source)

    rate = _typed(spec, "sample_rate", _NUM, "bundle", source, optional=True)
    _check(rate is None or rate > 0, "sample_rate must be positive", source)
    _typed(spec, "training_data", dict, "bundle", source)
    _typed(spec, "metrics", dict, "bundle", source, optional=True)
    _typed(spec, "versions", dict, "bundle", source)

    onnx_spec = _typed(spec, "onnx", dict, "bundle", source)
    fname = _typed(onnx_spec, "file", str, "onnx", source)
    _check(re.fullmatch(r"[A-Za-z0-9_.-]+\.onnx", fname) is not None and ".." not in fname,
           "onnx.file must be a plain file name in the bundle folder", source)
    sha = _typed(onnx_spec, "sha256", str, "onnx", source)
    _check(re.fullmatch(r"[0-9a-f]{64}", sha) is not None or sha == "", "onnx.sha256 must be 64 hex digits", source)
    _typed(onnx_spec, "opset", int, "onnx", source)
    _typed(onnx_spec, "input", str, "onnx", source)
    _typed(onnx_spec, "output", str, "onnx", source)
    return spec


def _check_graph(data: bytes, source) -> None:
    """Only standard ONNX operators, no local functions, no external weight files."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf raises DecodeError and others
        raise BundleError(f"model file is not a valid ONNX model: {err}", source=source) from None
    if len(model.functions):
        raise BundleError("model uses local functions, which bundles do not allow", source=source)

    def nodes(graph):
        for node in graph.node:
            yield node
            for attr in node.attribute:
                if attr.g is not None and attr.HasField("g"):
                    yield from nodes(attr.g)
                for g in attr.graphs:
                    yield from nodes(g)

    bad = sorted({n.domain for n in nodes(model.graph) if n.domain not in _STANDARD_DOMAINS})
    if bad:
        raise BundleError(f"model uses non-standard operator domains {bad}", source=source)
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise BundleError("model refers to external weight files, which bundles do not allow", source=source)


# -- loading -------------------------------------------------------------------------------------------
@dataclass
class Bundle:
    """A loaded bundle: ``spec`` (the JSON) and an ONNX Runtime session."""

    path: Path
    spec: dict
    session: Any = field(repr=False)

    @property
    def columns(self) -> list[str]:
        return list(self.spec["input"]["columns"])

    @property
    def targets(self) -> list[str]:
        return [t["name"] for t in self.spec["targets"]]

    @property
    def units(self) -> dict[str, str]:
        return {t["name"]: t["unit"] for t in self.spec["targets"]}

    @property
    def feature_set(self) -> str:
        return self.spec["input"]["feature_set"]

    @property
    def ingest_settings(self) -> dict | None:
        return self.spec["input"].get("ingest_settings")

    def predict_features(self, x) -> np.ndarray:
        """(N, F) features in :attr:`columns` order -> (N, K) predictions in target units.

        A row with a non-finite feature gives NaN for that row (the rest are unaffected)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise GaitforceError(f"features must be (N, {len(self.columns)}), got shape {x.shape}", source=self.path)
        out = np.full((len(x), len(self.targets)), np.nan, dtype=np.float32)
        ok = np.isfinite(x).all(axis=1)
        if ok.any():
            spec = self.spec["onnx"]
            out[ok] = self.session.run([spec["output"]], {spec["input"]: np.ascontiguousarray(x[ok])})[0]
        return out

    def predict_frames(self, frames) -> "Any":
        """A DataFrame holding :attr:`columns` -> a DataFrame of the targets (same index)."""
        import pandas as pd

        missing = [c for c in self.columns if c not in frames]
        if missing:
            raise GaitforceError(f"input lacks feature columns {missing[:5]}", source=self.path)
        y = self.predict_features(frames[self.columns].to_numpy(np.float32))
        return pd.DataFrame(y, columns=self.targets, index=frames.index)


def load_bundle(path, *, intra_op_num_threads: int = 1) -> Bundle:
    """Open a bundle folder after checking it (see the module docstring). Raises :class:`BundleError`."""
    import onnxruntime as ort

    path = Path(path)
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise BundleError(f"not a model bundle (no {SPEC_FILE})", source=path)
    if spec_path.stat().st_size > MAX_SPEC_BYTES:
        raise BundleError(f"bundle.json is larger than {MAX_SPEC_BYTES // 2**20} MiB", source=spec_path)
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"bundle.json is not valid JSON: {err}", source=spec_path) from None
    validate_spec(spec, source=spec_path)
    model_path = path / spec["onnx"]["file"]
    if not model_path.is_file():
        raise BundleError(f"model file {spec['onnx']['file']!r} is missing", source=path)
    data = model_path.read_bytes()
    if _sha256(data) != spec["onnx"]["sha256"]:
        raise BundleError("model file does not match the SHA-256 in bundle.json (changed or damaged)",
                          source=model_path)
    _check_graph(data, model_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_num_threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise BundleError(f"ONNX Runtime cannot open the model: {err}", source=model_path) from None
    _check_io(session, spec, model_path)
    return Bundle(path=path, spec=spec, session=session)


def _check_io(session, spec: dict, source) -> None:
    ins, outs = session.get_inputs(), session.get_outputs()
    want_in, want_out = spec["onnx"]["input"], spec["onnx"]["output"]
    if [i.name for i in ins] != [want_in] or want_out not in [o.name for o in outs]:
        raise BundleError(f"model's inputs/outputs are not {want_in!r} -> {want_out!r}", source=source)
    f = ins[0].shape[-1] if ins[0].shape else None
    k = next(o for o in outs if o.name == want_out).shape[-1]
    if isinstance(f, int) and f != len(spec["input"]["columns"]):
        raise BundleError(f"model takes {f} features, bundle.json lists {len(spec['input']['columns'])}", source=source)
    if isinstance(k, int) and k != len(spec["targets"]):
        raise BundleError(f"model gives {k} outputs, bundle.json lists {len(spec['targets'])} targets", source=source)
