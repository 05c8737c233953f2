"""A network written in "vector-field" form: the drive of each layer reads the layer below through forward weights W
and the layer above through feedback weights B, declared through `drive_potential(x, pre, post, β, y)` — the function
whose gradient in ``post`` (at pre = post = s) is the drive:

    V(pre, post) = ⟨W_1 x + b_1, post_1⟩ + ⟨W_2 pre_1 + b_2, post_2⟩ + ⟨Bᵀ pre_2, post_1⟩ − β·L(post)

    u_1 = W_1 x + b_1 + Bᵀ s_2,   u_2 = W_2 s_1 + b_2 − β(s_2 − onehot(y)),   s ← sigmoid(4u − 2).

With B = W_2 (`tied_feedback`) the drive is ∂Φ/∂s for Φ = ⟨W_1 x + b_1, s_1⟩ + ⟨W_2 s_1 + b_2, s_2⟩ − β·L: an
asymmetric *form* with a valid gradient system, and EP computes BPTT's gradients. With B independent
(`untied_feedback`, BROKEN) the dynamics are no gradient flow: EP's update (∂θΦ) no longer matches BPTT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eqbench import EnergyModel


class Feedback(EnergyModel):
    in_shape = (64,)
    n_classes = 10
    has_closed_form = True

    def __init__(self, tied: bool = True, hidden: int = 32) -> None:
        super().__init__()
        self.tied, self.hidden = tied, hidden
        self.name = "TIED_FEEDBACK" if tied else "UNTIED_FEEDBACK"
        self.w1, self.w2 = nn.Linear(64, hidden), nn.Linear(hidden, 10)
        self.b = None if tied else nn.Parameter(0.5 * torch.randn(10, hidden) / hidden ** 0.5)

    def feedback(self):
        return self.w2.weight if self.tied else self.b

    def state_shapes(self):
        return [(self.hidden,), (10,)]

    def activations(self):
        act = lambda u: torch.sigmoid(4.0 * u - 2.0)  # noqa: E731
        return [act, act]

    def output(self, s):
        return s[1]

    def loss(self, s, y):
        return 0.5 * ((s[1] - F.one_hot(y, 10).to(s[1].dtype)) ** 2).sum(1)

    def phi(self, x, s, beta=0.0, y=None):
        total = (self.w1(x) * s[0]).sum(1) + (self.w2(s[0]) * s[1]).sum(1)
        return total + self.nudge_term(s, beta, y)

    def drive_potential(self, x, pre, post, beta, y):
        total = (self.w1(x) * post[0]).sum(1) + (self.w2(pre[0]) * post[1]).sum(1)
        total = total + ((pre[1] @ self.feedback()) * post[0]).sum(1)
        return total + self.nudge_term(post, beta, y)

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u1 = self.w1(x) + s[1] @ self.feedback()
        u2 = self.w2(s[0])
        if beta != 0.0:
            u2 = u2 - beta * (s[1] - F.one_hot(y, 10).to(s[1].dtype))
        return [u1, u2]


def tied_feedback(**kw) -> Feedback:
    return Feedback(tied=True, **kw)


def untied_feedback(**kw) -> Feedback:
    return Feedback(tied=False, **kw)
