"""Negative controls: deliberately broken variants that every check must catch.

A suite that cannot fail proves nothing; each of these must make its check fail, and the suites
assert that it does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..forward import PEPITA
from ..models.sequence import SequenceEP
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


class ValuesUnlikeKeys(SequenceEP):
    """Bal & Sengupta's model with a retrieval whose values V = XM differ from its keys X.

    r(g) = softmax(c·gXᵀ)X is the gradient of (1/c)·lse(c·gXᵀ), with the symmetric Jacobian c·Xᵀ(diag p − ppᵀ)X;
    with values XM the Jacobian c·Mᵀ Xᵀ(diag p − ppᵀ)X is not symmetric, r is no gradient, and EP must part
    from BPTT (the GDU check must fail).
    """

    def retrieve(self, g: Tensor, keys: Tensor) -> Tensor:
        d = keys.shape[-1]
        M = torch.eye(d, dtype=keys.dtype) + 0.5 * torch.linspace(-1, 1, d * d, dtype=keys.dtype).reshape(d, d)
        return torch.softmax(self.scale * g @ keys.transpose(1, 2), dim=-1) @ (keys @ M)


def values_unlike_keys_case() -> tuple[ValuesUnlikeKeys, Tensor, Tensor]:
    """(model, x, y): the ``SEQ_IMDB (retrieval step)`` theorem case with :class:`ValuesUnlikeKeys`."""
    from ..cases import DEFAULTS, THEOREM_CASES, case

    _, x, y = case(THEOREM_CASES["SEQ_IMDB (retrieval step)"])
    torch.manual_seed(0)
    d = DEFAULTS["SEQ_IMDB"]
    return ValuesUnlikeKeys(d["seq_len"], d["dim"], fc=d["fc"], act="my_sigmoid").double(), x, y
