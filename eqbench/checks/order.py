"""Order verification on a β ladder, as numerical analysts verify the order of a scheme.

The GDU theorem predicts an error e(β) ≈ C·β^p between EP's updates and BPTT's gradients (p = 1 one-sided, 2
symmetric, N for holomorphic EP with N points; Ernoult et al. 2019, Laborieux et al. 2021, Laborieux & Zenke 2022)
**as β → 0**. A measured error follows that power law only on an *asymptotic range* that no single model fixes:

* above it, higher-order terms and, for piecewise-linear activations, units that cross a kink during the nudged
  phase (the error is not yet a power of β there);
* below it, the *noise floor*: EP divides differences of nearly equal states by β, so the states' round-off —
  or the residual drift of a free phase that has not reached its fixed point — gives an error ∝ 1/β.

So the order is not fitted over a fixed window (which calls a correct model broken when its range lies elsewhere)
but judged where the data say the error is asymptotic:

1. a ladder of β (default: two per decade from 1e-1 to 1e-6, float64) gives errors e_i and local orders
   p_i = ln(e_i / e_{i+1}) / ln(β_i / β_{i+1}) between neighbours;
2. the noise floor f_i is *measured*, not assumed: the same nudged phase run at a β far below round-off (β = u²)
   from the free state perturbed by ½–1 ulp per element (of eps·max|s_l|, random signs), times β/β_i —
   the error that the free state's round-off alone produces at β_i (`noise_floor`), and never less than the
   textbook floor of a difference quotient, u·‖A‖/β for differences of quantities of size ‖A‖ (`roundoff_floor`).
   It tracks the measured floors of eqbench's cases within a factor 0.3–4, including the models whose floor is far
   above u/β;
3. the asymptotic range is the lowest run (the one approached as β → 0) of local orders within ±10 % of p above
   the floor, spanning at least a decade;
4. the verdict: ``pass`` with the range and the order fitted over it; ``FAIL`` where the error demonstrably is not
   O(β^p) — its local orders settle over a decade at another order (an O(1) bias settles at 0), or it leaves the
   order below the range for a decade while far above its floor; ``inconclusive`` (with the reason) where the
   ladder cannot tell — the floor is reached before a decade of range, the orders still change at the ladder's
   end, or the premise (a fixed point) fails.

Points that diverged (a nudged phase with non-finite states) are reported and left out; the range is found among
the others. `judge` is the rule on plain numbers (tested on synthetic ladders); `eqbench.checks.gdu.gdu_ladder`
measures a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..autodiff import grads
from ..errors import ConfigError, DivergenceError
from ..relaxation import Trace, relax
from ..roundoff import eps

#: the default ladder: two points per decade from 1e-1 to 1e-6 (11 points; float64 reaches its floor near 1e-5
#: for the symmetric estimator of eqbench's cases, so the floor is inside the ladder and seen)
LADDER: tuple[float, ...] = tuple(10.0 ** (-k / 2) for k in range(2, 13))
#: local orders within ±10 % of p are "at the order": that separates p = 1 from p = 2 and both from the 0 of a
#: biased estimator, and the asymptotic ranges of eqbench's cases and the zoo sit at p ± 0.01
BAND = 0.1
#: a point whose error lies within this factor of its measured noise floor is explained by the floor. The floor
#: estimate matches the measured floors of eqbench's cases within a factor 0.3–4 (25 at the steepest transition);
#: √n growth of summation round-off over fan-ins up to 10⁴ gives at most another 100 — so 100 rather than 10:
#: a bias must stand 100× above round-off before it can make a verdict FAIL
FLOOR_FACTOR = 100.0
#: the span a range (or a settled order) must cover, in decades
DECADE = 1.0 - 1e-9


def unit_roundoff(dtype: torch.dtype) -> float:
    """u = eps/2 of a floating (or complex) dtype."""
    return eps(dtype) / 2


#: the largest unit round-off with which an order can be seen over a decade: the one-sided error C·β (C ~ 1) must
#: stay a decade above its floor ~u/β over a decade of β ≤ 0.1, i.e. β_lo = 1e-2 with β_lo² ≥ 10·u — so u ≤ 1e-5.
#: float32 (u = 6e-8) qualifies; float16 (4.9e-4) and bfloat16 (3.9e-3) do not.
MAX_ROUNDOFF = 1e-5


def check_precision(dtype: torch.dtype, what: str = "the GDU order check") -> None:
    """Refuse, in one line, a dtype too coarse for any asymptotic range."""
    u = unit_roundoff(dtype)
    if u > MAX_ROUNDOFF:
        name = str(dtype).replace("torch.", "")
        raise ConfigError(f"{what} cannot run in {name}: its unit round-off u = {u:.1e} leaves no decade of β ≤ 0.1 "
                          f"where the error stands above its noise floor (~u/β); use float32 or float64")


def ladder(betas: Sequence[float] | None = None) -> list[float]:
    """The β ladder, largest first; ``None`` is `LADDER`. A β ≤ 0 or not finite, fewer than three distinct values,
    or a span under a decade is a one-line ConfigError (the range needs a decade)."""
    if betas is None:
        return list(LADDER)
    try:
        values = [float(b) for b in betas]
    except (TypeError, ValueError):
        raise ConfigError(f"a β ladder is a list of numbers, got {list(betas)!r}") from None
    bad = [b for b in values if not (math.isfinite(b) and b > 0)]
    if bad:
        raise ConfigError(f"every β of the ladder must be positive and finite (the sign is the estimator's), got "
                          f"{bad[0]!r}")
    values = sorted(set(values), reverse=True)
    if len(values) < 3 or math.log10(values[0] / values[-1]) < DECADE:
        raise ConfigError(f"a β ladder needs at least 3 distinct values spanning a decade or more (the asymptotic "
                          f"range must cover a decade), got {len(values)} over "
                          f"{math.log10(values[0] / values[-1]):.2g} decades")
    return values


# ---------------------------------------------------------------------------------------------- the rule
@dataclass
class OrderFit:
    """The judgement of one error series e(β) against the order p."""

    order: float
    betas: list[float]
    errors: list[float]  # nan where the nudged phase diverged
    floors: list[float]
    slopes: list[float]  # local orders between neighbouring valid points (nan across an invalid one)
    verdict: str  # pass, FAIL, inconclusive
    reason: str = ""
    range: tuple[float, float] | None = None  # (β_hi, β_lo) of the asymptotic range
    slope: float = math.nan  # the order fitted over the range (pass) or where it settled elsewhere (FAIL)

    @property
    def band(self) -> tuple[float, float]:
        return (self.order * (1 - BAND), self.order * (1 + BAND))

    def to_dict(self) -> dict:
        return {"order": self.order, "verdict": self.verdict, "reason": self.reason,
                "range": None if self.range is None else list(self.range), "slope": _num(self.slope),
                "betas": self.betas, "errors": [_num(e) for e in self.errors],
                "floors": [_num(f) for f in self.floors], "local_slopes": [_num(s) for s in self.slopes]}


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _span(b_hi: float, b_lo: float) -> float:
    return math.log10(b_hi / b_lo)


def fit_slope(betas: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of ln e against ln β (over every point given: no range is looked for)."""
    pts = [(b, e) for b, e in zip(betas, errors) if b > 0 and e > 0 and math.isfinite(e)]
    lb = [math.log(b) for b, _ in pts]
    le = [math.log(e) for _, e in pts]
    if len(pts) < 2:
        return math.nan
    mb, me = sum(lb) / len(lb), sum(le) / len(le)
    den = sum((b - mb) ** 2 for b in lb)
    return sum((b - mb) * (e - me) for b, e in zip(lb, le)) / den if den > 0 else math.nan


