"""Laydevant et al. 2021's binary networks (BIN_MLP, BIN_CNN) and the flip optimizer: the §D.2 init, the
§D.3 dynamics and the §D.4 EP update written out as the authors index them, closed form against autograd,
the §D.5 flip rule, config errors and round trips, and small training runs (logs, ±α, resume).

Layers: the authors index output-first (their W[i] maps layer i+1 to layer i, s[0] is the output); eqbench
goes bottom-up (``synapses[l]`` maps layer l to l+1, layer 0 = input, s[0] = first hidden layer, s[-1] the
output). The reference steps below are written in the authors' order on reversed lists.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eqbench import BPTT, EP, build_model, relax
from eqbench.config import OptimizerConfig, RunConfig
from eqbench.errors import ConfigError
from eqbench.optim import FlipOptimizer, flip_groups
from eqbench.train import Trainer, build_optimizer

D = torch.float64


def _mlp(binary="W", sizes=(7, 6, 5, 4), seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("BIN_MLP", sizes=list(sizes), binary=binary, **kw).double()


def _batch(n_in, n_classes, seed=0, B=6):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, n_in, dtype=D, generator=g), torch.randint(n_classes, (B,), generator=g)


def _authors(model):
    """The authors' W[i], b[i] (output-first: W[i] maps layer i+1 to layer i) from eqbench's bottom-up synapses."""
    return [m.weight.detach() for m in reversed(model.synapses)], [m.bias.detach() for m in reversed(model.synapses)]


def _one_hot_expanded(y, n_classes, k):
    """The target with each class's one-hot entry repeated k times, built position by position."""
    t = torch.zeros(len(y), n_classes * k, dtype=D)
    for b, c in enumerate(y.tolist()):
        t[b, c * k:(c + 1) * k] = 1.0
    return t


# ------------------------------------------------------------------------------------- §D.2 init
_CNN = {"in_shape": (1, 12, 12), "channels": [4, 6], "kernels": [3, 3], "paddings": [1, 1], "fc": [10]}


def _default_modules(kind):
    """PyTorch's default init of the same layers in the same order (the RNG draws of the model's constructor)."""
    if kind == "BIN_MLP":
        return [nn.Linear(20, 16), nn.Linear(16, 12), nn.Linear(12, 10)]
    return [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1), nn.Linear(6 * 3 * 3, 10)]


def _build(kind, seed, **kw):
    torch.manual_seed(seed)
    if kind == "BIN_MLP":
        return build_model("BIN_MLP", sizes=[20, 16, 12, 10], **kw)
    return build_model("BIN_CNN", **_CNN, **kw)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("kind", ["BIN_MLP", "BIN_CNN"])
def test_init_is_alpha_sign_of_the_default_init(kind, seed):
    """W = α·sign(W_default), α = round(mean|W_default|, 4) per layer (fc) or per output channel (conv)."""
    torch.manual_seed(seed)
    default = _default_modules(kind)
    model = _build(kind, seed)
    for l, (m, ref) in enumerate(zip(model.synapses, default)):
        w, w0 = m.weight.detach(), ref.weight.detach()
        assert w.shape == w0.shape
        assert torch.equal(torch.sign(w), torch.where(w0 >= 0, 1.0, -1.0))
        conv = w0.dim() == 4
        # one α per output channel (conv) or per layer (fc), rounded to 4 decimals from the float64 mean;
        # the model's α is that number in float32 (representation error ≤ 6e-9 at α ≈ 0.1), while a missed
        # rounding or a per-layer α would be off by ≥ 1e-5 (mean|W| is not on the 1e-4 grid)
        groups = list(w0) if conv else [w0]
        alphas = [round(float(g.double().abs().mean()), 4) for g in groups]
        for g, a in zip(list(w) if conv else [w], alphas):
            assert torch.allclose(g.abs().double(), torch.full(g.shape, a, dtype=D), atol=1e-7, rtol=0)
        if conv:  # the channels do have different α, so one α per layer would fail above
            assert len(set(alphas)) > 1
        else:
            assert model.alphas()[l] == pytest.approx(alphas[0], abs=1e-7)
        assert torch.equal(m.bias.detach(), ref.bias.detach())  # biases keep their default init


@pytest.mark.parametrize("kind", ["BIN_MLP", "BIN_CNN"])
def test_full_precision_twin_keeps_the_default_init_and_zero_bias_zeroes_biases(kind):
    """binary='none' leaves PyTorch's default weights untouched; zero_bias=True zeroes every bias."""
    torch.manual_seed(5)
    default = _default_modules(kind)
    plain = _build(kind, 5, binary="none")
    for m, ref in zip(plain.synapses, default):
        assert torch.equal(m.weight, ref.weight) and torch.equal(m.bias, ref.bias)
    assert plain.binary_weights() == []
    zb = _build(kind, 5, binary="W_N", zero_bias=True)
    assert all(torch.count_nonzero(m.bias) == 0 for m in zb.synapses)
    for m, ref in zip(zb.synapses, default):  # zeroing the biases leaves the weights' init as it was
        assert torch.equal(torch.sign(m.weight), torch.where(ref.weight >= 0, 1.0, -1.0))


