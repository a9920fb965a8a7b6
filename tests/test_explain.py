"""gaitforce.learn.explain: the paper's gradient x SD map and the integrated-gradients map against analytic answers.

The synthetic stances have features linear in stance %, so resampling is exact and every expected map is a
closed form: for y = w.x both maps are w_f * SD_f(p); for y = sum a_f x_f^2 the gradient map is
2 a mean(x) SD and the IG map adds the skewness term a sum (x - mean)^3 / ((T-1) SD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from gaitforce.cli import main
from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.learn import explain as ex
from gaitforce.learn.bundle import load_bundle
from gaitforce.learn.training import Estimator

COLUMNS = ["hip_flex", "knee_add", "knee_flex", "grf_x", "grf_y", "grf_z"]
FRAMES = (11, 17, 23, 31, 41, 26)
GRID = np.linspace(0.0, 100.0, ex.POINTS)


def _coefficients():
    rng = np.random.default_rng(7)
    scale = np.array([10.0, 3.0, 15.0, 40.0, 200.0, 20.0])
    c = rng.normal(size=(len(FRAMES), len(COLUMNS))) * scale + np.array([5.0, -4.0, 20.0, 0.0, 700.0, -10.0])
    d = rng.normal(size=(len(FRAMES), len(COLUMNS))) * scale
    return c, d


def _dataset(target=None) -> Dataset:
    """Stances of different lengths whose features are c + d * s (s = stance fraction)."""
    c, d = _coefficients()
    parts = []
    for t, n in enumerate(FRAMES):
        pct = np.linspace(0.0, 100.0, n)
        x = c[t] + d[t] * (pct[:, None] / 100.0)
        df = pd.DataFrame(x, columns=COLUMNS)
        df.insert(0, "stance_id", f"s{t}")
        df.insert(1, "trial", f"tr{t}")
        df.insert(2, "subject", f"P{t % 3}")
        df.insert(3, "side", "right")
        df.insert(4, "frame", np.arange(n))
        df.insert(5, "time", np.arange(n) / 100.0)
        df.insert(6, "stance_pct", pct)
        df.insert(7, "mass", 70.0)
        df["knee_medial"] = target(x) if target else x @ np.arange(1.0, 7.0)
        parts.append(df)
    manifest = {"features": COLUMNS, "feature_sets": {"all": {"columns": COLUMNS, "shape": [2, 3]}},
                "targets": {"knee_medial": "N"}}
    return Dataset(frames=pd.concat(parts, ignore_index=True), manifest=manifest)


def _grid_features():
    """(T, P, F) features on the stance grid, exactly (they are linear in stance %)."""
    c, d = _coefficients()
    return c[:, None, :] + d[:, None, :] * (GRID[None, :, None] / 100.0)


class Quadratic(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.as_tensor(a, dtype=torch.float64), requires_grad=False)

    def forward(self, x):
        return (self.a * x**2).sum(dim=1, keepdim=True)


def _linear(w, bias=3.0) -> nn.Linear:
    lin = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(np.asarray(w)[None, :], dtype=torch.float64))
        lin.bias.fill_(bias)
    return lin


# -- analytic answers ------------------------------------------------------------------------------------
def test_linear_model_both_maps_equal_weight_times_sd():
    w = np.array([2.0, 15.0, -3.0, 0.5, 1.2, -0.8])
    res = ex.explain(_linear(w), _dataset(), columns=COLUMNS, targets=["knee_medial"])
    x = _grid_features()
    expected = (w[None, :] * x.std(axis=0, ddof=1)).T  # (F, P)
    assert res.sensitivity.shape == (len(COLUMNS), ex.POINTS)
    np.testing.assert_allclose(res.mean_gradient, np.repeat(w[:, None], ex.POINTS, axis=1), rtol=1e-12)
    np.testing.assert_allclose(res.feature_sd, x.std(axis=0, ddof=1).T, rtol=1e-10)
    np.testing.assert_allclose(res.sensitivity, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.integrated, expected, rtol=1e-9, atol=1e-9)
    assert res.method["integrated_gradients"]["max_completeness_error"] < 1e-6
    assert res.stance_ids == [f"s{t}" for t in range(len(FRAMES))] and res.excluded == {}


def test_quadratic_model_gradient_map_and_ig_skewness_term():
    a = np.array([0.3, -2.0, 0.05, 0.01, 0.002, -0.1])
    res = ex.explain(Quadratic(a), _dataset(), columns=COLUMNS, targets=["knee_medial"])
    x = _grid_features()
    mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    t = x.shape[0]
    np.testing.assert_allclose(res.sensitivity, (2 * a * mean * sd).T, rtol=1e-9, atol=1e-8)
    ig = 2 * a * mean * sd + a * ((x - mean) ** 3).sum(axis=0) / ((t - 1) * sd)
    np.testing.assert_allclose(res.integrated, ig.T, rtol=1e-8, atol=1e-7)
    # the skewness term is not negligible here, so the two maps really differ
    assert np.abs(res.integrated - res.sensitivity).max() > 1e-2 * np.abs(res.sensitivity).max()


@pytest.fixture(scope="module")
def ridge_bundle(tmp_path_factory):
    """A ridge on the synthetic data (nearly linear target), as an ONNX bundle, with its effective weights."""
    ds = _dataset(target=lambda x: x @ np.array([2.0, 15.0, -3.0, 0.5, 1.2, -0.8]) + 0.01 * np.sin(x[:, 0]))
    est = Estimator("ridge", feature_set="all", alpha=1e-3, verbose=False, threads=1).fit(ds)
    path = est.save(tmp_path_factory.mktemp("b") / "ridge", dataset_manifest=ds.manifest)
    w = est.nets_[0].linear.weight.detach().double().numpy()[0] * est.y_scale_[0] / est.x_scale_
    return path, w.astype(np.float64), ds


def test_bundle_finite_differences_give_the_linear_answer(ridge_bundle):
    path, w, ds = ridge_bundle
    res = ex.explain(load_bundle(path), ds, gradients="fd")
    expected = (w[None, :] * _grid_features().std(axis=0, ddof=1)).T
    scale = np.abs(expected).max()
    assert res.method["gradient"].startswith("central finite differences")
    np.testing.assert_allclose(res.mean_gradient, np.repeat(w[:, None], ex.POINTS, axis=1), rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(res.sensitivity, expected, atol=2e-3 * scale)
    np.testing.assert_allclose(res.integrated, expected, atol=2e-3 * scale)
    steps = res.method["fd_step"]["steps"]
    sd_all = ds.frames[COLUMNS].to_numpy().std(axis=0)
    np.testing.assert_allclose([steps[c] for c in COLUMNS], ex.FD_STEP * sd_all, rtol=1e-9)


def test_ensemble_bundle_and_estimator_explain_the_members_mean(ridge_bundle, tmp_path):
    """An ensemble is explained through its mean: the bundle by finite differences of the stacked graph (its
    weights are no single registered network), the estimator by autograd on the members' mean."""
    from gaitforce.learn.ensemble import EnsembleEstimator

    _, w, ds = ridge_bundle
    members = [Estimator("ridge", feature_set="all", alpha=1e-3, seed=s, verbose=False, threads=1).fit(ds)
               for s in (0, 1)]
    ens = EnsembleEstimator.from_members(members)
    bundle = load_bundle(ens.save(tmp_path / "ens", dataset_manifest=ds.manifest))
    assert ex.bundle_module(bundle) is None
    res = ex.explain(bundle, ds)  # gradients="auto": no per-network weights to rebuild -> finite differences
    assert res.method["gradient"].startswith("central finite differences")
    np.testing.assert_allclose(res.mean_gradient, np.repeat(w[:, None], ex.POINTS, axis=1), rtol=2e-3, atol=1e-6)
    res_t = ex.explain(ens, ds)
    np.testing.assert_allclose(res_t.mean_gradient, np.repeat(w[:, None], ex.POINTS, axis=1), rtol=1e-4, atol=1e-6)