def fmt_order(p: float, digits: int = 3) -> str:
    """An order as text, without the "-0.000" of a tiny negative one."""
    return f"{round(p, digits) + 0.0:.{digits}f}"


def _fmt(b: float) -> str:
    return f"{b:.1e}"


def judge(betas: Sequence[float], errors: Sequence[float], floors: Sequence[float], order: float) -> OrderFit:
    """Judge the error series ``errors`` (one per β of ``betas``, largest β first) against O(β^order), given the
    noise floor measured at each β. Pure arithmetic: see the module docstring for the rule."""
    betas, errors, floors = [float(b) for b in betas], [float(e) for e in errors], [float(f) for f in floors]
    lo, hi = order * (1 - BAND), order * (1 + BAND)
    valid = [i for i, e in enumerate(errors) if math.isfinite(e) and e >= 0]
    slopes = [math.nan] * (len(betas) - 1)
    fit = OrderFit(order, betas, errors, floors, slopes, "inconclusive")
    if len(valid) < 2:
        fit.reason = "fewer than two β gave a finite error (the nudged phases diverged)"
        return fit
    if all(errors[i] == 0 for i in valid):
        fit.verdict, fit.reason, fit.slope = "pass", "exact: EP equals BPTT to the bit at every β", order
        fit.range = (betas[valid[0]], betas[valid[-1]])
        return fit
    # a point is explained by the floor when its error is within FLOOR_FACTOR of it (an exact zero always is)
    floored = {i: errors[i] == 0 or errors[i] <= FLOOR_FACTOR * floors[i] for i in valid}
    pairs = []  # (i, j) neighbouring valid points with a local order
    for i, j in zip(valid, valid[1:]):
        if errors[i] > 0 and errors[j] > 0:
            slopes[i] = s = math.log(errors[i] / errors[j]) / math.log(betas[i] / betas[j])
            pairs.append((i, j, s))
    # runs of consecutive local orders in the band, both ends above the floor (e > f)
    runs: list[list[tuple[int, int, float]]] = []
    for i, j, s in pairs:
        ok = lo <= s <= hi and errors[i] > floors[i] and errors[j] > floors[j]
        if ok and runs and runs[-1][-1][1] == i:
            runs[-1].append((i, j, s))
        elif ok:
            runs.append([(i, j, s)])
    ranges = [r for r in runs if _span(betas[r[0][0]], betas[r[-1][1]]) >= DECADE]
    resolved = [i for i in valid if not floored[i]]
    if ranges:
        run = ranges[-1]  # the lowest: the range the error approaches as β → 0
        first, last = run[0][0], run[-1][1]
        fit.range = (betas[first], betas[last])
        idx = [first] + [j for _, j, _ in run]
        fit.slope = fit_slope([betas[i] for i in idx], [errors[i] for i in idx])
        tail = [i for i in resolved if i > last]
        if not tail or _span(betas[last], betas[tail[-1]]) < DECADE:
            fit.verdict = "pass"
            fit.reason = f"O(β^{order:g}) on [{_fmt(fit.range[1])}, {_fmt(fit.range[0])}]"
            return fit
        # below the range the error leaves the order for a decade or more while far above its floor
        pts = [last] + tail
        q = fit_slope([betas[i] for i in pts], [errors[i] for i in pts])
        if q < lo:
            fit.verdict, fit.slope = "FAIL", q
            fit.reason = (f"below β = {_fmt(betas[last])} the error leaves O(β^{order:g}) (order {fmt_order(q, 2)} "
                          f"down to β = {_fmt(betas[tail[-1]])}) while {_times(errors[tail[-1]], floors[tail[-1]])} "
                          "above its noise floor: a bias that does not vanish as β → 0")
            return fit
        fit.range, fit.slope = None, math.nan  # it falls faster: that run was no asymptotic range; judge what follows
    # no asymptotic range
    if not resolved or _span(betas[resolved[0]], betas[resolved[-1]]) < DECADE:
        at = next((betas[i] for i in valid if floored[i]), None)
        where = f"at β = {_fmt(at)}" if at is not None else "within the ladder"
        fit.reason = (f"the noise floor is reached {where} before a decade of O(β^{order:g}) "
                      f"(local orders {_orders(pairs)})")
        return fit
    # the last decade of resolved points: where the error is headed as β → 0
    start = max(i for i in resolved if _span(betas[i], betas[resolved[-1]]) >= DECADE)
    bottom = [i for i in resolved if i >= start]
    q = fit_slope([betas[i] for i in bottom], [errors[i] for i in bottom])
    local = [s for i, j, s in pairs if i in bottom and j in bottom]
    settled = bool(local) and max(local) - min(local) <= BAND * max(order, 1.0)  # agree within the band's half-width
    fit.slope = q
    if settled and not lo <= q <= hi:
        fit.verdict = "FAIL"
        least = min(bottom, key=lambda i: errors[i] / floors[i] if floors[i] > 0 else math.inf)
        fit.reason = (f"the error is O(β^{fmt_order(q, 2)}), not O(β^{order:g}), over [{_fmt(betas[bottom[-1]])}, "
                      f"{_fmt(betas[bottom[0]])}], ≥ {_times(errors[least], floors[least])} above its noise floor")
        return fit
    floor_at = next((betas[i] for i in valid if i > resolved[-1] and floored[i]), None)
    if floor_at is not None:
        fit.reason = (f"the noise floor is reached at β = {_fmt(floor_at)} before a decade of O(β^{order:g}) "
                      f"(local orders {_orders(pairs)})")
    else:
        fit.reason = (f"not yet asymptotic at β = {_fmt(betas[resolved[-1]])}, the ladder's end: local orders "
                      f"{_orders(pairs)} still change (extend the ladder to smaller β)")
    return fit