# ------------------------------------------------------------------------------------- §D.3 bin_W dynamics
def _authors_bin_w(model, x, s, steps, beta=0.0, t=None):
    """fc bin_W, synchronous (§D.3): S[0] output, S[-1] the input, W[i] maps S[i+1] to S[i]:
    s0 ← clamp(ρ(W0 s1 + b0) + β(y − s0), 0, 1), s_i ← clamp(ρ(W_i s_{i+1} + b_i + s_{i−1} W_{i−1}), 0, 1)."""
    W, b = _authors(model)
    rho = lambda v: v.clamp(0.0, 1.0)  # noqa: E731  hardsigm
    S = [si.clone() for si in reversed(s)] + [x]
    for _ in range(steps):
        new = []
        for i in range(len(S) - 1):
            if i == 0:
                new.append((rho(S[1] @ W[0].T + b[0]) + (beta * (t - S[0]) if beta else 0.0)).clamp(0.0, 1.0))
            else:
                new.append(rho(S[i + 1] @ W[i].T + b[i] + S[i - 1] @ W[i - 1]).clamp(0.0, 1.0))
        S = new + [x]
    return list(reversed(S[:-1]))


def _close(a, b, tol=1e-12):
    return all(torch.allclose(u, v, atol=tol, rtol=0) for u, v in zip(a, b))


@pytest.mark.parametrize("closed_form", [True, False])
def test_bin_w_relaxation_is_the_authors_step(closed_form):
    """Free phase from zeros then nudged phases (β = ±0.3) from s*: the authors' fc bin_W step, to round-off."""
    model = _mlp("W")
    x, y = _batch(7, 4)
    t = F.one_hot(y, 4).to(D)
    s0 = model.init_state(x)
    assert all(torch.count_nonzero(si) == 0 for si in s0)  # fc bin_W starts from zeros
    for steps in (1, 2, 9):
        free = relax(model, x, s0, steps, closed_form=closed_form)
        assert _close(free, _authors_bin_w(model, x, s0, steps))
    # a clamp that never acts would leave half the test idle: some hidden units sit at 0 and some inside (0, 1)
    assert bool((free[0] == 0).any()) and bool(((free[0] > 0) & (free[0] < 1)).any())
    for beta in (0.3, -0.3):
        nudged = relax(model, x, free, 6, beta=beta, y=y, closed_form=closed_form)
        ref = _authors_bin_w(model, x, free, 6, beta, t)
        # ≤ 15 steps of sums of ≤ 7 terms of size ≤ 1: round-off ~1e-15 per step, 1e-12 leaves room
        assert _close(nudged, ref)
        assert not _close(nudged, free, 1e-3)  # and the nudge did move the state


def test_reference_and_gradient_nudges_differ_only_on_saturated_outputs():
    """clamp(ρ(u) + β(y − s)) (reference) = ρ(u + β(y − s)) (gradient) when u ∈ (0, 1), not when ρ(u) saturates."""
    x, y = _batch(7, 4, seed=1)
    t = F.one_hot(y, 4).to(D)
    ref, grad = _mlp("W", nudge="reference"), _mlp("W", nudge="gradient")
    for m in (ref, grad):  # every output pre-activation ≤ −3 + 5·α < 0: the output saturates at 0
        with torch.no_grad():
            m.synapses[-1].bias.fill_(-3.0)
    free = relax(ref, x, ref.init_state(x), 8)
    assert torch.count_nonzero(free[-1]) == 0
    a = relax(ref, x, free, 5, beta=0.3, y=y)
    b = relax(grad, x, free, 5, beta=0.3, y=y)
    assert _close(a, _authors_bin_w(ref, x, free, 5, 0.3, t))
    assert float(a[-1].max()) > 0.1 and torch.count_nonzero(b[-1]) == 0  # only the reference nudge moves it

    for m in (ref, grad):  # output α ×0.2 (still ±α') and bias ½: |u − ½| ≤ 5·0.2·α < 0.25 for any s ∈ [0, 1]
        with torch.no_grad():
            m.synapses[-1].weight.mul_(0.2)
            m.synapses[-1].bias.fill_(0.5)
    free = relax(ref, x, ref.init_state(x), 8)
    for beta in (0.3, -0.3):
        s_ref, s_grad = free, free
        for _ in range(5):  # step by step, to check the precondition u ∈ (0, 1) all along
            u = ref.drive(x, s_ref)[-1]
            assert bool(((u > 0) & (u < 1)).all())
            s_ref = relax(ref, x, s_ref, 1, beta=beta, y=y)
            s_grad = relax(grad, x, s_grad, 1, beta=beta, y=y)
        assert _close(s_ref, s_grad) and _close(s_ref, _authors_bin_w(ref, x, free, 5, beta, t))
        assert not _close(s_ref, free, 1e-3)


# ------------------------------------------------------------------------------------- §D.3 bin_W_N dynamics
def _authors_bin_wn(model, x, s, steps, beta=0.0, t=None, gamma=0.5):
    """fc bin_W_N (§D.3): a = H(s − ½) (H(0) = 1) except the input, pre_l = ρ'(s_l − ½)(W_l a_{l+1} + b_l
    + a_{l−1} W_{l−1}), output pre += β(y − s0), s ← clamp((1 − γ_n)s + γ_n·pre, 0, 1); output-first lists."""
    W, b = _authors(model)
    H = lambda v: (v - 0.5 >= 0).to(D)  # noqa: E731
    dH = lambda v: ((v - 0.5).abs() <= 0.5).to(D)  # noqa: E731
    S = [si.clone() for si in reversed(s)]
    for _ in range(steps):
        A = [H(si) for si in S] + [x]
        new = []
        for i, si in enumerate(S):
            pre = A[i + 1] @ W[i].T + b[i] + (A[i - 1] @ W[i - 1] if i > 0 else 0.0)
            pre = dH(si) * pre + (beta * (t - si) if i == 0 and beta else 0.0)
            new.append(((1.0 - gamma) * si + gamma * pre).clamp(0.0, 1.0))
        S = new
    return list(reversed(S))


