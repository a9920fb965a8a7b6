"""Model bundles: a trained surrogate as ``model.onnx`` + ``bundle.json``, safe to load from anyone.

``save_bundle(estimator, DIR, dataset_manifest=..., metrics=...)`` writes

- ``DIR/model.onnx``: the network(s) with the input and target normalisation folded into the graph, so the
  graph maps raw features ``features`` (N, F) float32 to ``targets`` (N, K) float32 in the targets' units; the
  batch axis is dynamic. A model trained with ``body_weight_norm`` has a second input ``body_weight`` (N,
  shape (batch, 1)): the graph divides the force inputs (``grf_*``) by it and multiplies the targets in N back,
  so inputs and outputs stay in the dataset's units (``bundle.json``: ``input.body_weight: true``,
  ``input.body_weight_unit: "N"``, ``onnx.body_weight_input``); exported with PyTorch's ``torch.export``-based exporter at opset :data:`OPSET`, all
  weights inside the one file;
- ``DIR/model.safetensors``: the state of the module the graph was exported from (tensors only, no pickle),
  its SHA-256 under ``bundle.json``'s ``weights``, so the network can be rebuilt from its registered architecture
  for exact gradients (:func:`load_weights`, :func:`gaitforce.learn.explain.bundle_module`); optional (older
  bundles lack it);
- ``DIR/bundle.json``: everything needed to use the model correctly (see :data:`SCHEMA_VERSION` and
  :func:`validate_spec`): model name and hyperparameters, the input spec (feature set, column order, the
  (rows, 3) image shape, marker map and the dataset's ingest settings), target names + units, frame rate,
  training-data summary, metrics, library versions and the SHA-256 of ``model.onnx``.

``quantize_bundle(DIR, calibration, held_out=...)`` adds ``DIR/model.int8.onnx`` beside the float32 model:
the same graph with its convolutions and matrix products statically quantised to int8 by ONNX Runtime's
quantisation tools (QDQ format, per-channel int8 weights, uint8 activations calibrated on training frames), its
SHA-256, the calibration summary and the measured int8-vs-fp32 agreement on held-out frames, under
``bundle.json``'s ``quantized.int8``. ``default_precision`` says which model :func:`load_bundle` opens unless
asked (``"fp32"`` when absent).

An **ensemble** bundle (:class:`gaitforce.learn.ensemble.EnsembleEstimator`) holds its K members stacked in the
one graph, which has a second output ``spread`` (the members' SD, (N, K) in target units) beside ``targets`` (their
mean); ``bundle.json`` adds ``ensemble``, ``onnx.spread_output`` and, once calibrated, ``uncertainty`` (alpha, and
per target the conformal ``q`` and ``eps`` of the interval ``mean +- q (spread + eps)``; see
:mod:`gaitforce.evaluate.conformal`). A reader that ignores them gets the mean as from any bundle.

``load_bundle(DIR)`` checks the JSON (required keys and types), the ONNX file's SHA-256, that the graph uses
only standard ONNX operators and embedded weights, and that its input/output sizes match the JSON, then opens
an ONNX Runtime session. Nothing is unpickled and no Python from the bundle runs: a bundle from an untrusted
source can at worst give wrong numbers, and a damaged or tampered one fails with one :class:`GaitforceError`.
"""


from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gaitforce.errors import GaitforceError, InputFileError

