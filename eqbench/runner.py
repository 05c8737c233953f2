"""``eqbench run``: registry configs trained over seeds, measured against expected.

A run of baseline ID at a scale trains one folder per seed under ``results/<ID>/<scale>/seed<k>``,
skips seeds whose ``result.json`` exists (finished work is never redone or lost), resumes seeds
that were interrupted, and writes ``results/<ID>/<scale>/run.json``::

    {id, scale, metric, expected: {...}, measured: {mean, std, per_seed}, pass}

``expected`` is the published value (± std, tolerance, provenance, source) at the ``paper`` scale,
and this project's own band at the ``ci`` scale — labelled as eqbench's measurement, never as a
published number. The claims tested across runs are in `eqbench.stats`, the Markdown report
(``eqbench report``) in `eqbench.report`.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import write_json
from .registry import get_baseline
from .train import Trainer


def _folder(results: str | Path, bid: str, scale: str) -> Path:
    return Path(results) / bid.replace("/", "__") / scale


def to_metric(final: dict[str, Any], metric: str, unit: str = "percent") -> float:
    """A run's final epoch (``metrics.jsonl`` entry) in a baseline's metric and unit.

    Accuracies are recorded in percent (``unit: ratio`` divides by 100); a regression run records the
    mean cost ``test_cost`` / ``train_cost``, whose ``test_error`` / ``train_error`` it is (Gammell et al.).
    """
    split, _, kind = metric.partition("_")
    if split not in ("test", "train") or kind not in ("accuracy", "error"):
        raise ConfigError(f"cannot measure metric {metric!r} from a training run "
                          "(test_accuracy, test_error, train_accuracy, train_error)")
    if f"{split}_cost" in final:
        if unit != "cost" or kind != "error":
            raise ConfigError(f"a regression run measures a cost, not {metric!r} in {unit!r}")
        return final[f"{split}_cost"]
    if unit not in ("percent", "ratio"):
        raise ConfigError(f"a classification run measures a rate in percent or ratio, not in {unit!r}")
    acc = final[f"{split}_acc"]
    value = acc if kind == "accuracy" else 100.0 - acc
    return value / 100.0 if unit == "ratio" else value


def run_seed(cfg, folder: Path, *, data_dir: str | None = None, download: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Train one seed into ``folder``: reuse a finished result, resume an interrupted one."""
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    kw = {"data_dir": data_dir, "download": download, "progress": progress}
    if (folder / "config.yaml").exists():
        return Trainer.resume(folder, **kw).fit()
    return Trainer(cfg, folder, **kw).fit()


def expected_for(baseline, scale: str) -> tuple[str, dict[str, Any]]:
    """(metric, what to compare with): the published value at the paper scale, the band at ci (in the entry's unit)."""
    sc = baseline.scales[scale]
    if scale == "ci":
        band = sc.band
        return band.metric, {"band": [band.low, band.high], "seeds": band.seeds, "source": band.measured,
                             "note": band.note, "measured_by": "eqbench"}
    return baseline.metric, {"value": baseline.value, "std": baseline.std, "tolerance": sc.tolerance,
                             "provenance": baseline.provenance, "source": baseline.source}


def verdict(mean: float, expected: dict[str, Any]) -> bool | None:
    """Inside the band (ci), within tolerance of the published value (paper); None if nothing to compare."""
    if "band" in expected:
        low, high = expected["band"]
        return low <= mean <= high
    if expected["value"] is None:
        return None
    tol = expected["tolerance"]
    if tol is None and expected["std"] is not None:
        tol = 2.0 * expected["std"]
    return None if tol is None else abs(mean - expected["value"]) <= tol


def seed_configs(bid: str, scale: str, seeds: list[int] | int, device: str | None = None) -> list:
    """The run config of each seed of baseline ``bid`` at ``scale`` (``seeds``: a count from the config's own
    seed, or the seeds themselves), on ``device`` if given; every bad input is one `ConfigError`."""
    baseline = get_baseline(bid)
    if scale not in baseline.scales:
        known = ", ".join(baseline.scales) or "none"
        raise ConfigError(f"baseline {bid} has no {scale!r} reproduction config (scales: {known})")
    if scale == "ci" and baseline.scales[scale].band is None:
        raise ConfigError(f"baseline {bid} has a ci config but no band to compare with")
    base = baseline.scales[scale].config
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        seeds = [base.seed + k for k in range(seeds)]
    device = device or base.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{bid} at the {scale} scale runs on {device}, but no CUDA device is available; "
                          f"pass --device cpu to run it on the CPU")
    return [replace(base, seed=seed, device=device) for seed in seeds]


def seed_folder(results: str | Path, bid: str, scale: str, seed: int) -> Path:
    """Where seed ``seed`` of ``bid`` at ``scale`` trains: ``results/<id>/<scale>/seed<k>``."""
    return _folder(results, bid, scale) / f"seed{seed}"


def summarize(bid: str, scale: str, seeds: list[int], results: str | Path = "results") -> dict[str, Any]:
    """``run.json`` of ``bid`` at ``scale`` from the finished seeds' ``result.json``: measured against expected."""
    baseline = get_baseline(bid)
    metric, expected = expected_for(baseline, scale)
    res = [json.loads((seed_folder(results, bid, scale, s) / "result.json").read_text()) for s in seeds]
    per_seed = [to_metric(r["final"], metric, baseline.unit) for r in res]
    mean = statistics.fmean(per_seed)
    out = {
        "id": bid, "scale": scale, "metric": metric, "unit": baseline.unit, "expected": expected,
        "measured": {"mean": mean, "std": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
                     "per_seed": per_seed, "seeds": list(seeds), "epochs": baseline.scales[scale].config.epochs,
                     "mean_epoch_s": statistics.fmean(r["mean_epoch_s"] for r in res)},
    }
    out["pass"] = verdict(mean, expected)
    write_json(_folder(results, bid, scale) / "run.json", out)
    return out


def run_baseline(bid: str, scale: str, *, seeds: int = 1, device: str | None = None, results: str = "results",
                 data_dir: str | None = None, download: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train baseline ``bid`` at ``scale`` over ``seeds`` seeds, one after another, and compare with what is
    expected (`eqbench.launch` runs the seeds as parallel jobs instead)."""
    cfgs = seed_configs(bid, scale, seeds, device)
    for cfg in cfgs:
        run_seed(cfg, seed_folder(results, bid, scale, cfg.seed), data_dir=data_dir, download=download,
                 progress=progress)
    return summarize(bid, scale, [cfg.seed for cfg in cfgs], results)