def test_finite_difference_bundle_matches_autograd_and_captum_on_the_torch_module(tmp_path):
    """The same trained CNN explained through its ONNX bundle (finite differences, IG via the wrapped
    autograd Function) and through the Estimator's torch module (autograd, Captum IG) gives the same maps."""
    ds = _dataset(target=lambda x: 0.02 * x[:, 4] * (1 + 0.05 * x[:, 1]) + np.tanh(x[:, 0] / 10) * 30)
    est = Estimator("paper-cnn", feature_set="all", epochs=3, seed=1, verbose=False, threads=1,
                    channels=4, fc_width=8).fit(ds)
    bundle = load_bundle(est.save(tmp_path / "cnn", dataset_manifest=ds.manifest))
    a = ex.explain(est, ds, ig_steps=16)
    b = ex.explain(bundle, ds, ig_steps=16, fd_step=1e-3, gradients="fd")
    assert b.method["gradient"].startswith("central finite differences")
    for name in ("sensitivity", "integrated"):
        ma, mb = getattr(a, name), getattr(b, name)
        assert np.abs(ma).max() > 0
        # equal up to finite-difference steps that straddle a ReLU kink at a few points
        assert np.abs(ma - mb).mean() < 0.005 * np.abs(ma).max(), name
        assert np.abs(ma - mb).max() < 0.05 * np.abs(ma).max(), name


