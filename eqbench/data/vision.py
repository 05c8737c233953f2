"""The full torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100), read from a data folder.

Transforms follow Laborieux et al. (2021):

* MNIST, Fashion-MNIST: ``ToTensor()`` only, pixels in [0, 1];
* CIFAR-10 and CIFAR-100: ``ToTensor()`` then ``Normalize(CIFAR_MEAN, CIFAR_STD)`` where ``CIFAR_STD`` is
  three times the usual standard deviation (see :mod:`eqbench.data.info`); with ``augment=True`` the train
  split first goes through ``RandomHorizontalFlip(0.5)`` and ``RandomCrop(32, padding=4,
  padding_mode='edge')``. The test split is never augmented.

Before torchvision is called, the expected files are checked: a missing file raises
:class:`~eqbench.errors.DatasetMissingError` with one line naming the folder and the files (unless
``download=True``, which lets torchvision fetch them). torchvision checks the md5 of every CIFAR file on
each load; with ``download=False`` this module reads CIFAR through :class:`CIFAR10Files` /
:class:`CIFAR100Files`, which check existence only (hashing 180 MB on every load is slow, and the test
suite writes small files in the real format). A truncated or otherwise unreadable file still fails, as a
``DatasetMissingError``. With ``download=True`` the stock classes run, md5 checks included.

This module imports torchvision; :mod:`eqbench.data` imports it only when such a dataset is asked for.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torchvision import datasets, transforms

from ..errors import ConfigError, DatasetMissingError
from .info import AUGMENTED, CIFAR_MEAN, CIFAR_STD, Split

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


class CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR10 with the md5 checks replaced by existence checks (used when ``download=False``).

    ``check_integrity(path, None)`` in torchvision only tests that the file exists, so the md5 fields of the
    class attributes are set to None; nothing else changes.
    """

    train_list = [[f, None] for f, _ in datasets.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


class CIFAR100Files(datasets.CIFAR100):
    """torchvision's CIFAR100 with the md5 checks replaced by existence checks, as :class:`CIFAR10Files`."""

    train_list = [[f, None] for f, _ in datasets.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in datasets.CIFAR100.test_list]
    meta = {**datasets.CIFAR100.meta, "md5": None}


# name -> (stock class, class read when download=False, folder under data_dir, files expected there)
_SOURCES = {
    "mnist": (datasets.MNIST, datasets.MNIST, "MNIST/raw", MNIST_FILES),
    "fashion_mnist": (datasets.FashionMNIST, datasets.FashionMNIST, "FashionMNIST/raw", MNIST_FILES),
    "cifar10": (datasets.CIFAR10, CIFAR10Files, "cifar-10-batches-py",
                tuple(f for f, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list)
                + (datasets.CIFAR10.meta["filename"],)),
    "cifar100": (datasets.CIFAR100, CIFAR100Files, "cifar-100-python",
                 tuple(f for f, _ in datasets.CIFAR100.train_list + datasets.CIFAR100.test_list)
                 + (datasets.CIFAR100.meta["filename"],)),
}
VISION: tuple[str, ...] = tuple(_SOURCES)


def expected_files(name: str, data_dir: Path) -> tuple[Path, tuple[str, ...]]:
    """(folder, file names) that torchvision reads for ``name`` under ``data_dir`` (both splits)."""
    _, _, sub, files = _SOURCES[name]
    return Path(data_dir) / sub, files


def vision_transform(name: str, train: bool, augment: bool = False, normalize: bool = True) -> transforms.Compose:
    """The input transform of ``name`` (see the module doc); ``augment`` acts on the train split only;
    ``normalize=False`` keeps pixels in [0, 1] (``ToTensor`` only, as PEPITA's code does)."""
    if augment and name not in AUGMENTED:
        raise ConfigError(f"augmentation is defined for {', '.join(AUGMENTED)} only, not {name!r}")
    steps: list = []
    if augment and train:
        steps += [transforms.RandomHorizontalFlip(0.5), transforms.RandomCrop(32, padding=4, padding_mode="edge")]
    steps.append(transforms.ToTensor())
    if normalize and name in ("cifar10", "cifar100"):
        # std TRIPLED on purpose (Laborieux et al. 2021), same constants for CIFAR-100: see CIFAR_STD.
        steps.append(transforms.Normalize(mean=CIFAR_MEAN, std=CIFAR_STD))
    return transforms.Compose(steps)


def as_long(target: int) -> torch.Tensor:
    """The class index as a 0-d long tensor, as the embedded datasets give it."""
    return torch.tensor(target, dtype=torch.long)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def vision_dataset(name: str, split: Split, data_dir: Path, download: bool = False,
                   augment: bool = False, normalize: bool = True) -> datasets.VisionDataset:
    """One split of a torchvision dataset read from ``data_dir``, yielding (float32 image, long class)."""
    stock, files_only, _, _ = _SOURCES[name]
    folder, files = expected_files(name, data_dir)
    transform = vision_transform(name, split == "train", augment, normalize)
    if not download:
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise DatasetMissingError(
                f"dataset {name!r} not found: {folder} lacks {', '.join(missing)}; pass --download "
                f"(download=True) to fetch it, or place the files there")
    cls = stock if download else files_only
    try:
        ds = cls(root=str(data_dir), train=split == "train", download=download, transform=transform,
                 target_transform=as_long)
    # torchvision reports missing, corrupt or undownloadable files as RuntimeError (md5, "not found"),
    # OSError (network, disk), and a damaged file as an unpickling or IDX parsing error.
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, AssertionError, TypeError, ValueError,
            KeyError) as e:
        what = "could not be downloaded into" if download else "is unreadable or corrupt in"
        raise DatasetMissingError(
            f"dataset {name!r} {what} {folder} ({_one_line(e)}); "
            + ("place the files there by hand" if download else "pass --download (download=True) to fetch "
               "it again, or replace the files")) from e
    if len(ds.data) != len(ds.targets):
        raise DatasetMissingError(f"dataset {name!r} is corrupt in {folder}: {len(ds.data)} images but "
                                  f"{len(ds.targets)} labels; pass --download (download=True) or replace the files")
    return ds
