"""PEPITA and the BP / FA / DFA baselines (eqbench.rules.forward) on the feedforward models.

Pinned here: every rule's ``.grad`` against a per-sample numpy re-derivation on a hand-sized 3-2-2
net and against a hand-computed 2-2 case; BP against autograd; FA and DFA against BP when their
feedback matrices are the forward weights (positive controls); the conv layer's PEPITA update
against the FC layers' formula; SGD with momentum against the reference's heavy ball; a
teacher–student task that PEPITA, FA and DFA learn and sign-flipped PEPITA does not; the errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from eqbench.checks.controls import FlippedPEPITA
from eqbench.errors import ConfigError, ShapeError
from eqbench.models import build_model
from eqbench.models.feedforward import ConvPEPITANet, FeedForward
from eqbench.rules.forward import BP, DFA, FA, PEPITA, RULES_FORWARD, alignment_angles

RTOL, ATOL = 1e-12, 1e-14
RULES = [PEPITA, BP, FA, DFA]


pytestmark = pytest.mark.usefixtures("one_thread")


def _close(a, b, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               rtol=rtol, atol=atol)


def _fc(sizes, seed=0, **kw):
    torch.manual_seed(seed)
    return FeedForward(sizes, **kw).double()


def _batch(n_in, n_out, batch=6, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(batch, n_in, generator=g, dtype=torch.float64),
            torch.randint(0, n_out, (batch,), generator=g))


def _grads(model):
    return [w.grad.clone() for w in model.weights()]


# ------------------------------------------------------------------------------------ hand-sized net
W1 = [[0.5, -0.2, 0.1], [-0.3, 0.4, 0.2]]
W2 = [[0.6, -0.5], [0.2, 0.7]]
F_ = [[0.3, -0.1], [0.2, 0.4], [-0.5, 0.1]]
FA2 = [[0.1, 0.9], [-0.4, 0.3]]
DFA1 = [[0.2, -0.6], [0.5, 0.3]]
X = [[1.0, 2.0, 0.5], [-1.0, 0.5, 2.0]]  # sample 2 leaves hidden unit 1 below zero (a = −0.4)
Y = [0, 1]


def _tiny():
    model = FeedForward([3, 2, 2]).double()
    with torch.no_grad():
        for t, v in [(model.layers[0].weight, W1), (model.layers[1].weight, W2), (model.F, F_),
                     (model.fa_2, FA2), (model.dfa_1, DFA1)]:
            t.copy_(torch.tensor(v, dtype=torch.float64))
    return model, torch.tensor(X, dtype=torch.float64), torch.tensor(Y)


def _numpy_updates(rule: str) -> list[np.ndarray]:
    """The descent-form updates, sample by sample with column vectors (as PEPITA's numpy code)."""
    w1, w2, f, fa2, dfa1 = (np.array(v) for v in (W1, W2, F_, FA2, DFA1))
    relu = lambda a: np.maximum(a, 0.0)
    softmax = lambda a: np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    d1, d2 = np.zeros_like(w1), np.zeros_like(w2)
    for x, y in zip(np.array(X), Y):
        t = np.eye(2)[y]
        a1 = w1 @ x
        h1 = relu(a1)
        e = softmax(w2 @ h1) - t
        if rule == "PEPITA":
            xm = x + f @ e
            h1m = relu(w1 @ xm)
            em = softmax(w2 @ h1m) - t
            d1 += np.outer(h1 - h1m, xm)
            d2 += np.outer(em, h1m)
            continue
        back = {"BP": w2.T @ e, "FA": fa2.T @ e, "DFA": dfa1.T @ e}[rule]
        d1 += np.outer(back * (a1 > 0), x)
        d2 += np.outer(e, h1)
    return [d1 / len(Y), d2 / len(Y)]


@pytest.mark.parametrize("name", ["PEPITA", "BP", "FA", "DFA"])
def test_rule_matches_per_sample_numpy_formula(name):
    model, x, y = _tiny()
    RULES_FORWARD[name]().compute_gradients(model, x, y)
    for got, want in zip(_grads(model), _numpy_updates(name)):
        _close(got, want)


def test_hand_computed_single_layer_signs():
    # W = 0: softmax = (½, ½); y = 0 → e = (−½, ½); x = (1, 2).
    model = FeedForward([2, 2]).double()
    with torch.no_grad():
        model.layers[0].weight.zero_()
        model.F.copy_(torch.eye(2, dtype=torch.float64))
    x, y = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([0])
    for rule in (BP(), FA(), DFA()):
        rule.compute_gradients(model, x, y)
        _close(model.layers[0].weight.grad, [[-0.5, -1.0], [0.5, 1.0]])  # e ⊗ x
    # PEPITA: x_mod = x + e Fᵀ = (0.5, 2.5); W = 0 keeps e_mod = e; ΔW = e_mod ⊗ x_mod
    PEPITA().compute_gradients(model, x, y)
    _close(model.layers[0].weight.grad, [[-0.25, -1.25], [0.25, 1.25]])
    # descent: W ← W − η·grad raises the correct class's logit
    with torch.no_grad():
        model.layers[0].weight.sub_(0.1 * model.layers[0].weight.grad)
        logits = model.output(x)
    assert logits[0, 0] > logits[0, 1]


# ------------------------------------------------------------------------------------ BP, FA, DFA controls
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_bp_equals_autograd_of_mean_ce(act):
    model = _fc([5, 7, 4, 3], act=act)
    x, y = _batch(5, 3)
    BP().compute_gradients(model, x, y)
    loss = nnf.cross_entropy(model.output(x), y)
    for got, want in zip(_grads(model), torch.autograd.grad(loss, model.weights())):
        _close(got, want)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("keep", [1.0, 0.7])
def test_fa_with_forward_weights_is_bp(act, keep):
    model = _fc([5, 7, 6, 3], act=act, keep=keep)
    with torch.no_grad():
        for l in (2, 3):
            model.feedback("fa", l).copy_(model.layers[l - 1].weight)
    x, y = _batch(5, 3)
    torch.manual_seed(7)
    FA().compute_gradients(model, x, y)
    fa = _grads(model)
    torch.manual_seed(7)  # the same dropout masks
    BP().compute_gradients(model, x, y)
    for a, b in zip(fa, _grads(model)):
        _close(a, b)
    assert alignment_angles(model, x, y, FA()) == pytest.approx({"angle/W1": 0.0, "angle/W2": 0.0, "angle/W3": 0.0},
                                                                abs=1e-5)


def test_dfa_with_last_weights_is_bp_for_one_hidden_layer():
    model = _fc([5, 8, 3], act="tanh", keep=0.8)
    with torch.no_grad():
        model.dfa_1.copy_(model.layers[1].weight)
    x, y = _batch(5, 3)
    torch.manual_seed(3)
    DFA().compute_gradients(model, x, y)
    dfa = _grads(model)
    torch.manual_seed(3)
    BP().compute_gradients(model, x, y)
    for a, b in zip(dfa, _grads(model)):
        _close(a, b)


def test_fa_and_dfa_reject_the_conv_model_and_rules_reject_energy_models():
    torch.manual_seed(0)
    conv = ConvPEPITANet((1, 6, 6), n_classes=3, channels=2, kernel=3)
    x, y = torch.rand(2, 1, 6, 6), torch.tensor([0, 2])
    for rule in (FA(), DFA()):
        with pytest.raises(ConfigError, match="trains FC models, got CONV1FC"):
            rule.compute_gradients(conv, x, y)
    mlp = build_model("P_MLP", sizes=[6, 4, 3])
    with pytest.raises(ConfigError, match="PEPITA trains FC or CONV1FC models, got P_MLP"):
        PEPITA().compute_gradients(mlp, torch.rand(2, 6), y)


# ------------------------------------------------------------------------------------ PEPITA specifics
def test_pepita_with_dropout_reuses_masks_and_draws_them_from_the_global_rng():
    model = _fc([6, 9, 7, 4], keep=0.6)
    x, y = _batch(6, 4, batch=8)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        PEPITA().compute_gradients(model, x, y)
        runs.append(_grads(model))
    for a, b in zip(runs[0], runs[1]):
        assert torch.equal(a, b)
    assert not torch.equal(runs[0][0], runs[2][0])
    # by hand with the same masks: pass 2 must use them too
    torch.manual_seed(5)
    masks = model.sample_masks(8, x.device, x.dtype)
    pre, h = model.forward(x, masks)
    t = nnf.one_hot(y, 4).double()
    e = torch.softmax(pre[-1], 1) - t
    x_mod = x + e @ model.F.T
    pre_m, h_m = model.forward(x_mod, masks)
    e_m = torch.softmax(pre_m[-1], 1) - t
    want = [(h[0] - h_m[0]).T @ x_mod / 8, (h[1] - h_m[1]).T @ h_m[0] / 8, e_m.T @ h_m[1] / 8]
    for got, w in zip(runs[0], want):
        _close(got, w)


def _conv_case(kernel, seed=0, F_gain=20.0):
    torch.manual_seed(seed)
    model = ConvPEPITANet((2, 6, 6), n_classes=3, channels=3, kernel=kernel).double()
    with torch.no_grad():
        model.F.mul_(F_gain)  # a modulation large enough that h − h_mod is not tiny
    x = torch.rand(4, 2, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    return model, x, y


def _conv_passes(model, x, y):
    with torch.no_grad():
        e = torch.softmax(model.output(x), 1) - nnf.one_hot(y, model.n_classes).double()
        x_mod = x + (e @ model.F.T).reshape_as(x)
        return e, x_mod, torch.relu(model.conv(x)), torch.relu(model.conv(x_mod))


def test_conv_update_with_1x1_kernel_is_the_fc_formula_over_pixels():
    # A 1×1 conv is a Linear applied at every pixel: its PEPITA update must be the FC layers' first-layer
    # formula (h − h_mod)ᵀ x_mod / B' with the B·P pixels as samples — same sign, one batch average.
    model, x, y = _conv_case(kernel=1)
    PEPITA().compute_gradients(model, x, y)
    e, x_mod, h, h_m = _conv_passes(model, x, y)
    pix = lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    want = (pix(h) - pix(h_m)).T @ pix(x_mod) / pix(x_mod).shape[0]
    assert want.abs().max() > 1e-6
    _close(model.conv.weight.grad[:, :, 0, 0], want)
    # readout: the first-pass error e (the conv script's choice), pooled modulated features
    _close(model.fc.weight.grad, e.T @ model.pool(h_m).flatten(1) / 4)


def test_conv_model_bp_and_angles():
    model, x, y = _conv_case(kernel=3)
    BP().compute_gradients(model, x, y)
    loss = nnf.cross_entropy(model.output(x), y)
    for got, want in zip(_grads(model), torch.autograd.grad(loss, model.weights())):
        _close(got, want)
    angles = PEPITA().diagnostics(model, x, y)
    assert set(angles) == {"angle/W1", "angle/W2"}
    assert all(0.0 <= a <= 180.0 for a in angles.values())


def test_sgd_momentum_is_the_reference_heavy_ball():
    # v ← 0.9 v + η ΔW/B;  W ← W − v   (PEPITA's update_type "mom", η constant)
    eta = 0.05
    a, b = _fc([6, 8, 3], seed=2), _fc([6, 8, 3], seed=2)
    x, y = _batch(6, 3, batch=10)
    opt = torch.optim.SGD(a.parameters(), lr=eta, momentum=0.9)
    v = [torch.zeros_like(w) for w in b.weights()]
    for _ in range(6):
        PEPITA().compute_gradients(a, x, y)
        opt.step()
        PEPITA().compute_gradients(b, x, y)
        with torch.no_grad():
            for i, w in enumerate(b.weights()):
                v[i] = 0.9 * v[i] + eta * w.grad
                w.sub_(v[i])
    for wa, wb in zip(a.weights(), b.weights()):
        _close(wa, wb, rtol=1e-10, atol=1e-12)


def test_compute_gradients_and_predict_outputs():
    model = _fc([6, 5, 3, 4], keep=0.5)
    x, y = _batch(6, 4, batch=5)
    for rule in RULES:
        info = rule().compute_gradients(model, x, y)
        assert info["output"].shape == (5, 4) and info["loss"].shape == (5,)
        assert not info["output"].requires_grad and not info["loss"].requires_grad
        _close(info["loss"], nnf.cross_entropy(info["output"], y, reduction="none"))
        assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
        state = torch.random.get_rng_state()
        logits, acts = rule().predict(model, x)
        assert torch.equal(state, torch.random.get_rng_state())  # no dropout, no draw
        _close(logits, model.output(x))
        assert [a.shape for a in acts] == [(5, 5), (5, 3), (5, 4)]
        _close(acts[-1], torch.softmax(logits, dim=1))
        _close(acts[-1].sum(1), torch.ones(5, dtype=torch.float64))
    # without dropout, the returned output is the plain forward pass
    model.keep = 1.0
    _close(PEPITA().compute_gradients(model, x, y)["output"], model.output(x))


@pytest.mark.parametrize("rule", RULES)
def test_a_parameter_the_rule_does_not_train_gets_no_gradient(rule):
    """A parameter outside model.weights() (a user's extra scale, say) has .grad None after a step, a stale
    gradient included, so the optimizer leaves it alone; the weights get theirs."""
    model = _fc([6, 5, 4])
    model.temperature = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    model.temperature.grad = torch.ones(1, dtype=torch.float64)
    rule().compute_gradients(model, *_batch(6, 4))
    assert model.temperature.grad is None and all(w.grad is not None for w in model.weights())


def test_a_model_the_rule_cannot_train_is_named():
    with pytest.raises(ConfigError) as ei:
        PEPITA().compute_gradients(torch.nn.Linear(6, 4), *_batch(6, 4))
    assert _one_line(ei) == "PEPITA trains FC or CONV1FC models, got Linear"


def test_flipped_pepita_negates_every_update():
    model = _fc([6, 5, 4])
    x, y = _batch(6, 4)
    PEPITA().compute_gradients(model, x, y)
    ref = _grads(model)
    FlippedPEPITA().compute_gradients(model, x, y)
    for a, b in zip(ref, _grads(model)):
        assert torch.equal(-a, b)


# ------------------------------------------------------------------------------------ teacher–student
def _teacher_task():
    torch.manual_seed(123)
    teacher = FeedForward([20, 30, 5])
    x = torch.randn(512, 20)
    with torch.no_grad():
        y = teacher.output(x).argmax(1)
    return x, y


def _train(rule, x, y, lr=0.01, steps=200, seed=0):
    torch.manual_seed(seed)
    student = FeedForward([20, 64, 5])
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9)
    with torch.no_grad():
        initial = student.loss(student.output(x), y).mean().item()
    for _ in range(steps):
        rule.compute_gradients(student, x, y)
        opt.step()
    with torch.no_grad():
        final = student.loss(student.output(x), y).mean().item()
    return initial, final


# Full batch of 512, SGD(lr=0.01, momentum=0.9), 200 steps, float32, measured (student seed 0):
#   PEPITA 2.005 → 0.648, FA 2.005 → 0.571, DFA 2.005 → 0.513, BP 2.005 → 0.451;
#   FlippedPEPITA 2.005 → 483. Over student seeds 0–4 the final/initial ratio stays ≤ 0.354 for
#   PEPITA, FA and DFA, and ≥ 138 for the flipped control.
@pytest.mark.parametrize("rule", [PEPITA, FA, DFA])
def test_teacher_student_loss_decreases(rule):
    initial, final = _train(rule(), *_teacher_task())
    assert final < 0.5 * initial, (initial, final)


def test_teacher_student_flipped_pepita_does_not_learn():
    initial, final = _train(FlippedPEPITA(), *_teacher_task())
    assert final >= initial, (initial, final)


# ------------------------------------------------------------------------------------ alignment
def test_alignment_angles():
    model = _fc([6, 9, 7, 4])
    x, y = _batch(6, 4, batch=12)
    assert BP().diagnostics(model, x, y) == {"angle/W1": 0.0, "angle/W2": 0.0, "angle/W3": 0.0}
    angles = PEPITA().diagnostics(model, x, y)
    assert list(angles) == ["angle/W1", "angle/W2", "angle/W3"]
    assert all(math.isfinite(a) and 0.0 <= a <= 180.0 for a in angles.values())
    # the readout of FA and DFA is the delta rule, BP's own gradient
    assert FA().diagnostics(model, x, y)["angle/W3"] == pytest.approx(0.0, abs=1e-5)
    # with F = 0 PEPITA's hidden updates vanish: no direction, NaN; its readout is then BP's
    with torch.no_grad():
        model.F.zero_()
    angles = PEPITA().diagnostics(model, x, y)
    assert math.isnan(angles["angle/W1"]) and angles["angle/W3"] == pytest.approx(0.0, abs=1e-5)
    # diagnostics leave .grad alone
    BP().compute_gradients(model, x, y)
    before = _grads(model)
    DFA().diagnostics(model, x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, _grads(model)))


