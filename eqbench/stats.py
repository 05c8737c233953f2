"""Statistical tests of the papers' relative claims over finished runs (the ``run.json`` of `eqbench.runner`).

* `compare_runs` / `topology_claims` — Gammell et al.: the small-world network (``…-swni``) has a lower
  error than the layered one (``…-mlff``), by a one-sided t-test over seeds;
* `gap_claim` / `relative_claims` — Laydevant et al.: a run's error is at most ``max_gap`` above its
  full-precision reference's (the registry scale's ``claim``).

The t-tests are paired when both runs used the same seeds, Welch's otherwise; a p-value needs at least
two seeds on each side.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from .registry import load_registry


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
    # lazy: scipy.stats takes a second to import; only the t-tests need it
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
