"""The one catalogue of claims: what eqbench asserts, on which case, against which bound, and why.

A claim is data: the case it runs on (a key of `eqbench.cases.CASES`, or a case built for a model outside
eqbench), what it measures (a function of ``eqbench.checks`` applied to that case), its bound with the
derivation in one line, and whether it is a positive claim or a **negative control** — a broken variant on
which the claim must fail, proving that the check can fail. ``make bench`` prints the catalogue as its
table, the suites (suites/test_claims.py) assert it, the regression gate tracks its values, and
``eqbench check`` runs its generic part (`generic_claims`) on any model.

A verdict is ``pass`` (the bound holds, or a control's bound is violated as it must be), ``FAIL``, ``inconclusive``
(the measurement cannot decide, with the reason: "the noise floor is reached at β = 1e-3 before a decade of
O(β²)"; on a control it counts as caught, since the check did not pass the broken variant), ``info`` (reported, no
bound) or ``n/a`` (the claim does not apply, with the reason: "no energy declared").

Bounds are scale-free: they follow from the model's own scales and its dtype, never from numbers that hold on
eqbench's cases. Round-off claims are measured in ulps of the quantity's own scale (a difference over eps times
the largest entry it is a difference of); the GDU orders are judged on the asymptotic range that the β ladder finds
(eqbench.checks.order), not on a fixed window.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .activity import activity_convergence
from .cases import (
    CASES,
    HOLOMORPHIC_BETAS,
    HOLOMORPHIC_CASES,
    LAYOUT_CASES,
    SIGN_BETA,
    SIGN_CASES,
    THEOREM_CASES,
    Case,
    of_kind,
    paper_hopfield,
)
from .checks import energy as en
from .checks.controls import ReversedFlipOptimizer, SignFlipped, UncontrastedCL
from .checks.device import device_placement
from .checks.gdu import (
    SIGN_ERROR_LIVE_BOUND,
    SYMMETRIC_BETA,
    GDURun,
    OrderSweep,
    gdu_ladder,
    order_sweep,
    prepare,
    report,
)
from .checks.order import BAND, GDULadder, OrderVerdict, fit_slope
from .errors import ConfigError, EqbenchError
from .models.hopfield import euler_overshoot
from .optim import FlipOptimizer
from .relaxation import fused, relax
from .roundoff import eps
from .rules import EP, ContrastiveLearning, CoupledLearning, LearningRule

#: the round-off bound of a quantity computed two ways (closed form and autograd, fused and generic loops, a
#: permuted batch), in ulps of the quantity's own scale (eps × its largest entry): the same products summed in
#: another order differ by ~√n·eps·Σ|terms| ≈ n·eps·max|value| for n sign-random terms of a fan-in n (Higham 2002,
#: §4.2), so 2¹² ulps covers fan-ins up to 4096 — while a missing, doubled or misplaced term is an O(1/√n) relative
#: error, ≥ 10¹¹ ulps in float64 and ≥ 10³ in float32
ROUNDOFF_ULPS = 2.0**12
#: the premise's bound: one step from a fixed point recomputes s from sums of O(n) terms and moves it by a few ulps
#: per element, so the residual ‖s_T1 − s_T1−1‖ ≤ 64·eps·‖s*‖ (eqbench.checks.energy.roundoff_tol)
PREMISE_ULPS = 64.0


class NotApplicable(EqbenchError):
    """The claim does not apply to this model (its message says why)."""


# ---------------------------------------------------------------------------------------------- bounds
@dataclass(frozen=True)
class Bound:
    """``op`` one of ≤, ≥, <, >, in; ``value`` a number, or (low, high) for ``in``."""

    op: str
    value: float | tuple[float, float]

    def holds(self, v: float) -> bool:
        if not math.isfinite(v) and self.op != ">":
            return False
        if self.op == "in":
            lo, hi = self.value  # type: ignore[misc]
            return lo <= v <= hi
        b = float(self.value)  # type: ignore[arg-type]
        return {"≤": v <= b, "≥": v >= b, "<": v < b, ">": v > b}[self.op]

    def __str__(self) -> str:
        if self.op == "in":
            lo, hi = self.value  # type: ignore[misc]
            return f"[{lo:g}, {hi:g}]"
        return f"{self.op} {float(self.value):g}"  # type: ignore[arg-type]


def le(v: float) -> Bound:
    return Bound("≤", v)


def band(lo: float, hi: float) -> Bound:
    return Bound("in", (lo, hi))


# ---------------------------------------------------------------------------------------------- subjects
@dataclass
class Subject:
    """A case made concrete, with what several claims on it share (built once, measured many times)."""

    case: Case
    rule_factory: Callable[..., LearningRule] = EP
    _built: tuple | None = field(default=None, repr=False)
    _runs: dict = field(default_factory=dict, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)

    def built(self) -> tuple[Any, torch.Tensor, torch.Tensor]:
        if self._built is None:
            self._built = self.case.build()
        return self._built

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per subject and ``key``: a rule's update that several claims read (coupled learning at
        an η, C-EP at a β) is computed once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def model(self):
        return self.built()[0]

    def rule(self, beta: float = SYMMETRIC_BETA, T1: int | None = None,
             control: Callable | None = None) -> LearningRule:
        rule = self.rule_factory(beta=beta, T1=self.case.T1 if T1 is None else T1, T2=self.case.T2,
                                 estimator="one_sided")
        return control(rule) if control is not None else rule

    def gdu(self, T1: int | None = None, control: Callable | None = None) -> tuple[GDURun, LearningRule]:
        """The free phase and BPTT series of the case (T1 free steps), and the rule they are compared with."""
        key = (T1, control)
        if key not in self._runs:
            model, x, y = self.built()
            rule = self.rule(T1=T1, control=control)
            self._runs[key] = (prepare(model, x, y, rule), rule)
        return self._runs[key]

    def ladder(self, T1: int | None = None, control: Callable | None = None) -> GDULadder:
        """Both estimators over the case's β ladder, judged on their asymptotic ranges (computed once)."""
        run, rule = self.gdu(T1, control)
        if run.ladder is None:
            run.ladder = gdu_ladder(run, rule, self.case.betas)
        return run.ladder

    def measured_ladder(self) -> GDULadder | None:
        """The case's ladder if a claim has measured it (None otherwise: nothing is computed here)."""
        run = self._runs.get((None, None))
        return None if run is None else run[0].ladder

    def orders(self) -> OrderSweep:
        """Holomorphic EP's β ladder for N = 1 … 4 on the case's GDU run (computed once)."""

        run, rule = self.gdu()
        if run.orders is None:
            run.orders = order_sweep(run, rule, HOLOMORPHIC_POINTS, HOLOMORPHIC_BETAS)
        return run.orders

    def error(self, variant: str = "symmetric", beta: float = SYMMETRIC_BETA, T1: int | None = None,
              control: Callable | None = None):
        run, rule = self.gdu(T1, control)
        return report(run, rule, beta, variant)


@functools.cache
def subject(case: str) -> Subject:
    """The shared subject of catalogue case ``case`` (one per process: GDU runs are computed once)."""
    return Subject(CASES[case])


