"""Property tests of the binary-weight flip optimizer (eqbench.optim.FlipOptimizer, §D.5), Hypothesis, float64.

Cases: 1–3 binary layers (fc 2-D or conv 4-D weights, α per layer or per output channel, random
signs), each with its bias in a plain SGD group, and 1–6 steps of random gradients whose scale spans
several decades and which hold exact zeros (some entries, or a whole step); γ ∈ (0, 1] (often 1),
τ ≥ 0 (0, of the size of the filter, or exactly tied with a filter entry), α's rate 0 or > 0.

1. After any number of steps every weight is ±α: |W| equal within a layer / channel bit for bit,
   α > 0, and α is bit for bit the drawn one when α's rate is 0.
2. A weight flips exactly when sign(W)·m > τ (strict), m recomputed here in numpy from the
   gradients, at every step; the optimizer's filter itself matches m within its round-off.
3. ``flips`` holds the number of sign changes of each binary group at every step.
4. γ = 1, τ = 0 is sign descent on the last gradient: W ← −α·sign(G) where G ≠ 0, W unchanged
   where G = 0, bit for bit.
5. With α's rate lr > 0 each step takes α ← max(α − lr·Σ(W⊙G), tiny) per layer / channel.
6. Bias groups take plain SGD, p ← p − lr·G (bit for bit when lr·G is exact).
7. ``state_dict`` / ``load_state_dict`` keep the filter: a loaded copy continues bit for bit.
8. End to end, on L(W) = ½‖W − W*‖² with binary W* (γ = 1, τ = 0): W = W* after one step, then stays.

Negative control: ``ReversedFlipOptimizer`` (flip iff −sign(W)·m > τ) must fail 2, 4 and 8 on
every example where a flip is due (drawn with ``assume``, and one constructed by hand).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from eqbench.checks.controls import ReversedFlipOptimizer
from eqbench.optim import FlipOptimizer
from eqbench.testing import scaled_examples

pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")

F64 = torch.float64
EPS = torch.finfo(F64).eps  # 2^-52: twice the unit round-off
TINY = torch.finfo(F64).tiny  # α's floor in the optimizer
SUBNORMAL = float(np.finfo(np.float64).smallest_subnormal)  # 2^-1074


# ------------------------------------------------------------------------------------ cases
@dataclass
class Layer:
    """One binary group (weight w = α·signs) and its bias's SGD group, with a gradient per step."""

    w: Tensor
    per_channel: bool
    grads: list[Tensor]
    gamma: float
    tau: float
    lr_alpha: float
    bias: Tensor
    bias_grads: list[Tensor]
    bias_lr: float

    @property
    def dims(self) -> tuple[int, ...]:
        """The dimensions one α covers: all but the output channel's, or all."""
        return tuple(range(1, self.w.dim())) if self.per_channel else tuple(range(self.w.dim()))


@dataclass
class Case:
    layers: list[Layer]
    steps: int


def _grads(draw, g: torch.Generator, shape, steps: int, e: int) -> list[Tensor]:
    out = []
    for _ in range(steps):
        scale = 10.0 ** (e + draw(st.integers(-1, 1)))  # steps of different sizes within a layer
        zeros = draw(st.sampled_from((0.0, 0.3, 1.0)))  # none, some entries, the whole step exactly 0
        gt = scale * torch.randn(shape, generator=g, dtype=F64)
        gt[torch.rand(shape, generator=g, dtype=F64) < zeros] = 0.0
        out.append(gt)
    return out


# Bias rates: 0, a power of two makes lr·G exact (property 6 then holds bit for bit
# whether or not the kernel fuses the multiply-add), or any rate (then within its round-off).
bias_lrs = st.one_of(st.just(0.0), st.sampled_from((2.0**-6, 2.0**-2, 1.0, 4.0)), st.floats(1e-4, 2.0))


