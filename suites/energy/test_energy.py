"""Energy descent of the asynchronous relaxation (eqbench.checks.energy).

Theory (Laborieux et al. 2021, §A.3; Scellier & Bengio 2017). With a clipping activation
σ(u) = clip(u/a, 0, 1) (hard_sigmoid: a = 1, my_hard_sig: a = 2) the models' dynamics
s_l ← σ(u_l), u_l = ∂Φ/∂s_l, descend the energy

    E(x, s) = (a/2)·Σ_l ‖s_l‖² − Φ(x, s),    Φ = Σ_l ⟨P_l(f_l(s_l)), s_{l+1}⟩.

* Exact block minimisation. With the other layers fixed, Φ is affine in s_l when P_l is linear
  (MLP, average pooling, no pooling): Φ = ⟨u_l, s_l⟩ + const. Then E restricted to s_l is
  (a/2)‖s_l‖² − ⟨u_l, s_l⟩ + const, a separable strictly convex quadratic whose minimiser over the
  box [0, 1]^n is clip(u_l/a, 0, 1) = σ(u_l), coordinate by coordinate.
* Majorise–minimise. With max pooling, ⟨maxpool(f_l(s_l)), s_{l+1}⟩ is convex in s_l because
  s_{l+1} ≥ 0 (a non-negative combination of maxima of affine functions). A convex function lies
  above its tangent, Φ(s_l) ≥ Φ(s_l⁰) + ⟨u_l, s_l − s_l⁰⟩ with u_l the (sub)gradient the
  dynamics use, so M(s_l) = (a/2)‖s_l‖² − Φ(s_l⁰) − ⟨u_l, s_l − s_l⁰⟩ majorises E and touches it
  at s_l⁰; σ(u_l) minimises M over the box, hence E(σ(u_l)) ≤ M(σ(u_l)) ≤ M(s_l⁰) = E(s_l⁰).
* Blocks. Φ couples a layer only to its neighbours, so the layers of one parity do not interact:
  the even-layer update minimises (or majorises) E in all even layers jointly, and likewise for the
  odd ones. ``mode="async"`` alternates the two groups, so E cannot increase at any half-step.
  ``mode="sync"`` moves neighbouring layers together from stale drives and may increase E — that
  is reported here (`test_sync_increase_fraction`), not asserted.

The output layer must be a clip layer too: MSE, or cross-entropy through a softmax readout (which
sits outside Φ at β = 0); an identity output (cross-entropy on the output state) has no such E.

Negative controls show the check can fail: a smooth activation (my_sigmoid) measured with a = 1,
and clip activations measured with the wrong a, do increase E under the same async dynamics.
All computations are in float64; the tolerance is the round-off bound of
`eqbench.checks.energy.roundoff_tol`, 64·eps·max|E| ≈ 1.4e-14·max|E| (scale-free).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench import Trace, build_model, relax
from eqbench.checks.energy import DescentReport, convergence, energy_descent, laborieux_energy, phi_trace
from eqbench.errors import ConfigError
from eqbench.testing import scaled_examples

CLIP_ACTS = ("hard_sigmoid", "my_hard_sig")
STEPS = 30  # enough for the small networks below to reach (or cycle near) their fixed point


pytestmark = pytest.mark.usefixtures("float64_default", "one_thread")


# ------------------------------------------------------------------------------------ strategies
def _conv_options(shape: tuple[int, int, int]) -> list[tuple[int, int, int, str]]:
    """Every (kernel, stride, padding, pool) that fits a C×H×W input (pooling needs ≥ 2×2)."""
    out = []
    for k in (1, 2, 3):
        for stride in (1, 2):
            for pad in (0, 1):
                h = (shape[1] + 2 * pad - k) // stride + 1
                for pool in "mai":
                    if h >= (2 if pool != "i" else 1):
                        out.append((k, stride, pad, pool))
    return out


def _conv_out(shape, c, k, stride, pad, pool):
    h = (shape[1] + 2 * pad - k) // stride + 1
    return (c, h // 2, h // 2) if pool != "i" else (c, h, h)


@st.composite
def mlp_configs(draw, acts=CLIP_ACTS):
    n_in = draw(st.integers(3, 12))
    hidden = draw(st.lists(st.integers(2, 10), min_size=1, max_size=3))
    n_out = draw(st.integers(2, 6))
    cfg = dict(sizes=[n_in, *hidden, n_out], act=draw(st.sampled_from(acts)))
    return "P_MLP", cfg, (n_in,)


@st.composite
def cnn_configs(draw, acts=CLIP_ACTS, pools="mai"):
    shape = draw(st.sampled_from([(1, 8, 8), (2, 6, 6)]))
    in_shape = shape
    n_conv = draw(st.integers(1, 2))
    channels, kernels, strides, paddings, pool_str = [], [], [], [], ""
    for _ in range(n_conv):
        opts = [o for o in _conv_options(shape) if o[3] in pools]
        if not opts:
            break
        k, stride, pad, pool = draw(st.sampled_from(opts))
        c = draw(st.integers(1, 4))
        channels.append(c), kernels.append(k), strides.append(stride), paddings.append(pad)
        pool_str += pool
        shape = _conv_out(shape, c, k, stride, pad, pool)
    fc = [*draw(st.lists(st.integers(2, 6), max_size=1)), draw(st.integers(2, 5))]
    cfg = dict(in_shape=in_shape, channels=channels, kernels=kernels, strides=strides, paddings=paddings,
               pools=pool_str, fc=fc, act=draw(st.sampled_from(acts)))
    return "P_CNN", cfg, in_shape


@st.composite
def cases(draw, archs=None, acts=CLIP_ACTS):
    """(model, x): a random architecture, weights seeded from a drawn int, inputs in [0, 1]."""
    arch = draw(archs if archs is not None else st.one_of(mlp_configs(acts), cnn_configs(acts)))
    name, cfg, in_shape = arch
    cfg = dict(cfg)
    if draw(st.booleans()):
        cfg["loss"], cfg["softmax"] = "ce", True
        if name == "P_MLP" and len(cfg["sizes"]) < 3:
            cfg["sizes"] = [cfg["sizes"][0], 4, cfg["sizes"][-1]]
    scale = draw(st.one_of(st.none(), st.floats(0.5, 3.0)))
    seed = draw(st.integers(0, 2**31 - 1))
    batch = draw(st.integers(1, 4))
    torch.manual_seed(seed)
    model = build_model(name, scale=scale, **cfg).double()
    x = torch.rand(batch, *in_shape, dtype=torch.float64)
    return model, x


def _describe(model, r: DescentReport) -> str:
    d = {k: v for k, v in r.to_dict().items() if k != "energies"}
    return f"{model.name} act={model.act.name} conns={[(c.kind, c.pool, c.out_shape) for c in model.conns]}: {d}"


# ------------------------------------------------------------------------------------ the theorem
@given(cases())
def test_async_relaxation_never_increases_energy(case):
    model, x = case
    r = energy_descent(model, x, STEPS, mode="async")
    # the model's declared energy is (a/2)·Σ‖s‖² − Φ with its own clip slope a
    e0 = laborieux_energy(model, x, model.init_state(x), a=model.act.clip_a).mean()
    assert r.energies[0] == pytest.approx(float(e0), rel=1e-12, abs=1e-12)
    assert r.passed, _describe(model, r)
    assert r.n_increases == 0


@settings(max_examples=scaled_examples(15))
@given(cases(archs=cnn_configs(pools="m")))
def test_async_descent_with_max_pooling(case):
    """The majorise–minimise case on its own, so that max pooling is always exercised."""
    model, x = case
    r = energy_descent(model, x, STEPS, mode="async", closed_form=True)
    assert r.passed, _describe(model, r)


@settings(max_examples=scaled_examples(8))
@given(cases())
def test_async_descent_with_autograd_drive(case):
    """The same descent with the generic autograd drive instead of the closed form."""
    model, x = case
    r = energy_descent(model, x, 10, mode="async", closed_form=False)
    assert r.passed, _describe(model, r)


def test_energy_formula_by_hand():
    """E = (a/2)(‖s1‖² + ‖s2‖²) − ⟨W1x + b1, s1⟩ − ⟨W2s1 + b2, s2⟩ for a two-layer MLP."""
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=[5, 4, 3], act="my_hard_sig").double()
    x, s = torch.rand(2, 5), [torch.rand(2, 4), torch.rand(2, 3)]
    (w1, b1), (w2, b2) = [(m.weight, m.bias) for m in model.synapses]
    with torch.no_grad():
        want = (s[0] ** 2).sum(1) + (s[1] ** 2).sum(1)  # a/2 = 1
        want = want - ((x @ w1.T + b1) * s[0]).sum(1) - ((s[0] @ w2.T + b2) * s[1]).sum(1)
        got = laborieux_energy(model, x, s)
        assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)
        # nudged: E_β = E + β·L, L = ½‖s2 − onehot(y)‖²
        y = torch.tensor([0, 2])
        nudged = laborieux_energy(model, x, s, beta=0.3, y=y)
        assert torch.allclose(nudged - got, 0.3 * 0.5 * ((s[1] - torch.eye(3)[y]) ** 2).sum(1), rtol=1e-13,
                              atol=1e-13)
        # an explicit a = 1 halves the quadratic term
        half = 0.5 * ((s[0] ** 2).sum(1) + (s[1] ** 2).sum(1))
        assert torch.allclose(laborieux_energy(model, x, s, a=1.0), want - half, rtol=1e-13, atol=1e-13)


def test_energy_needs_a_for_smooth_activation():
    model = build_model("P_MLP", sizes=[4, 3, 2], act="my_sigmoid").double()
    x = torch.rand(2, 4)
    with pytest.raises(ConfigError, match="clip"):
        laborieux_energy(model, x, model.init_state(x))
    with pytest.raises(ConfigError):
        energy_descent(model, x, 3)
    assert laborieux_energy(model, x, model.init_state(x), a=1.0).shape == (2,)  # explicit a works


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_descent_report_records_every_visited_state(mode):
    """The report's energies are E at the states `relax` visits (after each half-step if async)."""
    torch.manual_seed(3)
    model = build_model("P_MLP", sizes=[6, 5, 4, 3], act="hard_sigmoid", scale=2.0).double()
    x = torch.rand(3, 6)
    r = energy_descent(model, x, 7, mode=mode)
    trace = Trace(keep_states=True)
    relax(model, x, model.init_state(x), 7, mode=mode, trace=trace)
    assert len(trace.states) == (2 * 7 + 1 if mode == "async" else 7 + 1) == len(r.energies)
    with torch.no_grad():
        want = torch.stack([laborieux_energy(model, x, s) for s in trace.states])
    assert torch.equal(torch.tensor(r.energies), want.mean(1))  # same states, same arithmetic
    steps = (want[1:] - want[:-1]).max()
    assert r.max_increase == float(steps)
    d = r.to_dict()
    assert d["passed"] == r.passed and d["a"] is None and d["mode"] == mode and d["n_steps"] == 7
    # the default tolerance is the documented round-off bound
    assert r.tol == 64 * torch.finfo(torch.float64).eps * float(want.abs().max())


