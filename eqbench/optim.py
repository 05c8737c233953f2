"""The flip optimizer of Laydevant et al. 2021 (§D.5, after Helwegen et al.'s BOP) as a ``torch.optim.Optimizer``.

Binary weights W ∈ {−α, +α} are never moved by a gradient step; each keeps a low-pass-filtered gradient
and flips its sign when that filter points against the sign strongly enough. With G = ``p.grad`` (the
descent-form gradient every learning rule of eqbench writes, ≈ +∂L/∂W; the authors' EP update is −G)::

    m ← (1 − γ)·m + γ·G                     (m = 0 before the first step, so the first m is γ·G)
    flip W_ij  ⟺  sign(W_ij)·m_ij > τ       (≥ τ in a group with ``at_threshold``)

i.e. the authors' ``−sign(W)·m_EP > τ`` written with G = −m_EP. Their fully connected code (bin_W and
bin_W_N) compares with ``>``, their convolutional code with ``≥``; a model declares which of the two it
follows (``Trainable.flip_at_threshold``, true for Laydevant's conv networks) and `flip_groups` passes it on.
Exact ties are real: with binary activities the EP update is a multiple of 1/(β·B), so γ·G = τ happens.
A group with ``at_threshold`` needs τ > 0 (with τ = 0 every weight whose filter is exactly 0 would flip at
every step). With γ = 1 and τ = 0 the rule is sign descent on the last gradient: W ← −α·sign(G) where G ≠ 0.
The filter is not reset after a flip (as the authors).

Signs: a weight is +α or −α, never 0. ``sign(W)`` here is +1 for W ≥ 0, so a weight that is exactly 0 (which
`eqbench.models.binary.binarize_` never leaves) would become +α at the next step; the authors' ``sign(0) = 0``
keeps such a weight at 0 for ever, a dead connection that a binary network has no place for.

Per binary group (one layer's weights): ``gamma`` γ, ``threshold`` τ, ``lr`` (α's rate; 0 keeps α
fixed) and ``per_channel`` (one α per output channel: conv layers). α is |W| itself; when learnt it
takes the step α ← α − lr·⟨W, G⟩ = α − lr·α·∂L/∂α (per layer or channel) before the new signs are
applied, and stays positive (clamped at the smallest normal number): a negative α would swap the meaning of
every sign of the layer. The authors' α is unbounded. Their fc code has an extra factor ½ in this step (their
conv code does not): it is folded into the ``lrs_alpha`` of the paper configs (½ × ``--lrAlpha`` for fc).

Other groups (biases) take plain SGD, p ← p − lr·G, with their own rates (the authors' ``lrBias``).
After each step ``flips`` holds the number of sign changes per binary weight tensor (one per layer with
:func:`flip_groups`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .errors import ConfigError


class FlipOptimizer(torch.optim.Optimizer):
    """Flips for the binary groups, SGD for the others (Laydevant et al. 2021, §D.5)."""

    def __init__(self, params: Iterable) -> None:
        defaults = {"lr": 0.0, "binary": False, "gamma": 1.0, "threshold": 0.0, "per_channel": False,
                    "at_threshold": False}
        super().__init__(params, defaults)
        for i, g in enumerate(self.param_groups):
            if g["binary"] and not 0.0 < g["gamma"] <= 1.0:
                raise ConfigError(f"flip optimizer group {i}: gamma must lie in (0, 1], got {g['gamma']}")
            if g["binary"] and g["threshold"] < 0.0:
                raise ConfigError(f"flip optimizer group {i}: the threshold must be ≥ 0, got {g['threshold']}")
            if g["binary"] and g["at_threshold"] and g["threshold"] == 0.0:
                raise ConfigError(f"flip optimizer group {i}: a threshold of 0 with flips at the threshold (≥, the "
                                  "conv models) would flip every weight whose filter is exactly 0; use τ > 0")
            if g["lr"] < 0.0:
                raise ConfigError(f"flip optimizer group {i}: the learning rate must be ≥ 0, got {g['lr']}")
        self.flips: list[int] = [0] * sum(len(g["params"]) for g in self.param_groups if g["binary"])

    @staticmethod
    def flip_mask(sign: Tensor, m: Tensor, threshold: float, at_threshold: bool = False) -> Tensor:
        """Which weights flip: sign(W)·m > τ, or ≥ τ with ``at_threshold`` (see the module docstring)."""
        return sign * m >= threshold if at_threshold else sign * m > threshold

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        flips = []
        for group in self.param_groups:
            for p in group["params"]:
                if not group["binary"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-group["lr"])
                    continue
                if p.grad is None:
                    flips.append(0)
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                m.mul_(1.0 - group["gamma"]).add_(p.grad, alpha=group["gamma"])
                sign = torch.where(p >= 0, 1.0, -1.0).to(p.dtype)
                flip = self.flip_mask(sign, m, group["threshold"], group["at_threshold"])
                dims = tuple(range(1, p.dim())) if group["per_channel"] else tuple(range(p.dim()))
                alpha = p.abs().amax(dim=dims, keepdim=True)
                if group["lr"] != 0.0:
                    step = (p * p.grad).sum(dim=dims, keepdim=True)
                    alpha = (alpha - group["lr"] * step).clamp_min(torch.finfo(p.dtype).tiny)
                p.copy_(alpha * torch.where(flip, -sign, sign))
                flips.append(int(flip.sum()))
        self.flips = flips
        return loss


def flip_groups(model, gammas, thresholds, lrs, lrs_alpha=None) -> list[dict]:
    """torch.optim groups of a model with ``binary_weights()``: per layer (bottom to top) one binary group
    for its weight (with the model's ``flip_at_threshold``) and one SGD group for its bias. The README's lists
    are output-first: reverse them."""
    weights = model.binary_weights()
    layers = model.layer_parameters()
    n = len(layers)
    lrs_alpha = [0.0] * n if lrs_alpha is None else lrs_alpha
    for key, v in (("gammas", gammas), ("thresholds", thresholds), ("lrs", lrs), ("lrs_alpha", lrs_alpha)):
        if len(v) != n:
            raise ConfigError(f"{model.name} has {n} layers but optimizer.{key} has {len(v)} entries "
                              "(one per layer, bottom to top)")
    groups = []
    for w, params, gamma, tau, lr, lr_a in zip(weights, layers, gammas, thresholds, lrs, lrs_alpha):
        groups.append({"params": [w], "binary": True, "gamma": gamma, "threshold": tau, "lr": lr_a,
                       "per_channel": w.dim() > 2, "at_threshold": model.flip_at_threshold})
        groups.append({"params": [p for p in params if p is not w], "lr": lr})
    return groups