@pytest.mark.parametrize("gamma", [0.5, 0.3])
def test_bin_w_n_relaxation_is_the_authors_step(gamma):
    """bin_W_N with 2 hidden layers and expand_output 2: the authors' leaky accumulator, free and nudged."""
    k, n_cls = 2, 4
    model = _mlp("W_N", sizes=(7, 6, 5, n_cls * k), expand_output=k, gamma_neur=gamma)
    x, y = _batch(7, n_cls, seed=2)
    t = _one_hot_expanded(y, n_cls, k)
    assert torch.equal(model.target(y, x), t)
    s0 = model.init_state(x)
    assert all(bool((si == 1).all()) for si in s0)  # bin_W_N starts from ones
    # states exactly at θ = ½: H(0) = 1 (§D.1), so these units emit 1 at the first step
    assert torch.equal(model.activity(torch.tensor([0.5, 0.5 - 1e-12, 0.0, 1.0], dtype=D)),
                       torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=D))
    start = [si.clone() for si in s0]
    start[0][:, ::2] = 0.5
    start[1][:, 1::2] = 0.5
    for s in (s0, start):
        free = relax(model, x, s, 7)
        assert _close(free, _authors_bin_wn(model, x, s, 7, gamma=gamma))
    below = [torch.where(si == 0.5, si - 1e-9, si) for si in start]  # the same start just under θ: H = 0 there
    assert not _close(relax(model, x, start, 1), relax(model, x, below, 1), 1e-3)
    for beta in (0.3, -0.3, 2.0):
        nudged = relax(model, x, free, 5, beta=beta, y=y)
        assert _close(nudged, _authors_bin_wn(model, x, free, 5, beta, t, gamma))
        assert not _close(nudged, free, 1e-3)
    # "ave" readout: the class score is the mean of its k output units; the loss is on all n_cls·k units
    out = nudged[-1]
    ave = torch.stack([out[:, c * k:(c + 1) * k].mean(1) for c in range(n_cls)], 1)
    assert torch.allclose(model.output(nudged), ave, atol=1e-15, rtol=0)
    assert torch.allclose(model.loss(nudged, y), 0.5 * ((t - out) ** 2).sum(1), atol=1e-15, rtol=0)


# ------------------------------------------------------------------------------------- closed form vs autograd
_DRIVE_MODELS = {
    "mlp": ("BIN_MLP", {"sizes": [7, 6, 5, 6]}),
    "cnn_pool3": ("BIN_CNN", {"in_shape": (2, 9, 9), "channels": [3, 4], "kernels": [3, 3], "paddings": [1, 1],
                              "pool_size": 3, "fc": [6]}),  # 9 → 9 → pool 3 → 3 → 3 → pool 3 → 1
    "cnn_pool2": ("BIN_CNN", {"in_shape": (2, 10, 10), "channels": [3, 4], "kernels": [3, 3], "paddings": [1, 0],
                              "pool_size": 2, "fc": [8, 6]}),  # 10 → 10 → 5 → 3 → pool 2 drops a row → 1
}


@pytest.mark.parametrize("beta", [0.0, 0.7, -0.4])
@pytest.mark.parametrize("binary", ["W", "W_N", "none"])
@pytest.mark.parametrize("arch", list(_DRIVE_MODELS))
def test_closed_form_drive_equals_autograd_drive(arch, binary, beta):
    """model.drive(closed_form=True) = autograd of Φ_β (with the reference nudge, the pseudo-derivative)."""
    name, kw = _DRIVE_MODELS[arch]
    torch.manual_seed(11)
    model = build_model(name, binary=binary, expand_output=2, **kw).double()
    g = torch.Generator().manual_seed(12)
    x = torch.rand(5, *model.in_shape, dtype=D, generator=g)
    y = torch.randint(model.n_classes, (5,), generator=g)
    s = []
    for shape in model.state_shapes():
        si = torch.rand(5, *shape, dtype=D, generator=g)
        s.append(torch.where((si - 0.5).abs() < 1e-3, si + 0.01, si))  # away from H's jump at ½
    yy = y if beta != 0.0 else None
    closed = model.drive(x, s, beta, yy, closed_form=True)
    auto = model.drive(x, s, beta, yy, closed_form=False)
    for c, a in zip(closed, auto):
        assert c.shape == a.shape
        # sums of a few dozen O(1) products in float64, added in different orders: ~1e-15 apart; 1e-12 is room
        assert torch.allclose(c, a, atol=1e-12 * max(1.0, float(a.abs().max())), rtol=0)


