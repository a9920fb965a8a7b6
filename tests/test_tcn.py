"""The causal temporal CNN (``tcn``): causality, receptive field, and the Estimator options it is used with
(body-weight normalisation, input noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gaitforce.data.dataset import Dataset
from gaitforce.errors import GaitforceError
from gaitforce.learn.models import create_model
from gaitforce.learn.training import Estimator


def test_tcn_output_sees_only_its_receptive_field_of_past_frames():
    torch.manual_seed(0)
    net = create_model("tcn", n_features=31 * 3, n_targets=1, input_shape=(31, 3), layers=2, kernel=3).eval()
    assert net.receptive_field() == 1 + 2 * (1 + 2)  # 7 frames: kernel 3, dilations 1 and 2
    x = torch.randn(4, 31, 3)
    base = net(x.reshape(4, -1))
    older = x.clone()
    older[:, : 31 - 7] += 5.0  # frames outside the receptive field
    torch.testing.assert_close(net(older.reshape(4, -1)), base)
    newest = x.clone()
    newest[:, -1] += 5.0
    assert not torch.allclose(net(newest.reshape(4, -1)), base)
    oldest_seen = x.clone()
    oldest_seen[:, 31 - 7] += 5.0
    assert not torch.allclose(net(oldest_seen.reshape(4, -1)), base)


def test_tcn_hidden_sequence_is_causal():
    torch.manual_seed(0)
    net = create_model("tcn", n_features=10 * 2, n_targets=1, input_shape=(10, 2), layers=3).eval()
    seq = torch.randn(1, 2, 10)
    h = net.blocks(seq)
    later = seq.clone()
    later[:, :, 6:] = 0.0  # change the future of step 5
    torch.testing.assert_close(net.blocks(later)[:, :, :6], h[:, :, :6])


def bw_dataset(masses=(50.0, 70.0, 90.0, 110.0), frames=40, seed=0) -> Dataset:
    """Medial force = 2 x vertical GRF; the GRF shape is the same in body weights for everyone."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, m in enumerate(masses):
        s = np.linspace(0, 1, frames)
        fy = m * 9.81 * (np.sin(np.pi * s) + 0.02 * rng.normal(size=frames))
        parts.append(pd.DataFrame({"stance_id": f"s{seed}_{i}", "trial": f"t{i}", "subject": f"p{i}", "side": "right",
                                   "frame": np.arange(frames), "time": s, "stance_pct": 100 * s, "mass": m,
                                   "grf_x": 0.1 * fy, "grf_y": fy, "grf_z": 0.0 * fy, "knee_medial": 2.0 * fy}))
    cols = ["grf_x", "grf_y", "grf_z"]
    return Dataset(pd.concat(parts, ignore_index=True),
                   {"features": cols, "targets": {"knee_medial": "N"},
                    "feature_sets": {"all": {"columns": cols, "shape": [1, 3]}}})


def test_body_weight_normalisation_predicts_back_in_newtons():
    train, val = bw_dataset(), bw_dataset((60.0, 100.0), seed=1)
    est = Estimator("ridge", body_weight_norm=True, threads=1, verbose=False).fit(train, val)
    pred = est.predict(val)[:, 0]
    true = val.frames["knee_medial"].to_numpy()
    assert np.sqrt(np.mean((pred - true) ** 2)) < 0.01 * true.max()
    # the same movement in body weights at twice the weight gives twice the force
    x = val.frames[est.columns_].to_numpy(np.float32)[:10]
    one = est.predict_features(x, body_weight=600.0)
    two = est.predict_features(2 * x, body_weight=1200.0)
    np.testing.assert_allclose(two, 2 * one, rtol=1e-5)
    with pytest.raises(GaitforceError, match="body_weight"):
        est.predict_features(x)
    # (written as a bundle with a body-weight input: tests/test_bundle.py)
    assert est.get_params()["body_weight_norm"] is True


def test_body_weight_normalisation_drops_frames_without_a_mass():
    train = bw_dataset()
    train.frames.loc[train.frames.stance_id == "s0_0", "mass"] = np.nan
    est = Estimator("ridge", body_weight_norm=True, threads=1, verbose=False).fit(train)
    assert est.n_dropped_["train"] == 40
    assert np.isnan(est.predict(train)[:40]).all() and np.isfinite(est.predict(train)[40:]).all()


def test_input_noise_changes_training_and_is_checked():
    train, val = bw_dataset(), bw_dataset((60.0,), seed=1)
    kw = dict(epochs=3, threads=1, verbose=False, layers=1, channels=4)
    a = Estimator("tcn", **kw).fit(train, val).predict(val)
    same = Estimator("tcn", **kw).fit(train, val).predict(val)
    noisy = Estimator("tcn", input_noise=0.5, **kw).fit(train, val).predict(val)
    np.testing.assert_array_equal(a, same)
    assert not np.allclose(a, noisy)
    with pytest.raises(GaitforceError, match="input_noise"):
        Estimator("tcn", input_noise=-1.0)
