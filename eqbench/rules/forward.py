"""Forward-only and feedback-alignment learning rules: PEPITA and the baselines BP, FA and DFA.

They train the feedforward models of `eqbench.models.feedforward` (``FC``, and ``CONV1FC`` for PEPITA
and BP) through the same trainer as EP: ``compute_gradients`` writes ``.grad`` on every parameter in
**descent** form (the optimizer subtracts lr·grad) and returns the first pass's logits and per-sample
cross-entropy; ``predict`` evaluates without dropout; ``diagnostics`` reports, per layer, the angle
between the rule's update and the backprop gradient.

Notation: L layers W_1 … W_L (W_l shaped (n_l, n_{l−1})), h_0 = x, a_l = W_l h_{l−1},
h_l = f(a_l)·m_l (m_l the inverted-dropout mask Bernoulli(keep)/keep, hidden layers only),
e = softmax(a_L) − onehot(y). Every update is a batch sum divided by B.

* ``BP``:   autograd of the batch-mean cross-entropy through the same forward and the same kind of masks.
* ``FA``    (Lillicrap et al. 2016): δ_L = e, δ_l = (δ_{l+1} fa_{l+1}) ⊙ f′(a_l) ⊙ m_l, grad W_l = δ_lᵀ h_{l−1} / B.
* ``DFA``   (Nøkland 2016): δ_L = e, δ_l = (e dfa_l) ⊙ f′(a_l) ⊙ m_l, grad W_l = δ_lᵀ h_{l−1} / B.
* ``PEPITA`` (Dellaferrera & Kreiman 2022, "ERIN"): see its docstring.

With ``torch.optim.SGD(momentum=0.9)`` and a constant learning rate η, ``p.grad = ΔW/B`` gives exactly the
reference's heavy ball ``v ← 0.9 v + η ΔW/B; W ← W − v``: torch keeps u ← 0.9 u + ΔW/B and steps
W ← W − η u, and v = η u at every step. torch's buffer u excludes η, so when η decays (×0.1 at the
reference's milestones) the old velocity is rescaled with it here, whereas the reference keeps it: its
weights coast Σ_k 0.9^k (η_old − η_new) u = 8.1 η_old u further after a ×0.1 decay (about eight steps at the
old rate; the velocities agree to 1 % after 44 steps).

Dropout in the baselines: BP and FA here are the backward passes of the masked network (a dropped unit
passes no error down). The reference's numpy BP and FA run their recursion on the unmasked error and mask
each layer's update only afterwards; with one hidden layer (every PEPITA config of the registry) both agree,
with two or more they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torch.nn.grad import conv2d_weight

from ..angles import angle_deg
from ..autodiff import grads as autograd_grads
from ..errors import ConfigError
from ..models.feedforward import ConvPEPITANet, FeedForward
from . import LearningRule

Masks = list[Tensor] | None


def _error(logits: Tensor, y: Tensor) -> Tensor:
    """e = softmax(logits) − onehot(y): the gradient of the cross-entropy with respect to the logits."""
    return torch.softmax(logits, dim=1) - nnf.one_hot(y, logits.shape[1])  # int64 one-hot: the logits' dtype


class _ForwardRule(LearningRule):
    """What BP, FA, DFA and PEPITA share: checks, mask sampling, writing ``.grad``, evaluation, angles.

    A subclass implements ``layer_updates(model, x, y, masks) -> (updates, logits)``: one descent-form
    update per weight (bottom to top) and the first pass's logits, for already-checked inputs.
    """

    #: model classes the rule can train
    models: ClassVar[tuple[type, ...]] = (FeedForward, ConvPEPITANet)

    @property
    def rule_name(self) -> str:
        return type(self).__name__

    def check_model(self, model) -> None:
        if not isinstance(model, self.models):
            names = " or ".join(m.name for m in self.models)
            got = getattr(model, "name", type(model).__name__)
            raise ConfigError(f"{self.rule_name} trains {names} models, got {got}")

    def checked(self, model, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self.check_model(model)
        x = model.check_input(x)
        return x, model.check_target(y, x.shape[0])

    def layer_updates(self, model, x: Tensor, y: Tensor, masks: Masks) -> tuple[list[Tensor], Tensor]:
        raise NotImplementedError

    def compute_gradients(self, model, x: Tensor, y: Tensor) -> dict:
        """Sample dropout masks once (torch global RNG), compute the update, write ``.grad`` on every
        parameter; returns ``{"output": first-pass logits (B, n_classes), "loss": per-sample CE (B,)}``."""
        x, y = self.checked(model, x, y)
        masks = model.sample_masks(x.shape[0], x.device)  # in the weights' dtype, which x has
        updates, logits = self.layer_updates(model, x, y, masks)
        weights = model.weights()
        by_id = {id(w): g for w, g in zip(weights, updates)}
        for p in model.parameters():
            g = by_id.get(id(p))
            p.grad = None if g is None else g.detach().clone()
        logits = logits.detach()
        with torch.no_grad():
            return {"output": logits, "loss": model.loss(logits, y)}

    def predict(self, model, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits without dropout, and the activations: each hidden layer's (the conv model's pre-pool
        relu map) followed by the softmax output."""
        self.check_model(model)
        x = model.check_input(x)
        with torch.no_grad():
            pre, h = model.forward(x)
            return pre[-1], [*h, torch.softmax(pre[-1], dim=1)]

    def diagnostics(self, model, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per layer, the angle (degrees) between this rule's update and the BP gradient, without dropout."""
        return alignment_angles(model, x, y, self)


def alignment_angles(model, x: Tensor, y: Tensor, rule: _ForwardRule) -> dict[str, float]:
    """``{"angle/W1": …, …}``: the angle in degrees between ``rule``'s update of each layer and the BP
    gradient of the batch-mean cross-entropy, both computed on (x, y) without dropout (no mask drawn,
    the RNG untouched) and without touching ``.grad``. 0° means the BP direction, 90° an orthogonal
    update, > 90° one that increases the loss to first order; NaN where either update is zero."""
    x, y = rule.checked(model, x, y)
    ours, _ = rule.layer_updates(model, x, y, None)
    bp, _ = BP().layer_updates(model, x, y, None)
    return {f"angle/W{l + 1}": angle_deg(a, b) for l, (a, b) in enumerate(zip(ours, bp))}


@dataclass
class BP(_ForwardRule):
    """Backpropagation: autograd of the batch-mean cross-entropy through the forward pass, with the same
    dropout masks as the other rules (sampled once per batch from the torch global RNG). The gradient of the
    masked network: with two or more hidden layers it differs from the reference's numpy BP, which masks each
    layer's update but back-propagates the unmasked error (module docstring)."""

    def layer_updates(self, model, x: Tensor, y: Tensor, masks: Masks) -> tuple[list[Tensor], Tensor]:
        weights = model.weights()
        with torch.enable_grad():
            pre, _ = model.forward(x, masks)
            loss = model.loss(pre[-1], y).mean()
            updates = autograd_grads(loss, weights)
        return updates, pre[-1].detach()


class _LocalDeltas(_ForwardRule):
    """FA and DFA: an error δ_l per layer, then grad W_l = δ_lᵀ h_{l−1} / B (FeedForward only)."""

    models: ClassVar[tuple[type, ...]] = (FeedForward,)

    def hidden_delta(self, model: FeedForward, l: int, e: Tensor, upper: Tensor) -> Tensor:
        """The signal reaching hidden layer l (1-based) before f′ and the mask; ``upper`` is δ_{l+1}."""
        raise NotImplementedError

    def layer_updates(self, model, x: Tensor, y: Tensor, masks: Masks) -> tuple[list[Tensor], Tensor]:
        with torch.no_grad():
            pre, h = model.forward(x, masks)
            e = _error(pre[-1], y)
            L, B = model.n_layers, x.shape[0]
            deltas: list[Tensor] = [e] * L
            for l in range(L - 1, 0, -1):  # hidden layer l (1-based) is pre[l - 1]
                d = self.hidden_delta(model, l, e, deltas[l]) * model.act_derivative(pre[l - 1])
                deltas[l - 1] = d if masks is None else d * masks[l - 1]
            inputs = [x, *h]
            return [d.T @ inp / B for d, inp in zip(deltas, inputs)], pre[-1]


@dataclass
class FA(_LocalDeltas):
    """Feedback alignment (Lillicrap et al. 2016): the backward pass of BP with every W_{l+1} replaced by
    the fixed random ``fa_{l+1}`` (shaped like W_{l+1}). With fa_l = W_l it is BP exactly. The recursion
    carries the masked δ_{l+1} (a dropped unit passes no error down); the reference's numpy FA recurses on the
    unmasked δ and masks each layer's update afterwards, which differs with two or more hidden layers."""

    def hidden_delta(self, model: FeedForward, l: int, e: Tensor, upper: Tensor) -> Tensor:
        return upper @ model.feedback("fa", l + 1)


@dataclass
class DFA(_LocalDeltas):
    """Direct feedback alignment (Nøkland 2016): every hidden layer receives the output error through
    its own fixed random ``dfa_l`` (n_out, h_l). With one hidden layer and dfa_1 = W_2 it is BP exactly."""

    def hidden_delta(self, model: FeedForward, l: int, e: Tensor, upper: Tensor) -> Tensor:
        return e @ model.feedback("dfa", l)


@dataclass
class PEPITA(_ForwardRule):
    """PEPITA (Dellaferrera & Kreiman 2022, the "ERIN" learning type; algorithms.md §F).

    Per batch, with the dropout masks sampled once and used by both passes:

    1. pass 1 with x: h_l, e = softmax(a_L) − onehot(y);
    2. x_mod = x + e Fᵀ (F the model's fixed buffer, (n_in, n_out));
    3. pass 2 with x_mod: h_l^mod, e^mod;
    4. descent-form updates, batch sums divided by B:
       first layer ``(h_1 − h_1^mod)ᵀ x_mod``, hidden l ``(h_l − h_l^mod)ᵀ h_{l−1}^mod``,
       last ``e^modᵀ h_{L−1}^mod`` (with no hidden layer, ``e^modᵀ x_mod``).

    h are post-activation, post-mask, as the torch tutorial (§F.3) records them with its hooks. The
    numpy code (§F.2) multiplies δ_l = h_l − h_l^mod by the mask a second time (kept units scaled by
    1/keep² overall); that quirk is not reproduced.

    ``CONV1FC`` (``Net1conv1fcXL``, §F.4), with the two bugs of the reference's conv layer fixed:

    * conv layer: ``conv2d_weight(x_mod, W.shape, h − h_mod) / (B·P)`` — the correlation of the pre-pool
      relu maps' difference with the x_mod patches, summed over batch and the P output positions,
      divided by B·P. The reference's ``compute_delta_w_conv`` has this value (mean over the batch inside,
      sum over positions / P), but applies it with the opposite sign to its fc layers (``W += v`` with no
      minus sign: the conv layer moves by +η(h − h_mod)⋆x_mod), and divides by the batch size a second
      time (``v = 0.9 v + η·delta_w/batch_size``). Here the conv layer follows the FC convention: the
      same sign as ``(h_1 − h_1^mod)ᵀ x_mod`` and one batch average.
    * readout: ``eᵀ flat(pool(h_conv^mod)) / B`` with the **first-pass** error e, as the conv script does
      (the FC rule uses e^mod).
    """

    def layer_updates(self, model, x: Tensor, y: Tensor, masks: Masks) -> tuple[list[Tensor], Tensor]:
        B = x.shape[0]
        with torch.no_grad():
            pre, h = model.forward(x, masks)
            logits = pre[-1]
            e = _error(logits, y)
            x_mod = x + (e @ model.F.T).reshape_as(x)
            pre_m, h_m = model.forward(x_mod, masks)
            if isinstance(model, ConvPEPITANet):
                P = h[0][0, 0].numel()  # output positions of the conv (stride 1, no padding, as CONV1FC builds it)
                d_conv = conv2d_weight(x_mod, model.conv.weight.shape, h[0] - h_m[0]) / (B * P)
                d_fc = e.T @ model.features(h_m[0]) / B
                return [d_conv, d_fc], logits
            e_m = _error(pre_m[-1], y)
            deltas = [a - b for a, b in zip(h, h_m)] + [e_m]
            inputs = [x_mod, *h_m]
            return [d.T @ inp / B for d, inp in zip(deltas, inputs)], logits


RULES_FORWARD = {"PEPITA": PEPITA, "BP": BP, "FA": FA, "DFA": DFA}
