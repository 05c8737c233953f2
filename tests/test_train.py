"""The trainer: run folder, resume after a kill, divergence, per-layer optimizers, schedules."""

from __future__ import annotations

import io
import json
import math
import re
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
from eqbench.train import Trainer, TrainingDiverged, build_optimizer, build_parts, build_run

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


def _predicted_right(trainer: Trainer, loader) -> tuple[float, int]:
    """The percent of ``loader``'s examples whose `predict` class is right, and how many examples there are."""
    right = total = 0
    for x, y in loader:
        out, _ = trainer.run.rule.predict(trainer.run.model, x)
        right += int((out.argmax(1) == y).sum())
        total += len(y)
    return 100.0 * right / total, total


def _metrics(folder: Path) -> list[dict]:
    """The rows of ``folder``'s metrics.jsonl."""
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


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
    hist, ref = _metrics(killed), _metrics(tmp_path / "full")
    assert _strip(hist) == _strip(ref)
    a = torch.load(killed / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_stops_with_epoch_and_batch(tmp_path):
    cfg = small(model={"name": "P_MLP", "sizes": [64, 32, 10], "act": "tanh", "loss": "ce"},
                optimizer={"name": "sgd", "lrs": [1e30, 1e30]}, epochs=2, schedule=None)
    # the first update (rate 1e30) is finite, the second makes the weights infinite, the third batch's free phase
    # diverges at once; the message counts batches from 1, like epochs
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch 1, batch 3: non-finite state in layer 1 "
                                               r"at step 1 of the free phase"):
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


class _Stop(Exception):
    pass


def _cut(cfg: dict, out: Path, epoch: int) -> None:
    """Run ``cfg`` into ``out`` and stop it at the first batch of ``epoch`` (0-based): the checkpoint of the
    epochs before is what a killed run leaves."""
    def stop(e, b):
        if e == epoch:
            raise _Stop

    with pytest.raises(_Stop):
        Trainer(RunConfig.from_dict(cfg), out, progress=False, on_batch=stop).fit()


def test_a_resumed_run_keeps_the_batch_log_of_the_epochs_before(tmp_path):
    """The per-batch values a model logs (Gammell's correction rates, plotted in batch_metrics.png) cover the
    whole run after a resume, the batches before the kill included."""
    _cut(hopfield(epochs=2), tmp_path / "cut", epoch=1)
    resumed = Trainer.resume(tmp_path / "cut", progress=False)
    resumed.fit()
    full = Trainer(RunConfig.from_dict(hopfield(epochs=2)), tmp_path / "full", progress=False)
    full.fit()
    n = len(full.run.train_loader)
    assert len(full.batch_log) == 2 * n and resumed.batch_log == full.batch_log


def test_a_checkpoint_from_before_batch_metrics_resumes_with_its_rates(tmp_path):
    """Run folders written before models declared batch_metrics kept Gammell's rates as one (batches × layers)
    tensor ``rates`` and no ``batch_log``: they resume with those rates as the log, named rate/1 … rate/L."""
    _cut(hopfield(epochs=2), tmp_path / "cut", epoch=1)
    path = tmp_path / "cut" / "last.pt"
    ck = torch.load(path, weights_only=True)
    log = [json.loads(line) for line in ck.pop("batch_log")]
    layers = len(log[0])
    ck["rates"] = torch.tensor([[row[f"rate/{k + 1}"] for k in range(layers)] for row in log], dtype=torch.float64)
    torch.save(ck, path)
    assert Trainer.resume(tmp_path / "cut", progress=False).batch_log == log


def _checkpoint_of_two_ranks(run: Path) -> list[dict]:
    """Turn the single-process checkpoint in ``run`` into one written by two data-parallel processes: each rank
    kept its own particles (here told apart by their values)."""
    path = run / "last.pt"
    ck = torch.load(path, weights_only=True)
    ranks = []
    for r in range(2):
        state = dict(ck["rule"])
        state["particles"] = {k: [torch.full_like(t, 10.0 * r + 1) for t in v]
                              for k, v in ck["rule"]["particles"].items()}
        ranks.append(state)
    ck["rule_ranks"] = ranks
    torch.save(ck, path)
    return ranks