# ------------------------------------------------------------------------------------- §D.4 EP update
@pytest.mark.parametrize("binary, beta", [("W", 0.5), ("W", -0.4), ("W_N", 2.0), ("W_N", -1.5)])
def test_ep_gradient_is_the_authors_compute_gradients(binary, beta):
    """p.grad = −(1/(βB))[a_{l+1}^βᵀ a_l^β − a_{l+1}*ᵀ a_l*] and −(1/(βB)) Σ_b (a^β − a*) for the biases."""
    T1, T2 = 12, 6
    k = 2 if binary == "W_N" else 1
    model = _mlp(binary, sizes=(7, 6, 5, 4 * k), expand_output=k, seed=4)
    x, y = _batch(7, 4, seed=3, B=8)
    EP(beta=beta, T1=T1, T2=T2, estimator="one_sided").compute_gradients(model, x, y)
    free = relax(model, x, model.init_state(x), T1)
    nudged = relax(model, x, free, T2, beta=beta, y=y)
    # activities: the states for bin_W, H(s − ½) for bin_W_N (the input x stays real); biases use them too
    # (for bin_W_N eqbench's stated deviation: the authors' bias update takes the states)
    act = (lambda v: v) if binary == "W" else (lambda v: (v >= 0.5).to(D))
    a_free, a_nudged = [x] + [act(v) for v in free], [x] + [act(v) for v in nudged]
    coef = 1.0 / (beta * len(x))
    moved = 0
    for l, m in enumerate(model.synapses):
        dW = coef * (a_nudged[l + 1].T @ a_nudged[l] - a_free[l + 1].T @ a_free[l])
        db = coef * (a_nudged[l + 1] - a_free[l + 1]).sum(0)
        # descent form: eqbench's .grad is minus the authors' ascent update; sums of ≤ 8 O(1) products / (βB)
        assert torch.allclose(m.weight.grad, -dW, atol=1e-12, rtol=0)
        assert torch.allclose(m.bias.grad, -db, atol=1e-12, rtol=0)
        moved += int(torch.count_nonzero(dW))
    assert moved > 0  # the nudge changed some activity: the comparison is not 0 = 0


# ------------------------------------------------------------------------------------- §D.5 flip optimizer
def test_flip_optimizer_is_the_authors_update_written_out():
    """m ← (1 − γ)m + γ·g (g = −G, the authors' ascent update), flip iff −sign(W)·m > τ, α ← α − lr·⟨W, G⟩ per
    layer (fc) or output channel (conv), biases SGD; three steps, with exactly-zero gradients never flipping."""
    g = torch.Generator().manual_seed(7)
    w_fc = nn.Parameter(0.3 * torch.where(torch.rand(5, 4, generator=g, dtype=D) < 0.5, 1.0, -1.0).to(D))
    a_conv = torch.tensor([0.1, 0.2, 0.4], dtype=D).reshape(3, 1, 1, 1)
    w_conv = nn.Parameter(a_conv * torch.where(torch.rand(3, 2, 2, 2, generator=g, dtype=D) < 0.5, 1.0, -1.0).to(D))
    bias = nn.Parameter(torch.rand(5, generator=g, dtype=D))
    opt = FlipOptimizer([
        {"params": [w_fc], "binary": True, "gamma": 0.4, "threshold": 0.05, "lr": 0.1},
        {"params": [w_conv], "binary": True, "gamma": 0.6, "threshold": 0.0, "lr": 0.2, "per_channel": True},
        {"params": [bias], "lr": 0.3},
    ])
    ref = {"fc": (w_fc.detach().clone(), torch.zeros(5, 4, dtype=D), 0.4, 0.05, 0.1, (0, 1)),
           "conv": (w_conv.detach().clone(), torch.zeros(3, 2, 2, 2, dtype=D), 0.6, 0.0, 0.2, (1, 2, 3))}
    b_ref = bias.detach().clone()
    total_flips = 0
    for _ in range(3):
        G = {"fc": torch.randn(5, 4, generator=g, dtype=D), "conv": torch.randn(3, 2, 2, 2, generator=g, dtype=D)}
        G["conv"][:, 0] = 0.0  # τ = 0 here: '≥' would flip these weights at every step, '>' never does
        Gb = torch.randn(5, generator=g, dtype=D)
        w_fc.grad, w_conv.grad, bias.grad = G["fc"].clone(), G["conv"].clone(), Gb.clone()
        opt.step()
        flips = []
        for key in ("fc", "conv"):
            W, m, gamma, tau, lr, dims = ref[key]
            m = (1 - gamma) * m + gamma * (-G[key])  # the authors' EMA of their ascent-form update
            flip = -torch.sign(W) * m > tau
            alpha = W.abs().amax(dim=dims, keepdim=True) - lr * (W * G[key]).sum(dim=dims, keepdim=True)
            ref[key] = (alpha * torch.where(flip, -torch.sign(W), torch.sign(W)), m, gamma, tau, lr, dims)
            flips.append(int(flip.sum()))
        b_ref = b_ref - 0.3 * Gb
        assert torch.allclose(w_fc.detach(), ref["fc"][0], atol=1e-15, rtol=0)
        assert torch.allclose(w_conv.detach(), ref["conv"][0], atol=1e-15, rtol=0)
        assert torch.allclose(bias.detach(), b_ref, atol=1e-15, rtol=0)
        assert opt.flips == flips
        total_flips += sum(flips)
        assert torch.equal(torch.sign(w_conv[:, 0]), torch.sign(ref["conv"][0][:, 0]))
    assert total_flips > 0
    # per-channel α stayed per channel: one magnitude per output channel, and they differ
    mags = w_conv.detach().abs().flatten(1)
    assert torch.allclose(mags, mags[:, :1].expand_as(mags), atol=1e-15) and len(set(mags[:, 0].tolist())) == 3


