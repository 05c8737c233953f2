"""Negative controls: deliberately broken variants of a rule and an optimizer that every check must catch.

A suite that cannot fail proves nothing; each of these must make its check fail, and the claims
catalogue (eqbench.claims) asserts that it does. Broken variants of a model live with their model
(e.g. eqbench.models.sequence.ValuesUnlikeKeys), so that this module names none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..optim import FlipOptimizer
from ..rules import EP, CoupledLearning, LearningRule, Series
from ..rules.forward import PEPITA


@dataclass
class FlippedSignEP(EP):
    """EP with the sign of its estimator flipped: the update then points up the loss."""

    def pair_grads(self, *args, **kwargs):
        return {k: -v for k, v in super().pair_grads(*args, **kwargs).items()}


class SignFlipped(LearningRule):
    """Any rule with its update negated (per step and in ``.grad``): the GDU check must fail on it, whatever the
    model, which is what proves that the check can fail there (``eqbench check``'s generic control)."""

    def __init__(self, rule: LearningRule) -> None:
        self.rule = rule
        self.T1, self.T2, self.mode, self.closed_form = rule.T1, rule.T2, rule.mode, rule.closed_form

    def detailed_gradients(self, *args, **kwargs) -> Series:
        return {k: -v for k, v in self.rule.detailed_gradients(*args, **kwargs).items()}

    def compute_gradients(self, model, x: Tensor, y: Tensor, **kw) -> dict:
        info = self.rule.compute_gradients(model, x, y, **kw)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.neg_()
        return info

    def predict(self, model, x: Tensor, **kw):
        return self.rule.predict(model, x, **kw)


@dataclass
class FlippedPEPITA(PEPITA):
    """PEPITA with every layer's update negated: training with it must not lower the loss."""

    def layer_updates(self, model, x, y, masks):
        updates, logits = super().layer_updates(model, x, y, masks)
        return [-u for u in updates], logits


class ReversedFlipOptimizer(FlipOptimizer):
    """The flip optimizer with its rule's sign reversed: a weight flips when the filter agrees with its sign."""

    @staticmethod
    def flip_mask(sign: Tensor, m: Tensor, threshold: float, at_threshold: bool = False) -> Tensor:
        return FlipOptimizer.flip_mask(-sign, m, threshold, at_threshold)


@dataclass(kw_only=True)
class UncontrastedCL(CoupledLearning):
    """Coupled learning without the free phase's term: −∂θΦ(s^C)/η (contrasted with the zero state, where a layered
    model's ∂θΦ vanishes), which grows as 1/η instead of converging as η → 0."""

    def pair_grads(self, model, x, y, free, s1, *rest, **kw):
        zero = [torch.zeros_like(t) for t in s1]
        return super().pair_grads(model, x, y, free, zero, *rest, **kw)