def _as_rank(monkeypatch, rank: int, world: int) -> None:
    """This process as rank ``rank`` of ``world`` data-parallel processes (what eqbench.distributed reports under
    torch.distributed), without starting any: `Trainer._load` only reads the shard."""
    from eqbench import distributed

    monkeypatch.setattr(distributed, "current", lambda: distributed.Shard(rank, world))


def test_a_trainer_downloads_nothing_unless_asked(tmp_path, monkeypatch):
    """Trainer(cfg, out) without download=True (the CLI's default, no --download) never fetches a dataset: a missing
    MNIST folder is the one-line DatasetMissingError naming it (torchvision's fetch is replaced by a failure here,
    so a download attempt cannot hide behind the sandbox's missing network)."""
    torchvision = pytest.importorskip("torchvision")
    from eqbench.errors import DatasetMissingError

    def fetch(self):
        raise AssertionError("torchvision was asked to download")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fetch)
    cfg = RunConfig.from_dict(small(model={"name": "P_MLP", "sizes": [784, 16, 10]},
                                    data={"name": "mnist", "batch_size": 64}))
    data = tmp_path / "data"
    missing = re.escape(f"{data / 'MNIST' / 'raw'} lacks")
    with pytest.raises(DatasetMissingError, match=missing):
        Trainer(cfg, tmp_path / "run", data_dir=str(data), progress=False)
    with pytest.raises(DatasetMissingError, match=missing):
        build_run(cfg, str(data))  # the public builder: the same default
    with pytest.raises(DatasetMissingError, match="could not be downloaded into .*asked to download"):  # the control
        Trainer(cfg, tmp_path / "run", data_dir=str(data), download=True)


def test_more_processes_than_examples_in_a_batch_is_one_line(tmp_path, monkeypatch):
    """Each data-parallel process needs at least one example of every batch: a batch of 2 trains on 2 processes
    and is refused, in one line naming both numbers, on 3."""
    cfg = RunConfig.from_dict(small(data={"name": "digits", "batch_size": 2, "test_batch_size": 200}))
    _as_rank(monkeypatch, 0, 2)
    assert Trainer(cfg, tmp_path, progress=False).shard.world == 2
    _as_rank(monkeypatch, 0, 3)
    with pytest.raises(ConfigError) as e:
        Trainer(cfg, tmp_path, progress=False)
    assert str(e.value) == "3 data-parallel processes for a batch of 2: each process needs at least one example"


def test_the_run_seed_also_chooses_the_order_of_the_training_examples():
    """seed seeds the training split's shuffle as well as the weights: the same seed gives the same first batch,
    another seed another batch."""
    def first_batch(seed: int) -> torch.Tensor:
        return next(iter(build_run(RunConfig.from_dict(small(seed=seed))).train_loader))[0]

    assert torch.equal(first_batch(1), first_batch(1)) and not torch.equal(first_batch(1), first_batch(2))


def test_an_ep_rules_sign_coins_follow_the_run_seed():
    """random_sign EP draws its β signs from its own generator, seeded with the run's seed when built from a
    config (so another seed gives other coins), unless the rule config names a seed of its own."""
    def coins(run_seed: int, **rule) -> torch.Tensor:
        cfg = small(seed=run_seed)
        cfg["rule"] = {**cfg["rule"], **rule}
        return build_parts(RunConfig.from_dict(cfg))[1].state_dict()["gen"]

    assert torch.equal(coins(7), torch.Generator().manual_seed(7).get_state())
    assert torch.equal(coins(7, seed=3), torch.Generator().manual_seed(3).get_state())


