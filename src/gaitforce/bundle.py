"""Model bundles: a trained surrogate as ``model.onnx`` + ``bundle.json``, safe to load from anyone.

``save_bundle(estimator, DIR, dataset_manifest=..., metrics=...)`` writes

- ``DIR/model.onnx``: the network(s) with the input and target normalisation folded into the graph, so the
  graph maps raw features ``features`` (N, F) float32 to ``targets`` (N, K) float32 in the targets' units; the
  batch axis is dynamic. A model trained with ``body_weight_norm`` has a second input ``body_weight`` (N,
  shape (batch, 1)): the graph divides the force inputs (``grf_*``) by it and multiplies the targets in N back,
  so inputs and outputs stay in the dataset's units (``bundle.json``: ``input.body_weight: true``,
  ``input.body_weight_unit: "N"``, ``onnx.body_weight_input``); exported with PyTorch's ``torch.export``-based exporter at opset :data:`OPSET`, all
  weights inside the one file;
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

from ._json import json_safe as _json_safe
from .errors import GaitforceError, InputFileError

SCHEMA_VERSION = 1
FORMAT = "gaitforce-bundle"
OPSET = 18
MODEL_FILE = "model.onnx"
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
    module = estimator.export_module() if hasattr(estimator, "export_module") else estimator.folded_module()
    export_onnx(module, len(estimator.columns_), model_path, body_weight=_uses_body_weight(estimator))
    spec = bundle_spec(estimator, dataset_manifest=dataset_manifest or {}, metrics=metrics)
    data = model_path.read_bytes()
    spec["onnx"]["sha256"] = _sha256(data)
    spec["onnx"]["opset"] = _opset(data)
    validate_spec(spec, source=path / SPEC_FILE)
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n")
    return path


def _uses_body_weight(estimator) -> bool:
    return getattr(estimator, "force_inputs_", None) is not None


def export_onnx(module, n_features: int, out: Path, *, body_weight: bool = False) -> None:
    """Export a (N, F) -> (N, K) CPU module to a single-file ONNX graph with a dynamic batch axis; with
    ``body_weight`` the module takes (features (N, F), body_weight (N, 1)) and so does the graph."""
    import torch

    try:
        import onnxscript  # noqa: F401 - the exporter needs it; say so plainly rather than deep in torch
    except ImportError:
        raise GaitforceError("writing a bundle needs the 'onnxscript' package (pip install onnxscript)") from None
    module = module.cpu().eval()
    example = (torch.zeros(2, n_features, dtype=torch.float32),)
    names = [INPUT_NAME]
    batch = torch.export.Dim("batch")
    if body_weight:
        example += (torch.full((2, 1), 700.0, dtype=torch.float32),)
        names.append(BODY_WEIGHT_NAME)
    with warnings.catch_warnings(), _quiet_export():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            input_names=names,
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=tuple({0: batch} for _ in example),
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


def quantize_bundle(path, calibration, *, held_out=None, held_out_name: str = "held-out",
                    test_rmse: dict | None = None, calibration_body_weight=None, held_out_body_weight=None,
                    max_frames: int = MAX_CALIBRATION_FRAMES, seed: int = 0, make_default: bool | str = False,
                    first_layer_fp32: bool = True, reduce_range: bool = True) -> dict:
    """Add an int8 copy of bundle ``path``'s network (``model.int8.onnx``); returns its ``bundle.json`` entry.

    ``calibration``: (N, F) features the model was fitted on (training + validation frames, never test) in the
    bundle's column order; rows with a non-finite value are dropped and at most ``max_frames`` are drawn at
    random (``seed``). ONNX Runtime's static quantiser runs in QDQ format with per-channel int8 weights and
    uint8 activations whose ranges are the calibration frames' min/max, weights at 7 bits (``reduce_range``: no
    int16 saturation on x86 CPUs without VNNI). Only :data:`QUANTIZED_OPS` are quantised: the input
    normalisation and output scaling stay float32, and with ``first_layer_fp32`` so does the first of those
    products (its input is the raw feature image, where a new subject's features fall outside the calibrated
    range and would be clipped; it is ~3 % of the paper-sized CNN's MACs).

    ``held_out``: (M, F) features not used for calibration (the test frames) on which int8 and fp32
    predictions are compared per target (max and RMS difference in target units); without it the calibration
    frames are used and the entry says so (and gives no verdict); ``held_out_name`` names the set (e.g.
    ``"test"``) in the entry. A bundle with a body-weight input (``body_weight_norm``) needs
    ``calibration_body_weight`` and (with ``held_out``) ``held_out_body_weight``: N, one per row (or one for
    all); rows without a positive finite one are dropped like rows with a non-finite feature. ``test_rmse``: {target: fp32 test RMSE}; with it each target gets
    the verdict of the stated rule (:data:`INT8_RMS_FRACTION`, :data:`INT8_MAX_FRACTION`). ``make_default``:
    ``"if-accurate"`` (int8 becomes the default when every target passes), True or False.
    """
    path = Path(path)
    spec_path = path / SPEC_FILE
    fp32 = load_bundle(path, precision="fp32")
    x, bw = _finite_rows(calibration, len(fp32.columns), "calibration", path, bundle=fp32,
                         body_weight=calibration_body_weight)
    if len(x) == 0:
        raise GaitforceError("no calibration frame has every feature finite", source=path)
    rng = np.random.default_rng(seed)
    if len(x) > max_frames:
        pick = np.sort(rng.choice(len(x), size=max_frames, replace=False))
        x, bw = x[pick], None if bw is None else bw[pick]
    int8_path = path / INT8_FILE
    feeds = {fp32.spec["onnx"]["input"]: x}
    if bw is not None:
        feeds[fp32.spec["onnx"]["body_weight_input"]] = bw
    fp32_nodes = _quantize_static(path / fp32.spec["onnx"]["file"], int8_path, feeds,
                                  first_layer_fp32=first_layer_fp32, reduce_range=reduce_range)
    data = int8_path.read_bytes()
    entry: dict[str, Any] = {
        "file": INT8_FILE, "sha256": _sha256(data), "opset": _opset(data),
        "scheme": {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "weights": "int8",
                   "per_channel": True, "reduce_range": bool(reduce_range), "activations": "uint8",
                   "calibration": "minmax", "ops": list(QUANTIZED_OPS), "kept_fp32": fp32_nodes},
        "calibration": {"frames": int(len(x)), "of_frames": int(len(np.asarray(calibration))), "seed": int(seed),
                        "feature_min": x.min(axis=0), "feature_max": x.max(axis=0)},
    }
    spec = fp32.spec
    spec.setdefault("quantized", {})["int8"] = entry  # the int8 session below reads the file, not this entry
    int8 = _open_session(data, 1, int8_path)
    _check_io(int8, spec, int8_path)
    check_on = held_out_name
    if held_out is None:
        xh, bwh, check_on = x, bw, "calibration"
    else:
        xh, bwh = _finite_rows(held_out, len(fp32.columns), "held-out", path, bundle=fp32,
                               body_weight=held_out_body_weight)
    entry["agreement"] = _agreement(fp32, int8, xh, check_on, test_rmse, body_weight=bwh)
    verdicts = [a.get("as_accurate") for a in entry["agreement"]["targets"].values()]
    if make_default == "if-accurate":
        make_default = bool(verdicts) and all(v is True for v in verdicts)
    spec["default_precision"] = "int8" if make_default else spec.get("default_precision", "fp32")
    spec = _json_safe(spec)
    validate_spec(spec, source=spec_path)
    _atomic_write(spec_path, (json.dumps(spec, indent=2, allow_nan=False) + "\n").encode())
    return spec["quantized"]["int8"]


def _finite_rows(x, n_features: int, what: str, source, *, bundle: "Bundle", body_weight=None):
    """The rows of ``x`` with every feature (and, for a body-weight bundle, the body weight) usable:
    (features (M, F), body weights (M, 1) or None)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise GaitforceError(f"{what} features must be (N, {n_features}), got shape {x.shape}", source=source)
    ok = np.isfinite(x).all(axis=1)
    if not bundle.needs_body_weight:
        return np.ascontiguousarray(x[ok]), None
    if body_weight is None:
        raise GaitforceError(f"the bundle takes a body weight: give the {what} frames' body weights (N) too",
                             source=source)
    bw = bundle._body_weight_rows(body_weight, len(x))
    ok &= np.isfinite(bw)
    return np.ascontiguousarray(x[ok]), np.ascontiguousarray(bw[ok, None])


def _quantize_static(src: Path, out: Path, feeds: dict[str, np.ndarray], *, first_layer_fp32: bool,
                     reduce_range: bool) -> list[str]:
    """Quantise ``src`` into ``out`` calibrated on ``feeds`` ({input name: rows}); returns the names of the
    quantisable nodes kept in float32."""
    import logging

    import onnx

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            n = len(next(iter(feeds.values())))
            self._batches = iter([{k: v[i : i + 256] for k, v in feeds.items()} for i in range(0, n, 256)])

        def get_next(self):
            return next(self._batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice at WARNING through the root logger
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quant-") as tmp:
            pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(str(src), str(pre))
            products = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in QUANTIZED_OPS]
            keep = products[:1] if first_layer_fp32 else []  # nodes are stored in topological order
            if len(products) <= len(keep):
                raise GaitforceError(f"nothing to quantise: the network has {len(products)} matrix product(s) "
                                     f"and the first stays float32", source=src)
            quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=reduce_range, nodes_to_exclude=keep, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(QUANTIZED_OPS))
            _drop_unused_domains(q)
            os.replace(q, out)
    finally:
        root.setLevel(level)
    return keep


