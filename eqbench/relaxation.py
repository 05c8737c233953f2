"""Relaxation: a model's step applied T times, with or without nudging (Laborieux §A.3).

The step is ``s ← model.update(s, model.drive(x, s, β, y))``. ``mode="sync"`` updates every layer
from the same state (the authors' dynamics); ``mode="async"`` updates the even layers, then the
odd ones from the refreshed state — layers couple only to their neighbours, so each half-step
is a block-coordinate step (the energy-descent argument of suites/energy).

A model may offer ``fast_relax(x, s, steps, beta, y, mode=, clamped=)``, an analytic version of the same
closed-form steps (fused, no per-step bookkeeping; the contract's default returns None, "no fast path"); ``relax``
uses it when nothing per-step is asked for (no graph, trace or hook, closed form) and the fused claim pins it to
the generic loop. The layered models fuse the asynchronous mode too: Scellier et al. 2023's fixed-point minimiser,
each layer set to its minimiser given its neighbours, one parity at a time, at the cost of one synchronous step
per iteration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from . import graphs
from .errors import ConfigError, DivergenceError
from .models.base import EnergyModel, State

Mode = Literal["sync", "async"]
MODES = ("sync", "async")


@dataclass
class Trace:
    """What a relaxation recorded, step by step.

    ``residual[t]`` is the largest per-sample ‖s_{t+1} − s_t‖₂ (all layers together);
    ``values[t]`` the per-sample value of ``observe`` (Φ, or an energy) at every state visited,
    the initial one included — in asynchronous mode after every half-step.
    """

    observe: Callable[[Tensor, State], Tensor] | None = None
    keep_states: bool = False
    residual: list[float] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    states: list[State] = field(default_factory=list)

    def _visit(self, x: Tensor, s: State) -> None:
        if self.observe is not None:
            with torch.no_grad():
                self.values.append(self.observe(x, [si.detach() for si in s]).detach())
        if self.keep_states:
            self.states.append([si.detach().clone() for si in s])


def relax(
    model: EnergyModel,
    x: Tensor,
    s: State,
    steps: int,
    *,
    beta: complex = 0.0,
    y: Tensor | None = None,
    mode: Mode = "sync",
    closed_form: bool = True,
    graph: bool = False,
    trace: Trace | None = None,
    drive_hook: Callable[[int, State], State] | None = None,
    fast: bool = True,
    cache: dict | None = None,
    clamp: dict[int, Tensor] | None = None,
    cuda_graph: bool | None = None,
) -> State:
    """Run ``steps`` steps of the model's dynamics from ``s`` and return the final state.

    ``graph=True`` keeps the autograd graph through every step (BPTT); otherwise each state is a
    fresh detached tensor. ``drive_hook(t, u)`` may replace the drive of step t (the GDU check
    adds a zero perturbation there to read ∂L/∂u). ``fast=False`` forces the generic loop over a
    model's ``fast_relax``. ``cache`` is where a closed form keeps the input's drive: pass one dict to the
    relaxations of one training step (same x, same weights: the free and nudged phases of EP) to compute it
    once; the default is a fresh dict. Never share it with a relaxation that keeps its graph. ``clamp`` holds
    layers (state index → value) at given values from the start: they are not updated (coupled learning's clamped
    phase, Stern et al. 2021). ``cuda_graph=True`` runs a phase on CUDA tensors with nothing per-step asked for
    through a CUDA graph captured once per model, settings and shapes (eqbench.graphs; the eager loop where the
    capture fails, with one warning; ignored on other devices); None follows ``eqbench.graphs.enable`` (a run's
    ``cuda_graphs``). Raises DivergenceError on a non-finite state.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown relaxation mode {mode!r}; known: {', '.join(MODES)}")
    if steps < 0:
        raise ConfigError(f"a relaxation needs a non-negative number of steps, got {steps}")
    if beta != 0.0 and y is None:
        raise ConfigError("a nudged relaxation (β ≠ 0) needs targets y")
    x = model.check_input(x)
    if y is not None:  # once here: the steps read the targets without a host read (EnergyModel.target_matrix)
        y = model.check_target(y, x.shape[0])
    shapes = [(x.shape[0], *sh) for sh in model.state_shapes()]
    if [tuple(si.shape) for si in s] != shapes:
        raise ConfigError(f"state shapes {[tuple(si.shape) for si in s]} do not match {model.name}'s {shapes}")
    # Without per-step observers the state is read back once, at the end: a per-step host read costs a
    # CUDA synchronisation every step. A diverged phase is then replayed step by step from its start, so
    # the error still names the first non-finite step (same arithmetic, same step).
    if clamp:
        bad = [i for i, v in clamp.items() if not 0 <= i < len(s) or tuple(v.shape) != tuple(s[i].shape)]
        if bad:
            raise ConfigError(f"clamped layer {bad[0]} is not a state layer of {model.name} with its shape")
        s = [clamp.get(i, si) for i, si in enumerate(s)]
    observed = graph or trace is not None or drive_hook is not None
    cache = {} if cache is None or graph else cache  # a graph needs its own input drive, with its history
    if not observed:
        clamped = tuple(clamp or {})
        phase = phase_function(model, steps, beta=beta, mode=mode, closed_form=closed_form, fast=fast,
                               clamped=clamped)
        inputs = [x, y, *(si.detach() for si in s)]
        out = None
        if (graphs.enabled() if cuda_graph is None else cuda_graph) and x.is_cuda and steps > 0:
            # the input drive is computed inside the graph (a cache filled outside it would be stale at replay)
            key = ("relax", steps, beta, mode, closed_form, fast, clamped)
            out = graphs.replay(model, key, lambda *a: phase(*a, cache={}), inputs)
        if out is None:
            out = phase(*inputs, cache=cache)
        if steps == 0 or _finite(out):
            return out
    return _loop(model, x, s, steps, beta, y, mode, closed_form, graph, trace, drive_hook, cache, clamp, strict=True)


