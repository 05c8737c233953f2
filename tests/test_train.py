"""The trainer: run folder, resume after a kill, divergence, per-layer optimizers, schedules."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from eqbench.config import RunConfig, load_config
from eqbench.errors import ConfigError
from eqbench.testing import hopfield_config as hopfield
from eqbench.train import Trainer, TrainingDiverged, build_optimizer

ROOT = Path(__file__).resolve().parents[1]


def small(**over) -> dict:
    cfg = {
        "model": {"name": "P_MLP", "sizes": [64, 32, 10], "act": "my_hard_sig"},
        "rule": {"name": "EP", "beta": 0.5, "T1": 15, "T2": 5, "estimator": "random_sign"},
        "optimizer": {"name": "sgd", "lrs": [0.2, 0.1], "momentum": 0.9},
        "schedule": {"name": "cosine", "T_max": 2, "eta_min": 1e-3},
        "data": {"name": "digits", "batch_size": 64, "test_batch_size": 200},
        "epochs": 3,
        "seed": 1,
    }
    cfg.update(over)
    return cfg


def _strip(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


def test_run_folder_contents(tmp_path):
    result = Trainer(RunConfig.from_dict(small()), tmp_path, progress=False).fit()
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "accuracy.png", "activations.png", "last.pt", "best.pt",
            "result.json"} <= names
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert load_config(tmp_path / "config.yaml") == RunConfig.from_dict(small())
    assert result["final"]["test_acc"] > 30  # it learned: 3× the 10 % of chance (lr decays fast here)
    # the rate each epoch trained with: cosine from 0.2 to eta_min over T_max = 2 epochs, then held
    # there (Laborieux's T_max semantics: no step once epoch ≥ T_max)
    lrs = [json.loads(line)["lr"][0] for line in lines]
    assert lrs == pytest.approx([0.2, 0.5 * (0.2 + 1e-3), 1e-3])
    # checkpoints load with weights_only=True
    torch.load(tmp_path / "last.pt", weights_only=True)


def test_same_seed_same_numbers(tmp_path):
    a = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path / "a", progress=False).fit()
    b = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path / "b", progress=False).fit()
    assert _strip([a["final"]]) == _strip([b["final"]])


KILLER = textwrap.dedent("""
    import os, signal, sys, yaml
    sys.path.insert(0, {root!r})
    from eqbench.config import RunConfig
    from eqbench.train import Trainer

    def on_batch(epoch, batch):
        if epoch == 1 and batch == 10:  # mid second epoch
            os.kill(os.getpid(), signal.SIGKILL)

    cfg = RunConfig.from_dict(yaml.safe_load(open(sys.argv[1])))
    Trainer(cfg, sys.argv[2], progress=False, on_batch=on_batch).fit()
""")


@pytest.mark.parametrize("cfg", [small(epochs=3), hopfield()], ids=["P_MLP", "HOPFIELD persistent"])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, cfg):
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "killer.py").write_text(KILLER.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, str(tmp_path / "killer.py"), str(tmp_path / "cfg.yaml"),
                           str(tmp_path / "killed")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    killed = tmp_path / "killed"
    assert not (killed / "result.json").exists()
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 1 kept intact
    resumed = Trainer.resume(killed, progress=False).fit()
    full = Trainer(RunConfig.from_dict(cfg), tmp_path / "full", progress=False).fit()
    assert _strip([resumed["final"]]) == _strip([full["final"]])
    hist = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert _strip(hist) == _strip(ref)
    a = torch.load(killed / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_stops_with_epoch_and_batch(tmp_path):
    cfg = small(model={"name": "P_MLP", "sizes": [64, 32, 10], "act": "tanh", "loss": "ce"},
                optimizer={"name": "sgd", "lrs": [1e30, 1e30]}, epochs=2, schedule=None)
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1, batch \d+: "):
        Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False).fit()
    assert (tmp_path / "config.yaml").exists() and not (tmp_path / "result.json").exists()


def test_per_layer_groups_must_match_lrs():
    cfg = RunConfig.from_dict(small(optimizer={"name": "adam", "lrs": [1e-3]}))
    with pytest.raises(ConfigError, match=r"P_MLP has 2 layers of parameters but optimizer.lrs has 1 entries"):
        Trainer(cfg, "unused", progress=False)


def test_layer_groups_take_their_own_rates():
    from eqbench import build_model
    from eqbench.config import OptimizerConfig

    m = build_model("VF_CNN", in_shape=(1, 8, 8), channels=[4, 8], kernels=[3, 3], paddings=[1, 1], pools="mm",
                    fc=[16, 10], loss="ce", softmax=True)
    opt = build_optimizer(m, OptimizerConfig("sgd", [0.1, 0.2, 0.3, 0.4], [0.0, 1e-4, 0.0, 0.0], 0.9))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2, 0.3, 0.4]
    # the feedback module of connection 1 shares connection 1's rate (Laborieux: B_syn[i] takes lrs[i+1])
    assert any(p is m.feedbacks[0].weight for p in opt.param_groups[1]["params"])
    assert opt.param_groups[3]["params"][0] is m.readout.weight


def test_dataset_model_mismatch():
    cfg = RunConfig.from_dict(small(model={"name": "P_MLP", "sizes": [784, 32, 10]}))
    with pytest.raises(ConfigError, match=r"digits inputs have shape \(1, 8, 8\) but P_MLP expects \(784,\)"):
        Trainer(cfg, "unused", progress=False)


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"is not a run folder: .*config.yaml is missing"):
        Trainer.resume(tmp_path)