# ------------------------------------------------------------------------------------ models, errors
def test_fixed_matrices_follow_the_reference_ranges_and_names():
    """F = 0.05·U(±sqrt(6/n_in)), fa_l ~ U(±sqrt(6/n_{l−1})) shaped like W_l (l ≥ 2), dfa_l ~ U(±1/sqrt(n_out)): with
    hundreds of draws each, the largest |entry| lies within 5 % below its limit (a wrong fan-in moves it ≥ 20 %)."""
    model = _fc([100, 50, 40, 20])
    assert set(dict(model.named_buffers())) == {"F", "fa_2", "fa_3", "dfa_1", "dfa_2"}
    assert [n for n, _ in model.named_parameters()] == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    limits = {"F": 0.05 * math.sqrt(6 / 100), "fa_2": math.sqrt(6 / 50), "fa_3": math.sqrt(6 / 40),
              "dfa_1": 1 / math.sqrt(20), "dfa_2": 1 / math.sqrt(20), "layers.0.weight": math.sqrt(6 / 100),
              "layers.2.weight": math.sqrt(6 / 40)}
    tensors = {**dict(model.named_buffers()), **dict(model.named_parameters())}
    for name, limit in limits.items():
        assert 0.95 * limit < tensors[name].abs().max().item() <= limit, name
    assert (model.fa_2.shape, model.dfa_1.shape, model.F.shape) == ((40, 50), (20, 50), (100, 20))


