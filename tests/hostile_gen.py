"""Generators of hostile inputs for tests/test_hostile.py: corrupt trial files, damaged or tampered bundles and
dataset manifests. Each takes a folder (and a good input to damage) and returns the path it wrote."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from gaitforce.data import synthetic
from gaitforce.io.c3d import write_c3d
from gaitforce.io.writers import write_trc

#: a pickle of the int 1 (protocol 4): written as data only, to check that nothing unpickles it
PICKLE_BYTES = b"\x80\x04K\x01."


def walk(i: int = 0):
    return synthetic.generate_trial(seed=0, subject=i, trial=0)


# -- trial files ---------------------------------------------------------------------------------------------
def c3d_truncated(folder: Path, good: Path, fraction: float) -> Path:
    data = good.read_bytes()
    out = folder / f"trunc{int(fraction * 100):02d}.c3d"
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def garbage(folder: Path, name: str, data: bytes) -> Path:
    out = folder / name
    out.write_bytes(data)
    return out


def c3d_metres_labelled_mm(folder: Path) -> Path:
    """POINT:UNITS says mm, the values are metres (the markers of a body collapse to ~2 mm)."""
    t = walk(1)
    out = folder / "metres_as_mm.c3d"
    write_c3d(out, t.replace(markers=t.markers / 1000.0))
    return out


def c3d_no_load(folder: Path) -> Path:
    """Plates that never carry load: no stance anywhere."""
    t = walk(2)
    out = folder / "no_load.c3d"
    write_c3d(out, t.replace(forces=np.zeros_like(t.forces)))
    return out


def trc_rows_missing_cells(folder: Path, cells: int = 30) -> Path:
    """A TRC whose data rows lack their last ``cells`` cells (the markers would silently become NaN)."""
    out = folder / "short_rows.trc"
    write_trc(out, walk(3))
    lines = out.read_text().splitlines()
    head, rows = lines[:5], lines[5:]
    rows = ["\t".join(r.split("\t")[:-cells]) if r.strip() else r for r in rows]
    out.write_text("\n".join(head + rows) + "\n")
    return out


def trc_mm_labelled_m(folder: Path) -> Path:
    out = folder / "mm_as_m.trc"
    write_trc(out, walk(3), units="mm")
    lines = out.read_text().splitlines()
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    values[keys.index("Units")] = "m"
    lines[2] = "\t".join(values)
    out.write_text("\n".join(lines) + "\n")
    return out


def trc_text_in_cells(folder: Path) -> Path:
    out = folder / "text_cells.trc"
    write_trc(out, walk(3))
    lines = out.read_text().splitlines()
    cells = lines[8].split("\t")
    cells[4] = "abc"
    lines[8] = "\t".join(cells)
    out.write_text("\n".join(lines) + "\n")
    return out


def non_utf8_name(folder: Path, good: Path) -> str:
    """A copy of a good C3D under a file name with a byte that is not UTF-8; returned as the str a shell
    passes (surrogate-escaped)."""
    raw = os.path.join(os.fsencode(folder), b"bad\xff name.c3d")
    with open(raw, "wb") as fh:
        fh.write(good.read_bytes())
    return os.fsdecode(raw)


TRIAL_KINDS = ["trunc05", "trunc50", "trunc95", "empty_c3d", "garbage_c3d", "pickle_c3d", "garbage_mat",
               "pickle_mat", "empty_trc", "metres_as_mm", "no_load", "short_rows", "mm_as_m", "text_cells",
               "non_utf8", "unknown_ext", "missing"]


def make_trial_file(kind: str, folder: Path, good: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    if kind.startswith("trunc"):
        return str(c3d_truncated(folder, good, int(kind[5:]) / 100))
    simple = {"empty_c3d": ("empty.c3d", b""), "garbage_c3d": ("garbage.c3d", os.urandom(3000)),
              "pickle_c3d": ("pickled.c3d", PICKLE_BYTES), "garbage_mat": ("garbage.mat", b"MATLAB 5.0" + bytes(200)),
              "pickle_mat": ("pickled.mat", PICKLE_BYTES), "empty_trc": ("empty.trc", b""),
              "unknown_ext": ("notes.xyz", b"hello")}
    if kind in simple:
        return str(garbage(folder, *simple[kind]))
    if kind == "missing":
        return str(folder / "does_not_exist.c3d")
    if kind == "non_utf8":
        return non_utf8_name(folder, good)
    return str({"metres_as_mm": c3d_metres_labelled_mm, "no_load": c3d_no_load, "short_rows": trc_rows_missing_cells,
                "mm_as_m": trc_mm_labelled_m, "text_cells": trc_text_in_cells}[kind](folder))


# -- bundles -------------------------------------------------------------------------------------------------
def copy_bundle(good: Path, folder: Path) -> Path:
    out = folder / "bundle"
    shutil.copytree(good, out)
    return out


def _spec(b: Path) -> dict:
    return json.loads((b / "bundle.json").read_text())


def _write_spec(b: Path, spec: dict) -> None:
    (b / "bundle.json").write_text(json.dumps(spec))


def _rehash(b: Path, data: bytes) -> None:
    (b / "model.onnx").write_bytes(data)
    spec = _spec(b)
    spec["onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
    _write_spec(b, spec)


def _model(b: Path):
    import onnx

    return onnx.load_model_from_string((b / "model.onnx").read_bytes())


def bundle_symbolic_feature_axis(b: Path) -> None:
    """The feature axis declared symbolic: the size check must not skip it."""
    m = _model(b)
    d = m.graph.input[0].type.tensor_type.shape.dim[1]
    d.ClearField("dim_value")
    d.dim_param = "F"
    _rehash(b, m.SerializeToString())


def bundle_symbolic_axis_and_wrong_weights(b: Path) -> None:
    """Symbolic feature axis and a weight matrix one row short: ORT would fail only on data."""
    from onnx import numpy_helper

    m = _model(b)
    n = len(_spec(b)["input"]["columns"])
    d = m.graph.input[0].type.tensor_type.shape.dim[1]
    d.ClearField("dim_value")
    d.dim_param = "F"
    for i, t in enumerate(m.graph.initializer):
        w = numpy_helper.to_array(t)
        if w.ndim == 2 and n in w.shape:
            axis = w.shape.index(n)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.delete(w, 0, axis=axis), t.name))
            break
    _rehash(b, m.SerializeToString())


def bundle_wrong_declared_axis(b: Path) -> None:
    m = _model(b)
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 7
    _rehash(b, m.SerializeToString())


def bundle_external_data(b: Path) -> None:
    import onnx

    m = _model(b)
    t = m.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    _rehash(b, m.SerializeToString())


def bundle_deep_json(b: Path, depth: int = 200_000) -> None:
    (b / "bundle.json").write_text("[" * depth + "]" * depth)


def bundle_symlinked_model(b: Path, outside: Path) -> None:
    target = outside / "elsewhere.onnx"
    shutil.copy(b / "model.onnx", target)
    (b / "model.onnx").unlink()
    (b / "model.onnx").symlink_to(target)


def bundle_symlinked_json(b: Path, outside: Path) -> None:
    target = outside / "elsewhere.json"
    shutil.copy(b / "bundle.json", target)
    (b / "bundle.json").unlink()
    (b / "bundle.json").symlink_to(target)


def bundle_marker_map_path(b: Path, where: str, path: str) -> None:
    spec = _spec(b)
    if where == "input":
        spec["input"]["marker_map"] = path
    else:
        spec["input"]["ingest_settings"]["marker_map"] = path
    _write_spec(b, spec)


def _edit(fn):
    def apply(b: Path, outside: Path) -> None:
        spec = _spec(b)
        fn(spec)
        _write_spec(b, spec)
    return apply


BUNDLE_KINDS = {
    "deep_json": lambda b, o: bundle_deep_json(b),
    "not_json": lambda b, o: (b / "bundle.json").write_text("{not json"),
    "json_list": lambda b, o: (b / "bundle.json").write_text("[1, 2, 3]"),
    "json_pickle": lambda b, o: (b / "bundle.json").write_bytes(PICKLE_BYTES),
    "json_latin1": lambda b, o: (b / "bundle.json").write_bytes(b'{"a": "\xff"}'),
    "no_json": lambda b, o: (b / "bundle.json").unlink(),
    "no_model": lambda b, o: (b / "model.onnx").unlink(),
    "model_pickle": lambda b, o: _rehash(b, PICKLE_BYTES),
    "model_changed": lambda b, o: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes() + b"\0"),
    "symbolic_axis": lambda b, o: bundle_symbolic_feature_axis(b),
    "symbolic_wrong_weights": lambda b, o: bundle_symbolic_axis_and_wrong_weights(b),
    "wrong_declared_axis": lambda b, o: bundle_wrong_declared_axis(b),
    "external_data": lambda b, o: bundle_external_data(b),
    "model_symlink": bundle_symlinked_model,
    "json_symlink": bundle_symlinked_json,
    "map_path_relative": lambda b, o: bundle_marker_map_path(b, "settings", "../secret.json"),
    "map_path_absolute": lambda b, o: bundle_marker_map_path(b, "settings", "/etc/passwd"),
    "map_path_input": lambda b, o: bundle_marker_map_path(b, "input", "/etc/hostname"),
    "onnx_file_path": _edit(lambda s: s["onnx"].__setitem__("file", "../model.onnx")),
    "settings_string": _edit(lambda s: s["input"].__setitem__("ingest_settings", "lowpass")),
    "targets_dict": _edit(lambda s: s.__setitem__("targets", {"knee_medial": "N"})),
    "columns_string": _edit(lambda s: s["input"].__setitem__("columns", "grf_x")),
}


def make_bundle_kind(kind: str, good: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    b = copy_bundle(good, folder)
    BUNDLE_KINDS[kind](b, folder)
    return b


# -- dataset manifests ---------------------------------------------------------------------------------------
def _manifest_edit(fn):
    def apply(ds: Path) -> None:
        m = json.loads((ds / "manifest.json").read_text())
        fn(m)
        (ds / "manifest.json").write_text(json.dumps(m))
    return apply


DATASET_KINDS = {
    "feature_absent": _manifest_edit(lambda m: m["feature_sets"]["all"]["columns"].append("no_such_column")),
    "feature_sets_string": _manifest_edit(lambda m: m.__setitem__("feature_sets", "all")),
    "feature_set_string": _manifest_edit(lambda m: m["feature_sets"].__setitem__("all", "columns")),
    "targets_list": _manifest_edit(lambda m: m.__setitem__("targets", ["knee_medial"])),
    "features_string": _manifest_edit(lambda m: m.__setitem__("features", "grf_x")),
    "groups_absent": _manifest_edit(lambda m: m.__setitem__("groups", ["year"])),
    "sources_string": _manifest_edit(lambda m: m.__setitem__("sources", "everything")),
    "manifest_list": lambda ds: (ds / "manifest.json").write_text("[]"),
    "manifest_not_json": lambda ds: (ds / "manifest.json").write_text("{"),
    "manifest_deep": lambda ds: (ds / "manifest.json").write_text("[" * 200_000 + "]" * 200_000),
    "frames_garbage": lambda ds: (ds / "frames.parquet").write_bytes(b"PAR1" + os.urandom(500)),
    "frames_missing": lambda ds: (ds / "frames.parquet").unlink(),
}


def make_dataset_kind(kind: str, good: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "ds"
    shutil.copytree(good, out)
    DATASET_KINDS[kind](out)
    return out
