"""Negative controls: deliberately broken variants that every check must catch.

A suite that cannot fail proves nothing; each of these must make its check fail, and the suites
assert that it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..forward import PEPITA
from ..optim import FlipOptimizer
from ..rules import EP


@dataclass
class FlippedSignEP(EP):
    """EP with the sign of its estimator flipped: the update then points up the loss."""

    def pair_grads(self, *args, **kwargs):
        return {k: -v for k, v in super().pair_grads(*args, **kwargs).items()}


@dataclass
class FlippedPEPITA(PEPITA):
    """PEPITA with every layer's update negated: training with it must not lower the loss."""

    def layer_updates(self, *args, **kwargs):
        updates, logits = super().layer_updates(*args, **kwargs)
        return [-u for u in updates], logits


class ReversedFlipOptimizer(FlipOptimizer):
    """The flip optimizer with its rule's sign reversed: a weight flips when the filter agrees with its sign."""

    @staticmethod
    def flip_mask(sign: Tensor, m: Tensor, threshold: float) -> Tensor:
        return -sign * m > threshold
