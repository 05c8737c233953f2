"""Laydevant et al. 2021's dynamical binary networks: binary weights (bin_W), and binary weights with
binary neurons (bin_W_N), fully connected or convolutional.

One class, :class:`BinaryEP`, a :class:`~eqbench.models.layered.LayeredEP` whose weights are kept at
±α and whose step rule is the authors' (§D.3). ``binary`` selects the variant:

* ``"W"`` (bin_W): binary weights, real activations ρ = hardsigm = clamp(·, 0, 1); prototypical
  dynamics s_l ← ρ(f_{l−1}(s_{l−1}) + f_lᵀ(s_{l+1}) + b_l), i.e. Laborieux's P_MLP / P_CNN with the
  weights W = α·sign(W) held fixed during a relaxation, so the EP theory (and the engine's GDU
  check) applies unchanged.
* ``"W_N"`` (bin_W_N): binary weights and binary neurons. Each layer keeps a continuous accumulator
  s ∈ [0, 1] and emits the activity a = H(s − θ) (θ = ``rho_threshold`` = 0.5, H(0) = 1); the input
  stays real. Φ(x, s) = Σ_l ⟨f_l(a_l), a_{l+1}⟩ (a_0 = x) with the authors' pseudo-derivative
  ∂a/∂s = 1[|s − θ| ≤ ½], and the step is the leaky accumulator
  s ← clamp((1 − γ_n)·s + γ_n·u, 0, 1), u = ∂Φ_β/∂s, γ_n = ``gamma_neur``. The EP update
  −∂θ[Φ_β(s^β) − Φ(s*)]/β is then the authors' (a^β a^βᵀ − a* a*ᵀ)/(βB) on the activities.
* ``"none"``: the same network, dynamics and readout with full-precision weights, the reference
  against which the paper's relative claims are stated; it trains with SGD.

Weights (§D.2): PyTorch's default init, then α = round(mean|W|, 4) per layer (per output channel of a
conv layer) and W ← α·sign(W). The magnitude |W| *is* α: the flip optimizer
(:class:`eqbench.optim.FlipOptimizer`) flips signs and, when α is learnt, rescales W, so no separate
α tensor can drift from the weights. Biases keep their default init (``zero_bias=True``: zeros, as
the authors' conv bin_W_N).

Nudge (``nudge``): ``"reference"`` (default for bin_W, the authors' code) adds β(y − s_out) *after*
ρ: s_out ← clamp(ρ(u) + β(y − s_out), 0, 1). Where ρ(u) lies inside (0, 1) this is the gradient nudge
s_out ← ρ(u + β(y − s_out)) of EP's theory (``"gradient"``); on a saturated output unit the reference
nudge still moves it, the gradient one does not, so only the gradient nudge is an exact GDU case.
For bin_W_N both coincide (the pseudo-derivative is 1 on [0, 1]).

``expand_output`` = k repeats each class's target k times (k output units per class); the class score is
the mean of its k units (the authors' "ave" readout). The loss is ½‖t − s_out‖² on the expanded
target t (MSE only, as the paper).

Deviations from the authors, also stated where they apply:

* the conv bin_W output is clamped to [0, 1] like the fc one (the authors' conv code leaves it
  unclamped after the nudge);
* conv bin_W_N nudges towards y − s_out like every other variant (the authors' conv bin_W_N code uses
  the constant free-phase output instead of the current one);
* the bias update of bin_W_N uses the activities, as the weights' (∂Φ/∂b_l = a_l);
* the conv update pools the final state: the authors' conv update reuses the pooling indices of the last
  relaxation step, pooled from the state *before* it. The two agree at a fixed point and differ off one (the
  top conv layer's update by 2–5e-2 at the paper's step counts in float64, as measured for issue 33;
  ``tests/test_binary.py`` shows both sides). eqbench keeps Φ's own gradient: EP's update is a difference of
  ∂Φ at two states, and stale indices make it the gradient of another function.

Max pooling breaks ties within the convolution's round-off the same way in NCHW and NHWC
(eqbench.models.pooling), so the memory layout is a speed choice only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import State
from .layered import LayeredEP

BINARY = ("W", "W_N", "none")
NUDGES = ("reference", "gradient")
STATE_INITS = {"zeros": 0.0, "half": 0.5, "ones": 1.0}


def heaviside(s: Tensor, theta: float) -> Tensor:
    """a = H(s − θ) with H(0) = 1, and the authors' pseudo-derivative ∂a/∂s = 1[|s − θ| ≤ ½] (§D.1)."""
    hard = (s >= theta).to(s.dtype)
    window = ((s - theta).abs() <= 0.5).to(s.dtype)
    return hard + (s - s.detach()) * window


