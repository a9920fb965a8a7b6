"""Model bundles: ONNX == torch for every model, the JSON spec, and refusal of tampered or ill-typed bundles."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest

from gaitforce import cli
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.learn.bundle import BundleError, load_bundle, validate_spec
from gaitforce.learn.models import list_models
from gaitforce.learn.training import Estimator

ROWS = 4


def make_dataset(n_stances=8, frames=40, *, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    cols = [f"f{i}_{a}" for i in range(ROWS) for a in "xyz"]
    x = rng.normal(size=(n_stances * frames, ROWS * 3))
    sid = np.repeat(np.arange(n_stances), frames)
    df = pd.DataFrame({
        "stance_id": [f"s{seed}_{i}" for i in sid], "trial": [f"t{seed}_{i}" for i in sid],
        "subject": [f"p{i % 3}" for i in sid], "side": "right", "frame": np.tile(np.arange(frames), n_stances),
        "time": np.tile(np.arange(frames) / 120.0, n_stances), "stance_pct": np.tile(np.linspace(0, 100, frames),
                                                                                  n_stances), "mass": 70.0,
    })
    df[cols] = x
    df["knee_medial"] = 900.0 + 300.0 * np.tanh(x[:, 0] - x[:, 4]) + 40.0 * x[:, 7]
    df["emg_soleus"] = 0.5 + 0.2 * np.tanh(x[:, 3])
    settings = {"marker_map": {"lasis": "LASI"}, "lowpass_cutoff": 10.0, "targets": ["knee_medial"]}
    manifest = {"features": cols, "feature_sets": {"all": {"columns": cols, "shape": [ROWS, 3]}},
                "targets": {"knee_medial": "N", "emg_soleus": "1"}, "settings": settings,
                "sources": [{"path": f"/d/t{seed}_{i}.mat", "sha256": "a" * 64} for i in range(n_stances)]}
    return Dataset(df, manifest)


TARGETS = ("knee_medial", "emg_soleus")
SMALL = {"paper-cnn": dict(channels=4, fc_width=8), "mlp": dict(width=16), "ridge": {}}


@pytest.fixture(scope="module")
def data():
    return make_dataset(), make_dataset(3, seed=1)


@pytest.fixture(scope="module")
def ridge_bundle(tmp_path_factory, data):
    train, val = data
    est = Estimator("ridge", targets=TARGETS, threads=1, verbose=False).fit(train, val)
    path = est.save(tmp_path_factory.mktemp("b") / "ridge", metrics={"test": {"knee_medial": {"rmse": 12.5}}})
    return est, path


@pytest.mark.parametrize("model", list_models())
def test_onnx_predictions_equal_torch(model, data, tmp_path):
    train, val = data
    est = Estimator(model, targets=TARGETS, epochs=3, threads=1, verbose=False, **SMALL.get(model, {}))
    est.fit(train, val)
    bundle = load_bundle(est.save(tmp_path / model))
    x = val.frames[bundle.columns].to_numpy(np.float32)
    torch_pred = est.predict(val)
    onnx_pred = bundle.predict_features(x)
    assert onnx_pred.shape == (len(val), 2)
    # float32 graphs: agreement to ~1e-6 of each target's scale
    np.testing.assert_allclose(onnx_pred[:, 0], torch_pred[:, 0], atol=1e-3)  # N, values near 900
    np.testing.assert_allclose(onnx_pred[:, 1], torch_pred[:, 1], atol=1e-6)
    # the batch axis is dynamic: one row gives the same numbers as inside a batch
    np.testing.assert_allclose(bundle.predict_features(x[5:6]), onnx_pred[5:6], atol=1e-4)


def test_bundle_json_records_what_is_needed(ridge_bundle, data):
    est, path = ridge_bundle
    spec = json.loads((path / "bundle.json").read_text())
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "model.onnx", "model.safetensors"]
    assert spec["schema_version"] == 1 and spec["format"] == "gaitforce-bundle"
    # the weights beside the graph (for exact gradients), hashed like it
    import hashlib

    assert spec["weights"]["format"] == "safetensors" and spec["weights"]["module"] == "FoldedModel"
    assert spec["weights"]["sha256"] == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert spec["model"]["name"] == "ridge" and "alphas" in spec["model"]["hyperparameters"]
    assert spec["model"]["training"]["chosen_alpha"] == [est.nets_[0].alpha_]
    inp = spec["input"]
    assert inp["columns"] == data[0].features and inp["shape"] == [ROWS, 3] and inp["feature_set"] == "all"
    assert inp["marker_map"] == {"lasis": "LASI"} and inp["ingest_settings"]["lowpass_cutoff"] == 10.0
    assert spec["targets"] == [{"name": "knee_medial", "unit": "N"}, {"name": "emg_soleus", "unit": "1"}]
    assert spec["sample_rate"] == pytest.approx(120.0) and spec["training_data"]["sample_rates"] == [120.0]
    td = spec["training_data"]
    assert td["subjects"] == ["p0", "p1", "p2"] and td["stances"] == 8 and td["frames"] == 320
    assert len(td["sources"]) == 8 and td["validation"]["stances"] == 3
    assert spec["metrics"] == {"test": {"knee_medial": {"rmse": 12.5}}}
    assert {"torch", "onnx", "onnxruntime", "numpy", "gaitforce"} <= set(spec["versions"])
    import hashlib

    assert spec["onnx"]["sha256"] == hashlib.sha256((path / "model.onnx").read_bytes()).hexdigest()
    assert spec["onnx"]["opset"] == 18


def test_load_bundle_runs_no_pickle(ridge_bundle, monkeypatch, data):
    import torch

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    est, path = ridge_bundle
    bundle = load_bundle(path)
    val = data[1]
    np.testing.assert_allclose(bundle.predict_frames(val.frames).to_numpy(), est.predict(val), atol=1e-3)
    assert bundle.session.get_session_options().intra_op_num_threads == 1


def test_nan_feature_row_gives_nan_and_shape_is_checked(ridge_bundle, data):
    _, path = ridge_bundle
    bundle = load_bundle(path)
    x = data[1].frames[bundle.columns].to_numpy(np.float32)[:4]
    x[1, 2] = np.nan
    y = bundle.predict_features(x)
    assert np.isnan(y[1]).all() and np.isfinite(np.delete(y, 1, axis=0)).all()
    with pytest.raises(GaitforceError, match=r"features must be \(N, 12\)"):
        bundle.predict_features(x[:, :5])


def _copy(path, tmp_path):
    return shutil.copytree(path, tmp_path / "copy")


def test_tampered_onnx_is_refused(ridge_bundle, tmp_path):
    b = _copy(ridge_bundle[1], tmp_path)
    data = bytearray((b / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(b)


def test_non_standard_operator_is_refused_even_with_a_matching_hash(ridge_bundle, tmp_path):
    import hashlib

    import onnx

    b = _copy(ridge_bundle[1], tmp_path)
    model = onnx.load(str(b / "model.onnx"))
    node = model.graph.node[0]
    node.domain = "com.example.evil"
    data = model.SerializeToString()
    (b / "model.onnx").write_bytes(data)
    spec = json.loads((b / "bundle.json").read_text())
    spec["onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="non-standard operator domains"):
        load_bundle(b)
    garbage = b"not a protobuf at all" * 10
    (b / "model.onnx").write_bytes(garbage)
    spec["onnx"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="not a valid ONNX model"):
        load_bundle(b)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["input"].__setitem__("columns", "f0_x,f0_y"), "input.columns must be list"),
    (lambda s: s.__setitem__("schema_version", "1"), "schema_version must be int"),
    (lambda s: s.__setitem__("schema_version", 99), "not supported"),
    (lambda s: s["targets"][0].pop("unit"), r"targets\[0\].unit is missing"),
    (lambda s: s["onnx"].__setitem__("file", "../../etc/model.onnx"), "plain file name"),
    (lambda s: s["input"].__setitem__("shape", [5, 3]), "does not hold 12 columns"),
    (lambda s: s.__setitem__("sample_rate", "fast"), "sample_rate must be int/float"),
    (lambda s: s["onnx"].__setitem__("sha256", 12), "onnx.sha256 must be str"),
    (lambda s: s.pop("model"), "bundle.model is missing"),
    (lambda s: s["targets"].append({"name": "extra", "unit": "N"}), "2 outputs, bundle.json lists 3"),
])
def test_wrong_json_fails_with_one_clear_error(ridge_bundle, tmp_path, edit, message):
    b = _copy(ridge_bundle[1], tmp_path)
    spec = json.loads((b / "bundle.json").read_text())
    edit(spec)
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=message) as err:
        load_bundle(b)
    assert "\n" not in err.value.line()


def test_not_json_or_not_a_bundle(ridge_bundle, tmp_path):
    b = _copy(ridge_bundle[1], tmp_path)
    (b / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(b)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "absent")
    with pytest.raises(BundleError, match="top level must be an object"):
        validate_spec([1, 2])


def test_cli_reports_a_bad_bundle_in_one_line(ridge_bundle, tmp_path, capsys):
    b = _copy(ridge_bundle[1], tmp_path)
    (b / "model.onnx").write_bytes(b"x")
    assert cli.main(["predict", str(b), str(tmp_path / "t.c3d"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gaitforce: error:") and "SHA-256" in err and len(err.splitlines()) == 1


@pytest.mark.realdata
def test_predict_on_grand_challenge_files(gc_dir, tmp_path, capsys):
    """Train ridge on 4 real stances, then `gaitforce predict` one file plus a bad one: the good file's
    per-stance STO/CSV hold exactly the bundle's predictions on the ingest rows; the bad one is listed."""
    from gaitforce.data.ingest import IngestSettings, build_dataset, trial_frames
    from gaitforce.io import read
    from gaitforce.io.sto import read_sto_table

    comp = gc_dir / "competitions"
    files = [comp / f"JW__GC4__jw_ngait_og{i}.mat" for i in (1, 2)] + [comp / "PS__GC5__PS_ngait_og_ss1.mat",
                                                                         comp / "SC__GC3__SC_ngait_og5.mat"]
    ds, failures = build_dataset(files, settings=IngestSettings(), progress=False)
    assert not failures
    est = Estimator("ridge", targets=("knee_medial",), verbose=False).fit(ds)
    bpath = est.save(tmp_path / "b")
    target = comp / "JW__GC4__jw_ngait_og3.mat"
    bad = tmp_path / "broken.c3d"
    bad.write_bytes(b"\x00" * 100)
    rc = cli.main(["predict", str(bpath), str(target), str(bad), "--out", str(tmp_path / "out")])
    assert rc == 1
    captured = capsys.readouterr()
    assert "broken.c3d" in captured.err and "1 file(s) failed" in captured.err
    table = pd.read_csv(tmp_path / "out" / "JW__GC4__jw_ngait_og3_stance0.csv")
    frames = trial_frames(read(target), settings=IngestSettings.from_dict(load_bundle(bpath).ingest_settings))
    expected = load_bundle(bpath).predict_features(frames[est.columns_].to_numpy(np.float32))[:, 0]
    np.testing.assert_allclose(table["knee_medial"], expected, rtol=1e-6)
    np.testing.assert_allclose(table["knee_medial_measured"], frames["knee_medial"], rtol=1e-9)
    sto, _ = read_sto_table(tmp_path / "out" / "JW__GC4__jw_ngait_og3_stance0.sto")
    np.testing.assert_allclose(sto["knee_medial"], expected, rtol=1e-6)
    assert table["knee_medial_measured"].max() == pytest.approx(1025, abs=60)  # README: og3 peaks at 1025 N


