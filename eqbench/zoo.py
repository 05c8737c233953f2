"""The zoo: the kit (``eqbench check``) run over models written outside eqbench, each with the verdict that theory
expects of every claim, and the confusion matrix of expected against given verdicts.

    eqbench zoo [FOLDER] [--only NAME ...] [--json FILE] [--readme] [--table]

A zoo is a folder with a ``zoo.yaml`` and the models' code (importable from the folder)::

    expected:                     # what a correct model gets on every claim, unless its entry says otherwise
      premise: pass
      order/one_sided: pass
      ...
    models:
      - name: euler_clip
        factory: eqzoo.euler:euler_clip
        kind: correct             # correct | broken | invisible (broken in a way the theorem cannot see)
        about: a continuous Hopfield energy, projected Euler steps, clip units
        T1: 300                   # free steps it needs (optional; config:, betas: likewise)
        expected: {closed_form: n/a, energy: pass}

Claims are named by `eqbench.claims.Claim.name` (the judged claims of `eqbench.claims.generic_claims`); verdicts are
``pass``, ``FAIL``, ``inconclusive`` and ``n/a``. A zoo is valid only if every correct model expects no FAIL and
every broken one expects at least one, so that the matrix says what matters: no correct model fails, no broken model
passes. ``examples/zoo`` is eqbench's own; ``make bench`` prints its matrix. Its README's two tables — the expected
verdicts (from zoo.yaml) and each model's asymptotic ranges (from ``results.json``, which ``--json`` writes with its
provenance) — are rendered by ``--readme`` between marker comments, and a test fails when they go stale.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .checks.order import GDULadder, fmt_order
from .claims import generic_claims
from .errors import ConfigError, unknown
from .io import command_line, provenance, read_yaml, replace_block, write_json, write_text
from .kit import Checked, check

VERDICTS = ("pass", "FAIL", "inconclusive", "n/a")
KINDS = ("correct", "broken", "invisible")
#: eqbench's own zoo, in a clone of the repository
DEFAULT = Path(__file__).resolve().parents[1] / "examples" / "zoo"


def claim_names() -> list[str]:
    """The judged generic claims, by name, in the kit's order (reported-only rows have no expected verdict)."""
    return [c.name for c in generic_claims("zoo") if c.bound is not None and c.name]


@dataclass(frozen=True)
class ZooModel:
    name: str
    factory: str
    kind: str
    about: str
    expected: dict[str, str]
    T1: int = 300
    config: dict[str, Any] = field(default_factory=dict)
    betas: list[float] | None = None


def _folder(path: str | Path) -> Path:
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if not (folder / "zoo.yaml").is_file():
        raise ConfigError(f"zoo folder {folder} has no zoo.yaml")
    return folder