def phase_function(model: EnergyModel, steps: int, *, beta: complex = 0.0, mode: Mode = "sync",
                   closed_form: bool = True, fast: bool = True, clamped: tuple[int, ...] = ()
                   ) -> Callable[..., State]:
    """A relaxation with nothing observed per step as a function ``phase(x, y, *s, cache=...)`` of its tensors:
    what ``relax`` runs, eagerly or through a CUDA graph (eqbench.graphs). ``s`` holds the clamped layers' values
    (their indices in ``clamped``); the model's ``fast_relax`` where it applies, else the generic loop. Inputs
    are trusted (``relax`` checks them); nothing is read back to the host."""

    def phase(x: Tensor, y: Tensor | None, *s: Tensor, cache: dict) -> State:
        out = None
        if fast and closed_form:
            out = fused(model, x, list(s), steps, beta, y, cache, mode=mode, clamped=clamped)
        if out is None:
            out = _loop(model, x, s, steps, beta, y, mode, closed_form, False, None, None, cache,
                        dict.fromkeys(clamped), strict=False)
        return out

    return phase


def fused(model: EnergyModel, x: Tensor, s: State, steps: int, beta: complex, y: Tensor | None, cache: dict | None,
          *, mode: Mode = "sync", clamped: tuple[int, ...] = ()) -> State | None:
    """``model.fast_relax`` in ``mode`` with the layers ``clamped`` held; None (the generic loop) when the model's
    fast_relax is of the contract's first form, which takes no ``mode`` or ``clamped`` and fuses the synchronous free
    mode only: the settings are passed only where they are not the default, so such a model keeps its fused free
    phase."""
    extra: dict = {"mode": mode} if mode != "sync" else {}
    if clamped:
        extra["clamped"] = clamped
    try:
        return model.fast_relax(x, s, steps, beta, y, cache=cache, **extra)
    except TypeError as e:
        if extra and "unexpected keyword argument" in str(e):
            return None
        raise


def _loop(model: EnergyModel, x: Tensor, s: State, steps: int, beta: float, y: Tensor | None, mode: Mode,
          closed_form: bool, graph: bool, trace: Trace | None, drive_hook: Callable[[int, State], State] | None,
          cache: dict, clamp: dict[int, Tensor] | None, strict: bool) -> State:
    """The generic loop; ``strict`` checks every step for a non-finite state (DivergenceError names it)."""
    groups = model.parity_groups() if mode == "async" else [list(range(len(s)))]
    if clamp:
        groups = [[i for i in g if i not in clamp] for g in groups]
    s = list(s) if graph else [si.detach() for si in s]
    if trace is not None:
        trace._visit(x, s)
    ctx = contextlib.nullcontext() if graph else torch.no_grad()
    with ctx:
        for t in range(steps):
            prev = s
            for group in groups:
                u = model.drive(x, s, beta, y, closed_form=closed_form, create_graph=graph, cache=cache)
                if drive_hook is not None:
                    u = drive_hook(t, u)
                new = model.update(s, u, x) if model.step_uses_input else model.update(s, u)
                s = [new[i] if i in group else s[i] for i in range(len(s))]
                if trace is not None and mode == "async":
                    trace._visit(x, s)
            if strict:
                _check_finite(s, t, beta)
            if trace is not None:
                diff = sum(((a - b).detach().flatten(1) ** 2).sum(1) for a, b in zip(s, prev))
                trace.residual.append(float(diff.sqrt().max()))
                if mode == "sync":
                    trace._visit(x, s)
    return s


def _finite(s: State) -> bool:
    # One reduction per layer and one host read: a sum is non-finite as soon as one of its terms is
    # (isfinite().all() per layer cost a third of the closed-form free phase); a huge but finite
    # state whose sum overflows answers False, and the strict replay then finds no bad layer.
    return bool(torch.isfinite(torch.stack([si.detach().sum() for si in s]).sum()))


def _check_finite(s: State, t: int, beta: float) -> None:
    if _finite(s):
        return
    bad = next((i for i, si in enumerate(s) if not bool(torch.isfinite(si).all())), None)
    if bad is None:  # huge but finite values whose sum overflowed
        return
    phase = "free phase" if beta == 0 else f"nudged phase (β={beta:g})"
    raise DivergenceError(
        f"non-finite state in layer {bad + 1} at step {t + 1} of the {phase}: the dynamics diverged"
    )
