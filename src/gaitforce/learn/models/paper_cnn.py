"""``paper-cnn``: the convolutional network of Rane et al. 2019, generalised in depth and width.

Each frame's features form a 1-channel image of ``rows x 3`` (20 rows for all features, 2 force plate,
18 kinematics, 4 angles + GRF). ``conv_layers`` 2-D convolutions with kernel ``(19, 3)``, stride 1 and zero
"same" padding keep the image size; batch norm + ReLU follow each. The flattened maps pass through
``fc_layers`` fully connected layers of ``fc_width`` units (batch norm + ReLU), then one linear output per
target.

Kernel clipping (stated deviation for small inputs): when the image has fewer than 19 rows (or 3 columns)
the kernel is clipped to the image, ``(min(19, rows), min(3, cols))``. "Same" padding then follows PyTorch's
rule for even kernels: the extra zero row goes below / right. The padding is an explicit ``ZeroPad2d`` so
the ONNX graph holds a plain ``Pad``.
"""

from __future__ import annotations

import torch
from torch import nn

from gaitforce.learn.models import register_model

KERNEL = (19, 3)


def _same_pad(kh: int, kw: int) -> nn.ZeroPad2d:
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return nn.ZeroPad2d((left, kw - 1 - left, top, kh - 1 - top))


@register_model("paper-cnn")
class PaperCNN(nn.Module):
    input_kind = "frame"
    defaults = {"conv_layers": 2, "channels": 16, "fc_layers": 1, "fc_width": 64}

    def __init__(self, *, n_features, n_targets, input_shape, conv_layers=2, channels=16, fc_layers=1, fc_width=64):
        super().__init__()
        rows, cols = input_shape
        self.input_shape = (rows, cols)
        self.kernel = (min(KERNEL[0], rows), min(KERNEL[1], cols))
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(int(conv_layers)):
            layers += [_same_pad(*self.kernel), nn.Conv2d(c_in, int(channels), self.kernel, stride=1, bias=False),
                       nn.BatchNorm2d(int(channels)), nn.ReLU()]
            c_in = int(channels)
        self.conv = nn.Sequential(*layers)
        width = c_in * rows * cols
        fc: list[nn.Module] = []
        for _ in range(int(fc_layers)):
            fc += [nn.Linear(width, int(fc_width), bias=False), nn.BatchNorm1d(int(fc_width)), nn.ReLU()]
            width = int(fc_width)
        self.fc = nn.Sequential(*fc)
        self.out = nn.Linear(width, int(n_targets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.input_shape
        h = self.conv(x.reshape(-1, 1, rows, cols))
        return self.out(self.fc(h.flatten(1)))
