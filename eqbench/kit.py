"""``eqbench check``: the catalogue's generic claims run on a model written outside eqbench.

    eqbench check PACKAGE.MODULE:FACTORY [--config YAML] [--rule NAME|PACKAGE.MODULE:RULE] [--json FILE]

The factory (or a registered name, an entry point of group ``eqbench.models``) is called with the config's
keyword arguments and must return an `eqbench.EnergyModel`. Its case is float64, seed 0, the first 20
embedded digits when the model takes 64 inputs and 10 classes (random inputs and targets otherwise), T1 free
and T2 nudged steps. Every claim of `eqbench.claims.generic_claims` is run on it — the GDU orders and error,
the symmetric estimator's advantage, closed form = autograd, energy descent, batch-permutation equivariance,
device placement, and the controls that prove the GDU check can fail on this model — and printed as the table
of ``make bench``. A claim that does not apply says why (``n/a``: "no energy declared"). Exit status 1 when
a claim fails, 2 on bad input (one line naming the problem).

A rule written outside eqbench is checked with ``--rule``: the GDU claims then compare its per-step updates
(`eqbench.rules.LearningRule.detailed_gradients`) with BPTT; it is built with the keyword arguments it accepts
among ``beta``, ``T1``, ``T2``, ``estimator``.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import asdict
from typing import Any

import torch

from .cases import DEFAULTS, Case
from .claims import Result, Subject, generic_claims
from .errors import ConfigError, EqbenchError
from .io import read_yaml
from .models import EnergyModel, build_model, model_factory


def _config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    cfg = read_yaml(path, "config file")
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {path} must map option names to values, got a {type(cfg).__name__}")
    return cfg


def _rule_factory(rule: str | None):
    """A callable (beta, T1, T2, estimator) → rule, passing only the keywords the rule accepts."""
    from .rules import EP, all_rules

    if rule is None:
        return EP
    if ":" in rule:
        from .plugins import load_object

        cls = load_object(rule, "rule")
    else:
        rules = all_rules()
        if rule not in rules:
            from .errors import unknown

            raise unknown("learning rule", rule, rules)
        cls = rules[rule]
    params = inspect.signature(cls).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())

    def make(**kw):
        return cls(**{k: v for k, v in kw.items() if takes_all or k in params})
    return make


def validate(model: Any, factory: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """The model contract on one batch, each failure one line naming the problem (before any claim runs)."""
    if not isinstance(model, EnergyModel):
        raise ConfigError(f"{factory} returned {type(model).__name__}, not an eqbench.EnergyModel")
    try:
        s = model.init_state(x)
    except EqbenchError:
        raise
    except Exception as e:  # noqa: BLE001  (foreign code: report its first line, not a traceback)
        raise ConfigError(f"{factory}: init_state failed ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    want = [(x.shape[0], *sh) for sh in model.state_shapes()]
    got = [tuple(t.shape) for t in s]
    if got != want:
        raise ConfigError(f"{factory}: init_state gives shapes {got} but state_shapes() declares {want}")
    for what, fn, shape in (("phi", lambda: model.phi(x, s), (x.shape[0],)),
                            ("phi with β", lambda: model.phi(x, s, 0.1, y), (x.shape[0],)),
                            ("loss", lambda: model.loss(s, y), (x.shape[0],)),
                            ("output", lambda: model.output(s), (x.shape[0], model.n_classes))):
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{factory}: {what} failed ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            have = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"{factory}: {what} returns shape {have}, expected {shape} (one value per sample)")


def check(factory: str, config: dict[str, Any] | None = None, *, rule: str | None = None, T1: int = 300,
          T2: int = 10, batch: int = 20, seed: int = 0) -> tuple[Case, list[Result]]:
    """Run every generic claim on ``factory(**config)``; returns the case and the results (nothing raised by a
    claim escapes: an error in the model's code is that claim's FAIL, with its first line as the note)."""
    config = {**DEFAULTS.get(factory, {}), **(config or {})}  # eqbench's own models: their digits architecture
    model_factory(factory)  # an unknown name or a path that does not import: one line, before anything runs
    probe = build_model(factory, **config)
    if not isinstance(probe, EnergyModel):
        raise ConfigError(f"{factory} returned {type(probe).__name__}, not an eqbench.EnergyModel")
    digits = math.prod(probe.in_shape) == 64 and probe.n_classes == 10
    case = Case(factory, config, data="digits" if digits else "random", batch=batch, seed=seed, T1=T1, T2=T2)
    sub = Subject(case, _rule_factory(rule))
    model, x, y = sub.built()
    validate(model, factory, x, y)
    label = getattr(model, "name", factory)
    results = []
    for claim in generic_claims(label):
        try:
            results.append(claim.evaluate(sub))
        except Exception as e:  # noqa: BLE001  (a failing claim, reported in one line with its name)
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            results.append(Result(claim, math.nan, "error", "FAIL", f"{type(e).__name__}: {line}"))
    return case, results


def to_json(case: Case, results: list[Result]) -> dict[str, Any]:
    return {"case": {k: v for k, v in asdict(case).items() if k != "run"},
            "claims": [{"family": r.claim.family, "label": r.claim.label, "check": r.claim.check,
                        "control": r.claim.control, "measured": None if math.isnan(r.value) else r.value,
                        "shown": r.measured, "bound": r.claim.bound_text, "why": r.claim.why, "verdict": r.verdict,
                        "note": r.note} for r in results],
            "failed": sum(r.verdict == "FAIL" for r in results)}


def run_check(factory: str, config_path: str | None = None, *, rule: str | None = None, json_out: str | None = None,
              T1: int = 300, T2: int = 10) -> int:
    """The ``eqbench check`` command: the table (and ``--json``); exit 1 when a claim fails."""
    from rich.console import Console
    from rich.table import Table

    from .io import write_json

    console = Console(width=None if sys.stdout.isatty() else 160)  # logs get the whole table
    with console.status(f"checking {factory}…"):
        case, results = check(factory, _config(config_path), rule=rule, T1=T1, T2=T2)
    table = Table(title=f"eqbench check {factory} (float64, {case.data} batch of {case.batch}, T1={T1}, T2={T2})")
    for col in ("model", "check", "measured", "bound", "verdict"):
        table.add_column(col)
    for r in results:
        style = {"pass": "green", "FAIL": "bold red", "info": "dim", "n/a": "dim"}[r.verdict]
        check_text = r.claim.check + (" [negative control]" if r.claim.control else "")
        verdict = f"[{style}]{r.verdict}[/]" + (f" ({r.note})" if r.note else "")
        table.add_row(r.claim.label, check_text, r.measured, r.claim.bound_text, verdict)
    console.print(table)
    failed = [r for r in results if r.verdict == "FAIL"]
    for r in failed:
        console.print(f"FAILED {r.message}", markup=False)
    if json_out:
        write_json(json_out, to_json(case, results))
    return 1 if failed else 0