@st.composite
def layers(draw, steps: int, gamma=None, tau=None, learn_alpha=None) -> Layer:
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)))  # fc: out × in
    else:
        k = draw(st.integers(1, 3))
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), k, k)  # conv: out × in × k × k
    per_channel = draw(st.booleans())
    n_alpha = shape[0] if per_channel else 1
    alpha = draw(st.lists(st.floats(1e-3, 1e2), min_size=n_alpha, max_size=n_alpha))  # α over 5 decades
    alpha = torch.tensor(alpha, dtype=F64).reshape(-1, *[1] * (len(shape) - 1))
    w = alpha * (2.0 * torch.randint(0, 2, shape, generator=g) - 1.0)  # exactly ±α
    e = draw(st.integers(-6, 3))  # the gradients' scale 10^e, from far below α to far above
    grads = _grads(draw, g, shape, steps, e)
    if gamma is None:
        # bounded away from 0: Hypothesis would try γ = 5e-324, making γ·G subnormal, where the
        # reference filter's relative round-off bound fails (and below 1e-3 m barely moves in 6 steps)
        gamma = draw(st.one_of(st.just(1.0), st.floats(1e-3, 1.0)))
    if tau is None:
        mode = draw(st.sampled_from(("zero", "scaled", "tie")))
        if mode == "zero":
            tau = 0.0
        elif mode == "scaled":  # τ of the filter's size (m ≈ γ·G at first): some flips due, not all
            tau = draw(st.floats(0.0, 2.0)) * gamma * 10.0**e
        else:  # τ = |m_ij| exactly at the first step (m = fl(γ·G)): the strict '>' must not flip
            flat = grads[0].flatten()
            tau = abs(gamma * float(flat[draw(st.integers(0, flat.numel() - 1))]))
        event(f"tau {mode}")
    lr_alpha = 0.0
    if learn_alpha if learn_alpha is not None else draw(st.booleans()):
        # a rate relative to the first step's Σ|W⊙G|: frac < 1 keeps the first step's α above
        # (1 − frac)·α_min; frac up to 2, or later larger gradients, let some α reach the floor (tiny)
        s = float((w * grads[0]).abs().sum())
        frac = draw(st.floats(0.01, 2.0))
        lr_alpha = frac * float(alpha.min()) / s if s > 0 else frac
    bias = torch.randn(shape[0], generator=g, dtype=F64)
    return Layer(w, per_channel, grads, gamma, tau, lr_alpha, bias,
                 _grads(draw, g, (shape[0],), steps, draw(st.integers(-3, 2))), draw(bias_lrs))


@st.composite
def cases(draw, min_steps=1, gamma=None, tau=None, learn_alpha=None) -> Case:
    steps = draw(st.integers(min_steps, 6))
    n = draw(st.integers(1, 3))
    return Case([draw(layers(steps, gamma, tau, learn_alpha)) for _ in range(n)], steps)


# ------------------------------------------------------------------------------------ running
def _make(opt_cls, case: Case):
    """The optimizer with flip_groups' layout (binary weight group, then its bias group, per layer)."""
    ws = [nn.Parameter(l.w.clone()) for l in case.layers]
    bs = [nn.Parameter(l.bias.clone()) for l in case.layers]
    groups = []
    for l, w, b in zip(case.layers, ws, bs):
        groups.append({"params": [w], "binary": True, "gamma": l.gamma, "threshold": l.tau, "lr": l.lr_alpha,
                       "per_channel": l.per_channel})
        groups.append({"params": [b], "lr": l.bias_lr})
    return opt_cls(groups), ws, bs


def _step(opt, ws, bs, case: Case, t: int) -> None:
    for l, w, b in zip(case.layers, ws, bs):
        w.grad, b.grad = l.grads[t].clone(), l.bias_grads[t].clone()
    opt.step()


@dataclass
class Record:
    """One step: weights and biases before and after, ``flips`` and the filters after."""

    w_before: list[Tensor]
    w_after: list[Tensor]
    b_before: list[Tensor]
    b_after: list[Tensor]
    flips: list[int]
    momenta: list[Tensor]


def _run(opt_cls, case: Case) -> list[Record]:
    opt, ws, bs = _make(opt_cls, case)
    out = []
    for t in range(case.steps):
        wb, bb = [w.detach().clone() for w in ws], [b.detach().clone() for b in bs]
        _step(opt, ws, bs, case, t)
        out.append(Record(wb, [w.detach().clone() for w in ws], bb, [b.detach().clone() for b in bs],
                          list(opt.flips), [opt.state[w]["momentum"].clone() for w in ws]))
    return out


def _sign(w: Tensor) -> Tensor:
    return torch.where(w >= 0, 1.0, -1.0)


