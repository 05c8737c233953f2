"""``eqbench estimate``: what a registry config will cost before a GPU is committed to it for days.

It builds the config's model, rule and optimizer (`eqbench.train.build_parts`), runs a few training batches and
a few evaluation batches exactly as the trainer does (the rule's gradients, the model's batch metrics, the optimizer
step, the model's projection; the free phase only for evaluation), and scales the median batch time by the number
of batches of an epoch:

    s/epoch = ⌈n_train / batch⌉ · t_train + ⌈n_test / test_batch⌉ · t_test,    hours = epochs · s/epoch / 3600.

Data: an embedded dataset's own batches (it ships with a package); any other dataset, synthetic batches of its
exact shape (uniform inputs in [0, 1], uniform class targets), since the time of a relaxation of fixed length does
not depend on the pixel values — nothing is downloaded or read. Peak memory is the CUDA allocator's peak on a GPU,
the process's peak resident set on the CPU (which includes Python and torch themselves).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .config import DTYPES
from .data import DATASET_INFO
from .data.embedded import embedded_tensors
from .errors import ConfigError
from .io import command_line, provenance, write_json
from .registry import get_baseline, load_registry
from .timing import sync
from .train import build_parts


@dataclass
class Estimate:
    """The measured cost of a config (one row of ``eqbench estimate``)."""

    id: str
    scale: str
    device: str
    dataset: str
    data: str  # "embedded" or "synthetic"
    batch_size: int
    batches_timed: int
    train_batch_s: float  # median time of one training batch
    test_batch_s: float  # median time of one evaluation batch
    train_batches: int  # per epoch
    test_batches: int
    epochs: int
    peak_bytes: int
    peak_kind: str  # "CUDA allocator" or "process RSS"
    cuda_graphs: bool = False  # relaxations replayed from CUDA graphs (eqbench.graphs)

    @property
    def epoch_s(self) -> float:
        return self.train_batches * self.train_batch_s + self.test_batches * self.test_batch_s

    @property
    def run_hours(self) -> float:
        return self.epochs * self.epoch_s / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "epoch_s": self.epoch_s, "run_hours": self.run_hours}


def _split_sizes(name: str, seed: int) -> tuple[int, int]:
    info = DATASET_INFO[name]
    if info.embedded:
        return len(embedded_tensors(name, "train", seed)[1]), len(embedded_tensors(name, "test", seed)[1])
    if info.n_train is None or info.n_test is None:
        raise ConfigError(f"dataset {name!r} declares no split sizes (DatasetInfo.n_train, n_test): cannot estimate "
                          "an epoch")
    return info.n_train, info.n_test


def _batches(cfg, n: int, batch: int, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of ``batch`` examples of ``split``: the embedded dataset's first ones (cycled), or synthetic."""
    info = DATASET_INFO[cfg.data.name]
    if info.embedded:
        x, y = embedded_tensors(cfg.data.name, split, cfg.seed)
        batch = min(batch, len(y))
        k = max(1, len(y) // batch)
        return [(x[(i % k) * batch:(i % k + 1) * batch], y[(i % k) * batch:(i % k + 1) * batch]) for i in range(n)]
    g = torch.Generator().manual_seed(cfg.seed)
    return [(torch.rand((batch, *info.in_shape), generator=g), torch.randint(info.n_classes, (batch,), generator=g))
            for _ in range(n)]


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def estimate(bid: str, scale: str = "paper", *, device: str | None = None, batches: int = 20,
             warmup: int = 1, cuda_graphs: bool | None = None) -> Estimate:
    """Time ``batches`` training batches (after ``warmup``) and up to 3 evaluation batches (after one) of baseline
    ``bid``'s config at ``scale``; ``device`` and ``cuda_graphs`` (when not None) override the config's."""
    b = get_baseline(bid)
    if scale not in b.scales:
        raise ConfigError(f"{bid} has no {scale!r} scale; it has {', '.join(b.scales)}")
    return estimate_config(b.scales[scale].config, bid, scale, device=device, batches=batches, warmup=warmup,
                           cuda_graphs=cuda_graphs)


def estimate_config(cfg, label: str, scale: str = "", *, device: str | None = None, batches: int = 20,
                    warmup: int = 1, cuda_graphs: bool | None = None) -> Estimate:
    """`estimate` of a run config (`eqbench.config.RunConfig`) named ``label``; ``device`` and ``cuda_graphs``
    (when not None) override the config's."""
    if batches < 1 or warmup < 0:
        raise ConfigError(f"--batches must be ≥ 1 and the warm-up ≥ 0, got {batches} and {warmup}")
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    if cuda_graphs is not None:
        cfg = dataclasses.replace(cfg, cuda_graphs=cuda_graphs)
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg.device!r} asked for, but torch sees no CUDA device (use --device cpu)")
    if cfg.data.name not in DATASET_INFO:
        raise ConfigError(f"dataset {cfg.data.name!r} of {label} has no known shape (eqbench.data.DATASET_INFO)")
    n_train, n_test = _split_sizes(cfg.data.name, cfg.seed)
    model, rule, optimizer, _ = build_parts(cfg)
    dtype = DTYPES[cfg.dtype]
    data = "embedded" if DATASET_INFO[cfg.data.name].embedded else "synthetic"

    def to(x: torch.Tensor, y: torch.Tensor):
        return x.to(dev, dtype), (y.to(dev, dtype) if y.is_floating_point() else y.to(dev))

    def key(split: str, i: int) -> dict[str, str]:
        return {"key": f"{split}/{i}"} if rule.persistent else {}

    train = [to(*xy) for xy in _batches(cfg, warmup + batches, cfg.data.batch_size, "train")]
    test = [to(*xy) for xy in _batches(cfg, min(batches, 3) + 1, cfg.data.test_batch_size, "test")]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for i, (x, y) in enumerate(train):  # what the trainer does per batch (eqbench.train.Trainer._train_epoch)
        t0 = time.perf_counter()
        rule.compute_gradients(model, x, y, **key("train", i))
        model.batch_metrics()
        optimizer.step()
        model.project_()
        sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    test_times = []
    for i, (x, _) in enumerate(test):
        t0 = time.perf_counter()
        rule.predict(model, x, **key("test", i))
        sync(dev)
        if i:  # the first one warms up the evaluation path
            test_times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak, kind = int(torch.cuda.max_memory_allocated(dev)), "CUDA allocator"
    else:
        peak, kind = _peak_rss_bytes(), "process RSS"
    train_batches = (n_train // cfg.data.batch_size if cfg.data.shuffle != "epoch"  # fixed batches: no partial one
                     else math.ceil(n_train / cfg.data.batch_size))
    return Estimate(label, scale, str(dev), cfg.data.name, data, cfg.data.batch_size, batches,
                    statistics.median(times), statistics.median(test_times), train_batches,
                    math.ceil(n_test / cfg.data.test_batch_size), cfg.epochs, peak, kind, cfg.cuda_graphs)