def load_zoo(path: str | Path = DEFAULT) -> list[ZooModel]:
    """The models of a zoo folder (or its zoo.yaml), validated: one line naming the entry and field on bad input."""
    folder = _folder(path)
    where = folder / "zoo.yaml"
    doc = read_yaml(where, "zoo file")
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ConfigError(f"{where}: expected a mapping with a list under 'models'")
    names = claim_names()
    defaults = _verdicts(doc.get("expected", {}), names, f"{where}: expected")
    out, seen = [], set()
    for i, m in enumerate(doc["models"], 1):
        what = f"{where}: model {i}" + (f" ({m.get('name')})" if isinstance(m, dict) and m.get("name") else "")
        if not isinstance(m, dict):
            raise ConfigError(f"{what}: expected a mapping")
        missing = [k for k in ("name", "factory", "kind", "about") if not isinstance(m.get(k), str) or not m[k]]
        if missing:
            raise ConfigError(f"{what}: missing or not a string: {', '.join(missing)}")
        extra = set(m) - {"name", "factory", "kind", "about", "expected", "T1", "config", "betas"}
        if extra:
            raise ConfigError(f"{what}: unknown field {sorted(extra)[0]!r}")
        if m["kind"] not in KINDS:
            raise ConfigError(f"{what}: kind must be one of {', '.join(KINDS)}, got {m['kind']!r}")
        if m["name"] in seen:
            raise ConfigError(f"{what}: the name {m['name']!r} is used twice")
        seen.add(m["name"])
        T1 = m.get("T1", 300)
        if not isinstance(T1, int) or isinstance(T1, bool) or T1 < 1:
            raise ConfigError(f"{what}: T1 must be a positive integer, got {T1!r}")
        config = m.get("config", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{what}: config must map option names to values")
        expected = {**defaults, **_verdicts(m.get("expected", {}), names, f"{what}: expected")}
        lacking = [n for n in names if n not in expected]
        if lacking:
            raise ConfigError(f"{what}: no expected verdict for {', '.join(lacking)}")
        fails = [n for n in names if expected[n] == "FAIL"]
        if m["kind"] == "correct" and fails:
            raise ConfigError(f"{what}: a correct model cannot expect FAIL ({', '.join(fails)})")
        if m["kind"] == "broken" and not fails:
            raise ConfigError(f"{what}: a broken model must expect at least one FAIL (else it is 'invisible')")
        out.append(ZooModel(m["name"], m["factory"], m["kind"], m["about"], expected, T1, config, m.get("betas")))
    return out


def _verdicts(given: Any, names: list[str], what: str) -> dict[str, str]:
    if not isinstance(given, dict):
        raise ConfigError(f"{what}: expected a mapping of claim names to verdicts")
    for k, v in given.items():
        if k not in names:
            raise ConfigError(f"{what}: unknown claim {k!r}; known: {', '.join(names)}")
        if v not in VERDICTS:
            raise ConfigError(f"{what}: {k}: verdict must be one of {', '.join(VERDICTS)}, got {v!r}")
    return dict(given)


@dataclass
class ZooResult:
    model: ZooModel
    given: dict[str, str]
    checked: Checked | None = None
    error: str = ""  # a model the kit refused (bad input): every claim is then "error"

    @property
    def mismatches(self) -> list[str]:
        return [n for n in self.model.expected if self.given.get(n) != self.model.expected[n]]


@dataclass
class ZooReport:
    results: list[ZooResult]

    def confusion(self) -> dict[tuple[str, str], int]:
        """(expected, given) → number of (model, claim) pairs."""
        return dict(Counter((exp, r.given.get(n, "missing")) for r in self.results
                            for n, exp in r.model.expected.items()))

    @property
    def mismatches(self) -> list[tuple[str, str, str, str]]:
        """(model, claim, expected, given) for every disagreement."""
        return [(r.model.name, n, r.model.expected[n], r.given.get(n, "missing")) for r in self.results
                for n in r.mismatches]

    def matrix_lines(self) -> list[str]:
        return confusion_lines(self.confusion())

    def to_json(self) -> dict[str, Any]:
        return {"models": [{"name": r.model.name, "factory": r.model.factory, "kind": r.model.kind,
                            "expected": r.model.expected, "given": r.given, "error": r.error,
                            "ranges": _ranges(r.checked)} for r in self.results],
                "confusion": [{"expected": e, "given": g, "count": n}
                              for (e, g), n in sorted(self.confusion().items())],
                "mismatches": [dict(zip(("model", "claim", "expected", "given"), m)) for m in self.mismatches]}


def confusion_lines(conf: dict[tuple[str, str], int]) -> list[str]:
    """The confusion matrix as Markdown: expected verdicts by row, given by column, over (model, claim) pairs."""
    given = [v for v in (*VERDICTS, "error", "missing") if any(g == v for _, g in conf)]
    lines = ["| expected \\ given | " + " | ".join(given) + " |", "|---|" + "---|" * len(given)]
    for exp in VERDICTS:
        if any(e == exp for e, _ in conf):
            lines.append(f"| {exp} | " + " | ".join(str(conf.get((exp, g), 0)) for g in given) + " |")
    return lines


#: the estimators whose ranges the measured table shows: every one the ladder judges
VARIANTS = tuple(GDULadder.ORDERS)


def _ranges(checked: Checked | None) -> dict[str, Any]:
    """Each estimator's verdict, order and asymptotic range: what the zoo pages' measured table shows."""
    if checked is None or checked.ladder is None:
        return {}
    out = {}
    for variant in VARIANTS:
        v = checked.ladder.verdict(variant)
        out[variant] = {"verdict": v.verdict, "order": None if not math.isfinite(v.slope) else round(v.slope, 3) + 0.0,
                        "range": None if v.range is None else [v.range[1], v.range[0]], "key": v.key}
    out["kink_beta"] = checked.ladder.kink_beta
    return out


def run_zoo(path: str | Path = DEFAULT, only: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> ZooReport:
    """``eqbench check`` on every model of the zoo (or those named in ``only``), each verdict against its expected
    one. The folder is put on ``sys.path`` for the factories to import."""
    folder = _folder(path)
    models = load_zoo(folder)
    if only:
        known = {m.name for m in models}
        bad = [n for n in only if n not in known]
        if bad:
            raise unknown("zoo model", bad[0], known)
        models = [m for m in models if m.name in only]
    sys.path.insert(0, str(folder))
    try:
        results = []
        for m in models:
            if progress:
                progress(m.name)
            try:
                checked = check(m.factory, dict(m.config), T1=m.T1, betas=m.betas)
            except ConfigError as e:  # the kit refused the model: every claim disagrees, with the reason
                results.append(ZooResult(m, {n: "error" for n in m.expected}, None, str(e)))
                continue
            given = {r.claim.name: r.verdict for r in checked.results if r.claim.name in m.expected}
            results.append(ZooResult(m, given, checked))
        return ZooReport(results)
    finally:
        sys.path.remove(str(folder))


# ---------------------------------------------------------------------------------------------- tables
ABBREV = {"pass": "pass", "FAIL": "**FAIL**", "inconclusive": "*inconcl.*", "n/a": "n/a"}


def expected_table(models: list[ZooModel]) -> list[str]:
    """The expected verdicts as a Markdown table (the zoo README's, which a test keeps equal to zoo.yaml)."""
    names = claim_names()
    lines = ["| model | kind | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    lines += [f"| {m.name} | {m.kind} | " + " | ".join(ABBREV[m.expected[n]] for n in names) + " |" for m in models]
    return lines


def measured_table(doc: dict[str, Any]) -> list[str]:
    """Each model's asymptotic ranges and orders from a zoo JSON (``eqbench zoo --json``)."""
    lines = ["| model | one-sided order on its range | negative (one-sided at −β) | symmetric order on its range | "
             "no kink crossed at β ≤ |", "|---|---|---|---|---|"]
    for m in doc["models"]:
        cells = []
        for variant in VARIANTS:
            r = m["ranges"].get(variant)
            if not r:
                cells.append("—")
            elif r["range"] is None:
                settles = "" if r["order"] is None else f": settles at order {fmt_order(r['order'], 2)}"
                cells.append(r["verdict"] + settles)
            else:
                cells.append(f"{r['order']:.3f} on [{r['range'][0]:.1e}, {r['range'][1]:.1e}] ({r['verdict']})")
        kink = m["ranges"].get("kink_beta")
        lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {'—' if kink is None else f'{kink:.1e}'} |")
    return lines


MARKERS = {"expected": ("<!-- zoo:expected (eqbench zoo --readme) -->", "<!-- /zoo:expected -->"),
           "measured": ("<!-- zoo:measured (eqbench zoo --readme, from results.json) -->", "<!-- /zoo:measured -->"),
           "matrix": ("<!-- zoo:matrix (eqbench zoo --readme, from examples/zoo/results.json) -->",
                      "<!-- /zoo:matrix -->")}


def render_readme(text: str, models: list[ZooModel], doc: dict[str, Any] | None) -> str:
    """``text`` with each of its marked blocks rewritten: the expected verdicts; the measured ranges and the confusion
    matrix of ``doc`` (a zoo JSON with its provenance; those blocks are left as they are without one)."""
    blocks = {"expected": expected_table(models)}
    if doc is not None:
        prov = doc.get("provenance", {})
        source = (f"Measured by `{prov.get('command', '?')}` at commit {prov.get('commit', '?')} on "
                  f"{prov.get('machine', '?')}, {prov.get('date', '?')} (torch {prov.get('torch', '?')}).")
        blocks["measured"] = [*measured_table(doc), "", source]
        conf = {(c["expected"], c["given"]): c["count"] for c in doc["confusion"]}
        blocks["matrix"] = [*confusion_lines(conf), "", f"{len(doc['models'])} models; {source}"]
    present = [n for n in MARKERS if MARKERS[n][0] in text]
    if not present:
        raise ConfigError("this README has no zoo block (<!-- zoo:… --> markers) to render")
    for name in present:
        if name in blocks:
            text = replace_block(text, *MARKERS[name], blocks[name])
    return text


def readmes(folder: Path) -> list[Path]:
    """The pages that show a zoo's tables: its README, and the docs' kit page for eqbench's own zoo."""
    out = [folder / "README.md"]
    if folder.resolve() == DEFAULT:
        out.append(DEFAULT.parents[1] / "docs" / "check.md")
    return out


def run_zoo_command(path: str | None, only: list[str] | None, json_out: str | None, table: bool,
                    readme: bool = False) -> int:
    """``eqbench zoo``: the per-model verdicts, the confusion matrix, the mismatches; exit 1 on a mismatch."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    folder = _folder(DEFAULT if path is None else Path(path))
    if table:
        console.print("\n".join(expected_table(load_zoo(folder))), markup=False, highlight=False)
        return 0
    with console.status("running the zoo…") as status:
        report = run_zoo(folder, only, progress=lambda name: status.update(f"running the zoo: {name}…"))
    for r in report.results:
        agree = len(r.model.expected) - len(r.mismatches)
        console.print(f"{r.model.name:24s} {r.model.kind:9s} {agree}/{len(r.model.expected)} verdicts as expected"
                      + (f" — {r.error}" if r.error else ""), markup=False, highlight=False)
    console.print("\n".join(report.matrix_lines()), markup=False, highlight=False)
    for m in report.mismatches:
        console.print("MISMATCH {}: {}: expected {}, given {}".format(*m), markup=False)
    if json_out:
        write_json(json_out, {**report.to_json(), "provenance": provenance(command_line("eqbench"))})
    if readme:  # the zoo's README, and the docs' kit page for eqbench's own zoo
        results = folder / "results.json"
        doc_file = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else None
        for readme_path in readmes(folder):
            text = readme_path.read_text(encoding="utf-8")
            write_text(readme_path, render_readme(text, load_zoo(folder), doc_file))
            console.print(f"rewrote the zoo tables of {readme_path}", markup=False)
    return 1 if report.mismatches else 0