SCHEMA_VERSION = 1
FORMAT = "gaitforce-bundle"
OPSET = 18
MODEL_FILE = "model.onnx"
#: the network's weights beside the graph (safetensors: tensors only, no pickle), for exact gradients
WEIGHTS_FILE = "model.safetensors"
MAX_WEIGHTS_BYTES = 1 << 30
INT8_FILE = "model.int8.onnx"
PRECISIONS = ("fp32", "int8")
# int8 counts as "as accurate as fp32" for a target when, on held-out frames, the RMS of (int8 - fp32) is at most
# 5 % of the fp32 model's test RMSE (if independent of the model's error it raises that RMSE by <= 0.13 %; at
# worst, fully correlated, by 5 %) and no frame differs by more than 25 % of that RMSE
INT8_RMS_FRACTION = 0.05
INT8_MAX_FRACTION = 0.25
MAX_CALIBRATION_FRAMES = 4096
# only the weight-carrying products are quantised: the input normalisation (features in N, m and rad side by
# side) and the output scaling (targets in N beside EMG in 0-1) would lose a small-scale column to one 8-bit grid
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
SPEC_FILE = "bundle.json"
INPUT_NAME = "features"
BODY_WEIGHT_NAME = "body_weight"
OUTPUT_NAME = "targets"
#: an ensemble's second output: the members' spread (SD), (N, K) in target units
SPREAD_NAME = "spread"
_STANDARD_DOMAINS = {"", "ai.onnx"}
MAX_SPEC_BYTES = 64 * 2**20
#: deepest nesting of arrays/objects bundle.json may have (ours has 6); checked before parsing, so a hostile
#: file of 200,000 nested '[' is one line, not a RecursionError
MAX_SPEC_DEPTH = 32
#: marker maps a bundle may name; any other map must be embedded as an object (no path is read from a bundle)


class BundleError(InputFileError):
    """A model bundle that is missing, damaged, tampered with or of another schema."""


# -- writing -------------------------------------------------------------------------------------------
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
    _check_map(_typed(inp, "marker_map", (str, dict), "input", source, optional=True), "input.marker_map", source)
    settings = _typed(inp, "ingest_settings", dict, "input", source, optional=True)
    if settings is not None:
        _check_map(_typed(settings, "marker_map", (str, dict), "input.ingest_settings", source, optional=True),
                   "input.ingest_settings.marker_map", source)
    needs_bw = _typed(inp, "body_weight", bool, "input", source, optional=True)
    if needs_bw:
        _check(inp.get("body_weight_unit") == "N", "input.body_weight_unit must be 'N'", source)

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
    bw_input = _typed(onnx_spec, "body_weight_input", str, "onnx", source, optional=True)
    _check(bool(needs_bw) == (bw_input is not None),
           "input.body_weight and onnx.body_weight_input must be given together", source)

    spread_output = _typed(onnx_spec, "spread_output", str, "onnx", source, optional=True)
    ens = _typed(spec, "ensemble", dict, "bundle", source, optional=True)
    _check((ens is None) == (spread_output is None), "ensemble and onnx.spread_output must be given together", source)
    if ens is not None:
        n = _typed(ens, "members", int, "ensemble", source)
        _check(n >= 2, "ensemble.members must be at least 2", source)
        _check(spread_output != onnx_spec["output"], "onnx.spread_output must differ from onnx.output", source)
    unc = _typed(spec, "uncertainty", dict, "bundle", source, optional=True)
    if unc is not None:
        _check(ens is not None, "uncertainty needs an ensemble (the spread it scales)", source)
        alpha = _typed(unc, "alpha", _NUM, "uncertainty", source)
        _check(0 < alpha < 1, "uncertainty.alpha must be between 0 and 1", source)
        per = _typed(unc, "targets", dict, "uncertainty", source)
        names = [t["name"] for t in targets]
        _check(set(per) == set(names), f"uncertainty.targets must name the targets {names}", source)
        for name in names:
            where = f"uncertainty.targets.{name}"
            q = _typed(per, name, dict, "uncertainty.targets", source)
            qv = _typed(q, "q", _NUM, where, source, optional=True)
            _check(qv is None or (math.isfinite(qv) and qv >= 0), f"{where}.q must be a finite number >= 0 or null",
                   source)
            e = _typed(q, "eps", _NUM, where, source)
            _check(math.isfinite(e) and e > 0, f"{where}.eps must be a positive number", source)
    weights = _typed(spec, "weights", dict, "bundle", source, optional=True)
    if weights is not None:
        wname = _typed(weights, "file", str, "weights", source)
        _check(re.fullmatch(r"[A-Za-z0-9_.-]+\.safetensors", wname) is not None and ".." not in wname,
               "weights.file must be a plain .safetensors file name in the bundle folder", source)
        wsha = _typed(weights, "sha256", str, "weights", source)
        _check(re.fullmatch(r"[0-9a-f]{64}", wsha) is not None, "weights.sha256 must be 64 hex digits", source)
        _check(weights.get("format") == "safetensors", "weights.format must be 'safetensors'", source)
    quantized = _typed(spec, "quantized", dict, "bundle", source, optional=True) or {}
    _check(set(quantized) <= {"int8"}, f"quantized holds unknown precisions {sorted(set(quantized) - {'int8'})}",
           source)
    for name, entry in quantized.items():
        where = f"quantized.{name}"
        _typed(quantized, name, dict, "quantized", source)
        qfile = _typed(entry, "file", str, where, source)
        _check(re.fullmatch(r"[A-Za-z0-9_.-]+\.onnx", qfile) is not None and ".." not in qfile and qfile != fname,
               f"{where}.file must be a plain file name in the bundle folder, not the fp32 model's", source)
        qsha = _typed(entry, "sha256", str, where, source)
        _check(re.fullmatch(r"[0-9a-f]{64}", qsha) is not None, f"{where}.sha256 must be 64 hex digits", source)
        _typed(entry, "opset", int, where, source)
        _typed(entry, "calibration", dict, where, source)
        _typed(entry, "agreement", dict, where, source, optional=True)
    default = _typed(spec, "default_precision", str, "bundle", source, optional=True) or "fp32"
    _check(default in PRECISIONS, f"default_precision must be one of {', '.join(PRECISIONS)}", source)
    _check(default == "fp32" or default in quantized, f"default_precision is {default!r} but the bundle has no "
           f"{default} model", source)
    return spec


