"""Helpers shared by the two benchmark flavours (pytest-benchmark in suites/throughput, asv in
suites/asv_benchmarks): the benchmark cases, the timed callables, and two memory probes.

Timing lives in the benchmark tools, not here; this module only builds what they time.

* `make_case` — the deterministic (model, x, y) of a named benchmark case (`CASES`);
* `free_phase_fn` / `train_step_fn` — zero-argument callables for one free phase / one training
  step (minus the optimizer), synchronising CUDA so that a wall clock around them is honest;
* `graph_bytes` — peak bytes of the tensors autograd saves for backward while a callable runs:
  a deterministic, device-independent proxy for the activation memory of a training step;
* `cuda_peak_bytes` — the allocator's peak during a callable, for the GPU variants;
* `configure_threads` — ``torch.set_num_threads`` from ``$EQBENCH_NUM_THREADS`` when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .models import EnergyModel, build_model
from .models.base import State
from .relaxation import relax
from .rules import BPTT, EP


@dataclass(frozen=True)
class CaseSpec:
    """A benchmark case: a registered model, its configuration and default batch / step count."""

    model: str
    config: dict[str, Any]
    batch: int
    T: int
    doc: str = ""


CASES: dict[str, CaseSpec] = {
    "mlp": CaseSpec(
        "P_MLP", {"sizes": [784, 512, 10], "act": "my_hard_sig"}, batch=128, T=30,
        doc="P_MLP 784-512-10, my_hard_sig — the throughput target case (batch 128, T=30)",
    ),
    "cnn": CaseSpec(
        "P_CNN",
        {"in_shape": (1, 28, 28), "channels": [32, 64], "kernels": [5, 5], "pools": "mm",
         "fc": [10], "act": "hard_sigmoid"},
        batch=32, T=10,
        doc="P_CNN 1×28×28 → conv32 k5 maxpool → conv64 k5 maxpool → fc10, hard_sigmoid "
            "(Laborieux et al. 2021's MNIST CNN)",
    ),
    "hopfield": CaseSpec(
        "HOPFIELD", {"sizes": [10] * 9 + [1], "topology_type": "SW_no_intra", "p": 0.1, "bypass_mag": 0.569},
        batch=5, T=1000,
        doc="Gammell et al.'s diabetes 8-layer SW network (10-10×8-1, batch 5, 1000 free steps)",
    ),
    "hopfield_mnist": CaseSpec(
        "HOPFIELD", {"sizes": [784] + [100] * 5 + [10], "topology_type": "SW_no_intra", "p": 0.1,
                     "bypass_mag": 0.168},
        batch=20, T=100,
        doc="Gammell et al.'s MNIST 5-layer SW network (784-100×5-10, batch 20, 100 of its 1000 free steps)",
    ),
    "bin_w": CaseSpec(
        "BIN_MLP", {"sizes": [784, 4096, 10], "binary": "W"}, batch=64, T=50,
        doc="Laydevant et al.'s fc bin_W 784-4096-10 (binary weights, hardsigm; batch 64, T=50)",
    ),
    "bin_wn": CaseSpec(
        "BIN_MLP", {"sizes": [784, 8192, 100], "binary": "W_N", "expand_output": 10}, batch=64, T=20,
        doc="Laydevant et al.'s fc bin_W_N 784-8192-100, binary neurons (batch 64, T=20)",
    ),
    "seq_snli": CaseSpec(
        "SEQ_SNLI", {"seq_len": 25, "dim": 300, "fc": [400, 3], "act": "my_hard_sig"}, batch=20, T=10,
        doc="Bal & Sengupta's SNLI model (25 + 25 tokens of 300-d, four projection layers, fc 400-3; batch 20 of "
            "their 200, T=10 of their 60): autograd drive and retrieval (no closed form)",
    ),
    "small": CaseSpec(
        "P_MLP", {"sizes": [64, 32, 10], "act": "my_hard_sig"}, batch=16, T=10,
        doc="P_MLP 64-32-10: a fast case for tests of the memory accounting",
    ),
}

#: the throughput target: closed-form free phase ≥ this × the autograd one on CASES["mlp"]
TARGET_RATIO = 3.0


class Case(NamedTuple):
    model: EnergyModel
    x: Tensor
    y: Tensor


def make_case(name: str = "mlp", batch: int | None = None, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32, seed: int = 0) -> Case:
    """The (model, x, y) of benchmark case ``name`` (see `CASES`), deterministic from ``seed``.

    Weights use PyTorch's default init under ``torch.manual_seed(seed)`` (the global RNG is
    restored afterwards); x is uniform in [0, 1), y uniform class indices, both drawn on the CPU
    so that every device gets the same numbers. ``batch`` defaults to the case's own.
    """
    if name not in CASES:
        raise KeyError(f"unknown benchmark case {name!r}; known: {', '.join(CASES)}")
    spec = CASES[name]
    batch = spec.batch if batch is None else int(batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec.model, **spec.config)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *model.in_shape), generator=gen)
    y = torch.randint(model.n_classes, (batch,), generator=gen)
    model = model.to(device=device, dtype=dtype)
    return Case(model, x.to(device=device, dtype=dtype), y.to(device))


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


# --------------------------------------------------------------------------------- memory probes
class _Packed:
    """What the pack hook stores in the graph: the tensor (detached, to avoid a reference cycle)
    plus a release callback run when autograd frees the saved tensor."""

    __slots__ = ("tensor", "_release")

    def __init__(self, tensor: Tensor, release: Callable[[], None]) -> None:
        self.tensor = tensor
        self._release = release

    def __del__(self) -> None:
        self._release()


class _SavedTensorMeter:
    """Counts the distinct storages held by saved tensors; tracks the current total and its peak."""

    def __init__(self, ignore: Iterable[Tensor] = ()) -> None:
        self.ignore = {_storage_key(t) for t in ignore}
        self.refs: dict[tuple, int] = {}
        self.sizes: dict[tuple, int] = {}
        self.current = 0
        self.peak = 0

    def pack(self, t: Tensor) -> _Packed:
        key = _storage_key(t)
        if key in self.ignore:
            return _Packed(t.detach(), _noop)
        if key not in self.refs:
            self.refs[key] = 0
            self.sizes[key] = t.untyped_storage().nbytes()
            self.current += self.sizes[key]
            self.peak = max(self.peak, self.current)
        self.refs[key] += 1
        return _Packed(t.detach(), lambda: self._release(key))

    def _release(self, key: tuple) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:  # the storage's last saved reference is gone
            del self.refs[key]
            self.current -= self.sizes.pop(key)

    @staticmethod
    def unpack(p: _Packed) -> Tensor:
        return p.tensor


def _noop() -> None:
    pass


def _storage_key(t: Tensor) -> tuple:
    # Live storages never share an address (a saved tensor keeps its storage alive, so the
    # address cannot be reused while it is counted); the device disambiguates across devices.
    return (t.device.type, t.device.index, t.untyped_storage().data_ptr())


def graph_bytes(fn: Callable[[], Any], *, ignore: Iterable[Tensor] = ()) -> int:
    """Peak bytes held by tensors saved for backward while ``fn()`` runs.

    Every tensor autograd saves passes through a `torch.autograd.graph.saved_tensors_hooks` pack
    hook; the meter adds the ``untyped_storage().nbytes()`` of each *distinct* storage when it is
    first saved (views and repeated saves of one storage count once) and subtracts it when
    autograd frees the last saved reference to it (after a backward pass, or when a graph is
    dropped). The result is the maximum of that running total: for a training step, what is
    alive when backward starts. Storages of the tensors in ``ignore`` (e.g. the parameters,
    which any step holds anyway) are not counted.

    It is a deterministic, device-independent proxy for the activation memory of a training
    step — it counts bytes by shape and dtype, so it does not depend on the allocator, on
    caching or on timing, and is the same number on CPU and GPU:

    * EP's graph covers one Φ evaluation per estimator term (its relaxations run without a
      graph), so its bytes are flat in the number of nudged steps T2;
    * BPTT's graph covers the T2 steps it backpropagates through, so its bytes grow linearly.

    Tensors saved while grad mode is off are never packed, so a relaxation without a graph
    counts 0; one that builds and frees a graph every step (the autograd step) counts one step's.
    It does not count temporaries that are not saved for backward, nor the gradients themselves.
    """
    meter = _SavedTensorMeter(ignore)
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        fn()
    return meter.peak


def cuda_peak_bytes(fn: Callable[[], Any], device: str | torch.device | None = None) -> int:
    """Peak CUDA memory ``fn()`` allocates above what was allocated when it started, in bytes.

    Uses ``torch.cuda.reset_peak_memory_stats`` and ``torch.cuda.max_memory_allocated`` on
    ``device`` (default: the current CUDA device), synchronising before and after. Unlike
    `graph_bytes` it depends on the allocator and counts every temporary. Raises RuntimeError
    when CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_peak_bytes needs a CUDA device, and torch.cuda.is_available() is False")
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        raise RuntimeError(f"cuda_peak_bytes measures a CUDA device, got {dev}")
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    fn()
    torch.cuda.synchronize(dev)
    return torch.cuda.max_memory_allocated(dev) - base


__all__ = [
    "CASES", "Case", "CaseSpec", "TARGET_RATIO", "THREADS_ENV", "configure_threads", "cuda_peak_bytes",
    "free_phase_fn", "graph_bytes", "make_case", "sync", "train_step_fn",
]
