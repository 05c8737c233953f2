"""The timing power of the regression gate, measured on throw-away commits (slow: set EQBENCH_GATE_POWER=1).

A commit that makes the relaxation about 1.5× slower (the drive evaluated twice per step: ×1.51 on P_MLP
784-512-10, measured interleaved in one process) must be
flagged at the default factor 1.10, and a comment-only commit must pass at the CI factor 1.5. Each commit is
gated ``EQBENCH_GATE_POWER_RUNS`` times (default 4) from scratch with the ``power`` profile (three timed
benchmarks, 3 interleaved rounds); the detection and false-alarm rates at factors 1.10, 1.25 and 1.5 are written
to ``reports/gate-power.json`` and printed (the README quotes them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eqbench.regress import resolve, run_gate

pytestmark = pytest.mark.skipif(not os.environ.get("EQBENCH_GATE_POWER"),
                                reason="timing power of the gate: minutes; set EQBENCH_GATE_POWER=1")
FACTORS = (1.10, 1.25, 1.5)
ANCHOR = "                u = model.drive(x, s, beta, y, closed_form=closed_form, create_graph=graph, cache=cache)\n"


def test_gate_timing_power(clone: Path, tmp_path: Path, plant):
    runs = int(os.environ.get("EQBENCH_GATE_POWER_RUNS", "4"))
    base = resolve(clone, "HEAD")
    comment = plant(clone, "eqbench/relaxation.py", '"""Relaxation: a model', '"""(a comment) Relaxation: a model',
                    "comment only")
    plant.git(clone, "reset", "-q", "--hard", base)
    slow = plant(clone, "eqbench/relaxation.py", ANCHOR,
                 ANCHOR + "                model.drive(x, s, beta, y, closed_form=closed_form, cache=cache)\n",
                 "planted slowdown")
    ratios: dict[str, list[dict[str, float]]] = {"slowdown": [], "comment": []}
    store = clone / ".asv" / "regress" / "results.jsonl"
    for _ in range(runs):
        for label, head in (("slowdown", slow), ("comment", comment)):
            store.unlink(missing_ok=True)  # fresh rounds for both commits every time
            _, rows = run_gate(base, head, repo=clone, profile="power", quiet=True, out=tmp_path)
            ratios[label].append({r.benchmark: r.ratio for r in rows if r.kind == "time"})
    rates = {label: {f"{f:g}": sum(max(run.values()) > f for run in runs_) / len(runs_) for f in FACTORS}
             for label, runs_ in ratios.items()}
    out = {"runs": runs, "ratios": ratios, "detection_rate": rates["slowdown"], "false_alarm_rate": rates["comment"]}
    Path("reports").mkdir(exist_ok=True)
    Path("reports/gate-power.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("detection_rate", "false_alarm_rate")}))
    assert rates["slowdown"]["1.1"] == 1.0, ratios["slowdown"]
    assert rates["comment"]["1.5"] == 0.0, ratios["comment"]
