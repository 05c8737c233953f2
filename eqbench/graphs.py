"""CUDA graphs of whole relaxations: a T-step phase captured once per shape and replayed.

On a GPU a relaxation of a small network is launch-bound: P_MLP 784-512-10 at batch 128 does a few MFLOP per step,
and every step costs several kernel launches issued from Python. A CUDA graph (``torch.cuda.CUDAGraph``) records the
launches of the whole phase once and replays them with one call (PyTorch's "whole network capture"; NVIDIA's CUDA
programming guide, "CUDA Graphs").

What a replay reads: the static input tensors (x, the start state, y, clamped values), into which each call copies
its arguments, and the model's parameters and buffers at the addresses they had at capture. Optimizers update
parameters in place (torch.optim does), so a replay sees the current weights; if a parameter or buffer is replaced
(a new tensor, ``p.data = …``), the next call captures again. A graph is kept per model (weakly) and per key: the
phase's settings and every input's shape, dtype and device. Its outputs are cloned, so a later replay cannot
overwrite a state the caller holds.

Runs switch it on with ``cuda_graphs: true`` in their config (``enable``, process-wide like torch's matmul precision,
set by every run from its config); ``relax(..., cuda_graph=True)`` asks for it per call.

A capture can fail (an op that reads a tensor back to the host, a CPU tensor in the phase): the call then returns
None, the caller runs the eager loop, and one warning line says so, once per model and key. Host reads, the usual
cause, are found by a warm-up under `no_host_reads` before any capture is tried.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

Inputs = Sequence[Tensor | None]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph | None  # None: capture failed, run eagerly
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    pointers: tuple[int, ...]


_GRAPHS: weakref.WeakKeyDictionary[torch.nn.Module, dict[Hashable, _Graph]] = weakref.WeakKeyDictionary()
#: warm-up runs on a side stream before a capture (PyTorch's recipe: lazy initialisations, cuBLAS workspaces)
WARMUP = 2


_ENABLED = False


def enable(on: bool = True) -> None:
    """Run the relaxations that ask for nothing per step through CUDA graphs (``relax``'s default), process-wide."""
    global _ENABLED
    _ENABLED = bool(on)


def enabled() -> bool:
    """Whether ``enable`` switched CUDA graphs on."""
    return _ENABLED


@contextlib.contextmanager
def switched(on: bool) -> Iterator[None]:
    """``enable(on)`` for the duration of a ``with`` block, then the setting it had."""
    before = _ENABLED
    enable(on)
    try:
        yield
    finally:
        enable(before)


#: aten ops that read a tensor's value back to the host (``.item()``, ``int(t)``, ``bool(t)``) or size their output
#: by data: on a GPU each is a synchronisation, which a CUDA graph cannot record
HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::unique_dim",
              "aten::_unique2")


class HostRead(RuntimeError):
    """Raised by `no_host_reads` at the first op that reads a tensor back to the host."""


class _NoHostReads(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in HOST_READS:
            raise HostRead(f"{func._schema.name} (a host read) inside the relaxation")
        return func(*args, **(kwargs or {}))


def no_host_reads() -> contextlib.AbstractContextManager:
    """A context in which an op reading a tensor's value back to the host (`HOST_READS`) raises `HostRead` before it
    runs, on any device: what makes a function capturable in a CUDA graph, checked on the CPU too."""
    return _NoHostReads()


def _pointers(owner: torch.nn.Module) -> tuple[int, ...]:
    return tuple(t.data_ptr() for t in (*owner.parameters(), *owner.buffers()))


def _signature(inputs: Inputs) -> tuple:
    return tuple(None if t is None else (tuple(t.shape), t.dtype, t.device) for t in inputs)


def replay(owner: torch.nn.Module, key: Hashable, fn: Callable[..., list[Tensor]],
           inputs: Inputs) -> list[Tensor] | None:
    """``fn(*inputs)`` through a CUDA graph of it captured for ``owner`` (a model) and ``key`` (the settings that
    ``fn`` bakes in), or None where the capture failed (the caller runs ``fn`` eagerly).

    ``fn`` must be a pure function of its tensor inputs and of ``owner``'s parameters and buffers, run without
    autograd, with no host read (it is recorded once and replayed). The first call per key runs ``fn``
    ``WARMUP + 1`` times (warm-up and capture); each later call copies the inputs in and replays.
    """
    graphs = _GRAPHS.setdefault(owner, {})
    full_key = (key, _signature(inputs))
    entry = graphs.get(full_key)
    pointers = _pointers(owner)
    if entry is not None and entry.graph is None:
        return None
    if entry is None or entry.pointers != pointers:
        entry = graphs[full_key] = _capture(owner, key, fn, inputs, pointers)
        if entry.graph is None:
            return None
    else:
        for static, t in zip(entry.inputs, inputs):
            if static is not None:
                static.copy_(t)
        entry.graph.replay()
    return [o.clone() for o in entry.outputs]


def _capture(owner: torch.nn.Module, key: Hashable, fn: Callable[..., list[Tensor]], inputs: Inputs,
             pointers: tuple[int, ...]) -> _Graph:
    static = [None if t is None else t.detach().clone() for t in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        fn(*static)  # errors of fn itself surface here, eagerly, and are not taken for capture failures
    try:
        # A capture that fails half-way can leave CUDA's RNG in capture mode ("Offset increment outside graph
        # capture", seen on an H100 with torch 2.11): a host read is found here instead, before any capture.
        with torch.no_grad(), torch.cuda.stream(side), no_host_reads():
            for _ in range(WARMUP - 1):
                fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            outputs = list(fn(*static))
    except RuntimeError as exc:  # HostRead included
        torch.cuda.current_stream().wait_stream(side)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"CUDA graph capture of {type(owner).__name__}'s relaxation {key} failed ({first}); "
                      "running it eagerly", RuntimeWarning, stacklevel=4)
        torch.cuda.synchronize()
        return _Graph(None, [], [], pointers)
    # the capture recorded the launches without running them: replay once for this call's result
    graph.replay()
    return _Graph(graph, static, outputs, pointers)


def captured(owner: torch.nn.Module) -> int:
    """How many CUDA graphs are kept for ``owner`` (captures that failed not counted)."""
    return sum(e.graph is not None for e in _GRAPHS.get(owner, {}).values())


def clear(owner: torch.nn.Module | None = None) -> None:
    """Drop the graphs kept for ``owner`` (every model's with None), freeing their memory pools."""
    if owner is None:
        _GRAPHS.clear()
    else:
        _GRAPHS.pop(owner, None)
