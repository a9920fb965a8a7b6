"""Writing a bundle: the estimator exported to ONNX (normalisation folded in) and ``bundle.json``."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from gaitforce._json import json_safe as _json_safe
from gaitforce.errors import GaitforceError
from gaitforce.learn.bundle import (
    BODY_WEIGHT_NAME,
    FORMAT,
    INPUT_NAME,
    MODEL_FILE,
    OPSET,
    OUTPUT_NAME,
    SCHEMA_VERSION,
    SPREAD_NAME,
    SPEC_FILE,
    WEIGHTS_FILE,
    _opset,
    _sha256,
    validate_spec,
)


def save_bundle(estimator, path, *, dataset_manifest: dict | None, metrics: dict | None = None,
                overwrite: bool = False) -> Path:
    """Write ``estimator`` (fitted) as a bundle in folder ``path``; returns the folder.

    The folder is written whole or not at all (:func:`gaitforce.outputs.atomic_dir`): a kill or a full disk
    leaves the previous bundle intact. An existing non-empty folder needs ``overwrite``."""
    from gaitforce.outputs import atomic_dir

    estimator._check_fitted()
    path = Path(path)
    spec = bundle_spec(estimator, dataset_manifest=dataset_manifest or {}, metrics=metrics)
    module = estimator.export_module() if hasattr(estimator, "export_module") else estimator.folded_module()
    with atomic_dir(path, overwrite=overwrite) as tmp:
        model_path = tmp / MODEL_FILE
        export_onnx(module, len(estimator.columns_), model_path, body_weight=_uses_body_weight(estimator),
                    spread=_is_ensemble(estimator))
        data = model_path.read_bytes()
        spec["onnx"]["sha256"] = _sha256(data)
        spec["onnx"]["opset"] = _opset(data)
        spec["weights"] = save_weights(module, tmp / WEIGHTS_FILE)
        validate_spec(spec, source=path / SPEC_FILE)
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n")
    return path


def _embedded_map(marker_map):
    """A marker map as a bundle stores it: a packaged name or 'auto' as is, a file loaded and embedded (a bundle
    names no file to read)."""
    if marker_map is None or isinstance(marker_map, dict):
        return marker_map
    from gaitforce.data.features import PACKAGED_MAPS, load_marker_map

    if str(marker_map) == "auto" or str(marker_map) in PACKAGED_MAPS:
        return str(marker_map)

    return load_marker_map(marker_map)


def save_weights(module, out: Path) -> dict[str, Any]:
    """Write ``module``'s state (the module the ONNX graph was exported from) as safetensors; returns the
    ``bundle.json`` entry (file, SHA-256, format, module class). Lets the network be rebuilt from its registered
    architecture for exact gradients (:mod:`gaitforce.learn.explain`) without unpickling anything."""
    from safetensors.numpy import save

    tensors = {k: v.detach().cpu().contiguous().numpy().copy() for k, v in module.state_dict().items()}
    data = save(tensors)
    _atomic_write(out, data)
    return {"file": out.name, "sha256": _sha256(data), "format": "safetensors", "module": type(module).__name__}


def _is_ensemble(estimator) -> bool:
    return hasattr(estimator, "ensemble_spec")


def _uses_body_weight(estimator) -> bool:
    return getattr(estimator, "force_inputs_", None) is not None


def export_onnx(module, n_features: int, out: Path, *, body_weight: bool = False, spread: bool = False) -> None:
    """Export a (N, F) -> (N, K) CPU module to a single-file ONNX graph with a dynamic batch axis; with
    ``body_weight`` the module takes (features (N, F), body_weight (N, 1)) and so does the graph; with ``spread``
    (an ensemble, :class:`gaitforce.learn.ensemble.EnsembleFolded`) it gives (mean, spread) and the graph has a
    second output ``spread``."""
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
            output_names=[OUTPUT_NAME, SPREAD_NAME] if spread else [OUTPUT_NAME],
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
    marker_map = _embedded_map(settings.get("marker_map")) if isinstance(settings, dict) else None
    if isinstance(settings, dict) and "marker_map" in settings:
        settings = {**settings, "marker_map": marker_map}
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
    ensemble: dict[str, Any] = {}
    if _is_ensemble(estimator):
        ensemble["ensemble"] = estimator.ensemble_spec()
        onnx_bw["spread_output"] = SPREAD_NAME
        if getattr(estimator, "uncertainty_", None):
            ensemble["uncertainty"] = estimator.uncertainty_
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
            "marker_maps_used": _maps_used(dataset_manifest),
            "feature_ranges": getattr(estimator, "feature_ranges_", None) or {},
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
        **ensemble,
    })


def _maps_used(manifest: dict) -> dict[str, Any]:
    """The training data's marker maps: {map: files} and {slot: files in which it was filled}, from the
    dataset manifest's sources."""
    maps: dict[str, int] = {}
    filled: dict[str, int] = {}
    for src in manifest.get("sources", []) if isinstance(manifest.get("sources"), list) else []:
        if not isinstance(src, dict):
            continue
        name = src.get("marker_map")
        if isinstance(name, str):
            maps[name] = maps.get(name, 0) + 1
        for slot in (src.get("filled_slots") or {}):
            filled[slot] = filled.get(slot, 0) + 1
    return {"maps": maps, "filled_slots": filled}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gaitforce", "torch", "onnx", "onnxruntime", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out




# -- checking ------------------------------------------------------------------------------------------
