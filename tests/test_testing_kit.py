"""The conformance kit (eqbench.testing): every assertion passes on a correct eqbench model and fails, with its
one-line message, on a broken twin; the strategies draw what they promise; the pytest plugin is registered.

The correct model is P_MLP 64-32-10 with my_sigmoid on 20 digits in float64 (the GDU theorem's case); the broken
twins are VF_MLP (independent feedback: no gradient system), a free phase cut at 3 steps, a smooth activation
measured with a clip's energy, a closed form off by a factor 1 + 1e-9, and a drive that reads another sample.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import eqbench
from eqbench.cases import build_case
from eqbench.models import p_mlp
from eqbench.models.layered import LayeredEP
from eqbench.testing import (
    Inconclusive,
    assert_batch_equivariant,
    assert_closed_form_matches_autograd,
    assert_converges,
    assert_energy_descends,
    assert_gdu,
    scaled_examples,
)
from eqbench.testing import strategies as eqst

pytestmark = pytest.mark.usefixtures("one_thread")

NUM = r"[-+0-9.e]+|inf|nan"


def _p_mlp(**kw):
    return build_case("P_MLP", act="my_sigmoid", **kw)


def _twin(cls):
    """A LayeredEP subclass with P_MLP's weights, inputs and targets."""
    model, x, y = _p_mlp()
    twin = cls((64,), fc=[32, 10], act="my_sigmoid", name=cls.__name__).double()
    twin.load_state_dict(model.state_dict())
    return twin, x, y


def test_public_names():
    import eqbench.testing as kit

    for name in kit.__all__:
        assert getattr(kit, name) is not None, name
    assert "EnergyModel" in eqbench.__all__ and issubclass(LayeredEP, eqbench.EnergyModel)
    with pytest.raises(AttributeError):
        kit.no_such_name  # noqa: B018


# ------------------------------------------------------------------------------------------------ GDU
def test_assert_gdu_passes_with_the_theorem_orders():
    model, x, y = _p_mlp()
    r = assert_gdu(model, x, y)
    assert r.free_residual < 1e-15  # states of norm ~1.5: a few ulps
    assert 0.9 <= r.slope_one_sided <= 1.1 and 1.8 <= r.slope_symmetric <= 2.2
    assert set(r.ladder.fits["symmetric"]) >= {"s1", "s2", "synapses.0.weight"}
    one, sym = r.verdict("one_sided"), r.verdict("symmetric")
    assert one.verdict == sym.verdict == "pass"
    assert one.range[0] / one.range[1] >= 10 and sym.range[0] / sym.range[1] >= 10  # a decade at least


def test_assert_gdu_fails_on_independent_feedback():
    # the orders alone reject the twin (no absolute bound is needed), naming a layer and the order it settles at
    model, x, y = build_case("VF_MLP", act="my_sigmoid")
    pattern = (r"^VF_MLP: GDU one-sided error is not O\(β\) \(local orders within \[0\.9, 1\.1\] over a decade\): "
               rf"layer \S+: the error is O\(β\^({NUM})\), not O\(β\^1\)")
    with pytest.raises(AssertionError, match=pattern) as info:
        assert_gdu(model, x, y)
    assert "\n" not in str(info.value) and not isinstance(info.value, Inconclusive)


def test_assert_gdu_rejects_an_order_above_the_theorys_as_well_as_below(monkeypatch):
    """Too steep is as wrong as too shallow: a one-sided estimator whose errors fall as β² (the symmetric errors of
    P_MLP's own ladder, given as the one-sided ones) is no O(β) estimator and FAILs, naming the order it settles at."""
    import dataclasses

    from eqbench.testing import assertions

    real = assertions.gdu_ladder

    def steep(run, rule, betas):
        lad = real(run, rule, betas)
        return dataclasses.replace(lad, errors={**lad.errors, "one_sided": lad.errors["symmetric"]}, fits={})

    monkeypatch.setattr(assertions, "gdu_ladder", steep)
    model, x, y = _p_mlp()
    pattern = (r"^P_MLP: GDU one-sided error is not O\(β\) \(local orders within \[0\.9, 1\.1\] over a decade\): "
               rf"layer \S+: the error is O\(β\^({NUM})\), not O\(β\^1\)")
    with pytest.raises(AssertionError, match=pattern) as info:
        assert_gdu(model, x, y)
    assert float(info.value.args[0].split("O(β^")[1].split(")")[0]) > 1.8 and not isinstance(info.value, Inconclusive)


