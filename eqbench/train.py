"""The trainer: epochs of one learning rule over a dataset, with a run folder that survives kills.

One trainer for every rule that writes ``.grad`` (EP estimators, BPTT, and later non-EP rules):
per-layer learning rates and weight decays, SGD with momentum or Adam (torch.optim), cosine
annealing with Laborieux's ``T_max`` semantics (stepped once per epoch while epoch < T_max, so a
120-epoch run with T_max = 100 spends its last 20 epochs at eta_min, §A.8), evaluation with the
free phase only (§A.9).

The run folder::

    config.yaml      the resolved config
    metrics.jsonl    one JSON line per finished epoch
    accuracy.png     train / test accuracy per epoch, redrawn every epoch
    activations.png  histogram of the free-phase activations of each layer (first test batch)
    alignment.png    per-layer angle of the update to BP's gradient, for rules that report one
    last.pt, best.pt checkpoints (model, optimizer, scheduler, RNG states, history)
    result.json      written when the last epoch is done

Every file is written atomically (a temporary file renamed over the old one), the checkpoint first:
a kill at any moment leaves the last finished epoch's checkpoint and metrics intact, and
``resume`` replays the interrupted epoch with the same RNG states, so a resumed run ends with the
same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import RunConfig
from .errors import ConfigError, DivergenceError, EqbenchError
from .io import save_torch, write_json, write_text
from .models import build_model
from .rules import build_rule


class TrainingDiverged(EqbenchError):
    """Non-finite states or loss during training; the run folder keeps the last good epoch."""


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """One parameter group per layer with its own learning rate and weight decay (Laborieux §A.8)."""
    groups = model.layer_parameters()
    if len(groups) != len(cfg.lrs):
        raise ConfigError(f"{model.name} has {len(groups)} layers of parameters but optimizer.lrs has "
                          f"{len(cfg.lrs)} entries (one per layer, the readout included)")
    wds = cfg.wds or [0.0] * len(groups)
    params = [{"params": g, "lr": lr, "weight_decay": wd} for g, lr, wd in zip(groups, cfg.lrs, wds)]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum)
    return torch.optim.Adam(params)


@dataclass
class Run:
    """What ``build_run`` assembles from a config."""

    model: torch.nn.Module  # an EnergyModel, or a feed-forward model of eqbench.forward's rules
    rule: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    train_loader: torch.utils.data.DataLoader
    test_loader: torch.utils.data.DataLoader


def build_run(cfg: RunConfig, data_dir: str | None = None, download: bool = False) -> Run:
    from .data import DATASET_INFO, make_loaders

    torch.manual_seed(cfg.seed)
    model_cfg = dict(cfg.model)
    model = build_model(model_cfg.pop("name"), **model_cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype])
    info = DATASET_INFO.get(cfg.data.name)
    if info is not None and math.prod(info.in_shape) != math.prod(model.in_shape):
        raise ConfigError(f"{cfg.data.name} inputs have shape {info.in_shape} but {model.name} expects "
                          f"{tuple(model.in_shape)}")
    rule_cfg = dict(cfg.rule)
    rule_name = rule_cfg.pop("name")
    if rule_name == "EP":
        rule_cfg.setdefault("seed", cfg.seed)
    rule = build_rule(rule_name, **rule_cfg)
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = None
    if cfg.schedule is not None and cfg.schedule.name == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.schedule.T_max,
                                                               eta_min=cfg.schedule.eta_min)
    elif cfg.schedule is not None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.schedule.milestones,
                                                         gamma=cfg.schedule.gamma)
    train, test = make_loaders(cfg.data.name, batch_size=cfg.data.batch_size, test_batch_size=cfg.data.test_batch_size,
                               data_dir=data_dir, download=download, augment=cfg.data.augment,
                               normalize=cfg.data.normalize, seed=cfg.seed)
    return Run(model, rule, optimizer, scheduler, train, test)


def _rng_state(run: Run) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "loader": run.train_loader.generator.get_state()}
    gen = getattr(run.rule, "_gen", None)
    if gen is not None:
        state["rule"] = gen.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(run: Run, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    run.train_loader.generator.set_state(state["loader"])
    if "rule" in state:
        run.rule._gen.set_state(state["rule"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Train ``cfg`` into ``out``; ``on_batch(epoch, batch)`` is a hook for tests and tools."""

    def __init__(self, cfg: RunConfig, out: str | Path, *, data_dir: str | None = None, download: bool = False,
                 progress: bool = True, on_batch: Callable[[int, int], None] | None = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.progress, self.on_batch = progress, on_batch
        self.run = build_run(cfg, data_dir, download)
        self.history: list[dict[str, Any]] = []
        self.best = -math.inf
        self.epoch = 0  # epochs finished

    # ----------------------------------------------------------------------------- folder
    @classmethod
    def resume(cls, out: str | Path, **kw: Any) -> Trainer:
        """Continue the run in ``out`` from its last checkpoint (config from its config.yaml)."""
        out = Path(out)
        cfg_path = out / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError(f"{out} is not a run folder: {cfg_path} is missing")
        cfg = RunConfig.from_dict(yaml.safe_load(cfg_path.read_text()), where=str(cfg_path))
        trainer = cls(cfg, out, **kw)
        trainer._load()
        return trainer

    def _load(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            return  # killed before the first epoch finished: start over
        ck = torch.load(path, map_location=self.cfg.device, weights_only=True)
        self.run.model.load_state_dict(ck["model"])
        self.run.optimizer.load_state_dict(ck["optimizer"])
        if self.run.scheduler is not None:
            self.run.scheduler.load_state_dict(ck["scheduler"])
        _set_rng_state(self.run, ck["rng"])
        self.epoch, self.best = ck["epoch"], ck["best"]
        self.history = [json.loads(line) for line in ck["history"]]

    def _checkpoint(self, improved: bool) -> None:
        state = {
            "model": self.run.model.state_dict(),
            "optimizer": self.run.optimizer.state_dict(),
            "scheduler": None if self.run.scheduler is None else self.run.scheduler.state_dict(),
            "rng": _rng_state(self.run),
            "epoch": self.epoch,
            "best": self.best,
            "history": [json.dumps(h) for h in self.history],
        }
        save_torch(state, self.out / "last.pt")
        if improved:
            save_torch({"model": state["model"], "epoch": self.epoch, "test_acc": self.best}, self.out / "best.pt")

    # ----------------------------------------------------------------------------- loop
    def _to(self, x: torch.Tensor, y: torch.Tensor):
        x = x.to(self.cfg.device, DTYPES[self.cfg.dtype])
        y = y.to(self.cfg.device)
        return x, (y.to(DTYPES[self.cfg.dtype]) if y.is_floating_point() else y)

    def evaluate(self) -> float:
        """Test accuracy (percent) with the free phase only."""
        model, rule = self.run.model, self.run.rule
        correct = total = 0
        for x, y in self.run.test_loader:
            x, y = self._to(x, y)
            scores, _ = rule.predict(model, x)
            correct += int((scores.argmax(1) == y).sum())
            total += len(y)
        return 100.0 * correct / total

    def _train_epoch(self, progress) -> tuple[float, float]:
        model, rule, opt = self.run.model, self.run.rule, self.run.optimizer
        task = progress.add_task(f"epoch {self.epoch + 1}/{self.cfg.epochs}", total=len(self.run.train_loader),
                                 stats="")
        loss_sum = correct = total = 0.0
        for b, (x, y) in enumerate(self.run.train_loader):
            if self.on_batch is not None:
                self.on_batch(self.epoch, b)
            x, y = self._to(x, y)
            try:
                info = rule.compute_gradients(model, x, y)
            except DivergenceError as e:
                raise TrainingDiverged(f"training diverged at epoch {self.epoch + 1}, batch {b + 1}: {e}; "
                                       f"the last good checkpoint is in {self.out}") from None
            loss = info["loss"]
            if not bool(torch.isfinite(loss).all()):
                raise TrainingDiverged(f"training diverged at epoch {self.epoch + 1}, batch {b + 1}: non-finite "
                                       f"loss; the last good checkpoint is in {self.out}")
            opt.step()
            loss_sum += float(loss.sum())
            correct += int((info["output"].argmax(1) == y).sum())
            total += len(y)
            progress.update(task, advance=1, stats=f"loss {loss_sum / total:.4f}  acc {100 * correct / total:.2f}%")
        progress.remove_task(task)
        return loss_sum / total, 100.0 * correct / total

    def fit(self) -> dict[str, Any]:
        """Run the remaining epochs; return the final metrics (also written to result.json)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[stats]}")]
        with Progress(*columns, disable=not self.progress) as progress:
            while self.epoch < self.cfg.epochs:
                t0 = time.perf_counter()
                train_loss, train_acc = self._train_epoch(progress)
                lrs = [g["lr"] for g in self.run.optimizer.param_groups]
                if self.run.scheduler is not None and (self.cfg.schedule.name != "cosine"
                                                       or self.epoch < self.cfg.schedule.T_max):
                    self.run.scheduler.step()
                test_acc = self.evaluate()
                self.epoch += 1
                improved = test_acc > self.best
                self.best = max(self.best, test_acc)
                self.history.append({"epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc,
                                     "test_acc": test_acc, "lr": lrs, "time_s": time.perf_counter() - t0,
                                     **self._diagnostics()})
                self._checkpoint(improved)
                self._write_metrics()
                if self.progress:
                    progress.console.print(f"epoch {self.epoch}: train loss {train_loss:.4f}, train {train_acc:.2f}%, "
                                           f"test {test_acc:.2f}%")
        result = {"epochs": self.epoch, "final": self.history[-1], "best_test_acc": self.best,
                  "mean_epoch_s": sum(h["time_s"] for h in self.history) / len(self.history)}
        write_json(self.out / "result.json", result)
        return result

    def _diagnostics(self) -> dict[str, float]:
        """A rule's per-epoch diagnostics (e.g. the angle of each layer's update to BP's gradient) on the
        first test batch; rules without any return nothing."""
        if not hasattr(self.run.rule, "diagnostics"):
            return {}
        x, y = self._to(*next(iter(self.run.test_loader)))
        return dict(self.run.rule.diagnostics(self.run.model, x, y))

    def _write_metrics(self) -> None:
        write_text(self.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        from .plots import plot_accuracy, plot_activations, plot_angles

        plot_accuracy(self.history, self.out / "accuracy.png", title=str(self.out.name))
        x, _ = self._to(*next(iter(self.run.test_loader)))
        plot_activations(self.run.rule.predict(self.run.model, x)[1], self.out / "activations.png")
        if any(k.startswith("angle/") for k in self.history[-1]):
            plot_angles(self.history, self.out / "alignment.png", title=str(self.out.name))
