"""Learning rules: turn a batch into ``.grad`` on the parameters, so any ``torch.optim`` optimizer steps.

The package holds every rule: the energy-based ones in this module (EP with its estimators, BPTT, coupled and
contrastive learning), the forward-only ones in ``eqbench.rules.forward`` (PEPITA, BP, FA, DFA), and the names a
config or the command line uses, with the rules other packages register, in ``eqbench.rules.algorithms``.

EP (Laborieux et al. 2021, §A.4–A.5): a free phase of T1 steps from zeros to s*, then nudged
phases of T2 steps continuing from s*, and the estimator

    p.grad = −[∂Φ_{β2}/∂θ(s2) − ∂Φ_{β1}/∂θ(s1)] / (β2 − β1)          (batch mean, ≈ +∂L/∂θ)

* ``one_sided``:   (s1, β1, s2, β2) = (s*, 0, s^β, β)                     bias O(β)
* ``negative``:    (s^{−β}, −β, s*, 0)                                      bias O(β)
* ``random_sign``: one-sided with the sign of β drawn per batch             bias O(β), zero-mean first-order term
* ``symmetric``:   (s^{−β}, −β, s^β, β), no free-state term                 bias O(β²)
  (Scellier et al. 2023's names: ``positive`` = one_sided, ``negative``, ``centered`` = symmetric; the rules
  ``PEP``, ``NEP``, ``CEP`` are EP with that estimator)
* ``holomorphic``: N = ``points`` nudged phases at β_k = β·e^{2πik/N} (Laborieux & Zenke 2022), the Cauchy
  integral of the nudged ∂θΦ around the circle:

    p.grad = (1/N)·Σ_k −[∂θΦ_{β_k}(s^{β_k}) − ∂θΦ(s*)] / β_k                bias O(|β|^N)

  N = 1 is the one-sided estimator, N = 2 the symmetric one.

Persistent particles (Gammell et al. 2021, §C.4; ``persistent=True``): the free phase of a batch starts
from where the last free phase of the same batch ended (zeros the first time) instead of from zeros;
the trainer names batches by ``key`` (split and index over fixed batches), and the particles are part of
the rule's ``state_dict`` so a resumed run continues from them.

Coupled learning (Stern et al. 2021, `CoupledLearning`, rule ``CpL``; ``PCpL``, ``NCpL``, ``CCpL`` its positive,
negative and centred variants, Scellier et al. 2023): a clamped phase instead of a nudged one. Contrastive learning
(Movellan 1991, `ContrastiveLearning`, rule ``CL``): the output clamped at the target.

BPTT (§A.6): T1 − T2 free steps without graph, then T2 steps with graph, loss = batch mean of L,
backpropagated through the last T2 steps only (truncated, as the reference code does).
"""

from __future__ import annotations

import cmath
import copy
import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..autodiff import grads
from ..errors import ConfigError, unknown
from ..models.base import EnergyModel, State
from ..relaxation import MODES, Trace, relax

ESTIMATORS = ("one_sided", "negative", "random_sign", "symmetric", "holomorphic")
#: the literature's other names of an estimator: positively-perturbed and centered EP (Scellier et al. 2023) are the
#: one-sided and the symmetric one
ESTIMATOR_ALIASES = {"positive": "one_sided", "centered": "symmetric"}
#: the perturbation variants of Scellier et al. 2023 (EP and coupled learning): the two phases' signs
VARIANTS = ("positive", "negative", "centered")


Series = dict[str, Tensor]  # key (``s1``… for neurons, parameter names) -> (steps, ...) with the step index first