def test_assert_gdu_with_an_absolute_bound_of_the_users_choosing():
    model, x, y = _p_mlp()
    assert assert_gdu(model, x, y, bound=1e-4, orders=False).rel_error <= 1e-4  # C·β² ≈ 2.5e-6 at β = 1e-3
    model, x, y = build_case("VF_MLP", act="my_sigmoid")
    pattern = rf"^VF_MLP: GDU symmetric relative error ({NUM}) > bound 0\.0001 at β=0\.001 \(worst layer \S+ \["
    with pytest.raises(AssertionError, match=pattern):
        assert_gdu(model, x, y, bound=1e-4, orders=False)


def test_assert_gdu_is_inconclusive_where_the_floor_comes_first():
    # a ladder that starts where the symmetric error already meets float64's noise floor (β ≤ 3e-5 on P_MLP) has no
    # decade of asymptotic range: Inconclusive (an AssertionError) with the reason, never a pass or a FAIL
    model, x, y = _p_mlp()
    with pytest.raises(Inconclusive, match=r"GDU symmetric order inconclusive: layer \S+: the noise floor is reached"):
        assert_gdu(model, x, y, betas=[1e-5, 3e-6, 1e-6, 3e-7])


def test_assert_gdu_checks_its_premise():
    model, x, y = _p_mlp()
    with pytest.raises(AssertionError, match=rf"GDU premise fails: free-phase residual ({NUM}) > ({NUM}) .* T1=3 "):
        assert_gdu(model, x, y, T1=3)


# ------------------------------------------------------------------------------------------------ convergence
def test_assert_converges():
    model, x, _ = _p_mlp()
    rep = assert_converges(model, x)
    assert rep.passed and rep.first_converged_step is not None
    with pytest.raises(AssertionError, match=rf"^P_MLP: free phase not converged: final residual ({NUM}) > tol "
                                             rf"({NUM}) after 3 sync steps"):
        assert_converges(model, x, steps=3)


# ------------------------------------------------------------------------------------------------ energy
def test_assert_energy_descends():
    model, x, _ = build_case("P_MLP", act="my_hard_sig")  # clip(u/2, 0, 1): E = Σ‖s‖² − Φ
    assert assert_energy_descends(model, x).passed
    # measured with the wrong slope a = 1 the same dynamics raise E
    with pytest.raises(AssertionError, match=rf"^P_MLP: energy increased: max ΔE = ({NUM}) > tol ({NUM}) "):
        assert_energy_descends(model, x, a=1.0)


def test_assert_energy_descends_on_a_smooth_activation():
    model, x, _ = _p_mlp()  # my_sigmoid: no clip, no declared energy
    with pytest.raises(AssertionError, match=r"P_MLP declares no energy .*my_sigmoid"):
        assert_energy_descends(model, x)
    with pytest.raises(AssertionError, match=rf"energy increased: max ΔE = ({NUM}) > tol .* E with a=1"):
        assert_energy_descends(model, x, a=1.0)


# ------------------------------------------------------------------------------------------------ closed form
class OffByFactor(LayeredEP):
    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        return [u * (1 + 1e-9) for u in super().closed_form_drive(x, s, beta, y, cache=cache)]


class NoClosedForm(LayeredEP):
    has_closed_form = False


def test_assert_closed_form_matches_autograd():
    for name in ("P_MLP", "VF_MLP"):
        model, x, y = build_case(name, act="my_sigmoid", batch=4)
        assert assert_closed_form_matches_autograd(model, x, y) <= 1e-12
    model, x, _ = _twin(OffByFactor)
    # a 1e-9 relative slip is 1000 × the tolerance
    with pytest.raises(AssertionError, match=rf"^OffByFactor: closed-form drive ≠ autograd ∂Φ_β/∂s in layer s1 "
                                             rf"\(random state, β=0\.3\): max \|Δ\| = ({NUM}) > tol 9\.1e-13"):
        assert_closed_form_matches_autograd(model, x[:4])
    model, x, _ = _twin(NoClosedForm)
    with pytest.raises(AssertionError, match=r"NoClosedForm declares no closed-form drive \(has_closed_form = False\)"):
        assert_closed_form_matches_autograd(model, x)


class CacheWithoutBias(LayeredEP):
    """Right on the first call of a relaxation, wrong once its cache holds the input drive (b_1 forgotten)."""

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        cached = cache is not None and "input_drive" in cache
        u = super().closed_form_drive(x, s, beta, y, cache=cache)
        return [u[0] - self.synapses[0].bias, *u[1:]] if cached else u


def test_assert_closed_form_matches_autograd_also_with_the_relaxations_cache():
    model, x, _ = _twin(CacheWithoutBias)
    with pytest.raises(AssertionError, match=r"in layer s1 \(random, cached state, β=0\.3\)"):
        assert_closed_form_matches_autograd(model, x[:4])


