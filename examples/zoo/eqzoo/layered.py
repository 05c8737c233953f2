"""A layered network in Laborieux et al.'s discrete-time form, s_l ← σ(∂Φ/∂s_l), written from scratch, with the
variants a user might write: another activation, a lateral coupling, states of large magnitude, float32 only, and
the broken ones (a nudge on another loss, a doubled nudge, a wrong declared energy, a closed form that is right only
at fixed points, a nudge with an even O(β²) term).

    Φ(x, s) = ⟨W_1 x + b_1, s_1⟩ + ⟨W_2 s_1 + b_2, s_2⟩ [+ ½·s_1·Λ s_1] − β·L(s, y),   L = ½‖s_2 − A·onehot(y)‖²

with σ(u) = A·sigmoid(4u/A − 2) (A = 1 is a smooth clip(u, 0, 1) of slope 1 at ½, the `sigmoid` here; A = 100
gives states of order 100, with targets on the same scale), and Λ = ½(M + Mᵀ) with a zero diagonal. Every weight
starts small enough for the synchronous map to contract.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eqbench import EnergyModel


class Layered(EnergyModel):
    """64 → hidden → 10, closed-form drive declared."""

    name = "LAYERED"
    has_closed_form = True

    def __init__(self, hidden: int = 32, act: str = "sigmoid", lateral: bool = False, amplitude: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__()
        self.in_shape, self.n_classes, self.hidden = (64,), 10, hidden
        self.name = name or self.name
        self.amplitude = float(amplitude)
        self.act_name = act
        self.w1, self.w2 = nn.Linear(64, hidden), nn.Linear(hidden, 10)
        with torch.no_grad():
            self.w2.weight.mul_(0.5)
            self.w1.bias.mul_(amplitude)  # drives on the states' scale (σ' ≤ 1 whatever A: ‖W_2‖ < 1 contracts)
        self.lateral = nn.Parameter(0.4 * torch.randn(hidden, hidden) / math.sqrt(hidden)) if lateral else None

    # the contract ---------------------------------------------------------------------------------
    def state_shapes(self):
        return [(self.hidden,), (10,)]

    def sigma(self, u):
        if self.act_name == "tanh":
            return torch.tanh(u)
        a = self.amplitude
        return a * torch.sigmoid(4.0 * u / a - 2.0)

    def activations(self):
        return [self.sigma, self.sigma]

    def output(self, s):
        return s[1]

    def target(self, y, like):
        return F.one_hot(y, 10).to(like.dtype)

    def loss(self, s, y):
        return 0.5 * ((s[1] - self.amplitude * self.target(y, s[1])) ** 2).sum(1)

    def coupling(self):
        """Λ = ½(M + Mᵀ) without self-coupling: symmetric whatever the optimizer does to M."""
        m = self.lateral
        return 0.5 * (m + m.T) * (1 - torch.eye(m.shape[0], dtype=m.dtype, device=m.device))

    def phi0(self, x, s):
        total = (self.w1(x) * s[0]).sum(1) + (self.w2(s[0]) * s[1]).sum(1)
        if self.lateral is not None:
            total = total + 0.5 * ((s[0] @ self.coupling()) * s[0]).sum(1)
        return total

    def phi(self, x, s, beta=0.0, y=None):
        return self.phi0(x, s) + self.nudge_term(s, beta, y)

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u1 = self.w1(x) + s[1] @ self.w2.weight
        if self.lateral is not None:
            u1 = u1 + s[0] @ self.coupling()
        u2 = self.w2(s[0])
        if beta != 0.0:
            u2 = u2 - beta * (s[1] - self.amplitude * self.target(y, s[1]))
        return [u1, u2]


def sigmoid_net(**kw) -> Layered:
    """The plain network: smooth units, closed form, nothing declared beyond it."""
    return Layered(name="SIGMOID_NET", **kw)


def tanh_lateral(**kw) -> Layered:
    """tanh units and a symmetric lateral coupling Λ = Λᵀ (zero diagonal) inside the hidden layer."""
    return Layered(act="tanh", lateral=True, name="TANH_LATERAL", **kw)


def large_states(**kw) -> Layered:
    """States of order 100 (σ(u) = 100·sigmoid(4u/100 − 2)): the same claims, judged on the model's own scales."""
    return Layered(amplitude=100.0, name="LARGE_STATES", **kw)