def test_the_conv_model_is_the_references_net_by_default():
    """CONV1FC: Net1conv1fcXL — a bias-free 5×5 conv to 32 channels, relu, 2×2 max pooling, a bias-free readout."""
    m = build_model("CONV1FC")
    assert (m.conv.kernel_size, m.conv.out_channels, m.conv.bias, m.fc.bias) == ((5, 5), 32, None, None)
    assert m.fc.in_features == 32 * 12 * 12 and m.F.shape == (784, 10)
    assert 0.95 * 0.05 * math.sqrt(6 / 784) < float(m.F.abs().max()) <= 0.05 * math.sqrt(6 / 784)
    small = build_model("CONV1FC", in_shape=(3, 10, 10), n_classes=4, channels=2, kernel=3)
    assert (small.conv.in_channels, small.conv.out_channels, small.conv.kernel_size, small.fc.out_features) == \
        (3, 2, (3, 3), 4)
    x = torch.rand(1, 300)  # flattened images of one sample are reshaped
    assert small.check_input(x).shape == (1, 3, 10, 10) and small.output(small.check_input(x)).shape == (1, 4)
    assert small.forward(small.check_input(x))[1][0].shape == (1, 2, 8, 8)  # the pre-pool map


@pytest.mark.parametrize("factory, kw, message", [
    ("FC", {"sizes": [6]}, "FC needs sizes [n_in, ..., n_out] of at least two positive entries, got [6]"),
    ("FC", {"act": "swish"}, "unknown activation 'swish'"),
    ("FC", {"keep": 1.5}, "keep is dropout's keep probability and must lie in (0, 1], got 1.5"),
    ("FC", {"keep": 0.0}, "keep is dropout's keep probability and must lie in (0, 1], got 0.0"),
    ("CONV1FC", {"in_shape": (28, 28)}, "CONV1FC needs in_shape (channels, height, width), got (28, 28)"),
    ("CONV1FC", {"in_shape": (1, 5, 5)},
     "CONV1FC: a 5×5 conv then 2×2 pooling does not fit a 5×5 input (or channels/n_classes < 1)"),
    ("CONV1FC", {"n_classes": 0}, "CONV1FC: a 5×5 conv then 2×2 pooling does not fit a 28×28 input (or "
                                  "channels/n_classes < 1)"),
    ("CONV1FC", {"channels": 0}, "CONV1FC: a 5×5 conv then 2×2 pooling does not fit a 28×28 input (or "
                                 "channels/n_classes < 1)"),
])
def test_bad_model_options_are_one_line(factory, kw, message):
    with pytest.raises(ConfigError) as ei:
        build_model(factory, **kw)
    assert _one_line(ei).startswith(message)
    assert build_model("CONV1FC", n_classes=1, channels=1).fc.out_features == 1  # the smallest legal net