@pytest.mark.parametrize("shuffle, same", [("none", True), ("once", True), ("epoch", False)])
def test_the_run_configs_shuffle_decides_whether_epochs_repeat_their_batches(shuffle, same):
    """data.shuffle reaches the training loader: "none" and "once" (Gammell et al.'s fixed batches) give every
    epoch the same batches, "epoch" reshuffles them."""
    data = {"name": "digits", "batch_size": 64, "test_batch_size": 200, "shuffle": shuffle}
    loader = build_run(RunConfig.from_dict(small(data=data))).train_loader
    first, second = [torch.cat([x for x, _ in loader]) for _ in range(2)]
    assert torch.equal(first, second) == same


def test_only_rank_0_takes_the_run_folders_lock(tmp_path, monkeypatch):
    """In a data-parallel run rank 0 holds the folder's lock (it alone writes there) while the other ranks train in
    the same folder: rank 1 must not ask for the lock rank 0 holds (held here by this test, which flock treats as
    another holder), so its fit goes on."""
    from eqbench.runlock import RunFolderLock

    _as_rank(monkeypatch, 1, 2)
    trainer = Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path, progress=False)
    monkeypatch.setattr(Trainer, "_fit", lambda self: {"trained": True})  # the epochs need rank 0's all-reduces
    with RunFolderLock(tmp_path):
        assert trainer.fit() == {"trained": True}
    _as_rank(monkeypatch, 0, 2)  # the control: rank 0 asks for the lock and is refused while it is held
    with RunFolderLock(tmp_path), pytest.raises(ConfigError, match="is being written by"):
        Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path, progress=False).fit()


def test_each_rank_resumes_its_own_persistent_particles(tmp_path, monkeypatch):
    _cut(hopfield(epochs=2), tmp_path / "run", epoch=1)
    ranks = _checkpoint_of_two_ranks(tmp_path / "run")
    for r in range(2):
        _as_rank(monkeypatch, r, 2)
        particles = Trainer.resume(tmp_path / "run", progress=False).run.rule.state_dict()["particles"]
        assert particles.keys() == ranks[r]["particles"].keys()
        assert all(torch.equal(a, b) for k in particles for a, b in zip(particles[k], ranks[r]["particles"][k]))


@pytest.mark.parametrize("world", [1, 3])
def test_resuming_with_another_number_of_processes_is_one_line(tmp_path, monkeypatch, world):
    _cut(hopfield(epochs=2), tmp_path / "run", epoch=1)
    _checkpoint_of_two_ranks(tmp_path / "run")
    _as_rank(monkeypatch, 0, world)
    with pytest.raises(ConfigError) as e:
        Trainer.resume(tmp_path / "run", progress=False)
    assert str(e.value) == (f"{tmp_path / 'run'} was written by 2 data-parallel processes; resume it with as many "
                            f"(--ddp 2), not {world}")


@pytest.mark.parametrize("cfg, refused", [(hopfield(epochs=2), True), (small(epochs=2), False)],
                         ids=["persistent particles", "no particles"])
def test_a_single_process_run_resumes_on_two_only_without_particles(tmp_path, monkeypatch, cfg, refused):
    """One process's persistent particles are whole batches, which two ranks cannot split; a rule without
    particles (its sign coin only) continues on any number of processes."""
    _cut(cfg, tmp_path / "run", epoch=1)
    _as_rank(monkeypatch, 0, 2)
    if refused:
        with pytest.raises(ConfigError) as e:
            Trainer.resume(tmp_path / "run", progress=False)
        assert str(e.value) == (f"{tmp_path / 'run'} was written by one process: its persistent particles are whole "
                                "batches, resume it without --ddp")
    else:
        assert Trainer.resume(tmp_path / "run", progress=False).epoch == 1


