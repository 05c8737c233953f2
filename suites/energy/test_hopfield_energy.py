"""Energy descent of Gammell et al.'s continuous Hopfield network under free-phase Euler steps.

Theory. On the box [0, 1]^M (where every state lives after its first step) ρ(s) = s and

    E(x, s) = ½ sᵀ(I − W_ss)s − (ρ(x)W_xs + b)ᵀs + const,

a quadratic with the constant Hessian H = I − W_ss. The step s⁺ = clamp(s + ε(ρ(z)W + b − ρ(s)))
is the projected gradient step Π(s − ε∇E(s)). The descent lemma, E(s⁺) ≤ E(s) + ∇E·d + ½λ_max(H)‖d‖²
with d = s⁺ − s, and the projection's variational inequality ∇E·d ≤ −‖d‖²/ε give

    E(s⁺) ≤ E(s) − (1/ε − λ_max(H)/2)·‖d‖²,

so no step with ε < 2/λ_max(H) (`HopfieldEP.euler_step_bound`) increases E — whatever the topology,
weights, biases, input or state. Hypothesis draws all of those.

Negative control. Above the bound the guarantee is gone and the check must see it: with s in the
interior and ∇E(s) = δ·v along H's top eigenvector v (λ = λ_max), the unclamped step gives exactly
E(s⁺) − E(s) = δ²(−ε + ½ε²λ) > 0 for ε > 2/λ; the biases are set so that ∇E(s) = δv and δ so small
that the step stays inside the box. Float64 throughout; the tolerance is the check's round-off bound.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench import build_model
from eqbench.checks.energy import energy_descent
from eqbench.errors import ConfigError
from eqbench.models.hopfield import TOPOLOGIES, HopfieldEP, euler_overshoot

pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")
STEPS = 40


@st.composite
def networks(draw) -> tuple[HopfieldEP, torch.Tensor]:
    """A random topology, weight scale, bias vector and input batch, in float64."""
    sizes = draw(st.lists(st.integers(1, 7), min_size=3, max_size=6))
    kind = draw(st.sampled_from(TOPOLOGIES))
    model = build_model("HOPFIELD", sizes=sizes, topology_type=kind, p=draw(st.floats(0.0, 1.0)),
                        bypass_mag=draw(st.floats(0.0, 1.5)), seed=draw(st.integers(0, 2**16))).double()
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    gamma = draw(st.floats(0.1, 3.0))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gamma)
        for b in model.bias:
            b.copy_(torch.randn(b.shape, generator=g))
    x = torch.rand(draw(st.integers(1, 4)), sizes[0], generator=g) * 1.2 - 0.1  # ρ(x) clamps the rest
    return model, x


def _start(model: HopfieldEP, x: torch.Tensor, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(x.shape[0], *model.state_shapes()[0], generator=g)]


@settings(max_examples=40)
@given(networks(), st.floats(0.05, 0.99), st.integers(0, 1000))
def test_free_euler_steps_never_increase_energy_below_the_bound(net, fraction, seed):
    model, x = net
    model.epsilon = fraction * min(model.euler_step_bound(), 4.0)
    rep = energy_descent(model, x, STEPS, mode="sync", start=_start(model, x, seed))
    assert rep.passed, rep.to_dict()


@settings(max_examples=25)
@given(st.lists(st.integers(2, 7), min_size=3, max_size=6), st.sampled_from(TOPOLOGIES), st.integers(0, 2**16),
       st.floats(1.2, 2.0))
def test_a_step_above_the_bound_is_caught(sizes, kind, seed, factor):
    model = build_model("HOPFIELD", sizes=sizes, topology_type=kind, p=0.3, bypass_mag=0.5, seed=seed).double()
    x = torch.rand(1, sizes[0], generator=torch.Generator().manual_seed(seed))  # one sample: b is set from it
    if not math.isfinite(model.euler_step_bound()):
        with torch.no_grad():  # no positive curvature at these weights: give it some
            for p in model.parameters():
                p.mul_(-1.0)
    start, predicted = euler_overshoot(model, x, factor)
    rep = energy_descent(model, x, 1, mode="sync", start=start)
    assert not rep.passed
    # the increase is the one the quadratic predicts, to round-off (a wrong Hessian or step would miss it)
    assert rep.max_increase == pytest.approx(predicted, rel=1e-9), (rep.max_increase, predicted)


def test_the_same_construction_below_the_bound_descends():
    # positive twin of the control: the same adversarial state with ε at 0.8 × the bound
    model = build_model("HOPFIELD", sizes=[4, 6, 6, 3], topology_type="SW_no_intra", p=0.3, bypass_mag=0.5).double()
    x = torch.rand(1, 4, generator=torch.Generator().manual_seed(0))
    start, predicted = euler_overshoot(model, x, 0.8)
    rep = energy_descent(model, x, 1, mode="sync", start=start)
    assert predicted < 0 and rep.passed and rep.max_increase == pytest.approx(predicted, rel=1e-9)


@pytest.mark.parametrize("sizes, kind, p, a", [
    ([10] * 9 + [1], "SW_no_intra", 0.1, 0.569),  # diabetes 8-layer SW of Table 1
    ([13] + [10] * 8 + [3], "MLFF", 0.0, 0.0),  # wine 8-layer MLFF
])
def test_paper_step_is_below_the_bound_at_initialisation(sizes, kind, p, a):
    # Gammell et al. use ε = 0.5; at their initialisation the bound is 0.53–0.61 (seeds 0–2), so the
    # paper's free phase provably descends E from the start (training may later lower the bound:
    # the trainer records it per epoch as ``step_bound``).
    model = build_model("HOPFIELD", sizes=sizes, topology_type=kind, p=p, bypass_mag=a).double()
    assert 0.5 < model.euler_step_bound() < 0.7
    x = torch.rand(5, sizes[0], generator=torch.Generator().manual_seed(0))
    rep = energy_descent(model, x, 500, mode="sync")
    assert rep.passed, rep.to_dict()


def test_energy_check_rejects_nudged_and_async():
    model = build_model("HOPFIELD", sizes=[3, 4, 2]).double()
    x = torch.rand(2, 3)
    with pytest.raises(ConfigError, match="free phase"):
        energy_descent(model, x, 3, mode="sync", beta=0.5, y=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="synchronously"):
        energy_descent(model, x, 3, mode="async")
