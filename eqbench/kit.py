"""``eqbench check``: the catalogue's generic claims run on a model written outside eqbench.

    eqbench check PACKAGE.MODULE:FACTORY [--config YAML] [--rule NAME|PACKAGE.MODULE:RULE] [--T1 N] [--T2 N]
                  [--betas B ...] [--dtype float64|float32] [--json FILE]

The factory (or a registered name, an entry point of group ``eqbench.models``) is called with the config's
keyword arguments and must return an `eqbench.EnergyModel`. Its case is float64 (or the model's
``required_dtype``, or ``--dtype``), seed 0, the first 20 embedded digits when the model takes 64 inputs and 10
classes (random inputs and targets otherwise), T1 free and T2 nudged steps. Every claim of
`eqbench.claims.generic_claims` is run on it — the premise, the GDU orders judged on their asymptotic range over a β
ladder (`eqbench.checks.order`: two per decade from 1e-1 to 1e-6 unless ``--betas`` or the config's ``betas`` give
another), closed form = autograd, energy descent, batch-permutation equivariance, device placement, and the
controls that prove the GDU check can fail on this model — and printed as the table of ``make bench``, followed by
each estimator's asymptotic range and local orders. A claim that does not apply says why (``n/a``: "no energy
declared"); one the ladder cannot decide says why (``inconclusive``). Exit status 1 when a claim fails, 3 when none
fails but one is inconclusive, 2 on bad input (one line naming the problem). The JSON (``--json``) carries every
claim and the whole ladder: β, the one-sided (at ±β) and symmetric errors, the noise floor and the local orders per
layer.

A rule written outside eqbench is checked with ``--rule``: the GDU claims then compare its per-step updates
(`eqbench.rules.LearningRule.detailed_gradients`) with BPTT; it is built with the keyword arguments it accepts
among ``beta``, ``T1``, ``T2``, ``estimator``.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from .cases import DEFAULTS, Case
from .checks.order import GDULadder, check_precision, fmt_order, ladder
from .claims import Result, Subject, generic_claims
from .config import DTYPES
from .errors import ConfigError, EqbenchError, unknown
from .io import read_yaml, write_json
from .models import EnergyModel, build_model, model_factory
from .plugins import load_object
from .rules import EP
from .rules.algorithms import all_rules


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
    if rule is None:
        return EP
    if ":" in rule:

        cls = load_object(rule, "rule")
    else:
        rules = all_rules()
        if rule not in rules:
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


@dataclass
class Checked:
    """What ``eqbench check`` measured: the case, every claim's result, and the β ladder of the GDU claims (None when
    the model failed before it was measured)."""

    case: Case
    results: list[Result]
    ladder: GDULadder | None

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.verdict == "FAIL"]

    @property
    def inconclusive(self) -> list[Result]:
        return [r for r in self.results if r.verdict == "inconclusive"]

    @property
    def status(self) -> int:
        """The exit status: 1 when a claim fails, 3 when none fails but one is inconclusive, else 0."""
        return 1 if self.failed else 3 if self.inconclusive else 0


def resolve_dtype(model: EnergyModel, factory: str, asked: str | None) -> str:
    """The dtype a model is checked in: ``asked``, else the model's ``required_dtype``, else float64; one line when
    they disagree or when the dtype is too coarse for the GDU orders (bfloat16)."""
    if asked is not None and asked not in DTYPES:
        raise unknown("dtype", asked, DTYPES)
    declared = model.required_dtype
    names = {v: k for k, v in DTYPES.items()}
    if declared is not None and declared not in names:
        raise ConfigError(f"{factory} declares required_dtype {declared}, which eqbench cannot run "
                          f"(known: {', '.join(DTYPES)})")
    if asked is not None and declared is not None and DTYPES[asked] != declared:
        raise ConfigError(f"{factory} declares required_dtype {names[declared]}: it cannot be checked in {asked}")
    name = asked or (names[declared] if declared is not None else "float64")
    check_precision(DTYPES[name], f"eqbench check of {factory}")
    return name


def check(factory: str, config: dict[str, Any] | None = None, *, rule: str | None = None, T1: int = 300,
          T2: int = 10, batch: int = 20, seed: int = 0, betas: list[float] | None = None,
          dtype: str | None = None) -> Checked:
    """Run every generic claim on ``factory(**config)`` (nothing raised by a claim escapes: an error in the model's
    code is that claim's FAIL, with its first line as the note). ``betas`` is the GDU ladder (default: the config's
    ``betas`` key, else `eqbench.checks.order.LADDER`); ``dtype`` overrides float64 / the model's required dtype."""
    config = {**DEFAULTS.get(factory, {}), **(config or {})}  # eqbench's own models: their digits architecture
    from_config = config.pop("betas", None)  # a ladder in the config is the kit's, not the factory's
    betas = ladder(from_config if betas is None else betas)  # bad input in one line, before anything runs
    model_factory(factory)  # an unknown name or a path that does not import: one line, before anything runs
    probe = build_model(factory, **config)
    if not isinstance(probe, EnergyModel):
        raise ConfigError(f"{factory} returned {type(probe).__name__}, not an eqbench.EnergyModel")
    dtype = resolve_dtype(probe, factory, dtype)
    digits = math.prod(probe.in_shape) == 64 and probe.n_classes == 10
    case = Case(factory, config, data="digits" if digits else "random", batch=batch, seed=seed, T1=T1, T2=T2,
                dtype=dtype, betas=tuple(betas))
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
    return Checked(case, results, sub.measured_ladder())


