"""``eqbench run`` and ``eqbench report``: registry configs trained over seeds, measured against expected.

A run of baseline ID at a scale trains one folder per seed under ``results/<ID>/<scale>/seed<k>``,
skips seeds whose ``result.json`` exists (finished work is never redone or lost), resumes seeds
that were interrupted, and writes ``results/<ID>/<scale>/run.json``::

    {id, scale, metric, expected: {...}, measured: {mean, std, per_seed}, pass}

``expected`` is the published value (± std, tolerance, provenance, source) at the ``paper`` scale,
and this project's own band at the ``ci`` scale — labelled as eqbench's measurement, never as a
published number.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import write_json, write_text


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
    from .train import Trainer

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


def run_baseline(bid: str, scale: str, *, seeds: int = 1, device: str | None = None, results: str = "results",
                 data_dir: str | None = None, download: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train baseline ``bid`` at ``scale`` over ``seeds`` seeds and compare with what is expected."""
    import torch

    from .registry import get_baseline

    baseline = get_baseline(bid)
    if scale not in baseline.scales:
        known = ", ".join(baseline.scales) or "none"
        raise ConfigError(f"baseline {bid} has no {scale!r} reproduction config (scales: {known})")
    if scale == "ci" and baseline.scales[scale].band is None:
        raise ConfigError(f"baseline {bid} has a ci config but no band to compare with")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    base = baseline.scales[scale].config
    device = device or base.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{bid} at the {scale} scale runs on {device}, but no CUDA device is available; "
                          f"pass --device cpu to run it on the CPU")
    metric, expected = expected_for(baseline, scale)
    folder = _folder(results, bid, scale)
    per_seed, epoch_s = [], []
    for k in range(seeds):
        cfg = replace(base, seed=base.seed + k, device=device)
        res = run_seed(cfg, folder / f"seed{cfg.seed}", data_dir=data_dir, download=download, progress=progress)
        per_seed.append(to_metric(res["final"], metric, baseline.unit))
        epoch_s.append(res["mean_epoch_s"])
    mean = statistics.fmean(per_seed)
    out = {
        "id": bid, "scale": scale, "metric": metric, "unit": baseline.unit, "expected": expected,
        "measured": {"mean": mean, "std": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
                     "per_seed": per_seed, "seeds": [base.seed + k for k in range(seeds)],
                     "epochs": base.epochs, "mean_epoch_s": statistics.fmean(epoch_s)},
    }
    out["pass"] = verdict(mean, expected)
    write_json(folder / "run.json", out)
    return out


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Is run ``a``'s metric lower than run ``b``'s? Means, difference and a one-sided t-test over seeds.

    Used for Gammell et al.'s claim that the small-world network (``…-swni``) beats the layered one
    (``…-mlff``): a lower test error (or cost) than MLFF's, with p < 0.05, "holds"; a higher mean "fails";
    anything else is "not significant". When both ran the same seeds the test is paired (seed k gives both
    the same data split and batch order, which is most of the seed-to-seed spread on 25–40 test
    examples); otherwise Welch's. Needs at least two seeds on each side for a p-value.
    """
    x, y = a["measured"]["per_seed"], b["measured"]["per_seed"]
    p, test = _t_test(a, b, x, "less")
    diff = statistics.fmean(x) - statistics.fmean(y)
    verdict = "holds" if p < 0.05 else ("fails" if diff > 0 else "not significant")
    return {"a": a["id"], "b": b["id"], "scale": a["scale"], "metric": a["metric"], "unit": a["unit"],
            "a_mean": statistics.fmean(x), "b_mean": statistics.fmean(y), "difference": diff, "p_value": p,
            "seeds": [len(x), len(y)], "test": test, "verdict": verdict}


def _t_test(a: dict[str, Any], b: dict[str, Any], x: list[float], alternative: str) -> tuple[float, str]:
    """One-sided t-test of the values ``x`` (run ``a``'s per-seed values, possibly shifted) against run
    ``b``'s: paired when both ran the same seeds, Welch's otherwise; (p, test name), p NaN below two seeds."""
    from scipy import stats

    y = b["measured"]["per_seed"]
    paired = a["measured"].get("seeds") == b["measured"].get("seeds")
    p = math.nan
    if len(x) > 1 and len(y) > 1:
        res = stats.ttest_rel(x, y, alternative=alternative) if paired else \
            stats.ttest_ind(x, y, equal_var=False, alternative=alternative)
        p = float(res.pvalue)
    return p, "paired t" if paired else "Welch t"


def topology_claims(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (…-swni, …-mlff) pair of finished runs at the same scale, compared with `compare_runs`."""
    by_key = {(r["id"], r["scale"]): r for r in runs}
    return [compare_runs(r, by_key[(r["id"].replace("swni", "mlff"), r["scale"])]) for r in runs
            if "swni" in r["id"] and (r["id"].replace("swni", "mlff"), r["scale"]) in by_key]


def gap_claim(a: dict[str, Any], b: dict[str, Any], max_gap: float) -> dict[str, Any]:
    """Is run ``a``'s error at most ``max_gap`` above run ``b``'s? (Laydevant et al.'s relative claims.)

    The gap is mean(a) − mean(b) over seeds (positive: ``a`` is worse); the claim "holds" when it is
    ≤ ``max_gap`` and "fails" otherwise. The p-value is that of a one-sided t-test of "the gap exceeds
    max_gap" (paired when both ran the same seeds, Welch's otherwise): below 0.05 the failure is
    significant over the seed-to-seed spread, above it a failure may be noise.
    """
    x, y = a["measured"]["per_seed"], b["measured"]["per_seed"]
    p, test = _t_test(a, b, [v - max_gap for v in x], "greater")
    gap = statistics.fmean(x) - statistics.fmean(y)
    return {"a": a["id"], "b": b["id"], "scale": a["scale"], "metric": a["metric"], "unit": a["unit"],
            "a_mean": statistics.fmean(x), "b_mean": statistics.fmean(y), "gap": gap, "max_gap": max_gap,
            "p_value": p, "seeds": [len(x), len(y)], "test": test, "verdict": "holds" if gap <= max_gap else "fails"}


def relative_claims(runs: list[dict[str, Any]], registry: dict | None = None) -> list[dict[str, Any]]:
    """Every finished run whose scale carries a ``claim`` and whose reference run is finished too."""
    if registry is None:
        from .registry import load_registry

        registry = load_registry()
    by_key = {(r["id"], r["scale"]): r for r in runs}
    out = []
    for r in runs:
        b = registry.get(r["id"])
        claim = b.scales[r["scale"]].claim if b is not None and r["scale"] in b.scales else None
        if claim is not None and (claim.versus, r["scale"]) in by_key:
            out.append({**gap_claim(r, by_key[(claim.versus, r["scale"])], claim.max_gap), "of": claim.of,
                        "statement": registry[claim.of].value})
    return out


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.4g}"


