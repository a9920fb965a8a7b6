"""``tcn``: a causal temporal convolutional network over a window of past frames.

Input: each row holds a window of the ``W`` most recent frames of ``C`` channels, flattened oldest first
(``input_shape = (W, C)``; the columns ``<channel>@-k`` that :func:`gaitforce.evaluate.grand_challenge.add_window` builds).
The window becomes a ``(C, W)`` sequence; ``layers`` 1-D convolutions of ``channels`` filters, kernel ``kernel``
and dilation 1, 2, 4, ... are padded on the left only (causal: an output never sees a later frame), each
followed by ReLU, with a residual 1x1 path (a temporal block after Bai et al. 2018, without weight norm so the
ONNX graph holds plain ``Conv``/``Pad``). The last time step's features feed one linear output per target, so
the prediction for a frame depends only on that frame and the ``W - 1`` before it: it can run on a stream with
a ring buffer of ``W`` frames.

``W = 1`` reduces it to a per-frame network. :func:`gaitforce.learn.models.create_model` refuses an ``input_shape``
whose ``W x C`` is not ``n_features``; without one it assumes ``(n_features // 3, 3)`` (or ``(n_features, 1)``).
"""

from __future__ import annotations

import torch
from torch import nn

from gaitforce.learn.models import register_model


class _CausalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        pad = (kernel - 1) * dilation
        self.body = nn.Sequential(
            nn.ConstantPad1d((pad, 0), 0.0),
            nn.Conv1d(c_in, c_out, kernel, dilation=dilation),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout else []),
        )
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


@register_model("tcn")
class TemporalCNN(nn.Module):
    input_kind = "frame"
    defaults = {"layers": 3, "channels": 32, "kernel": 3, "dropout": 0.0, "fc_width": 0}

    def __init__(self, *, n_features, n_targets, input_shape, layers=3, channels=32, kernel=3, dropout=0.0,
                 fc_width=0):
        super().__init__()
        window, chans = (int(v) for v in input_shape)
        self.window, self.chans = window, chans
        blocks, c_in = [], chans
        for i in range(int(layers)):
            blocks.append(_CausalBlock(c_in, int(channels), int(kernel), 2**i, float(dropout)))
            c_in = int(channels)
        self.blocks = nn.Sequential(*blocks)
        head: list[nn.Module] = []
        if fc_width:
            head += [nn.Linear(c_in, int(fc_width)), nn.ReLU()]
            c_in = int(fc_width)
        self.head = nn.Sequential(*head)
        self.out = nn.Linear(c_in, int(n_targets))

    def receptive_field(self) -> int:
        """Frames one output can see (capped by the window)."""
        k = self.blocks[0].body[1].kernel_size[0] if len(self.blocks) else 1
        return min(self.window, 1 + (k - 1) * (2 ** len(self.blocks) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(-1, self.window, self.chans).transpose(1, 2)  # (B, C, W), oldest frame first
        h = self.blocks(seq)[:, :, -1]
        return self.out(self.head(h))