def _reference_filter(layer: Layer):
    """Per step: (m, bound): m = (1 − γ)·m + γ·G in numpy, m = 0 before the first step, and a bound
    on |m_optimizer − m| — 0 at the first step (both compute m = fl(γ·G), one rounding) and at
    γ = 1 (0·m + G = G exactly); otherwise each side rounds fl((1−γ)m), γG and the sum (or fuses
    the last two), ≤ 2.01·u·((1−γ)|m| + γ|G|) each with u = eps/2, carried with factor (1 − γ).
    4·eps·(…) is twice the sum of both sides' errors."""
    gamma = layer.gamma
    m = np.zeros(tuple(layer.w.shape))
    bound = np.zeros_like(m)
    for t, gt in enumerate(layer.grads):
        G = gt.numpy()
        if t > 0 and gamma < 1.0:
            bound = (1.0 - gamma) * bound + 4.0 * EPS * ((1.0 - gamma) * np.abs(m) + gamma * np.abs(G))
        m = (1.0 - gamma) * m + gamma * G
        yield m, bound


def _flip_due(case: Case) -> bool:
    """Some step has |m_ij| > τ beyond round-off: then exactly one of sign·m > τ and −sign·m > τ
    holds, whatever the sign, so the reversed rule must disagree with the rule there. m does not
    depend on the weights, so this holds on any trajectory."""
    return any(bool((np.abs(m) - l.tau > bound).any()) for l in case.layers for m, bound in _reference_filter(l))


# ------------------------------------------------------------------------------------ checks
def check_binary(opt_cls, case: Case) -> None:
    """Property 1: W = ±α after every step, |W| equal within a layer / channel; α fixed when lr = 0."""
    for t, rec in enumerate(_run(opt_cls, case)):
        for i, (l, w) in enumerate(zip(case.layers, rec.w_after)):
            alpha = w.abs().amax(dim=l.dims, keepdim=True)
            assert torch.equal(w.abs(), alpha.expand_as(w)), f"step {t + 1}, layer {i}: |W| not constant"
            assert bool((alpha > 0).all()), f"step {t + 1}, layer {i}: α ≤ 0"
            if l.lr_alpha == 0.0:
                alpha0 = l.w.abs().amax(dim=l.dims, keepdim=True)
                assert torch.equal(alpha, alpha0), f"step {t + 1}, layer {i}: α moved with lr = 0"


def check_flip_rule(opt_cls, case: Case) -> None:
    """Property 2: a weight flips iff sign(W)·m > τ, m recomputed independently, at every step."""
    recs = _run(opt_cls, case)
    for i, l in enumerate(case.layers):
        for t, (rec, (m, bound)) in enumerate(zip(recs, _reference_filter(l))):
            m_opt = rec.momenta[i].numpy()
            assert (np.abs(m_opt - m) <= bound).all(), f"step {t + 1}, layer {i}: filter ≠ (1−γ)m + γG"
            s_old, s_new = _sign(rec.w_before[i]).numpy(), _sign(rec.w_after[i]).numpy()
            margin = s_old * m - l.tau
            # within round-off of τ the optimizer's m decides; where m is exact (bound 0) so is the
            # comparison, ties included (s·m − τ is 0 only when s·m = τ): strictness is checked there
            decided = (np.abs(margin) > bound) | (bound == 0)
            wrong = decided & ((s_new != s_old) != (margin > 0))
            assert not wrong.any(), (f"step {t + 1}, layer {i}: {int(wrong.sum())} weights break the rule "
                                     f"(flip iff sign·m > τ = {l.tau:.3g}, γ = {l.gamma:.3g})")


def check_flip_counts(opt_cls, case: Case) -> None:
    """Property 3: ``flips`` is the number of sign changes per binary group, at every step."""
    for t, rec in enumerate(_run(opt_cls, case)):
        changes = [int((_sign(a) != _sign(b)).sum()) for a, b in zip(rec.w_before, rec.w_after)]
        assert rec.flips == changes, f"step {t + 1}: flips {rec.flips}, sign changes {changes}"


def check_sign_descent(opt_cls, case: Case) -> None:
    """Property 4 (cases with γ = 1, τ = 0, lr = 0): W ← −α·sign(G) where G ≠ 0, else unchanged."""
    for t, rec in enumerate(_run(opt_cls, case)):
        for i, l in enumerate(case.layers):
            before, G = rec.w_before[i], l.grads[t]
            want = torch.where(G != 0, -before.abs() * torch.sign(G), before)
            assert torch.equal(rec.w_after[i], want), f"step {t + 1}, layer {i}: not sign descent on G"