class LearningRule:
    """What the trainer and the checks ask of a rule (EP, BPTT, the forward-only rules of eqbench.forward, or
    a rule from another package), each optional capability with a default.

    ``compute_gradients`` and ``predict`` are required. A rule with per-step updates (``detailed_gradients``)
    can be compared step by step with BPTT by the GDU check (eqbench.checks.gdu), whatever its estimator.
    """

    #: whether the rule keeps per-batch particles (then the trainer names each fixed batch by ``key``)
    persistent: bool = False
    #: the relaxation a rule of an energy-based model runs (free steps T1, nudged steps T2, the step), which
    #: the GDU check reproduces for BPTT; rules that do not relax keep the defaults
    T1: int | None = None
    T2: int | None = None
    mode: str = "sync"
    closed_form: bool = True

    def compute_gradients(self, model, x: Tensor, y: Tensor, **kw) -> dict:
        """Write ``.grad`` (descent form) and return at least ``output`` (class scores) and ``loss`` (B,)."""
        raise NotImplementedError

    def predict(self, model, x: Tensor, **kw) -> tuple[Tensor, list[Tensor]]:
        """Class scores for evaluation, and the activations they came from."""
        raise NotImplementedError

    def detailed_gradients(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, beta: float,
                           T2: int) -> Series:
        """The rule's update split over the T2 steps of a nudged phase with signed β from ``free``: per neuron
        layer the state change over β, per parameter the step's term of the update (step 0 = the terms at the
        free state), so that the sum over steps is the rule's update. Rules without a per-step form raise."""
        raise ConfigError(f"{type(self).__name__} has no per-step updates (detailed_gradients) to compare with BPTT")

    def state_dict(self) -> dict:
        """What a resumed run needs to continue the rule (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict`."""

    def diagnostics(self, model, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-epoch values the trainer logs on the first test batch (none by default)."""
        return {}


def write_grads(model: EnergyModel, grads: dict[str, Tensor]) -> None:
    """Set ``p.grad`` (replacing any previous value) for every named parameter. The tensors are taken, not
    copied (a copy of a 784×512 gradient is ~7 % of a P_MLP EP step), except one given to two parameters
    (e.g. tied updates), which each get their own, so an in-place optimizer never updates both."""
    seen: set[int] = set()
    for name, p in model.named_parameters():
        g = grads.get(name)
        if g is not None:
            g = g.detach()
            if g.data_ptr() in seen:
                g = g.clone()
            seen.add(g.data_ptr())
        p.grad = g


def _check_steps(T1: int, T2: int, what: str) -> None:
    if T1 < 1 or T2 < 1:
        raise ConfigError(f"{what} needs T1 ≥ 1 and T2 ≥ 1 steps, got T1={T1}, T2={T2}")


@dataclass(kw_only=True)
class Relaxing(LearningRule):
    """What the rules of energy-based models share: a free phase of T1 steps (from zeros, or from a batch's
    persistent particle), the relaxation settings, evaluation with the free phase only (Laborieux §A.9)."""

    T1: int
    T2: int
    mode: str = "sync"
    closed_form: bool = True
    persistent: bool = False
    _particles: dict[str, State] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise unknown("relaxation mode", self.mode, MODES)
        _check_steps(self.T1, self.T2, type(self).__name__)

    def relax(self, model: EnergyModel, x: Tensor, s: State, steps: int, beta: complex = 0.0,
              y: Tensor | None = None, cache: dict | None = None, clamp: dict[int, Tensor] | None = None) -> State:
        return relax(model, x, s, steps, beta=beta, y=y, mode=self.mode, closed_form=self.closed_form, cache=cache,
                     clamp=clamp)

    def free_phase(self, model: EnergyModel, x: Tensor, key: str | None = None, cache: dict | None = None) -> State:
        """T1 free steps from zeros, or from batch ``key``'s particle (which is then updated)."""
        start = model.init_state(x)
        if self.persistent and key is not None:
            kept = self._particles.get(key)
            if kept is not None and [tuple(k.shape) for k in kept] == [tuple(s.shape) for s in start]:
                start = [k.to(s) for k, s in zip(kept, start)]
        free = self.relax(model, x, start, self.T1, cache=cache)
        if self.persistent and key is not None:
            self._particles[key] = [f.detach().clone() for f in free]
        return free

    def state_dict(self) -> dict:
        """The persistent particles (key → tensors)."""
        return {"particles": {k: list(v) for k, v in self._particles.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._particles = {k: list(v) for k, v in state["particles"].items()}

    def pair_grads(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, s1: State, beta1: complex,
                   s2: State, beta2: complex, denom: complex | None = None, weight: complex = 1.0) -> dict[str, Tensor]:
        """−weight·∂θ[Φ_{β2}(s2) − Φ_{β1}(s1)] / denom, denom = β2 − β1 unless given (GDU per-step terms).

        On a model with complex parameters (holomorphic EP) the real part: autograd of a real scalar with respect to
        a complex leaf θ = a + ib gives ∂/∂a + i∂/∂b, whose real part is the derivative along the real parameters."""
        denom = beta2 - beta1 if denom is None else denom
        names, params = zip(*model.named_parameters())
        with torch.enable_grad():
            obj = model.ep_objective(x, y, [t.detach() for t in free], [t.detach() for t in s1], beta1,
                                     [t.detach() for t in s2], beta2)
            # the factor −1/denom on the scalar: autograd carries it through the small state-sized tensors,
            # not as two more passes over every parameter-sized gradient (13 % of a P_MLP EP step)
            obj = obj * (-weight / denom)
            if obj.is_complex():
                obj = obj.real
        return {n: g.real if g.is_complex() else g for n, g in zip(names, grads(obj, params))}

    def predict(self, model: EnergyModel, x: Tensor, key: str | None = None) -> tuple[Tensor, State]:
        """Evaluation with the free phase only (Laborieux §A.9); with persistent particles the test
        batch's particle is used and updated, as Gammell's ``calculate_test_error`` does."""
        free = self.free_phase(model, model.check_input(x), key)
        with torch.no_grad():
            return model.output(free), free

    def update(self, model: EnergyModel, x: Tensor, y: Tensor, free: State,
               cache: dict | None = None) -> tuple[dict[str, Tensor], dict]:
        """The rule's update (descent form, per parameter name) for the batch from its free state, and what
        `compute_gradients` reports with it."""
        raise NotImplementedError

    def compute_gradients(self, model: EnergyModel, x: Tensor, y: Tensor, key: str | None = None) -> dict:
        """Free phase, the rule's second phase(s), then ``.grad`` on every parameter; returns the free state."""
        x = model.check_input(x)
        y = model.check_target(y, x.shape[0])
        cache: dict = {}  # the input's drive, computed once for every phase (same x, same weights)
        free = self.free_phase(model, x, key, cache)
        grads, info = self.update(model, x, y, free, cache)
        write_grads(model, grads)
        with torch.no_grad():
            return {"free": free, "output": model.output(free), "loss": model.loss(free, y), **info}


@dataclass(kw_only=True)
class EP(Relaxing):
    """Equilibrium propagation with a one-sided, random-sign, symmetric (centered) or holomorphic estimator.

    Holomorphic EP (``points`` N, Laborieux & Zenke 2022): the phases at β_k ∉ ℝ run on a complex copy of the model
    (complex128 for float64 parameters, complex64 otherwise) from the free state; those at ±β on the model itself.
    The estimate is real by construction: for real parameters and input the phase at the conjugate point is the
    conjugate of the phase at β_k (Φ has real coefficients), so the pair (k, N − k) is computed once and its real
    part doubled (the authors' ``to_2real_dict``); the suites check the imaginary part of the full circle is
    round-off. Deviations from the authors' code (models/cnn.py, models/mlp.py ``ep_gradN``): each term subtracts
    the free-state ∂θΦ(s*) — zero in exact arithmetic for N ≥ 2 (Σ_k 1/β_k = 0), it keeps every term O(1) rather
    than O(1/β), so round-off does not grow as β → 0, and makes N = 1 the one-sided estimator; a phase that
    diverges raises DivergenceError instead of being dropped (the authors' ``safe`` mask falls back to N = 2).
    ``continued=True`` is the authors' noisy/persistent variant (``noisy_ep_gradN``): phase k starts where phase
    k − 1 ended instead of at s*, all N phases on the complex copy.
    """

    beta: float
    estimator: str = "symmetric"
    seed: int = 0
    points: int = 2
    continued: bool = False
    _gen: torch.Generator = field(init=False, repr=False)
    _twins: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.estimator = ESTIMATOR_ALIASES.get(self.estimator, self.estimator)
        if self.estimator not in ESTIMATORS:
            raise unknown("estimator", self.estimator, [*ESTIMATORS, *ESTIMATOR_ALIASES])
        if not math.isfinite(self.beta) or self.beta == 0.0:
            raise ConfigError(f"the EP estimator divides by β; β must be finite and non-zero, got {self.beta}")
        if isinstance(self.points, bool) or not isinstance(self.points, int) or self.points < 1:
            raise ConfigError(f"holomorphic EP needs an integer number of points N ≥ 1, got {self.points!r}")
        super().__post_init__()
        self._gen = torch.Generator().manual_seed(self.seed)

    def state_dict(self) -> dict:
        """The persistent particles (key → tensors) and the sign generator's state."""
        return {**super().state_dict(), "gen": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._gen.set_state(state["gen"])

    def phases(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, cache: dict | None = None):
        """The (s1, β1, s2, β2) pair of a two-point estimator, nudged phases starting from ``free``."""
        if self.estimator == "symmetric":
            plus = self.relax(model, x, free, self.T2, self.beta, y, cache)
            minus = self.relax(model, x, free, self.T2, -self.beta, y, cache)
            return minus, -self.beta, plus, self.beta
        if self.estimator == "negative":
            return self.relax(model, x, free, self.T2, -self.beta, y, cache), -self.beta, free, 0.0
        beta = self.beta
        # the coin is drawn on its generator's device (the CPU), whatever the default device is
        if self.estimator == "random_sign" and bool(torch.randint(2, (1,), generator=self._gen,
                                                                  device=self._gen.device)):
            beta = -beta
        return free, 0.0, self.relax(model, x, free, self.T2, beta, y, cache), beta

    # ----------------------------------------------------------------------------- the update
    def update(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, cache: dict | None = None):
        """The estimator's update from the free state, and the β of a two-point estimator's second phase."""
        if self.estimator == "holomorphic":
            return model.postprocess_grads(self.circle_grads(model, x, y, free, cache)), {"beta": self.beta}
        s1, b1, s2, b2 = self.phases(model, x, y, free, cache)
        return model.postprocess_grads(self.pair_grads(model, x, y, free, s1, b1, s2, b2)), {"beta": b2 or b1}

    def circle(self) -> list[complex]:
        """The N points β_k = β·e^{2πik/N} of holomorphic EP, k = 0 … N − 1 (±β exactly real)."""
        N = self.points
        return [self.beta if k == 0 else -self.beta if 2 * k == N else self.beta * cmath.exp(2j * cmath.pi * k / N)
                for k in range(N)]

    def circle_grads(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, cache: dict | None = None,
                     full: bool = False, part: str = "real") -> dict[str, Tensor]:
        """(1/N)·Σ_k −[∂θΦ_{β_k}(s^{β_k}) − ∂θΦ(s*)]/β_k, real part (``part="imag"``: the imaginary part, which
        is round-off; ``full``: every point computed, no conjugate pairs)."""
        reason = model.why_not_holomorphic()
        if reason is not None:
            raise ConfigError(f"holomorphic EP cannot run on {model.name}: {reason}")
        N, points = self.points, self.circle()
        pairs = not (full or self.continued)
        ks = range(N // 2 + 1) if pairs else range(N)
        turn = 1.0 if part == "real" else -1j  # Re(−i·z) = Im(z)
        twin = xc = yc = None
        complex_cache: dict = {}
        total: dict[str, Tensor] = {}
        s_prev = free
        for k in ks:
            b = points[k]
            w = turn * (2.0 if pairs and 0 < 2 * k < N else 1.0) / N
            on_twin = isinstance(b, complex) or self.continued
            if on_twin and twin is None:
                twin = self._twin(model)
                cdtype = next(twin.parameters()).dtype
                xc = x.to(cdtype)
                yc = y if y.dtype == torch.long else y.to(cdtype)
                free_c = [f.to(cdtype) for f in free]
            m, xx, yy, ff = (twin, xc, yc, free_c) if on_twin else (model, x, y, free)
            start = [si.to(ff[0].dtype) for si in s_prev] if self.continued else ff
            sk = self.relax(m, xx, start, self.T2, b, yy, complex_cache if on_twin else cache)
            for name, g in self.pair_grads(m, xx, yy, ff, ff, 0.0, sk, b, denom=b, weight=w).items():
                total[name] = g if name not in total else total[name] + g
            s_prev = sk
        return total

    def _twin(self, model: EnergyModel) -> EnergyModel:
        """A complex copy of ``model`` (made once per model, dtype and device) holding its current parameters."""
        p0 = next(model.parameters())
        cdtype = torch.complex128 if p0.dtype == torch.float64 else torch.complex64
        key = (id(model), cdtype, p0.device)
        twin = self._twins.get(key)
        if twin is None:
            twin = copy.deepcopy(model)
            twin.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # torch's "complex modules are a new feature" warning
                warnings.simplefilter("ignore", UserWarning)
                twin.to(cdtype)
            self._twins = {key: twin}  # one model at a time: a rule trains one model
        with torch.no_grad():
            for pc, p in zip(twin.parameters(), model.parameters()):
                pc.copy_(p)
        return twin

    def detailed_gradients(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, beta: float,
                           T2: int) -> Series:
        """Per-step EP updates of a nudged phase with β (signed) from the free state (Ernoult et al. 2019):
        neurons Δs_k/β, parameters −∂θ[Φ_β(s_k) − Φ_β(s_{k−1})]/β (k = 0: the β-term at s*). They telescope
        to the one-sided estimator; the mean of the series at ±β is the symmetric one."""
        trace = Trace(keep_states=True)
        relax(model, x, free, T2, beta=beta, y=y, mode=self.mode, closed_form=self.closed_form, trace=trace)
        S = trace.states
        out: Series = {}
        for i in range(len(free)):
            out[f"s{i + 1}"] = torch.stack([(S[k][i] - S[k - 1][i]) / beta for k in range(1, T2 + 1)])
        steps = [self.pair_grads(model, x, y, free, free, 0.0, free, beta, denom=beta)]
        steps += [self.pair_grads(model, x, y, free, S[k - 1], beta, S[k], beta, denom=beta)
                  for k in range(1, T2 + 1)]
        steps = [model.postprocess_grads(g) for g in steps]
        for name, _ in model.named_parameters():
            out[name] = torch.stack([g[name] for g in steps])
        return out


@dataclass(kw_only=True)
class CoupledLearning(Relaxing):
    """Coupled learning (Stern, Hexner, Rocks, Liu 2021, Phys. Rev. X 11:021045): after the free phase, a clamped
    phase of T2 steps from s* in which the output layer is held at

        s_out^C = s_out* − η·∂L/∂s_out(s*)      (for the MSE cost: s_out* + η·(y − s_out*), Stern et al.'s clamp)

    and the other layers relax; the update is the contrast p.grad = −[∂θΦ(s^C) − ∂θΦ(s*)]/η (batch mean), EP's
    one-sided form with a clamp in place of the nudge. "Output" is the last state layer. A cost with parameters of its
    own (a softmax readout outside the dynamics) is refused: Φ does not contain them, so the contrast could never
    train them. It is no exact gradient estimator: the clamp fixes the output where EP's nudge pushes it,
    so the hidden layers respond to a displacement, not a force. The suites measure what holds: the update
    converges as η → 0 (first order) and its alignment with the BPTT gradient, per η
    (rain-neuromorphics/energy-based-learning implements it beside EP the same way).

    ``variant`` (Scellier et al. 2023): ``positive`` the clamps (0, +η) above, ``negative`` (−η, 0) — the output
    held at s_out* + η·∂L/∂s_out, contrasted with s* — and ``centered`` (−η, +η) over 2η, whose first-order term
    in η cancels. Deviation from the authors' ``ContrastiveLearning``: the phase at ν = 0 is the free state itself,
    where theirs relaxes once more from s* with the output held at s_out* (the same state at a fixed point).
    """

    eta: float = 0.5
    variant: str = "positive"
    _cost_checked: set = field(init=False, repr=False, default_factory=set)  # ids of models whose cost was checked

    def __post_init__(self) -> None:
        if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0 < self.eta <= 1:
            raise ConfigError(f"coupled learning's η must lie in (0, 1], got {self.eta!r}")
        if self.variant not in VARIANTS:
            raise unknown("coupled-learning variant", self.variant, VARIANTS)
        super().__post_init__()

    def clamped_output(self, model: EnergyModel, free: State, y: Tensor, nu: float | None = None) -> Tensor:
        """s_out* − ν·∂L/∂s_out at the free state (per sample: the batch sum's gradient), ν = η unless given."""
        with torch.enable_grad():
            top = free[-1].detach().requires_grad_(True)
            (g,) = grads(model.loss([*(f.detach() for f in free[:-1]), top], y).sum(), [top])
        return free[-1].detach() - (self.eta if nu is None else nu) * g

    def _check_cost(self, model: EnergyModel, free: State, y: Tensor) -> None:
        """Refuse a cost with parameters of its own (∂L/∂θ ≠ 0 at fixed states), once per model."""
        if id(model) in self._cost_checked:
            return
        with torch.enable_grad():
            names, params = zip(*model.named_parameters())
            cost = model.loss([f.detach() for f in free], y).sum()
            direct = torch.autograd.grad(cost, params, allow_unused=True) if cost.requires_grad else [None] * len(names)
        own = [n for n, g in zip(names, direct) if g is not None and bool(g.ne(0).any())]
        if own:
            raise ConfigError(f"coupled learning cannot train {model.name}: its cost has parameters of its own "
                              f"({', '.join(own)}, e.g. a softmax readout) that Φ does not contain")
        self._cost_checked.add(id(model))

    def clamped_phase(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, nu: float,
                      cache: dict | None = None) -> State:
        """T2 steps from s* with the output held at s_out* − ν·∂L/∂s_out (ν = 0: the free state itself)."""
        if nu == 0.0:
            return free
        clamp = {len(free) - 1: self.clamped_output(model, free, y, nu)}
        return self.relax(model, x, free, self.T2, y=y, cache=cache, clamp=clamp)

    def update(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, cache: dict | None = None):
        """−[∂θΦ(s^{ν2}) − ∂θΦ(s^{ν1})]/(ν2 − ν1) with (ν1, ν2) = (0, η), (−η, 0) or (−η, η) by ``variant``."""
        self._check_cost(model, free, y)
        nu1, nu2 = {"positive": (0.0, self.eta), "negative": (-self.eta, 0.0),
                    "centered": (-self.eta, self.eta)}[self.variant]
        s1 = self.clamped_phase(model, x, y, free, nu1, cache)
        s2 = self.clamped_phase(model, x, y, free, nu2, cache)
        return model.postprocess_grads(self.pair_grads(model, x, y, free, s1, 0.0, s2, 0.0, denom=nu2 - nu1)), {}


@dataclass(kw_only=True)
class ContrastiveLearning(CoupledLearning):
    """Contrastive learning (Movellan 1991; CL in Scellier et al. 2023): the second phase clamps the output at
    s_out* − ∂L/∂s_out, the target itself for the squared error, and the update is the contrast
    −[∂θΦ(s^clamped) − ∂θΦ(s*)] — coupled learning at η = 1, as the authors build it (``ContrastiveLearning`` with
    nudging 1.0, positive). No gradient estimator: it descends the contrastive objective E(s^clamped) − E(s*),
    which is not the loss; the claims measure its alignment with BPTT and assert that it does not match it."""

    eta: float = field(default=1.0, init=False)
    variant: str = field(default="positive", init=False)


@dataclass
class BPTT(LearningRule):
    """Backpropagation through the last T2 steps of a T1-step free phase (β = 0 throughout)."""

    T1: int
    T2: int
    mode: str = "sync"
    closed_form: bool = True

    def __post_init__(self) -> None:
        _check_steps(self.T1, self.T2, "BPTT")
        if self.T2 > self.T1:
            raise ConfigError(f"BPTT backpropagates through the last T2 of T1 steps; T2={self.T2} > T1={self.T1}")

    def compute_gradients(self, model: EnergyModel, x: Tensor, y: Tensor) -> dict:
        x = model.check_input(x)
        y = model.check_target(y, x.shape[0])
        s = relax(model, x, model.init_state(x), self.T1 - self.T2, mode=self.mode, closed_form=self.closed_form)
        s = relax(model, x, s, self.T2, mode=self.mode, closed_form=self.closed_form, graph=True)
        per_sample = model.loss(s, y)
        names, params = zip(*model.named_parameters())
        write_grads(model, dict(zip(names, grads(per_sample.mean(), params))))
        final = [t.detach() for t in s]
        with torch.no_grad():
            return {"free": final, "output": model.output(final), "loss": per_sample.detach()}

    def predict(self, model: EnergyModel, x: Tensor) -> tuple[Tensor, State]:
        x = model.check_input(x)
        s = relax(model, x, model.init_state(x), self.T1, mode=self.mode, closed_form=self.closed_form)
        with torch.no_grad():
            return model.output(s), s