def _times(error: float, floor: float) -> str:
    return f"{error / floor:.0e}×" if floor > 0 else "infinitely"


def _orders(pairs: list[tuple[int, int, float]]) -> str:
    return " ".join(f"{s:.2f}" for _, _, s in pairs) or "none"


# ---------------------------------------------------------------------------------------------- measuring
def noise_floor(model, x: Tensor, y: Tensor, free: list[Tensor], rule, T2: int, seed: int = 0) -> dict[str, Tensor]:
    """The un-normalised per-step series (update × β) of a nudged phase at β = u², far below round-off, from the free
    state with ½–1 ulp of round-off per element (of eps·max|s_l|, random signs): what round-off — or the drift of a
    free state that is no fixed point — alone contributes. Divided by β it is the noise floor at β."""
    u = unit_roundoff(free[0].dtype)
    g = torch.Generator().manual_seed(seed)
    start = []
    for s in free:
        # ½ to 1 ulp of the layer's largest entry (eps·max|s| = 2u·max|s|), a random sign and size per element:
        # equal sizes would cancel exactly in a batch mean of symmetric samples and read as a zero floor
        r = torch.rand(s.shape, generator=g, dtype=torch.float64) * 2 - 1
        r = torch.where(r < 0, r - 1, r + 1) / 2  # ±[½, 1]
        start.append(s + (2 * u * s.abs().amax()) * r.to(device=s.device, dtype=s.real.dtype))
    tiny = u * u
    series = rule.detailed_gradients(model, x, y, start, tiny, T2)
    return {k: v * tiny for k, v in series.items()}