@pytest.mark.parametrize("kind", ["BIN_MLP", "BIN_CNN"])
def test_an_exact_tie_flips_in_the_conv_models_only(kind):
    """Laydevant et al.'s fc code flips when −sign(W)·m > τ, their conv code when ≥ τ, and ties are real (binary
    activities make the update a multiple of 1/(βB)). With γ = ½ and powers of two, γ·G lands exactly on τ for a
    chosen set of weights: they flip in the conv model only; weights above τ flip in both, below τ in neither."""
    model = _build(kind, 2).double()
    n = len(model.synapses)
    tau = 2.0 ** -20
    opt = FlipOptimizer(flip_groups(model, [0.5] * n, [tau] * n, [0.0] * n))
    assert model.flip_at_threshold == (kind == "BIN_CNN")
    g = torch.Generator().manual_seed(2)
    before, expect = [], []
    for w in model.binary_weights():
        pick = torch.randint(3, w.shape, generator=g)  # 0: below τ, 1: exactly τ, 2: above τ
        w.grad = torch.sign(w.detach()) * torch.tensor([2.0 ** -22, 2.0 ** -19, 2.0 ** -17], dtype=D)[pick]
        before.append(w.detach().clone())
        expect.append((pick == 2) | ((pick == 1) & model.flip_at_threshold))
    opt.step()
    for w, w0, flip in zip(model.binary_weights(), before, expect):
        assert torch.equal(torch.sign(w.detach()) != torch.sign(w0), flip)
        assert torch.equal(w.detach().abs(), w0.abs())  # α fixed (lrs_alpha 0), one per output channel (conv)
    assert sum(opt.flips) == sum(int(f.sum()) for f in expect) > 0


def test_flips_at_a_zero_threshold_are_refused():
    """≥ with τ = 0 would flip every weight whose filter is exactly 0 at every step: one line instead."""
    model = _build("BIN_CNN", 2)
    with pytest.raises(ConfigError, match=r"a threshold of 0 with flips at the threshold .* use τ > 0"):
        FlipOptimizer(flip_groups(model, [0.5] * 3, [1e-8, 0.0, 1e-8], [0.0] * 3))
    FlipOptimizer(flip_groups(_build("BIN_MLP", 2), [0.5] * 3, [0.0] * 3, [0.0] * 3))  # '>' with τ = 0 is fine


def test_alpha_of_a_wide_layer_is_the_exact_mean_rounded():
    """784×8192 at seed 1: the exact mean|W| = 0.017851 rounds to 0.0179; the authors' float32 norm(W, 1)/numel
    (0.0178478, summation round-off) would round to 0.0178. eqbench takes the exact mean."""
    torch.manual_seed(1)
    w0 = nn.Linear(784, 8192).weight.detach()
    exact = float(w0.double().abs().mean())
    assert round(exact, 4) == 0.0179 and round(float(torch.norm(w0, p=1) / w0.numel()), 4) == 0.0178
    torch.manual_seed(1)
    model = build_model("BIN_MLP", sizes=[784, 8192, 10])
    assert float(model.synapses[0].weight.detach().abs().max()) == pytest.approx(0.0179, abs=1e-9)


def test_bptt_gradient_drives_the_flip_optimizer():
    """BPTT(T1=10, T2=5) + one flip step with γ = 1, τ = 0: sign descent on G, weights stay ±α."""
    model = _mlp("W", seed=6)
    x, y = _batch(7, 4, seed=6, B=8)
    BPTT(T1=10, T2=5).compute_gradients(model, x, y)
    before = [w.detach().clone() for w in model.binary_weights()]
    G = [w.grad.clone() for w in model.binary_weights()]
    biases = [m.bias.detach().clone() for m in model.synapses]
    n = len(model.synapses)
    opt = FlipOptimizer(flip_groups(model, [1.0] * n, [0.0] * n, [0.0] * n))
    opt.step()
    for w, w0, g, f in zip(model.binary_weights(), before, G, opt.flips):
        flip = torch.sign(w0) * g > 0  # W_ij and ∂L/∂W_ij of the same sign: W ← −W
        assert torch.equal(w.detach(), torch.where(flip, -w0, w0))
        assert f == int(flip.sum())
        assert torch.equal(w.detach().abs(), w0.abs())  # ±α, α unchanged (lrs_alpha 0)
    assert sum(opt.flips) >= 1
    assert all(torch.equal(m.bias, b) for m, b in zip(model.synapses, biases))  # bias lr 0


# ------------------------------------------------------------------------------------- errors and configs
@pytest.mark.parametrize("kw, msg", [
    ({"binary": "WN"}, r"unknown binary setting 'WN'; known: W \(bin_W\), W_N \(bin_W_N\), none"),
    ({"act": "tanh"}, r"the reference nudge \(after ρ\) needs a clipping activation; tanh is not one"),
    ({"expand_output": 3}, r"expand_output must be a positive integer dividing the 10 output units, got 3"),
    ({"gamma_neur": 0.0}, r"gamma_neur must lie in \(0, 1\], got 0.0"),
])
def test_model_errors(kw, msg):
    """Each bad model option raises a ConfigError that names it."""
    with pytest.raises(ConfigError, match=msg):
        build_model("BIN_MLP", sizes=[8, 6, 10], **kw)


def _opt_cfg(**over):
    d = {"name": "flip", "lrs": [0.05, 0.025], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6]}
    d.update(over)
    return OptimizerConfig.from_dict(d)


