"""Property tests of PEPITA and the BP / FA / DFA baselines (eqbench.rules.forward), Hypothesis, float64.

* With F = 0 the modulated pass repeats the first one: every layer but the last gets exactly zero
  update and the last gets the delta rule eᵀ h_{L−1} / B — bit for bit, any depth, activation and
  dropout keep probability (which also pins that both passes share the dropout masks).
* Every rule's update has the weights' shapes and is finite; FA's and DFA's readout update is BP's.
* The conv layer's PEPITA update equals (h − h_mod) ⋆ x_mod summed by explicit loops over output
  positions, divided by B·P — the FC layers' sign convention, one batch average — and the readout's
  uses the first-pass error.
* Every rule is equivariant to a permutation of the batch (no dropout).
* Alignment angles lie in [0°, 180°] (NaN only where an update is zero); BP's to itself is 0°.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench.models.feedforward import ACTS, ConvPEPITANet, FeedForward
from eqbench.rules.forward import BP, DFA, FA, PEPITA, alignment_angles
from eqbench.testing import scaled_examples

pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")

RULES = (PEPITA, BP, FA, DFA)


@st.composite
def fc_cases(draw, keeps=(1.0, 0.9, 0.5)):
    """(model, x, y, seed): a small FeedForward with 1–3 hidden layers, a batch and an RNG seed."""
    sizes = [draw(st.integers(1, 8)), *draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)),
             draw(st.integers(2, 5))]
    act, keep = draw(st.sampled_from(sorted(ACTS))), draw(st.sampled_from(keeps))
    seed, batch = draw(st.integers(0, 2**16)), draw(st.integers(1, 6))
    scale = draw(st.sampled_from((0.1, 1.0, 5.0)))
    torch.manual_seed(seed)
    model = FeedForward(sizes, act=act, keep=keep)
    x = scale * torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    return model, x, y, seed


@settings(max_examples=scaled_examples(40))
@given(fc_cases())
def test_zero_F_leaves_only_the_delta_rule(case):
    model, x, y, seed = case
    with torch.no_grad():
        model.F.zero_()
    torch.manual_seed(seed)
    PEPITA().compute_gradients(model, x, y)
    torch.manual_seed(seed)  # the masks compute_gradients drew
    masks = model.sample_masks(x.shape[0], x.device, x.dtype)
    pre, h = model.forward(x, masks)
    e = torch.softmax(pre[-1], dim=1) - nnf.one_hot(y, model.n_classes).to(x.dtype)
    *hidden, last = model.weights()
    for w in hidden:
        assert torch.equal(w.grad, torch.zeros_like(w))
    assert torch.equal(last.grad, e.T @ h[-1] / x.shape[0])


@settings(max_examples=scaled_examples(25))
@given(fc_cases())
def test_updates_have_weight_shapes_and_are_finite(case):
    model, x, y, seed = case
    updates = {}
    for rule in RULES:
        torch.manual_seed(seed)
        rule().compute_gradients(model, x, y)
        updates[rule] = [w.grad.clone() for w in model.weights()]
        for w, g in zip(model.weights(), updates[rule]):
            assert g.shape == w.shape and bool(torch.isfinite(g).all())
    for rule in (FA, DFA):  # same masks (same seed): the readout update is the delta rule, BP's gradient
        torch.testing.assert_close(updates[rule][-1], updates[BP][-1], rtol=1e-12, atol=1e-14)


@st.composite
def conv_cases(draw):
    c_in, hgt, wid = draw(st.integers(1, 2)), draw(st.integers(3, 7)), draw(st.integers(3, 7))
    kernel = draw(st.integers(1, min(hgt, wid) - 1))
    channels, n_classes, batch = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(1, 4))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = ConvPEPITANet((c_in, hgt, wid), n_classes=n_classes, channels=channels, kernel=kernel)
    with torch.no_grad():
        model.F.mul_(draw(st.sampled_from((1.0, 30.0))))  # F ≠ 0; ×30 makes h − h_mod sizeable
    x = torch.rand(batch, c_in, hgt, wid)
    y = torch.randint(0, n_classes, (batch,))
    return model, x, y


@settings(max_examples=scaled_examples(25))
@given(conv_cases())
def test_conv_update_is_the_fc_formula_by_loops(case):
    model, x, y = case
    PEPITA().compute_gradients(model, x, y)
    B, k = x.shape[0], model.conv.kernel_size[0]
    with torch.no_grad():
        e = torch.softmax(model.output(x), 1) - nnf.one_hot(y, model.n_classes).to(x.dtype)
        x_mod = x + (e @ model.F.T).reshape_as(x)
        delta = torch.relu(model.conv(x)) - torch.relu(model.conv(x_mod))  # h − h_mod, pre-pool
    rows, cols = delta.shape[-2:]
    want = torch.zeros_like(model.conv.weight)
    for r in range(rows):
        for c in range(cols):
            patch = x_mod[:, :, r:r + k, c:c + k]  # (B, C_in, k, k)
            for b in range(B):  # (h − h_mod) ⊗ x_mod patch: the sign of (h_1 − h_1^mod)ᵀ x_mod
                want += delta[b, :, r, c][:, None, None, None] * patch[b][None]
    want /= B * rows * cols
    torch.testing.assert_close(model.conv.weight.grad, want, rtol=1e-10, atol=1e-14)
    feats = model.features(torch.relu(model.conv(x_mod))).detach()
    torch.testing.assert_close(model.fc.weight.grad, e.T @ feats / B, rtol=1e-12, atol=1e-14)


@settings(max_examples=scaled_examples(15))
@given(fc_cases(keeps=(1.0,)), st.randoms(use_true_random=False))
def test_rules_are_equivariant_to_batch_permutation(case, rnd):
    model, x, y, _ = case
    perm = list(range(x.shape[0]))
    rnd.shuffle(perm)
    for rule in RULES:
        rule().compute_gradients(model, x, y)
        ref = [w.grad.clone() for w in model.weights()]
        info = rule().compute_gradients(model, x[perm], y[perm])
        for w, g in zip(model.weights(), ref):
            torch.testing.assert_close(w.grad, g, rtol=1e-10, atol=1e-13)
        assert info["output"].shape == (x.shape[0], model.n_classes)


@settings(max_examples=scaled_examples(25))
@given(fc_cases())
def test_alignment_angles_in_range(case):
    model, x, y, _ = case
    bp, _ = BP().layer_updates(model, x, y, None)
    for a, g in zip(BP().diagnostics(model, x, y).values(), bp):
        assert math.isnan(a) if bool(g.abs().max() == 0) else a == 0.0
    for rule in (PEPITA, FA, DFA):
        ours, _ = rule().layer_updates(model, x, y, None)
        angles = alignment_angles(model, x, y, rule())
        assert list(angles) == [f"angle/W{l + 1}" for l in range(len(bp))]
        for a, u, g in zip(angles.values(), ours, bp):
            if bool(u.abs().max() == 0) or bool(g.abs().max() == 0):
                assert math.isnan(a)
            else:
                assert 0.0 <= a <= 180.0