def table(rows: list[Estimate]) -> str:
    """A Markdown table: config, device, data, s/epoch, hours for the config's epochs, peak memory."""
    out = ["| config | device | data | s / epoch | epochs | hours | peak memory |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        device = f"{r.device}, CUDA graphs" if r.cuda_graphs else r.device
        out.append(f"| {r.id} ({r.scale}) | {device} | {r.dataset}, {r.data} | {r.epoch_s:,.1f} | {r.epochs} | "
                   f"{r.run_hours:,.2f} | {r.peak_bytes / 2**20:,.0f} MiB ({r.peak_kind}) |")
    return "\n".join(out)


def run_estimate(ids: list[str], *, scale: str = "paper", device: str | None = None, batches: int = 20,
                 every: bool = False, json_out: str | None = None, cuda_graphs: bool | None = None) -> int:
    """The CLI: estimate each config (or every config with ``scale`` when ``every``), print one line per config
    as it finishes and the table at the end, write ``json_out``."""
    if every == bool(ids):
        raise ConfigError("eqbench estimate needs baseline ids or --all (not both)")
    if every:
        ids = [bid for bid, b in load_registry().items() if scale in b.scales]
    rows = []
    prov = provenance(command_line("eqbench"))  # the commit measured: the one checked out when the run starts
    # several configs off CUDA: each in a fresh process, so that its peak (process RSS, which only grows) is its
    # own and not the largest of the configs before it (CUDA's allocator peak is reset per config instead)
    fresh = (ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)
             if len(ids) > 1 and not (device or "").startswith("cuda") else contextlib.nullcontext())
    with fresh as pool:
        for bid in ids:
            if pool is None:
                r = estimate(bid, scale, device=device, batches=batches, cuda_graphs=cuda_graphs)
            else:
                r = pool.submit(estimate, bid, scale, device=device, batches=batches, cuda_graphs=cuda_graphs).result()
            print(f"{bid}: {r.epoch_s:,.1f} s/epoch on {r.device} ({r.train_batch_s * 1e3:,.1f} ms per training "
                  f"batch of {r.batch_size}), {r.run_hours:,.2f} h for {r.epochs} epochs, peak "
                  f"{r.peak_bytes / 2**20:,.0f} MiB ({r.peak_kind})", flush=True)
            rows.append(r)
            if json_out:  # after every config: a long --all run keeps what it finished
                write_json(json_out, {"scale": scale, "batches": batches, "torch": torch.__version__,
                                      "estimates": [e.to_dict() for e in rows],
                                      "provenance": prov})
    print(table(rows))
    return 0
