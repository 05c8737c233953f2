"""A continuous Hopfield network relaxed by projected Euler steps (Scellier & Bengio 2017's energy, clip units).

    E(x, s) = ½·Σ_l ‖s_l‖² − Σ_l s_l·(W_l s_{l−1} + b_l),      s_0 = x,
    s ← clip(s − ε·∂E_β/∂s, 0, 1),      E_β = E + β·L,   L = ½‖s_L − onehot(y)‖².

Declared to eqbench through the primitive function whose gradient is the step's argument,
Φ = ½‖s‖² − ε·E − β·L (so s ← clip(∂Φ/∂s)), with clip activations and the energy E (which the asynchronous
relaxation, a projected gradient step on one layer's quadratic block, descends for ε ≤ 1).

The clip has kinks at 0 and 1: for β above a few 1e-3 the nudged phase moves units across them, and the GDU error
is not yet a power of β there. `euler_deep` adds a hidden layer and scales every weight by 1.8: its free phase needs
3000 steps (it is close to the contraction limit) and its symmetric error is O(β²) only below β ≈ 3e-4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eqbench import EnergyModel


class EulerClip(EnergyModel):
    name = "EULER_CLIP"

    def __init__(self, sizes=(64, 64, 10), epsilon: float = 0.5, gain: float = 1.0) -> None:
        super().__init__()
        self.sizes, self.epsilon = list(sizes), float(epsilon)
        self.in_shape, self.n_classes = (self.sizes[0],), self.sizes[-1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.mul_(gain)

    def state_shapes(self):
        return [(n,) for n in self.sizes[1:]]

    def activations(self):
        return [lambda u: u.clamp(0.0, 1.0)] * len(self.layers)

    def output(self, s):
        return s[-1]

    def loss(self, s, y):
        return 0.5 * ((s[-1] - F.one_hot(y, self.n_classes).to(s[-1].dtype)) ** 2).sum(1)

    def energy(self, x, s, beta=0.0, y=None):
        below = [x, *s]
        e = sum(0.5 * (si ** 2).sum(1) for si in s)
        for layer, pre, post in zip(self.layers, below, s):
            e = e - (layer(pre) * post).sum(1)
        return e if beta == 0.0 else e + beta * self.loss(s, y)

    def phi(self, x, s, beta=0.0, y=None):
        return sum(0.5 * (si ** 2).sum(1) for si in s) - self.epsilon * self.energy(x, s) + self.nudge_term(s, beta, y)


def euler_clip(**kw) -> EulerClip:
    return EulerClip(**kw)


def euler_deep(**kw) -> EulerClip:
    return EulerClip(sizes=(64, 64, 64, 10), gain=1.8, **kw)
