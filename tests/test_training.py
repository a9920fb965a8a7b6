"""Estimator: learns known functions, normalises on train only, seeded, early stopping, NaN rule; sweep; CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaitforce import cli
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.learn.sweep import sweep
from gaitforce.learn.training import Estimator

ROWS = 4  # a small (4, 3) image, like the angles+GRF feature set


def make_dataset(n_stances=20, frames=50, *, seed=0, rows=ROWS, subjects=5, linear=False) -> Dataset:
    """Stances of random features with targets a known function of them (same function for every seed)."""
    rng = np.random.default_rng(seed)
    cols = [f"f{i}_{a}" for i in range(rows) for a in "xyz"]
    x = rng.normal(size=(n_stances * frames, rows * 3))
    w = np.random.default_rng(123).normal(size=rows * 3)
    if linear:
        y = 100.0 + 3.0 * x[:, 0] - 2.0 * x[:, 5]
    else:
        y = 800.0 + 400.0 * np.tanh(x @ w / np.sqrt(rows * 3)) + 50.0 * x[:, 1] ** 2
    sid = np.repeat(np.arange(n_stances), frames)
    df = pd.DataFrame({
        "stance_id": [f"s{seed}_{i}" for i in sid], "trial": [f"t{seed}_{i}" for i in sid],
        "subject": [f"p{i % subjects}" for i in sid], "side": "right",
        "frame": np.tile(np.arange(frames), n_stances), "time": np.tile(np.arange(frames) / 100.0, n_stances),
        "stance_pct": np.tile(np.linspace(0, 100, frames), n_stances), "mass": 70.0,
    })
    df[cols] = x
    df["knee_medial"] = y
    df["knee_lateral"] = 0.5 * y + 20.0 * x[:, 2]
    manifest = {"features": cols, "feature_sets": {"all": {"columns": cols, "shape": [rows, 3]}},
                "targets": {"knee_medial": "N", "knee_lateral": "N"},
                "settings": {"marker_map": "auto", "lowpass_cutoff": 10.0},
                "sources": [{"path": f"/data/t{seed}_{i}.mat", "sha256": "0" * 64} for i in range(n_stances)]}
    return Dataset(df, manifest)


FAST = dict(threads=1, verbose=False)


def test_ridge_recovers_a_linear_target():
    train, val = make_dataset(linear=True), make_dataset(6, seed=1, linear=True)
    est = Estimator("ridge", **FAST).fit(train, val)
    assert est.nets_[0].alpha_ == pytest.approx(1e-4)  # no noise: the smallest penalty wins
    pred = est.predict(val)[:, 0]
    np.testing.assert_allclose(pred, val.frames["knee_medial"], atol=0.05)
    s = est.score(val)["knee_medial"]
    assert s["rmse"] < 0.05 and s["r"] > 0.99999 and s["unit"] == "N" and s["n_frames"] == len(val)


def test_normalisation_is_learned_on_the_training_set_only():
    train, val = make_dataset(), make_dataset(6, seed=1)
    val.frames[train.features] += 10.0  # a shifted validation set must not move the scaler
    val.frames["knee_medial"] += 1000.0
    est = Estimator("ridge", **FAST).fit(train, val)
    np.testing.assert_allclose(est.x_mean_, train.frames[train.features].mean().to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.x_scale_, train.frames[train.features].std(ddof=0).to_numpy(), rtol=1e-4)
    assert est.y_mean_[0] == pytest.approx(train.frames["knee_medial"].mean(), rel=1e-5)


def test_paper_cnn_learns_a_nonlinear_target_better_than_ridge():
    train, val = make_dataset(30), make_dataset(8, seed=1)
    cnn = Estimator("paper-cnn", conv_layers=1, channels=8, fc_layers=1, fc_width=32, epochs=40, patience=10,
                    lr=3e-3, **FAST).fit(train, val)
    ridge = Estimator("ridge", **FAST).fit(train, val)
    sd = val.frames["knee_medial"].std()
    cnn_rmse, ridge_rmse = cnn.score(val)["knee_medial"]["rmse"], ridge.score(val)["knee_medial"]["rmse"]
    assert cnn_rmse < 0.25 * sd
    assert cnn_rmse < 0.7 * ridge_rmse


@pytest.mark.parametrize("model, kw", [("mlp", dict(width=16)), ("paper-cnn", dict(channels=4, fc_width=8))])
def test_same_seed_gives_identical_predictions(model, kw):
    train, val = make_dataset(8), make_dataset(3, seed=1)
    a = Estimator(model, seed=3, epochs=4, **kw, **FAST).fit(train, val).predict(val)
    b = Estimator(model, seed=3, epochs=4, **kw, **FAST).fit(train, val).predict(val)
    c = Estimator(model, seed=4, epochs=4, **kw, **FAST).fit(train, val).predict(val)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_restores_the_best_epoch():
    train, val = make_dataset(10), make_dataset(3, seed=1)
    est = Estimator("mlp", width=64, epochs=300, patience=5, lr=1e-2, **FAST).fit(train, val)
    hist = est.history_[0]
    vals = [h["val_rmse"] for h in hist]
    best = est.best_epoch_[0]
    assert len(hist) < 300  # stopped early
    assert len(hist) == best + 5  # exactly `patience` epochs without improvement
    assert vals[best - 1] == min(vals) == est.val_rmse_[0]
    # the restored weights give the best epoch's validation RMSE (normalised units)
    pred = est.predict(val)[:, 0]
    rmse_norm = np.sqrt(np.mean(((pred - val.frames["knee_medial"]) / est.y_scale_[0]) ** 2))
    assert rmse_norm == pytest.approx(vals[best - 1], rel=1e-4)


def test_without_validation_all_epochs_run():
    est = Estimator("mlp", width=8, epochs=7, **FAST).fit(make_dataset(4))
    assert len(est.history_[0]) == 7 and est.best_epoch_[0] == 7


def test_divergence_is_an_error_not_a_nan_model():
    """A learning rate that blows the weights up (Adam steps of ~lr per weight) must not leave a model that
    predicts NaN: with no finite epoch to go back to, fit says so and names the learning rate."""
    with pytest.raises(GaitforceError, match=r"diverged at epoch \d+ .*lower the learning rate \(lr=1e\+30\)"):
        Estimator("mlp", width=8, epochs=20, lr=1e30, **FAST).fit(make_dataset(4))


def test_multi_target_and_one_net_per_target():
    train, val = make_dataset(6), make_dataset(2, seed=1)
    one = Estimator("ridge", targets=("knee_medial", "knee_lateral"), **FAST).fit(train, val)
    per = Estimator("ridge", targets=("knee_medial", "knee_lateral"), multi_target=False, **FAST).fit(train, val)
    assert len(one.nets_) == 1 and len(per.nets_) == 2
    assert one.predict(val).shape == per.predict(val).shape == (len(val), 2)
    assert per.target_units_ == ["N", "N"]


def test_nan_rows_are_dropped_in_training_and_predict_nan():
    train, val = make_dataset(6, linear=True), make_dataset(2, seed=1, linear=True)
    train.frames.loc[[0, 5, 9], "f1_y"] = np.nan
    train.frames.loc[[11], "knee_medial"] = np.nan
    est = Estimator("ridge", **FAST).fit(train, val)
    assert est.n_dropped_ == {"train": 4, "val": 0}
    val.frames.loc[[2], "f0_x"] = np.nan
    pred = est.predict(val)[:, 0]
    assert np.isnan(pred[2]) and np.isfinite(np.delete(pred, 2)).all()
    assert abs(pred[3] - val.frames["knee_medial"][3]) < 0.05


def test_user_errors():
    ds = make_dataset(3)
    with pytest.raises(GaitforceError, match="unknown model"):
        Estimator("transformer")
    with pytest.raises(GaitforceError, match="no hyperparameter"):
        Estimator("mlp", channels=3)
    with pytest.raises(GaitforceError, match="no target"):
        Estimator("ridge", targets=("hip_force",), **FAST).fit(ds)
    with pytest.raises(GaitforceError, match="no feature set"):
        Estimator("ridge", feature_set="emg", **FAST).fit(ds)
    for bad in (dict(epochs=0), dict(lr=-1.0), dict(batch_size=0), dict(patience=0), dict(weight_decay=-1e-3),
                dict(threads=0), dict(batch_size=2.5), dict(epochs=True), dict(weight_decay="abc")):
        with pytest.raises(GaitforceError, match="must be"):
            Estimator("mlp", **bad)
    with pytest.raises(GaitforceError, match="device must be"):
        Estimator("ridge", device="tpu", **FAST).fit(ds)
    with pytest.raises(GaitforceError, match="layers='abc': must be a whole number"):
        Estimator("mlp", layers="abc", epochs=1, **FAST).fit(ds)
    with pytest.raises(GaitforceError, match="not fitted"):
        Estimator("ridge").predict(ds)
    est = Estimator("ridge", **FAST).fit(ds)
    with pytest.raises(GaitforceError, match="lacks feature columns"):
        est.predict(Dataset(ds.frames.drop(columns=["f0_x"]), {}))


def test_sweep_is_seeded_and_reports_every_trial():
    train, val = make_dataset(6), make_dataset(2, seed=1)
    space = {"lr": ("log", 1e-3, 1e-2), "width": ("cat", (8, 16)), "layers": ("int", 1, 2)}
    a = sweep(train, val, model="mlp", n_trials=3, seed=5, space=space, epochs=3, **FAST)
    b = sweep(train, val, model="mlp", n_trials=3, seed=5, space=space, epochs=3, **FAST)
    assert len(a.trials) == 3
    pd.testing.assert_frame_equal(a.trials.drop(columns="seconds"), b.trials.drop(columns="seconds"))
    assert a.best_value == a.trials["val_score"].min()
    best_row = a.trials.loc[a.trials["val_score"].idxmin()]
    assert a.best_params == {k: best_row[k] for k in space}
    assert a.best_estimator.hyperparameters["width"] == a.best_params["width"]
    assert 1e-3 <= a.trials["lr"].min() and a.trials["lr"].max() <= 1e-2
    with pytest.raises(GaitforceError, match="no search space"):
        sweep(train, val, model="ridge", n_trials=2)


def test_cli_train_writes_bundle_with_metrics(tmp_path, capsys):
    ds_dir = make_dataset(20, subjects=5, linear=True).save(tmp_path / "ds")
    rc = cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--model", "ridge", "--quiet",
                   "--target", "knee_medial", "knee_lateral"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test  knee_medial: RMSE" in out and "wrote" in out
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    m = spec["metrics"]
    assert m["split"] == "subject-naive"
    subjects = {k: set(make_dataset(20, subjects=5).frames.set_index("stance_id")["subject"].loc[v])
                for k, v in m["stances"].items() if v}
    assert not (subjects["train"] & subjects["test"]) and not (subjects["train"] & subjects["val"])
    assert m["test"]["knee_medial"]["rmse_mean"] < 0.1  # a linear target
    assert m["test"]["knee_medial"]["n"] == len(m["stances"]["test"])
    assert [t["name"] for t in spec["targets"]] == ["knee_medial", "knee_lateral"]


def test_cli_train_user_errors_exit_2(tmp_path, capsys):
    ds_dir = make_dataset(4).save(tmp_path / "ds")
    assert cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--target", "hip"]) == 2
    assert "no target ['hip']" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")]) == 2
    assert cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--split", "none", "--sweep", "2",
                     "--model", "mlp"]) == 2
    assert "needs a validation set" in capsys.readouterr().err


def test_held_out_metrics_all_frames_figures_equal_score():
    from gaitforce.cli.train import held_out_metrics

    train, test = make_dataset(6), make_dataset(3, seed=1)
    test.frames.loc[5, "knee_lateral"] = np.nan  # a missing reference frame is left out of both
    est = Estimator("ridge", targets=("knee_medial", "knee_lateral"), **FAST).fit(train)
    m, s = held_out_metrics(est, test), est.score(test)
    for t in est.targets:
        assert m[t]["frame_rmse"] == pytest.approx(s[t]["rmse"], rel=1e-9) and m[t]["unit"] == "N"
        assert m[t]["frame_r"] == pytest.approx(s[t]["r"], rel=1e-9) and 0.5 < s[t]["r"] < 1


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_cli_out_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, command):
    ds_dir = make_dataset(4).save(tmp_path / "ds")
    out = tmp_path / "taken.txt"
    out.write_text("not a folder")
    argv = {"train": [str(ds_dir)], "evaluate": [str(ds_dir)],
            "predict": [str(tmp_path / "no-bundle"), str(tmp_path / "t.c3d")]}[command]
    assert cli.main([command, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out exists and is a file, not a folder" in err[0] and str(out) in err[0]
    assert out.read_text() == "not a folder"


def test_cli_train_with_sweep_keeps_the_best_setting(tmp_path, capsys):
    ds_dir = make_dataset(20, subjects=5).save(tmp_path / "ds")
    rc = cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--model", "mlp", "--sweep", "2",
                   "--epochs", "2", "--threads", "1", "--quiet"])
    assert rc == 0
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    sw = spec["metrics"]["sweep"]
    assert len(sw["trials"]) == 2 and sw["best_value"] == min(t["val_score"] for t in sw["trials"])
    hyper, training = spec["model"]["hyperparameters"], spec["model"]["training"]
    assert hyper["width"] == sw["best_params"]["width"] and training["lr"] == sw["best_params"]["lr"]
    assert "sweep trial 2/2" in capsys.readouterr().err


def test_cli_train_param_sets_hyperparameters(tmp_path, capsys):
    ds_dir = make_dataset(10, subjects=5).save(tmp_path / "ds")
    rc = cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--model", "paper-cnn", "--epochs", "2",
                   "--param", "conv_layers=1", "--param", "channels=4", "--param", "lr=0.003", "--quiet",
                   "--threads", "1"])
    assert rc == 0
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert spec["model"]["hyperparameters"]["conv_layers"] == 1 and spec["model"]["hyperparameters"]["channels"] == 4
    assert spec["model"]["training"]["lr"] == 0.003
    assert cli.main(["train", str(ds_dir), "--out", str(tmp_path / "c"), "--param", "kernels=3"]) == 2
    assert "no hyperparameter(s) ['kernels']" in capsys.readouterr().err
    assert cli.main(["train", str(ds_dir), "--out", str(tmp_path / "c"), "--param", "conv_layers"]) == 2


# -- body-weight normalisation: sweep score in the targets' units, and train -> bundle -> consumers ----------
def bw_dataset(n_stances=20, *, seed=0) -> Dataset:
    """:func:`make_dataset` with GRF columns and subjects of 60-100 kg whose forces scale with body weight."""
    ds = make_dataset(n_stances, seed=seed)
    fr = ds.frames.rename(columns={f"f0_{a}": f"grf_{a}" for a in "xyz"})
    fr["mass"] = fr["subject"].map({f"p{i}": 60.0 + 10.0 * i for i in range(5)})
    scale = fr["mass"].to_numpy() / 70.0
    fr[["grf_x", "grf_y", "grf_z"]] *= 700.0 * scale[:, None]
    fr[["knee_medial", "knee_lateral"]] *= scale[:, None]
    cols = [c.replace("f0_", "grf_") for c in ds.manifest["features"]]
    return Dataset(fr, {**ds.manifest, "features": cols,
                        "feature_sets": {"all": {"columns": cols, "shape": [ROWS, 3]}}})


def test_sweep_score_is_in_the_targets_units_also_with_body_weight_norm():
    from gaitforce.learn.sweep import validation_score

    train, val = bw_dataset(10), bw_dataset(4, seed=1)
    targets = ("knee_medial", "knee_lateral")
    for bw in (False, True):
        est = Estimator("ridge", targets=targets, body_weight_norm=bw, **FAST).fit(train, val)
        s = est.score(val)
        # by hand: each target's RMSE (N) over its training SD (N, population), averaged over targets
        want = np.mean([s[t]["rmse"] / train.frames[t].std(ddof=0) for t in targets])
        assert validation_score(est, val) == pytest.approx(want, rel=1e-5)
        assert 0.01 < want < 1  # a fair fit: well below 1 SD, never hundreds of SDs
    # the network's own scale is in body weights (~1/700 of N): the old yardstick was ~700x too small
    assert est.y_scale_[0] < 0.01 * train.frames["knee_medial"].std()


def test_cli_train_body_weight_norm_end_to_end(tmp_path, capsys):
    ds_dir = bw_dataset(10).save(tmp_path / "ds")
    rc = cli.main(["train", str(ds_dir), "--out", str(tmp_path / "b"), "--model", "paper-cnn", "--epochs", "2",
                   "--param", "body_weight_norm=true", "--param", "channels=4", "--quiet", "--threads", "1",
                   "--quantize", "int8"])
    assert rc == 0
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert spec["input"]["body_weight"] is True and spec["model"]["training"]["body_weight_norm"] is True
    assert spec["quantized"]["int8"]["agreement"]["on"] == "test"
    capsys.readouterr()
    # evaluate --bundle feeds the dataset's mass: its predictions are the bundle's at mass x 9.81
    assert cli.main(["evaluate", str(ds_dir), "--bundle", str(tmp_path / "b"), "--out", str(tmp_path / "ev")]) == 0
    from gaitforce.learn.bundle import load_bundle

    bundle, ds = load_bundle(tmp_path / "b"), Dataset.load(ds_dir)
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv.gz")
    want = bundle.predict_features(ds.frames[bundle.columns].to_numpy(np.float32),
                                   body_weight=ds.frames["mass"].to_numpy() * 9.81)[:, 0]
    np.testing.assert_allclose(np.sort(preds["knee_medial_pred"].to_numpy()), np.sort(want), rtol=1e-5)
    # without any mass: one line, exit 2
    no_mass = Dataset.load(ds_dir)
    no_mass.frames["mass"] = np.nan
    no_mass.save(tmp_path / "ds2")
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "ds2"), "--bundle", str(tmp_path / "b"),
                     "--out", str(tmp_path / "ev2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'mass' column holds no subject mass" in err[0]
    # explain refuses in one line; stream asks for --mass before touching LSL
    assert cli.main(["explain", str(tmp_path / "b"), str(ds_dir), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "body-weight normalisation" in err[0]
    assert cli.main(["stream", str(tmp_path / "b"), "--lsl", "nothing-here", "--timeout", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mass KG" in err[0]
    assert cli.main(["stream", str(tmp_path / "b"), "--lsl", "nothing-here", "--mass", "-3"]) == 2
    assert "above 0 and below 500" in capsys.readouterr().err


def test_predict_takes_the_mass_from_the_option_or_the_file(tmp_path):
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.predict import _body_mass, check_mass

    train = bw_dataset(6)
    path = Estimator("ridge", body_weight_norm=True, **FAST).fit(train).save(tmp_path / "b")
    bundle = load_bundle(path)
    frames = train.frames.head(50).copy()
    _body_mass(bundle, frames, "walk.c3d", None)  # the file's mass is kept
    np.testing.assert_array_equal(frames["mass"], train.frames["mass"].head(50))
    _body_mass(bundle, frames, "walk.c3d", 80.0)  # --mass wins
    assert (frames["mass"] == 80.0).all()
    frames["mass"] = np.nan
    with pytest.raises(GaitforceError, match="give --mass KG") as err:
        _body_mass(bundle, frames, "walk.c3d", None)
    assert err.value.source == "walk.c3d"
    assert check_mass(None) is None and check_mass(72.5) == 72.5
    with pytest.raises(GaitforceError, match="above 0"):
        check_mass(0.0)


# -- training sanity: collapse, snapshots -----------------------------------------------------------------
def test_collapse_reasons_known_answers():
    from gaitforce.learn.training import collapse_reasons

    t = np.sin(np.linspace(0, 6, 200)) * 300 + 800
    assert collapse_reasons(t + 5.0, t, 40) == []
    flat = 800 + 0.1 * (t - 800)  # 10 % of the target's SD: collapsed
    (why,) = collapse_reasons(flat, t, 40, targets=["knee_medial"])
    assert "knee_medial" in why and "10 %" in why
    assert collapse_reasons(800 + 0.3 * (t - 800), t, 40) == []  # 30 %: not collapsed
    assert any("best epoch 2" in r for r in collapse_reasons(t, t, 2))
    assert collapse_reasons(t, t, 3) == [] and collapse_reasons(t, t, 0) == []  # 0: a closed-form model


def test_a_network_stopped_at_epoch_one_is_reported_collapsed():
    from gaitforce.learn.training import CollapseWarning

    train, val = make_dataset(10), make_dataset(3, seed=1)
    with pytest.warns(CollapseWarning, match="best epoch 1"):
        est = Estimator("mlp", width=8, epochs=1, **FAST).fit(train, val)
    assert est.collapsed_ and est.best_epoch_ == [1]
    ridge = Estimator("ridge", **FAST).fit(make_dataset(10, linear=True), make_dataset(3, seed=1, linear=True))
    assert ridge.collapsed_ == []


def test_cli_train_strict_exits_non_zero_on_a_collapsed_network(tmp_path, capsys):
    ds_dir = make_dataset(20, subjects=5).save(tmp_path / "ds")
    base = ["train", str(ds_dir), "--model", "mlp", "--quiet", "--epochs", "1", "--param", "width=8"]
    assert cli.main([*base, "--out", str(tmp_path / "b1")]) == 0
    assert "looks collapsed" in capsys.readouterr().err
    assert cli.main([*base, "--out", str(tmp_path / "b2"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "looks collapsed" in err and "best epoch 1" in err
    m = json.loads((tmp_path / "b2" / "bundle.json").read_text())["metrics"]  # kept, and marked
    assert m["collapsed"] and "best epoch 1" in m["collapsed"][-1]


def test_snapshots_equal_a_shorter_training_with_the_same_seed():
    train, test = make_dataset(6), make_dataset(2, seed=3)
    long = Estimator("mlp", width=16, epochs=6, seed=2, **FAST).fit(train, snapshots=(3, 6))
    short = Estimator("mlp", width=16, epochs=3, seed=2, **FAST).fit(train)
    np.testing.assert_allclose(long.at_epoch(3).predict(test), short.predict(test), rtol=1e-6)
    np.testing.assert_allclose(long.at_epoch(6).predict(test), long.predict(test), rtol=1e-6)
    assert not np.allclose(long.at_epoch(3).predict(test), long.predict(test))
    with pytest.raises(GaitforceError, match="no weights kept after epoch 4"):
        long.at_epoch(4)
