"""``ridge``: closed-form ridge regression held in a :class:`torch.nn.Linear`, so it trains in one solve yet
exports to ONNX like every other model.

The penalty ``alpha`` is chosen on the validation set from ``alphas`` (the one with the lowest validation RMSE;
the first grid value on ties). Without a validation set, or with ``alpha`` given, that value is used as is.
The solve is scikit-learn's :class:`~sklearn.linear_model.Ridge` on the normalised features and targets.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import Ridge
from torch import nn

from gaitforce.learn.models import register_model

ALPHAS = tuple(float(a) for a in np.logspace(-4, 4, 17))


@register_model("ridge")
class RidgeLinear(nn.Module):
    input_kind = "frame"
    defaults = {"alpha": None, "alphas": ALPHAS}

    def __init__(self, *, n_features, n_targets, input_shape, alpha=None, alphas=ALPHAS):
        super().__init__()
        self.linear = nn.Linear(n_features, n_targets)
        self.alpha = alpha
        self.alphas = tuple(float(a) for a in alphas)
        self.alpha_ = None
        self.val_rmse_by_alpha_: dict[float, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def fit_closed_form(self, x: np.ndarray, y: np.ndarray, x_val=None, y_val=None) -> "RidgeLinear":
        """Solve for the weights; pick ``alpha`` by validation RMSE when it is not fixed."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if self.alpha is not None or x_val is None or len(x_val) == 0:
            alpha = 1.0 if self.alpha is None else float(self.alpha)
            best = Ridge(alpha=alpha).fit(x, y)
        else:
            best, best_rmse, alpha = None, np.inf, None
            x_val = np.asarray(x_val, np.float64)
            y_val = np.asarray(y_val, np.float64).reshape(len(x_val), -1)
            for a in self.alphas:
                fit = Ridge(alpha=a).fit(x, y)
                pred = np.asarray(fit.predict(x_val)).reshape(y_val.shape)  # 1-column y predicts (N,)
                rmse = float(np.sqrt(np.mean((pred - y_val) ** 2)))
                self.val_rmse_by_alpha_[a] = rmse
                if rmse < best_rmse:
                    best, best_rmse, alpha = fit, rmse, a
        coef = np.atleast_2d(best.coef_)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(np.atleast_1d(best.intercept_), dtype=torch.float32))
        self.alpha_ = alpha
        return self
