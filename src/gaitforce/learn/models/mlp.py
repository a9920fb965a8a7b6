"""``mlp``: a fully connected baseline (``layers`` hidden layers of ``width`` units, batch norm + ReLU,
optional dropout), one linear output per target."""

from __future__ import annotations

import torch
from torch import nn

from gaitforce.learn.models import register_model


@register_model("mlp")
class MLP(nn.Module):
    input_kind = "frame"
    defaults = {"layers": 2, "width": 128, "dropout": 0.0}

    def __init__(self, *, n_features, n_targets, input_shape, layers=2, width=128, dropout=0.0):
        super().__init__()
        body: list[nn.Module] = []
        w_in = n_features
        for _ in range(int(layers)):
            body += [nn.Linear(w_in, int(width), bias=False), nn.BatchNorm1d(int(width)), nn.ReLU()]
            if dropout:
                body.append(nn.Dropout(float(dropout)))
            w_in = int(width)
        self.body = nn.Sequential(*body)
        self.out = nn.Linear(w_in, int(n_targets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))
