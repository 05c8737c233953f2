"""Embedded data that needs no download: scikit-learn's digits (8×8 images, 10 classes).

Used by the checks and ``make bench``; later issues add the training datasets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import ConfigError

DATASETS = ("digits", "random")


def digits_batch(n: int = 20, dtype: torch.dtype = torch.float64, image: bool = False,
                 offset: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` images of scikit-learn's digits (1,797 samples), pixels scaled to [0, 1].

    ``image=True`` shapes them (n, 1, 8, 8) for conv models, else (n, 64).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    if not 1 <= n <= len(d.target) - offset:
        raise ConfigError(f"the digits batch must hold 1..{len(d.target) - offset} samples, got {n}")
    x = torch.tensor(d.data[offset:offset + n] / 16.0, dtype=dtype)
    y = torch.tensor(d.target[offset:offset + n], dtype=torch.long)
    return (x.reshape(n, 1, 8, 8) if image else x), y


def random_batch(in_shape: tuple[int, ...], n_classes: int, n: int = 20, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Uniform [0, 1] inputs and uniform class targets, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *in_shape), generator=g, dtype=dtype),
            torch.randint(n_classes, (n,), generator=g))


def batch_for(name: str, in_shape: tuple[int, ...], n_classes: int, n: int, seed: int,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """A batch of embedded data shaped for a model's input, by dataset name."""
    if name == "digits":
        return digits_batch(n, dtype, image=len(in_shape) == 3)
    if name == "random":
        return random_batch(in_shape, n_classes, n, seed, dtype)
    raise ConfigError(f"unknown dataset {name!r}; embedded: {', '.join(DATASETS)}")