def to_json(checked: Checked) -> dict[str, Any]:
    """The JSON of ``eqbench check --json``: the case, every claim, and the whole β ladder."""
    return {"case": {k: v for k, v in asdict(checked.case).items() if k != "run"},
            "claims": [{"family": r.claim.family, "name": r.claim.name, "label": r.claim.label,
                        "check": r.claim.check, "control": r.claim.control,
                        "measured": None if math.isnan(r.value) else r.value, "shown": r.measured,
                        "bound": r.claim.bound_text, "why": r.claim.why, "verdict": r.verdict, "note": r.note}
                       for r in checked.results],
            "ladder": None if checked.ladder is None else checked.ladder.to_dict(),
            "failed": len(checked.failed), "inconclusive": len(checked.inconclusive)}


def ladder_lines(lad: GDULadder) -> list[str]:
    """Each estimator's verdict, asymptotic range and the deciding key's local orders, and the kink diagnostic: what
    ``eqbench check`` prints under its table."""
    betas = " ".join(f"{b:.1e}" for b in lad.betas)
    out = [f"β ladder: {betas}" + (f" (diverged: {', '.join(f'{b:.1e}' for b in lad.diverged)})" if lad.diverged
                                   else "")]
    for variant in lad.errors:
        v = lad.verdict(variant)
        where = "no asymptotic range" if v.range is None else f"asymptotic range [{v.range[1]:.1e}, {v.range[0]:.1e}]"
        out.append(f"{variant}: {v.verdict}, {where}, order {fmt_order(v.slope)} ({v.key}); {v.reason}")
        if v.fit is not None:
            rel = " ".join(f"{e:.1e}" for e in lad.relative(variant, v.key))
            orders = " ".join("—" if not math.isfinite(s) else f"{s:.2f}" for s in v.fit.slopes)
            out += [f"  {v.key} rel. error: {rel}", f"  {v.key} local orders: {orders}"]
    if lad.kinks is not None:
        b = lad.kink_beta
        out.append(f"kinks: units crossing per β {lad.kinks}; none at β ≤ {b:.1e}" if b is not None else
                   f"kinks: units crossing per β {lad.kinks}; some cross at every β of the ladder")
    return out


def run_check(factory: str, config_path: str | None = None, *, rule: str | None = None, json_out: str | None = None,
              T1: int = 300, T2: int = 10, betas: list[float] | None = None, dtype: str | None = None) -> int:
    """The ``eqbench check`` command: the table, the ladder's ranges (and ``--json``); the exit status of `Checked`."""
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs get the whole table
    with console.status(f"checking {factory}…"):
        checked = check(factory, _config(config_path), rule=rule, T1=T1, T2=T2, betas=betas, dtype=dtype)
    case = checked.case
    table = Table(title=f"eqbench check {factory} ({case.dtype}, {case.data} batch of {case.batch}, T1={T1}, T2={T2})")
    for col in ("model", "check", "measured", "bound", "verdict"):
        table.add_column(col)
    for r in checked.results:
        style = {"pass": "green", "FAIL": "bold red", "inconclusive": "yellow", "info": "dim", "n/a": "dim"}[r.verdict]
        check_text = r.claim.check + (" [negative control]" if r.claim.control else "")
        verdict = f"[{style}]{r.verdict}[/]" + (f" ({r.note})" if r.note else "")
        table.add_row(r.claim.label, check_text, r.measured, r.claim.bound_text, verdict)
    console.print(table)
    if checked.ladder is not None:
        for line in ladder_lines(checked.ladder):
            console.print(line, markup=False, highlight=False)
    for r in checked.failed + checked.inconclusive:
        console.print(f"{'FAILED' if r.verdict == 'FAIL' else 'INCONCLUSIVE'} {r.message}", markup=False)
    if json_out:
        write_json(json_out, to_json(checked))
    return checked.status