def roundoff_floor(model, x: Tensor, free: list[Tensor], T2: int) -> dict[str, float]:
    """The textbook floor of a difference quotient, un-normalised (× β): EP divides differences of quantities of size
    ‖A‖ — the states ‖s*_l‖ for the neuron series, ∂θΦ(s*) for the parameters' — each known to relative u, so each
    step's term errs by ≥ u·‖A‖ and a series of n steps by u·‖A‖·√n. `noise_floor` measures how the dynamics amplify
    round-off; this bound holds where they do not carry it (a perturbation that cancels exactly, a layer the
    perturbed state does not reach)."""
    u = unit_roundoff(free[0].dtype)
    out = {f"s{i + 1}": u * float(s.detach().abs().norm()) * math.sqrt(T2) for i, s in enumerate(free)}
    names, params = zip(*model.named_parameters()) if list(model.parameters()) else ((), ())
    with torch.enable_grad():
        g = grads(model.phi(x, [s.detach() for s in free]).real.mean(), list(params))
    out.update({n: u * float(t.detach().abs().norm()) * math.sqrt(T2 + 1) for n, t in zip(names, g)})
    return out


def _regimes(model, x: Tensor, s: list[Tensor], beta: float, y: Tensor | None, closed_form: bool) -> list[Tensor]:
    """Per unit, the slope of the step proper ∂update/∂u at state s: which linear piece a piecewise-linear unit is
    on (elementwise updates; others give a mixed sum that no kink count reads)."""
    with torch.no_grad():
        u = model.drive(x, s, beta, y, closed_form=closed_form)
    with torch.enable_grad():
        leaves = [ui.detach().requires_grad_(True) for ui in u]
        out = model.update(s, leaves, x) if model.step_uses_input else model.update(s, leaves)
        total = sum(o.real.sum() for o in out)
        got = torch.autograd.grad(total, leaves, allow_unused=True)
    return [torch.zeros_like(l) if g is None else g.detach() for l, g in zip(leaves, got)]


