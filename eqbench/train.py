"""The trainer: epochs of one learning rule over a dataset, with a run folder that survives kills.

One trainer for every rule that writes ``.grad`` (EP estimators, BPTT, and later non-EP rules):
per-layer learning rates and weight decays, SGD with momentum or Adam (torch.optim), cosine
annealing with Laborieux's ``T_max`` semantics (stepped once per epoch while epoch < T_max, so a
120-epoch run with T_max = 100 spends its last 20 epochs at eta_min, §A.8), evaluation with the
free phase only (§A.9).

The run folder::

    config.yaml      the resolved config
    metrics.jsonl    one JSON line per finished epoch (and an epoch-0 line of the test set before training,
                     with ``initial_eval``)
    accuracy.png     train / test accuracy per epoch, redrawn every epoch
    activations.png  histogram of the free-phase activations of each layer (first test batch)
    alignment.png    per-layer angle of the update to BP's gradient, for rules that report one
    batch_metrics.png the model's per-batch metrics (e.g. Gammell et al.'s per-layer correction rates), if any
    flips.png        per-layer fraction of binary weights flipped per epoch (the flip optimizer)
    last.pt, best.pt checkpoints (model, optimizer, scheduler, RNG states, history)
    previous.pt      the checkpoint before last.pt: resume falls back to it if last.pt is unreadable
    .lock, .lock.json the writer's lock and who holds it (eqbench.runlock), while a process trains here
    result.json      written when the last epoch is done

Every file is written atomically (a temporary file renamed over the old one), the checkpoint first:
a kill at any moment leaves the last finished epoch's checkpoint and metrics intact, and
``resume`` replays the interrupted epoch with the same RNG states, so a resumed run ends with the
same numbers as an uninterrupted one.

Regression datasets (``DATASET_INFO[name].task``) are scored by the mean cost C = ½‖y − ŷ‖² (Gammell et
al.'s error for diabetes) instead of accuracy; a rule with ``persistent`` particles is given a ``key``
per fixed batch (``train/<b>``, ``test/<b>``) and needs ``data.shuffle: once`` or ``none``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import distributed, graphs
from .config import DTYPES, RunConfig, has_tf32, load_config
from .data import DATASET_INFO, make_loaders
from .errors import ConfigError, DivergenceError, EqbenchError, one_line
from .io import save_torch, write_json, write_text
from .models import build_model, model_factory
from .optim import FlipOptimizer, flip_groups
from .rules.algorithms import build_rule
from .runlock import RunFolderLock


class TrainingDiverged(EqbenchError):
    """Non-finite states or loss during training; the run folder keeps the last good epoch."""


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """One parameter group per layer with its own learning rate and weight decay (Laborieux §A.8), as the
    model arranges them (``param_groups(lrs, wds)``, e.g. Gammell's reference rates).
    A model with binary weights trains with ``flip`` (eqbench.optim), and only with it."""
    binary = bool(model.binary_weights())
    if binary != (cfg.name == "flip"):
        raise ConfigError(f"{model.name} with binary weights trains with optimizer 'flip', not {cfg.name!r}" if binary
                          else f"optimizer 'flip' trains binary weights, and {model.name} has none")
    if binary:

        return FlipOptimizer(flip_groups(model, cfg.gammas, cfg.thresholds, cfg.lrs, cfg.lrs_alpha))
    groups = model.layer_parameters()
    if len(groups) != len(cfg.lrs):
        raise ConfigError(f"{model.name} has {len(groups)} layers of parameters but optimizer.lrs has "
                          f"{len(cfg.lrs)} entries (one per layer, the readout included)")
    params = model.param_groups(cfg.lrs, cfg.wds or [0.0] * len(groups))
    if cfg.name == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum)
    return torch.optim.Adam(params)


@dataclass
class Run:
    """What ``build_run`` assembles from a config."""

    model: torch.nn.Module  # an EnergyModel, or a feed-forward model of eqbench.rules.forward's rules
    rule: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    train_loader: torch.utils.data.DataLoader
    test_loader: torch.utils.data.DataLoader


def build_run(cfg: RunConfig, data_dir: str | None = None, download: bool = False) -> Run:
    model, rule, optimizer, scheduler = build_parts(cfg)
    train, test = make_loaders(cfg.data.name, batch_size=cfg.data.batch_size, test_batch_size=cfg.data.test_batch_size,
                               data_dir=data_dir, download=download, augment=cfg.data.augment,
                               normalize=cfg.data.normalize, seed=cfg.seed, shuffle=cfg.data.shuffle,
                               embeddings=cfg.data.embeddings)
    return Run(model, rule, optimizer, scheduler, train, test)


def set_precision(cfg: RunConfig) -> None:
    """Apply ``cfg.matmul_precision`` (``torch.set_float32_matmul_precision``, process-wide, as torch has it) after
    checking that the device can honour ``cfg.dtype`` and the precision: bfloat16 needs a GPU that supports it,
    TF32 ("high") an Ampere or newer GPU; on the CPU "high" and "medium" only act where the CPU has bf16 units.
    Also switches CUDA graphs on or off (``cfg.cuda_graphs``, eqbench.graphs.enable), which need a CUDA device."""
    dev = torch.device(cfg.device)
    if cfg.cuda_graphs and dev.type != "cuda":
        raise ConfigError(f"cuda_graphs: CUDA graphs need a CUDA device; the run's device is {cfg.device!r}")
    if dev.type == "cuda" and torch.cuda.is_available():
        if cfg.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"dtype bfloat16: {torch.cuda.get_device_name(dev)} does not support it")
        if cfg.matmul_precision == "high" and not has_tf32(dev):
            raise ConfigError(f"matmul_precision 'high' (TF32): {torch.cuda.get_device_name(dev)} has no TF32 "
                              "(compute capability 8.0 or newer needed)")
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    graphs.enable(cfg.cuda_graphs)


def build_parts(cfg: RunConfig) -> tuple[torch.nn.Module, Any, torch.optim.Optimizer,
                                         torch.optim.lr_scheduler.LRScheduler | None]:
    """The model, rule, optimizer and scheduler of ``cfg`` (seeded by ``cfg.seed``), without its data."""
    torch.manual_seed(cfg.seed)
    set_precision(cfg)
    model_cfg = dict(cfg.model)
    name = model_cfg.pop("name")
    if "seed" in inspect.signature(model_factory(name)).parameters:
        model_cfg.setdefault("seed", cfg.seed)  # a model with its own RNG (Gammell's topology) follows the run
    model = build_model(name, **model_cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype])
    info = DATASET_INFO.get(cfg.data.name)
    if info is not None and math.prod(info.in_shape) != math.prod(model.in_shape):
        raise ConfigError(f"{cfg.data.name} inputs have shape {info.in_shape} but {model.name} expects "
                          f"{tuple(model.in_shape)}")
    rule_cfg = dict(cfg.rule)
    rule_name = rule_cfg.pop("name")
    if rule_name == "EP":
        rule_cfg.setdefault("seed", cfg.seed)
    rule = build_rule(rule_name, **rule_cfg)
    if rule.persistent and cfg.data.shuffle == "epoch":
        raise ConfigError("persistent particles belong to fixed batches: set data.shuffle to 'once' or 'none' "
                          f"(got {cfg.data.shuffle!r})")
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = None
    if cfg.schedule is not None and cfg.schedule.name == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.schedule.T_max,
                                                               eta_min=cfg.schedule.eta_min)
    elif cfg.schedule is not None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.schedule.milestones,
                                                         gamma=cfg.schedule.gamma)
    return model, rule, optimizer, scheduler


def _rng_state(run: Run) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "loader": run.train_loader.generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(run: Run, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    run.train_loader.generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Train ``cfg`` into ``out``: a progress bar and a line per epoch on the terminal unless ``progress=False``;
    a missing dataset is fetched only with ``download=True``; ``on_batch(epoch, batch)`` is a hook for tests and
    tools."""

    def __init__(self, cfg: RunConfig, out: str | Path, *, data_dir: str | None = None, download: bool = False,
                 progress: bool = True, on_batch: Callable[[int, int], None] | None = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.progress, self.on_batch = progress, on_batch
        self.run = build_run(cfg, data_dir, download)
        self.shard = distributed.current()  # rank r of N under torch.distributed (eqbench.distributed), else 0 of 1
        if self.shard.world > cfg.data.batch_size:
            raise ConfigError(f"{self.shard.world} data-parallel processes for a batch of {cfg.data.batch_size}: "
                              "each process needs at least one example")
        self.history: list[dict[str, Any]] = []
        self.batch_log: list[dict[str, float]] = []  # the model's batch_metrics, every batch so far
        self.best = -math.inf  # best test accuracy, or minus the best test cost
        self.epoch = 0  # epochs finished
        info = DATASET_INFO.get(cfg.data.name)
        self.regression = info is not None and info.task == "regression"

    # ----------------------------------------------------------------------------- folder
    @classmethod
    def resume(cls, out: str | Path, **kw: Any) -> Trainer:
        """Continue the run in ``out`` from its last checkpoint (config from its config.yaml)."""
        out = Path(out)
        cfg_path = out / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError(f"{out} is not a run folder: {cfg_path} is missing")
        cfg = load_config(cfg_path)
        trainer = cls(cfg, out, **kw)
        trainer._load()
        return trainer

    def _read_checkpoint(self) -> dict | None:
        """The newest readable checkpoint: ``last.pt``, else ``previous.pt`` (the one before it, kept by
        `_checkpoint`) with a one-line warning; None when there is none (killed before the first epoch ended)."""
        problems = []
        for name in ("last.pt", "previous.pt"):
            path = self.out / name
            if not path.exists():
                continue
            try:
                ck = torch.load(path, map_location=self.cfg.device, weights_only=True)
            except Exception as e:  # truncated, corrupt or unreadable: torch raises several kinds
                problems.append(f"{path} is unreadable ({one_line(e, 160)})")
                continue
            if problems:
                print(f"eqbench: warning: {problems[0]}; resuming from {path} (epoch {ck['epoch']})", file=sys.stderr)
            return ck
        if problems:
            raise ConfigError(f"cannot resume {self.out}: {'; '.join(problems)}, and no earlier checkpoint is readable")
        return None

    def _load(self) -> None:
        ck = self._read_checkpoint()
        if ck is None:
            return  # killed before the first epoch finished: start over
        self.run.model.load_state_dict(ck["model"])
        self.run.optimizer.load_state_dict(ck["optimizer"])
        if self.run.scheduler is not None:
            self.run.scheduler.load_state_dict(ck["scheduler"])
        _set_rng_state(self.run, ck["rng"])
        self.epoch, self.best = ck["epoch"], ck["best"]
        self.history = [json.loads(line) for line in ck["history"]]
        self.batch_log = [json.loads(line) for line in ck.get("batch_log", [])]
        if "rates" in ck:  # run folders written before models declared batch_metrics: Gammell's rates
            self.batch_log = [{f"rate/{k + 1}": r for k, r in enumerate(row)} for row in ck["rates"].tolist()]
        if "rule_ranks" in ck:  # written by N data-parallel processes: rank r continues its own particles
            if len(ck["rule_ranks"]) != self.shard.world:
                raise ConfigError(f"{self.out} was written by {len(ck['rule_ranks'])} data-parallel processes; "
                                  f"resume it with as many (--ddp {len(ck['rule_ranks'])}), not {self.shard.world}")
            self.run.rule.load_state_dict(ck["rule_ranks"][self.shard.rank])
        elif ck.get("rule") is not None:
            if self.shard.world > 1 and self.run.rule.persistent:
                raise ConfigError(f"{self.out} was written by one process: its persistent particles are whole "
                                  "batches, resume it without --ddp")
            self.run.rule.load_state_dict(ck["rule"])
        elif "rule" in ck["rng"]:  # run folders written before rules had a state_dict kept only the coin
            self.run.rule._gen.set_state(ck["rng"]["rule"])

    def _checkpoint(self, improved: bool) -> None:
        rules = distributed.gather(self.run.rule.state_dict(), self.shard)  # every rank takes part
        if not self.shard.main:
            return
        state = {
            "model": self.run.model.state_dict(),
            "optimizer": self.run.optimizer.state_dict(),
            "scheduler": None if self.run.scheduler is None else self.run.scheduler.state_dict(),
            "rng": _rng_state(self.run),
            "epoch": self.epoch,
            "best": self.best,
            "history": [json.dumps(h) for h in self.history],
            "batch_log": [json.dumps(m) for m in self.batch_log],
            "rule": rules[0],
        }
        if self.shard.world > 1:
            state["rule_ranks"] = rules
        last = self.out / "last.pt"
        if last.exists():  # kept until the new one is written: a damaged last.pt falls back to it
            os.replace(last, self.out / "previous.pt")
        save_torch(state, last)
        if improved:
            best = {"test_cost": -self.best} if self.regression else {"test_acc": self.best}
            save_torch({"model": state["model"], "epoch": self.epoch, **best}, self.out / "best.pt")

    # ----------------------------------------------------------------------------- loop
    def _to(self, x: torch.Tensor, y: torch.Tensor):
        x = x.to(self.cfg.device, DTYPES[self.cfg.dtype])
        y = y.to(self.cfg.device)
        return x, (y.to(DTYPES[self.cfg.dtype]) if y.is_floating_point() else y)

    def _kw(self, split: str, b: int) -> dict[str, str]:
        """The fixed batch's name for a rule with persistent particles; nothing for the others."""
        return {"key": f"{split}/{b}"} if self.run.rule.persistent else {}

    def _score(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """Summed over the batch: correct predictions (classification) or the cost ½‖y − ŷ‖² (regression)."""
        if self.regression:
            return float((0.5 * ((y.reshape(out.shape) - out) ** 2).sum(1)).sum())
        return float((out.argmax(1) == y).sum())

    def _metric(self, total: float, n: int) -> float:
        """Accuracy in percent, or the mean cost."""
        return total / n if self.regression else 100.0 * total / n

    def evaluate(self) -> float:
        """Test accuracy (percent), or the mean test cost for regression, with the free phase only."""
        model, rule = self.run.model, self.run.rule
        score = total = 0
        for b, (x, y) in enumerate(self.run.test_loader):
            x, y = distributed.split(*self._to(x, y), self.shard, exact=False)
            if len(y):
                out, _ = rule.predict(model, x, **self._kw("test", b))
                score += self._score(out, y)
                total += len(y)
        score, total = distributed.sums([score, total], self.shard)
        return self._metric(score, total)

    def _train_epoch(self, progress) -> tuple[float, float]:
        model, rule, opt = self.run.model, self.run.rule, self.run.optimizer
        task = progress.add_task(f"epoch {self.epoch + 1}/{self.cfg.epochs}", total=len(self.run.train_loader),
                                 stats="")
        loss_sum = score = total = 0.0
        batches = []
        flips = [0] * len(getattr(opt, "flips", []))
        name = "cost" if self.regression else "acc"
        for b, (x, y) in enumerate(self.run.train_loader):
            if self.on_batch is not None:
                self.on_batch(self.epoch, b)
            x, y = self._to(x, y)
            n_batch = len(y)
            x, y = distributed.split(x, y, self.shard)
            try:
                info = rule.compute_gradients(model, x, y, **self._kw("train", b))
            except DivergenceError as e:
                raise TrainingDiverged(f"training diverged at epoch {self.epoch + 1}, batch {b + 1}: {e}; "
                                       f"the last good checkpoint is in {self.out}") from None
            loss = info["loss"]
            if not bool(torch.isfinite(loss).all()):
                raise TrainingDiverged(f"training diverged at epoch {self.epoch + 1}, batch {b + 1}: non-finite "
                                       f"loss; the last good checkpoint is in {self.out}")
            distributed.average_grads(model, self.shard, len(y), n_batch)
            metrics = model.batch_metrics()  # read the update the rule wrote, before the step uses it
            opt.step()
            model.project_()
            flips = [f + g for f, g in zip(flips, getattr(opt, "flips", []))]
            if metrics:
                batches.append(metrics)
            loss_sum += float(loss.sum())
            score += self._score(info["output"], y)  # the free phase before the update (Gammell's training error)
            total += len(y)
            progress.update(task, advance=1, stats=f"loss {loss_sum / total:.4f}  {name} "
                                                   f"{self._metric(score, total):.4g}")
        progress.remove_task(task)
        self.batch_log.extend(batches)
        loss_sum, score, total = distributed.sums([loss_sum, score, total], self.shard)
        return loss_sum / total, self._metric(score, total), batches, flips

    def fit(self) -> dict[str, Any]:
        """Run the remaining epochs; return the final metrics (also written to result.json). The run folder is
        locked for the whole run (`eqbench.runlock`): a second process on it gets one line naming this one."""
        with RunFolderLock(self.out) if self.shard.main else contextlib.nullcontext():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        if self.shard.main:
            write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[stats]}")]
        key = "cost" if self.regression else "acc"
        with Progress(*columns, disable=not (self.progress and self.shard.main)) as progress:
            if self.cfg.initial_eval and not self.history:
                self._initial_eval(key)
            while self.epoch < self.cfg.epochs:
                t0 = time.perf_counter()
                train_loss, train_metric, batches, flips = self._train_epoch(progress)
                lrs = [g["lr"] for g in self.run.optimizer.param_groups]
                if self.run.scheduler is not None and (self.cfg.schedule.name != "cosine"
                                                       or self.epoch < self.cfg.schedule.T_max):
                    self.run.scheduler.step()
                test_metric = self.evaluate()
                self.epoch += 1
                score = -test_metric if self.regression else test_metric
                improved = score > self.best
                self.best = max(self.best, score)
                entry = {"epoch": self.epoch, "train_loss": train_loss, f"train_{key}": train_metric,
                         f"test_{key}": test_metric, "lr": lrs, "time_s": time.perf_counter() - t0}
                entry.update(self.run.model.epoch_metrics(batches))
                if flips:  # binary weights: sign changes this epoch, per layer
                    sizes = [w.numel() for w in self.run.model.binary_weights()]
                    entry.update({f"flips/{k + 1}": f for k, f in enumerate(flips)})
                    entry.update({f"flip_frac/{k + 1}": f / (n * len(self.run.train_loader))
                                  for k, (f, n) in enumerate(zip(flips, sizes))})
                self.history.append({**entry, **self._diagnostics()})
                self._checkpoint(improved)
                if self.shard.main:
                    self._write_metrics()
                if self.progress and self.shard.main:
                    unit = "" if self.regression else "%"
                    progress.console.print(f"epoch {self.epoch}: train loss {train_loss:.4f}, train {key} "
                                           f"{train_metric:.4g}{unit}, test {key} {test_metric:.4g}{unit}")
        best = -self.best if self.regression else self.best
        trained = [h for h in self.history if h["epoch"] > 0]
        result = {"epochs": self.epoch, "final": self.history[-1], f"best_test_{key}": best,
                  "mean_epoch_s": sum(h["time_s"] for h in trained) / len(trained)}
        result.update(self.run.model.run_metrics())
        if self.shard.main:
            write_json(self.out / "result.json", result)
        return result

    def _initial_eval(self, key: str) -> None:
        """The epoch-0 row: the test set evaluated before any update (Gammell et al.'s run_trials.py). It is
        not a candidate for ``best`` (no training has happened) and is not checkpointed: a run killed before
        its first epoch ends starts over and evaluates it again, to the same numbers."""
        t0 = time.perf_counter()
        self.history.append({"epoch": 0, f"test_{key}": self.evaluate(), "time_s": time.perf_counter() - t0})
        if self.shard.main:
            self._write_metrics()

    def _diagnostics(self) -> dict[str, float]:
        """A rule's per-epoch diagnostics (e.g. the angle of each layer's update to BP's gradient) on the
        first test batch; rules without any return nothing (computed by the rank that writes the run folder)."""
        if not self.shard.main:
            return {}
        x, y = self._to(*next(iter(self.run.test_loader)))
        return dict(self.run.rule.diagnostics(self.run.model, x, y))

    def _write_metrics(self) -> None:
        write_text(self.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        # lazy: matplotlib only when a run's figures are drawn
        from .plots import plot_accuracy, plot_activations, plot_angles, plot_batch_metrics, plot_flips

        plot_accuracy(self.history, self.out / "accuracy.png", title=str(self.out.name))
        if self.batch_log:
            plot_batch_metrics(self.batch_log, self.out / "batch_metrics.png", title=str(self.out.name))
        x, _ = self._to(*next(iter(self.run.test_loader)))
        plot_activations(self.run.rule.predict(self.run.model, x)[1], self.out / "activations.png")
        if any(k.startswith("flip_frac/") for k in self.history[-1]):
            plot_flips(self.history, self.out / "flips.png", title=str(self.out.name))
        if any(k.startswith("angle/") for k in self.history[-1]):
            plot_angles(self.history, self.out / "alignment.png", title=str(self.out.name))