@torch.no_grad()
def binarize_(weight: Tensor, per_channel: bool) -> Tensor:
    """W ← α·sign(W) with α = round(mean|W|, 4) per layer or per output channel (Laydevant §D.2).

    The mean is accumulated in float64, i.e. exact before the rounding. The authors' float32
    ``norm(W, p=1) / numel`` drifts by summation round-off on wide layers (about −3e-6 on 784×8192, whose
    mean|W| ≈ 0.01786): it rounds to 0.0178 where the exact mean gives 0.0179 for 5 of 20 seeds of
    PyTorch's default init. That is an artefact of their summation order, not of the method, so eqbench
    takes the exact mean. A zero weight takes the sign +1, so every weight is ±α (the authors' sign(0) = 0
    would leave it 0); returns α.
    """
    dims = tuple(range(1, weight.dim())) if per_channel else tuple(range(weight.dim()))
    mean = weight.abs().mean(dim=dims, keepdim=True, dtype=torch.float64)
    alpha = torch.round(mean * 1e4) / 1e4
    alpha = torch.where(alpha > 0, alpha, mean).to(weight.dtype)  # a layer so wide that mean|W| < 5e-5: unrounded
    weight.copy_(alpha * torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype))
    return alpha.flatten()


class BinaryEP(LayeredEP):
    """bin_W / bin_W_N networks of Laydevant et al. 2021 (and their full-precision twin, ``binary="none"``)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        *,
        binary: str = "W",
        channels: Sequence[int] = (),
        kernels: Sequence[int] = (),
        paddings: Sequence[int] | None = None,
        pools: str | None = None,
        pool_size: int = 2,
        fc: Sequence[int] = (10,),
        act: str = "hard_sigmoid",
        nudge: str | None = None,
        expand_output: int = 1,
        gamma_neur: float = 0.5,
        rho_threshold: float = 0.5,
        state_init: str | None = None,
        zero_bias: bool = False,
        name: str | None = None,
    ) -> None:
        if binary not in BINARY:
            raise ConfigError(f"unknown binary setting {binary!r}; known: W (bin_W), W_N (bin_W_N), none")
        n_conv = len(list(channels))
        super().__init__(in_shape, channels=channels, kernels=kernels, paddings=paddings,
                         pools="m" * n_conv if pools is None else pools, pool_size=pool_size, fc=fc, act=act,
                         loss="mse", name=name or f"BIN_{'CNN' if n_conv else 'MLP'}")
        self.binary = binary
        self.flip_at_threshold = n_conv > 0  # the authors' conv updateWeight compares with ≥, their fc one with >
        self.nudge = nudge or "reference"
        if self.nudge not in NUDGES:
            raise ConfigError(f"unknown nudge {self.nudge!r}; known: {', '.join(NUDGES)}")
        if self.nudge == "reference" and binary != "W_N" and self.act.clip_a is None:
            raise ConfigError(f"the reference nudge (after ρ) needs a clipping activation; {act} is not one "
                              "(use hard_sigmoid, the authors' hardsigm, or nudge: gradient)")
        if isinstance(expand_output, bool) or not isinstance(expand_output, int) or expand_output < 1 \
                or self.n_classes % expand_output:
            raise ConfigError(f"expand_output must be a positive integer dividing the {self.n_classes} output "
                              f"units, got {expand_output!r}")
        if not 0.0 < gamma_neur <= 1.0:
            raise ConfigError(f"gamma_neur must lie in (0, 1], got {gamma_neur}")
        self.expand = expand_output
        self.n_classes //= expand_output
        self.gamma_neur, self.theta = float(gamma_neur), float(rho_threshold)
        default_init = "ones" if binary == "W_N" else ("half" if n_conv else "zeros")
        self.state_init = state_init or default_init
        if self.state_init not in STATE_INITS:
            raise ConfigError(f"unknown state_init {self.state_init!r}; known: {', '.join(STATE_INITS)}")
        with torch.no_grad():
            if zero_bias:
                for m in self.synapses:
                    m.bias.zero_()
            if binary != "none":
                for m in self.synapses:
                    binarize_(m.weight, per_channel=isinstance(m, nn.Conv2d))

    # ----------------------------------------------------------------------------- binary weights
    def binary_weights(self) -> list[nn.Parameter]:
        """The ±α weight of every connection, bottom to top (none for the full-precision twin)."""
        return [] if self.binary == "none" else [m.weight for m in self.synapses]

    @torch.no_grad()
    def alphas(self) -> list[float]:
        """Each connection's α = |W| (the mean over output channels for a conv layer)."""
        return [float(m.weight.abs().amax(dim=tuple(range(1, m.weight.dim()))).double().mean()) for m in self.synapses]

    # ----------------------------------------------------------------------------- state and readout
    def epoch_metrics(self, batches: list[dict[str, float]]) -> dict[str, float]:
        """The scale α of each binary layer (``alpha/k``)."""
        return {f"alpha/{k + 1}": a for k, a in enumerate(self.alphas())} if self.binary != "none" else {}

    def energy(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor | None:
        """½·Σ‖s_l‖² − Φ_β for bin_W (hardsigm is the clip with a = 1); None for binary neurons (bin_W_N), whose
        convergence `eqbench.activity.activity_convergence` checks instead."""
        return None if self.binary == "W_N" else super().energy(x, s, beta, y)

    def init_state(self, x: Tensor) -> State:
        """Zeros (fc bin_W), ½ (conv bin_W) or ones (bin_W_N), as the authors' ``initHidden``."""
        x = self.check_input(x)
        fill = STATE_INITS[self.state_init]
        return [x.new_full((x.shape[0], *shape), fill) for shape in self.state_shapes()]

    def activity(self, s: Tensor) -> Tensor:
        """What a layer sends to its neighbours: s itself, or H(s − θ) for binary neurons."""
        return heaviside(s, self.theta) if self.binary == "W_N" else s

    def target(self, y: Tensor, like: Tensor) -> Tensor:
        """One-hot (or float) targets, each class repeated ``expand_output`` times."""
        return self.target_matrix(y, like.dtype).repeat_interleave(self.expand, dim=1)

    def output(self, s: State) -> Tensor:
        out = s[-1].flatten(1)  # the mean of each class's ``expand`` units (itself when expand = 1)
        return out.reshape(out.shape[0], self.n_classes, self.expand).mean(2)

    def loss(self, s: State, y: Tensor) -> Tensor:
        """½‖t − s_out‖² on the expanded target (Laydevant: MSE on every output unit)."""
        if y is None:
            raise ConfigError("a nudged phase or a loss needs targets y")
        out = s[-1].flatten(1)
        return 0.5 * ((self.target(y, out) - out) ** 2).sum(1)

    def loss_grad(self, s: State, y: Tensor) -> Tensor:
        if y is None:
            raise ConfigError("a nudged phase needs targets y")
        out = s[-1].flatten(1)
        return (out - self.target(y, out)).reshape(s[-1].shape)

    # ----------------------------------------------------------------------------- dynamics
    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """Φ = Σ_l ⟨f_l(a_l), a_{l+1}⟩ − β·L(s) with a the activities (the states for bin_W)."""
        a = [self.activity(si) for si in s]
        total = self._phi_mixed(x, a, a, 0.0, None)
        return total if beta == 0.0 else total + self.nudge_term(s, beta, y)

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        """u_l = ∂a_l/∂s_l ⊙ (f_{l−1}(a_{l−1}) + f_lᵀ(a_{l+1})) − β ∂L/∂s_l: LayeredEP's closed form on the
        activities."""
        if self.binary != "W_N":
            return super().closed_form_drive(x, s, beta, y, cache=cache)
        a = [(si >= self.theta).to(si.dtype) for si in s]
        u = super().closed_form_drive(x, a, 0.0, None, cache=cache)
        u = [ui * ((si - self.theta).abs() <= 0.5).to(ui.dtype) for ui, si in zip(u, s)]
        if beta != 0.0:
            u[-1] = u[-1] - beta * self.loss_grad(s, y)
        return u

    def drive(self, x, s, beta=0.0, y=None, *, closed_form=True, create_graph=False, cache=None):
        """The reference nudge of bin_W: the output's drive becomes a·(ρ(u) + β(y − s_out)) so that
        the step σ(·) = clip(·/a, 0, 1) is the authors' clamp(ρ(u) + β(y − s_out), 0, 1) (§D.3)."""
        if self.nudge == "gradient" or beta == 0.0 or self.binary == "W_N":
            return super().drive(x, s, beta, y, closed_form=closed_form, create_graph=create_graph, cache=cache)
        u = super().drive(x, s, 0.0, None, closed_form=closed_form, create_graph=create_graph, cache=cache)
        u[-1] = self.act.clip_a * (self.act(u[-1]) - beta * self.loss_grad(s, y))
        return u

    def update(self, s: State, u: State) -> State:
        """bin_W: s ← ρ(u) (prototypical, dt = 1); bin_W_N: the leaky accumulator
        s ← clamp((1 − γ_n)·s + γ_n·u, 0, 1) (Laydevant §D.3)."""
        if self.binary != "W_N":
            return super().update(s, u)
        g = self.gamma_neur
        return [((1.0 - g) * si + g * ui).clamp(0.0, 1.0) for si, ui in zip(s, u)]


def bin_mlp(sizes: Sequence[int] = (784, 4096, 10), **kw) -> BinaryEP:
    """BIN_MLP: ``sizes`` lists every layer, input first (the authors' ``--layersList`` before reversal)."""
    sizes = list(sizes)
    return BinaryEP((sizes[0],), fc=sizes[1:], **kw)


def bin_cnn(in_shape: Sequence[int] = (1, 28, 28), **kw) -> BinaryEP:
    """BIN_CNN: ``channels`` bottom-up (the reverse of ``--convList``), ``kernels``, ``paddings``,
    max pooling of ``pool_size`` (``--Fpool``) after every conv, then ``fc`` (``--layersList``)."""
    return BinaryEP(in_shape, **kw)


class NativeTiesBinaryEP(BinaryEP):
    """Negative control of the layout claim: plain max pooling, whose choice among the rounded ties of the ½ start
    follows the memory layout's rounding (eqbench.models.pooling)."""

    def _max_pool(self, z: Tensor, k: int, gap: Tensor) -> tuple[Tensor, Tensor]:
        return F.max_pool2d(z, k, k, return_indices=True)


def native_ties_bin_cnn(in_shape: Sequence[int] = (1, 28, 28), **kw) -> BinaryEP:
    return NativeTiesBinaryEP(in_shape, name="BIN_CNN with plain max pooling", **kw)