# -- exact gradients from the bundle's weights ---------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory):
    """A small paper-cnn on a curved synthetic target, fitted and written as a bundle (with its weights)."""
    ds = _dataset(target=lambda x: 0.02 * x[:, 4] * (1 + 0.05 * x[:, 1]) + np.tanh(x[:, 0] / 10) * 30)
    est = Estimator("paper-cnn", feature_set="all", epochs=3, seed=1, verbose=False, threads=1,
                    channels=4, fc_width=8).fit(ds)
    return est, est.save(tmp_path_factory.mktemp("b") / "cnn", dataset_manifest=ds.manifest), ds


def test_bundle_weights_give_the_estimators_exact_maps_and_agree_with_finite_differences(cnn_bundle):
    import json

    est, path, ds = cnn_bundle
    spec = json.loads((path / "bundle.json").read_text())
    assert spec["weights"]["file"] == "model.safetensors" and len(spec["weights"]["sha256"]) == 64
    bundle = load_bundle(path)
    a = ex.explain(est, ds, ig_steps=16)
    b = ex.explain(bundle, ds, ig_steps=16)
    f = ex.explain(bundle, ds, ig_steps=16, gradients="fd")
    assert b.method["gradient"].startswith("autograd on the bundle's weights")
    for name in ("sensitivity", "integrated", "mean_gradient"):
        ma, mb, mf = getattr(a, name), getattr(b, name), getattr(f, name)
        peak = np.abs(ma).max()
        assert peak > 0
        # the rebuilt network is the estimator's (float32 rounding only)
        np.testing.assert_allclose(mb, ma, atol=1e-4 * peak, err_msg=name)
        if name != "mean_gradient":
            # the stated tolerance of finite differences against exact gradients (docs/explain.md): mean difference
            # under 0.5 % and largest under 5 % of the map's peak (a step straddling a ReLU kink at a few points)
            assert np.abs(mf - mb).mean() < 0.005 * peak, name
            assert np.abs(mf - mb).max() < 0.05 * peak, name


