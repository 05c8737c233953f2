"""Device placement, checked without a GPU: a step run with the default device set to ``meta``.

A tensor that a step creates without ``device=`` (``torch.zeros(shape)``, ``torch.tensor(v)``, ``torch.rand(...)``
without a generator on the input's device, ...) lands on the *default* device. On a CPU-only machine that is the
CPU, where the input is too, so the bug stays invisible until a run on a GPU mixes a CPU tensor with CUDA ones.
Under `meta_default_device` every tensor created on the default device is a meta tensor while the model and the
batch live on the CPU, and :class:`NoMetaTensors` raises at the first aten op taking or making one (torch's CPU
``mm`` and advanced indexing accept a meta operand and silently read garbage, so the default device alone is not
enough). Nothing in a correct step touches the meta device, so the guard has no false positives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class MetaTensorError(AssertionError):
    """A tensor on the meta device reached an op: something was created on the default device."""


def _has_meta(obj) -> bool:
    """Whether an op's arguments or results hold a meta tensor (aten ops nest them in lists at most)."""
    if isinstance(obj, torch.Tensor):
        return obj.is_meta
    if isinstance(obj, (list, tuple)):
        return any(_has_meta(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_meta(o) for o in obj.values())
    return False


class NoMetaTensors(TorchDispatchMode):
    """Raise at the first aten op that takes a meta tensor (checked before the op runs, so a CPU kernel
    never reads a meta operand) or makes one (a factory on the default device)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _has_meta(args) or _has_meta(kwargs):
            raise MetaTensorError(f"{func} got a tensor on the meta (default) device: a tensor of this step "
                                  "was created without the device of its inputs")
        out = func(*args, **kwargs)
        if _has_meta(out):
            raise MetaTensorError(f"{func} made a tensor on the meta (default) device: pass device= (and "
                                  "dtype=) of an existing tensor")
        return out


@contextlib.contextmanager
def meta_default_device(guard: bool = True):
    """Default device ``meta`` for everything created inside; with ``guard``, also NoMetaTensors."""
    with torch.device("meta"), (NoMetaTensors() if guard else contextlib.nullcontext()):
        yield


def device_placement(step: Callable[[], Any]) -> str | None:
    """Run ``step`` under `meta_default_device`; None when it created nothing on the default device, else the
    guard's one-line message naming the aten op."""
    try:
        with meta_default_device():
            step()
    except MetaTensorError as e:
        return str(e)
    except RuntimeError as e:
        if "meta" in str(e):
            return f"a tensor of this step was created on the default device: {str(e).splitlines()[0]}"
        raise
    return None