def test_binary_weights_train_with_flip_and_only_flip():
    """A binary model refuses sgd; flip refuses the full-precision twin; flip builds one group per weight and bias."""
    binary, plain = _mlp("W", sizes=(8, 6, 10)), _mlp("none", sizes=(8, 6, 10))
    with pytest.raises(ConfigError, match=r"BIN_MLP with binary weights trains with optimizer 'flip', not 'sgd'"):
        build_optimizer(binary, OptimizerConfig.from_dict({"name": "sgd", "lrs": [0.1, 0.1]}))
    with pytest.raises(ConfigError, match=r"optimizer 'flip' trains binary weights, and BIN_MLP has none"):
        build_optimizer(plain, _opt_cfg())
    assert isinstance(build_optimizer(plain, OptimizerConfig.from_dict({"name": "sgd", "lrs": [0.1, 0.1]})),
                      torch.optim.SGD)
    opt = build_optimizer(binary, _opt_cfg(lrs_alpha=[1e-2, 2e-2]))
    assert isinstance(opt, FlipOptimizer)
    groups = [(g["params"], g.get("binary", False), g["lr"]) for g in opt.param_groups]
    s = binary.synapses
    assert groups == [([s[0].weight], True, 1e-2), ([s[0].bias], False, 0.05),
                      ([s[1].weight], True, 2e-2), ([s[1].bias], False, 0.025)]


@pytest.mark.parametrize("cfg, msg", [
    ({"gammas": [1e-3]}, r"optimizer.gammas has 1 entries but lrs has 2"),
    ({"thresholds": [1e-6, 1e-6, 1e-6]}, r"optimizer.thresholds has 3 entries but lrs has 2"),
    ({"gammas": None}, r"optimizer.gammas must be a non-empty list of numbers, got None"),
    ({"thresholds": None}, r"optimizer.thresholds must be a non-empty list of numbers, got None"),
])
def test_flip_config_errors(cfg, msg):
    """A flip config's per-layer lists must be lists as long as lrs."""
    with pytest.raises(ConfigError, match=msg):
        _opt_cfg(**cfg)


def test_flip_config_needs_thresholds_and_per_layer_lists():
    """thresholds is required, sgd's momentum is not a flip field, and the lists must match the model's layers."""
    with pytest.raises(ConfigError, match=r"optimizer is missing thresholds"):
        OptimizerConfig.from_dict({"name": "flip", "lrs": [0.1, 0.1], "gammas": [1e-3, 1e-3]})
    with pytest.raises(ConfigError, match=r"optimizer has unknown field\(s\) momentum"):
        _opt_cfg(momentum=0.9)
    three = _mlp("W", sizes=(8, 6, 5, 10))  # 3 layers, 2 entries each
    with pytest.raises(ConfigError, match=r"^BIN_MLP has 3 layers but optimizer.gammas has 2 entries \(one per "
                                          r"layer, bottom to top\)$"):
        build_optimizer(three, _opt_cfg())


@pytest.mark.parametrize("key", ["gammas", "thresholds", "lrs", "lrs_alpha"])
def test_flip_groups_names_the_list_of_the_wrong_length(key):
    """flip_groups (public: the optimizer of a user's own binary model) names whichever list does not have one
    entry per layer."""
    lists = {"gammas": [0.5] * 3, "thresholds": [1e-6] * 3, "lrs": [0.0] * 3, "lrs_alpha": [0.0] * 3, key: [0.1] * 2}
    with pytest.raises(ConfigError, match=rf"^BIN_MLP has 3 layers but optimizer.{key} has 2 entries"):
        flip_groups(_mlp("W", sizes=(8, 6, 5, 10)), **lists)


@pytest.mark.parametrize("gamma", [0.0, 1.5, -1e-3])
def test_gamma_outside_unit_interval(gamma):
    """γ ∉ (0, 1] is refused, naming the group (layer 1's weight is group 0, layer 2's group 2)."""
    model = _mlp("W", sizes=(8, 6, 10))
    with pytest.raises(ConfigError, match=rf"flip optimizer group 0: gamma must lie in \(0, 1\], got {gamma}"):
        build_optimizer(model, _opt_cfg(gammas=[gamma, 1e-3]))
    with pytest.raises(ConfigError, match=rf"flip optimizer group 2: gamma must lie in \(0, 1\], got {gamma}"):
        build_optimizer(model, _opt_cfg(gammas=[1e-3, gamma]))
    build_optimizer(model, _opt_cfg(gammas=[1.0, 1e-3]))  # γ = 1 is allowed


def test_negative_threshold():
    """τ < 0 would flip weights whose filter agrees with their sign: refused."""
    with pytest.raises(ConfigError, match=r"flip optimizer group 2: the threshold must be ≥ 0, got -1e-06"):
        build_optimizer(_mlp("W", sizes=(8, 6, 10)), _opt_cfg(thresholds=[0.0, -1e-6]))


def _run_cfg(**over) -> dict:
    cfg = {
        "model": {"name": "BIN_MLP", "sizes": [64, 128, 10]},
        "rule": {"name": "EP", "beta": 0.3, "T1": 10, "T2": 4, "estimator": "random_sign"},
        "optimizer": {"name": "flip", "lrs": [0.05, 0.025], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6]},
        "data": {"name": "digits", "batch_size": 64, "test_batch_size": 200},
        "epochs": 1,
        "seed": 1,
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize("opt", [
    {"name": "flip", "lrs": [0.05, 0.025], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6]},
    {"name": "flip", "lrs": [0.05, 0.025], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6],
     "lrs_alpha": [1e-2, 1e-2]},
    {"name": "sgd", "lrs": [0.05, 0.025], "momentum": 0.9},
    {"name": "sgd", "lrs": [0.05, 0.025], "wds": [0.0, 1e-4]},
], ids=["flip", "flip+alpha", "sgd", "sgd+wds"])
def test_run_config_round_trips(opt):
    """RunConfig.from_dict(c.to_dict()) == c, and the dict holds only the optimizer's own fields."""
    cfg = RunConfig.from_dict(_run_cfg(optimizer=opt))
    d = cfg.to_dict()
    assert RunConfig.from_dict(d) == cfg
    assert RunConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert set(opt) <= set(d["optimizer"])
    other = {"gammas", "thresholds", "lrs_alpha"} if opt["name"] == "sgd" else {"wds", "momentum"}
    assert not other & set(d["optimizer"])