@pytest.mark.parametrize("shape", [(20, 3), (4, 3), (2, 3)])
def test_dense_equivalent_of_paper_cnn_is_the_same_function(shape):
    from gaitforce.learn.models import create_model

    torch.manual_seed(0)
    nf = shape[0] * shape[1]
    net = create_model("paper-cnn", n_features=nf, n_targets=2, input_shape=shape, conv_layers=2, channels=5)
    for mod in net.modules():  # batch-norm statistics far from identity, so folding them is really tested
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.normal_()
            mod.bias.data.normal_()
    net.eval()
    dense = ex.dense_equivalent(net)
    assert dense is not net and not any(isinstance(m, nn.Conv2d) for m in dense.modules())
    x = torch.randn(300, nf)
    with torch.no_grad():
        ref = net(x)
        assert (dense(x) - ref).abs().max() < 1e-5 * max(1.0, float(ref.abs().max()))
    net.train()
    assert ex.dense_equivalent(net) is net  # only an eval-mode network has fixed batch-norm statistics
    wide = create_model("paper-cnn", n_features=60, n_targets=1, input_shape=(20, 3), channels=128).eval()
    assert ex.dense_equivalent(wide) is wide  # 7680 x 7680 matrices would not pay: the convolutions stay


def _copy_bundle(path, tmp_path, name):
    import shutil

    return Path(shutil.copytree(path, tmp_path / name))


