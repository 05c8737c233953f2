"""Holomorphic EP, the centered alias and coupled learning: identities, bad input, and the engine pieces they use.

The orders themselves (slope N of the error against β, every parameter, P_MLP and P_CNN avg pool) are claims of the
catalogue (eqbench.claims, suites/claims); property tests over random networks are in
suites/properties/test_holomorphic.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from eqbench import build_model, relax
from eqbench.cases import CASES
from eqbench.checks.controls import UncontrastedCL
from eqbench.errors import ConfigError
from eqbench.rules import EP, CoupledLearning
from eqbench.rules.algorithms import build_rule

pytestmark = pytest.mark.usefixtures("float64_default")


def _setup(act="my_sigmoid", **kw):
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=[6, 5, 4], act=act, **kw).double()
    x = torch.rand(3, 6, dtype=torch.float64)
    y = torch.tensor([0, 3, 1])
    return model, x, y


def _update(rule, model, x, y):
    free = rule.free_phase(model, x)
    return rule.update(model, x, y, free)[0]


def _max_rel(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)


# float64 round-off of an update made of O(1) products summed over a few units: 1e-12 relative is ~10⁴ ulps
ROUNDOFF = 1e-12


def test_centered_is_an_alias_of_symmetric():
    model, x, y = _setup()
    centered = EP(beta=0.1, T1=40, T2=8, estimator="centered")
    assert centered.estimator == "symmetric"
    sym = EP(beta=0.1, T1=40, T2=8, estimator="symmetric")
    g1, g2 = _update(centered, model, x, y), _update(sym, model, x, y)
    assert all(torch.equal(g1[k], g2[k]) for k in g2)


@pytest.mark.parametrize("N, same_as", [(1, "one_sided"), (2, "symmetric")])
def test_small_circles_are_the_two_point_estimators(N, same_as):
    """N = 1 is the one-sided estimator, N = 2 the symmetric one (the free-state terms cancel around ±β)."""
    model, x, y = _setup()
    base = EP(beta=0.2, T1=40, T2=8, estimator=same_as)
    holo = replace(base, estimator="holomorphic", points=N)
    assert _max_rel(_update(holo, model, x, y), _update(base, model, x, y)) <= ROUNDOFF


@pytest.mark.parametrize("N", [3, 4, 5])
def test_circle_estimate_is_real_and_pairs_are_conjugate(N):
    model, x, y = _setup(loss="ce", softmax=False)
    rule = EP(beta=0.3, T1=40, T2=8, estimator="holomorphic", points=N)
    free = rule.free_phase(model, x)
    paired = rule.circle_grads(model, x, y, free)
    full = rule.circle_grads(model, x, y, free, full=True)
    imag = rule.circle_grads(model, x, y, free, full=True, part="imag")
    assert _max_rel(paired, full) <= ROUNDOFF
    assert max(float(imag[k].abs().max() / full[k].abs().max()) for k in full) <= ROUNDOFF
    assert all(g.dtype == torch.float64 and not g.is_complex() for g in paired.values())


def test_imaginary_part_control_is_not_zero():
    """Negative control of the test above: weighting the terms by 1/|β_k| instead of 1/β_k leaves an O(1) imaginary
    part, so a check of Im ≈ 0 can fail."""
    model, x, y = _setup()
    rule = EP(beta=0.3, T1=40, T2=8, estimator="holomorphic", points=3)
    free = rule.free_phase(model, x)
    b = rule.circle()[1]
    twin = rule._twin(model)
    xc, fc = x.to(torch.complex128), [f.to(torch.complex128) for f in free]
    s = relax(twin, xc, fc, 8, beta=b, y=y)
    # Im of −ΔΦ/|β_k| versus Im of −ΔΦ/β_k for one point: the first is not round-off
    wrong = rule.pair_grads(twin, xc, y, fc, fc, 0.0, s, b, denom=abs(b), weight=-1j)
    assert max(float(g.abs().max()) for g in wrong.values()) > 1e-3


def test_twin_follows_the_weights_after_an_optimizer_step():
    model, x, y = _setup()
    rule = EP(beta=0.2, T1=40, T2=8, estimator="holomorphic", points=3)
    rule.compute_gradients(model, x, y)
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    again = _update(rule, model, x, y)
    fresh = _update(EP(beta=0.2, T1=40, T2=8, estimator="holomorphic", points=3), model, x, y)
    assert all(torch.equal(again[k], fresh[k]) for k in fresh)


def test_training_step_in_float32_writes_real_float32_grads():
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=[6, 5, 4], act="my_sigmoid").float()
    x, y = torch.rand(3, 6, dtype=torch.float32), torch.tensor([0, 3, 1])
    EP(beta=0.2, T1=20, T2=5, estimator="holomorphic", points=4).compute_gradients(model, x, y)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_continued_circle_matches_restarted_when_phases_converge():
    """The authors' persistent variant (phase k from phase k − 1's end) reaches the same equilibria when T2 is long
    enough, so its estimate matches the restarted one; with a short T2 it does not."""
    model, x, y = _setup()
    long = EP(beta=0.05, T1=200, T2=200, estimator="holomorphic", points=4)
    assert _max_rel(_update(replace(long, continued=True), model, x, y), _update(long, model, x, y)) <= 1e-10
    short = replace(long, T2=2)
    assert _max_rel(_update(replace(short, continued=True), model, x, y), _update(short, model, x, y)) > 1e-3


def test_cnn_with_avg_pooling_runs_complex_phases():
    model, x, y = CASES["P_CNN avg pool"].build(batch=4)
    g = _update(EP(beta=0.1, T1=50, T2=5, estimator="holomorphic", points=3), model, x, y)
    assert all(torch.isfinite(v).all() and not v.is_complex() for v in g.values())


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("points", [0, -2, 2.5, True, "3"])
def test_bad_number_of_points_is_one_line(points):
    with pytest.raises(ConfigError, match="integer number of points") as e:
        build_rule("EP", beta=0.1, T1=5, T2=2, estimator="holomorphic", points=points)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("act, pools, needle", [("my_hard_sig", None, "activation my_hard_sig is not holomorphic"),
                                                ("my_sigmoid", "ma", "max pooling")])
def test_non_holomorphic_models_are_refused(act, pools, needle):
    if pools is None:
        model, x, y = _setup(act=act)
    else:
        model, x, y = CASES["P_CNN avg pool"].build(batch=2, pools=pools, act=act)
    with pytest.raises(ConfigError, match=needle) as e:
        EP(beta=0.1, T1=5, T2=2, estimator="holomorphic", points=3).compute_gradients(model, x, y)
    assert "\n" not in str(e.value)


def test_model_without_complex_support_is_refused():
    torch.manual_seed(0)
    model = build_model("BIN_MLP", sizes=[6, 5, 4]).double()
    with pytest.raises(ConfigError, match="holomorphic EP cannot run on BIN_MLP"):
        EP(beta=0.1, T1=5, T2=2, estimator="holomorphic").compute_gradients(model, torch.rand(2, 6),
                                                                           torch.tensor([0, 1]))


def test_unknown_estimator_lists_the_alias():
    with pytest.raises(ConfigError, match="centered"):
        EP(beta=0.1, T1=5, T2=2, estimator="cauchy")


@pytest.mark.parametrize("eta", [0.0, -0.1, 1.5, True, "half"])
def test_coupled_learning_eta_outside_unit_interval_is_one_line(eta):
    with pytest.raises(ConfigError, match=r"η must lie in \(0, 1\]"):
        build_rule("CpL", eta=eta, T1=5, T2=2)


def test_coupled_learning_refuses_a_cost_with_parameters_of_its_own():
    model, x, y = _setup(loss="ce", softmax=True)
    with pytest.raises(ConfigError, match=r"cost has parameters of its own \(readout.weight, readout.bias") as e:
        CoupledLearning(eta=0.5, T1=5, T2=2).compute_gradients(model, x, y)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------ coupled learning
def test_clamp_holds_the_layer_and_relaxes_the_rest():
    model, x, y = _setup()
    s0 = model.init_state(x)
    target = torch.full_like(s0[-1], 0.25)
    out = relax(model, x, s0, 30, clamp={1: target})
    assert torch.equal(out[1], target)
    free = relax(model, x, s0, 30)
    assert not torch.allclose(out[0], free[0])  # the hidden layer felt the clamp
    with pytest.raises(ConfigError, match="clamped layer 5"):
        relax(model, x, s0, 3, clamp={5: target})


def test_coupled_learning_clamps_at_stern_target_for_mse():
    model, x, y = _setup()
    rule = CoupledLearning(eta=0.3, T1=40, T2=8)
    free = rule.free_phase(model, x)
    onehot = torch.nn.functional.one_hot(y, 4).double()
    assert torch.allclose(rule.clamped_output(model, free, y), free[-1] + 0.3 * (onehot - free[-1]), atol=1e-15)


def test_coupled_learning_converges_as_eta_goes_to_zero():
    """CL(η) = c₀ + c₁η + O(η²): successive differences halve with η; without the free-state term they double."""
    model, x, y = _setup()

    def ratio(cls):
        a, b, c = (torch.cat([v.flatten() for v in _update(cls(eta=e, T1=60, T2=30), model, x, y).values()])
                   for e in (0.04, 0.02, 0.01))
        return float((a - b).norm() / (b - c).norm())

    assert 1.8 <= ratio(CoupledLearning) <= 2.2  # 2 + O(η), η ≤ 0.04
    assert ratio(UncontrastedCL) < 1.0  # the 1/η term: ½