def _drop_unused_domains(path: Path) -> None:
    """The pre-processor's optimiser declares every ORT domain; keep only the opsets a node uses."""
    import onnx

    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | _STANDARD_DOMAINS
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.save(model, str(path))


def _agreement(fp32: "Bundle", int8_session, x: np.ndarray, on: str, test_rmse: dict | None, *,
               body_weight: np.ndarray | None = None) -> dict:
    spec = fp32.spec["onnx"]
    ref = fp32.predict_features(x, body_weight=body_weight).astype(np.float64)
    feed = {spec["input"]: x}
    if body_weight is not None:
        feed[spec["body_weight_input"]] = body_weight
    y = int8_session.run([spec["output"]], feed)[0].astype(np.float64) if len(x) else ref
    out: dict[str, Any] = {"frames": int(len(x)), "on": on,
                           "rule": f"as_accurate: RMS(int8 - fp32) <= {INT8_RMS_FRACTION:g} x the fp32 test RMSE "
                                   f"and max |int8 - fp32| <= {INT8_MAX_FRACTION:g} x it", "targets": {}}
    for k, name in enumerate(fp32.targets):
        d = y[:, k] - ref[:, k]
        row: dict[str, Any] = {"unit": fp32.units[name], "max_abs_diff": float(np.abs(d).max()) if len(d) else None,
                               "rms_diff": float(np.sqrt(np.mean(d**2))) if len(d) else None}
        rmse = (test_rmse or {}).get(name)
        if rmse is not None and math.isfinite(rmse) and rmse > 0 and len(d) and on != "calibration":
            row["fp32_test_rmse"] = float(rmse)
            row["rms_diff_over_rmse"] = row["rms_diff"] / rmse
            row["max_diff_over_rmse"] = row["max_abs_diff"] / rmse
            row["as_accurate"] = bool(row["rms_diff_over_rmse"] <= INT8_RMS_FRACTION
                                      and row["max_diff_over_rmse"] <= INT8_MAX_FRACTION)
        out["targets"][name] = row
    return out


