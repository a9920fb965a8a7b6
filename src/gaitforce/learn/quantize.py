"""int8 bundles: static quantisation of a bundle's ONNX graph, with its measured agreement to fp32."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gaitforce._json import json_safe as _json_safe
from gaitforce.errors import GaitforceError
from gaitforce.learn.bundle import (
    _STANDARD_DOMAINS,
    INT8_FILE,
    INT8_MAX_FRACTION,
    INT8_RMS_FRACTION,
    MAX_CALIBRATION_FRAMES,
    QUANTIZED_OPS,
    SPEC_FILE,
    Bundle,
    _check_io,
    _open_session,
    _opset,
    _sha256,
    load_bundle,
    validate_spec,
)
from gaitforce.learn.export import _atomic_write


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

    The bundle is updated whole or not at all: its files are copied into a temporary sibling, the int8 model and
    the new ``bundle.json`` written there, and the folder swapped in (:func:`gaitforce.outputs.atomic_dir`), so a
    kill between the model and the JSON never leaves a bundle whose hashes disagree.
    """
    import shutil

    from gaitforce.outputs import atomic_dir

    path = Path(path)
    if not (path / SPEC_FILE).is_file():
        raise GaitforceError(f"not a model bundle (no {SPEC_FILE})", source=path)
    with atomic_dir(path, overwrite=True) as tmp:
        for f in path.iterdir():
            if f.is_file() and not f.is_symlink():
                shutil.copy2(f, tmp / f.name)
        return _quantize_into(tmp, calibration, held_out=held_out, held_out_name=held_out_name,
                              test_rmse=test_rmse, calibration_body_weight=calibration_body_weight,
                              held_out_body_weight=held_out_body_weight, max_frames=max_frames, seed=seed,
                              make_default=make_default, first_layer_fp32=first_layer_fp32,
                              reduce_range=reduce_range)


def _quantize_into(path: Path, calibration, *, held_out, held_out_name, test_rmse, calibration_body_weight,
                   held_out_body_weight, max_frames, seed, make_default, first_layer_fp32, reduce_range) -> dict:
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
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
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