# ------------------------------------------------------------------------------------- training runs
def _metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _initial_alphas(cfg):
    """The exact α = |W| of each layer of the model build_run makes (it seeds torch, then builds)."""
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"]["name"], **{k: v for k, v in cfg["model"].items() if k != "name"})
    return _one_alpha_per_layer(model)


def _one_alpha_per_layer(model):
    """Each layer's |W| when all its weights share it, else None."""
    mags = [w.detach().abs() for w in model.binary_weights()]
    return [float(m.max()) if torch.equal(m, m.max().expand_as(m)) else None for m in mags]


def test_trainer_logs_flips_and_keeps_weights_binary(tmp_path):
    """One digits epoch: flips/k, flip_frac/k, alpha/k logged, flips.png drawn, weights ±α with α unchanged."""
    cfg = _run_cfg()
    tr = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False)
    init_signs = [torch.sign(w.detach()).clone() for w in tr.run.model.binary_weights()]
    tr.fit()
    (h,) = _metrics(tmp_path)
    assert (tmp_path / "flips.png").exists()
    alphas = _initial_alphas(cfg)
    assert _one_alpha_per_layer(tr.run.model) == alphas  # still ±α, the same α (no lrs_alpha)
    # alpha/k is model.alphas(), a float32 mean of n equal values: a few ulps (1.2e-7 each) off α
    assert [h["alpha/1"], h["alpha/2"]] == pytest.approx(alphas, rel=1e-6)
    n_batches = len(tr.run.train_loader)
    for k, w in enumerate(tr.run.model.binary_weights(), start=1):
        flips = h[f"flips/{k}"]
        assert isinstance(flips, int) and flips > 0
        assert h[f"flip_frac/{k}"] == pytest.approx(flips / (w.numel() * n_batches), rel=1e-12)
        # each weight flipped a number of times whose parity is whether its sign changed overall
        changed = int((torch.sign(w.detach()) != init_signs[k - 1]).sum())
        assert 0 < changed <= flips and (flips - changed) % 2 == 0


def test_learnt_alpha_changes_and_stays_one_per_layer(tmp_path):
    """lrs_alpha > 0: α moves from its init, every weight of a layer keeps the same magnitude, alpha/k logs it."""
    opt = {**_run_cfg()["optimizer"], "lrs_alpha": [1e-2, 1e-2]}
    cfg = _run_cfg(optimizer=opt)
    tr = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False)
    tr.fit()
    (h,) = _metrics(tmp_path)
    now = _one_alpha_per_layer(tr.run.model)
    assert None not in now
    assert [h["alpha/1"], h["alpha/2"]] == pytest.approx(now, rel=1e-6)  # a float32 mean, as above
    for a, a0 in zip(now, _initial_alphas(cfg)):
        assert abs(a - a0) > 1e-6 and a > 0


def test_resume_matches_uninterrupted_run(tmp_path):
    """Interrupted in epoch 2 and resumed = uninterrupted: the flip filters m travel in the checkpoint."""
    cfg = _run_cfg(epochs=2)

    class Stop(Exception):
        pass

    def stop(epoch, batch):
        if epoch == 1 and batch == 3:  # mid second epoch, after epoch 1's checkpoint
            raise Stop

    with pytest.raises(Stop):
        Trainer(RunConfig.from_dict(cfg), tmp_path / "cut", progress=False, on_batch=stop).fit()
    ck = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1
    state = ck["optimizer"]["state"]
    assert len(state) == 2 and all(torch.count_nonzero(v["momentum"]) > 0 for v in state.values())
    resumed = Trainer.resume(tmp_path / "cut", progress=False)
    resumed.fit()
    full = Trainer(RunConfig.from_dict(cfg), tmp_path / "full", progress=False)
    full.fit()
    strip = lambda hs: [{k: v for k, v in h.items() if k != "time_s"} for h in hs]  # noqa: E731
    assert strip(_metrics(tmp_path / "cut")) == strip(_metrics(tmp_path / "full"))
    a, b = resumed.run.model.state_dict(), full.run.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------ relative claims
def _ci_run(bid: str, values: list[float]) -> dict:
    return {"id": bid, "scale": "ci", "metric": "test_error", "unit": "percent",
            "measured": {"per_seed": values, "seeds": list(range(len(values)))}}


