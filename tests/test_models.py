"""The model registry and the architectures: shapes, the paper-CNN's kernel/padding rules, ridge's solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gaitforce.errors import GaitforceError
from gaitforce.learn.models import _REGISTRY, create_model, list_models, register_model
from gaitforce.learn.models.paper_cnn import PaperCNN


def test_registry_lists_builtin_models():
    assert {"paper-cnn", "ridge", "mlp"} <= set(list_models())


def test_unknown_model_and_hyperparameter_are_user_errors():
    with pytest.raises(GaitforceError, match="unknown model 'resnet'"):
        create_model("resnet", n_features=6, n_targets=1)
    with pytest.raises(GaitforceError, match="no hyperparameter"):
        create_model("paper-cnn", n_features=60, n_targets=1, kernels=5)
    with pytest.raises(GaitforceError, match="does not hold"):
        create_model("mlp", n_features=60, n_targets=1, input_shape=(19, 3))


def test_register_model_decorator_adds_and_refuses_a_clash():
    @register_model("toy-linear-test")
    class Toy(nn.Module):
        defaults = {"scale": 1.0}

        def __init__(self, *, n_features, n_targets, input_shape, scale=1.0):
            super().__init__()
            self.lin = nn.Linear(n_features, n_targets)

        def forward(self, x):
            return self.lin(x)

    try:
        assert "toy-linear-test" in list_models()
        model = create_model("toy-linear-test", n_features=4, n_targets=2, scale=2.0)
        assert model(torch.zeros(3, 4)).shape == (3, 2)
        with pytest.raises(ValueError, match="already registered"):
            register_model("toy-linear-test")(type("Other", (nn.Module,), {}))
    finally:
        _REGISTRY.pop("toy-linear-test", None)


@pytest.mark.parametrize("rows, kernel", [(20, (19, 3)), (18, (18, 3)), (4, (4, 3)), (2, (2, 3))])
def test_paper_cnn_shapes_and_kernel_clipping(rows, kernel):
    torch.manual_seed(0)
    model = create_model("paper-cnn", n_features=rows * 3, n_targets=2, input_shape=(rows, 3),
                         conv_layers=3, channels=4, fc_layers=2, fc_width=8).eval()
    assert model.kernel == kernel
    x = torch.randn(5, rows * 3)
    # "same" padding: every conv block keeps the (rows, 3) image
    assert model.conv(x.reshape(-1, 1, rows, 3)).shape == (5, 4, rows, 3)
    assert model(x).shape == (5, 2)


def test_paper_cnn_layer_pattern():
    model = create_model("paper-cnn", n_features=60, n_targets=3, conv_layers=2, channels=8, fc_layers=2,
                         fc_width=16)
    convs = [m for m in model.conv if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and all(c.kernel_size == (19, 3) and c.stride == (1, 1) for c in convs)
    kinds = [type(m) for m in model.conv]
    # pad -> conv -> batch norm -> relu, per layer
    assert kinds == [nn.ZeroPad2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert [type(m) for m in model.fc] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2
    assert isinstance(model.out, nn.Linear) and model.out.out_features == 3  # no BN/ReLU on the output


def test_paper_cnn_zero_same_padding_counts_in_bounds_cells():
    """A (19, 3) kernel of ones on an all-ones 20x3 image counts the in-bounds cells under it:
    row 0/col 0 sees rows 0..9 x cols 0..1 = 20 cells; row 9/col 1 sees rows 0..18 x cols 0..2 = 57."""
    model = PaperCNN(n_features=60, n_targets=1, input_shape=(20, 3), conv_layers=1, channels=1, fc_layers=0)
    pad, conv = model.conv[0], model.conv[1]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        y = conv(pad(torch.ones(1, 1, 20, 3)))[0, 0]
    assert y.shape == (20, 3)
    assert y[0, 0] == 20 and y[9, 1] == 57 and y[19, 2] == 2 * 10
    assert y[10, 1] == 3 * 19  # rows 1..19


def test_mlp_shape():
    model = create_model("mlp", n_features=12, n_targets=2, layers=3, width=16).eval()
    assert model(torch.randn(7, 12)).shape == (7, 2)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.body) == 3


def test_ridge_closed_form_recovers_linear_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    w = np.array([[1.5, -2.0, 0.0, 0.5, 3.0, -1.0], [0.2, 0.0, 1.0, 0.0, -0.5, 0.1]])
    y = x @ w.T + np.array([0.3, -0.7])
    model = create_model("ridge", n_features=6, n_targets=2, alpha=1e-8).fit_closed_form(x, y)
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), w, atol=1e-5)
    np.testing.assert_allclose(model.linear.bias.detach().numpy(), [0.3, -0.7], atol=1e-5)


def test_ridge_picks_alpha_with_lowest_validation_rmse():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 30))  # few rows, many features: a penalty helps
    w = rng.normal(size=(30, 1)) * 0.1
    y = x @ w + rng.normal(size=(40, 1))
    xv = rng.normal(size=(400, 30))
    yv = xv @ w + rng.normal(size=(400, 1))
    model = create_model("ridge", n_features=30, n_targets=1).fit_closed_form(x, y, xv, yv)
    scores = model.val_rmse_by_alpha_
    assert model.alpha_ == min(scores, key=scores.get)
    assert model.alpha_ > 1e-4  # the noise is strong; the smallest penalty is not the best
    pred = model(torch.as_tensor(xv, dtype=torch.float32)).detach().numpy()
    assert np.sqrt(np.mean((pred - yv) ** 2)) == pytest.approx(scores[model.alpha_], rel=1e-4)