def write_report(results: str = "results", out: str = "reports/report.md") -> Path:
    """A Markdown "paper / eqbench" table of every baseline that has been run, with its plots."""
    from .registry import load_registry

    registry = load_registry()
    runs = sorted(Path(results).glob("*/*/run.json"))
    loaded = [json.loads(p.read_text()) for p in runs]
    out_path = Path(out)
    lines = ["# eqbench report", "",
             "Published numbers carry their provenance tag; ci-scale bands are this project's own measurements.", "",
             "| baseline | scale | metric | paper | expected | eqbench (mean ± std, seeds) | s/epoch | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    figures = []
    for path, r in zip(runs, loaded):
        b = registry.get(r["id"])
        paper = "—"
        if b is not None and b.value is not None:
            paper = f"{b.value}{' ± ' + str(b.std) if b.std is not None else ''} {b.unit} ({b.metric}) [{b.provenance}]"
        elif b is not None:
            paper = f"[{b.provenance}]"
        e = r["expected"]
        exp = f"band {e['band'][0]}–{e['band'][1]} (eqbench)" if "band" in e else \
            (f"{e['value']}" + (f" ± tol {e['tolerance']}" if e["tolerance"] is not None else " (no tolerance)")
             if e.get("value") is not None else "no published value")
        m = r["measured"]
        verdict_txt = {True: "pass", False: "FAIL", None: "—"}[r["pass"]]
        lines.append(f"| {r['id']} | {r['scale']} | {r['metric']} | {paper} | {exp} | {_fmt(m['mean'])} ± "
                     f"{_fmt(m['std'])} ({len(m['per_seed'])}) | {m['mean_epoch_s']:.1f} | {verdict_txt} |")
        plot = path.parent / f"seed{m['seeds'][0]}" / "accuracy.png"
        if plot.exists():
            figures.append((r["id"], r["scale"], plot))
    if not runs:
        lines.append("| (no run yet: `eqbench run ID --scale ci`) | | | | | | | |")
    lines.append("")
    claims = topology_claims(loaded)
    if claims:
        lines += ["## Small-world vs layered (Gammell et al.: SW has the lower error)", "",
                  "| SW run | MLFF run | scale | SW mean | MLFF mean | SW − MLFF | p (one-sided) | claim |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in claims:
            lines.append(f"| {c['a']} | {c['b']} | {c['scale']} | {_fmt(c['a_mean'])} | {_fmt(c['b_mean'])} | "
                         f"{_fmt(c['difference'])} | {c['p_value']:.3g} ({c['test']}) | {c['verdict']} |")
        lines.append("")
    gaps = relative_claims(loaded, registry)
    if gaps:
        lines += ["## Relative claims (error gap to the full-precision reference)", "",
                  "| run | reference | scale | published claim | run mean | reference mean | gap | max gap | "
                  "p (gap > max) | claim |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in gaps:
            lines.append(f"| {c['a']} | {c['b']} | {c['scale']} | {c['statement']} [{c['of']}] | {_fmt(c['a_mean'])} | "
                         f"{_fmt(c['b_mean'])} | {_fmt(c['gap'])} | {c['max_gap']} | "
                         f"{c['p_value']:.3g} ({c['test']}) | "
                         f"{c['verdict']} |")
        lines.append("")
    for bid, scale, plot in figures:
        rel = Path(*[".."] * (len(out_path.parent.parts))) / plot if not out_path.is_absolute() else plot.resolve()
        lines += [f"### {bid} ({scale})", "", f"![accuracy]({rel.as_posix()})", ""]
    write_text(out_path, "\n".join(lines) + "\n")
    return out_path
