"""``eqbench compare``: Scellier et al. 2023's comparative study on equal footing.

    eqbench compare [--dataset mnist] [--scale ci] [--seeds 5] [--results results] [--out reports/compare]

The seven energy-based learning algorithms (CL, P-EP, N-EP, C-EP, P-CpL, N-CpL, C-CpL; eqbench.rules.algorithms.SEVEN)
train the same deep convolutional Hopfield network (eqbench.models.dchn) on the same data, with the same optimizer,
budget and seeds: the registry entries ``scellier2023/<dataset>/dchn-<algorithm>`` at one scale (``ci``: a DCHN in
miniature on the embedded digits, standing in for MNIST; ``paper``: the authors' settings, on a GPU with the data).
Each (algorithm, seed) trains one run folder under ``results/`` exactly as ``eqbench run`` does (finished seeds are
reused, interrupted ones resumed), so a comparison stopped half-way continues where it stopped.

The report (``<out>/<dataset>-<scale>.json`` and ``.md``) gives each algorithm's mean ± std test error over the
seeds (and whether it lies in the registry's ci band), and tests the paper's findings as relative claims on paired
seeds (seed k: the same initial weights, data order and test set for every algorithm): "C-EP is best" (C-EP's error
below each other algorithm's), "N-EP beats P-EP" and "N-CpL beats P-CpL" (negative perturbations beat positive
ones). Each is ``pass`` (one-sided paired t-tests at α = 0.05, Holm's correction over the comparisons of a finding),
``fail`` (the opposite difference is significant) or ``not measurable at this scale`` with the reason: the mean
difference and its seed-to-seed spread, and about how many seeds would resolve a difference of that size. The
paper's third finding — the gaps open as the task gets harder — needs several datasets of graded difficulty and is
reported as not measured at the ci scale.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import provenance, write_json
from .registry import load_registry
from .rules.algorithms import SEVEN
from .runner import run_seed, seed_folder, to_metric

ALPHA = 0.05
#: the paper's findings: (statement, the algorithm that should have the lower error, the ones it is compared with)
FINDINGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("C-EP is best", "CEP", tuple(a for a in SEVEN if a != "CEP")),
    ("N-EP beats P-EP (negative perturbations beat positive ones, EP)", "NEP", ("PEP",)),
    ("N-CpL beats P-CpL (negative perturbations beat positive ones, CpL)", "NCpL", ("PCpL",)),
)
NOT_MEASURED = ("the gaps open as the task gets harder", "needs datasets of graded difficulty (MNIST … CIFAR-100); "
                "the ci scale runs one embedded dataset")
METRIC = "test_error"
#: the docs page that shows the study's measurements (the blocks below, rendered from their files)
PAGE = "docs/seeds/scellier2023.md"
#: the committed report of the ci-scale study, and the block rendered from it (`markdown`)
REPORT_FILE = "suites/measurements/compare/mnist-ci.json"
COMPARE_MARKERS = (f"<!-- compare:ci (eqbench.compare.markdown of {REPORT_FILE}) -->", "<!-- /compare:ci -->")
#: the committed speed-up measurement (suites/throughput/dchn_speedup.py) and its docs block (`speedup_table`)
SPEEDUP_FILE = "suites/measurements/dchn-speedup.json"
SPEEDUP_MARKERS = (f"<!-- dchn:speedup (eqbench.compare.speedup_table of {SPEEDUP_FILE}) -->",
                   "<!-- /dchn:speedup -->")


def study_ids(dataset: str) -> dict[str, str]:
    """Algorithm → registry id of the study's entry on ``dataset``."""
    return {alg: f"scellier2023/{dataset}/dchn-{alg.lower()}" for alg in SEVEN}


