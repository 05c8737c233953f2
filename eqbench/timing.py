"""The timed callables shared by the two benchmark flavours (pytest-benchmark in suites/throughput, asv in
suites/asv_benchmarks) and by the tracked measurements (`eqbench.tracking`).

Timing lives in the benchmark tools, not here; this module only builds what they time.

* `free_phase_fn` / `train_step_fn` — zero-argument callables for one free phase / one training
  step (minus the optimizer), synchronising CUDA (`sync`) so that a wall clock around them is honest;
* `configure_threads` — ``torch.set_num_threads`` from ``$EQBENCH_NUM_THREADS`` (`THREADS_ENV`) when it is set.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import torch
from torch import Tensor

from . import graphs
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


def free_phase_fn(model: EnergyModel, x: Tensor, T: int, closed_form: bool, fast: bool = True,
                  cuda_graph: bool = False) -> Callable[[], State]:
    """A callable running one free phase of T steps from zeros (``closed_form=False`` forces the
    generic autograd step, ``fast=False`` the generic loop over a model's fused ``fast_relax``, ``cuda_graph``
    replays it from a CUDA graph on a GPU), synchronising CUDA before it returns."""

    def run() -> State:
        s = relax(model, x, model.init_state(x), T, closed_form=closed_form, fast=fast, cuda_graph=cuda_graph)
        sync(x)
        return s

    return run


def train_step_fn(algo: str, model: EnergyModel, x: Tensor, y: Tensor, T2: int, *,
                  extra_free: int = 10, beta: float = 0.5, closed_form: bool = True,
                  cuda_graphs: bool = False) -> Callable[[], dict]:
    """A callable computing one training step's ``.grad`` (no optimizer step), T1 = T2 + extra_free.

    ``algo="EP"``: symmetric estimator (free phase of T1 steps, two nudged phases of T2 steps);
    ``algo="BPTT"``: backpropagation through the last T2 of T1 free steps. ``closed_form=False`` relaxes with
    the generic autograd step (the authors' algorithm); ``cuda_graphs`` replays the relaxations from CUDA graphs.
    """
    T1 = T2 + extra_free
    if algo == "EP":
        rule: EP | BPTT = EP(beta=beta, T1=T1, T2=T2, estimator="symmetric", closed_form=closed_form)
    elif algo == "BPTT":
        rule = BPTT(T1=T1, T2=T2, closed_form=closed_form)
    else:
        raise KeyError(f"unknown training algorithm {algo!r}; known: EP, BPTT")

    def run() -> dict:
        with graphs.switched(cuda_graphs):
            out = rule.compute_gradients(model, x, y)
        sync(x)
        return out

    return run


def bare_free_phase_fn(model: EnergyModel, x: Tensor, T: int) -> Callable[[], list[Tensor]]:
    """The yardstick of a fully connected clip network's free phase (P_MLP, two layers or more): T synchronous
    steps of just the needed ops — one ``addmm`` per drive into preallocated buffers, the input drive once,
    clip(u/a, 0, 1) in place — with no checks, no dispatch through the model and no read-back. What eqbench's
    relaxation of the same model achieves is reported as a fraction of its speed (``make bench``)."""
    weights = [(m.weight, m.bias) for m in model.synapses]
    inv_a = 1.0 / model.activations()[0].clip_a
    x = x.flatten(1)

    def run() -> list[Tensor]:
        with torch.no_grad():
            c0 = torch.addmm(weights[0][1], x, weights[0][0].t())
            cur = [x.new_zeros(x.shape[0], w.shape[0]) for w, _ in weights]
            nxt = [torch.empty_like(si) for si in cur]
            n = len(cur)
            for _ in range(T):
                for l in range(n):
                    if l == 0:
                        torch.addmm(c0, cur[1], weights[1][0], out=nxt[0])
                    else:
                        torch.addmm(weights[l][1], cur[l - 1], weights[l][0].t(), out=nxt[l])
                        if l + 1 < n:
                            nxt[l].addmm_(cur[l + 1], weights[l + 1][0])
                    nxt[l].mul_(inv_a).clamp_(0.0, 1.0)
                cur, nxt = nxt, cur
        sync(x)
        return cur

    return run


def free_phase_flops(model: EnergyModel, batch: int, T: int) -> float:
    """Matmul FLOPs of a fully connected network's closed-form free phase: the input drive once,
    2·B·n_0·n_1, then per step every other layer's bottom-up and every top-down product, 2·B·n_{l−1}·n_l each."""
    sizes = [model.synapses[0].weight.shape[1], *(m.weight.shape[0] for m in model.synapses)]
    pairs = [a * b for a, b in zip(sizes, sizes[1:])]
    return 2.0 * batch * (pairs[0] + T * (2 * sum(pairs[1:])))


def matmul_rate(device: str | torch.device = "cpu", n: int = 1024, repeats: int = 5) -> float:
    """The machine's float32 matmul rate (FLOP/s): the best of ``repeats`` n×n products, after one warm-up."""
    a = torch.rand(n, n, device=device)
    out = torch.empty_like(a)
    torch.mm(a, a, out=out)
    sync(a)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, a, out=out)
        sync(a)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


__all__ = ["THREADS_ENV", "bare_free_phase_fn", "configure_threads", "free_phase_flops", "free_phase_fn",
           "matmul_rate", "sync", "train_step_fn"]