def piecewise_linear(act) -> bool:
    """Whether an activation is piecewise linear: its slope takes a handful of values over u ∈ [−10, 10] (a clip,
    ReLU, hard sigmoid), where a smooth one takes thousands."""
    try:
        with torch.enable_grad():
            u = torch.linspace(-10.0, 10.0, 4001, dtype=torch.float64, requires_grad=True)
            (d,) = torch.autograd.grad(act(u).sum(), u)
    except Exception:  # noqa: BLE001  (an activation that is no elementwise torch function: not judged)
        return False
    return int(torch.unique(d).numel()) <= 8


def kink_crossings(model, x: Tensor, y: Tensor, free: list[Tensor], beta: float, T2: int, closed_form: bool,
                   layers: list[int], ref: list[Tensor]) -> int:
    """Units of the piecewise-linear ``layers`` whose linear piece, at some step of the nudged phase at ``beta``,
    differs from ``ref``, the one at the free state (they crossed a kink, where the error is no power of β)."""
    trace = Trace(keep_states=True)
    relax(model, x, free, T2, beta=beta, y=y, closed_form=closed_form, trace=trace)
    moved = [torch.zeros_like(ref[i], dtype=torch.bool) for i in layers]
    for s in trace.states[1:]:
        now = _regimes(model, x, s, beta, y, closed_form)
        for k, i in enumerate(layers):
            moved[k] |= now[i] != ref[i]
    return int(sum(int(m.sum()) for m in moved))


@dataclass
class GDULadder:
    """EP against BPTT over a β ladder: per key (neuron layer or parameter) and estimator, the absolute error, the
    noise floor and the order's judgement; the kink diagnostic; the nudged phases that diverged."""

    betas: list[float]
    kinds: dict[str, str]  # key → "neurons" | "weights"
    bptt_norm: dict[str, float]
    errors: dict[str, dict[str, list[float]]]  # variant → key → ‖EP − BPTT‖ per β (nan: diverged)
    floors: dict[str, list[float]]  # key → noise floor per β (absolute)
    fits: dict[str, dict[str, OrderFit]] = field(default_factory=dict)
    diverged: list[float] = field(default_factory=list)
    #: units that cross a kink at each β (both signs), None when no layer is piecewise linear
    kinks: list[int] | None = None
    free_residual: float = math.nan
    premise_tol: float = math.nan

    ORDERS = {"one_sided": 1.0, "negative": 1.0, "symmetric": 2.0}

    def __post_init__(self) -> None:
        for variant, per_key in self.errors.items():
            self.fits[variant] = {k: judge(self.betas, errs, self.floors[k], self.ORDERS[variant])
                                  for k, errs in per_key.items()}

    def relative(self, variant: str, key: str) -> list[float]:
        n = self.bptt_norm[key]
        return [e / n if n > 0 else (0.0 if e == 0 else math.inf) for e in self.errors[variant][key]]

    def worst(self, variant: str) -> list[float]:
        """The worst key's relative error at each β (what a single-curve plot shows)."""
        rel = [self.relative(variant, k) for k in self.errors[variant]]
        return [max((r[i] for r in rel if math.isfinite(r[i])), default=math.nan) for i in range(len(self.betas))]

    @property
    def kink_beta(self) -> float | None:
        """The largest β of the ladder at and below which no unit crosses a kink (None: no piecewise-linear layer,
        or a unit crosses even at the smallest β)."""
        if self.kinks is None:
            return None
        out = None
        for b, n in reversed(list(zip(self.betas, self.kinks))):
            if n:
                break
            out = b
        return out

    def verdict(self, variant: str) -> OrderVerdict:
        """The estimator's verdict over every key (`aggregate`); inconclusive verdicts name a failed premise."""
        premise = None
        if not self.free_residual <= self.premise_tol:
            premise = (f"premise: no fixed point (free residual {self.free_residual:.1e} > round-off "
                       f"{self.premise_tol:.1e})")
        return aggregate(self.fits[variant], self.ORDERS[variant], self.bptt_norm, variant, premise)

    def to_dict(self) -> dict:
        return {"betas": self.betas, "diverged": self.diverged, "kinks": self.kinks, "kink_beta": self.kink_beta,
                "free_residual": self.free_residual,
                "layers": {k: {"kind": self.kinds[k], "bptt_norm": self.bptt_norm[k],
                               "floor": [_num(f) for f in self.floors[k]],
                               **{v: {"rel_error": [_num(e) for e in self.relative(v, k)],
                                      **self.fits[v][k].to_dict()} for v in self.errors}}
                           for k in self.kinds},
                "verdicts": {v: self.verdict(v).to_dict() for v in self.errors}}


