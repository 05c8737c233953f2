"""Assertions of eqbench's theorems for any `eqbench.EnergyModel`, eqbench's or yours.

Each helper runs one of eqbench's checks (eqbench.checks) and raises ``AssertionError`` with one
line — the measured value, its bound, and the layer or step where it fails — or returns the
check's report for further use. The helpers hide their own frames from pytest's traceback
(``__tracebackhide__``), so an expected failure reads as that one line. A model that diverges
(non-finite state) fails the same way; a misuse (an unknown mode, a model without targets where
some are needed) still raises eqbench's ConfigError.

Numbers are compared in the model's dtype (the dtype of its first floating parameter; inputs are
cast to it). The default tolerances are round-off bounds scaled by the model's own magnitudes and
its dtype's eps, derived where they are set, so a model with states of order 100 or one that runs
in float32 is judged by the same rules; the GDU orders are judged on the asymptotic range found on
a β ladder, and a ladder that cannot decide raises `Inconclusive` (an AssertionError).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..checks.energy import ConvergenceReport, DescentReport, convergence, energy_descent, roundoff_tol, state_norm
from ..checks.gdu import SYMMETRIC_BETA, GDUReport, gdu_ladder, prepare, report
from ..checks.order import BAND, GDULadder, OrderVerdict
from ..errors import ConfigError, DivergenceError
from ..models.base import EnergyModel, State
from ..relaxation import relax
from ..rules import EP

__all__ = ["GDUResult", "Inconclusive", "assert_batch_equivariant", "assert_closed_form_matches_autograd",
           "assert_converges", "assert_energy_descends", "assert_gdu"]


class Inconclusive(AssertionError):
    """A check that could not decide — the noise floor reached before a decade of asymptotic range, or orders still
    changing at the ladder's end — with the reason. An AssertionError, so a test is never silently green."""


# --------------------------------------------------------------------------------------- helpers
def _dtype(model: EnergyModel) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _as_model(model: EnergyModel, x: Tensor) -> Tensor:
    """x in the model's dtype (integer inputs, e.g. token ids, are left alone)."""
    return x.to(_dtype(model)) if isinstance(x, Tensor) and x.is_floating_point() else x


def _name(model: EnergyModel) -> str:
    return getattr(model, "name", None) or type(model).__name__


# --------------------------------------------------------------------------------------- GDU
@dataclass
class GDUResult:
    """What `assert_gdu` measured: the symmetric report at β, and (``orders``) the β ladder with both estimators
    judged on their asymptotic ranges."""

    report: GDUReport
    free_residual: float
    ladder: GDULadder | None = None

    @property
    def rel_error(self) -> float:
        """The symmetric estimator's relative error at β, worst layer."""
        return self.report.rel_error

    def verdict(self, variant: str) -> OrderVerdict | None:
        return None if self.ladder is None else self.ladder.verdict(variant)

    @property
    def slope_one_sided(self) -> float | None:
        """The one-sided order fitted over its asymptotic range (the key farthest from 1)."""
        return None if self.ladder is None else self.ladder.verdict("one_sided").slope

    @property
    def slope_symmetric(self) -> float | None:
        return None if self.ladder is None else self.ladder.verdict("symmetric").slope


