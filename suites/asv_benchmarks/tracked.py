"""asv benchmarks: the machine-independent values of eqbench.tracking, one asv ``track_`` series per value.

Each class is one family (GDU slopes and errors, energy margins, step equality, graph memory, speed ratios
timed side by side, one-epoch ci accuracy per seed paper). ``setup_cache`` measures the whole family once per
commit with the commit's own eqbench (one intra-op thread, so the same commit gives the same numbers) and
``track_value`` reads each value from it. The values are the ones ``make bench`` and the regression gate
(``eqbench regress``) use: one definition, in eqbench.tracking. A commit that predates eqbench.tracking has no
values (asv records them as failed).

asv keys a ``setup_cache`` by its source line, so every class writes its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from eqbench import tracking

#: the registry the accuracy runs read: the benchmarked checkout's (like the benchmark code), so that every
#: commit is measured on the same configs
BASELINES = Path(__file__).resolve().parents[2] / "baselines"


def _keys(family: str) -> list[str]:
    return [k.split("/", 1)[1] for k in tracking.catalogue() if k.startswith(family + "/")]


def _measure(family: str) -> dict[str, float]:
    os.environ.setdefault("EQBENCH_BASELINES_DIR", str(BASELINES))
    tracking.deterministic_threads()
    return tracking.measure([family])


class _Family:
    family = ""
    param_names = ["value"]
    timeout = 900

    def track_value(self, cache: dict[str, float], key: str) -> float:
        return cache[f"{self.family}/{key}"]


class GDU(_Family):
    """GDU slopes (one-sided → 1, symmetric → 2) and symmetric rel. error at β = 1e-3 of every theorem case."""

    family, params = "gdu", (_keys("gdu"),)

    def setup_cache(self):
        return _measure("gdu")

    setup_cache.timeout = 900


class Energy(_Family):
    """Energy-descent margins: max ΔE over the relaxation as a fraction of its round-off bound (≤ 1 passes)."""

    family, params = "energy", (_keys("energy"),)

    def setup_cache(self):
        return _measure("energy")

    setup_cache.timeout = 900


class Step(_Family):
    """Closed-form = autograd step and fused = generic step: the largest difference (float64)."""

    family, params = "step", (_keys("step"),)

    def setup_cache(self):
        return _measure("step")

    setup_cache.timeout = 900


class Memory(_Family):
    """Bytes saved for backward by an EP and a BPTT step (P_MLP 784-512-10, T2 = 10), and their ratio."""

    family, params = "memory", (_keys("memory"),)

    def setup_cache(self):
        return _measure("memory")

    setup_cache.timeout = 900


class Speed(_Family):
    """Speed ratios timed side by side in one process (closed form / autograd, fused / generic, BPTT / EP)."""

    family, params = "speed", (_keys("speed"),)

    def setup_cache(self):
        return _measure("speed")

    setup_cache.timeout = 900


class Accuracy(_Family):
    """Test accuracy (%) or test cost after one epoch of a ci config per seed paper (fixed seed, one thread)."""

    family, params = "accuracy", (_keys("accuracy"),)

    def setup_cache(self):
        return _measure("accuracy")

    setup_cache.timeout = 900
