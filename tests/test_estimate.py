"""``eqbench estimate``: seconds per epoch, hours and peak memory from a few batches, without the dataset.

Times are not asserted (tests assert correctness): what is checked is the arithmetic of the estimate (batches per
epoch from the split sizes, the epoch from the batch times), that the data has the dataset's exact shape, that
nothing is read from a data folder, and that bad input is one line.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from eqbench.cli import main
from eqbench.config import DTYPES, RunConfig
from eqbench.data.info import SHUFFLES
from eqbench.errors import ConfigError
from eqbench.estimate import _batches, _split_sizes, estimate, estimate_config
from eqbench.registry import get_baseline, load_registry
from eqbench.train import build_parts

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_CIFAR = {  # a P_CNN on CIFAR-10's shape: synthetic batches, 50,000 / 10,000 examples
    "model": {"name": "P_CNN", "in_shape": [3, 32, 32], "channels": [2], "kernels": [3], "pools": "m", "fc": [10]},
    "rule": {"name": "EP", "beta": 0.5, "T1": 3, "T2": 2, "estimator": "symmetric"},
    "optimizer": {"name": "sgd", "lrs": [0.01, 0.01]},
    "data": {"name": "cifar10", "batch_size": 64, "test_batch_size": 500},
    "epochs": 120,
}


def test_a_paper_config_on_embedded_data():
    """Gammell et al.'s diabetes 5-layer SW network (paper scale, its own CPU config): 400 training examples in
    fixed batches of 5 (shuffle 'once' drops no partial batch here), 40 test examples."""
    r = estimate("gammell2021/diabetes/5layer-swni", "paper", batches=2)
    assert (r.dataset, r.data, r.device, r.batch_size, r.batches_timed) == ("diabetes_gammell", "embedded", "cpu", 5, 2)
    test_batch = get_baseline(r.id).scales["paper"].config.data.test_batch_size
    assert r.train_batches == 400 // 5 and r.test_batches == math.ceil(40 / test_batch)
    assert r.train_batch_s > 0 and r.test_batch_s > 0 and r.peak_kind == "process RSS" and r.peak_bytes > 0
    assert r.epoch_s == pytest.approx(r.train_batches * r.train_batch_s + r.test_batches * r.test_batch_s)
    assert r.run_hours == pytest.approx(r.epochs * r.epoch_s / 3600)


def test_a_dataset_read_from_a_folder_is_replaced_by_synthetic_batches_of_its_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("EQBENCH_DATA_DIR", str(tmp_path / "nothing-here"))  # would fail if anything were read
    cfg = RunConfig.from_dict(TINY_CIFAR)
    x, y = _batches(cfg, 2, 64, "train")[0]
    assert x.shape == (64, 3, 32, 32) and y.dtype == torch.long and int(y.max()) < 10
    r = estimate_config(cfg, "tiny cifar", batches=2)
    assert (r.data, r.train_batches, r.test_batches) == ("synthetic", math.ceil(50_000 / 64), 10_000 // 500)
    assert r.run_hours == pytest.approx(120 * r.epoch_s / 3600)
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.parametrize("shuffle", SHUFFLES)
def test_batches_per_epoch_are_the_training_loaders_for_every_batch_order(shuffle):
    """Fixed batches ("once" and "none") are whole ones only, reshuffled ones ("epoch") keep a partial last batch:
    the estimate counts what training's own loader yields (4,000 MNIST-5k training examples in batches of 7: 571
    or 572)."""
    from eqbench.data import make_loaders

    cfg = get_baseline("laborieux2021/mnist5k/mlp-ep-symmetric-mse").scales["ci"].config
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=7, shuffle=shuffle))
    r = estimate_config(cfg, f"mnist5k, shuffle {shuffle}", batches=1)
    train, _ = make_loaders(cfg.data.name, batch_size=7, shuffle=shuffle, seed=cfg.seed)
    assert r.train_batches == len(train) == (572 if shuffle == "epoch" else 571)


def test_batch_times_lie_within_the_call_and_the_config_is_honoured():
    """A timed batch is a difference of two clock readings inside the call (positive, at most the call's wall time:
    arithmetic, not a speed bound); a float64 config runs its batches in float64; the warm-up may be 0 but not
    negative; the estimate says whether CUDA graphs were on (False on the CPU)."""
    import time

    cfg = get_baseline("laborieux2021/mnist5k/mlp-ep-symmetric-mse").scales["ci"].config
    cfg = dataclasses.replace(cfg, dtype="float64")
    t0 = time.perf_counter()
    r = estimate_config(cfg, "mnist5k float64", batches=2, warmup=0)
    wall = time.perf_counter() - t0
    assert 0 < r.train_batch_s <= wall and 0 < r.test_batch_s <= wall
    assert r.cuda_graphs is False and r.batches_timed == 2
    with pytest.raises(ConfigError, match="the warm-up ≥ 0, got 2 and -1"):
        estimate_config(cfg, "x", batches=2, warmup=-1)


def test_cli_writes_json_and_a_table(tmp_path, capsys):
    out = tmp_path / "est.json"
    assert main(["estimate", "gammell2021/diabetes/5layer-swni", "--batches", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| gammell2021/diabetes/5layer-swni (paper) | cpu | diabetes_gammell, embedded |" in text
    d = json.loads(out.read_text())
    (row,) = d["estimates"]
    assert row["id"] == "gammell2021/diabetes/5layer-swni" and row["epoch_s"] > 0 and d["batches"] == 1
    assert d["scale"] == "paper" and d["torch"] == torch.__version__
    assert set(d["provenance"]) >= {"command", "commit", "machine", "date"}  # what the docs show beside the table
    # the line printed as the config finishes, and the table: the JSON's numbers in their units (ms, MiB)
    mib = f"{row['peak_bytes'] / 2**20:,.0f} MiB (process RSS)"
    ms = f"{row['train_batch_s'] * 1e3:,.1f} ms"
    assert (f"gammell2021/diabetes/5layer-swni: {row['epoch_s']:,.1f} s/epoch on cpu ({ms} per training batch of 5), "
            f"{row['run_hours']:,.2f} h for {row['epochs']} epochs, peak {mib}\n") in text
    assert text.count(mib) == 2 and "| config | device | data | s / epoch | epochs | hours | peak memory |" in text


@pytest.mark.parametrize("argv, message", [
    (["estimate", "no/such/baseline"], "no/such/baseline"),
    (["estimate"], "needs baseline ids or --all"),
    (["estimate", "gammell2021/diabetes/5layer-swni", "--batches", "0"], "--batches must be ≥ 1"),
    (["estimate", "gammell2021/diabetes/5layer-swni", "--scale", "ci"], "has no 'ci' scale"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_one_line():
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        estimate("gammell2021/diabetes/5layer-swni", device="cuda", batches=1)


def test_an_unknown_dataset_shape_is_one_line():
    cfg = RunConfig.from_dict({**TINY_CIFAR, "data": {**TINY_CIFAR["data"], "name": "mystery"}})
    with pytest.raises(ConfigError, match="dataset 'mystery' of x has no known shape"):
        estimate_config(cfg, "x", batches=1)


PAPER = sorted(b.id for b in load_registry().values() if "paper" in b.scales)


@pytest.mark.parametrize("bid", PAPER)
def test_every_paper_config_gets_batches_its_model_takes(bid):
    """What `eqbench estimate --all` needs of each paper config, on the CPU and without its dataset: split sizes,
    a batch of the dataset's shape that the config's rule evaluates and its model scores (two examples; the timed
    training batches themselves take minutes each on two cores for the largest configs)."""
    cfg = dataclasses.replace(get_baseline(bid).scales["paper"].config, device="cpu")
    n_train, n_test = _split_sizes(cfg.data.name, cfg.seed)
    assert n_train > 0 and n_test > 0
    model, rule = build_parts(cfg)[:2]
    ((x, y),) = _batches(cfg, 1, 2, "train")
    scores, _ = rule.predict(model, x.to(DTYPES[cfg.dtype]))
    assert scores.shape[0] == 2 and int(y.max()) < scores.shape[1]


def test_several_configs_run_each_in_its_own_process(capsys):
    """With several ids each config is estimated in a fresh process (its peak RSS is its own)."""
    ids = ["gammell2021/diabetes/5layer-swni", "gammell2021/diabetes/5layer-mlff"]
    assert main(["estimate", *ids, "--batches", "1"]) == 0
    out = capsys.readouterr().out
    assert all(f"| {bid} (paper) | cpu |" in out for bid in ids)
