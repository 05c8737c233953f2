"""The timing power of the regression gate, measured on throw-away commits (slow: set EQBENCH_GATE_POWER=1).

Four commits on top of the current one: a comment only, and every relaxation made 1.2, 1.5 and 2 times as long
(``relax`` wrapped in a spin for (F − 1) times its own duration: the free phase slows by F, a training step by a
little less, its update is not slowed). Each is gated ``EQBENCH_GATE_POWER_RUNS`` times (default 4) from scratch
against the commit below it with the ``power`` profile (three timed benchmarks, 5 interleaved rounds, more where
the noise hides a ×1.25) at the
gate's default, the limits measured at a false-alarm rate of 1 % a gate. Written to
``suites/measurements/gate-power.json`` after every gate, with its provenance (the README's table is rendered
from it: eqbench.regress.power_table): per commit, the gates that failed, and per benchmark the ratios,
limits and detectable slowdowns seen, with what a fixed factor 1.3 on the first pass would have flagged.

Asserted: every 1.5× and 2× gate fails, no comment-only gate does.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from eqbench.io import provenance, write_json
from eqbench.regress import POWER_FILE, resolve, run_gate

pytestmark = pytest.mark.skipif(not os.environ.get("EQBENCH_GATE_POWER"),
                                reason="timing power of the gate: minutes; set EQBENCH_GATE_POWER=1")
SLOWDOWNS = (1.2, 1.5, 2.0)


def _spin(factor: float) -> str:
    return (f"def relax(*args, **kwargs):  # planted: every relaxation {factor} times as long\n"
            "    import time\n\n"
            "    t0 = time.perf_counter()\n"
            "    out = _relax(*args, **kwargs)\n"
            f"    stop = t0 + {factor} * (time.perf_counter() - t0)\n"
            "    while time.perf_counter() < stop:\n"
            "        pass\n"
            "    return out\n\n\n"
            "def _relax(\n")


def test_gate_timing_power(clone: Path, tmp_path: Path, plant):
    runs = int(os.environ.get("EQBENCH_GATE_POWER_RUNS", "4"))
    base = resolve(clone, "HEAD")
    heads = {"comment only": plant(clone, "eqbench/relaxation.py", '"""Relaxation: a model',
                                   '"""(a comment) Relaxation: a model', "comment only")}
    for f in SLOWDOWNS:
        plant.git(clone, "reset", "-q", "--hard", base)
        heads[f"×{f:g}"] = plant(clone, "eqbench/relaxation.py", "def relax(\n", _spin(f), f"planted ×{f:g}")
    gates: dict[str, list[dict]] = {label: [] for label in heads}
    store = clone / ".asv" / "regress" / "results.jsonl"
    out = Path(__file__).resolve().parents[1] / POWER_FILE  # the README's table is rendered from it
    prov = provenance(f"EQBENCH_GATE_POWER=1 EQBENCH_GATE_POWER_RUNS={runs} pytest tests/test_gate_power.py")
    for i in range(runs):
        for label, head in heads.items():
            store.unlink(missing_ok=True)  # fresh rounds for both commits every time
            status, rows = run_gate(base, head, repo=clone, profile="power", quiet=True, out=tmp_path)
            gates[label].append({"failed": status == 1, "rows": {
                r.benchmark: {"ratio": r.ratio, "limit": r.limit, "detects": r.detects, "noise": r.noise,
                              "verdict": r.verdict, "note": r.note, "rounds": r.rounds}
                for r in rows if r.kind == "time"}})
            print(f"gate {i + 1}/{runs} {label}: {'FAILED' if status else 'passed'}", flush=True)
            table = _table(gates)  # after every gate: an interrupted measurement keeps what it has
            write_json(out, {"runs": i + 1, "profile": "power", "false_alarm": 0.01, "provenance": prov,
                             "table": table, "gates": gates})
    print(json.dumps(table, indent=1))
    assert table["comment only"]["failed"] == 0, table["comment only"]
    for f in (1.5, 2.0):
        assert table[f"×{f:g}"]["failed"] == runs, table[f"×{f:g}"]


def _table(gates: dict[str, list[dict]]) -> dict:
    """Per commit: gates, those that failed, what a fixed ×1.3 on the medians of the first rounds would have
    flagged, and per benchmark the range of ratios and the median noise, limit and detectable slowdown."""
    table = {}
    for label, runs_ in gates.items():
        if not runs_:
            continue

        def median(key: str, name: str, runs_=runs_) -> float:
            return statistics.median(g["rows"][name][key] for g in runs_)

        table[label] = {
            "gates": len(runs_), "failed": sum(g["failed"] for g in runs_),
            "fixed 1.3, first pass": sum(any(statistics.median(r["rounds"]["HEAD"][:5]) / statistics.median(
                r["rounds"]["BASE"][:5]) > 1.3 for r in g["rows"].values()) for g in runs_),
            "benchmarks": {n: {"ratio range": [min(g["rows"][n]["ratio"] for g in runs_),
                                               max(g["rows"][n]["ratio"] for g in runs_)],
                               "median limit": median("limit", n), "median detects": median("detects", n),
                               "median noise": median("noise", n),
                               "rounds": [min(len(g["rows"][n]["rounds"]["BASE"]) for g in runs_),
                                          max(len(g["rows"][n]["rounds"]["BASE"]) for g in runs_)]}
                           for n in runs_[0]["rows"]}}
    return table
