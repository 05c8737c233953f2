"""A leaky-clip EP network with skip connections from the input to every layer.

Written against eqbench's public model contract (`eqbench.EnergyModel`) only. With layer 0 the input x,
state layers s_1 … s_L, connections f_l(v) = W_l·v + b_l from layer l to layer l + 1 and skip
connections V_l (no bias) from the input to every layer l ≥ 2, the primitive function is

    Φ(x, s) = Σ_{l=0}^{L−1} ⟨f_l(s_l), s_{l+1}⟩ + Σ_{l=2}^{L} ⟨V_l·x, s_l⟩ − β·L(s, y),   L = ½‖s_L − onehot(y)‖²

(eqbench's P_MLP primitive plus the skips) and one step is s_l ← σ(∂Φ_β/∂s_l), every layer at once:

    u_l = W_{l−1}·s_{l−1} + b_{l−1} + V_l·x + W_lᵀ·s_{l+1}   (− β·(s_L − onehot(y)) on the output layer).

The activation is a *leaky clip*, the difference of two softplus functions of sharpness k,

    σ(u) = [softplus(k·u) − softplus(k·(u − 1))] / k,

a smooth version of clip(u, 0, 1): bounded in (0, 1), σ(½) = ½, slope σ′(u) = sigmoid(k·u) − sigmoid(k·(u − 1))
at most tanh(k/4) — and never zero, so the gradient leaks past the clip's corners, where a hard clip stops it.
It has no kinks, which eqbench's GDU theorem needs to see its orders in β. Softplus is evaluated as
``logaddexp(z, 0)``, exact for every z: ``torch.nn.functional.softplus`` switches to z above z = 20 and jumps
by log1p(e⁻²⁰) ≈ 2e-9 there — a kink that a nudge divided by β = 1e-4 would turn into a 2e-5 error.

Convergence by construction: the state-to-state weights W_1 … W_{L−1} start with spectral norm ``coupling``
(default ½). The Hessian H = ∂²Φ/∂s² is block tridiagonal with those blocks, so ‖H‖₂ ≤ 2·coupling, and the
synchronous map s ↦ σ(H·s + c) is a contraction with factor q ≤ 2·coupling·tanh(k/4) ≈ 0.76 at the defaults
(k = 4): the free phase reaches its fixed point to float64 round-off well within 300 steps, on any input.

`leaky_mlp_broken` is the twin that eqbench's GDU check must reject: its top-down drive goes through
independent feedback weights B_l instead of W_lᵀ (a "vector-field" model), so its step is no gradient of any
primitive and EP no longer computes BPTT's gradients. Its closed form still matches its own autograd drive
(the mixed primitive of `drive_potential`), and it still converges: only the GDU check can tell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from eqbench import EnergyModel
from torch import Tensor, nn

State = list[Tensor]


class SoftClip:
    """σ(u) = [softplus(k·u) − softplus(k·(u − 1))] / k: a smooth clip(u, 0, 1), sharpness k."""

    def __init__(self, sharpness: float = 4.0) -> None:
        if not (math.isfinite(sharpness) and sharpness > 0):
            raise ValueError(f"the sharpness k must be positive and finite, got {sharpness!r}")
        self.k = float(sharpness)
        self.name = f"soft_clip(k={self.k:g})"
        #: sup σ′ = σ′(½) = tanh(k/4): the activation's Lipschitz constant
        self.lipschitz = math.tanh(self.k / 4.0)

    def __call__(self, u: Tensor) -> Tensor:
        k = self.k
        zero = u.new_zeros(())
        return (torch.logaddexp(k * u, zero) - torch.logaddexp(k * (u - 1.0), zero)) / k

    def __repr__(self) -> str:
        return f"SoftClip(sharpness={self.k:g})"


def _spectral_rescale_(linear: nn.Linear, norm: float) -> None:
    with torch.no_grad():
        s = torch.linalg.matrix_norm(linear.weight, ord=2)
        if s > 0:
            linear.weight.mul_(norm / s)


class LeakyMLP(EnergyModel):
    """Layered EP network with leaky-clip units and input skips; ``feedback=True`` is the broken twin."""

    has_closed_form = True

    def __init__(self, sizes: Sequence[int] = (64, 32, 10), *, sharpness: float = 4.0, coupling: float = 0.5,
                 feedback: bool = False, name: str | None = None) -> None:
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"sizes lists the input and at least one layer, all positive; got {sizes}")
        if feedback and len(sizes) < 3:
            raise ValueError("independent feedback needs a hidden layer (sizes of length ≥ 3)")
        if not (math.isfinite(coupling) and coupling > 0):
            raise ValueError(f"coupling (initial spectral norm of W_1 … W_{{L-1}}) must be positive, got {coupling}")
        self.sizes = sizes
        self.in_shape = (sizes[0],)
        self.n_classes = sizes[-1]
        self.feedback = feedback
        self.name = name or ("LEAKY_MLP_BROKEN" if feedback else "LEAKY_MLP")
        self.act = SoftClip(sharpness)
        self.synapses = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.skips = nn.ModuleList([nn.Linear(sizes[0], n, bias=False) for n in sizes[2:]])
        self.feedbacks = nn.ModuleList(
            [nn.Linear(a, b, bias=False) for a, b in zip(sizes[1:-1], sizes[2:])] if feedback else [])
        for lin in [*list(self.synapses)[1:], *self.feedbacks]:
            _spectral_rescale_(lin, coupling)

    # ----------------------------------------------------------------------------- the contract
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(n,) for n in self.sizes[1:]]

    def activations(self) -> list:
        return [self.act] * (len(self.sizes) - 1)

    def output(self, s: State) -> Tensor:
        return s[-1]

    def _target(self, y: Tensor, out: Tensor) -> Tensor:
        y = self.check_target(y, out.shape[0])
        return F.one_hot(y, self.n_classes).to(out.dtype) if y.dtype == torch.long else y.to(out.dtype)

    def loss(self, s: State, y: Tensor) -> Tensor:
        if y is None:
            raise ValueError("a loss or a nudged phase needs targets y")
        return 0.5 * ((s[-1] - self._target(y, s[-1])) ** 2).sum(1)

    def _input_terms(self, x: Tensor) -> list[Tensor]:
        """The drive that the input gives every layer: f_0(x) to layer 1, V_l·x to layer l ≥ 2."""
        return [self.synapses[0](x), *(v(x) for v in self.skips)]

    def _phi_mixed(self, x: Tensor, pre: State, post: State, beta: float, y: Tensor | None,
                   feedback: bool = True) -> Tensor:
        """Σ ⟨f_l(pre_l), post_{l+1}⟩ + Σ ⟨V_l·x, post_l⟩ [+ Σ ⟨g_l(post_l), pre_{l+1}⟩] − β·L(post).

        At pre = post = s without the feedback terms it is Φ_β; with them (the twin) its gradient in
        ``post`` at pre = post is the vector-field drive: bottom-up through W_l (the terms in ``pre_l``),
        top-down through B_l (the terms in ``post_l``).
        """
        x = self.check_input(x)
        lo = [x, *pre]
        total = x.new_zeros(x.shape[0])
        for l, f in enumerate(self.synapses):
            total = total + (f(lo[l]) * post[l]).sum(1)
        for l, v in enumerate(self.skips, start=1):
            total = total + (v(x) * post[l]).sum(1)
        for l, g in enumerate(self.feedbacks if feedback else [], start=1):
            total = total + (g(post[l - 1]) * pre[l]).sum(1)
        if beta != 0.0:
            total = total - beta * self.loss(post, y)
        return total

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """Φ_β(x, s); the twin's Φ (what its EP update differentiates) has the forward weights only."""
        return self._phi_mixed(x, s, s, beta, y, feedback=False)

    def drive_potential(self, x: Tensor, pre: State, post: State, beta: float, y: Tensor | None) -> Tensor:
        """Whose gradient in ``post`` at pre = post = s is the drive: Φ_β(post) itself, or for the twin the
        mixed primitive (its top-down terms read ``post`` through B_l, its bottom-up ones ``pre``)."""
        return self._phi_mixed(x, pre, post, beta, y) if self.feedback else self.phi(x, post, beta, y)

    # ----------------------------------------------------------------------------- closed form
    def closed_form_drive(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None, *,
                          cache: dict | None = None) -> State:
        """u_l = W_{l−1}s_{l−1} + b_{l−1} + V_l·x + W_lᵀs_{l+1} (B_lᵀ for the twin) − β·(s_L − onehot(y)).

        The input's terms (f_0(x), V_l·x) are constant over a relaxation and kept in ``cache``.
        """
        x = self.check_input(x)
        if cache is not None and "input_drive" in cache:
            inp = cache["input_drive"]
        else:
            inp = self._input_terms(x)
            if cache is not None:
                cache["input_drive"] = inp
        top = self.feedbacks if self.feedback else list(self.synapses)[1:]
        u = []
        for i in range(len(s)):  # state i is layer i + 1
            ui = inp[i] if i == 0 else inp[i] + self.synapses[i](s[i - 1])
            if i + 1 < len(s):
                ui = ui + s[i + 1] @ top[i].weight
            u.append(ui)
        if beta != 0.0:
            if y is None:
                raise ValueError("a nudged phase needs targets y")
            u[-1] = u[-1] - beta * (s[-1] - self._target(y, s[-1]))
        return u


def leaky_mlp(sizes: Sequence[int] = (64, 32, 10), **kw) -> LeakyMLP:
    """LEAKY_MLP: ``sizes`` lists every layer, input first; ``sharpness`` (k, default 4) and ``coupling`` (the
    initial spectral norm of the state-to-state weights, default ½) keep the free phase a contraction."""
    return LeakyMLP(sizes, **kw)


def leaky_mlp_broken(sizes: Sequence[int] = (64, 32, 10), **kw) -> LeakyMLP:
    """LEAKY_MLP_BROKEN: LEAKY_MLP with independent top-down weights (no gradient system: GDU must fail)."""
    return LeakyMLP(sizes, feedback=True, **kw)