def test_predict_notes_a_frame_rate_the_model_never_saw(capsys):
    from types import SimpleNamespace

    from gaitforce.learn.predict import _note_rate
    from gaitforce.trial import Trial

    bundle = SimpleNamespace(spec={"training_data": {"sample_rates": [120.0, 200.0]}})
    _note_rate(bundle, Trial(time=np.arange(10) / 100.0), "a.c3d")
    assert "100 Hz, the model was trained on 120, 200 Hz" in capsys.readouterr().err
    _note_rate(bundle, Trial(time=np.arange(10) / 120.0), "b.c3d")
    assert capsys.readouterr().err == ""


def test_predict_never_overwrites_one_files_outputs_with_anothers(ridge_bundle, data, tmp_path, monkeypatch, capsys):
    """Two files with the same trial name (subject folders a/ and b/ each holding walk.c3d): the first is
    written, the second fails in one line instead of silently replacing the first's predictions."""
    import gaitforce.data.ingest
    import gaitforce.io
    from gaitforce.trial import Trial

    _, val = data
    one = val.frames[val.frames["stance_id"] == val.stance_ids[0]].assign(trial="walk").reset_index(drop=True)
    monkeypatch.setattr(gaitforce.io, "read", lambda path: Trial(time=np.arange(40) / 120.0, source=str(path)))
    monkeypatch.setattr(gaitforce.data.ingest, "trial_frames", lambda trial, **kw: one)
    files = [tmp_path / "a" / "walk.c3d", tmp_path / "b" / "walk.c3d"]
    rc = cli.main(["predict", str(ridge_bundle[1]), *map(str, files), "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 file(s) failed" in err and f"{files[1]}: its output walk_stance0.csv would overwrite" in err
    table = pd.read_csv(tmp_path / "out" / "walk_stance0.csv")
    assert len(table) == 40 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["walk_stance0.csv",
                                                                                          "walk_stance0.sto"]


# -- int8 quantised bundles ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, data):
    """A small paper-cnn bundle with an int8 model calibrated on its training frames, checked on val."""
    from gaitforce.learn.quantize import quantize_bundle

    train, val = data
    est = Estimator("paper-cnn", targets=TARGETS, epochs=3, threads=1, verbose=False, channels=4, fc_width=8)
    est.fit(train, val)
    path = est.save(tmp_path_factory.mktemp("q") / "cnn")
    entry = quantize_bundle(path, est.features_of(train), held_out=est.features_of(val), held_out_name="val",
                            test_rmse={"knee_medial": 1e9, "emg_soleus": 1e9}, max_frames=200)
    return est, path, entry


def test_int8_model_is_written_beside_fp32_and_recorded(int8_bundle, data):
    import hashlib

    import onnx

    est, path, entry = int8_bundle
    spec = json.loads((path / "bundle.json").read_text())
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "model.int8.onnx", "model.onnx",
                                                      "model.safetensors"]
    assert spec["quantized"]["int8"] == entry and spec["default_precision"] == "fp32"  # make_default=False
    assert entry["sha256"] == hashlib.sha256((path / "model.int8.onnx").read_bytes()).hexdigest()
    assert entry["opset"] == 18 and entry["scheme"]["per_channel"] and entry["scheme"]["format"] == "QDQ"
    assert len(entry["scheme"]["kept_fp32"]) == 1  # the first convolution sees the raw feature image
    cal = entry["calibration"]
    assert cal["frames"] == 200 and cal["of_frames"] == len(data[0]) and len(cal["feature_min"]) == 3 * ROWS
    # the calibration frames are a subset of the training frames: their range lies inside the training range
    x = est.features_of(data[0])
    assert np.all(np.array(cal["feature_min"]) >= x.min(0)) and np.all(np.array(cal["feature_max"]) <= x.max(0))
    model = onnx.load(str(path / "model.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and {n.domain for n in model.graph.node} == {""}
    w = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert w, "weights are stored as int8"
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs[0].name == entry["scheme"]["kept_fp32"][0]
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(convs[0].input[1]) != "DequantizeLinear"  # float32 weight: an initializer
    assert producers.get(convs[1].input[1]) == "DequantizeLinear"  # int8 weight


def test_int8_predictions_agree_with_fp32_and_the_recorded_differences(int8_bundle, data):
    _, path, entry = int8_bundle
    fp32, int8 = load_bundle(path), load_bundle(path, precision="int8")
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    x = data[1].frames[fp32.columns].to_numpy(np.float32)
    a, b = fp32.predict_features(x), int8.predict_features(x)
    assert not np.array_equal(a, b)  # it really is another model
    d = b.astype(np.float64) - a
    agree = entry["agreement"]
    assert agree["on"] == "val" and agree["frames"] == len(x)
    for k, name in enumerate(TARGETS):
        row = agree["targets"][name]
        assert row["max_abs_diff"] == pytest.approx(np.abs(d[:, k]).max(), rel=1e-5)
        assert row["rms_diff"] == pytest.approx(np.sqrt(np.mean(d[:, k] ** 2)), rel=1e-5)
        assert row["as_accurate"] is True  # against an RMSE of 1e9
        # int8 error is small against the target's spread (8-bit: ~1/256 of each tensor's range)
        assert row["rms_diff"] < 0.02 * data[0].frames[name].std()
    x[2, 0] = np.nan  # the NaN-row rule holds for the int8 model too
    assert np.isnan(int8.predict_features(x)[2]).all()


def test_int8_default_follows_the_accuracy_rule(int8_bundle, tmp_path):
    from gaitforce.learn.quantize import quantize_bundle

    est, path, _ = int8_bundle
    b = _copy(path, tmp_path)
    x = est.features_of(make_dataset(2, seed=5))
    # an RMSE of 1e-9 makes any int8 difference too large: fp32 stays the default
    entry = quantize_bundle(b, x, held_out=x[::2], test_rmse={"knee_medial": 1e-9, "emg_soleus": 1e-9},
                            make_default="if-accurate")
    assert entry["agreement"]["targets"]["knee_medial"]["as_accurate"] is False
    assert load_bundle(b).precision == "fp32"
    entry = quantize_bundle(b, x, held_out=x[::2], test_rmse={"knee_medial": 1e9, "emg_soleus": 1e9},
                            make_default="if-accurate")
    assert load_bundle(b).precision == "int8" and load_bundle(b, precision="fp32").precision == "fp32"
    # without held-out frames the check runs on the calibration frames and gives no verdict
    entry = quantize_bundle(b, x, test_rmse={"knee_medial": 1e9})
    assert entry["agreement"]["on"] == "calibration"
    assert "as_accurate" not in entry["agreement"]["targets"]["knee_medial"]
    with pytest.raises(GaitforceError, match=r"calibration features must be \(N, 12\)"):
        quantize_bundle(b, x[:, :3])
    with pytest.raises(GaitforceError, match="no calibration frame"):
        quantize_bundle(b, np.full((4, 12), np.nan))


def test_int8_model_is_checked_like_fp32(int8_bundle, ridge_bundle, tmp_path):
    import hashlib

    import onnx

    from gaitforce.learn.quantize import quantize_bundle

    _, path, _ = int8_bundle
    b = _copy(path, tmp_path)
    data = bytearray((b / "model.int8.onnx").read_bytes())
    data[-10] ^= 0xFF
    (b / "model.int8.onnx").write_bytes(bytes(data))
    load_bundle(b)  # the fp32 model is untouched and still opens
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(b, precision="int8")
    model = onnx.load(str(path / "model.int8.onnx"))
    model.graph.node[0].domain = "com.example.evil"
    data = model.SerializeToString()
    (b / "model.int8.onnx").write_bytes(data)
    spec = json.loads((b / "bundle.json").read_text())
    spec["quantized"]["int8"]["sha256"] = hashlib.sha256(data).hexdigest()
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="non-standard operator domains"):
        load_bundle(b, precision="int8")
    with pytest.raises(BundleError, match="no int8 model"):
        load_bundle(ridge_bundle[1], precision="int8")
    with pytest.raises(GaitforceError, match="precision must be one of fp32, int8"):
        load_bundle(ridge_bundle[1], precision="fp16")
    # ridge is one matrix product, which stays float32: nothing to quantise, said plainly
    r = _copy(ridge_bundle[1], tmp_path / "r")
    with pytest.raises(GaitforceError, match="nothing to quantise"):
        quantize_bundle(r, ridge_bundle[0].features_of(make_dataset(2)))
    assert not (r / "model.int8.onnx").exists() and "quantized" not in json.loads((r / "bundle.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.__setitem__("default_precision", "int8"), "has no int8 model"),
    (lambda s: s.__setitem__("default_precision", "fp16"), "default_precision must be one of"),
    (lambda s: s.__setitem__("quantized", {"int4": {}}), "unknown precisions"),
    (lambda s: s.__setitem__("quantized", {"int8": {"file": "model.onnx", "sha256": "a" * 64, "opset": 18,
                                                     "calibration": {}}}), "not the fp32 model's"),
    (lambda s: s.__setitem__("quantized", {"int8": {"file": "../x.onnx", "sha256": "a" * 64, "opset": 18,
                                                     "calibration": {}}}), "plain file name"),
    (lambda s: s.__setitem__("quantized", {"int8": {"file": "q.onnx", "sha256": "", "opset": 18,
                                                     "calibration": {}}}), "64 hex digits"),
])
def test_wrong_quantized_json_fails(ridge_bundle, tmp_path, edit, message):
    b = _copy(ridge_bundle[1], tmp_path)
    spec = json.loads((b / "bundle.json").read_text())
    edit(spec)
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=message):
        load_bundle(b)


def test_cli_train_quantize_int8(tmp_path, capsys):
    ds = make_dataset(10)
    ds.save(tmp_path / "ds")
    rc = cli.main(["train", str(tmp_path / "ds"), "--out", str(tmp_path / "b"), "--epochs", "2", "--quiet",
                   "--threads", "1", "--param", "channels=4", "--param", "fc_width=8", "--quantize", "int8"])
    assert rc == 0
    err = capsys.readouterr().err
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    agree = spec["quantized"]["int8"]["agreement"]
    row = agree["targets"]["knee_medial"]
    assert agree["on"] == "test" and agree["frames"] == len(spec["metrics"]["stances"]["test"]) * 40
    assert row["fp32_test_rmse"] == pytest.approx(spec["metrics"]["test"]["knee_medial"]["frame_rmse"])
    assert spec["default_precision"] == ("int8" if row["as_accurate"] else "fp32")
    assert f"int8 vs fp32 on {agree['frames']} test frames, knee_medial" in err
    assert load_bundle(tmp_path / "b").precision == spec["default_precision"]


# -- body-weight-normalised models: the body weight is the graph's second input ------------------------
def bw_dataset(n_stances=8, *, seed=0) -> Dataset:
    """:func:`make_dataset` with the first marker row as GRF columns (N, scaled with the subject) and masses
    of 60 / 85 / 110 kg by subject."""
    ds = make_dataset(n_stances, seed=seed)
    fr = ds.frames.rename(columns={f"f0_{a}": f"grf_{a}" for a in "xyz"})
    fr["mass"] = fr["subject"].map({"p0": 60.0, "p1": 85.0, "p2": 110.0})
    fr[["grf_x", "grf_y", "grf_z"]] *= fr[["mass"]].to_numpy() * 9.81
    fr["knee_medial"] *= fr["mass"] / 70.0
    cols = [c.replace("f0_", "grf_") for c in ds.manifest["features"]]
    manifest = {**ds.manifest, "features": cols, "feature_sets": {"all": {"columns": cols, "shape": [ROWS, 3]}}}
    return Dataset(fr, manifest)


@pytest.fixture(scope="module")
def bw_data():
    return bw_dataset(), bw_dataset(3, seed=1)


@pytest.mark.parametrize("model", ["ridge", "paper-cnn"])
def test_body_weight_bundle_predicts_as_torch(model, bw_data, tmp_path):
    train, val = bw_data
    est = Estimator(model, targets=TARGETS, epochs=3, threads=1, verbose=False, body_weight_norm=True,
                    **SMALL.get(model, {})).fit(train, val)
    bundle = load_bundle(est.save(tmp_path / model))
    spec = json.loads((tmp_path / model / "bundle.json").read_text())
    assert spec["input"]["body_weight"] is True and spec["input"]["body_weight_unit"] == "N"
    assert spec["input"]["body_weight_divides"] == ["grf_x", "grf_y", "grf_z"]
    assert spec["input"]["body_weight_multiplies"] == ["knee_medial"]  # EMG (unit 1) is not scaled
    assert [i.name for i in bundle.session.get_inputs()] == ["features", "body_weight"]
    x = val.frames[bundle.columns].to_numpy(np.float32)
    bw = val.frames["mass"].to_numpy() * 9.81
    torch_pred = est.predict(val)
    onnx_pred = bundle.predict_features(x, body_weight=bw)
    np.testing.assert_allclose(onnx_pred[:, 0], torch_pred[:, 0], atol=2e-3)  # N, values near 1000
    np.testing.assert_allclose(onnx_pred[:, 1], torch_pred[:, 1], atol=1e-6)
    np.testing.assert_array_equal(bundle.predict_features(x, body_weight=bw[:, None]), onnx_pred)
    # predict_frames reads the frames' mass column (kg x 9.81)
    np.testing.assert_array_equal(bundle.predict_frames(val.frames).to_numpy(), onnx_pred)
    # the graph scales: the same movement at twice the body weight (forces doubled) gives twice the N target
    one = bundle.predict_features(x[:6], body_weight=600.0)
    f = np.array(bundle.spec["input"]["body_weight_divides"])
    x2 = x[:6].copy()
    x2[:, np.isin(bundle.columns, f)] *= 2
    two = bundle.predict_features(x2, body_weight=1200.0)
    np.testing.assert_allclose(two[:, 0], 2 * one[:, 0], rtol=1e-5)
    np.testing.assert_allclose(two[:, 1], one[:, 1], atol=1e-5)


def test_body_weight_bundle_divides_the_knee_moments_not_their_lever_arms(bw_data, tmp_path):
    """A bundle reading the knee moments (N m) divides them by body weight in its graph, like the GRF; the lever
    arms (m) are not divided: twice the body weight with forces and moments doubled gives twice the force."""
    train, _ = bw_data
    ren = {"f1_x": "knee_add_moment", "f1_y": "knee_add_lever", "f1_z": "knee_flex_moment"}
    fr = train.frames.rename(columns=ren)
    fr[["knee_add_moment", "knee_flex_moment"]] *= fr[["mass"]].to_numpy() * 9.81 * 0.05
    cols = [ren.get(c, c) for c in train.manifest["features"]]
    ds = Dataset(fr, {**train.manifest, "features": cols, "feature_sets": {"all": {"columns": cols, "shape": [ROWS, 3]}}})
    est = Estimator("ridge", targets=("knee_medial",), threads=1, verbose=False, body_weight_norm=True).fit(ds)
    bundle = load_bundle(est.save(tmp_path / "m"))
    assert bundle.spec["input"]["body_weight_divides"] == ["grf_x", "grf_y", "grf_z", "knee_add_moment",
                                                           "knee_flex_moment"]
    x = fr[bundle.columns].to_numpy(np.float32)[:6]
    np.testing.assert_allclose(bundle.predict_features(x, body_weight=fr["mass"].to_numpy()[:6] * 9.81)[:, 0],
                               est.predict(ds)[:6, 0], rtol=1e-4)
    x2 = x.copy()
    x2[:, np.isin(bundle.columns, bundle.spec["input"]["body_weight_divides"])] *= 2
    np.testing.assert_allclose(bundle.predict_features(x2, body_weight=1200.0)[:, 0],
                               2 * bundle.predict_features(x, body_weight=600.0)[:, 0], rtol=1e-5)


def test_body_weight_bundle_needs_a_body_weight_and_rows_without_one_are_nan(bw_data, tmp_path):
    train, val = bw_data
    est = Estimator("ridge", targets=TARGETS, threads=1, verbose=False, body_weight_norm=True).fit(train, val)
    bundle = load_bundle(est.save(tmp_path / "b"))
    x = val.frames[bundle.columns].to_numpy(np.float32)[:4]
    with pytest.raises(GaitforceError, match="body weight"):
        bundle.predict_features(x)
    with pytest.raises(GaitforceError, match="one value or one per row"):
        bundle.predict_features(x, body_weight=np.ones(3) * 700)
    y = bundle.predict_features(x, body_weight=[700.0, np.nan, 0.0, 700.0])
    assert np.isnan(y[1:3]).all() and np.isfinite(y[[0, 3]]).all()
    # one body weight fixed for a stream: the wrapped session feeds it to every run
    fixed = bundle.with_body_weight(700.0)
    np.testing.assert_array_equal(fixed.predict_features(x), bundle.predict_features(x, body_weight=700.0))
    raw = fixed.session.run(["targets"], {"features": x})[0]
    np.testing.assert_allclose(raw, bundle.predict_features(x, body_weight=700.0), rtol=1e-6)
    with pytest.raises(GaitforceError, match="positive"):
        bundle.with_body_weight(-1.0)


def test_bundle_without_body_weight_ignores_one(ridge_bundle, data):
    est, path = ridge_bundle
    bundle = load_bundle(path)
    assert not bundle.needs_body_weight and bundle.with_body_weight(700.0) is bundle
    x = data[1].frames[bundle.columns].to_numpy(np.float32)
    np.testing.assert_array_equal(bundle.predict_features(x, body_weight=700.0), bundle.predict_features(x))
    assert "body_weight" not in bundle.spec["input"] and "body_weight_input" not in bundle.spec["onnx"]


def test_body_weight_bundle_json_is_checked(bw_data, tmp_path):
    train, _ = bw_data
    path = Estimator("ridge", threads=1, verbose=False, body_weight_norm=True).fit(train).save(tmp_path / "b")
    spec = json.loads((path / "bundle.json").read_text())
    for edit, message in ((lambda s: s["onnx"].pop("body_weight_input"), "given together"),
                          (lambda s: s["input"].update(body_weight_unit="kg"), "body_weight_unit must be 'N'"),
                          (lambda s: s["input"].pop("body_weight"), "given together")):
        bad = json.loads(json.dumps(spec))
        edit(bad)
        (path / "bundle.json").write_text(json.dumps(bad))
        with pytest.raises(BundleError, match=message):
            load_bundle(path)


def test_body_weight_bundle_quantises_with_calibration_body_weights(bw_data, tmp_path):
    from gaitforce.learn.quantize import quantize_bundle

    train, val = bw_data
    est = Estimator("paper-cnn", targets=TARGETS, epochs=3, threads=1, verbose=False, body_weight_norm=True,
                    channels=4, fc_width=8).fit(train, val)
    path = est.save(tmp_path / "b")
    with pytest.raises(GaitforceError, match="body weights"):
        quantize_bundle(path, est.features_of(train))
    bw_train, bw_val = train.frames["mass"].to_numpy() * 9.81, val.frames["mass"].to_numpy() * 9.81
    entry = quantize_bundle(path, est.features_of(train), calibration_body_weight=bw_train,
                            held_out=est.features_of(val), held_out_body_weight=bw_val, held_out_name="val",
                            test_rmse={"knee_medial": 1e9, "emg_soleus": 1e9}, max_frames=200)
    fp32, int8 = load_bundle(path, precision="fp32"), load_bundle(path, precision="int8")
    a = fp32.predict_features(est.features_of(val), body_weight=bw_val)
    b = int8.predict_features(est.features_of(val), body_weight=bw_val)
    d = np.abs(b - a)
    assert entry["agreement"]["frames"] == len(val)
    assert d[:, 0].max() == pytest.approx(entry["agreement"]["targets"]["knee_medial"]["max_abs_diff"], rel=1e-4)
    assert 0 < d[:, 0].max() < 0.05 * np.abs(a[:, 0]).max()  # quantised, yet close


def test_stream_pipeline_runs_a_body_weight_bundle_at_the_fixed_body_weight(tmp_path):
    """The online pipeline calls the bundle's session itself: with_body_weight feeds the subject's weight."""
    from builders import linear_dataset

    from gaitforce.data import features, synthetic
    from gaitforce.stream.layout import StreamLayout
    from gaitforce.stream.online import OnlinePipeline

    ds = linear_dataset()
    cols = features.feature_columns()
    assert ds.frames["mass"].notna().all()
    est = Estimator("ridge", targets=("knee_medial",), threads=1, verbose=False, body_weight_norm=True).fit(ds)
    bundle = load_bundle(est.save(tmp_path / "b"))
    walk = synthetic.generate_trial(seed=0, subject=3, trial=1)
    bw = walk.subject.mass * 9.81
    pipe = OnlinePipeline(bundle.with_body_weight(bw), StreamLayout.for_trial(walk), rate=walk.rate)
    pipe.features_log = []
    rows = {t: r.copy() for t, r in ((t, pipe.process(x, t)) for x, t in
                                     zip(StreamLayout.trial_samples(walk), walk.time)) if r is not None}
    x = np.array([f for _, _, f, *_ in pipe.features_log])[:, [cols.index(c) for c in bundle.columns]]
    want = bundle.predict_features(x, body_weight=bw)[:, 0]
    got = [rows[t][0] if side == "right" else rows[t][1] for t, side, *_ in pipe.features_log]
    assert len(got) > 50 and np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # and the weight matters: at another body weight the same features give other forces
    assert not np.allclose(bundle.predict_features(x, body_weight=1.3 * bw)[:, 0], want, rtol=1e-3)


# -- ensembles: one stacked graph, mean + spread, a calibrated interval (issue 17 item 4) --------------------
@pytest.fixture(scope="module")
def ensemble_bundle(tmp_path_factory):
    from gaitforce.learn.ensemble import EnsembleEstimator

    train, val = make_dataset(), make_dataset(12, seed=1)
    ens = EnsembleEstimator("mlp", members=3, targets=TARGETS, epochs=20, threads=1, verbose=False, width=16)
    with _quiet():
        ens.fit(train, val)
    path = ens.save(tmp_path_factory.mktemp("e") / "ens")
    return ens, path, val


def _quiet():
    """No collapse warnings from the tiny test networks (their collapse is not what these tests check)."""
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def test_ensemble_bundle_is_one_graph_giving_the_members_mean_and_spread(ensemble_bundle):
    ens, path, val = ensemble_bundle
    bundle = load_bundle(path)
    assert bundle.is_ensemble and bundle.has_interval and bundle.interval_level == pytest.approx(0.9)
    assert [o.name for o in bundle.session.get_outputs()] == ["targets", "spread"]
    x = val.frames[bundle.columns].to_numpy(np.float32)
    members = np.stack([m.predict(val) for m in ens.members_])
    assert len(ens.members_) == 3 and [m.seed for m in ens.members_] == [0, 1, 2]
    assert np.ptp(members[:, :, 0], axis=0).max() > 1.0  # different seeds: members differ
    mean, spread = bundle.predict_spread_features(x)
    np.testing.assert_allclose(mean[:, 0], members[:, :, 0].mean(axis=0), atol=2e-3)
    np.testing.assert_allclose(spread[:, 0], members[:, :, 0].std(axis=0), atol=2e-3)
    np.testing.assert_allclose(mean[:, 1], members[:, :, 1].mean(axis=0), atol=1e-5)
    # a reader that knows nothing of ensembles gets the mean from the usual output
    np.testing.assert_array_equal(bundle.predict_features(x), mean)
    # the interval from the bundle equals the estimator's, and is mean -+ q (spread + eps) with the stored q
    m2, lo, hi = bundle.predict_interval_features(x)
    _, elo, ehi = ens.predict_interval(val)
    np.testing.assert_allclose(lo[:, 0], elo[:, 0], atol=5e-2)
    np.testing.assert_allclose(hi[:, 1], ehi[:, 1], atol=1e-4)
    spec = json.loads((path / "bundle.json").read_text())
    q = spec["uncertainty"]["targets"]["knee_medial"]["q"]
    eps = spec["uncertainty"]["targets"]["knee_medial"]["eps"]
    np.testing.assert_allclose(hi[:, 0] - m2[:, 0], q * (spread[:, 0] + eps), rtol=1e-4)
    assert spec["ensemble"]["members"] == 3 and spec["ensemble"]["seeds"] == [0, 1, 2]
    assert spec["onnx"]["spread_output"] == "spread" and spec["weights"]["module"] == "EnsembleFolded"
    assert spec["uncertainty"]["calibration"] == {"set": "validation", "stances": 12, "frames": 480,
                                                  "grouping": "stance"}
    assert eps == pytest.approx(0.01 * ens.members_[0].y_unit_scale_[0], rel=1e-6)
    # one frame in a batch and alone: the same numbers (the batch axis of the stacked graph is dynamic)
    one = bundle.predict_spread_features(x[7:8])
    np.testing.assert_allclose(one[1], spread[7:8], atol=1e-4)
    # predict_frames: the bounds as <target>_lo / _hi
    df = bundle.predict_frames(val.frames, interval=True)
    assert list(df.columns) == ["knee_medial", "emg_soleus", "knee_medial_lo", "knee_medial_hi", "emg_soleus_lo",
                                "emg_soleus_hi"]
    np.testing.assert_array_equal(df["knee_medial_lo"], lo[:, 0])


def test_ensemble_q_is_the_conformal_quantile_of_the_validation_scores(ensemble_bundle):
    from gaitforce.evaluate import conformal as cf

    ens, _, val = ensemble_bundle
    mean, spread = ens.predict_spread(val)
    y = val.frames[list(TARGETS)].to_numpy(np.float64)
    sid = val.frames["stance_id"].to_numpy()
    for k, t in enumerate(TARGETS):
        scores = np.abs(y[:, k] - mean[:, k]) / (spread[:, k] + ens.eps_[k])
        want = cf.conformal_quantile(scores, 0.1, groups=sid)
        assert ens.uncertainty_["targets"][t]["q"] == pytest.approx(want)
        # in sample, by construction: the 12 stances' mean frame coverage is (13/12) x the cumulative weight at q,
        # so at least 0.9 x 13/12 (less one boundary frame that rounding may put outside)
        _, lo, hi = ens.predict_interval(val)
        got = cf.interval_coverage(y[:, k], lo[:, k], hi[:, k], sid)["stance_coverage"]
        assert got >= 0.9 * 13 / 12 - 1 / 480 - 1e-9


def test_ensemble_with_too_few_calibration_stances_has_no_interval(tmp_path):
    from gaitforce.learn.ensemble import EnsembleEstimator

    train, val = make_dataset(), make_dataset(8, seed=1)  # 8 stances: weight 8/9 < 0.9
    ens = EnsembleEstimator("ridge", members=2, targets=("knee_medial",), threads=1, verbose=False).fit(train, val)
    assert ens.uncertainty_["targets"]["knee_medial"]["q"] is None
    bundle = load_bundle(ens.save(tmp_path / "b"))
    assert bundle.is_ensemble and not bundle.has_interval
    assert list(bundle.predict_frames(val.frames, interval=True).columns) == ["knee_medial"]
    _, lo, _ = bundle.predict_interval_features(val.frames[bundle.columns].to_numpy(np.float32))
    assert np.isnan(lo).all()
    with pytest.raises(GaitforceError, match="at least 2 members"):
        EnsembleEstimator("ridge", members=1)



def test_leave_one_group_out_members_each_miss_one_group_and_stack_into_one_graph(tmp_path):
    """leave_out="subject": one member per training subject, each fitted without that subject's stances (ridge:
    deterministic, so each member equals a ridge fitted on those stances alone); the bundle is one graph whose
    spread is the members' SD; an additive c is stored as eps and scales the interval."""
    from gaitforce.evaluate import conformal as cf
    from gaitforce.learn.ensemble import EnsembleEstimator

    train, val = make_dataset(9), make_dataset(12, seed=1)  # subjects p0, p1, p2 in both
    ens = EnsembleEstimator("ridge", leave_out="subject", targets=("knee_medial",), threads=1, verbose=False)
    ens.fit(train, val, calibrate=False)
    assert ens.n_members == 3 and ens.left_out_ == ["p0", "p1", "p2"] and ens.member_seeds == [0, 1, 2]
    st = train.stances()
    x = val.frames[ens.columns_].to_numpy(np.float32)
    for i, subject in enumerate(["p0", "p1", "p2"]):
        alone = Estimator("ridge", targets=("knee_medial",), seed=i, threads=1, verbose=False).fit(
            train.subset(st.loc[st["subject"] != subject, "stance_id"]), val)
        np.testing.assert_allclose(ens.members_[i].predict(val), alone.predict(val), rtol=1e-6)
    members = np.stack([m.predict(val)[:, 0] for m in ens.members_])
    assert np.ptp(members, axis=0).max() > 0  # they saw different stances: they differ
    unc = ens.calibrate(val, c=50.0)
    assert unc["targets"]["knee_medial"]["eps"] == 50.0 and unc["c"] == "given"
    mean, spread = ens.predict_spread(val)
    y = val.frames["knee_medial"].to_numpy()
    sid = val.frames["stance_id"].to_numpy()
    q = cf.conformal_quantile(np.abs(y - mean[:, 0]) / (spread[:, 0] + 50.0), 0.1, sid)
    assert unc["targets"]["knee_medial"]["q"] == pytest.approx(q)
    path = ens.save(tmp_path / "loso")
    spec = json.loads((path / "bundle.json").read_text())
    assert spec["ensemble"]["members"] == 3 and spec["ensemble"]["left_out"]["groups"] == ["p0", "p1", "p2"]
    assert spec["ensemble"]["left_out"]["column"] == "subject"
    bundle = load_bundle(path)
    bm, bs = bundle.predict_spread_features(x)
    np.testing.assert_allclose(bm[:, 0], members.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(bs[:, 0], members.std(axis=0), rtol=1e-3, atol=1e-2)
    m2, lo, hi = bundle.predict_interval_features(x)
    np.testing.assert_allclose(hi[:, 0] - m2[:, 0], q * (bs[:, 0] + 50.0), rtol=1e-4)
    # c chosen by leave-one-subject-out interval score over the calibration stances: one of the normalised
    # candidates, and q is that score's quantile
    unc = ens.calibrate(val, c="choose")
    c = unc["targets"]["knee_medial"]["eps"]
    cands = [d for d in cf.score_candidates(mean[:, 0], spread[:, 0], float(ens.eps_[0])) if d["kind"] == "normalised"]
    assert any(c == pytest.approx(d["c"]) for d in cands)
    assert unc["c"]["chosen"]["knee_medial"] in {d["name"] for d in cands}
    assert unc["targets"]["knee_medial"]["q"] == pytest.approx(
        cf.conformal_quantile(np.abs(y - mean[:, 0]) / (spread[:, 0] + c), 0.1, sid))
    with pytest.raises(GaitforceError, match="'year' is not a stance column"):
        EnsembleEstimator("ridge", leave_out="year", targets=("knee_medial",), threads=1, verbose=False).fit(train)
    one = make_dataset(6)
    one.frames["subject"] = "p0"
    with pytest.raises(GaitforceError, match="at least 2 of them"):
        EnsembleEstimator("ridge", leave_out="subject", targets=("knee_medial",), threads=1, verbose=False).fit(one)
    with pytest.raises(GaitforceError, match="c must be"):
        ens.calibrate(val, c=-1.0)

def test_body_weight_ensemble_bundle_predicts_as_torch(bw_data, tmp_path):
    from gaitforce.learn.ensemble import EnsembleEstimator

    train, _ = bw_data
    val = bw_dataset(10, seed=1)
    ens = EnsembleEstimator("mlp", members=2, targets=TARGETS, epochs=3, threads=1, verbose=False,
                            body_weight_norm=True, width=8)
    with _quiet():
        ens.fit(train, val)
    bundle = load_bundle(ens.save(tmp_path / "b"))
    assert bundle.needs_body_weight and bundle.is_ensemble
    x = val.frames[bundle.columns].to_numpy(np.float32)
    bw = val.frames["mass"].to_numpy() * 9.81
    mean, spread = bundle.predict_spread_features(x, body_weight=bw)
    tm, ts = ens.predict_spread(val)
    np.testing.assert_allclose(mean[:, 0], tm[:, 0], atol=2e-3)
    np.testing.assert_allclose(spread[:, 0], ts[:, 0], atol=2e-3)
    # the fixed body weight of a stream reaches the stacked graph too
    fixed = bundle.with_body_weight(700.0)
    np.testing.assert_allclose(fixed.predict_spread_features(x[:5])[1],
                               bundle.predict_spread_features(x[:5], body_weight=700.0)[1], rtol=1e-6)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["uncertainty"]["targets"]["knee_medial"].update(q=-1.0), "q must be a finite number >= 0"),
    (lambda s: s["uncertainty"]["targets"]["knee_medial"].update(eps=0), "eps must be a positive number"),
    (lambda s: s["uncertainty"]["targets"].pop("emg_soleus"), "must name the targets"),
    (lambda s: s["uncertainty"].update(alpha=1.5), "alpha must be between 0 and 1"),
    (lambda s: s.pop("ensemble"), "given together"),
    (lambda s: s["onnx"].update(spread_output="nope"), "'nope'"),
    (lambda s: s["ensemble"].update(members=1), "at least 2"),
])
def test_wrong_ensemble_json_fails_with_one_clear_error(ensemble_bundle, tmp_path, edit, message):
    b = _copy(ensemble_bundle[1], tmp_path)
    spec = json.loads((b / "bundle.json").read_text())
    edit(spec)
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=message) as err:
        load_bundle(b)
    assert "\n" not in err.value.line()