# ---------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Measured:
    value: float
    text: str = ""  # how the table shows it (default: the value with the claim's format)
    #: a verdict the measurement itself reached ("FAIL" or "inconclusive", e.g. an order judged on its β ladder),
    #: which the bound then does not overrule; ``note`` says why
    verdict: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Result:
    claim: Claim
    value: float
    measured: str
    verdict: str  # pass, FAIL, inconclusive, info, n/a
    note: str = ""

    @property
    def message(self) -> str:
        kind = "negative control (must fail)" if self.claim.control else "claim"
        return (f"{self.claim.label}: {self.claim.check}: measured {self.measured}, bound {self.claim.bound_text} "
                f"[{kind}: {self.verdict}] {self.note}".rstrip())


@dataclass(frozen=True)
class Claim:
    """One row of the catalogue.

    ``label`` names the case as the table shows it (and keys the tracked value); ``case`` is the catalogue
    case, or a `Subject` factory for cases outside it; ``measure(subject)`` returns a float or `Measured`;
    ``bound`` None means "reported only"; ``control`` means the bound must be violated (a broken variant).
    """

    family: str
    label: str
    check: str
    measure: Callable[[Subject], float | Measured]
    bound: Bound | None
    why: str
    control: bool = False
    case: str | None = None
    fmt: str = "{:.2e}"
    key: str | None = None  # the tracked value's name (eqbench.tracking), when the gate follows it
    name: str | None = None  # a short stable id of a generic claim (the zoo's expected verdicts name claims by it)

    @property
    def bound_text(self) -> str:
        if self.bound is None:
            return "—"
        return f"{self.bound} (must fail)" if self.control else str(self.bound)

    def evaluate(self, sub: Subject | None = None) -> Result:
        """Measure on ``sub`` (default: the catalogue's subject of ``case``) and judge."""
        sub = subject(self.case or self.label) if sub is None else sub
        try:
            m = self.measure(sub)
        except NotApplicable as e:
            return Result(self, math.nan, "—", "n/a", str(e))
        m = m if isinstance(m, Measured) else Measured(float(m))
        text = m.text or (self.fmt.format(m.value) if math.isfinite(m.value) else "—")
        if m.verdict == "inconclusive":  # a control the check did not pass is caught
            return Result(self, m.value, text, "pass" if self.control else "inconclusive",
                          f"inconclusive: {m.note}" if self.control else m.note)
        if self.bound is None:
            return Result(self, m.value, text, "info", m.note)
        ok = (False if m.verdict == "FAIL" else self.bound.holds(m.value)) != self.control
        return Result(self, m.value, text, "pass" if ok else "FAIL", m.note if m.verdict == "FAIL" else "")


# ---------------------------------------------------------------------------------------------- measures
def ulps(diff: float, scale: float, dtype: torch.dtype) -> float:
    """``diff`` in units of round-off of a quantity of size ``scale``: diff / (eps·scale) (0 when both are 0)."""
    if diff == 0:
        return 0.0
    unit = eps(dtype) * scale
    return diff / unit if unit > 0 else math.inf


def premise(sub: Subject, T1: int | None = None) -> Measured:
    """The free phase's last residual ‖s_T1 − s_T1−1‖ in ulps of the fixed point's norm (worst sample)."""
    run = sub.gdu(T1)[0]
    norm = en.state_norm(run.free)
    v = ulps(run.free_residual, norm, run.free[0].dtype)
    return Measured(v, f"{v:.2g} ulps (residual {run.free_residual:.1e}, ‖s*‖ {norm:.3g})")


def order(variant: str, T1: int | None = None, control: Callable | None = None) -> Callable[[Subject], Measured]:
    """An estimator's order on its asymptotic range (eqbench.checks.order): the verdict of every key, shown as the
    order fitted over the deciding key's range."""
    def measure(sub: Subject) -> Measured:
        v = sub.ladder(T1, control).verdict(variant)
        return order_measured(v)
    return measure


def order_measured(v: OrderVerdict) -> Measured:
    """An `OrderVerdict` as a claim's measurement: pass keeps the bound's judgement of the fitted order."""
    text = v.text() if v.verdict != "inconclusive" else "—"
    return Measured(v.slope, text, None if v.verdict == "pass" else v.verdict,
                    "" if v.verdict == "pass" else f"{v.key}: {v.reason}" if v.key else v.reason)


def settled_order(variant: str) -> Callable[[Subject], Measured]:
    """|the order an estimator's error settles at| where it fails (0 for an O(1) error); nan when it does not fail."""
    def measure(sub: Subject) -> Measured:
        v = sub.ladder().verdict(variant)
        q = abs(v.slope) if v.verdict == "FAIL" else math.nan
        return Measured(q, f"{q:.3f} ({v.key})" if math.isfinite(q) else f"— ({v.verdict})")
    return measure


def kink_beta(sub: Subject) -> Measured:
    """The largest β of the ladder at and below which no unit crosses a kink of a piecewise-linear activation."""
    lad = sub.ladder()
    if lad.kinks is None:
        raise NotApplicable("no piecewise-linear activation (eqbench.checks.order.piecewise_linear)")
    b = lad.kink_beta
    counts = ", ".join(f"{n}" for n in lad.kinks)
    return Measured(math.nan if b is None else b, f"{'none' if b is None else f'{b:.1e}'} (units crossing per β: "
                                                  f"{counts})")


def symmetric_error(sub: Subject) -> Measured:
    rep = sub.error()
    worst = max(rep.layers, key=lambda l: l.rel_error)
    return Measured(rep.rel_error, f"{rep.rel_error:.2e} (worst layer {worst.key})")


def error_at_range_end(sub: Subject) -> Measured:
    """The symmetric estimator's relative error (worst key) at the low end of its asymptotic range: how close EP
    comes to BPTT on this model."""
    lad = sub.ladder()
    v = lad.verdict("symmetric")
    if v.range is None:
        return Measured(math.nan, "— (no asymptotic range)")
    i = lad.betas.index(v.range[1])
    worst = max(lad.errors["symmetric"], key=lambda k: lad.relative("symmetric", k)[i])
    e = lad.relative("symmetric", worst)[i]
    return Measured(e, f"{e:.2e} at β = {v.range[1]:.1e} (worst {worst})")


def sign_error_live(sub: Subject) -> float:
    return sub.error("symmetric", SIGN_BETA).sign_error_live


def sign_error_laborieux(sub: Subject) -> float:
    return sub.error("symmetric", SIGN_BETA).sign_error


def with_control(measure: Callable[..., float], **kw: Any) -> Callable[[Subject], float]:
    """``measure`` on the subject's GDU run with a control (a broken rule, fewer free steps, another β)."""
    def run(sub: Subject) -> float:
        return measure(sub, **kw)
    return run


def controlled_error(sub: Subject, variant: str = "symmetric", beta: float = SYMMETRIC_BETA, T1: int | None = None,
                     control: Callable | None = None) -> Measured:
    rep = sub.error(variant, beta, T1, control)
    worst = max(rep.layers, key=lambda l: l.rel_error)
    return Measured(rep.rel_error, f"{rep.rel_error:{'.4f' if variant == 'one_sided' else '.2e'}} "
                                   f"(worst layer {worst.key})")


def ladder_fit(sub: Subject, variant: str = "one_sided", T1: int | None = None) -> float:
    """The log–log slope fitted over the whole ladder of the worst key's error (no range looked for): what a
    prediction about the error's growth over every β compares with."""
    lad = sub.ladder(T1)
    return fit_slope(lad.betas, lad.worst(variant))