def assert_gdu(model: EnergyModel, x: Tensor, y: Tensor, *, rule: EP | None = None, beta: float = SYMMETRIC_BETA,
               bound: float | None = None, T1: int = 300, T2: int = 10, orders: bool = True,
               betas: list[float] | None = None) -> GDUResult:
    """The GDU theorem (Ernoult et al. 2019): EP's per-step updates match BPTT's gradients as β → 0.

    Runs a free phase of ``T1`` synchronous steps and compares, over ``T2`` nudged steps, EP's
    neuron and parameter updates with BPTT's gradients (eqbench.checks.gdu), in the model's dtype:

    1. premise: the free phase reached a fixed point, residual ≤ 64·eps·‖s*‖ (round-off);
    2. with ``orders``, over the β ladder ``betas`` (default: two per decade from 1e-1 to 1e-6), every layer's error
       is O(β) one-sided and O(β²) symmetric on its asymptotic range, found from the data between kinks and
       higher orders above and the measured noise floor below (eqbench.checks.order): local orders within ±10 %
       of the theory's over a decade at least. A verdict the ladder cannot reach raises `Inconclusive` (an
       AssertionError) with the reason;
    3. with ``bound``, also the symmetric estimator's relative error at ``beta`` (worst layer) ≤ ``bound`` — an
       absolute number of your choosing for your model (none by default: the orders are scale-free, a bound is not).

    ``rule`` (default ``EP(beta, T1, T2)``) picks the dynamics' options (``closed_form``; the mode
    must be ``sync``) or an EP variant to test; ``T1`` and ``T2`` override its step counts.
    Returns a `GDUResult` (the report at β and the ladder).
    """
    __tracebackhide__ = True
    name = _name(model)
    rule = EP(beta=beta, T1=T1, T2=T2, estimator="one_sided") if rule is None else rule
    x = _as_model(model, x)
    try:
        run = prepare(model, x, y, rule, T1, T2)
        # The premise: one more step from a fixed point recomputes s from sums of O(n) terms and
        # moves it by a few ulps per element (eqbench.checks.energy.roundoff_tol, the same bound
        # `assert_converges` uses); a larger residual is drift that Δs/β would divide by β.
        premise = roundoff_tol(run.free[0].dtype, state_norm(run.free))
        if not run.free_residual <= premise:
            raise AssertionError(
                f"{name}: GDU premise fails: free-phase residual {run.free_residual:.3g} > {premise:.3g} "
                f"(round-off) after T1={T1} steps; the theorem needs a fixed point (raise T1 or make the "
                "dynamics contract)")
        rep = report(run, rule, beta, "symmetric", tol=bound)
        if bound is not None and not rep.passed:
            worst = max(rep.layers, key=lambda l: l.rel_error if not math.isnan(l.rel_error) else math.inf)
            raise AssertionError(
                f"{name}: GDU symmetric relative error {rep.rel_error:.3g} > bound {bound:.3g} at β={beta:g} "
                f"(worst layer {worst.key} [{worst.kind}], EP vs BPTT over T2={T2} steps)")
        result = GDUResult(rep, run.free_residual)
        if not orders:
            return result
        result.ladder = gdu_ladder(run, rule, betas)
    except DivergenceError as e:
        raise AssertionError(f"{name}: GDU check: {e}") from None
    for variant, theory in (("one_sided", "O(β)"), ("symmetric", "O(β²)")):
        v = result.ladder.verdict(variant)
        p = v.order
        if v.verdict == "FAIL":
            raise AssertionError(
                f"{name}: GDU {variant.replace('_', '-')} error is not {theory} (local orders within "
                f"[{(1 - BAND) * p:g}, {(1 + BAND) * p:g}] over a decade): layer {v.key}: {v.reason}")
        if v.verdict == "inconclusive":
            raise Inconclusive(f"{name}: GDU {variant.replace('_', '-')} order inconclusive: layer {v.key}: "
                               f"{v.reason}")
    return result


# --------------------------------------------------------------------------------------- convergence, energy
def assert_converges(model: EnergyModel, x: Tensor, steps: int = 300, tol: float | None = None, *,
                     mode: str = "sync") -> ConvergenceReport:
    """The free phase from the zero state reaches a fixed point within ``steps`` steps.

    Passes when the last residual ‖s_T − s_{T−1}‖₂ (worst sample, all layers) is ≤ ``tol``,
    by default the round-off of one step at a fixed point, 64·eps·‖s‖ (≈ 1.4e-14·‖s‖ in float64;
    eqbench.checks.energy.convergence). Returns the ConvergenceReport.
    """
    __tracebackhide__ = True
    name = _name(model)
    try:
        rep = convergence(model, _as_model(model, x), steps, mode=mode, tol=tol)
    except DivergenceError as e:
        raise AssertionError(f"{name}: free phase diverged: {e}") from None
    if not rep.passed:
        finite = [(r, t) for t, r in enumerate(rep.residuals, 1) if math.isfinite(r)]
        best = f"; smallest {min(finite)[0]:.3g} at step {min(finite)[1]}" if finite else ""
        raise AssertionError(
            f"{name}: free phase not converged: final residual {rep.final_residual:.3g} > tol {rep.tol:.3g} "
            f"after {steps} {mode} steps{best}")
    return rep


