"""Two memory probes for the benchmarks and the tracked measurements:

* `graph_bytes` — peak bytes of the tensors autograd saves for backward while a callable runs:
  a deterministic, device-independent proxy for the activation memory of a training step;
* `cuda_peak_bytes` — the CUDA allocator's peak during a callable, for the GPU variants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


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


__all__ = ["cuda_peak_bytes", "graph_bytes"]
