"""GDU check: EP updates against BPTT gradients, per layer and per time step.

Ernoult et al. 2019 (GDU theorem): when the free phase has converged to a fixed point s*, the
EP updates of the nudged phase match, step by step and in the limit β → 0, the gradients of
BPTT run on the (constant) free trajectory. With the nudged trajectory s_0 = s*, s_1, …, s_T2:

* neurons, step k ≥ 1:  EP  Δs_k/β = (s_k − s_{k−1})/β   vs   BPTT  −B·∂ℒ/∂u_{T2−k}
* parameters, step k:   EP  −∂θ[Φ_β(s_k) − Φ_β(s_{k−1})]/β   vs   BPTT  the contribution of step
  T2−k to ∂ℒ/∂θ; k = 0 is the β-term at s* (nonzero only for a softmax readout) vs the direct
  gradient of ℒ at the final state.

ℒ = batch mean of L; u_t is the drive of step t (the pre-activation ∂Φ/∂s for Laborieux's
models). Deviation from Laborieux's `check_gdu` (§A.11), which compares Δs/β with −B·∂ℒ/∂s: the
linearised dynamics give Δs_k/β = −(DH)^{k−1}D∇L and −∂ℒ/∂s = −(HD)^{k−1}∇L (D = σ'(u*), H the
Hessian of Φ), which differ by the factor σ'(u*) unless σ is the identity; the gradient with respect to
the drive, D(HD)^{k−1}∇L, is what the theorem pins. Parameter updates are unaffected.

The one-sided series at ±β and their mean (the symmetric estimator) are compared; the sums of
the series over k are the estimators of eqbench.rules.EP (they telescope).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ..autodiff import grads
from ..errors import ConfigError, DivergenceError
from ..models.base import EnergyModel, State
from ..relaxation import Trace, relax
from ..rules import LearningRule, Series
from .energy import roundoff_tol, state_norm
from .order import (
    GDULadder,
    OrderFit,
    OrderVerdict,
    aggregate,
    check_precision,
    judge,
    kink_counts,
    ladder,
    noise_floor,
    roundoff_floor,
)


def neuron_keys(model: EnergyModel) -> list[str]:
    return [f"s{i + 1}" for i in range(len(model.state_shapes()))]


def bptt_series(model: EnergyModel, x: Tensor, y: Tensor, free: State, T2: int,
                closed_form: bool = True) -> Series:
    """Per-step BPTT gradients over T2 steps from the free state (one backward plus T2 VJPs)."""
    B = x.shape[0]
    zs: list[State] = []

    def perturb(t: int, u: State) -> State:  # a zero added to the drive: ∂ℒ/∂z_t = ∂ℒ/∂u_t
        z = [torch.zeros_like(ui, requires_grad=True) for ui in u]
        zs.append(z)
        return [ui + zi for ui, zi in zip(u, z)]

    trace = Trace(keep_states=True)
    final = relax(model, x, [f.detach() for f in free], T2, graph=True, closed_form=closed_form,
                  trace=trace, drive_hook=perturb)
    with torch.enable_grad():
        loss = model.loss(final, y).mean()
    n = len(free)
    lam = grads(loss, [z for zt in zs for z in zt])
    lam_t = [lam[t * n:(t + 1) * n] for t in range(T2)]
    out: Series = {}
    for i, key in enumerate(neuron_keys(model)):
        out[key] = torch.stack([-B * lam_t[T2 - k][i] for k in range(1, T2 + 1)])
    names, params = zip(*model.named_parameters())
    with torch.enable_grad():
        steps = [grads(model.loss([s.detach() for s in final], y).mean(), params)]
        for k in range(1, T2 + 1):
            u = model.drive(x, trace.states[T2 - k], 0.0, y, closed_form=closed_form, create_graph=True)
            steps.append(grads(u, params, lam_t[T2 - k]))
    for j, name in enumerate(names):
        out[name] = torch.stack([g[j].detach() for g in steps])
    return out


@dataclass
class LayerGDU:
    key: str
    kind: str  # "neurons" or "weights"
    rel_error: float  # ‖EP − BPTT‖ / ‖BPTT‖ over every step
    rel_error_step: float  # max over steps k of ‖EP_k − BPTT_k‖ / ‖BPTT_k‖
    rmse: float  # Laborieux's normalised RMSE (§A.11), mean over elements
    sign_error: float  # fraction of (step, element) with EP·BPTT < 0 (Laborieux §A.11)
    live: int  # (step, element) pairs where EP and BPTT are both non-zero
    live_opposite: int  # … of which EP and BPTT have opposite signs


@dataclass
class GDUReport:
    model: str
    dtype: str
    variant: str
    beta: float
    T1: int
    T2: int
    layers: list[LayerGDU]
    free_residual: float  # ‖s_{T1} − s_{T1−1}‖ of the free phase (convergence premise)
    tol: float | None = None

    @property
    def rel_error(self) -> float:
        """The worst layer's relative error — the number the suites bound."""
        return max(l.rel_error for l in self.layers)

    @property
    def rel_error_step(self) -> float:
        return max(l.rel_error_step for l in self.layers)

    @property
    def sign_error(self) -> float:
        return max(l.sign_error for l in self.layers)

    @property
    def sign_error_live(self) -> float:
        """Opposite signs among the (step, element) pairs where both are non-zero, pooled.

        Over the weight updates (what learning uses). Laborieux's sign error counts every pair, so
        saturated units (zero on both sides) dilute it; restricted to live pairs, chance is 1/2 and
        a sign-flipped estimator scores 1 − this.
        """
        weights = [l for l in self.layers if l.kind == "weights"]
        n = sum(l.live for l in weights)
        return sum(l.live_opposite for l in weights) / n if n else 0.0

    @property
    def passed(self) -> bool:
        if self.tol is None:
            raise ConfigError("this GDU report has no tolerance to judge against")
        return math.isfinite(self.rel_error) and self.rel_error <= self.tol

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = {l.key: {k: v for k, v in asdict(l).items() if k != "key"} for l in self.layers}
        d.update(rel_error=self.rel_error, rel_error_step=self.rel_error_step, sign_error=self.sign_error,
                 sign_error_live=self.sign_error_live)
        if self.tol is not None:
            d["passed"] = self.passed
        return d