def check_alpha_step(opt_cls, case: Case) -> None:
    """Property 5: α ← max(α − lr·Σ(W⊙G), tiny) per layer / channel, at every step."""
    for t, rec in enumerate(_run(opt_cls, case)):
        for i, l in enumerate(case.layers):
            W, G = rec.w_before[i].numpy(), l.grads[t].numpy()
            alpha = np.abs(W).max(axis=l.dims, keepdims=True)
            n = W.size // alpha.size
            want = np.maximum(alpha - l.lr_alpha * (W * G).sum(axis=l.dims, keepdims=True), TINY)
            got = np.abs(rec.w_after[i].numpy()).max(axis=l.dims, keepdims=True)
            # Σ of n products in another order: ≤ n·eps·Σ|W⊙G| apart, plus the subtraction's
            # rounding (eps·α); below the normal range each product also rounds by ≤ 2^-1075
            # absolute (α at the floor, tiny·G subnormal). max(·, tiny) is 1-Lipschitz.
            tol = (n + 2) * EPS * (alpha + l.lr_alpha * np.abs(W * G).sum(axis=l.dims, keepdims=True)) \
                + l.lr_alpha * n * SUBNORMAL
            assert (got >= TINY).all(), f"step {t + 1}, layer {i}: α not positive"
            assert (np.abs(got - want) <= tol).all(), f"step {t + 1}, layer {i}: α = {got.ravel()}, want {want.ravel()}"


def check_bias_sgd(opt_cls, case: Case) -> None:
    """Property 6: bias groups take p ← p − lr·G, bit for bit when lr is a power of two (or 0)."""
    for t, rec in enumerate(_run(opt_cls, case)):
        for i, l in enumerate(case.layers):
            step = l.bias_lr * l.bias_grads[t]
            want = rec.b_before[i] - step
            exact = l.bias_lr == 0.0 or math.frexp(l.bias_lr)[0] == 0.5
            # otherwise fused (one rounding) or not (two): ≤ eps·(|lr·G| + |p − lr·G|) apart
            tol = 0.0 if exact else 1.01 * EPS * (step.abs() + want.abs())
            assert bool(((rec.b_after[i] - want).abs() <= tol).all()), f"step {t + 1}, bias {i}: not SGD"


def check_quadratic_descent(opt_cls, w0: Tensor, target: Tensor, per_channel: bool, steps: int = 3) -> None:
    """Property 8: minimizing ½‖W − W*‖² (G = W − W*) with γ = 1, τ = 0 lands on W* in one step and stays."""
    w = nn.Parameter(w0.clone())
    opt = opt_cls([{"params": [w], "binary": True, "gamma": 1.0, "threshold": 0.0, "per_channel": per_channel}])
    for t in range(steps):
        w.grad = w.detach() - target
        opt.step()
        off = int((w != target).sum())
        loss = 0.5 * float(((w.detach() - target) ** 2).sum())
        assert off == 0, f"step {t + 1}: {off} weights off the target (loss {loss:.3g})"


# ------------------------------------------------------------------------------------ positive tests
@settings(max_examples=scaled_examples(40))
@given(cases())
def test_weights_stay_binary(case):
    check_binary(FlipOptimizer, case)


@settings(max_examples=scaled_examples(60))
@given(cases())
def test_flips_follow_the_threshold_rule(case):
    event("a flip due" if _flip_due(case) else "no flip due")
    check_flip_rule(FlipOptimizer, case)


@settings(max_examples=scaled_examples(25))
@given(cases())
def test_flip_counts_are_sign_changes(case):
    check_flip_counts(FlipOptimizer, case)


@settings(max_examples=scaled_examples(25))
@given(cases(gamma=1.0, tau=0.0, learn_alpha=False))
def test_gamma_one_tau_zero_is_sign_descent(case):
    check_sign_descent(FlipOptimizer, case)


@settings(max_examples=scaled_examples(40))
@given(cases(learn_alpha=True))
def test_alpha_step(case):
    floor = any(bool((w.abs() == TINY).any()) for rec in _run(FlipOptimizer, case) for w in rec.w_after)
    event("some α at the floor" if floor else "α above the floor")
    check_alpha_step(FlipOptimizer, case)
    check_binary(FlipOptimizer, case)  # the learnt α is still one magnitude per layer / channel


@settings(max_examples=scaled_examples(25))
@given(cases())
def test_bias_groups_take_plain_sgd(case):
    check_bias_sgd(FlipOptimizer, case)