HOLOMORPHIC_POINTS = (1, 2, 3, 4)
HOLOMORPHIC_BETA = 1e-2  # where the errors per N are reported


def holomorphic_slope(N: int) -> Callable[[Subject], Measured]:
    """Holomorphic EP's order with N points, every parameter judged on its asymptotic range."""
    def measure(sub: Subject) -> Measured:
        return order_measured(sub.orders().verdict(N))
    return measure


def holomorphic_error(N: int) -> Callable[[Subject], float]:
    def measure(sub: Subject) -> float:
        return sub.orders().error_at(N, HOLOMORPHIC_BETA)
    return measure


def _flat(update: dict, model) -> torch.Tensor:
    """One vector of a per-parameter dict, in the model's parameter order."""
    return torch.cat([update[n].flatten() for n, _ in model.named_parameters()])


def holomorphic_n2_minus_symmetric(sub: Subject) -> float:
    """max |holomorphic N = 2 − symmetric| over the update at β = 1e-2, in ulps of max |symmetric|."""
    run, rule = sub.gdu()
    a = _flat(replace_rule(rule, estimator="holomorphic", points=2).update(sub.model, run.x, run.y, run.free)[0],
              sub.model)
    b = _flat(replace_rule(rule, estimator="symmetric").update(sub.model, run.x, run.y, run.free)[0], sub.model)
    return ulps(float((a - b).abs().max()), float(b.abs().max()), b.dtype)


def holomorphic_imaginary(sub: Subject) -> float:
    """max |Im| of the N = 3 circle summed over all three points (no conjugate pairing), in ulps of max |Re|."""
    run, rule = sub.gdu()
    r = replace_rule(rule, estimator="holomorphic", points=3)
    re = _flat(r.circle_grads(sub.model, run.x, run.y, run.free, full=True), sub.model)
    im = _flat(r.circle_grads(sub.model, run.x, run.y, run.free, full=True, part="imag"), sub.model)
    return ulps(float(im.abs().max()), float(re.abs().max()), re.dtype)


def replace_rule(rule: LearningRule, **changes: Any) -> LearningRule:
    return replace(rule, beta=HOLOMORPHIC_BETA, **changes)  # type: ignore[type-var]


CL_ETAS = (1.0, 0.5, 0.1, 0.01)


def coupled_update(sub: Subject, eta: float, control: type | None = None, variant: str = "positive") -> torch.Tensor:
    """Coupled learning's update (``control``: a broken variant's) at η from the case's free state, as one vector."""
    def compute() -> torch.Tensor:
        run, _ = sub.gdu()
        rule = (control or CoupledLearning)(eta=eta, T1=sub.case.T1, T2=sub.case.T2, variant=variant)
        return _flat(rule.update(sub.model, run.x, run.y, run.free)[0], sub.model)
    return sub.memo(("coupled", eta, control, variant), compute)


def bptt_gradient(sub: Subject) -> torch.Tensor:
    """The BPTT gradient through the case's T2 steps from its free state, as one vector."""
    run, _ = sub.gdu()
    return _flat({n: run.bptt[n].sum(0) for n, _ in sub.model.named_parameters()}, sub.model)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def coupled_alignment(eta: float, variant: str = "positive") -> Callable[[Subject], float]:
    """cos(coupled learning's update at η, the BPTT gradient)."""
    def measure(sub: Subject) -> float:
        return cosine(coupled_update(sub, eta, variant=variant), bptt_gradient(sub))
    return measure


def coupled_etas(sub: Subject) -> tuple[float, float, float]:
    """(4η₀, 2η₀, η₀) with η₀ = 0.01, or a quarter of the largest β at which no unit crosses a kink when the model
    has kinks (clips, max pools): the expansion in η holds only where the clamped phase crosses none, and the
    clamp's displacement η·∂L/∂s_out is of the nudge's size β·∂L/∂s_out."""
    eta0 = 0.01
    lad = sub.ladder()
    if lad.kinks is not None:
        kb = lad.kink_beta if lad.kink_beta is not None else min(lad.betas) / 4
        eta0 = min(eta0, kb / 4)
    return 4 * eta0, 2 * eta0, eta0


def coupled_ratio(sub: Subject, control: type | None = None, variant: str = "positive") -> Measured:
    """‖CpL(4η₀) − CpL(2η₀)‖ / ‖CpL(2η₀) − CpL(η₀)‖ (`coupled_etas`): 2 + O(η) when the update is smooth in η at 0
    (positive, negative), 4 + O(η²) for the centred variant, whose odd terms cancel."""
    etas = coupled_etas(sub)
    a, b, c = (coupled_update(sub, eta, control, variant) for eta in etas)
    v = float((a - b).norm() / (b - c).norm())
    return Measured(v, f"{v:.3f} (η₀ = {etas[-1]:.2g})")


def centered_change(sub: Subject, variant: str = "centered") -> Measured:
    """‖CCpL(2η₀) − CCpL(η₀)‖ / ‖PCpL(2η₀) − PCpL(η₀)‖ (``variant``: the rule in place of C-CpL, the control)."""
    _, e2, e1 = coupled_etas(sub)
    c2, c1 = (coupled_update(sub, eta, variant=variant) for eta in (e2, e1))
    p2, p1 = (coupled_update(sub, eta) for eta in (e2, e1))
    v = float((c2 - c1).norm() / (p2 - p1).norm())
    return Measured(v, f"{v:.3g} (η₀ = {e1:.2g})")


def centered_is_mean(sub: Subject) -> float:
    """max |C-CpL − (P-CpL + N-CpL)/2| at η₀ in ulps of max |C-CpL|."""
    eta = coupled_etas(sub)[-1]
    c, p, n = (coupled_update(sub, eta, variant=v) for v in ("centered", "positive", "negative"))
    return ulps(float((c - (p + n) / 2).abs().max()), float(c.abs().max()), c.dtype)


def coupled_first_order(sub: Subject, control: type | None = None) -> Measured:
    """`coupled_ratio` of the positive variant."""
    return coupled_ratio(sub, control)


#: CL against C-EP: how much farther from the gradient (sin of the angle) contrastive learning must stay than
#: C-EP at β = SYMMETRIC_BETA; C-EP's sine falls as β², so C-EP at 3β is only ~9× farther — the control
CL_GAP = 100.0


def sine(a: torch.Tensor, b: torch.Tensor) -> float:
    """sin∠(a, b): how far a points from b, whatever their scales."""
    return math.sqrt(max(0.0, 1.0 - cosine(a, b) ** 2))


def contrastive_update(sub: Subject) -> torch.Tensor:
    """Contrastive learning's update from the case's free state, as one vector."""
    def compute() -> torch.Tensor:
        run, _ = sub.gdu()
        rule = ContrastiveLearning(T1=sub.case.T1, T2=sub.case.T2)
        return _flat(rule.update(sub.model, run.x, run.y, run.free)[0], sub.model)
    return sub.memo(("contrastive",), compute)


def centered_update(sub: Subject, beta: float) -> torch.Tensor:
    """C-EP's update at β from the case's free state, as one vector."""
    def compute() -> torch.Tensor:
        run, rule = sub.gdu()
        return _flat(replace(rule, beta=beta, estimator="symmetric").update(sub.model, run.x, run.y, run.free)[0],
                     sub.model)
    return sub.memo(("centered", beta), compute)