def assert_energy_descends(model: EnergyModel, x: Tensor, steps: int = 60, mode: str = "async", *,
                           a: float | None = None, beta: float = 0.0, y: Tensor | None = None,
                           tol: float | None = None) -> DescentReport:
    """The relaxation never increases E = (a/2)·Σ‖s_l‖² − Φ_β (eqbench.checks.energy.energy_descent).

    The theorem holds for a clip activation σ(u) = clip(u/a, 0, 1) and the block-coordinate
    (``async``) dynamics. Without ``a`` the model's declared energy (`EnergyModel.energy`) is
    observed; with ``a``, E = (a/2)·Σ‖s_l‖² − Φ_β whatever the activation. ``tol`` defaults to the
    round-off of a difference of two energies, 64·eps·max|E|. Fails, as a model the theorem
    does not cover, when the model declares no energy and no ``a`` is given. Returns the DescentReport.
    """
    __tracebackhide__ = True
    name = _name(model)
    x = _as_model(model, x)
    if a is None and not _declares_energy(model, x):
        act = getattr(model, "act", None)
        act_name = getattr(act, "name", type(act).__name__) if act is not None else "its activation"
        raise AssertionError(
            f"{name} declares no energy (activation {act_name!r} is no clip σ(u) = clip(u/a, 0, 1)), so the "
            "energy-descent theorem does not cover it; pass a= to test E = (a/2)·Σ‖s‖² − Φ anyway")
    try:
        rep = energy_descent(model, x, steps, mode=mode, a=a, tol=tol, beta=beta, y=y)
    except DivergenceError as e:
        raise AssertionError(f"{name}: relaxation diverged: {e}") from None
    if not rep.passed:
        where = ""
        if len(rep.energies) > 1:
            rises = [rep.energies[t + 1] - rep.energies[t] for t in range(len(rep.energies) - 1)]
            t = int(np.argmax(rises))
            if rises[t] > rep.tol:
                where = f"; batch mean rose most at {'half-step' if mode == 'async' else 'step'} {t + 1}"
        energy = "the model's declared E" if rep.a is None else f"E with a={rep.a:g}"
        raise AssertionError(
            f"{name}: energy increased: max ΔE = {rep.max_increase:.3g} > tol {rep.tol:.3g} ({rep.n_increases} "
            f"increase(s) over {steps} {mode} steps, {energy}, β={beta:g}{where})")
    return rep


def _declares_energy(model: EnergyModel, x: Tensor) -> bool:
    """Whether the model declares a Lyapunov function: ``energy(x, s)`` returning a tensor (a model
    without the method: whether its activation is a clip, ``act.clip_a``)."""
    declared = getattr(model, "energy", None)
    if declared is None:
        return getattr(getattr(model, "act", None), "clip_a", None) is not None
    x = model.check_input(x)
    with torch.no_grad():
        return declared(x, model.init_state(x)) is not None


# --------------------------------------------------------------------------------------- closed form
def _random_state(model: EnergyModel, x: Tensor, seed: int) -> State:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(x.shape[0], *tuple(sh), generator=g, dtype=torch.float64).to(x.dtype)
            for sh in model.state_shapes()]