# ------------------------------------------------------------------------------------------------ batch
class ReadsNeighbour(LayeredEP):
    """Each sample's drive sees the previous sample's state: the batch is no longer a set of samples."""

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u = super().closed_form_drive(x, s, beta, y, cache=cache)
        return [ui + 0.1 * si.roll(1, 0) for ui, si in zip(u, s)]


def test_assert_batch_equivariant():
    model, x, y = _p_mlp()
    assert assert_batch_equivariant(model, x, y=y) <= 1e-12
    model, x, _ = _twin(ReadsNeighbour)
    pattern = (rf"^ReadsNeighbour: free phase not equivariant to a batch permutation: "
               rf"max \|s\(x\[π\]\) − s\(x\)\[π\]\| = ({NUM}) > tol ({NUM}) in layer s1 ")
    with pytest.raises(AssertionError, match=pattern):
        assert_batch_equivariant(model, x)
    with pytest.raises(eqbench.ConfigError, match="at least 2"):
        assert_batch_equivariant(model, x[:1])


class NudgeReadsNeighbour(LayeredEP):
    """A correct free phase, a nudge toward the previous sample's target: only the nudged phase mixes samples."""

    def loss_grad(self, s, y):
        return super().loss_grad(s, y.roll(1, 0))


def test_assert_batch_equivariant_checks_the_nudged_phase_when_given_targets():
    model, x, y = _twin(NudgeReadsNeighbour)
    assert assert_batch_equivariant(model, x) <= 1e-12  # without targets: the free phase only, which is right
    with pytest.raises(AssertionError, match=r"^NudgeReadsNeighbour: nudged phase \(β=0\.1\) not equivariant"):
        assert_batch_equivariant(model, x, y=y)


# ------------------------------------------------------------------------------------------------ strategies
@settings(max_examples=scaled_examples(10))
@given(sizes=eqst.layer_sizes(n_in=6, max_hidden=2), beta=eqst.betas(1e-3, 0.1), scale=eqst.weight_scales(),
       seed=eqst.seeds(), data=st.data())
def test_strategies_draw_what_they_promise(sizes, beta, scale, seed, data):
    assert sizes[0] == 6 and 2 <= sizes[-1] <= 5 and 2 <= len(sizes) <= 4 and all(1 <= n <= 8 for n in sizes[1:-1])
    assert 1e-3 <= abs(beta) <= 0.1 and 0.5 <= scale <= 2.0
    model = eqst.build(p_mlp, sizes, seed)
    assert next(model.parameters()).dtype == torch.float64
    x = data.draw(eqst.inputs(model, batch=3))
    assert x.shape == (3, 6) and x.dtype == torch.float64 and bool(((x >= 0) & (x <= 1)).all())
    y = data.draw(eqst.targets(model, 3))
    assert y.dtype == torch.int64 and y.shape == (3,) and bool(((y >= 0) & (y < model.n_classes)).all())
    s = data.draw(eqst.states(model, x))
    assert [tuple(si.shape) for si in s] == [(3, n) for n in sizes[1:]]
    assert all(si.dtype == torch.float64 and bool(((si >= 0) & (si <= 1)).all()) for si in s)
    other = data.draw(eqst.models(p_mlp, sizes=eqst.layer_sizes(n_in=4, n_out=3)))
    assert other.in_shape == (4,) and other.n_classes == 3


def test_build_leaves_the_global_rng_alone():
    torch.manual_seed(1)
    want = torch.rand(3)
    torch.manual_seed(1)
    eqst.build(p_mlp, [4, 3, 2], seed=7)
    assert torch.equal(torch.rand(3), want)
    a, b = eqst.build(p_mlp, [4, 3, 2], 7), eqst.build(p_mlp, [4, 3, 2], 7)
    assert torch.equal(a.synapses[0].weight, b.synapses[0].weight)


# ------------------------------------------------------------------------------------------------ plugin
def test_plugin_is_registered_with_its_fixtures(request, eqbench_profile, float64_default):
    assert request.config.pluginmanager.get_plugin("eqbench") is not None
    expected = request.config.getoption("hypothesis_profile", None) or os.environ.get(
        "EQBENCH_HYPOTHESIS_PROFILE") or "ci"
    assert eqbench_profile == expected
    assert torch.get_default_dtype() == torch.float64
    from hypothesis import settings as hs

    ci = hs.get_profile("ci")
    assert ci.derandomize and ci.database is None and ci.max_examples == 25 and ci.deadline is None


def test_plugin_import_is_cheap():
    # the plugin is active in every pytest run of the environment: it must not pull in hypothesis or the kit
    code = ("import sys, eqbench.testing.plugin; "
            "print(sorted(m for m in ('hypothesis', 'eqbench.testing.assertions', 'eqbench.testing.strategies') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