def test_bundle_weights_tampered_missing_or_hostile(cnn_bundle, tmp_path):
    import hashlib
    import json

    from gaitforce.learn.bundle import BundleError

    _, path, ds = cnn_bundle
    # a changed byte: the hash in bundle.json catches it
    bad = _copy_bundle(path, tmp_path, "flip")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        ex.explain(load_bundle(bad), ds, ig_steps=4)
    # changed weights with a matching hash: they no longer reproduce model.onnx
    from safetensors.numpy import load, save

    bad = _copy_bundle(path, tmp_path, "rehash")
    tensors = load((bad / "model.safetensors").read_bytes())
    key = next(k for k in tensors if k.endswith("out.weight"))
    tensors[key] = tensors[key] * 3.0
    blob = save(tensors)
    (bad / "model.safetensors").write_bytes(blob)
    spec = json.loads((bad / "bundle.json").read_text())
    spec["weights"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (bad / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="do not reproduce model.onnx"):
        ex.explain(load_bundle(bad), ds, ig_steps=4)
    # a bundle.json naming a huge network: refused by shape before anything is allocated
    spec["model"]["hyperparameters"]["channels"] = 10**6
    (bad / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="do not fit the architecture"):
        ex.explain(load_bundle(bad), ds, ig_steps=4)
    # no weights (an older bundle): finite differences, or a clear refusal when autograd is demanded
    old = _copy_bundle(path, tmp_path, "old")
    (old / "model.safetensors").unlink()
    spec = json.loads((old / "bundle.json").read_text())
    del spec["weights"]
    (old / "bundle.json").write_text(json.dumps(spec))
    assert ex.explain(load_bundle(old), ds, ig_steps=4).method["gradient"].startswith("central finite")
    with pytest.raises(GaitforceError, match="no network weights"):
        ex.explain(load_bundle(old), ds, ig_steps=4, gradients="autograd")
    # a weights entry that points outside the bundle folder is refused when bundle.json is read
    spec["weights"] = {"file": "../x.safetensors", "sha256": "0" * 64, "format": "safetensors"}
    (old / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="plain .safetensors file name"):
        load_bundle(old)


# -- stability ---------------------------------------------------------------------------------------------
def test_stability_names_the_features_that_keep_sign_and_rank():
    ds = _dataset()
    sd = _grid_features().std(axis=0, ddof=1).mean(axis=0)  # (F,) mean SD over stance
    w1 = np.array([1.0, 20.0, -0.5, 0.1, 0.3, -2.0])
    w2 = w1 * np.array([1, -1, 1, 1, 1, 1])  # knee_add flips sign
    maps = {"seed 0": ex.explain(ex.TorchModel(_linear(w1), COLUMNS, ["knee_medial"]), ds, ig_steps=4),
            "seed 1": ex.explain(ex.TorchModel(_linear(w2), COLUMNS, ["knee_medial"]), ds, ig_steps=4)}
    st = ex.stability(maps, top=2).set_index("feature")
    expected_rank = np.empty(len(COLUMNS), int)
    expected_rank[np.argsort(-np.abs(w1 * sd))] = np.arange(1, len(COLUMNS) + 1)
    assert st.loc[COLUMNS, "rank_seed 0"].tolist() == expected_rank.tolist()
    assert st.loc[COLUMNS, "rank_seed 1"].tolist() == expected_rank.tolist()
    assert not st.loc["knee_add", "sign_kept"] and not st.loc["knee_add", "sign_kept_integrated"]
    assert st.drop(index="knee_add")["sign_kept"].all()
    top2 = set(np.array(COLUMNS)[expected_rank <= 2])
    assert set(st.index[st.top_in_all]) == top2
    np.testing.assert_allclose(st.loc["grf_z", "mean_seed 0"], maps["seed 0"].sensitivity[5].mean())
    with pytest.raises(GaitforceError, match="at least 2 maps"):
        ex.stability({"one": maps["seed 0"]})


def test_explain_by_subject_uses_each_subjects_stances_alone():
    ds = _dataset()
    model = ex.TorchModel(_linear(np.arange(1.0, 7.0)), COLUMNS, ["knee_medial"])
    maps, skipped = ex.explain_by_subject(model, ds, ig_steps=4)
    assert sorted(maps) == ["P0", "P1", "P2"] and skipped == {}
    st = ds.stances()
    for subject, res in maps.items():
        assert sorted(res.stance_ids) == sorted(st.loc[st.subject == subject, "stance_id"])
        # linear model: the map is w times the SD over that subject's stances
        sub = [int(s[1:]) for s in res.stance_ids]
        expected = (np.arange(1.0, 7.0)[None, :] * _grid_features()[sub].std(axis=0, ddof=1)).T
        np.testing.assert_allclose(res.sensitivity, expected, atol=1e-4 * np.abs(expected).max())


def test_cli_by_subject_and_compare_write_stability(cnn_bundle, ridge_bundle, tmp_path, capsys):
    _, path, ds = cnn_bundle
    ridge_path = ridge_bundle[0]
    ds_dir = ds.save(tmp_path / "ds")
    out = tmp_path / "out"
    assert main(["explain", str(path), str(ds_dir), "--out", str(out), "--ig-steps", "4", "--by-subject",
                 "--compare", str(ridge_path)]) == 0
    text = capsys.readouterr().out
    assert "stability over 3 subjects" in text and "stability over 2 seeds" in text
    subj = pd.read_csv(out / "stability_subjects.csv")
    assert set(subj.feature) == set(COLUMNS)
    assert {"rank_subject P0", "rank_subject P2", "sign_kept", "top_in_all"} <= set(subj.columns)
    seeds = pd.read_csv(out / "stability_seeds.csv")
    assert {"rank_cnn", "rank_ridge"} <= set(seeds.columns)
    groups = pd.read_csv(out / "groups_subjects.csv")
    assert len(groups) == 3 * len(COLUMNS) * ex.POINTS
    assert (out / "stability_subjects.png").read_bytes()[:4] == b"\x89PNG"


# -- rules -------------------------------------------------------------------------------------------------
def test_stance_with_a_non_finite_input_is_left_out_and_named():
    ds = _dataset()
    fr = ds.frames.copy()
    fr.loc[(fr.stance_id == "s2") & (fr.frame == 5), "knee_add"] = np.nan
    bad = Dataset(frames=fr, manifest=ds.manifest)
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    res = ex.explain(_linear(w), bad, columns=COLUMNS, targets=["knee_medial"])
    assert res.excluded == {"s2": "non-finite input at some frame"}
    keep = _dataset().subset([s for s in ds.stance_ids if s != "s2"])
    ref = ex.explain(_linear(w), keep, columns=COLUMNS, targets=["knee_medial"])
    np.testing.assert_allclose(res.sensitivity, ref.sensitivity)
    with pytest.raises(GaitforceError, match="at least 2 usable stances"):
        ex.explain(_linear(w), ds.subset(["s0"]), columns=COLUMNS, targets=["knee_medial"])


def test_sign_check_reports_expected_and_unexpected_directions():
    w = np.array([0.0, 15.0, 0.0, 0.0, 1.2, 0.0])
    good = ex.explain(_linear(w), _dataset(), columns=COLUMNS, targets=["knee_medial"]).agreement()
    assert list(good.feature) == ["knee_add", "grf_y"]
    assert good.as_expected.all() and (good.sign_agreement == 1.0).all()
    w[1] = -15.0
    bad = ex.explain(_linear(w), _dataset(), columns=COLUMNS, targets=["knee_medial"]).agreement().set_index("feature")
    assert not bad.loc["knee_add", "as_expected"] and bad.loc["knee_add", "sensitivity_sign"] == -1
    assert bad.loc["grf_y", "as_expected"]
    # no expectation for another target
    other = ex.explain(_linear(w), _dataset(), columns=COLUMNS, targets=["emg_soleus"])
    assert other.agreement().empty


def test_errors_are_user_errors(ridge_bundle):
    path, _, ds = ridge_bundle
    with pytest.raises(GaitforceError, match="no output 'knee_lateral'"):
        ex.explain(load_bundle(path), ds, target="knee_lateral")
    with pytest.raises(GaitforceError, match="lacks the model's input columns"):
        ex.explain(load_bundle(path), Dataset(frames=ds.frames.drop(columns=["grf_y"]),
                                               manifest={"targets": {"knee_medial": "N"}}))
    with pytest.raises(GaitforceError, match="needs columns"):
        ex.explain(_linear(np.ones(6)), ds)
    est = Estimator("ridge", feature_set="all", body_weight_norm=True, verbose=False, threads=1).fit(ds)
    with pytest.raises(GaitforceError, match="body-weight-normalised"):
        ex.explain(est, ds)


def test_feature_labels_are_readable():
    assert ex.feature_label("knee_add") == "knee adduction (deg)"
    assert ex.feature_label("ankle_flex") == "ankle dorsiflexion (deg)"
    assert ex.feature_label("hip_rot") == "hip internal rotation (deg)"
    assert ex.feature_label("grf_y") == "GRF vertical (N)"
    assert ex.feature_label("cop_z") == "CoP lateral (m)"
    assert ex.feature_label("knee_lat_x") == "knee lat anterior (m)"


# -- CLI ---------------------------------------------------------------------------------------------------
def test_cli_writes_figure_and_tables(ridge_bundle, tmp_path, capsys):
    path, w, ds = ridge_bundle
    ds_dir = ds.save(tmp_path / "ds")
    out = tmp_path / "out"
    assert main(["explain", str(path), str(ds_dir), "--out", str(out), "--ig-steps", "8"]) == 0
    text = capsys.readouterr().out
    assert "sign check knee adduction (deg): expected +1" in text and "(as expected)" in text
    png = out / "explain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 250_000
    sens = pd.read_csv(out / "sensitivity.csv")
    assert list(sens.columns) == ["stance_pct", *COLUMNS] and len(sens) == ex.POINTS
    expected = w[None, :] * _grid_features().std(axis=0, ddof=1)
    np.testing.assert_allclose(sens[COLUMNS].to_numpy(), expected, atol=2e-3 * np.abs(expected).max())
    long = pd.read_csv(out / "explain.csv")
    assert len(long) == ex.POINTS * len(COLUMNS) and "GRF vertical (N)" in set(long.label)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["rank"].tolist() == list(range(1, len(COLUMNS) + 1))
    assert (out / "explain.json").is_file() and (out / "agreement.csv").is_file()


def test_cli_bad_input_is_one_line_exit_2(ridge_bundle, tmp_path, capsys):
    path, _, ds = ridge_bundle
    ds_dir = ds.save(tmp_path / "ds")
    assert main(["explain", str(path), str(ds_dir), "--out", str(tmp_path / "o"), "--target", "nope"]) == 2
    assert main(["explain", str(path), str(ds_dir), "--out", str(tmp_path / "o"), "--stances", "zzz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("gaitforce: error:") for line in err)