def _check_map(value, where: str, source) -> None:
    """A marker map in a bundle is a packaged name or an embedded object, never a path to read."""
    from gaitforce.data.features import PACKAGED_MAPS

    named = ("auto", *PACKAGED_MAPS)
    _check(value is None or isinstance(value, dict) or value in named,
           f"{where} must be one of {', '.join(named)} or an embedded map object (a bundle names no file)",
           source)


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, strings skipped; linear time, no recursion."""
    text = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", data)
    arr = np.frombuffer(text, dtype=np.uint8)
    step = np.isin(arr, (ord("["), ord("{"))).astype(np.int64) - np.isin(arr, (ord("]"), ord("}")))
    return int(np.cumsum(step).max()) if len(step) else 0


def read_spec(spec_path: Path) -> dict:
    """``bundle.json`` read safely: a regular file (no link), size and nesting depth capped before parsing,
    then :func:`validate_spec`."""
    if spec_path.is_symlink():
        raise BundleError(f"{SPEC_FILE} is a symbolic link, which bundles do not allow", source=spec_path)
    if spec_path.stat().st_size > MAX_SPEC_BYTES:
        raise BundleError(f"bundle.json is larger than {MAX_SPEC_BYTES // 2**20} MiB", source=spec_path)
    data = spec_path.read_bytes()
    if json_depth(data) > MAX_SPEC_DEPTH:
        raise BundleError(f"bundle.json nests deeper than {MAX_SPEC_DEPTH} levels", source=spec_path)
    try:
        spec = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise BundleError(f"bundle.json is not valid JSON: {str(err).splitlines()[0][:200]}",
                          source=spec_path) from None
    return validate_spec(spec, source=spec_path)


def _check_declared_io(model, spec: dict, source) -> None:
    """The graph's declared input/output shapes, symbolic or not, against bundle.json: (batch, F) features
    with F fixed and equal to the column count, (batch, K) targets."""
    n_cols, n_targets = len(spec["input"]["columns"]), len(spec["targets"])
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]

    def dims(value_info):
        t = value_info.type.tensor_type
        if not t.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]

    feat = next((i for i in inputs if i.name == spec["onnx"]["input"]), None)
    if feat is None:
        raise BundleError(f"model has no input {spec['onnx']['input']!r}", source=source)
    d = dims(feat)
    if d is None or len(d) != 2 or d[1] != n_cols:
        raise BundleError(f"model takes {d[-1] if d else '?'} features, bundle.json lists {n_cols} (input "
                          f"{feat.name!r} declared {d}; the feature axis must be fixed, not symbolic)", source=source)
    out = next((o for o in model.graph.output if o.name == spec["onnx"]["output"]), None)
    if out is None:
        raise BundleError(f"model has no output {spec['onnx']['output']!r}", source=source)
    d = dims(out)
    if d is not None and (len(d) != 2 or (isinstance(d[1], int) and d[1] != n_targets)):
        raise BundleError(f"model gives {d[-1] if d else 0} outputs, bundle.json lists {n_targets} targets "
                          f"(declared shape {d})", source=source)
    spread = spec["onnx"].get("spread_output")
    if spread:
        out = next((o for o in model.graph.output if o.name == spread), None)
        if out is None:
            raise BundleError(f"model has no output {spread!r} (the ensemble's spread)", source=source)
        d = dims(out)
        if d is not None and (len(d) != 2 or (isinstance(d[1], int) and d[1] != n_targets)):
            raise BundleError(f"model's spread has declared shape {d}, not (batch, {n_targets})", source=source)


def _probe(session, spec: dict, source) -> None:
    """One all-zero frame through the session: a graph whose weights do not fit its declared shapes fails here,
    at load, in one line, not on the user's data."""
    n_cols, n_targets = len(spec["input"]["columns"]), len(spec["targets"])
    feed = {spec["onnx"]["input"]: np.zeros((1, n_cols), np.float32)}
    if spec["input"].get("body_weight"):
        feed[spec["onnx"]["body_weight_input"]] = np.full((1, 1), 700.0, np.float32)
    outputs = [spec["onnx"]["output"]] + ([spec["onnx"]["spread_output"]] if spec["onnx"].get("spread_output") else [])
    try:
        ys = session.run(outputs, feed)
    except Exception as err:  # onnxruntime's own exception types
        raise BundleError(f"model fails on a test frame: {str(err).splitlines()[0][:200]}", source=source) from None
    for name, y in zip(outputs, ys):
        if np.shape(y) != (1, n_targets):
            raise BundleError(f"model gives {name} of shape {np.shape(y)} for one frame, not (1, {n_targets})",
                              source=source)


