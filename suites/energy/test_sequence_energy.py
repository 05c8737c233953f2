"""The CCCP step of the energy-consistent sequence model (``SequenceEP(retrieval="cccp")``) descends its energy.

Theory. With every other state fixed, the model's energy E = ½‖s‖² − Φ_cccp restricted to a projection state
s_k (tokens t, key/value segment X, scale c) is

    E_k(s_k) = ½‖s_k‖² − ⟨g_k, s_k⟩ − F(s_k),     F(s) = (1/c) Σ_t lse(c · s_t Xᵀ)  (convex),

plus a constant. CCCP replaces F by its tangent at s, which lies below F, and minimises the resulting convex
bound U(s') = ½‖s'‖² − ⟨g_k, s'⟩ − F(s) − ⟨∇F(s), s' − s⟩ exactly: s⁺ = g_k + ∇F(s) = g_k + softmax(c·sXᵀ)X.
U has Hessian I, U(s) = E_k(s) and E_k ≤ U, so

    E_k(s⁺) ≤ U(s⁺) = E_k(s) − ½‖s⁺ − s‖²,

a descent with a margin, whatever the weights, input, scale or start state. Hypothesis draws all of them and
checks it through the model's own Φ and ``update`` (float64).

Negative control. At a fixed point s* of the CCCP step (a stationary point of E_k, Hessian I − ∇²F), a step
retrieving with keys other than the energy's moves s by some Δ ≠ 0 with E_k(s* + Δ) − E_k(s*) ≈ ½Δᵀ(I − ∇²F)Δ,
which exceeds −½‖Δ‖² whenever ∇²F ≺ 2I (small c·‖X‖²): the margin check must fail.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench import build_model
from eqbench.models.sequence import SequenceEP

pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")
# round-off of E_k, a sum of O(10²) terms of size O(1–10) in float64
TOL = 1e-9


def layer_energy(model: SequenceEP, x: torch.Tensor, s: list[torch.Tensor], k: int) -> torch.Tensor:
    """E_k = ½‖s_k‖² − Φ_cccp(x, s) per sample (the other states fixed: their terms are a constant)."""
    return 0.5 * (s[k] ** 2).flatten(1).sum(1) - model.phi(x, s)


def cccp_step(model: SequenceEP, x: torch.Tensor, s: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """s with projection state k replaced by the model's own step (the engine's ``update`` on u = ∂Φ/∂s)."""
    s = [t.detach().requires_grad_(True) for t in s]
    u = torch.autograd.grad(model.phi(x, s).sum(), s)
    new = model.update([t.detach() for t in s], list(u), x)
    return [new[i] if i == k else t.detach() for i, t in enumerate(s)]


@st.composite
def sequence_cases(draw):
    snli = draw(st.booleans())
    L, d = draw(st.integers(2, 5)), draw(st.integers(2, 6))
    fc = [draw(st.integers(2, 8)), 3]
    kw = {"seq_len": L, "dim": d, "fc": fc, "retrieval": "cccp", "scale": draw(st.floats(0.05, 2.0))}
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    model = build_model("SEQ_SNLI" if snli else "SEQ_IMDB", **kw).double()
    w = draw(st.floats(0.1, 3.0))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(w)
    B = draw(st.integers(1, 3))
    x = draw(st.floats(0.2, 3.0)) * torch.randn(B, *model.in_shape)
    s = [draw(st.floats(0.0, 3.0)) * torch.randn(B, *shape) for shape in model.state_shapes()]
    s[len(model.projections):] = [t.abs().clamp(max=1) for t in s[len(model.projections):]]  # σ's range
    return model, x, s, draw(st.integers(0, len(model.projections) - 1))


@settings(max_examples=40)
@given(sequence_cases())
def test_cccp_step_descends_the_layer_energy_with_margin(c):
    model, x, s, k = c
    new = cccp_step(model, x, s, k)
    drop = layer_energy(model, x, s, k) - layer_energy(model, x, new, k)
    margin = 0.5 * ((new[k] - s[k]) ** 2).flatten(1).sum(1)
    assert (drop >= margin - TOL * (1 + margin)).all(), (drop, margin)


def test_a_step_with_other_keys_fails_the_margin_at_a_fixed_point():
    torch.manual_seed(0)
    model = build_model("SEQ_IMDB", seq_len=4, dim=5, fc=[6, 3], retrieval="cccp", scale=0.3).double()
    x = torch.randn(2, *model.in_shape)
    s = [torch.zeros(2, *shape) for shape in model.state_shapes()]
    for _ in range(200):  # CCCP on layer 0 alone, to its fixed point
        s = cccp_step(model, x, s, 0)
    assert (cccp_step(model, x, s, 0)[0] - s[0]).abs().max() < 1e-12
    X = model.segment(x, 0)
    bad = [t.clone() for t in s]
    g = s[0] - model.retrieve(s[0], X)  # the drive g = s* − ∇F(s*), ∇F(s) = softmax(c·sXᵀ)X
    bad[0] = g + model.retrieve(s[0], X.flip(1) + 0.5)  # keys and values other than the energy's
    drop = layer_energy(model, x, s, 0) - layer_energy(model, x, bad, 0)
    margin = 0.5 * ((bad[0] - s[0]) ** 2).flatten(1).sum(1)
    assert (margin > 1e-2).all()  # the wrong step does move the state
    assert (drop < margin - TOL * (1 + margin)).all(), (drop, margin)