def test_phi_trace_and_convergence_report():
    torch.manual_seed(4)
    model = build_model("P_MLP", sizes=[6, 5, 4, 3], act="my_sigmoid").double()
    x = torch.rand(3, 6)
    phis = phi_trace(model, x, 5, mode="async")
    assert len(phis) == 2 * 5 + 1 and phis[0] == 0.0  # Φ(x, 0) = 0: every term has a zero state factor
    s = relax(model, x, model.init_state(x), 5, mode="async")
    with torch.no_grad():
        assert phis[-1] == float(model.phi(x, s).mean())
    rep = convergence(model, x, 200)
    # my_sigmoid at the default init is contracting: the free phase reaches round-off
    assert rep.passed and rep.first_converged_step is not None and rep.final_residual == rep.residuals[-1]
    assert all(r > rep.tol for r in rep.residuals[: rep.first_converged_step - 1])
    assert not convergence(model, x, 2).passed  # two steps are not a fixed point
    assert rep.to_dict()["passed"] is True


# ------------------------------------------------------------------------------------ sync: reported
def _random_case(rng: random.Random, strong: bool = False):
    """A random clip-activation case from a seeded stdlib RNG.

    ``strong=False``: the families of the strategies above. ``strong=True``: wider layers and
    weights ×2–3, where neighbouring layers are coupled strongly enough for the synchronous
    dynamics to oscillate — the population in which async and sync really differ.
    """
    seed = rng.randrange(2**31)
    act = rng.choice(CLIP_ACTS)
    scale = rng.uniform(2.0, 3.0) if strong else rng.choice([None, rng.uniform(0.5, 3.0)])
    lo, hi = (8, 12) if strong else (2, 10)
    torch.manual_seed(seed)
    if rng.random() < 0.5:
        sizes = [rng.randint(3, 12), *[rng.randint(lo, hi) for _ in range(rng.randint(1, 3))], rng.randint(2, 6)]
        model, in_shape = build_model("P_MLP", sizes=sizes, act=act, scale=scale), (sizes[0],)
    else:
        in_shape = rng.choice([(1, 8, 8), (2, 6, 6)])
        shape, ch, ks, sts, pads, pools = in_shape, [], [], [], [], ""
        for _ in range(rng.randint(1, 2)):
            k, s_, p, pool = rng.choice(_conv_options(shape))
            c = rng.randint(3, 4) if strong else rng.randint(1, 4)
            ch.append(c), ks.append(k), sts.append(s_), pads.append(p)
            pools += pool
            shape = _conv_out(shape, c, k, s_, p, pool)
        model = build_model("P_CNN", in_shape=in_shape, channels=ch, kernels=ks, strides=sts, paddings=pads,
                            pools=pools, fc=[rng.randint(2, 5)], act=act, scale=scale)
    model = model.double()
    torch.manual_seed(seed + 1)
    return model, torch.rand(rng.randint(1, 4), *in_shape)