def _atomic_write(out: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
        tmp_path = Path(tmp.name)
    try:
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
    body_weight: dict[str, Any] = {}
    onnx_bw: dict[str, Any] = {}
    if _uses_body_weight(estimator):
        body_weight = {"body_weight": True, "body_weight_unit": "N",
                       "body_weight_divides": [c for c, f in zip(estimator.columns_, estimator.force_inputs_) if f],
                       "body_weight_multiplies": [t for t, u in zip(estimator.targets, estimator.target_units_)
                                                  if u == "N"]}
        onnx_bw = {"body_weight_input": BODY_WEIGHT_NAME}
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
            **body_weight,
        },
        "targets": [{"name": n, "unit": u} for n, u in zip(estimator.targets, estimator.target_units_)],
        "sample_rate": rate,
        "training_data": data,
        "metrics": metrics if metrics is not None else {},
        "versions": _versions(),
        "onnx": {"file": MODEL_FILE, "sha256": "", "opset": OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME,
                 **onnx_bw},
    })


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gaitforce", "torch", "onnx", "onnxruntime", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out




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

    def predict_features(self, x, *, body_weight=None) -> np.ndarray:
        """(N, F) features in :attr:`columns` order -> (N, K) predictions in target units.

        A row with a non-finite feature gives NaN for that row (the rest are unaffected). ``body_weight`` (N: one
        value, (N,) or (N, 1)) is required when :attr:`needs_body_weight` (unless fixed by
        :meth:`with_body_weight`); a row whose body weight is not positive and finite gives NaN. Other bundles
        ignore it (their model has no use for it)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise GaitforceError(f"features must be (N, {len(self.columns)}), got shape {x.shape}", source=self.path)
        out = np.full((len(x), len(self.targets)), np.nan, dtype=np.float32)
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
            out[ok] = self.session.run([spec["output"]], feed)[0]
        return out

    def predict_frames(self, frames, *, body_weight=None) -> "Any":
        """A DataFrame holding :attr:`columns` -> a DataFrame of the targets (same index).

        A bundle that needs the body weight takes ``body_weight`` (N) or else the frames' ``mass`` column (kg,
        times :data:`gaitforce.evaluation.G`)."""
        import pandas as pd

        missing = [c for c in self.columns if c not in frames]
        if missing:
            raise GaitforceError(f"input lacks feature columns {missing[:5]}", source=self.path)
        if self.needs_body_weight and body_weight is None and "mass" in frames:
            body_weight = body_weight_of_mass(frames["mass"].to_numpy(np.float64))
        y = self.predict_features(frames[self.columns].to_numpy(np.float32), body_weight=body_weight)
        return pd.DataFrame(y, columns=self.targets, index=frames.index)


def body_weight_of_mass(mass) -> np.ndarray:
    """Mass (kg) -> body weight (N) with the one G training and metrics use; NaN where the mass is missing or
    not positive."""
    from .evaluation import G

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
    if not spec_path.is_file():
        raise BundleError(f"not a model bundle (no {SPEC_FILE})", source=path)
    if spec_path.stat().st_size > MAX_SPEC_BYTES:
        raise BundleError(f"bundle.json is larger than {MAX_SPEC_BYTES // 2**20} MiB", source=spec_path)
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"bundle.json is not valid JSON: {err}", source=spec_path) from None
    validate_spec(spec, source=spec_path)
    precision = (spec.get("default_precision") or "fp32") if precision is None else precision
    if precision not in PRECISIONS:
        raise GaitforceError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", source=path)
    if precision == "fp32":
        entry = spec["onnx"]
    elif precision in spec.get("quantized", {}):
        entry = spec["quantized"][precision]
    else:
        raise BundleError(f"bundle has no {precision} model (write one with 'gaitforce train --quantize "
                          f"{precision}' or gaitforce.bundle.quantize_bundle)", source=path)
    model_path = path / entry["file"]
    if not model_path.is_file():
        raise BundleError(f"model file {entry['file']!r} is missing", source=path)
    data = model_path.read_bytes()
    if _sha256(data) != entry["sha256"]:
        raise BundleError("model file does not match the SHA-256 in bundle.json (changed or damaged)",
                          source=model_path)
    _check_graph(data, model_path)
    session = _open_session(data, intra_op_num_threads, model_path)
    _check_io(session, spec, model_path)
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
    if [i.name for i in ins] != want_ins or want_out not in [o.name for o in outs]:
        raise BundleError(f"model's inputs/outputs are not {', '.join(map(repr, want_ins))} -> {want_out!r}",
                          source=source)
    f = ins[0].shape[-1] if ins[0].shape else None
    k = next(o for o in outs if o.name == want_out).shape[-1]
    if isinstance(f, int) and f != len(spec["input"]["columns"]):
        raise BundleError(f"model takes {f} features, bundle.json lists {len(spec['input']['columns'])}", source=source)
    if isinstance(k, int) and k != len(spec["targets"]):
        raise BundleError(f"model gives {k} outputs, bundle.json lists {len(spec['targets'])} targets", source=source)