def test_dropout_masks_are_inverted_in_the_models_dtype_and_keep_one_draws_nothing():
    model = _fc([6, 400, 300, 4], keep=0.8)
    torch.manual_seed(0)
    masks = model.sample_masks(50)
    assert [m.dtype for m in masks] == [torch.float64, torch.float64] and [m.shape for m in masks] == \
        [(50, 400), (50, 300)]
    values = torch.cat([m.flatten() for m in masks])
    assert set(values.unique().tolist()) == {0.0, 1 / 0.8}  # kept units scaled by 1/keep
    assert abs(float((values > 0).double().mean()) - 0.8) < 0.01  # 35 000 draws: σ ≈ 0.002
    full = _fc([6, 5, 4], keep=1.0)
    state = torch.random.get_rng_state()
    assert all(m.dtype == torch.float64 and torch.equal(m, torch.ones(3, 5, dtype=torch.float64))
               for m in full.sample_masks(3))
    assert torch.equal(state, torch.random.get_rng_state())


def test_models_buffers_are_seeded_and_checkpointed():
    a, b = _fc([8, 6, 5, 3], seed=4), _fc([8, 6, 5, 3], seed=4)
    keys = set(a.state_dict())
    assert {"F", "fa_2", "fa_3", "dfa_1", "dfa_2", "layers.0.weight"} <= keys and "fa_1" not in keys
    for k in keys:
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert a.F.shape == (8, 3) and a.dfa_2.shape == (3, 5) and a.fa_3.shape == (3, 5)
    assert a.F.abs().max() <= 0.05 * math.sqrt(6 / 8)
    assert a.layers[0].weight.abs().max() <= math.sqrt(6 / 8) and a.dfa_1.abs().max() <= 1 / math.sqrt(3)
    c = _fc([8, 6, 5, 3], seed=5)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.F, a.F)
    assert [len(g) for g in a.layer_parameters()] == [1, 1, 1]
    torch.manual_seed(0)
    conv = build_model("CONV1FC")
    assert conv.fc.in_features == 4608 and conv.F.shape == (784, 10) and conv.name == "CONV1FC"
    assert build_model("CONV1FC", in_shape=(3, 32, 32)).fc.in_features == 6272  # the _cif variant
    fc = build_model("FC", sizes=[784, 1024, 10], keep=0.9)
    assert fc.name == "FC" and fc.in_shape == (784,) and fc.n_classes == 10
    assert all(layer.bias is None for layer in fc.layers)


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_errors_are_one_line():
    model = _fc([6, 5, 4])
    x, y = _batch(6, 4, batch=3)
    with pytest.raises(ShapeError) as ei:
        PEPITA().compute_gradients(model, x.tolist(), y)
    assert _one_line(ei) == "FC expects a torch.Tensor input, got list"
    with pytest.raises(ShapeError) as ei:
        PEPITA().compute_gradients(model, x, y.tolist())
    assert _one_line(ei) == "targets must be a torch.Tensor, got list"
    with pytest.raises(ShapeError) as ei:
        PEPITA().compute_gradients(model, torch.rand(3, 7, dtype=torch.float64), y)
    assert _one_line(ei) == "input has shape (3, 7) but FC expects (batch, 6)"
    assert model.check_input(x.reshape(3, 2, 3)).shape == (3, 6)  # images are flattened
    with pytest.raises(ShapeError) as ei:
        BP().compute_gradients(model, x, torch.tensor([0, 1, 4]))
    assert "[0, 4)" in _one_line(ei)
    with pytest.raises(ShapeError) as ei:
        FA().compute_gradients(model, x, torch.tensor([0, 1]))
    assert "expected (3,)" in _one_line(ei)
    with pytest.raises(ShapeError) as ei:
        DFA().compute_gradients(model, x, nnf.one_hot(torch.tensor([0, 1, 2]), 4).double())
    assert "class-index targets" in _one_line(ei)
    conv = ConvPEPITANet((1, 6, 6), n_classes=3, channels=2, kernel=3)
    with pytest.raises(ShapeError) as ei:
        PEPITA().predict(conv, torch.rand(2, 1, 6, 5))
    assert _one_line(ei) == "input has shape (2, 1, 6, 5) but CONV1FC expects (batch, 1, 6, 6)"
    for kw, match in [(dict(sizes=[6]), "at least two"), (dict(sizes=[6, 3], act="relu6"), "unknown activation"),
                      (dict(sizes=[6, 3], keep=0.0), "keep probability"), (dict(sizes=[6, 3], foo=1), "foo")]:
        with pytest.raises(ConfigError, match=match) as ei:
            build_model("FC", **kw)
        _one_line(ei)
    with pytest.raises(ConfigError, match="does not fit") as ei:
        build_model("CONV1FC", in_shape=(1, 5, 5))
    _one_line(ei)