class Float32Only(Layered):
    """Runs in float32 only (its states are made in float32): checked in float32, where the symmetric estimator's
    O(β²) meets float32's noise floor before it spans a decade."""

    required_dtype = torch.float32

    def init_state(self, x):
        return [x.new_zeros((x.shape[0], n), dtype=torch.float32) for n in (self.hidden, 10)]


def float32_net(**kw) -> Float32Only:
    return Float32Only(name="FLOAT32_NET", **kw)


# broken variants ----------------------------------------------------------------------------------
class OtherLoss(Layered):
    """BROKEN: nudges with cross-entropy on the output while `loss()` (what BPTT differentiates) is the squared
    error: EP estimates the gradient of another loss, an O(1) error."""

    def phi(self, x, s, beta=0.0, y=None):
        out = self.phi0(x, s)
        return out if beta == 0.0 else out - beta * F.cross_entropy(s[1], y, reduction="none")

    has_closed_form = False


class DoubledNudge(Layered):
    """BROKEN: the nudge scaled by 2 (−2β·L): EP's update is twice the gradient, an O(1) error."""

    has_closed_form = False

    def phi(self, x, s, beta=0.0, y=None):
        return self.phi0(x, s) + 2.0 * self.nudge_term(s, beta, y)


class UnsymmetrizedLateral(Layered):
    """BROKEN: the lateral coupling stored as a free matrix Λ (symmetric at initialisation) whose closed form reads
    Λᵀs₁ — equal to ∂Φ/∂s₁ = ½(Λ + Λᵀ)s₁ at the weights it starts from, so the closed-form claim passes. But the
    parameter is unconstrained: BPTT's gradient through the closed form, s₁λᵀ, is not EP's, ½(s₁λᵀ + λs₁ᵀ), and one
    optimizer step makes Λ asymmetric. Only the GDU orders can tell (the key ``lateral``)."""

    def coupling(self):
        return self.lateral


class WrongEnergy(Layered):
    """BROKEN: declares E = ½‖s‖² − Φ, the energy of clip units, but its units are sigmoids: the dynamics do not
    descend it (its GDU claims hold: only the energy claim can tell)."""

    def energy(self, x, s, beta=0.0, y=None):
        return sum(0.5 * (si ** 2).sum(1) for si in s) - self.phi(x, s, beta, y)


class WrongClosedForm(Layered):
    """BROKEN: a closed form right at every fixed point (s = σ(u)) and wrong off it, u + ½·(s − σ(u)): the free phase
    still converges to the true fixed point, but the dynamics it relaxes are not the gradient flow of Φ."""

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u = super().closed_form_drive(x, s, beta, y, cache=cache)
        return [ui + 0.5 * (si - self.sigma(ui)) for ui, si in zip(u, s)]


class EvenNudge(Layered):
    """THEORY-INVISIBLE: the nudge carries an extra even term, −β·L + β²·½‖s_2‖². It is not the gradient nudge, yet
    the one-sided error stays O(β) and the symmetric one O(β²) (the β² term moves s^{+β} and s^{−β} alike and cancels
    in their difference; it adds nothing to ∂θΦ): the GDU theorem cannot see it, so every claim passes."""

    has_closed_form = False

    def phi(self, x, s, beta=0.0, y=None):
        even = 0.5 * beta ** 2 * (s[1] ** 2).sum(1)
        return self.phi0(x, s) + self.nudge_term(s, beta, y) + even


def other_loss(**kw) -> OtherLoss:
    return OtherLoss(name="OTHER_LOSS", **kw)


def doubled_nudge(**kw) -> DoubledNudge:
    return DoubledNudge(name="DOUBLED_NUDGE", **kw)


def unsymmetrized_lateral(**kw) -> UnsymmetrizedLateral:
    model = UnsymmetrizedLateral(act="tanh", lateral=True, name="UNSYMMETRIZED_LATERAL", **kw)
    with torch.no_grad():
        model.lateral.copy_(Layered.coupling(model))  # symmetric (and zero-diagonal) where it starts
    return model


def wrong_energy(**kw) -> WrongEnergy:
    return WrongEnergy(name="WRONG_ENERGY", **kw)


def wrong_closed_form(**kw) -> WrongClosedForm:
    return WrongClosedForm(name="WRONG_CLOSED_FORM", **kw)


def even_nudge(**kw) -> EvenNudge:
    return EvenNudge(name="EVEN_NUDGE", **kw)
