"""The floors of eqbench's house: each module's place in the architecture, declared (not derived), so that an import
running back up a floor is an error a test can name (tests/test_house.py; the architecture page of the docs draws
the package by these floors).

A module imports modules on its own floor or below, never above: the foundations know nothing of models, the engine
nothing of learning rules, the rules nothing of the checks, and so on up to the command line. Within a floor any
order goes, as long as there is no circle (eqbench.testing.imports.circles). A name ending in ``.*`` covers a
package and all its modules; a new module must be given a floor here.

Folders group what has one purpose: the model zoo (``models``), the rules (``rules``), the checks (``checks``),
the data (``data``), the conformance kit (``testing``). The modules that today's benchmarks and the gate's worker
import by name (``cases``, ``timing``, ``memory``, ``tracking``) keep their top-level paths on purpose: the gate
and ``make history`` run today's benchmarks against the eqbench of older commits, which has them there.
"""

from __future__ import annotations

#: floor name → the modules on it, bottom floor first
FLOORS: dict[str, list[str]] = {
    "foundations: errors, files, configs, data, the registry": [
        "eqbench.errors", "eqbench.io", "eqbench.config", "eqbench.activations", "eqbench.angles",
        "eqbench.autodiff", "eqbench.roundoff", "eqbench.memory", "eqbench.graphs", "eqbench.runlock",
        "eqbench.distributed", "eqbench.plugins", "eqbench.optim", "eqbench.stats", "eqbench.registry",
        "eqbench.data.*", "eqbench.house", "eqbench.testing.imports", "eqbench.testing.profiles",
        "eqbench.checks.device"],
    "engine: the model contract, the models, relaxation": ["eqbench.models.*", "eqbench.relaxation"],
    "rules: the learning rules and their registry": ["eqbench.rules", "eqbench.rules.*"],
    "checks: the checks, cases, claims, the kit and eqbench.testing": [
        "eqbench.checks", "eqbench.checks.*", "eqbench.activity", "eqbench.cases", "eqbench.claims", "eqbench.kit",
        "eqbench.timing",
        "eqbench.testing", "eqbench.testing.*"],
    "training and studies: the trainer, runs, estimates, sweeps, launch, reports": [
        "eqbench.train", "eqbench.runner", "eqbench.estimate", "eqbench.sweep", "eqbench.launch", "eqbench.report",
        "eqbench.plots", "eqbench.compare", "eqbench.zoo"],
    "across commits: tracked values, bench, gate, history": [
        "eqbench.tracking", "eqbench.bench", "eqbench.regress", "eqbench.gate_worker", "eqbench.history"],
    "front doors: the package's public names and the command line": ["eqbench", "eqbench.cli", "eqbench.__main__"],
}
