"""Shared pieces of the asv benchmarks (scikit-learn's ``asv_benchmarks/common.py`` convention).

* `DEVICES` — every timed benchmark is parametrized by device; `require_device` skips the CUDA variants
  cleanly when no GPU is present (asv records a ``NotImplementedError`` raised in ``setup`` as skipped, not
  failed);
* `configure_threads` — ``$EQBENCH_NUM_THREADS`` pins torch's thread count (eqbench.timing.configure_threads).
"""

from __future__ import annotations

import torch

from eqbench.timing import configure_threads

configure_threads()

DEVICES = ["cpu", "cuda"]


def require_device(device: str) -> None:
    """Skip (asv: NotImplementedError in setup) a CUDA variant when torch sees no CUDA device."""
    if device == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device (torch.cuda.is_available() is False)")
