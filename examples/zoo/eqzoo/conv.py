"""A convolutional EP network: 1×8×8 → conv 3×3 (padding 1) → 4×8×8 units → fully connected → 10 units.

    Φ(x, s) = ⟨conv(x) + b_1, s_1⟩ + ⟨W flatten(s_1) + b_2, s_2⟩ − β·L,   s_l ← sigmoid(4·∂Φ/∂s_l − 2)

The closed-form drive is u_1 = conv(x) + b_1 + reshape(Wᵀ s_2), u_2 = W flatten(s_1) + b_2 − β(s_2 − onehot(y)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eqbench import EnergyModel


class ConvNet(EnergyModel):
    name = "CONV_NET"
    in_shape = (1, 8, 8)
    n_classes = 10
    has_closed_form = True

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.fc = nn.Linear(channels * 64, 10)

    def state_shapes(self):
        return [(self.channels, 8, 8), (10,)]

    def activations(self):
        act = lambda u: torch.sigmoid(4.0 * u - 2.0)  # noqa: E731
        return [act, act]

    def output(self, s):
        return s[1]

    def loss(self, s, y):
        return 0.5 * ((s[1] - F.one_hot(y, 10).to(s[1].dtype)) ** 2).sum(1)

    def phi(self, x, s, beta=0.0, y=None):
        total = (self.conv(x) * s[0]).sum((1, 2, 3)) + (self.fc(s[0].flatten(1)) * s[1]).sum(1)
        return total + self.nudge_term(s, beta, y)

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u1 = self.conv(x) + (s[1] @ self.fc.weight).view_as(s[0])
        u2 = self.fc(s[0].flatten(1))
        if beta != 0.0:
            u2 = u2 - beta * (s[1] - F.one_hot(y, 10).to(s[1].dtype))
        return [u1, u2]


def conv_net(**kw) -> ConvNet:
    return ConvNet(**kw)