def test_uncertainty_without_an_ensemble_is_refused(ridge_bundle, tmp_path):
    b = _copy(ridge_bundle[1], tmp_path)
    spec = json.loads((b / "bundle.json").read_text())
    spec["uncertainty"] = {"alpha": 0.1, "targets": {t: {"q": 1.0, "eps": 1.0} for t in TARGETS}}
    (b / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="needs an ensemble"):
        load_bundle(b)


def test_predict_tables_carry_the_interval_columns(ensemble_bundle, ridge_bundle, tmp_path):
    from gaitforce.io.sto import read_sto_table
    from gaitforce.io.writers import write_sto
    from gaitforce.learn.predict import interval_columns, stance_tables

    ens, path, val = ensemble_bundle
    bundle = load_bundle(path)
    tables = stance_tables(bundle, val.frames)
    t = next(iter(tables.values()))
    cols = list(t.columns)
    assert cols[cols.index("emg_soleus") + 1:cols.index("emg_soleus") + 5] == interval_columns(bundle) == [
        "knee_medial_lo", "knee_medial_hi", "emg_soleus_lo", "emg_soleus_hi"]
    assert (t["knee_medial_lo"] <= t["knee_medial"]).all() and (t["knee_medial"] <= t["knee_medial_hi"]).all()
    write_sto(tmp_path / "s.sto", t[["time", *bundle.targets, *interval_columns(bundle)]])
    sto, _ = read_sto_table(tmp_path / "s.sto")
    np.testing.assert_allclose(sto["knee_medial_hi"], t["knee_medial_hi"], rtol=1e-9)
    plain = load_bundle(ridge_bundle[1])
    assert interval_columns(plain) == [] and "knee_medial_lo" not in next(iter(stance_tables(plain, val.frames).values()))