def _fake_cuda(monkeypatch, saved: list[torch.Tensor], restored: list) -> None:
    """CUDA as the trainer sees it (is_available and the generators' getter and setter), on any machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)


def test_a_gpu_run_saves_its_cuda_generators_and_resume_restores_them(tmp_path, monkeypatch):
    """A GPU run's checkpoint keeps the CUDA generator states (its dropout masks, its random signs on the device)
    and a resume on a machine with CUDA restores them (CUDA simulated, so the test runs everywhere)."""
    saved, restored = [torch.ByteTensor([1, 2, 3])], []
    _fake_cuda(monkeypatch, saved, restored)
    _cut(small(epochs=2), tmp_path / "run", epoch=1)
    assert Trainer.resume(tmp_path / "run", progress=False).epoch == 1
    assert len(restored) == 1 and [torch.equal(a, b) for a, b in zip(restored[0], saved)] == [True]


def test_a_cpu_checkpoint_resumes_on_a_machine_with_cuda(tmp_path, monkeypatch):
    """Written without CUDA (no CUDA generator states), resumed where CUDA is: nothing to restore, no error."""
    _cut(small(epochs=2), tmp_path / "run", epoch=1)
    restored = []
    _fake_cuda(monkeypatch, [], restored)
    assert Trainer.resume(tmp_path / "run", progress=False).epoch == 1 and restored == []


def test_a_checkpoint_that_kept_only_the_sign_coin_resumes_with_it(tmp_path):
    """Run folders written before rules had a state_dict kept the random-sign estimator's coin in ``rng.rule``:
    they resume with that coin, so the signs, and the whole run, are those of an uninterrupted run."""
    _cut(small(epochs=2), tmp_path / "cut", epoch=1)
    path = tmp_path / "cut" / "last.pt"
    ck = torch.load(path, weights_only=True)
    ck["rng"]["rule"] = ck.pop("rule")["gen"]
    torch.save(ck, path)
    resumed = Trainer.resume(tmp_path / "cut", progress=False).fit()
    full = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path / "full", progress=False).fit()
    assert _strip([resumed["final"]]) == _strip([full["final"]])


def test_resume_passes_its_options_to_the_trainer(tmp_path):
    _cut(small(epochs=2), tmp_path / "run", epoch=1)
    seen = []
    Trainer.resume(tmp_path / "run", progress=False, on_batch=lambda e, b: seen.append(e)).fit()
    assert seen and set(seen) == {1}  # the hook ran, in the epoch that was left


@pytest.mark.parametrize("world", [1, 2])
def test_rank_zero_checkpoints_every_ranks_particles(tmp_path, monkeypatch, world):
    """Under N data-parallel processes rank 0 writes each rank's rule state (its own persistent particles) in
    ``rule_ranks``, which `test_each_rank_resumes_its_own_persistent_particles` reads back; one process writes
    none. The collectives are simulated (rank 0 of ``world``; the other rank's state is a marker), so no process
    group is started: tests/test_distributed.py runs the real two processes."""
    from eqbench import distributed

    other = {"particles": {"train/0": [torch.full((5, 8), 7.0)]}, "gen": torch.Generator().get_state()}
    monkeypatch.setattr(distributed, "current", lambda: distributed.Shard(0, world))
    monkeypatch.setattr(distributed, "gather", lambda state, shard: [state, other][:shard.world])
    averaged = []  # (this rank's examples, the batch's): each rank's mean update is weighted by its share
    monkeypatch.setattr(distributed, "average_grads",
                        lambda model, shard, n, n_batch: averaged.append((model is trainer.run.model, n, n_batch)))
    monkeypatch.setattr(distributed, "sums", lambda values, shard: values)
    trainer = Trainer(RunConfig.from_dict(hopfield(epochs=1)), tmp_path, progress=False)
    trainer.fit()
    batch = hopfield()["data"]["batch_size"]
    mine = len(distributed.split(torch.zeros(batch), torch.zeros(batch), distributed.Shard(0, world))[1])
    assert averaged and set(averaged) == {(True, mine, batch)} and (world == 1) == (mine == batch)
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    if world == 1:
        assert "rule_ranks" not in ck
    else:
        assert len(ck["rule_ranks"]) == 2 and ck["rule_ranks"][0]["particles"].keys() == ck["rule"]["particles"].keys()
        assert torch.equal(ck["rule_ranks"][1]["particles"]["train/0"][0], other["particles"]["train/0"][0])


@pytest.mark.parametrize("cfg, key", [(small(epochs=3), "test_acc"), (hopfield(epochs=3), "test_cost")],
                         ids=["classification", "regression"])
def test_best_pt_holds_the_best_epochs_model_and_score(tmp_path, cfg, key):
    """best.pt: the weights, epoch number and test metric of the best epoch so far (highest accuracy, or lowest
    cost for regression), as result.json's best_test_* reports."""
    result = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False).fit()
    rows = _metrics(tmp_path)
    pick = max if key == "test_acc" else min
    best_row = pick(rows, key=lambda r: r[key])  # the first of equal scores: a later tie is no improvement
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert set(best) == {"model", "epoch", key}
    assert (best["epoch"], best[key]) == (best_row["epoch"], best_row[key])
    assert best[key] == result[f"best_{key}"]
    model = Trainer(RunConfig.from_dict(cfg), tmp_path / "fresh", progress=False).run.model
    model.load_state_dict(best["model"])  # a whole state dict of the run's model
    if best["epoch"] == rows[-1]["epoch"]:
        last = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
        assert all(torch.equal(best["model"][k], last[k]) for k in last)