@dataclass
class OrderVerdict:
    """An estimator's verdict over all keys, with the key that decided it."""

    variant: str
    order: float
    verdict: str
    key: str
    fit: OrderFit | None
    reason: str
    n_keys: int

    @property
    def slope(self) -> float:
        return math.nan if self.fit is None else self.fit.slope

    @property
    def range(self) -> tuple[float, float] | None:
        return None if self.fit is None else self.fit.range

    def text(self) -> str:
        """How a table shows it: the order over the range, the range and the deciding key."""
        if self.fit is None or not math.isfinite(self.slope):
            return "—"
        where = "" if self.fit.range is None else f" on [{_fmt(self.fit.range[1])}, {_fmt(self.fit.range[0])}]"
        return f"{fmt_order(self.slope)}{where} (worst {self.key}, {self.n_keys} keys)"

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "order": self.order, "slope": _num(self.slope), "key": self.key,
                "range": None if self.range is None else list(self.range), "reason": self.reason}


def aggregate(fits: dict[str, OrderFit], order: float, signal: dict[str, float], variant: str,
              premise: str | None = None) -> OrderVerdict:
    """One verdict over every key: FAIL if a key fails, inconclusive if a key cannot be judged (a key without signal —
    its BPTT series exactly zero — that is inconclusive is not judged), else pass. The key shown is the failing one,
    else the one whose order lies farthest from p; ``premise`` (a failed premise) is named in an inconclusive reason."""
    fits = {k: f for k, f in fits.items() if not (signal[k] == 0 and f.verdict == "inconclusive")}
    failed = {k: f for k, f in fits.items() if f.verdict == "FAIL"}
    unknown = {k: f for k, f in fits.items() if f.verdict == "inconclusive"}
    if failed:
        key = max(failed, key=lambda k: abs(failed[k].slope - order) if math.isfinite(failed[k].slope) else math.inf)
        verdict = "FAIL"
    elif unknown:
        key, verdict = next(iter(unknown)), "inconclusive"
    elif fits:
        key, verdict = max(fits, key=lambda k: abs(fits[k].slope - order)), "pass"
    else:
        return OrderVerdict(variant, order, "inconclusive", "", None, "no key carries a signal", 0)
    reason = fits[key].reason
    if verdict == "inconclusive":
        if len(unknown) > 1:
            reason += f" (and {len(unknown) - 1} other key(s))"
        if premise:
            reason = f"{premise}; {reason}"
    return OrderVerdict(variant, order, verdict, key, fits[key], reason, len(fits))


def kink_counts(run, rule, betas: list[float], diverged: list[float]) -> list[int] | None:
    """Units crossing a kink in the nudged phases at ±β, per β (−1 where a phase diverged); None when no layer's
    activation is piecewise linear."""
    layers = [i for i, act in enumerate(run.model.activations()) if piecewise_linear(act)]
    if not layers:
        return None
    ref = _regimes(run.model, run.x, run.free, 0.0, None, rule.closed_form)  # the free state's pieces, once
    counts = []
    for b in betas:
        if b in diverged:
            counts.append(-1)
            continue
        try:
            counts.append(sum(kink_crossings(run.model, run.x, run.y, run.free, sb, run.T2, rule.closed_form, layers,
                                             ref) for sb in (b, -b)))
        except DivergenceError:
            counts.append(-1)
    return counts