def test_gap_claim_verdicts_and_registry_pairs():
    """The registry pairs each binary ci run with its full-precision twin; the gap decides the verdict."""
    from eqbench.stats import gap_claim, relative_claims

    fp = _ci_run("laydevant2021/mnist5k/fp-fc-x10-ep", [8.0, 8.5, 9.0])
    close = _ci_run("laydevant2021/mnist5k/binwn-fc-ep", [8.6, 9.2, 9.5])  # +0.6 points: within 1
    far = _ci_run("laydevant2021/mnist5k/binwn-fc-ep", [20.0, 22.0, 19.0])
    (c,) = relative_claims([close, fp])
    assert (c["b"], c["max_gap"], c["verdict"], c["test"]) == (fp["id"], 1.0, "holds", "paired t")
    assert c["gap"] == pytest.approx(0.6) and c["of"] == "laydevant2021/mnist/binwn-ep-fc"
    bad = gap_claim(far, fp, 1.0)
    assert bad["verdict"] == "fails" and bad["p_value"] < 0.01  # significantly beyond the allowed gap
    assert relative_claims([close]) == []  # no reference run, no claim


def test_a_variant_that_beats_its_reference_by_more_than_the_gap_holds_the_claim():
    """The claim is signed ("at most max_gap above"): a binary network 3 points better than its reference is no
    failure, however far below; 0.13 above the gap is one."""
    from eqbench.stats import gap_claim

    fp = _ci_run("laydevant2021/mnist5k/fp-fc-x10-ep", [8.0, 8.5, 9.0])
    better = gap_claim(_ci_run("laydevant2021/mnist5k/binwn-fc-ep", [5.2, 5.4, 6.1]), fp, 1.0)
    assert better["gap"] == pytest.approx(-2.9333, abs=1e-4)
    assert better["verdict"] == "holds" and better["p_value"] > 0.5
    worse = gap_claim(_ci_run("laydevant2021/mnist5k/binwn-fc-ep", [9.0, 9.7, 10.2]), fp, 1.0)
    assert worse["gap"] == pytest.approx(1.1333, abs=1e-4) and worse["verdict"] == "fails"


# ------------------------------------------------------------------------------------ deviation texts
def _flip_statements():
    """(baseline id, the operator a registry note says eqbench flips at) for every note that says it."""
    import re

    from eqbench.registry import load_registry

    out = []
    for bid, b in sorted(load_registry().items()):
        for op in re.findall(r"eqbench flips when sign\(W\)·m\s*([>≥])\s*τ|It flips when sign\(W\)·m\s*([>≥])\s*τ",
                             " ".join((b.notes or "").split())):
            out.append((bid, "".join(op)))
    return out


@pytest.mark.parametrize("bid, op", _flip_statements())
def test_what_a_note_says_of_the_flip_threshold_is_what_the_model_does(bid, op):
    """The notes that say where eqbench flips (≥ τ or > τ) agree with the models their configs build."""
    from eqbench.registry import get_baseline

    for scale, sc in get_baseline(bid).scales.items():
        cfg = dict(sc.config.model)
        model = build_model(cfg.pop("name"), **cfg)
        assert model.flip_at_threshold == (op == "≥"), (bid, scale)


def test_every_conv_binary_note_states_the_flip_threshold():
    """Every conv binary baseline says where it flips (the statement the test above checks); at least the eight."""
    assert len(_flip_statements()) >= 8


# ------------------------------------------------------------------------------------ stale pooling indices
def _conv_weight_grads(model, x, s, indices_from=None):
    """∂Φ/∂W of every conv layer at state ``s``, the max pools taking their positions from ``indices_from`` (the
    authors' update: the indices of the last relaxation step, i.e. pooled from the state before it) or from ``s``
    itself (eqbench's)."""
    src = s if indices_from is None else indices_from
    lo, lo_src = [x, *s], [x, *src]
    total = 0.0
    for l, c in enumerate(model.conns):
        f = model.synapses[l]
        if c.kind != "conv":
            total = total + (model._conn_out(l, f, lo[l]) * s[l]).sum()
            continue
        with torch.no_grad():
            _, idx = model._conn_out(l, f, lo_src[l], indices=True)
        z = f(lo[l])
        pooled = z.flatten(2).gather(2, idx.flatten(2)).view_as(idx)
        total = total + (pooled * s[l]).sum()
    weights = [model.synapses[l].weight for l, c in enumerate(model.conns) if c.kind == "conv"]
    return torch.autograd.grad(total, weights)


def test_the_authors_stale_pooling_indices_differ_off_a_fixed_point_and_agree_at_one():
    """Laydevant et al.'s conv update reuses the pooling indices of the last relaxation step, pooled from the state
    before it; eqbench pools the final state (binary.py, "Deviations"). Three steps from the ½ start (no fixed
    point) the conv weights' ∂Φ differ far beyond round-off (1.8e-2 relative here, 1e-6 asserted: 10¹⁰ ulps); after
    300 steps (a fixed point to round-off) the previous state pools the same positions and the updates are equal."""
    torch.manual_seed(0)
    model = build_model("BIN_CNN", in_shape=(1, 12, 12), channels=[4, 8], kernels=[3, 3], paddings=[1, 1],
                        fc=[10]).double()
    x = torch.rand(8, 1, 12, 12, dtype=D)
    rel = {}
    for steps in (3, 300):
        before = relax(model, x, model.init_state(x), steps - 1)
        final = relax(model, x, before, 1)
        ours = _conv_weight_grads(model, x, final)
        theirs = _conv_weight_grads(model, x, final, indices_from=before)
        rel[steps] = max(float((a - b).norm() / b.norm()) for a, b in zip(ours, theirs))
        if steps == 300:
            assert max(float((a - b).abs().max()) for a, b in zip(final, before)) <= 4 * torch.finfo(D).eps  # fixed
    assert rel[3] > 1e-6 and rel[300] == 0.0, rel