def _check_graph(data: bytes, source, spec: dict | None = None) -> None:
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
    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from tensors(attr.g)
                for g in attr.graphs:
                    yield from tensors(g)

    external = [t.name for t in tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise BundleError("model refers to external weight files, which bundles do not allow", source=source)
    if spec is not None:
        _check_declared_io(model, spec, source)


# -- loading -------------------------------------------------------------------------------------------
@dataclass
class Bundle:
    """A loaded bundle: ``spec`` (the JSON) and an ONNX Runtime session."""

    path: Path
    spec: dict
    session: Any = field(repr=False)
    precision: str = "fp32"

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

    @property
    def needs_body_weight(self) -> bool:
        """Whether the model takes the body weight (N) beside the features (trained with ``body_weight_norm``)."""
        return bool(self.spec["input"].get("body_weight"))

    def _body_weight_rows(self, body_weight, n: int) -> np.ndarray:
        """A scalar, (n,) or (n, 1) body weight in N -> (n,) float32, NaN where not positive and finite."""
        bw = np.asarray(body_weight, dtype=np.float64)
        if bw.ndim == 2 and bw.shape[1] == 1:
            bw = bw[:, 0]
        if not (bw.ndim == 0 or bw.shape == (n,)):
            raise GaitforceError(f"body_weight must be one value or one per row ({n}), got shape {bw.shape}",
                                 source=self.path)
        bw = np.broadcast_to(bw, (n,))
        return np.where(np.isfinite(bw) & (bw > 0), bw, np.nan).astype(np.float32)

    def with_body_weight(self, body_weight: float) -> "Bundle":
        """This bundle with one body weight (N) fed to every run of its session (for a stream of one subject):
        ``session.run`` and :meth:`predict_features` then need no ``body_weight``. A bundle without a body-weight
        input is returned unchanged."""
        if not self.needs_body_weight:
            return self
        value = float(body_weight)
        if not (math.isfinite(value) and value > 0):
            raise GaitforceError(f"body weight must be a positive number of N, not {body_weight!r}", source=self.path)
        session = _FixedBodyWeight(self.session, self.spec["onnx"]["body_weight_input"], value)
        return Bundle(path=self.path, spec=self.spec, session=session, precision=self.precision)

    @property
    def is_ensemble(self) -> bool:
        """Whether the graph is an ensemble with a ``spread`` output (members' SD per frame and target)."""
        return bool(self.spec["onnx"].get("spread_output"))

    @property
    def has_interval(self) -> bool:
        """Whether the bundle holds a calibrated interval (``uncertainty``) with a finite q for some target."""
        unc = self.spec.get("uncertainty")
        return bool(unc) and any(v.get("q") is not None for v in unc["targets"].values())

    @property
    def interval_level(self) -> float | None:
        """The interval's nominal coverage (1 - alpha), or None without one."""
        return 1.0 - float(self.spec["uncertainty"]["alpha"]) if self.has_interval else None

    def interval_params(self) -> tuple[np.ndarray, np.ndarray]:
        """(q, eps) per target (q NaN where not calibrated)."""
        from gaitforce.evaluate.conformal import interval_params

        if not self.spec.get("uncertainty"):
            raise GaitforceError("this bundle holds no calibrated interval (train with --ensemble and a validation "
                                 "set)", source=self.path)
        return interval_params(self.spec["uncertainty"], self.targets)

    def predict_spread_features(self, x, *, body_weight=None) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) features -> (mean, spread), (N, K) each (an ensemble bundle; same rules as
        :meth:`predict_features`)."""
        if not self.is_ensemble:
            raise GaitforceError("this bundle is no ensemble: it has no spread", source=self.path)
        return self._run(x, body_weight, spread=True)

    def predict_interval_features(self, x, *, body_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, F) features -> (mean, lo, hi), (N, K) each: ``mean -+ q x (spread + eps)`` with the bundle's
        calibrated q and eps (NaN for a target without a finite q)."""
        from gaitforce.evaluate.conformal import interval

        q, eps = self.interval_params()
        mean, spread = self.predict_spread_features(x, body_weight=body_weight)
        lo, hi = interval(mean, spread, q, eps)
        return mean, lo, hi

    def predict_features(self, x, *, body_weight=None) -> np.ndarray:
        """(N, F) features in :attr:`columns` order -> (N, K) predictions in target units.

        A row with a non-finite feature gives NaN for that row (the rest are unaffected). ``body_weight`` (N: one
        value, (N,) or (N, 1)) is required when :attr:`needs_body_weight` (unless fixed by
        :meth:`with_body_weight`); a row whose body weight is not positive and finite gives NaN. Other bundles
        ignore it (their model has no use for it)."""
        return self._run(x, body_weight, spread=False)

    def _run(self, x, body_weight, *, spread: bool):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise GaitforceError(f"features must be (N, {len(self.columns)}), got shape {x.shape}", source=self.path)
        out = np.full((len(x), len(self.targets)), np.nan, dtype=np.float32)
        sd = np.full_like(out, np.nan) if spread else None
        ok = np.isfinite(x).all(axis=1)
        spec = self.spec["onnx"]
        feed = {}
        if self.needs_body_weight:
            if body_weight is None:
                body_weight = getattr(self.session, "body_weight", None)
            if body_weight is None:
                raise GaitforceError("this model was trained on body-weight-normalised data and needs the subject's "
                                     "body weight (give body_weight in N, or the mass in kg)", source=self.path)
            bw = self._body_weight_rows(body_weight, len(x))
            ok &= np.isfinite(bw)
            feed[spec["body_weight_input"]] = np.ascontiguousarray(bw[ok, None])
        if ok.any():
            feed[spec["input"]] = np.ascontiguousarray(x[ok])
            if spread:
                out[ok], sd[ok] = self.session.run([spec["output"], spec["spread_output"]], feed)
            else:
                out[ok] = self.session.run([spec["output"]], feed)[0]
        return (out, sd) if spread else out

    def predict_frames(self, frames, *, body_weight=None, interval: bool = False) -> "Any":
        """A DataFrame holding :attr:`columns` -> a DataFrame of the targets (same index); with ``interval`` and
        a calibrated ensemble bundle also ``<target>_lo`` and ``<target>_hi`` (the interval's bounds).

        A bundle that needs the body weight takes ``body_weight`` (N) or else the frames' ``mass`` column (kg,
        times :data:`gaitforce.constants.G`)."""
        import pandas as pd

        missing = [c for c in self.columns if c not in frames]
        if missing:
            raise GaitforceError(f"input lacks feature columns {missing[:5]}", source=self.path)
        if self.needs_body_weight and body_weight is None and "mass" in frames:
            body_weight = body_weight_of_mass(frames["mass"].to_numpy(np.float64))
        x = frames[self.columns].to_numpy(np.float32)
        if interval and self.has_interval:
            y, lo, hi = self.predict_interval_features(x, body_weight=body_weight)
            out = pd.DataFrame(y, columns=self.targets, index=frames.index)
            for k, t in enumerate(self.targets):
                out[f"{t}_lo"], out[f"{t}_hi"] = lo[:, k], hi[:, k]
            return out
        y = self.predict_features(x, body_weight=body_weight)
        return pd.DataFrame(y, columns=self.targets, index=frames.index)


