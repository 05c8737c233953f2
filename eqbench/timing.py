"""The timed callables shared by the two benchmark flavours (pytest-benchmark in suites/throughput, asv in
suites/asv_benchmarks) and by the tracked measurements (`eqbench.tracking`).

Timing lives in the benchmark tools, not here; this module only builds what they time.

* `free_phase_fn` / `train_step_fn` — zero-argument callables for one free phase / one training
  step (minus the optimizer), synchronising CUDA (`sync`) so that a wall clock around them is honest;
* `configure_threads` — ``torch.set_num_threads`` from ``$EQBENCH_NUM_THREADS`` (`THREADS_ENV`) when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from .models import EnergyModel
from .models.base import State
from .relaxation import relax
from .rules import BPTT, EP

THREADS_ENV = "EQBENCH_NUM_THREADS"


def configure_threads(env: str = THREADS_ENV) -> int:
    """Set torch's intra-op thread count from the environment variable ``env`` when it is set
    (a positive integer) and return the count in force.

    On a small shared runner, OpenMP threads that outnumber the free cores make timings swing by
    orders of magnitude; pinning ``EQBENCH_NUM_THREADS=1`` there keeps them comparable.
    """
    value = os.environ.get(env, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"${env} must be a positive integer, got {value!r}") from None
        if n < 1:
            raise ValueError(f"${env} must be a positive integer, got {value!r}")
        torch.set_num_threads(n)
    return torch.get_num_threads()


def sync(device: str | torch.device | Tensor) -> None:
    """Wait for queued CUDA work on ``device`` (a device or a tensor on it); no-op on the CPU."""
    dev = device.device if isinstance(device, Tensor) else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def free_phase_fn(model: EnergyModel, x: Tensor, T: int, closed_form: bool, fast: bool = True) -> Callable[[], State]:
    """A callable running one free phase of T steps from zeros (``closed_form=False`` forces the
    generic autograd step, ``fast=False`` the generic loop over a model's fused ``fast_relax``),
    synchronising CUDA before it returns."""

    def run() -> State:
        s = relax(model, x, model.init_state(x), T, closed_form=closed_form, fast=fast)
        sync(x)
        return s

    return run


def train_step_fn(algo: str, model: EnergyModel, x: Tensor, y: Tensor, T2: int, *,
                  extra_free: int = 10, beta: float = 0.5) -> Callable[[], dict]:
    """A callable computing one training step's ``.grad`` (no optimizer step), T1 = T2 + extra_free.

    ``algo="EP"``: symmetric estimator (free phase of T1 steps, two nudged phases of T2 steps);
    ``algo="BPTT"``: backpropagation through the last T2 of T1 free steps.
    """
    T1 = T2 + extra_free
    if algo == "EP":
        rule: EP | BPTT = EP(beta=beta, T1=T1, T2=T2, estimator="symmetric")
    elif algo == "BPTT":
        rule = BPTT(T1=T1, T2=T2)
    else:
        raise KeyError(f"unknown training algorithm {algo!r}; known: EP, BPTT")

    def run() -> dict:
        out = rule.compute_gradients(model, x, y)
        sync(x)
        return out

    return run


__all__ = ["THREADS_ENV", "configure_threads", "free_phase_fn", "sync", "train_step_fn"]