def compare(ep: Series, bptt: Series, neuron_names: list[str]) -> list[LayerGDU]:
    """Per-key metrics of an EP series against a BPTT series."""
    out = []
    for key, b in bptt.items():
        e = ep[key].to(b.dtype)
        diff = (e - b).flatten(1)
        bn, dn = b.flatten(1).norm(), diff.norm()
        rel = float(dn / bn) if bn > 0 else (0.0 if dn == 0 else math.inf)
        step_b = b.flatten(1).norm(dim=1)
        step_d = diff.norm(dim=1)
        # steps at which BPTT is exactly zero (the error signal has not reached the layer yet)
        # have no relative error; EP there is the free phase's residual over β
        nz = step_b > 0
        rel_step = float((step_d[nz] / step_b[nz]).max()) if bool(nz.any()) else 0.0
        T = b.shape[0]
        rms_e = (e.pow(2).sum(0) / T).sqrt()
        rms_b = (b.pow(2).sum(0) / T).sqrt()
        rmse = ((e - b).pow(2).sum(0) / T).sqrt() / (1e-10 + torch.maximum(rms_e, rms_b))
        out.append(LayerGDU(
            key=key,
            kind="neurons" if key in neuron_names else "weights",
            rel_error=rel,
            rel_error_step=rel_step,
            rmse=float(rmse.mean()),
            sign_error=float((e * b < 0).double().mean()),
            live=int(((e != 0) & (b != 0)).sum()),
            live_opposite=int((e * b < 0).sum()),
        ))
    return out


def symmetric_mean(a: Series, b: Series) -> Series:
    """The symmetric estimator's series: mean of the one-sided series at +β and −β."""
    return {k: 0.5 * (a[k] + b[k]) for k in a}


@dataclass
class GDURun:
    """Everything one GDU comparison computed, kept for reports and plots."""

    model: EnergyModel
    free: State
    free_residual: float
    bptt: Series
    T1: int
    T2: int
    ep: dict[float, Series] = field(default_factory=dict)
    ladder: GDULadder | None = None  # the β ladder of both estimators (`gdu_ladder`), once measured
    orders: OrderSweep | None = None  # holomorphic EP's orders (`order_sweep`), once measured


