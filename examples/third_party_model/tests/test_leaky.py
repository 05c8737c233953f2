"""LEAKY_MLP against eqbench's theorems, with eqbench's public conformance kit only (``eqbench.testing``).

Data: the first 20 of scikit-learn's 8×8 digits, pixels scaled to [0, 1], float64 (the theorems are checked to
float64 round-off). The hypothesis profile (``ci``: derandomized) comes from eqbench's pytest plugin; select
another with ``EQBENCH_HYPOTHESIS_PROFILE=dev``.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

import pytest
import torch
from eqbench.testing import (
    assert_batch_equivariant,
    assert_closed_form_matches_autograd,
    assert_converges,
    assert_gdu,
    scaled_examples,
)
from eqbench.testing import strategies as eqst
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from leaky_ep import leaky_mlp, leaky_mlp_broken

BATCH = 20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny tensors: one intra-op thread is fastest and does not spin against other processes
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X[:BATCH] / 16.0, dtype=torch.float64), torch.tensor(y[:BATCH], dtype=torch.int64)


def digits():
    x, y = _digits()
    return x.clone(), y.clone()


def model(factory=leaky_mlp, sizes=(64, 32, 10), seed=0):
    return eqst.build(factory, sizes, seed)  # seeded init, float64


# ------------------------------------------------------------------------------------------------ the theorems
def test_free_phase_converges():
    x, _ = digits()
    rep = assert_converges(model(), x, steps=300)
    assert rep.final_residual < 1e-12
    print(f"\nLEAKY_MLP free phase: residual ≤ {rep.tol:.2g} from step {rep.first_converged_step} of 300")


def test_gdu_orders_and_error(record_property):
    x, y = digits()
    r = assert_gdu(model(), x, y)  # premise, and both orders on their asymptotic ranges of the β ladder
    record_property("slope_one_sided", r.slope_one_sided)
    record_property("slope_symmetric", r.slope_symmetric)
    record_property("symmetric_rel_error_1e-3", r.rel_error)
    one, sym = r.verdict("one_sided"), r.verdict("symmetric")
    print(f"\nLEAKY_MLP GDU: orders {one.slope:.3f} (one-sided, on [{one.range[1]:.0e}, {one.range[0]:.0e}]), "
          f"{sym.slope:.3f} (symmetric, on [{sym.range[1]:.0e}, {sym.range[0]:.0e}]); symmetric error "
          f"{r.rel_error:.3g} at β = 1e-3")


def test_closed_form_matches_autograd():
    x, y = digits()
    for factory in (leaky_mlp, leaky_mlp_broken):  # the twin's closed form is right too: its dynamics are not
        for beta in (0.0, 0.3, -0.05):
            assert_closed_form_matches_autograd(model(factory), x, y, beta=beta)


def test_batch_equivariant():
    x, y = digits()
    assert_batch_equivariant(model(), x, y=y)


@settings(max_examples=scaled_examples(10))
@given(sizes=eqst.layer_sizes(max_hidden=3), seed=eqst.seeds(), beta=eqst.betas(), data=st.data())
def test_theorems_over_architectures(sizes, seed, beta, data):
    """Any architecture: the closed form at random states, convergence, and the GDU orders."""
    net = model(sizes=sizes, seed=seed)
    x = data.draw(eqst.inputs(net, batch=st.integers(1, 4)))
    y = data.draw(eqst.targets(net, x.shape[0]))
    s = data.draw(eqst.states(net, x))
    assert_closed_form_matches_autograd(net, x, y, beta=beta, states=[s, net.init_state(x)])
    assert_converges(net, x)
    assert_gdu(net, x, y)


# ------------------------------------------------------------------------------------------------ the broken twin
def test_broken_twin_fails_gdu():
    x, y = digits()
    broken = model(leaky_mlp_broken)
    assert_converges(broken, x)  # a fixed point, and a correct closed form (above): only the GDU check can tell
    # its error does not vanish as β → 0: the orders settle at 0 over the ladder's last decade, far above the floor
    with pytest.raises(AssertionError, match=r"^LEAKY_MLP_BROKEN: GDU one-sided error is not O\(β\) .* layer \S+: "
                                             r"the error is O\(β\^-?0\.0\d\), not O\(β\^1\)") as info:
        assert_gdu(broken, x, y)
    print(f"\n{info.value}")


def test_broken_twin_fails_an_absolute_bound_too():
    x, y = digits()
    with pytest.raises(AssertionError, match=r"GDU symmetric relative error \S+ > bound 0\.0001 at β=0\.001"):
        assert_gdu(model(leaky_mlp_broken), x, y, bound=1e-4, orders=False)


# ------------------------------------------------------------------------------------------------ packaging
def test_model_is_an_entry_point():
    eps = {ep.name: ep for ep in entry_points(group="eqbench.models")}
    assert eps["LEAKY_MLP"].load() is leaky_mlp
    assert "LEAKY_MLP_BROKEN" not in eps  # named by its path, leaky_ep.model:leaky_mlp_broken