def test_cli_train_ensemble_writes_a_calibrated_bundle_and_reports_test_coverage(tmp_path, capsys):
    ds = make_dataset(120, frames=10)
    ds.save(tmp_path / "ds")
    rc = cli.main(["train", str(tmp_path / "ds"), "--out", str(tmp_path / "b"), "--model", "ridge", "--quiet",
                   "--threads", "1", "--ensemble", "3", "--split", "subject-exposed"])
    assert rc == 0
    out, err = capsys.readouterr()
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert spec["ensemble"]["members"] == 3 and "uncertainty" in spec
    cov = spec["metrics"]["interval"]["knee_medial"]
    assert 0.0 <= cov["test_coverage"] <= 1.0 and cov["test_width"] > 0
    assert "90 % interval for knee_medial" in err and "90 % interval covers" in out
    assert "ridge ensemble of 3" in out
    # too few validation stances for the 90 % level: the bundle is written, without a finite q, and says so
    small = make_dataset(20, frames=10)
    small.save(tmp_path / "small")
    assert cli.main(["train", str(tmp_path / "small"), "--out", str(tmp_path / "s"), "--model", "ridge", "--quiet",
                     "--ensemble", "2", "--split", "subject-exposed"]) == 0
    assert "not finite (too few calibration stances" in capsys.readouterr().err
    assert not load_bundle(tmp_path / "s").has_interval
    for extra, message in ((["--sweep", "2"], "do not combine"), (["--quantize", "int8"], "do not combine"),
                           (["--ensemble", "1"], "at least 2 members")):
        args = ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "c"), "--model", "ridge", "--quiet",
                "--ensemble", "3", *extra]
        assert cli.main(args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