def test_a_later_epoch_that_only_ties_the_best_score_leaves_best_pt_alone(tmp_path):
    """With the rates at 0 every epoch scores the same; best.pt stays the first epoch that reached that score
    (a tie is no improvement, so best.pt is not rewritten with a later epoch's weights)."""
    cfg = small(epochs=3, optimizer={"name": "sgd", "lrs": [0.0, 0.0]}, schedule=None)
    Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False).fit()
    rows = _metrics(tmp_path)
    assert len({r["test_acc"] for r in rows}) == 1  # the premise: three equal scores
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("cfg, key, unit", [(small(epochs=2), "acc", "%"), (hopfield(epochs=2), "cost", "")],
                         ids=["classification", "regression"])
def test_each_epoch_prints_one_summary_line(tmp_path, capsys, cfg, key, unit):
    """After each epoch the terminal gets "epoch k: train loss …, train acc …%, test acc …%" (a cost, without a
    percent sign, for regression), with metrics.jsonl's numbers; progress is on by default."""
    Trainer(RunConfig.from_dict(cfg), tmp_path).fit()
    printed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert printed == [f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, train {key} {r[f'train_{key}']:.4g}"
                       f"{unit}, test {key} {r[f'test_{key}']:.4g}{unit}" for r in _metrics(tmp_path)]


def test_evaluate_is_the_percent_of_test_examples_predicted_right(tmp_path):
    cfg = small(epochs=1, data={"name": "digits", "batch_size": 64, "test_batch_size": 64})  # several test batches
    trainer = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False)
    assert len(trainer.run.test_loader) > 1
    assert trainer.evaluate() == _predicted_right(trainer, trainer.run.test_loader)[0]


def test_an_evaluation_batch_smaller_than_the_processes_is_no_error(tmp_path, monkeypatch):
    """Evaluation sums over ranks, so a last test batch with fewer examples than processes is fine (a rank may get
    none), unlike a training batch (rank 1 of 2 here, collectives simulated)."""
    from eqbench import distributed

    trainer = Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path / "probe", progress=False)
    n = len(trainer.run.test_loader.dataset)
    size = next(b for b in range(2, n) if n % b == 1)  # the last test batch holds one example
    cfg = small(epochs=1, data={"name": "digits", "batch_size": 64, "test_batch_size": size})
    monkeypatch.setattr(distributed, "current", lambda: distributed.Shard(1, 2))
    monkeypatch.setattr(distributed, "sums", lambda values, shard: values)
    trainer = Trainer(RunConfig.from_dict(cfg), tmp_path / "run", progress=False)
    assert len(list(trainer.run.test_loader)[-1][1]) == 1
    assert 0.0 <= trainer.evaluate() <= 100.0