def prepare(model: EnergyModel, x: Tensor, y: Tensor, rule: LearningRule, T1: int | None = None,
            T2: int | None = None) -> GDURun:
    """Free phase (T1 steps) and the BPTT series (T2 steps) shared by every β."""
    if rule.mode != "sync":
        raise ConfigError("the GDU check compares synchronous dynamics; use mode='sync'")
    T1 = rule.T1 if T1 is None else T1
    T2 = rule.T2 if T2 is None else T2
    if T1 is None or T2 is None:
        raise ConfigError(f"the GDU check needs the free and nudged step counts T1 and T2; {type(rule).__name__} "
                          "declares none, pass them")
    x = model.check_input(x)
    y = model.check_target(y, x.shape[0])
    trace = Trace()
    free = relax(model, x, model.init_state(x), T1, closed_form=rule.closed_form, trace=trace)
    run = GDURun(model, free, trace.residual[-1] if trace.residual else math.inf,
                 bptt_series(model, x, y, free, T2, rule.closed_form), T1, T2)
    run.x, run.y = x, y  # type: ignore[attr-defined]
    return run


def ep_for(run: GDURun, rule: LearningRule, beta: float) -> Series:
    """The rule's per-step updates at signed β (`LearningRule.detailed_gradients`), computed once per run."""
    if beta not in run.ep:
        run.ep[beta] = rule.detailed_gradients(run.model, run.x, run.y, run.free, beta, run.T2)  # type: ignore
    return run.ep[beta]


def report(run: GDURun, rule: LearningRule, beta: float, variant: str, tol: float | None = None) -> GDUReport:
    """Compare the one-sided (signed β), negative (the one-sided at −β) or symmetric EP series with BPTT."""
    if variant == "one_sided":
        ep = ep_for(run, rule, beta)
    elif variant == "negative":
        ep = ep_for(run, rule, -beta)
    elif variant == "symmetric":
        ep = symmetric_mean(ep_for(run, rule, beta), ep_for(run, rule, -beta))
    else:
        raise ConfigError(f"unknown GDU variant {variant!r}; known: one_sided, negative, symmetric")
    layers = compare(ep, run.bptt, neuron_keys(run.model))
    dtype = str(run.free[0].dtype).replace("torch.", "")
    return GDUReport(run.model.name, dtype, variant, beta, run.T1, run.T2, layers, run.free_residual, tol)


def gdu_check(model: EnergyModel, x: Tensor, y: Tensor, rule: LearningRule, beta: float, *,
              variant: str = "symmetric", tol: float | None = None, T1: int | None = None,
              T2: int | None = None) -> GDUReport:
    """One GDU comparison of any rule's `LearningRule.detailed_gradients` at nudging ``beta`` (the symmetric variant
    averages ±β) with BPTT; ``tol`` bounds the worst layer's relative error, T1 and T2 override the rule's."""
    return report(prepare(model, x, y, rule, T1, T2), rule, beta, variant, tol)


#: the symmetric estimator's error is reported (and tracked across commits on eqbench's own cases) at this β; the
#: orders are judged on the β ladder (eqbench.checks.order), where the model's own asymptotic range is found
SYMMETRIC_BETA = 1e-3

# float32, clipping activation, the seed's gducheck settings (β = 0.1, T2 = 15): no limit is
# reached — at β = 0.1 the nudge moves units across the clip's kinks and max-pool argmaxes — so the
# check is that EP's per-step signs beat chance (1/2). Measured over seeds 0–3 of the embedded
# cases: MLP 0.13–0.28, max-pool CNN 0.28–0.38, and for the sign-flipped estimator 1 − those
# (≥ 0.62). The same CNN falls to 0.04 (β = 0.01) and 0.02 (β = 1e-3) in float64, so the
# disagreement is the finite β on a non-smooth map, not a defect. 0.45 sits between both groups.
SIGN_ERROR_LIVE_BOUND = 0.45