def load_weights(bundle: "Bundle") -> dict[str, np.ndarray] | None:
    """The network's tensors from the bundle's ``model.safetensors`` (``None`` when the bundle has none), after
    checking its SHA-256 against ``bundle.json``. safetensors holds raw arrays only: nothing is unpickled."""
    entry = bundle.spec.get("weights")
    if not entry:
        return None
    wpath = bundle.path / entry["file"]
    if not wpath.is_file():
        raise BundleError(f"weights file {entry['file']!r} is missing", source=bundle.path)
    if wpath.stat().st_size > MAX_WEIGHTS_BYTES:
        raise BundleError(f"weights file is larger than {MAX_WEIGHTS_BYTES >> 20} MiB", source=wpath)
    data = wpath.read_bytes()
    if _sha256(data) != entry["sha256"]:
        raise BundleError("weights file does not match the SHA-256 in bundle.json (changed or damaged)", source=wpath)
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except (SafetensorError, ValueError) as err:
        raise BundleError(f"weights file is not readable safetensors: {err}", source=wpath) from None


def body_weight_of_mass(mass) -> np.ndarray:
    """Mass (kg) -> body weight (N) with the one G training and metrics use; NaN where the mass is missing or
    not positive."""
    from gaitforce.constants import G

    m = np.asarray(mass, dtype=np.float64)
    return np.where(np.isfinite(m) & (m > 0), m * G, np.nan)


