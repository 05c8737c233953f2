"""History, then the gate, in one go, the way a user's CI runs them (README, "Across commits").

A history run writes asv's results into the tracked ``suites/asv_results``; the gate must not refuse because of
them (it never reads them), or ``make history && make regress`` cannot run one after the other.

* in ``make test``: asv itself writes results into a clone (``asv run --python=same --set-commit-hash``, one cheap
  benchmark: the same writer as ``make history``, without building each commit), then the real gate runs there;
* ``EQBENCH_HISTORY_GATE=1`` (about 20 minutes: a fresh environment, asv's virtualenv with torch, one commit
  benchmarked, the quick gate): the README's own sequence, ``make history RANGE=HEAD~1..HEAD && make regress``,
  on a clean clone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eqbench.regress import git, machine_name, run_gate


def test_results_that_asv_wrote_never_stop_the_gate(clone: Path, tmp_path: Path):
    env = dict(os.environ, HOME=str(tmp_path))  # asv keeps its machine file in the home folder
    machine, sha = machine_name(), git(clone, "rev-parse", "HEAD")
    for args in (["machine", "--yes", "--machine", machine],
                 ["run", "--python=same", "--quick", "--bench", "TrainStep.track_graph_bytes", "--machine", machine,
                  "--set-commit-hash", sha]):
        subprocess.run([sys.executable, "-m", "asv", *args], cwd=clone, env=env, check=True, capture_output=True)
    changed = git(clone, "status", "--porcelain", "--", "suites/asv_results")
    assert changed, "asv wrote no results into the tracked folder: the test no longer sets up what it is about"
    status, rows = run_gate("HEAD~1", "HEAD", repo=clone, profile="correctness", quiet=True, out=tmp_path / "out")
    assert status == 0 and rows and all(r.verdict in ("ok", "info") for r in rows), rows


@pytest.mark.skipif(not os.environ.get("EQBENCH_HISTORY_GATE"),
                    reason="make history && make regress on a clean clone: about 20 minutes; EQBENCH_HISTORY_GATE=1")
def test_make_history_then_make_regress_on_a_clean_clone(clone: Path):
    for target in (["history", "RANGE=HEAD~1..HEAD"], ["regress"]):
        p = subprocess.run(["make", *target], cwd=clone, capture_output=True, text=True)
        assert p.returncode == 0, f"make {' '.join(target)}: exit {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-3000:]}"
    assert git(clone, "status", "--porcelain", "--", "suites/asv_results")  # the history did write its results
