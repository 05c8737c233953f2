"""Learning rules: turn a batch into ``.grad`` on the parameters, so any ``torch.optim`` optimizer steps.

EP (Laborieux et al. 2021, §A.4–A.5): a free phase of T1 steps from zeros to s*, then nudged
phases of T2 steps continuing from s*, and the estimator

    p.grad = −[∂Φ_{β2}/∂θ(s2) − ∂Φ_{β1}/∂θ(s1)] / (β2 − β1)          (batch mean, ≈ +∂L/∂θ)

* ``one_sided``:   (s1, β1, s2, β2) = (s*, 0, s^β, β)                     bias O(β)
* ``random_sign``: one-sided with the sign of β drawn per batch             bias O(β), zero-mean first-order term
* ``symmetric``:   (s^{−β}, −β, s^β, β), no free-state term                 bias O(β²)

Persistent particles (Gammell et al. 2021, §C.4; ``persistent=True``): the free phase of a batch starts
from where the last free phase of the same batch ended (zeros the first time) instead of from zeros;
the trainer names batches by ``key`` (split and index over fixed batches), and the particles are part of
the rule's ``state_dict`` so a resumed run continues from them.

BPTT (§A.6): T1 − T2 free steps without graph, then T2 steps with graph, loss = batch mean of L,
backpropagated through the last T2 steps only (truncated, as the reference code does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .autodiff import grads
from .errors import ConfigError, unknown
from .models.base import EnergyModel, State
from .relaxation import MODES, Trace, relax

ESTIMATORS = ("one_sided", "random_sign", "symmetric")


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


@dataclass
class EP(LearningRule):
    """Equilibrium propagation with a one-sided, random-sign or symmetric estimator."""

    beta: float
    T1: int
    T2: int
    estimator: str = "symmetric"
    mode: str = "sync"
    closed_form: bool = True
    seed: int = 0
    persistent: bool = False
    _gen: torch.Generator = field(init=False, repr=False)
    _particles: dict[str, State] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise unknown("estimator", self.estimator, ESTIMATORS)
        if not math.isfinite(self.beta) or self.beta == 0.0:
            raise ConfigError(f"the EP estimator divides by β; β must be finite and non-zero, got {self.beta}")
        if self.mode not in MODES:
            raise unknown("relaxation mode", self.mode, MODES)
        _check_steps(self.T1, self.T2, "EP")
        self._gen = torch.Generator().manual_seed(self.seed)

    # ----------------------------------------------------------------------------- phases
    def relax(self, model: EnergyModel, x: Tensor, s: State, steps: int, beta: float = 0.0,
              y: Tensor | None = None, cache: dict | None = None) -> State:
        return relax(model, x, s, steps, beta=beta, y=y, mode=self.mode, closed_form=self.closed_form, cache=cache)

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
        """The persistent particles (key → tensors) and the sign generator's state."""
        return {"particles": {k: list(v) for k, v in self._particles.items()}, "gen": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._particles = {k: list(v) for k, v in state["particles"].items()}
        self._gen.set_state(state["gen"])

    def phases(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, cache: dict | None = None):
        """The (s1, β1, s2, β2) pair of the estimator, nudged phases starting from ``free``."""
        if self.estimator == "symmetric":
            plus = self.relax(model, x, free, self.T2, self.beta, y, cache)
            minus = self.relax(model, x, free, self.T2, -self.beta, y, cache)
            return minus, -self.beta, plus, self.beta
        beta = self.beta
        # the coin is drawn on its generator's device (the CPU), whatever the default device is
        if self.estimator == "random_sign" and bool(torch.randint(2, (1,), generator=self._gen,
                                                                  device=self._gen.device)):
            beta = -beta
        return free, 0.0, self.relax(model, x, free, self.T2, beta, y, cache), beta

    # ----------------------------------------------------------------------------- the update
    def pair_grads(self, model: EnergyModel, x: Tensor, y: Tensor, free: State, s1: State, beta1: float,
                   s2: State, beta2: float, denom: float | None = None) -> dict[str, Tensor]:
        """−∂θ[Φ_{β2}(s2) − Φ_{β1}(s1)] / denom, denom = β2 − β1 unless given (GDU per-step terms)."""
        denom = beta2 - beta1 if denom is None else denom
        names, params = zip(*model.named_parameters())
        with torch.enable_grad():
            obj = model.ep_objective(x, y, [t.detach() for t in free], [t.detach() for t in s1], beta1,
                                     [t.detach() for t in s2], beta2)
            # the factor −1/denom on the scalar: autograd carries it through the small state-sized tensors,
            # not as two more passes over every parameter-sized gradient (13 % of a P_MLP EP step)
            obj = obj * (-1.0 / denom)
        return dict(zip(names, grads(obj, params)))

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

    def compute_gradients(self, model: EnergyModel, x: Tensor, y: Tensor, key: str | None = None) -> dict:
        """Free phase, nudged phase(s), then ``.grad`` on every parameter; returns the free state."""
        x = model.check_input(x)
        y = model.check_target(y, x.shape[0])
        cache: dict = {}  # the input's drive, computed once for the three phases (same x, same weights)
        free = self.free_phase(model, x, key, cache)
        s1, b1, s2, b2 = self.phases(model, x, y, free, cache)
        grads = model.postprocess_grads(self.pair_grads(model, x, y, free, s1, b1, s2, b2))
        write_grads(model, grads)
        with torch.no_grad():
            return {"free": free, "beta": b2, "output": model.output(free), "loss": model.loss(free, y)}

    def predict(self, model: EnergyModel, x: Tensor, key: str | None = None) -> tuple[Tensor, State]:
        """Evaluation with the free phase only (Laborieux §A.9); with persistent particles the test
        batch's particle is used and updated, as Gammell's ``calculate_test_error`` does."""
        free = self.free_phase(model, model.check_input(x), key)
        with torch.no_grad():
            return model.output(free), free


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


RULES = {"EP": EP, "BPTT": BPTT}


def all_rules() -> dict[str, type]:
    """EP and BPTT, plus the forward-only rules (PEPITA, BP, FA, DFA) of eqbench.forward."""
    from .forward import RULES_FORWARD  # imported here: eqbench.forward builds on this module
    from .plugins import entry_points_of

    return {**RULES, **RULES_FORWARD, **entry_points_of("eqbench.rules", RULES)}


def build_rule(name: str, **kw) -> LearningRule:
    """A registered rule by name (eqbench's, or one another package registers under ``eqbench.rules``)."""
    rules = all_rules()
    if name not in rules:
        raise unknown("learning rule", name, rules)
    try:
        return rules[name](**kw)
    except TypeError as e:
        raise ConfigError(f"rule {name}: {str(e).replace(rules[name].__name__ + '.__init__() ', '')}") from None