FA_RUN = {"model": {"name": "FC", "sizes": [64, 32, 10]}, "rule": {"name": "FA"},
          "optimizer": {"name": "sgd", "lrs": [0.05, 0.05]},
          "data": {"name": "digits", "batch_size": 64, "test_batch_size": 100}, "epochs": 2, "seed": 0}


def test_each_epoch_logs_the_rules_diagnostics_on_the_first_test_batch(tmp_path):
    """A rule's per-epoch diagnostics (FA: the angle of each layer's update to BP's gradient) are in every
    metrics.jsonl row, computed on the first test batch with the weights at the end of that epoch."""
    trainer = Trainer(RunConfig.from_dict(FA_RUN), tmp_path, progress=False)
    trainer.fit()
    rows = _metrics(tmp_path)
    x, y = next(iter(trainer.run.test_loader))
    expected = trainer.run.rule.diagnostics(trainer.run.model, x, y)
    assert set(expected) == {"angle/W1", "angle/W2"} and all(set(expected) <= set(r) for r in rows)
    assert {k: rows[-1][k] for k in expected} == expected
    assert rows[0]["angle/W1"] != rows[-1]["angle/W1"]  # each epoch its own
    assert (tmp_path / "alignment.png").read_bytes().startswith(b"\x89PNG")  # the angles' figure, per epoch


def test_every_plot_of_a_run_is_titled_with_its_folder(tmp_path, monkeypatch):
    """accuracy.png, batch_metrics.png, flips.png and alignment.png carry the run folder's name as their title, so a
    figure copied out of its folder still says which run it shows."""
    from eqbench import plots

    titles = {}
    for name in ("plot_accuracy", "plot_batch_metrics", "plot_flips", "plot_angles"):
        monkeypatch.setattr(plots, name, lambda *a, _n=name, **kw: titles.setdefault(_n, kw.get("title")))
    Trainer(RunConfig.from_dict(hopfield(epochs=1)), tmp_path / "hopfield-run", progress=False).fit()
    Trainer(RunConfig.from_dict({**FA_RUN, "epochs": 1}), tmp_path / "fa-run", progress=False).fit()
    binary = {"model": {"name": "BIN_MLP", "sizes": [64, 32, 10]},
              "rule": {"name": "EP", "beta": 0.3, "T1": 8, "T2": 3},
              "optimizer": {"name": "flip", "lrs": [0.05, 0.025], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6]},
              "data": {"name": "digits", "batch_size": 64}, "epochs": 1}
    Trainer(RunConfig.from_dict(binary), tmp_path / "binary-run", progress=False).fit()
    assert titles == {"plot_accuracy": "hopfield-run", "plot_batch_metrics": "hopfield-run",
                      "plot_angles": "fa-run", "plot_flips": "binary-run"}


def _spy_progress(monkeypatch) -> list[tuple]:
    """What the trainer asks its rich progress bar to show: ("add", description, total, stats) when an epoch's bar
    starts, ("update", advance, stats) after each batch."""
    from rich.progress import Progress

    calls: list[tuple] = []
    add, update = Progress.add_task, Progress.update

    def spy_add(self, description, *a, **kw):
        calls.append(("add", description, kw.get("total"), kw.get("stats")))
        return add(self, description, *a, **kw)

    def spy_update(self, task, **kw):
        calls.append(("update", kw.get("advance"), kw.get("stats")))
        return update(self, task, **kw)

    monkeypatch.setattr(Progress, "add_task", spy_add)
    monkeypatch.setattr(Progress, "update", spy_update)
    return calls


@pytest.mark.parametrize("cfg, name", [(small(epochs=2), "acc"), (hopfield(epochs=2), "cost")],
                         ids=["classification", "regression"])