def study_configs(dataset: str, scale: str, seeds: int, device: str | None = None) -> dict[str, list]:
    """Algorithm → one run config per seed (0 … seeds − 1 from the entry's own seed), from the registry; every bad
    input one ConfigError (an unknown dataset, a scale an entry lacks, configs that differ in more than the rule)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"a comparison needs at least 2 seeds (a paired test needs a spread), got {seeds!r}")
    registry = load_registry()
    ids = study_ids(dataset)
    missing = [i for i in ids.values() if i not in registry]
    if missing:
        known = sorted({b.dataset for bid, b in registry.items() if bid.startswith("scellier2023/") and b.scales})
        raise ConfigError(f"no comparative-study entries for dataset {dataset!r} ({missing[0]} …); datasets with "
                          f"configs: {', '.join(known)}")
    out: dict[str, list] = {}
    reference = None
    for alg, bid in ids.items():
        scales = registry[bid].scales
        if scale not in scales:
            raise ConfigError(f"{bid} has no {scale!r} config (scales: {', '.join(scales) or 'none'})")
        cfg = scales[scale].config
        same = replace(cfg, rule={})
        if reference is None:
            reference = same
        elif same != reference:
            raise ConfigError(f"{bid} differs from {ids[SEVEN[0]]} in more than the rule: not an equal footing")
        dev = device or cfg.device
        out[alg] = [replace(cfg, seed=cfg.seed + k, device=dev) for k in range(seeds)]
    return out


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Is ``a`` (per seed) below ``b`` (the same seeds)? d = b − a: its mean, sd, the one-sided paired t-test's p in
    both directions, and the seeds a difference of this size needs (two-sided normal approximation, power 0.8)."""
    # lazy: scipy.stats takes a second to import; only the paired test needs it
    from scipy import stats

    d = [y - x for x, y in zip(a, b)]
    mean, sd = statistics.fmean(d), statistics.stdev(d)
    if sd == 0.0:
        p_less = 0.0 if mean > 0 else 1.0
        p_more = 0.0 if mean < 0 else 1.0
    else:
        p_less = float(stats.ttest_rel(a, b, alternative="less").pvalue)
        p_more = float(stats.ttest_rel(a, b, alternative="greater").pvalue)
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(0.8)
    need = math.inf if mean == 0 else math.ceil((z * sd / mean) ** 2) if sd > 0 else len(d)
    return {"difference": mean, "sd": sd, "p_better": p_less, "p_worse": p_more, "seeds_needed": need}