@settings(max_examples=scaled_examples(25))
@given(cases(min_steps=2), st.data())
def test_state_dict_round_trip_keeps_the_filter(case, data):
    k = data.draw(st.integers(1, case.steps - 1), label="steps before saving")
    opt, ws, bs = _make(FlipOptimizer, case)
    for t in range(k):
        _step(opt, ws, bs, case, t)
    saved = copy.deepcopy(opt.state_dict())
    twin, ws2, bs2 = _make(FlipOptimizer, case)
    with torch.no_grad():
        for a, b in zip([*ws2, *bs2], [*ws, *bs]):
            a.copy_(b)
    twin.load_state_dict(saved)
    for w, w2 in zip(ws, ws2):
        assert torch.equal(twin.state[w2]["momentum"], opt.state[w]["momentum"])
    for t in range(k, case.steps):
        _step(opt, ws, bs, case, t)
        _step(twin, ws2, bs2, case, t)
        assert twin.flips == opt.flips
        for a, b in zip([*ws2, *bs2], [*ws, *bs]):
            assert torch.equal(a, b), f"step {t + 1}: the loaded copy diverged"


@st.composite
def quadratics(draw):
    """(W0, W*, per_channel): the same α (per layer or per channel), independent random signs."""
    layer = draw(layers(1, gamma=1.0, tau=0.0, learn_alpha=False))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    target = layer.w.abs() * (2.0 * torch.randint(0, 2, layer.w.shape, generator=g) - 1.0)
    return layer.w, target, layer.per_channel


@settings(max_examples=scaled_examples(25))
@given(quadratics())
def test_quadratic_reaches_the_binary_target(wt):
    check_quadratic_descent(FlipOptimizer, *wt)


# ------------------------------------------------------------------------------------ negative control
@settings(max_examples=scaled_examples(40))
@given(cases())
def test_reversed_rule_breaks_the_threshold_rule(case):
    assume(_flip_due(case))
    with pytest.raises(AssertionError, match="break the rule"):
        check_flip_rule(ReversedFlipOptimizer, case)


@settings(max_examples=scaled_examples(25))
@given(cases(gamma=1.0, tau=0.0, learn_alpha=False))
def test_reversed_rule_is_not_sign_descent(case):
    assume(any(bool((g != 0).any()) for l in case.layers for g in l.grads))  # some flip is due
    with pytest.raises(AssertionError, match="not sign descent"):
        check_sign_descent(ReversedFlipOptimizer, case)


@settings(max_examples=scaled_examples(25))
@given(quadratics())
def test_reversed_rule_misses_the_quadratic_target(wt):
    w0, target, per_channel = wt
    assume(bool((w0 != target).any()))  # some weight must flip
    with pytest.raises(AssertionError, match="off the target"):
        check_quadratic_descent(ReversedFlipOptimizer, w0, target, per_channel)


def test_reversed_rule_on_a_constructed_example():
    """W = [+1, −1, +1], G = [+1, +1, 0], γ = 1, τ = 0: the rule flips the first weight only."""
    z = torch.zeros(3, dtype=F64)
    layer = Layer(torch.tensor([[1.0, -1.0, 1.0]], dtype=F64), False, [torch.tensor([[1.0, 1.0, 0.0]], dtype=F64)],
                  1.0, 0.0, 0.0, z[:1], [z[:1]], 0.0)
    case = Case([layer], 1)
    assert _run(FlipOptimizer, case)[0].w_after[0].tolist() == [[-1.0, -1.0, 1.0]]
    assert _run(ReversedFlipOptimizer, case)[0].w_after[0].tolist() == [[1.0, 1.0, 1.0]]
    for check in (check_flip_rule, check_sign_descent, check_flip_counts, check_binary):
        check(FlipOptimizer, case)
    check_flip_counts(ReversedFlipOptimizer, case)  # it counts its own flips right: 3 is not rule-specific
    for check in (check_flip_rule, check_sign_descent):
        with pytest.raises(AssertionError):
            check(ReversedFlipOptimizer, case)
    target = torch.tensor([[-1.0, -1.0, 1.0]], dtype=F64)
    check_quadratic_descent(FlipOptimizer, layer.w, target, False)
    with pytest.raises(AssertionError):
        check_quadratic_descent(ReversedFlipOptimizer, layer.w, target, False)
