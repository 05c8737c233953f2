"""Scellier et al. 2023's DCHN (eqbench.models.dchn) and the comparative study's rules (eqbench.rules: CL, PEP, NEP,
CEP, PCpL, NCpL, CCpL): the network against an independent transcription of the authors' energy and fixed-point
step, its shapes and initialisation, the rules' identities, and the bad inputs of the issue, one line each."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from eqbench.errors import ConfigError, ShapeError
from eqbench.models import build_model
from eqbench.relaxation import relax
from eqbench.rules import EP, ContrastiveLearning, CoupledLearning
from eqbench.rules.algorithms import build_rule

pytestmark = pytest.mark.usefixtures("one_thread")


def _dchn(**kw):
    torch.manual_seed(0)
    return build_model("DCHN", **{"in_shape": (1, 8, 8), "channels": [3, 4], **kw}).double()


def _batch(model, n=5):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, *model.in_shape, generator=g, dtype=torch.float64)
    return x, torch.arange(n) % model.n_classes, [torch.rand(n, *s, generator=g, dtype=torch.float64)
                                                 for s in model.state_shapes()]


def authors_energy(model, x, s) -> torch.Tensor:
    """ConvHopfieldEnergy32's energy written from the authors' interactions (model/hopfield/interaction.py), plus
    the ½‖s‖² their fixed-point step minimises: −Σ b·s − Σ ⟨maxpool(conv(s_pre, W, pad)), s_post⟩ − ⟨W s_L, s_o⟩."""
    layers = [x, *s]
    e = 0.5 * sum((t.flatten(1) ** 2).sum(1) for t in s)
    convs, dense = list(model.synapses)[:-1], model.synapses[-1]
    for l, conv in enumerate(convs):
        pre = F.conv2d(layers[l], conv.weight, padding=conv.padding)
        e = e - (F.max_pool2d(pre, 2) * layers[l + 1]).sum((1, 2, 3))
        e = e - (conv.bias[None, :, None, None] * layers[l + 1]).sum((1, 2, 3))  # BiasInteraction: per channel
    e = e - ((layers[-2].flatten(1) @ dense.weight.t()) * s[-1]).sum(1) - (dense.bias * s[-1]).sum(1)
    return e


def test_energy_is_the_authors():
    model = _dchn()
    x, _, s = _batch(model)
    with torch.no_grad():
        mine, theirs = model.energy(x, s), authors_energy(model, x, s)
        tol = 64 * torch.finfo(torch.float64).eps * float(theirs.abs().max())
        assert float((mine - theirs).abs().max()) <= tol
        # the control: average pooling (another energy) is told apart by the same comparison
        assert float((_dchn(pools="aa").energy(x, s) - theirs).abs().max()) > 1e6 * tol


def authors_step(model, x, s) -> list[torch.Tensor]:
    """The authors' HopfieldLayerUpdater on every layer: s_l ← σ(−∂E'/∂s_l), E' their energy without the ½‖s‖²
    (σ = clip(·, 0, 1) on hidden layers, the output linear), read off the transcription by autograd."""
    leaves = [t.clone().requires_grad_(True) for t in s]
    e = authors_energy(model, x, leaves) - 0.5 * sum((t.flatten(1) ** 2).sum(1) for t in leaves)
    grads = torch.autograd.grad(e.sum(), leaves)
    return [-g if i == len(s) - 1 else (-g).clamp(0, 1) for i, g in enumerate(grads)]


def test_an_asynchronous_iteration_is_the_authors_fixed_point_minimiser():
    """One iteration of FixedPointMinimizer(mode='asynchronous'): one parity of layers, then the other from the
    refreshed states (eqbench's fused minimiser)."""
    model = _dchn()
    x, _, s = _batch(model)
    first, second = model.parity_groups()
    mid = [v if i in first else s[i] for i, v in enumerate(authors_step(model, x, s))]
    want = [v if i in second else mid[i] for i, v in enumerate(authors_step(model, x, mid))]
    got = relax(model, x, s, 1, mode="async")
    assert all(torch.allclose(g, w, rtol=0, atol=1e-13) for g, w in zip(got, want))
    # the control: the synchronous step (every layer from the same state) is another iteration
    assert not all(torch.allclose(g, w, rtol=0, atol=1e-6) for g, w in zip(relax(model, x, s, 1), want))


def test_paper_shapes_and_the_authors_padding_of_28_pixel_inputs():
    for in_shape in ((3, 32, 32), (1, 28, 28)):
        m = build_model("DCHN", in_shape=in_shape, channels=[2, 2, 2, 2], n_classes=100)
        assert m.state_shapes() == [(2, 16, 16), (2, 8, 8), (2, 4, 4), (2, 2, 2), (100,)]
        assert m.synapses[0].padding == ((3, 3) if in_shape[1] == 28 else (1, 1))


def test_the_authors_initialisation():
    torch.manual_seed(0)
    gains = [0.4, 0.7, 0.6]
    m = build_model("DCHN", in_shape=(3, 8, 8), channels=[16, 32], gains=gains)
    for f, g in zip(m.synapses, gains):
        fan_in = math.prod(f.weight.shape[1:])
        w, b = float(f.weight.detach().abs().max()), float(f.bias.detach().abs().max())
        assert 0.9 * g / math.sqrt(fan_in) < w <= g / math.sqrt(fan_in)  # U(±g/√fan_in), the bound nearly reached
        assert b <= 0.5 / math.sqrt(fan_in)


@pytest.mark.parametrize("kw, match", [
    ({"in_shape": (1, 30, 30)}, r"input side divisible by 4 \(or 28"),
    ({"in_shape": (1, 8, 6)}, "square images"),
    ({"gains": [0.5, 0.5]}, "needs 3 positive gains"),
    ({"gains": [0.5, -1, 0.5]}, "needs 3 positive gains"),
    ({"channels": []}, "at least one conv layer"),
])
def test_a_config_that_does_not_fit_is_one_line(kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_model("DCHN", **{"in_shape": (1, 8, 8), "channels": [3, 4], **kw})
    assert "\n" not in str(e.value)


def test_a_dataset_of_another_shape_is_one_line():
    model = _dchn()
    with pytest.raises(ShapeError, match=r"input has shape \(2, 3, 32, 32\) but DCHN expects \(batch, 1, 8, 8\)"):
        model.check_input(torch.rand(2, 3, 32, 32))


# ------------------------------------------------------------------------------------------------ the seven rules
def _update(rule, model, x, y):
    free = rule.free_phase(model, x)
    return rule.update(model, x, y, free)[0]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_paper_names_are_eqbench_estimators():
    model = _dchn()
    x, y, _ = _batch(model)
    kw = {"T1": 40, "T2": 8, "mode": "async"}
    assert _same(_update(build_rule("PEP", beta=0.2, **kw), model, x, y),
                 _update(EP(beta=0.2, estimator="one_sided", **kw), model, x, y))
    assert _same(_update(build_rule("CEP", beta=0.2, **kw), model, x, y),
                 _update(EP(beta=0.2, estimator="centered", **kw), model, x, y))
    # N-EP is the one-sided estimator at −β: the same numbers (its phase pair written the other way round)
    nep, one = _update(build_rule("NEP", beta=0.2, **kw), model, x, y), \
        _update(EP(beta=-0.2, estimator="one_sided", **kw), model, x, y)
    assert all(torch.allclose(nep[k], one[k], rtol=0, atol=1e-15) for k in nep)
    assert _same(_update(build_rule("NCpL", eta=0.2, **kw), model, x, y),
                 _update(CoupledLearning(eta=0.2, variant="negative", **kw), model, x, y))


def test_contrastive_learning_clamps_the_output_at_the_target():
    model = _dchn()
    x, y, _ = _batch(model)
    rule = ContrastiveLearning(T1=40, T2=8)
    free = rule.free_phase(model, x)
    assert torch.allclose(rule.clamped_output(model, free, y), F.one_hot(y, 10).double(), rtol=0, atol=1e-15)
    assert _same(_update(rule, model, x, y), _update(CoupledLearning(eta=1.0, T1=40, T2=8), model, x, y))


@pytest.mark.parametrize("name, kw, match", [
    ("CL", {"eta": 0.5}, "rule CL is contrastive learning .* coupled learning is CpL"),
    ("NEP", {"beta": -0.1}, r"NEP takes a positive beta \(the sign is in its name\)"),
    ("CCpL", {"eta": -0.1}, "CCpL takes a positive eta"),
    ("CpL", {"eta": 1.5}, r"η must lie in \(0, 1\]"),
    ("CpL", {"eta": 0.5, "variant": "sideways"}, "unknown coupled-learning variant 'sideways'"),
    ("CEP", {"beta": 0.1, "estimator": "one_sided"}, "rule CEP fixes estimator = symmetric; use rule EP"),
    ("Cep", {}, r"unknown learning rule 'Cep' \(did you mean .*CEP"),
])
def test_bad_rule_input_is_one_line(name, kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_rule(name, T1=5, T2=2, **kw)
    assert "\n" not in str(e.value)


def test_a_fast_relax_of_the_contracts_first_form_still_relaxes_every_mode():
    """A model written before ``fast_relax`` took ``mode`` and ``clamped`` keeps its fused synchronous free phase and
    runs the generic loop for the asynchronous and clamped ones (instead of a TypeError)."""
    from eqbench.models.layered import LayeredEP

    calls = []

    class FirstForm(LayeredEP):
        def fast_relax(self, x, s, steps, beta=0.0, y=None, *, cache=None):
            calls.append(steps)
            return super().fast_relax(x, s, steps, beta, y, cache=cache)

    torch.manual_seed(0)
    model = FirstForm((6,), fc=[5, 3]).double()
    x = torch.rand(4, 6, dtype=torch.float64)
    s0 = model.init_state(x)
    relax(model, x, s0, 7)
    assert calls == [7]
    a = relax(model, x, s0, 7, mode="async")
    b = relax(model, x, s0, 7, mode="async", fast=False)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    relax(model, x, s0, 7, clamp={1: s0[1] + 0.5})
    assert calls == [7]  # the clamped and asynchronous phases went to the generic loop
