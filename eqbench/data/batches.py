"""Single batches of embedded data for the checks and ``make bench`` (no loader, no download)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError
from .embedded import embedded_tensors
from .info import DATASET_INFO

# The names ``batch_for`` accepts: the embedded datasets plus uniform noise.
DATASETS = ("digits", "random", "wine", "diabetes", "mnist5k", "wine_gammell", "diabetes_gammell", "seq_retrieval")


def digits_batch(n: int = 20, dtype: torch.dtype = torch.float64, image: bool = False,
                 offset: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` images of scikit-learn's digits (1,797 samples), pixels scaled to [0, 1].

    ``image=True`` shapes them (n, 1, 8, 8) for conv models, else (n, 64). These are the first rows of the
    whole dataset in its own order, not of the train split of :func:`eqbench.data.load_dataset`.
    """
    # lazy: scikit-learn is the optional `data` extra; only the digits batch needs it
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
    """A batch of embedded data shaped for a model's input, by dataset name (one of ``DATASETS``).

    ``digits`` gives :func:`digits_batch` (the first ``n`` samples), ``random`` :func:`random_batch`;
    ``wine``, ``diabetes``, ``mnist5k``, ``wine_gammell`` and ``diabetes_gammell`` the first ``n`` samples of
    their train split (see :func:`eqbench.data.load_dataset`), reshaped to ``in_shape`` (which must hold as
    many values as one sample) and checked against ``n_classes``; ``seed`` only matters for ``random`` and
    for the split of the ``*_gammell`` datasets.
    """
    if name == "digits":
        return digits_batch(n, dtype, image=len(in_shape) == 3)
    if name == "random":
        return random_batch(in_shape, n_classes, n, seed, dtype)
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; embedded: {', '.join(DATASETS)}")
    info = DATASET_INFO[name]
    if math.prod(in_shape) != math.prod(info.in_shape):
        raise ConfigError(f"dataset {name!r} has inputs of shape {info.in_shape}, which do not fit a model "
                          f"expecting {tuple(in_shape)}")
    if n_classes != info.n_classes:
        what = "classes" if info.task == "classification" else "output"
        raise ConfigError(f"dataset {name!r} has {info.n_classes} {what}, but the model has {n_classes} outputs")
    x, y = embedded_tensors(name, "train", seed)
    if not 1 <= n <= len(x):
        raise ConfigError(f"the {name} batch must hold 1..{len(x)} samples, got {n}")
    y = y[:n].to(dtype) if info.task == "regression" else y[:n]
    return x[:n].to(dtype).reshape(n, *in_shape), y