@pytest.mark.parametrize("population", ["random", "strong"])
def test_sync_increase_fraction(population, record_property):
    """How often the synchronous (authors') dynamics increase E: measured and reported, not asserted.

    Each case's asynchronous relaxation is the theorem's and is asserted, so the ``strong``
    population (where sync often increases E) is also where async descent is tested hardest.
    """
    rng = random.Random(20210101)
    n, increased, worst = 40, 0, -math.inf
    for _ in range(n):
        model, x = _random_case(rng, strong=population == "strong")
        sync = energy_descent(model, x, STEPS, mode="sync")
        increased += not sync.passed
        worst = max(worst, sync.max_increase)
        asyn = energy_descent(model, x, STEPS, mode="async")
        assert asyn.passed, _describe(model, asyn)
    frac = increased / n
    record_property(f"sync_energy_increase_fraction_{population}", frac)
    record_property(f"sync_energy_max_increase_{population}", worst)
    print(f"\n[{population}] sync relaxation increased E in {increased}/{n} cases ({frac:.0%}); "
          f"largest increase {worst:.3g}")
    assert math.isfinite(frac) and 0.0 <= frac <= 1.0


@settings(max_examples=scaled_examples(15))
@given(st.integers(0, 2**31 - 1))
def test_async_descent_strong_coupling(seed):
    """The theorem on the strongly coupled population, where sync dynamics often increase E."""
    model, x = _random_case(random.Random(seed), strong=True)
    r = energy_descent(model, x, STEPS, mode="async")
    assert r.passed, _describe(model, r)