class _FixedBodyWeight:
    """An ONNX Runtime session stand-in that adds one body weight (N) to every run's feed (rows as the
    features have); everything else goes to the session."""

    def __init__(self, session, name: str, body_weight: float):
        self._session, self._name, self.body_weight = session, name, float(body_weight)
        self._cache: dict[int, np.ndarray] = {}

    def run(self, outputs, feed, *args, **kwargs):
        if self._name not in feed:
            n = len(next(iter(feed.values())))
            bw = self._cache.get(n)
            if bw is None:
                bw = self._cache[n] = np.full((n, 1), self.body_weight, dtype=np.float32)
            feed = {**feed, self._name: bw}
        return self._session.run(outputs, feed, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


def load_bundle(path, *, intra_op_num_threads: int = 1, precision: str | None = None) -> Bundle:
    """Open a bundle folder after checking it (see the module docstring). Raises :class:`BundleError`.

    ``precision``: ``"fp32"`` or ``"int8"`` (the quantised model, which must be in the bundle); ``None``
    opens the bundle's ``default_precision`` (fp32 unless the bundle says otherwise)."""
    path = Path(path)
    spec_path = path / SPEC_FILE
    try:
        if not spec_path.is_file():
            raise BundleError(f"not a model bundle (no {SPEC_FILE})", source=path)
        spec = read_spec(spec_path)
    except OSError as err:
        raise BundleError(f"cannot read: {err.strerror or err}", source=spec_path) from None
    precision = (spec.get("default_precision") or "fp32") if precision is None else precision
    if precision not in PRECISIONS:
        raise GaitforceError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", source=path)
    if precision == "fp32":
        entry = spec["onnx"]
    elif precision in spec.get("quantized", {}):
        entry = spec["quantized"][precision]
    else:
        raise BundleError(f"bundle has no {precision} model (write one with 'gaitforce train --quantize "
                          f"{precision}' or gaitforce.learn.quantize.quantize_bundle)", source=path)
    model_path = path / entry["file"]
    if model_path.is_symlink():
        raise BundleError(f"model file {entry['file']!r} is a symbolic link, which bundles do not allow", source=path)
    if not model_path.is_file():
        raise BundleError(f"model file {entry['file']!r} is missing", source=path)
    try:
        data = model_path.read_bytes()
    except OSError as err:
        raise BundleError(f"cannot read: {err.strerror or err}", source=model_path) from None
    if _sha256(data) != entry["sha256"]:
        raise BundleError("model file does not match the SHA-256 in bundle.json (changed or damaged)",
                          source=model_path)
    _check_graph(data, model_path, spec)
    session = _open_session(data, intra_op_num_threads, model_path)
    _check_io(session, spec, model_path)
    _probe(session, spec, model_path)
    return Bundle(path=path, spec=spec, session=session, precision=precision)


def _open_session(data: bytes, threads: int, source):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise BundleError(f"ONNX Runtime cannot open the model: {err}", source=source) from None


def _check_io(session, spec: dict, source) -> None:
    ins, outs = session.get_inputs(), session.get_outputs()
    want_in, want_out = spec["onnx"]["input"], spec["onnx"]["output"]
    want_ins = [want_in] + ([spec["onnx"]["body_weight_input"]] if spec["input"].get("body_weight") else [])
    want_outs = [want_out] + ([spec["onnx"]["spread_output"]] if spec["onnx"].get("spread_output") else [])
    if [i.name for i in ins] != want_ins or any(w not in [o.name for o in outs] for w in want_outs):
        raise BundleError(f"model's inputs/outputs are not {', '.join(map(repr, want_ins))} -> "
                          f"{', '.join(map(repr, want_outs))}",
                          source=source)
    f = ins[0].shape[-1] if ins[0].shape else None
    k = next(o for o in outs if o.name == want_out).shape[-1]
    if isinstance(f, int) and f != len(spec["input"]["columns"]):
        raise BundleError(f"model takes {f} features, bundle.json lists {len(spec['input']['columns'])}", source=source)
    if isinstance(k, int) and k != len(spec["targets"]):
        raise BundleError(f"model gives {k} outputs, bundle.json lists {len(spec['targets'])} targets", source=source)


def _opset(data: bytes) -> int:
    """The default-domain opset the exporter actually wrote."""
    import onnx

    model = onnx.load_model_from_string(data)
    return int(next(o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