def gdu_ladder(run, rule, betas: Sequence[float] | None = None,
               variants: Sequence[str] = ("one_sided", "negative", "symmetric"), kinks: bool = True) -> GDULadder:
    """Measure a GDU run (`eqbench.checks.gdu.prepare`) over the β ladder: the rule's per-step updates at ±β against
    BPTT for every key, the noise floor, the diverged β and the kink diagnostic; judged per key and estimator."""
    betas = ladder(betas)
    check_precision(run.free[0].dtype)
    keys = list(run.bptt)
    neurons = {f"s{i + 1}" for i in range(len(run.free))}
    floor_series = noise_floor(run.model, run.x, run.y, run.free, rule, run.T2)
    least = roundoff_floor(run.model, run.x, run.free, run.T2)
    fl = {k: max(float(floor_series[k].to(run.bptt[k].dtype).norm()), least.get(k, 0.0)) for k in keys}
    errors: dict[str, dict[str, list[float]]] = {v: {k: [] for k in keys} for v in variants}
    diverged = []
    for b in betas:
        try:
            plus = ep_for(run, rule, b)
            minus = ep_for(run, rule, -b) if {"symmetric", "negative"} & set(variants) else None
        except DivergenceError:
            diverged.append(b)
            for v in variants:
                for k in keys:
                    errors[v][k].append(math.nan)
            continue
        for v in variants:
            ser = plus if v == "one_sided" else minus if v == "negative" else symmetric_mean(plus, minus)
            for k in keys:
                err = float((ser[k].to(run.bptt[k].dtype) - run.bptt[k]).norm())
                errors[v][k].append(err if math.isfinite(err) else math.nan)
    floors = {k: [fl[k] / b for b in betas] for k in keys}
    out = GDULadder(betas, {k: "neurons" if k in neurons else "weights" for k in keys},
                    {k: float(run.bptt[k].norm()) for k in keys}, errors, floors, diverged=diverged,
                    free_residual=run.free_residual, premise_tol=roundoff_tol(run.free[0].dtype, state_norm(run.free)))
    if kinks:
        out.kinks = kink_counts(run, rule, betas, diverged)
    return out


# ---------------------------------------------------------------------------------------------- whole updates
def update_errors(run: GDURun, rule: LearningRule) -> dict[str, float]:
    """Per parameter, ‖update − g‖/‖g‖ of the rule's whole update (`Relaxing.update`) at the run's free state, g the
    BPTT gradient through the run's T2 steps (the sum of its per-step series)."""
    update, _ = rule.update(run.model, run.x, run.y, run.free)  # type: ignore[attr-defined]
    out = {}
    for name, _ in run.model.named_parameters():
        g = run.bptt[name].sum(0)
        out[name] = float((update[name].to(g.dtype) - g).norm() / g.norm())
    return out


@dataclass
class OrderSweep:
    """Relative error of holomorphic EP's update against BPTT over β, per number of points N (N = 1: one-sided) and
    parameter, with each parameter's noise floor: the Cauchy estimate's bias is O(|β|^N) (Laborieux & Zenke 2022),
    judged per parameter on its asymptotic range (`eqbench.checks.order.judge`)."""

    betas: list[float]
    errors: dict[int, dict[str, list[float]]]  # N → parameter → relative error per β
    floors: dict[str, list[float]]  # parameter → relative noise floor per β

    def fits(self, N: int) -> dict[str, OrderFit]:
        return {name: judge(self.betas, errs, self.floors[name], N) for name, errs in self.errors[N].items()}

    def verdict(self, N: int) -> OrderVerdict:
        return aggregate(self.fits(N), float(N), {name: 1.0 for name in self.errors[N]}, f"N={N}")

    def error_at(self, N: int, beta: float) -> float:
        """The worst parameter's error at the sweep's β closest to ``beta``."""
        i = int(np.argmin([abs(math.log(b / beta)) for b in self.betas]))
        return max(errs[i] for errs in self.errors[N].values())


def order_sweep(run: GDURun, rule: LearningRule, points=(1, 2, 3, 4), betas=None) -> OrderSweep:
    """Holomorphic EP (``rule`` an EP, its β replaced) with N points over ``betas`` (a ladder, default 1e-1 … 1e-3),
    against the run's BPTT gradient; the floor is the one-sided rule's (`eqbench.checks.order.noise_floor`)."""
    betas = ladder(np.logspace(-1, -3, 5) if betas is None else betas)
    errors: dict[int, dict[str, list[float]]] = {}
    for N in points:
        per_beta = [update_errors(run, replace(rule, beta=b, T2=run.T2, estimator="holomorphic", points=N))  # type: ignore
                    for b in betas]
        errors[N] = {name: [e[name] for e in per_beta] for name in per_beta[0]}
    noise = noise_floor(run.model, run.x, run.y, run.free, rule, run.T2)
    least = roundoff_floor(run.model, run.x, run.free, 1)  # a whole update: the difference of two terms
    floors = {}
    for name, _ in run.model.named_parameters():
        g = run.bptt[name].sum(0)
        f = max(float(noise[name].sum(0).to(g.dtype).norm()), least[name]) / float(g.norm())
        floors[name] = [f / b for b in betas]
    return OrderSweep(betas, errors, floors)