def holm(ps: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down: which of the hypotheses with p-values ``ps`` are rejected at family-wise level α."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out = [False] * len(ps)
    for rank, i in enumerate(order):
        if ps[i] > alpha / (len(ps) - rank):
            break
        out[i] = True
    return out


def test_finding(statement: str, best: str, others: tuple[str, ...], errors: dict[str, list[float]]) -> dict:
    """One finding as a relative claim: pass, fail or not measurable at this scale (with the reason)."""
    pairs = {o: paired(errors[best], errors[o]) for o in others}
    better = holm([pairs[o]["p_better"] for o in others])
    worse = holm([pairs[o]["p_worse"] for o in others])
    if all(better):
        verdict, reason = "pass", f"{best} below {', '.join(others)} (paired t, Holm, α = {ALPHA})"
    elif any(worse):
        beat = [o for o, w in zip(others, worse) if w]
        verdict, reason = "fail", f"{', '.join(beat)} significantly below {best}"
    else:
        open_ = [o for o, b in zip(others, better) if not b]
        shown = [o for o, b in zip(others, better) if b]
        verdict = "not measurable at this scale"
        reason = f"{best} significantly below {', '.join(shown)}; " if shown else ""
        reason += "; ".join(
            f"{best} − {o}: {-pairs[o]['difference']:+.2f} ± {pairs[o]['sd']:.2f} points over {len(errors[best])} "
            f"seeds (p = {pairs[o]['p_better']:.2f}), within the seed-to-seed spread (~{pairs[o]['seeds_needed']} "
            "seeds would resolve a difference of this size)" for o in open_)
    return {"finding": statement, "best": best, "compared": list(others), "verdict": verdict, "reason": reason,
            "pairs": pairs}


def compare(dataset: str = "mnist", scale: str = "ci", seeds: int = 5, *, results: str = "results",
            out: str = "reports/compare", device: str | None = None, data_dir: str | None = None,
            download: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the seven algorithms over ``seeds`` seeds (reusing finished runs) and write the comparison report."""
    configs = study_configs(dataset, scale, seeds, device)
    ids = study_ids(dataset)
    registry = load_registry()
    rows, errors = [], {}
    for alg, cfgs in configs.items():
        per_seed, secs = [], []
        for cfg in cfgs:
            res = run_seed(cfg, seed_folder(results, ids[alg], scale, cfg.seed), data_dir=data_dir,
                           download=download, progress=progress)
            per_seed.append(to_metric(res["final"], METRIC))
            secs.append(res["mean_epoch_s"])
        errors[alg] = per_seed
        band = registry[ids[alg]].scales[scale].band
        mean = statistics.fmean(per_seed)
        rows.append({"algorithm": alg, "id": ids[alg], "mean": mean, "std": statistics.stdev(per_seed),
                     "per_seed": per_seed, "mean_epoch_s": statistics.fmean(secs),
                     "band": None if band is None else [band.low, band.high],
                     "in_band": None if band is None else band.low <= mean <= band.high})
    cfg0 = configs[SEVEN[0]][0]
    report = {
        "study": "scellier2023 comparative study", "dataset": dataset, "scale": scale, "metric": METRIC,
        "unit": "percent", "seeds": [c.seed for c in configs[SEVEN[0]]], "epochs": cfg0.epochs,
        "model": cfg0.model, "data": cfg0.data.name, "rows": rows,
        "findings": [test_finding(s, b, o, errors) for s, b, o in FINDINGS],
        "not_measured": [{"finding": NOT_MEASURED[0], "reason": NOT_MEASURED[1]}],
        "provenance": provenance(f"eqbench compare --dataset {dataset} --scale {scale} --seeds {seeds}"),
    }
    folder = Path(out)
    write_json(folder / f"{dataset}-{scale}.json", report)
    (folder / f"{dataset}-{scale}.md").write_text(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report's table and findings as Markdown."""
    lines = [f"Test error (%) of the seven algorithms, DCHN on `{report['data']}` ({report['scale']} scale, "
             f"{report['epochs']} epochs), seeds {', '.join(map(str, report['seeds']))}; paired by seed.", "",
             "| algorithm | test error (%) | per seed | s/epoch |", "|---|---|---|---|"]
    for r in report["rows"]:
        seeds = " ".join(f"{v:.2f}" for v in r["per_seed"])
        lines.append(f"| {r['algorithm']} | {r['mean']:.2f} ± {r['std']:.2f} | {seeds} | {r['mean_epoch_s']:.2f} |")
    lines += ["", "s/epoch: each run's mean epoch time as its folder records it (runs may have shared the machine).",
              "", "| the paper's finding | verdict | why |", "|---|---|---|"]
    for f in report["findings"]:
        lines.append(f"| {f['finding']} | {f['verdict']} | {f['reason']} |")
    for f in report["not_measured"]:
        lines.append(f"| {f['finding']} | not measured | {f['reason']} |")
    p = report["provenance"]
    lines += ["", f"Measured {p['date']} on {p['machine']}, commit {p['commit']}: `{p['command']}`."]
    return "\n".join(lines) + "\n"


def speedup_table(doc: dict[str, Any]) -> list[str]:
    """The docs' speed-up table from suites/throughput/dchn_speedup.py's JSON: per setting its step time and the
    speed-up over Laborieux et al.'s synchronous 250/30, then the iterations each mode needs to a residual."""
    p = doc["provenance"]
    lines = [f"C-EP training steps and test batches, {doc['model']}, {doc['device']} ({doc['threads']} threads), "
             f"median of {doc['rounds']} interleaved rounds ({p['date']}, commit {p['commit']}, `{p['command']}`):",
             "", "| setting | relaxation | T1 / T2 | dtype | s per step | s per test batch | CIFAR-10 epoch (s) | "
             "speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in doc["settings"].items():
        how = f"{s['mode']}, {'fused' if s['fused'] else 'generic loop'}"
        lines.append(f"| {name} | {how} | {s['T1']} / {s['T2']} | {s['dtype']} | {s['step_s']:.3f} | "
                     f"{s['eval_s']:.3f} | {s['epoch_s']:,.0f} | {s['speedup']:.2f}× |")
    tols = list(next(iter(doc["iterations_to_residual"].values())))
    lines += ["", "Iterations of the free phase (float64, from zero) until the relative residual ‖s_{t+1} − s_t‖/‖s‖ "
              "falls below:", "", "| mode | " + " | ".join(tols) + " |", "|---|" + "---|" * len(tols)]
    for mode, its in doc["iterations_to_residual"].items():
        lines.append(f"| {mode} | " + " | ".join("—" if its[k] is None else str(its[k]) for k in tols) + " |")
    return lines