def contrastive_gap(sub: Subject, beta_control: float | None = None) -> Measured:
    """sin∠(CL, g) / sin∠(C-EP at β = SYMMETRIC_BETA, g), g the BPTT gradient; ``beta_control``: C-EP at that β in
    place of CL (the control)."""
    g = bptt_gradient(sub)
    ref = sine(centered_update(sub, SYMMETRIC_BETA), g)
    test = contrastive_update(sub) if beta_control is None else centered_update(sub, beta_control)
    s = sine(test, g)
    return Measured(s / ref if ref > 0 else math.inf, f"{s / ref:.3g} (sin∠ {s:.2e} against C-EP's {ref:.2e})")


def layer_ulps(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """max over layers of max |a_l − b_l| in ulps of max |b_l|: a difference judged against the layer's own scale."""
    return max((ulps(float((p - q).detach().abs().max()), float(q.detach().abs().max()), q.dtype)
                for p, q in zip(a, b) if q.numel()), default=0.0)


def closed_form_difference(sub: Subject) -> float:
    """Closed-form against autograd drive at random states in [0, 1], β = 0.3, in ulps of each layer's largest drive."""
    model, x, y = sub.built()
    if not model.has_closed_form:
        raise NotApplicable("no closed-form drive declared (has_closed_form is False)")
    g = torch.Generator().manual_seed(0)
    s = [torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for t in model.init_state(x)]
    return layer_ulps(model.drive(x, s, 0.3, y, closed_form=True), model.drive(x, s, 0.3, y, closed_form=False))


def fused_gap(model, x: torch.Tensor, y: torch.Tensor | None, steps: int, beta: float, mode: str = "sync") -> float:
    """Fused against generic state after ``steps`` closed-form steps of ``mode`` from random states in [0, 1], free
    and with the output layer clamped (coupled learning's phase), in ulps of each layer's largest state entry."""
    g = torch.Generator().manual_seed(0)
    s0 = [torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for t in model.init_state(x)]

    if fused(model, x, s0, 1, beta, y, None, mode=mode) is None:
        raise NotApplicable(f"no fused {mode} relaxation declared (EnergyModel.fast_relax returns None)")
    gap = 0.0
    for clamp in (None, {len(s0) - 1: s0[-1]}):
        fast = relax(model, x, s0, steps, beta=beta, y=y, mode=mode, clamp=clamp)
        gap = max(gap, layer_ulps(fast, relax(model, x, s0, steps, beta=beta, y=y, mode=mode, fast=False,
                                              clamp=clamp)))
    return gap


def fused_difference(sub: Subject) -> Measured:
    """`fused_gap` over 30 steps, free (β = 0) and nudged (β = 0.3), in each mode the model fuses; the largest."""
    model, x, y = sub.built()
    gaps = {}
    for mode in ("sync", "async"):
        try:
            gaps[mode] = max(fused_gap(model, x, y, 30, beta, mode) for beta in (0.0, 0.3))
        except NotApplicable:
            continue
    if not gaps:
        raise NotApplicable("no fused relaxation declared (EnergyModel.fast_relax returns None)")
    v = max(gaps.values())
    return Measured(v, ", ".join(f"{g:.3g} ({m})" for m, g in gaps.items()))


def energy_margin(sub: Subject, steps: int | None = None, mode: str | None = None, a: float | None = None,
                  start=None) -> Measured:
    """max_t (E_{t+1} − E_t) over the round-off tolerance (≤ 1: E never increases beyond round-off)."""
    model, x, _ = sub.built()
    try:
        rep = en.energy_descent(model, x, sub.case.T1 if steps is None else steps,
                                mode=sub.case.mode if mode is None else mode, a=a)
    except ConfigError as e:
        raise NotApplicable(str(e)) from None
    return Measured(rep.max_increase / rep.tol, f"max ΔE {rep.max_increase:.1e} (tol {rep.tol:.0e})")


def sync_increases(sub: Subject) -> Measured:
    model, x, _ = sub.built()
    rep = en.energy_descent(model, x, sub.case.T1, mode="sync")
    return Measured(rep.n_increases, f"{rep.n_increases} (max ΔE {rep.max_increase:.1e})")


def batch_permutation(sub: Subject) -> float:
    """free(Px) against P·free(x) over a reversed batch (T1 steps from init_state), in ulps of each layer's largest
    state entry."""
    model, x, _ = sub.built()
    perm = torch.arange(x.shape[0] - 1, -1, -1)
    a = relax(model, x, model.init_state(x), sub.case.T1)
    b = relax(model, x[perm], model.init_state(x[perm]), sub.case.T1)
    return layer_ulps(b, [ai[perm] for ai in a])


LAYOUT_BETA = 0.5
#: every parameter ×(1 + 2⁻¹⁰/3) before the layout claim: a mantissa as full as training leaves it (a fresh binary
#: net's α = round(mean|W|, 4), cast from float32, makes sums of ±α/2 exact, which would hide the rounding that
#: decides a tie)
LAYOUT_JITTER = 2.0**-10 / 3


def layout_difference(sub: Subject) -> Measured:
    """NCHW against NHWC (``channels_last``) copies of the case's model, in float64 and float32, every parameter
    ×(1 + `LAYOUT_JITTER`): the drives at the model's own starting state (``init_state``: zeros, ½ or ones, where a
    max pool's windows tie), the free phase from it (T1 steps), and a nudged phase from that free state (T1 steps at
    β = 0.5: where a nudged phase and persistent particles start), in ulps of each layer's largest entry; the worse
    dtype (each in ulps of its own eps)."""
    model, x, y = sub.built()
    worst, parts = 0.0, []
    for dtype in (torch.float64, torch.float32):
        runs = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            m = copy.deepcopy(model).to(dtype=dtype, memory_format=fmt)
            with torch.no_grad():
                for p in m.parameters():
                    p.mul_(1 + LAYOUT_JITTER)
            xd = x.to(dtype)
            s0 = m.init_state(xd)
            with torch.no_grad():
                drive = [u.detach() for u in m.drive(xd, s0, 0.0, None)]
            free = relax(m, xd, s0, sub.case.T1)
            runs.append((drive, free, relax(m, xd, free, sub.case.T1, beta=LAYOUT_BETA, y=y)))
        (d1, f1, n1), (d2, f2, n2) = runs
        v = max(layer_ulps(d2, d1), layer_ulps(f2, f1), layer_ulps(n2, n1))
        parts.append(f"{v:.3g} ulps in {str(dtype).removeprefix('torch.')}")
        worst = max(worst, v)
    return Measured(worst, ", ".join(parts))


def device_clean(sub: Subject) -> Measured:
    """Whether one EP training step and a prediction create no tensor on the default device (meta under the guard)."""
    model, x, y = sub.built()
    rule = EP(beta=0.1, T1=3, T2=2, estimator="symmetric")

    def step():
        rule.compute_gradients(model, x, y)
        rule.predict(model, x)

    problem = device_placement(step)
    model.zero_grad(set_to_none=True)
    return Measured(0.0 if problem is None else 1.0, "none misplaced" if problem is None else problem)


# ---------------------------------------------------------------------------------------------- the claims
ORDERS = {"one_sided": 1, "negative": 1, "symmetric": 2}
#: the two estimators the controls must fail (the negative one is the one-sided at −β: its controls would repeat them)
CONTROLLED = ("one_sided", "symmetric")
GDU_WHY = ("Ernoult et al. 2019 with the bias orders of Laborieux et al. 2021: the one-sided error is O(β), the "
           "symmetric O(β²) as β → 0; judged where the β ladder shows the error asymptotic (above: kinks and "
           "higher orders, below: the measured noise floor), local orders within ±10 % over a decade at least "
           "(eqbench.checks.order)")
PREMISE_WHY = ("the theorem needs a fixed point: one more step recomputes s from sums and moves it by a few ulps per "
               "element, ≤ 64·eps·‖s*‖")
ROUNDOFF_WHY = ("the same sums in another order: ≲ n·eps·max|value| for fan-ins n ≤ 4096 (Higham 2002 §4.2); a "
                "missing or misplaced term is an O(1/√n) relative error")


def order_claim(label: str, variant: str, case: str | None = None, key: str | None = None) -> Claim:
    """The GDU order of an estimator on its asymptotic range (the bound: ±10 % around the theory's order)."""
    p = ORDERS[variant]
    return Claim("gdu", label, f"GDU {variant.replace('_', '-')} order on its asymptotic range (float64 ladder)",
                 order(variant), band((1 - BAND) * p, (1 + BAND) * p), GDU_WHY, case=case, fmt="{:.3f}", key=key,
                 name=f"order/{variant}")


def gdu_claims(label: str, case: str | None = None, *, tracked: bool = False) -> list[Claim]:
    """The GDU theorem on one case: the premise (a fixed point), both orders on their asymptotic ranges, and what the
    ladder shows (the symmetric error at the range's low end; where units stop crossing kinks)."""
    key = (lambda k: f"gdu/{label}/{k}") if tracked else (lambda k: None)
    out = [
        Claim("gdu", label, "free phase converged (premise): residual ‖s_T1 − s_T1−1‖ in ulps of ‖s*‖", premise,
              le(PREMISE_ULPS), PREMISE_WHY, case=case, name="premise"),
        order_claim(label, "one_sided", case, key("slope_one_sided")),
        order_claim(label, "negative", case),  # N-EP (Scellier et al. 2023): the one-sided estimator at −β
        order_claim(label, "symmetric", case, key("slope_symmetric")),
        Claim("gdu", label, "GDU symmetric rel. error at the low end of its asymptotic range (reported)",
              error_at_range_end, None, "how close EP comes to BPTT before the noise floor", case=case,
              name="error/symmetric"),
        Claim("gdu", label, "largest β without units crossing a kink in the nudged phases (reported)", kink_beta, None,
              "above it the error is no power of β yet: it explains where the asymptotic range begins", case=case,
              name="kinks"),
    ]
    if tracked:
        out.append(Claim("gdu", label, f"GDU symmetric rel. error at β={SYMMETRIC_BETA:g} (reported)",
                         symmetric_error, None, "tracked across commits on eqbench's own cases: C·β² here",
                         case=case, key=key("symmetric_error")))
    return out


def generic_controls(label: str, case: str | None = None) -> list[Claim]:
    """Controls that apply to any model: the GDU order must fail with the estimator's sign flipped, and the premise
    and the order with a free phase of 3 steps (no fixed point)."""
    sym = order_claim(label, "symmetric", case)
    return [
        replace(sym, family="control", check=f"estimator sign flipped: {sym.check}",
                measure=order("symmetric", control=SignFlipped), control=True,
                why="EP = −BPTT: an O(1) error, of order 0", name="control/sign_flipped"),
        replace(sym, family="control", check=f"free phase of 3 steps: {sym.check}", measure=order("symmetric", T1=3),
                control=True, why="no fixed point: the drift over β swamps the error (inconclusive counts as caught)",
                name="control/free_3_steps"),
        Claim("control", label, "free phase of 3 steps: premise (ulps of ‖s*‖)", with_control(premise, T1=3),
              le(PREMISE_ULPS), "3 steps from init_state reach no fixed point", control=True, case=case,
              name="control/premise_3_steps"),
    ]


FUSED_CHECK = "fused relaxation = generic loop, 30 steps, β = 0 and 0.3, each mode fused (ulps of max |s_l|)"
FUSED_WHY = f"{ROUNDOFF_WHY}; a contraction does not amplify it"


def generic_claims(label: str, case: str | None = None) -> list[Claim]:
    """Every claim that applies to any EP model (what ``eqbench check`` runs): the GDU theorem, closed form =
    autograd, energy descent, batch-permutation equivariance, device placement, and the generic controls."""
    return [
        *gdu_claims(label, case),
        Claim("step", label, "closed-form drive = autograd drive, β = 0.3 (ulps of max |u_l|)", closed_form_difference,
              le(ROUNDOFF_ULPS), ROUNDOFF_WHY, case=case, fmt="{:.3g}", name="closed_form"),
        Claim("step", label, FUSED_CHECK, fused_difference, le(ROUNDOFF_ULPS), FUSED_WHY, case=case, fmt="{:.3g}",
              name="fused"),
        Claim("energy", label, "async relaxation never increases the declared energy (max ΔE / tol)",
              with_control(energy_margin, mode="async"), le(1.0),
              "block-coordinate descent on E (eqbench.checks.energy); tol = 64·eps·max|E|", case=case,
              fmt="{:.2f}", name="energy"),
        Claim("properties", label, "free phase commutes with a batch permutation (ulps of max |s_l|)",
              batch_permutation, le(ROUNDOFF_ULPS), f"samples do not interact; {ROUNDOFF_WHY}", case=case,
              fmt="{:.3g}", name="batch_permutation"),
        Claim("properties", label, "EP step creates no tensor on the default device", device_clean, le(0.0),
              "every tensor follows its input's device (eqbench.checks.device)", case=case, fmt="{:.0f}",
              name="device"),
        *generic_controls(label, case),
    ]


def catalogue() -> list[Claim]:
    """Every claim of eqbench's own models, in the order ``make bench`` prints them."""
    out: list[Claim] = []
    for label in THEOREM_CASES:
        out += gdu_claims(label, tracked=True)
    for label in SIGN_CASES:
        out += [Claim("gdu", label, f"GDU sign error, live pairs (β={SIGN_BETA:g}, T2={CASES[label].T2})",
                      sign_error_live, le(SIGN_ERROR_LIVE_BOUND),
                      "chance is ½; measured 0.13–0.38 over seeds, a flipped estimator 1 − those (≥ 0.62)",
                      fmt="{:.3f}"),
                Claim("gdu", label, "GDU sign error, Laborieux (worst layer)", sign_error_laborieux, None,
                      "saturated units (zero on both sides) dilute it", fmt="{:.3f}"),
                Claim("control", label, f"estimator sign flipped: GDU sign error, live pairs (β={SIGN_BETA:g})",
                      lambda sub: sub.error("symmetric", SIGN_BETA, control=SignFlipped).sign_error_live,
                      le(SIGN_ERROR_LIVE_BOUND), "a flipped estimator scores 1 − the live sign error", control=True,
                      fmt="{:.3f}")]
    out += _dchn_claims()
    out += _holomorphic_claims()
    out += _control_claims()
    out += _energy_claims()
    out += _step_claims()
    out += _layout_claims()
    out += _flip_claims()
    return out


HOLO_WHY = ("Laborieux & Zenke 2022: the Cauchy estimate over N points on the circle |β| has bias O(|β|^N) (N = 1: "
            "one-sided, O(β)); every parameter judged on its asymptotic range, local orders within ±10 % of N")
CL_WHY = ("the clamped equilibrium is smooth in the clamp's displacement η·e, so CpL(η) = c₀ + c₁η + O(η²) and the "
          "ratio of successive differences at η, η/2, η/4 is 2 + O(η); ±10 %")
CCPL_WHY = ("with F(ν) = −∂θΦ(s^ν) = F₀ + F₁ν + F₂ν² + F₃ν³ + …, P-CpL(η) = F₁ + F₂η + O(η²) and the centred "
            "contrast cancels the even terms, C-CpL(η) = F₁ + F₃η² + O(η⁴): the ratio of their changes over [η₀, 2η₀] "
            "is 3|F₃|η₀/|F₂| = O(η₀) (≈ 0 on a piecewise-linear model, where F₃ = 0); 0.1 at η₀ ≤ 0.01 allows |F₃| "
            "up to 3|F₂|, a one-sided contrast gives 1")
CCPL_MEAN_WHY = ("[F(η) − F(0)]/η and [F(0) − F(−η)]/η average to [F(η) − F(−η)]/2η: the same phases, round-off "
                 f"({ROUNDOFF_WHY}); a sign or factor-2 slip is O(1)")
CL_GAP_WHY = ("contrastive learning descends E(s^clamped) − E(s*), not the loss: an O(1) angle to the gradient, while "
              "a gradient estimator's falls with β (C-EP's as β²); the bound is 100× C-EP's own angle on the model")


def rule_claims(label: str, case: str | None = None) -> list[Claim]:
    """The claims of Scellier et al. 2023's coupled-learning variants and of contrastive learning on one case (the
    EP variants' orders are `gdu_claims`): N-CpL first order, C-CpL second order, CL no gradient estimator, each with
    its control."""
    return [
        Claim("gdu", label, "N-CpL: first order in η, the same ratio", with_control(coupled_ratio, variant="negative"),
              band(1.8, 2.2), CL_WHY, case=case, fmt="{:.3f}", name="cpl/negative"),
        Claim("gdu", label, "C-CpL has no first-order term: ‖ΔCCpL‖/‖ΔPCpL‖ over [η₀, 2η₀]", centered_change,
              le(0.1), CCPL_WHY, case=case, fmt="{:.3g}", name="cpl/centered"),
        Claim("control", label, "P-CpL in place of C-CpL: the same ratio",
              with_control(centered_change, variant="positive"), le(0.1), "a one-sided contrast: the ratio is 1",
              control=True, case=case, fmt="{:.3g}", name="control/cpl_positive_as_centered"),
        Claim("gdu", label, "C-CpL = (P-CpL + N-CpL)/2 at η₀ (max |Δ| in ulps of max |C-CpL|)", centered_is_mean,
              le(ROUNDOFF_ULPS), CCPL_MEAN_WHY, case=case, fmt="{:.3g}", name="cpl/centered_mean"),
        *[Claim("gdu", label, f"{name} η=0.01: cos(update, BPTT gradient) (reported)", coupled_alignment(0.01, v),
                None, "no exact estimator: its alignment", case=case, fmt="{:.4f}")
          for name, v in (("N-CpL", "negative"), ("C-CpL", "centered"))],
        Claim("gdu", label, "CL: cos(update, BPTT gradient) (reported)",
              lambda sub: cosine(contrastive_update(sub), bptt_gradient(sub)), None,
              "contrastive learning's alignment (Scellier et al. 2023 measure it by training)", case=case,
              fmt="{:.4f}"),
        Claim("gdu", label, f"CL is no gradient estimator: sin∠(CL, g) / sin∠(C-EP β={SYMMETRIC_BETA:g}, g)",
              contrastive_gap, Bound(">", CL_GAP), CL_GAP_WHY, case=case, fmt="{:.3g}", name="cl/not_gradient"),
        Claim("control", label, f"C-EP at β={3 * SYMMETRIC_BETA:g} in place of CL: the same ratio",
              with_control(contrastive_gap, beta_control=3 * SYMMETRIC_BETA), Bound(">", CL_GAP),
              "a gradient estimator: its angle is ~9× C-EP's at β/3, far below the bound", control=True, case=case,
              fmt="{:.3g}", name="control/cl_gap_on_cep"),
    ]


def _dchn_claims() -> list[Claim]:
    """Scellier et al. 2023's DCHN: every generic claim (its GDU claims are the theorem cases'), and the claims of the
    comparative study's rules (P-CpL's first order, `rule_claims`)."""
    label = "DCHN"
    gdu = {c.name for c in gdu_claims(label, label)}
    return [
        *(c for c in generic_claims(label, label) if c.name not in gdu),
        Claim("gdu", label, "P-CpL: first order in η, ‖CpL(4η₀) − CpL(2η₀)‖/‖CpL(2η₀) − CpL(η₀)‖",
              coupled_first_order, band(1.8, 2.2), CL_WHY, case=label, fmt="{:.3f}"),
        *rule_claims(label, label),
    ]


def _holomorphic_claims() -> list[Claim]:
    """Holomorphic EP's orders and identities, and coupled learning's limit, on the holomorphic theorem cases."""
    out: list[Claim] = []
    for label in HOLOMORPHIC_CASES:
        for N in HOLOMORPHIC_POINTS:
            out.append(Claim("gdu", label, f"holomorphic EP N={N}: order of the update's error on its asymptotic "
                             "range, every parameter (float64)", holomorphic_slope(N),
                             band((1 - BAND) * N, (1 + BAND) * N), HOLO_WHY, fmt="{:.3f}",
                             key=f"gdu/{label}/holomorphic_slope_N{N}"))
        out += [Claim("gdu", label, f"holomorphic EP N={N}: update rel. error at β={HOLOMORPHIC_BETA:g} (reported)",
                      holomorphic_error(N), None, "C_N·β^N") for N in HOLOMORPHIC_POINTS]
        out += [
            Claim("gdu", label, "holomorphic EP N=2 = symmetric (max |Δ| in ulps of max |update|)",
                  holomorphic_n2_minus_symmetric, le(ROUNDOFF_ULPS),
                  f"the same two phases, the free-state terms cancel: round-off ({ROUNDOFF_WHY})", fmt="{:.3g}"),
            Claim("gdu", label, "holomorphic EP N=3, full circle: max |Im| in ulps of max |Re|", holomorphic_imaginary,
                  le(ROUNDOFF_ULPS), "conjugate points give conjugate terms (Φ has real coefficients): round-off",
                  fmt="{:.3g}"),
        ]
        out += [Claim("gdu", label, f"coupled learning η={eta:g}: cos(update, BPTT gradient) (reported)",
                      coupled_alignment(eta), None, "no exact estimator: its alignment per η", fmt="{:.4f}")
                for eta in CL_ETAS]
        out += [
            Claim("gdu", label, "coupled learning: cos(update, BPTT) as η → 0 (η = 0.01) > 0", coupled_alignment(0.01),
                  Bound(">", 0.0), "a descent direction on the theorem cases (an observation, not a theorem)",
                  fmt="{:.4f}"),
            Claim("gdu", label, "coupled learning: first order in η, ‖CpL(4η₀) − CpL(2η₀)‖/‖CpL(2η₀) − CpL(η₀)‖",
                  coupled_first_order, band(1.8, 2.2), CL_WHY, fmt="{:.3f}"),
            Claim("control", label, "coupled learning without the free-state term: the same ratio",
                  with_control(coupled_first_order, control=UncontrastedCL), band(1.8, 2.2),
                  "−∂θΦ(s^C)/η grows as 1/η: the ratio is ½", control=True, fmt="{:.3f}"),
            *rule_claims(label),
        ]
    ctl = "P_MLP, holomorphic EP with a step on Re u"
    out.append(Claim("control", ctl, "holomorphic EP N=3: order of the update's error on its asymptotic range, every "
                     "parameter", holomorphic_slope(3), band((1 - BAND) * 3, (1 + BAND) * 3), "σ(Re u) is no "
                     "holomorphic function: the complex phases see Re β_k only and the estimate tends to half the "
                     "gradient (order 0)", control=True, fmt="{:.3f}"))
    return out


def _control_claims() -> list[Claim]:
    def must_fail(label: str, variant: str, why: str, **kw: Any) -> Claim:
        return replace(order_claim(label, variant, kw.pop("case", None)), family="control", why=why, control=True,
                       **kw)

    out: list[Claim] = []
    for vf in ("VF_MLP", "VF_CNN"):
        out += [must_fail(f"{vf}, independent feedback", variant, "without symmetric weights the dynamics are no "
                          "gradient flow: no theorem, no order") for variant in CONTROLLED]
        out.append(order_claim(f"{vf}, tied feedback", "symmetric"))  # the positive twin: feedback = forward weights
    out += [
        must_fail("P_MLP, estimator sign flipped", "symmetric", "EP = −BPTT: an O(1) error",
                  measure=order("symmetric", control=SignFlipped), case="P_MLP"),
        Claim("control", "P_MLP, estimator sign flipped", f"‖EP − BPTT‖/‖BPTT‖ with EP = −BPTT at β={SYMMETRIC_BETA:g}",
              with_control(controlled_error, control=SignFlipped), band(1.9, 2.1),
              "‖−g − g‖/‖g‖ = 2 on the weights (the neurons' series is the state change, unflipped)",
              case="P_MLP"),
        must_fail("P_MLP, free phase of 3 steps", "symmetric", "no fixed point: no theorem (inconclusive counts as "
                  "caught)", measure=order("symmetric", T1=3), case="P_MLP"),
        Claim("control", "P_MLP, free phase of 3 steps", "premise (ulps of ‖s*‖)", with_control(premise, T1=3),
              le(PREMISE_ULPS), "3 steps from zero reach no fixed point", control=True, case="P_MLP"),
        Claim("control", "P_MLP, free phase of 3 steps", "GDU one-sided slope fitted over the whole ladder",
              with_control(ladder_fit, T1=3), Bound("<", 0.0),
              "the drift of a non-fixed point divided by β grows as β → 0", case="P_MLP", fmt="{:.3f}"),
    ]
    out += [
        must_fail("HOPFIELD, the authors' nudge", "symmetric", "the authors' nudge is ≈ 2× the gradient nudge: an "
                  "O(1) error"),
        Claim("control", "HOPFIELD, the authors' nudge", "one-sided rel. error at β=1e-4 (≈ 2/(1 − 2εβ) − 1)",
              with_control(controlled_error, variant="one_sided", beta=1e-4), band(0.995, 1.005),
              "s_y += 2εβ(y − s_y) is the gradient nudge with β' = 2β/(1 − 2εβ): 1.0001 at ε = 0.5, plus the O(β) "
              "bias ≈ 1.1β", fmt="{:.4f}"),
    ]
    nudge = "BIN_MLP bin_W, the authors' nudge after ρ"
    out += [must_fail(nudge, variant, "on a saturated output the nudge moves the unit by ~β while BPTT's gradient "
                      "through the clamp is 0: O(1), not O(β)") for variant in CONTROLLED]
    out += [Claim("control", nudge, f"|order the {variant.replace('_', '-')} error settles at| (it does not vanish)",
                  settled_order(variant), le(0.1), "an O(1) error has order 0", fmt="{:.3f}") for variant in CONTROLLED]
    seq = "SEQ_IMDB, retrieval with values unlike keys"
    out += [
        Claim("control", seq, "free phase converged (premise): residual in ulps of ‖s*‖", premise, le(PREMISE_ULPS),
              "the premise still holds: the failure is the asymmetric Jacobian"),
        must_fail(seq, "symmetric", "values V = XM ≠ keys X: the retrieval is no gradient, its Jacobian not "
                  "symmetric"),
        Claim("control", seq, "|order the symmetric error settles at|", settled_order("symmetric"), le(0.5),
              "an O(1) error has order ≈ 0", fmt="{:.3f}"),
    ]
    return out


def _energy_claims() -> list[Claim]:
    why = "block-coordinate descent on E (eqbench.checks.energy); tol = 64·eps·max|E|"
    HOPFIELD_ENERGY = "HOPFIELD diabetes 8-layer SW, ε = 0.5"  # noqa: N806
    out: list[Claim] = []
    for label, case in of_kind("energy").items():
        if case.mode != "async":
            continue
        energy = "½‖s‖² − Φ" if case.model == "BIN_MLP" else "(a/2)‖s‖² − Φ"
        out.append(Claim("energy", label, f"async relaxation never increases E = {energy} (max ΔE / tol)",
                         energy_margin, le(1.0), why, fmt="{:.2f}", key=f"energy/{label}/margin"))
        if case.model != "BIN_MLP":
            out.append(Claim("energy", label, "sync relaxation: steps with an E increase (reported)", sync_increases,
                             None, "the synchronous step is no block-coordinate step"))
    out += [
        Claim("energy", HOPFIELD_ENERGY, "free Euler phase never increases E (500 steps, paper init; max ΔE / tol)",
              with_control(energy_margin, mode="sync"), le(1.0),
              "projected gradient descent with ε below 2/λmax(I − W_ss) (Beck 2017, Lemma 10.4)", fmt="{:.2f}",
              key=f"energy/{HOPFIELD_ENERGY}/margin"),
        Claim("energy", HOPFIELD_ENERGY, "Euler step bound 2/λmax(I − W_ss) (reported; ε = 0.5 must stay below)",
              lambda sub: sub.model.euler_step_bound(), None, "the descent lemma's step limit", fmt="{:.3f}"),
        Claim("control", "HOPFIELD, ε = 1.5 × bound", "one Euler step: max ΔE / tol (E must increase)",
              _hopfield_overshoot, le(1.0), "δ²(−ε + ½ε²λ) > 0 for ε > 2/λ on the top eigenvector", control=True,
              case=HOPFIELD_ENERGY, fmt="{:.2e}"),
    ]
    wn = "BIN_MLP bin_W_N 784-8192-100, paper init"
    out.append(Claim("energy", wn, "free phase (T = 20): r_{t+1} ≤ ½·r_t while activities hold (max excess)",
                     _activity_excess, le(0.0), "the leaky step is affine with slope 1 − γ_n = ½ while activities "
                     "hold; clamp is 1-Lipschitz (the excess over round-off must be ≤ 0)"))
    for beta in (2.0, -2.0):
        out.append(Claim("energy", wn, f"nudged phase β = {beta:g}: rate q of the accumulators (reported)",
                         with_control(_activity_rate, beta=beta), None, "q = max(1 − γ_n, |1 − γ_n(1 + β)|)",
                         fmt="{:g}"))
    for label, a, why_ in (("P_MLP my_sigmoid, E with a=1", 1.0, "non-clip σ"),
                           ("P_MLP hard_sigmoid, E with a=2", 2.0, "wrong a")):
        out.append(Claim("control", label, f"async relaxation: max ΔE / tol (E must increase: {why_})",
                         with_control(energy_margin, a=a), le(1.0), "E is a Lyapunov function only for the clip "
                         "σ(u) = clip(u/a, 0, 1) with its own a", control=True, fmt="{:.2e}"))
    return out


def _hopfield_overshoot(sub: Subject) -> Measured:
    model = sub.case.build()[0]  # a fresh copy: euler_overshoot sets its biases and ε
    x = sub.built()[1]
    start, predicted = euler_overshoot(model, x[:1], 1.5)
    rep = en.energy_descent(model, x[:1], 1, mode="sync", start=start)
    return Measured(rep.max_increase / rep.tol, f"max ΔE {rep.max_increase:.2e} (predicted {predicted:.2e})")


def _activity(sub: Subject, beta: float = 0.0):
    model, x, y = sub.built()
    if beta == 0.0:
        return activity_convergence(model, x, sub.case.T1)
    free = relax(model, x, model.init_state(x), sub.case.T1)
    return activity_convergence(model, x, 10, beta=beta, y=y, start=free)


def _activity_excess(sub: Subject) -> Measured:
    rep = _activity(sub)
    return Measured(rep.max_excess - rep.tol, f"max excess {rep.max_excess:.1e} (tol {rep.tol:.0e}); last activity "
                                              f"change at step {rep.last_change}")


def _activity_rate(sub: Subject, beta: float) -> Measured:
    rep = _activity(sub, beta)
    return Measured(rep.rate, f"q = {rep.rate:g}; settled {rep.settled:.2f}")


def _step_claims() -> list[Claim]:
    HOPFIELD_STEP = "HOPFIELD diabetes 8-layer SW"  # noqa: N806
    why = f"two evaluations of the same gradient: {ROUNDOFF_WHY}"
    labels = {"P_MLP my_hard_sig": "P_MLP", "P_CNN my_hard_sig, max pool (step)": "P_CNN max pool"}
    out = [Claim("step", label, "closed-form step = autograd step (float64, ulps of max |u_l|)", closed_form_difference,
                 le(ROUNDOFF_ULPS), why, case=k, fmt="{:.3g}", key=f"step/{label}/max_diff_ulps")
           for k, label in labels.items()]
    out.append(Claim("step", "P_MLP", FUSED_CHECK, fused_difference, le(ROUNDOFF_ULPS), FUSED_WHY,
                     case="P_MLP my_hard_sig", fmt="{:.3g}"))
    out += [
        Claim("control", "P_MLP, closed form off by 1 + 1e-9", "closed-form step = autograd step (float64, ulps of "
              "max |u_l|)", closed_form_difference, le(ROUNDOFF_ULPS), "a slip of 1e-9 relative is 4.5e6 ulps",
              control=True, fmt="{:.3g}"),
        Claim("control", "P_MLP, fused relaxation without the nudge", FUSED_CHECK, fused_difference, le(ROUNDOFF_ULPS),
              "at β = 0.3 the nudge moves the output by O(β)", control=True, fmt="{:.3g}"),
        Claim("control", "P_MLP, a drive that reads another sample", "free phase commutes with a batch permutation "
              "(ulps of max |s_l|)", batch_permutation, le(ROUNDOFF_ULPS), "1e-9 of another sample's state: ~1e6 ulps",
              control=True, fmt="{:.3g}"),
    ]
    out.append(Claim("step", HOPFIELD_STEP, "fused Euler step = generic step, 100 steps (float64, ulps of max |s|)",
                     _fused_difference, le(ROUNDOFF_ULPS), why, case="hopfield", fmt="{:.3g}",
                     key=f"step/{HOPFIELD_STEP}/max_diff_ulps"))
    return out


LAYOUT_CHECK = ("NCHW = NHWC from the model's starting state: drive, free and nudged phases, float64 and float32 "
                "(ulps of max |s_l|)")
LAYOUT_WHY = ("max-pool ties within the convolution's round-off go to the window's first position in both layouts "
              f"(eqbench.models.pooling): {ROUNDOFF_WHY}")


def _layout_claims() -> list[Claim]:
    """The memory layout is a speed choice only: every conv model with max pooling, from its real start."""
    out = [Claim("properties", label, LAYOUT_CHECK, layout_difference, le(ROUNDOFF_ULPS), LAYOUT_WHY, fmt="{:.3g}")
           for label in LAYOUT_CASES]
    out.append(Claim("control", "BIN_CNN with plain max pooling", LAYOUT_CHECK, layout_difference, le(ROUNDOFF_ULPS),
                     "ties at the ½ start, broken by each layout's rounding: other positions, O(1) apart",
                     control=True, fmt="{:.3g}"))
    return out


def _fused_difference(sub: Subject) -> float:
    model, x = paper_hopfield()
    return fused_gap(model, x, None, 100, 0.0)


def _flip_claims() -> list[Claim]:
    """The flip optimizer (Laydevant et al.) on ½‖W − W*‖² with binary W* = α·signs: with γ = 1 and τ = 0 it is
    sign descent and lands on W* in one step; the reversed rule (negative control) must not."""
    def wrong(cls) -> Callable[[Subject], Measured]:
        def measure(sub: Subject) -> Measured:
            g = torch.Generator().manual_seed(0)
            target = 0.05 * torch.where(torch.rand(64, 32, generator=g) < 0.5, -1.0, 1.0)
            w = torch.nn.Parameter(0.05 * torch.where(torch.rand(64, 32, generator=g) < 0.5, -1.0, 1.0))
            opt = cls([{"params": [w], "binary": True, "gamma": 1.0, "threshold": 0.0}])
            for _ in range(3):
                w.grad = w.detach() - target
                opt.step()
            n = int((w.detach() != target).sum())
            return Measured(n, f"{n} of {w.numel()} weights wrong")
        return measure

    what = "γ = 1, τ = 0: weights wrong after 3 steps on ½‖W − W*‖² (binary W*)"
    return [Claim("optimizer", "FlipOptimizer", what, wrong(FlipOptimizer), le(0.0), "sign descent lands on W* in "
                  "one step", case="small"),
            Claim("control", "FlipOptimizer, sign reversed", what, wrong(ReversedFlipOptimizer), le(0.0),
                  "flipping when the filter agrees with the sign moves away from W*", control=True, case="small")]


@functools.cache
def claims() -> tuple[Claim, ...]:
    """The catalogue, built once per process."""
    return tuple(catalogue())


def select(*families: str) -> list[Claim]:
    """The catalogue's claims of ``families`` (all when none is given)."""
    return [c for c in claims() if not families or c.family in families]