def test_the_progress_bar_counts_batches_and_shows_the_running_loss_and_metric(tmp_path, monkeypatch, cfg, name):
    """Epoch k/N over the epoch's batches; after each batch the running mean loss and training accuracy (or cost)
    so far, which after the last batch are the epoch's train_loss and train_{acc,cost} of metrics.jsonl."""
    calls = _spy_progress(monkeypatch)
    trainer = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=True)
    trainer.fit()
    n = len(trainer.run.train_loader)
    rows = _metrics(tmp_path)
    assert [c for c in calls if c[0] == "add"] == [("add", "epoch 1/2", n, ""), ("add", "epoch 2/2", n, "")]
    updates = [c for c in calls if c[0] == "update"]
    assert len(updates) == 2 * n and all(c[1] == 1 for c in updates)
    for k, row in enumerate(rows):
        assert updates[(k + 1) * n - 1][2] == f"loss {row['train_loss']:.4f}  {name} {row[f'train_{name}']:.4g}"


def test_the_progress_line_shows_epoch_bar_count_elapsed_time_and_running_stats(tmp_path, monkeypatch):
    """What a user watching a run reads on the epoch's last batch, in this order: "epoch k/N", a full bar, "n/n"
    batches done, the elapsed time and the running loss and accuracy (rendered as rich draws it, just before the
    epoch's bar is removed)."""
    from rich.console import Console
    from rich.progress import Progress

    lines: list[str] = []
    remove = Progress.remove_task

    def render_then_remove(self, task):
        console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
        console.print(self.make_tasks_table(self.tasks))
        lines.append(console.export_text().strip())
        return remove(self, task)

    monkeypatch.setattr(Progress, "remove_task", render_then_remove)
    trainer = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path, progress=True)
    trainer.fit()
    n = len(trainer.run.train_loader)
    rows = _metrics(tmp_path)
    assert len(lines) == 2
    for k, (line, row) in enumerate(zip(lines, rows)):
        stats = f"loss {row['train_loss']:.4f}  acc {row['train_acc']:.4g}"
        assert re.fullmatch(rf"epoch {k + 1}/2 ━+ {n}/{n} \d+:\d\d:\d\d {re.escape(stats)}", line), line


def test_evaluate_is_the_mean_test_cost_for_regression(tmp_path):
    """Regression (Gammell's diabetes): the mean over test examples of ½‖y − ŷ‖²."""
    trainer = Trainer(RunConfig.from_dict(hopfield(epochs=1)), tmp_path, progress=False)
    costs = []
    for b, (x, y) in enumerate(trainer.run.test_loader):
        out, _ = trainer.run.rule.predict(trainer.run.model, x, key=f"probe/{b}")
        costs += (0.5 * ((y.reshape(out.shape) - out) ** 2).sum(1)).tolist()
    assert trainer.evaluate() == pytest.approx(sum(costs) / len(costs), rel=1e-6)  # float32 sums, other order


def test_persistent_particles_are_kept_per_batch_of_each_split(tmp_path):
    """Gammell's persistent particles: one per fixed batch, training and test apart, named split/batch."""
    trainer = Trainer(RunConfig.from_dict(hopfield(epochs=1)), tmp_path, progress=False)
    trainer.fit()
    keys = set(trainer.run.rule.state_dict()["particles"])
    assert keys == {f"train/{b}" for b in range(len(trainer.run.train_loader))} | \
        {f"test/{b}" for b in range(len(trainer.run.test_loader))}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("cfg", [small(epochs=1), hopfield(epochs=1)], ids=["classification", "regression"])
def test_a_cuda_run_trains_on_the_gpu(tmp_path, cfg):
    """device: cuda moves the model and every batch (inputs and targets) to the GPU (a batch left on the CPU
    fails the first drive): the run ends with finite metrics and its checkpoint holds CUDA tensors."""
    result = Trainer(RunConfig.from_dict({**cfg, "device": "cuda"}), tmp_path, progress=False).fit()
    model = torch.load(tmp_path / "last.pt", weights_only=True)["model"]  # saved where it trained
    assert all(v.is_cuda for v in model.values()) and math.isfinite(result["final"]["train_loss"])


