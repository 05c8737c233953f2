"""Energy and convergence of Laydevant et al. 2021's binary networks (float64).

* bin_W (binary weights ±α, real activations ρ = clip(·, 0, 1)) is Laborieux's prototypical network
  with fixed weights: its asynchronous relaxation descends E = ½Σ‖s_l‖² − Φ (the block-coordinate
  argument of suites/energy/test_energy.py holds for any weights), so the engine's energy check runs
  on it unchanged.
* bin_W_N (binary neurons) has no such energy: the activities a = H(s − ½) are piecewise constant.
  What can be checked is convergence: while a sample's activities stay the same its drive is
  constant up to the nudge, and the leaky step s ← clamp((1 − γ_n)s + γ_n u, 0, 1) has slope 1 − γ_n
  (1 − γ_n(1 + β) on the nudged output); clamp is 1-Lipschitz, so r_{t+1} ≤ q·r_t with
  q = max(1 − γ_n, |1 − γ_n(1 + β)|), up to one step's round-off
  (:func:`eqbench.activity.activity_convergence`). When the activities change there is no bound,
  and a noisy accumulator (negative control) breaks it. Finding: with the paper's γ_n = ½ and β = 2,
  a negative phase of the random sign (β = −2) has q = 3/2 — the output accumulators are expanded
  until they hit the clamp.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench import build_model
from eqbench.activity import activity_convergence
from eqbench.checks.energy import energy_descent
from eqbench.data import batch_for
from eqbench.errors import ConfigError
from eqbench.models.binary import BinaryEP
from eqbench.testing import scaled_examples

pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")


def _mlp(seed: int, sizes, **kw) -> BinaryEP:
    torch.manual_seed(seed)
    return build_model("BIN_MLP", sizes=sizes, **kw).double()


@settings(max_examples=scaled_examples(20))
@given(seed=st.integers(0, 2**31 - 1), hidden=st.lists(st.integers(2, 40), min_size=1, max_size=3),
       conv=st.booleans())
def test_bin_w_async_relaxation_descends_energy(seed, hidden, conv):
    if conv:
        torch.manual_seed(seed)
        model = build_model("BIN_CNN", in_shape=(1, 9, 9), channels=[2, 3], kernels=[3, 3], paddings=[1, 1],
                            pool_size=2, fc=[4]).double()
        x = torch.rand(3, 1, 9, 9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    else:
        model = _mlp(seed, [12, *hidden, 5])
        x = torch.rand(3, 12, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rep = energy_descent(model, x, 30, mode="async")
    assert rep.passed, rep.to_dict()


def test_bin_w_n_has_no_energy_check():
    model = _mlp(0, [6, 8, 4], binary="W_N")
    with pytest.raises(ConfigError, match="no energy"):
        energy_descent(model, torch.rand(2, 6), 5)
    with pytest.raises(ConfigError, match="binary-neuron"):
        activity_convergence(_mlp(0, [6, 8, 4]), torch.rand(2, 6), 5)


@settings(max_examples=scaled_examples(30))
@given(seed=st.integers(0, 2**31 - 1), hidden=st.lists(st.integers(4, 60), min_size=1, max_size=2),
       gamma=st.floats(0.05, 1.0), beta=st.sampled_from([0.0, 2.0, -1.0, -2.0]), expand=st.sampled_from([1, 3]))
def test_bin_w_n_accumulator_contracts_while_activities_hold(seed, hidden, gamma, beta, expand):
    model = _mlp(seed, [20, *hidden, 4 * expand], binary="W_N", gamma_neur=gamma, expand_output=expand)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 20, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    rep = activity_convergence(model, x, 40, beta=beta, y=y)
    assert rep.contracts, rep.to_dict()


class _NoisyAccumulator(BinaryEP):
    """Negative control: the leaky step plus fresh noise, which no constant drive can make contract."""

    def update(self, s, u):
        return [(si + 0.05 * torch.randn_like(si)).clamp(0.0, 1.0) for si in super().update(s, u)]


def test_control_noisy_accumulator_fails_contraction():
    torch.manual_seed(0)
    model = _NoisyAccumulator((20,), binary="W_N", fc=[30, 4], gamma_neur=0.5).double()
    rep = activity_convergence(model, torch.rand(6, 20, dtype=torch.float64), 40)
    assert not rep.contracts
    assert rep.max_excess > 1e6 * rep.tol


def test_paper_settings_settle_at_init(record_property):
    # Laydevant's fc bin_W_N (784-8192-100, expand 10, γ_n = ½, T = 20 free steps from ones), at its
    # initialisation on 64 MNIST-5k images (reported: when the activities stop changing). In the steps
    # where activities did change the residual ratio exceeds 1 − γ_n: there is no bound there, the
    # check's condition is what makes it hold.
    model = _mlp(0, [784, 8192, 100], binary="W_N", expand_output=10)
    x, y = batch_for("mnist5k", model.in_shape, 10, 64, 0, torch.float64)
    rep = activity_convergence(model, x, 20)
    record_property("free", {"last_change": rep.last_change, "settled": rep.settled, "changes": rep.changes})
    assert rep.contracts, rep.to_dict()
    assert rep.max_ratio_changing > 1.0 - model.gamma_neur
    # the nudged phases of the random sign, continuing from there: β = 2 contracts (q = ½), β = −2 does not (q = 3/2)
    free = model.init_state(x)
    from eqbench import relax

    free = relax(model, x, free, 20)
    for beta, q in ((2.0, 0.5), (-2.0, 1.5)):
        rep = activity_convergence(model, x, 10, beta=beta, y=y, start=free)
        record_property(f"nudged {beta}", {"last_change": rep.last_change, "settled": rep.settled})
        assert rep.rate == q and rep.contracts, rep.to_dict()


def test_the_activity_report_as_json_carries_its_verdict():
    """ActivityReport.to_dict (what a failing assertion prints, and JSON): every field plus the verdict."""
    import json
    from dataclasses import asdict

    torch.manual_seed(0)
    model = _NoisyAccumulator((20,), binary="W_N", fc=[30, 4], gamma_neur=0.5).double()
    bad = activity_convergence(model, torch.rand(6, 20, dtype=torch.float64), 10)
    good = activity_convergence(_mlp(0, [20, 30, 4], binary="W_N"), torch.rand(6, 20, dtype=torch.float64), 10)
    for rep, verdict in ((bad, False), (good, True)):
        d = json.loads(json.dumps(rep.to_dict()))
        assert d.pop("contracts") is rep.contracts is verdict
        assert d == json.loads(json.dumps(asdict(rep)))
