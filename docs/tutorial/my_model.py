"""The tutorial's model: a two-hidden-layer EP network written against eqbench's public contract only.

With layer 0 the input x, state layers s_1, s_2, s_3 (the last one the output) and connections W_l·v + b_l,

    Φ(x, s) = Σ_l ⟨W_l·s_l + b_l, s_{l+1}⟩ − β·½‖s_3 − onehot(y)‖²,

and one step sets every layer to σ(∂Φ_β/∂s_l) with the smooth σ(u) = sigmoid(4(u − ½)). The docs build runs
``eqbench check`` on ``my_model:tutorial_net`` and fails unless every claim holds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from eqbench import EnergyModel


class TutorialNet(EnergyModel):
    """Three state layers, tied weights, smooth units; Φ and the loss declared, the rest is eqbench's."""

    def __init__(self, sizes: tuple[int, ...] = (64, 24, 16, 10)) -> None:
        super().__init__()
        self.name = "TUTORIAL_NET"
        self.in_shape = (sizes[0],)
        self.n_classes = sizes[-1]
        self.sizes = sizes
        self.synapses = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(n,) for n in self.sizes[1:]]

    def activations(self) -> list:
        return [lambda u: torch.sigmoid(4.0 * (u - 0.5))] * (len(self.sizes) - 1)

    def phi(self, x: Tensor, s: list[Tensor], beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        layers = [self.check_input(x), *s]
        total = sum((f(a) * b).sum(1) for f, a, b in zip(self.synapses, layers[:-1], layers[1:]))
        return total + self.nudge_term(s, beta, y)

    def loss(self, s: list[Tensor], y: Tensor) -> Tensor:
        return 0.5 * ((s[-1] - self.target_matrix(y, s[-1].dtype)) ** 2).sum(1)

    def output(self, s: list[Tensor]) -> Tensor:
        return s[-1]


def tutorial_net(**kw) -> TutorialNet:
    """The factory ``eqbench check my_model:tutorial_net`` calls."""
    return TutorialNet(**kw)