# ------------------------------------------------------------------------------------ negative controls
NEG_SEEDS = range(4)


def _worst_violation(act: str, a: float, scale: float, archs=("mlp",)) -> tuple[float, list[DescentReport]]:
    reports = []
    for seed in NEG_SEEDS:
        for arch in archs:
            torch.manual_seed(seed)
            if arch == "mlp":
                model = build_model("P_MLP", sizes=[16, 12, 8, 5], act=act, scale=scale).double()
                x = torch.rand(6, 16)
            else:
                model = build_model("P_CNN", in_shape=(1, 8, 8), channels=[4, 6], kernels=[3, 3], paddings=[1, 1],
                                    pools="ai", fc=[5], act=act, scale=scale).double()
                x = torch.rand(6, 1, 8, 8)
            reports.append(energy_descent(model, x, 40, mode="async", a=a))
    return max(r.max_increase for r in reports), reports


@pytest.mark.parametrize(
    "act, a, scale",
    [
        ("my_sigmoid", 1.0, 2.0),  # (a) smooth activation: its update is no box minimiser of E
        ("my_hard_sig", 1.0, 3.0),  # (b) my_hard_sig dynamics (a = 2) measured with a = 1
        ("hard_sigmoid", 2.0, 2.0),  # (b) hard_sigmoid dynamics (a = 1) measured with a = 2
    ],
)
def test_negative_controls_are_caught(act, a, scale, record_property):
    worst, reports = _worst_violation(act, a, scale, archs=("mlp", "cnn"))
    caught = [r for r in reports if not r.passed]
    record_property(f"negative_control_{act}_a{a:g}_max_increase", worst)
    print(f"\nnegative control {act} with a={a:g} (weights ×{scale:g}): {len(caught)}/{len(reports)} runs "
          f"increase E; largest increase {worst:.3g} (tol ≈ {reports[0].tol:.1e})")
    assert caught, f"no E increase found for {act} with a={a}: the check cannot tell a wrong energy"
    # an increase far above round-off, not a tolerance artefact
    assert worst > 1e6 * max(r.tol for r in reports)


# ------------------------------------------------------------------------------------ nudged phase: reported
def test_nudged_async_report(record_property):
    """Async relaxation with β ≠ 0 (MSE) from zeros: E_β measured, nothing asserted.

    The largest increase of E_β = (a/2)‖s‖² − Φ + β·L is reported per β. (For MSE one can show
    descent for β < 0 by majorisation and for 0 < β ≤ a by the descent lemma; that is not what
    this suite pins.)
    """
    rows = {}
    for beta in (-1.0, -0.1, 0.1, 0.5, 1.0, 2.0, 4.0):
        worst = -math.inf
        for seed in NEG_SEEDS:
            torch.manual_seed(seed)
            model = build_model("P_MLP", sizes=[16, 12, 8, 5], act="hard_sigmoid", scale=2.0).double()
            x, y = torch.rand(6, 16), torch.randint(0, 5, (6,))
            r = energy_descent(model, x, 40, mode="async", beta=beta, y=y)
            worst = max(worst, r.max_increase)
        rows[beta] = worst
        record_property(f"nudged_async_max_increase_beta_{beta:g}", worst)
    print("\nasync nudged relaxation (hard_sigmoid, a=1), largest E_β increase per β: "
          + ", ".join(f"β={b:g}: {v:.2g}" for b, v in rows.items()))
    assert all(math.isfinite(v) for v in rows.values())