def assert_closed_form_matches_autograd(model: EnergyModel, x: Tensor, y: Tensor | None = None, beta: float = 0.3,
                                        tol: float | None = None, states: list | None = None) -> float:
    """The model's closed-form drive equals the autograd drive ∂Φ_β/∂s (its ``drive_potential``).

    Compared at ``states`` (one state, a list of states, or by default a random state in [0, 1]
    and the zero state where the free phase starts), with and without a relaxation's ``cache``
    (a closed form may keep the input's drive there). With ``y=None`` random class targets are
    used for the nudge. Both drives sum the same products, possibly in another order: they differ
    by round-off, ≲ n·eps·max|u| for n sign-random terms (Higham 2002, §4.2). ``tol`` defaults to
    2¹²·eps of the model's dtype relative to the layer's largest entry (scale-free: fan-ins up to
    4096), and still catches any missing or misplaced term, O(1/√fan-in) relative or more.
    Returns the largest relative difference measured.
    """
    __tracebackhide__ = True
    name = _name(model)
    if not getattr(model, "has_closed_form", False):
        raise AssertionError(f"{name} declares no closed-form drive (has_closed_form = False): nothing to compare "
                             "with autograd")
    x = model.check_input(_as_model(model, x))
    if tol is None:
        tol = 2.0**12 * torch.finfo(_dtype(model)).eps
    if y is None and beta != 0.0:
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, max(int(model.n_classes), 1), (x.shape[0],), generator=g)
    if states is None:
        cases = [("random", _random_state(model, x, 0)), ("zero", model.init_state(x))]
    elif states and isinstance(states[0], Tensor):
        cases = [("given", list(states))]
    else:
        cases = [(f"states[{i}]", list(s)) for i, s in enumerate(states)]
    worst = 0.0
    for label, s in cases:
        ag = [u.detach() for u in model.drive(x, s, beta, y, closed_form=False)]
        cache: dict = {}
        with torch.no_grad():
            runs = [(label, model.drive(x, s, beta, y, closed_form=True, cache=cache)),
                    (f"{label}, cached", model.drive(x, s, beta, y, closed_form=True, cache=cache))]
        for what, cf in runs:
            if len(cf) != len(ag):
                raise AssertionError(f"{name}: closed form returns {len(cf)} layers, autograd {len(ag)}")
            for i, (c, a_) in enumerate(zip(cf, ag)):
                if tuple(c.shape) != tuple(a_.shape):
                    raise AssertionError(f"{name}: closed-form drive of layer s{i + 1} has shape {tuple(c.shape)}, "
                                         f"autograd {tuple(a_.shape)} ({what} state)")
                err = float((c.detach() - a_).abs().max()) if a_.numel() else 0.0
                scale = float(a_.abs().max()) if a_.numel() else 0.0
                worst = max(worst, err / scale if scale > 0 else (0.0 if err == 0 else math.inf))
                if not err <= tol * scale:
                    raise AssertionError(
                        f"{name}: closed-form drive ≠ autograd ∂Φ_β/∂s in layer s{i + 1} ({what} state, β={beta:g}): "
                        f"max |Δ| = {err:.3g} > tol {tol:.1e} × scale {scale:.3g}")
    return worst


# --------------------------------------------------------------------------------------- batch equivariance
def assert_batch_equivariant(model: EnergyModel, x: Tensor, steps: int = 50, *, y: Tensor | None = None,
                             beta: float = 0.1, tol: float | None = None, mode: str = "sync",
                             perm: Tensor | None = None) -> float:
    """Samples do not interact: the free phase of a permuted batch is the permuted free phase.

    Relaxes ``steps`` steps from zeros on x and on x[π] and compares s(x[π]) with s(x)[π]; with
    targets ``y``, also ``steps`` nudged steps at ``beta`` from there. π defaults to a seeded
    random permutation that moves some sample. Per sample the same operations run, but batched
    kernels may block (and so round) differently: a few ulps per step, which a contracting
    relaxation does not amplify. ``tol`` defaults to 2¹²·eps·max‖s‖ (≈ 9e-13·‖s‖ in float64: scale-free),
    far below the O(1) change of a state that reads another sample. Returns the largest
    difference.
    """
    __tracebackhide__ = True
    name = _name(model)
    x = model.check_input(_as_model(model, x))
    B = x.shape[0]
    if B < 2:
        raise ConfigError(f"batch equivariance needs a batch of at least 2 samples, got {B}")
    if perm is None:
        perm = torch.randperm(B, generator=torch.Generator().manual_seed(0))
        if bool((perm == torch.arange(B)).all()):
            perm = perm.flip(0)
    perm = perm.to(x.device)
    yp = None if y is None else y[perm]
    try:
        free = relax(model, x, model.init_state(x), steps, mode=mode)
        free_p = relax(model, x[perm], model.init_state(x), steps, mode=mode)
        pairs = [("free phase", free, free_p)]
        if y is not None:
            nudged = relax(model, x, free, steps, beta=beta, y=y, mode=mode)
            nudged_p = relax(model, x[perm], free_p, steps, beta=beta, y=yp, mode=mode)
            pairs.append((f"nudged phase (β={beta:g})", nudged, nudged_p))
    except DivergenceError as e:
        raise AssertionError(f"{name}: relaxation diverged: {e}") from None
    if tol is None:
        tol = 2.0**12 * torch.finfo(free[0].dtype).eps * max(state_norm(free), state_norm(free_p))
    worst = 0.0
    for phase, s, sp in pairs:
        for i, (a_, b) in enumerate(zip(s, sp)):
            d = float((b - a_[perm]).abs().max()) if b.numel() else 0.0
            worst = max(worst, d)
            if not d <= tol:
                raise AssertionError(
                    f"{name}: {phase} not equivariant to a batch permutation: max |s(x[π]) − s(x)[π]| = {d:.3g} "
                    f"> tol {tol:.3g} in layer s{i + 1} after {steps} {mode} steps")
    return worst