@pytest.mark.parametrize("cfg", [small(epochs=1), hopfield(epochs=1)], ids=["classification", "regression"])
def test_a_float64_run_trains_in_float64(tmp_path, cfg):
    """dtype: float64 casts the data (inputs, and regression targets) to the model's precision."""
    result = Trainer(RunConfig.from_dict({**cfg, "dtype": "float64"}), tmp_path, progress=False).fit()
    model = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert all(v.dtype == torch.float64 for v in model.values() if v.is_floating_point())
    assert math.isfinite(result["final"]["train_loss"])


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_a_regression_runs_train_cost_is_its_train_loss_in_every_dtype(tmp_path, dtype):
    """Regression: train_cost (the trainer's ½‖y − ŷ‖² on each batch's free phase) and train_loss (the rule's loss)
    are the same cost, so metrics.jsonl's two columns agree to the bit in each dtype, bfloat16 included: the
    targets are cast to the run's dtype as the inputs are (a float32 target against a bfloat16 output would make
    train_cost a mixed-precision cost the rule never computed)."""
    Trainer(RunConfig.from_dict(hopfield(epochs=2, dtype=dtype)), tmp_path, progress=False).fit()
    rows = _metrics(tmp_path)
    assert len(rows) == 2 and all(row["train_cost"] == row["train_loss"] for row in rows)


def test_train_acc_is_the_percent_of_training_examples_the_free_phase_got_right(tmp_path):
    """train_acc is measured on each batch's free phase before its update (Gammell's training error): with the
    rates at 0 the weights never move, so it is the accuracy of `predict` over the training set."""
    cfg = small(epochs=1, optimizer={"name": "sgd", "lrs": [0.0, 0.0]}, schedule=None)
    trainer = Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False)
    row = trainer.fit()["final"]
    percent, total = _predicted_right(trainer, trainer.run.train_loader)
    assert row["train_acc"] == pytest.approx(percent, rel=1e-12)
    losses = [trainer.run.rule.compute_gradients(trainer.run.model, x, y)["loss"] for x, y in trainer.run.train_loader]
    assert row["train_loss"] == pytest.approx(float(sum(v.sum() for v in losses)) / total, rel=1e-6)  # float32 sums


def test_a_non_finite_loss_without_relaxation_names_its_epoch_and_batch(tmp_path):
    """A rule that does not relax (FA) cannot diverge inside a phase; the non-finite loss is caught after the
    batch, named by epoch and batch (the rate 1e30 makes the weights infinite after batch 1)."""
    cfg = {**FA_RUN, "optimizer": {"name": "sgd", "lrs": [1e30, 1e30]}, "epochs": 1}
    with pytest.raises(TrainingDiverged) as e:
        Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False).fit()
    assert str(e.value) == f"training diverged at epoch 1, batch 2: non-finite loss; the last good checkpoint is in " \
                           f"{tmp_path}"


@pytest.mark.parametrize("schedule, lrs", [
    ({"name": "multistep", "milestones": [1, 3], "gamma": 0.5}, [0.2, 0.1, 0.1, 0.05]),  # not torch's default 0.1
    ({"name": "cosine", "T_max": 2, "eta_min": 1e-3}, [0.2, 0.5 * (0.2 + 1e-3), 1e-3, 1e-3]),
], ids=["multistep", "cosine held after T_max"])
def test_each_epoch_trains_with_its_scheduled_rate(tmp_path, schedule, lrs):
    """The rate of each epoch in metrics.jsonl: multistep decays by gamma at each milestone; cosine reaches eta_min
    at T_max and stays there (Laborieux's code steps only while epoch < T_max)."""
    Trainer(RunConfig.from_dict(small(epochs=4, schedule=schedule)), tmp_path, progress=False).fit()
    rows = _metrics(tmp_path)
    assert [r["lr"][0] for r in rows] == pytest.approx(lrs)


def test_a_quiet_run_prints_nothing(tmp_path, capfd):
    """progress=False (``--quiet``): no bar and no epoch lines on the terminal."""
    Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path, progress=False).fit()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
