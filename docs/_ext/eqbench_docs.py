"""The docs' generated pages, written at the start of every build from the code itself (never by hand):

* ``generated/claims.md`` — the claims catalogue (eqbench.claims): case, check, bound, derivation, control;
* ``generated/tracked.md`` — the values the regression gate and the history track (eqbench.tracking.catalogue):
  each with its unit, which way is better and its tolerance, and the count per family;
* ``generated/registry.md`` — the baselines registry (baselines/*.yaml): every entry, its provenance, its scales;
* ``generated/api.md`` — the API reference: each public module's, class's and function's signature and docstring;
* ``generated/architecture.md`` and ``architecture.png`` — the package's import graph on the floors that
  eqbench.house declares (eqbench.testing.imports);
* ``generated/tutorial-check.md`` — ``eqbench check`` run on the tutorial's model (docs/tutorial/my_model.py); the
  build fails if a claim fails.

Every ``python`` code block of a page is run when the page is read (each in a fresh namespace, float64 the default
dtype as in the checks, docs/tutorial on the path): an example that raises is a warning naming the page and the
block's line, which ``make docs`` turns into an error.

Docstrings go into the API page as literal blocks: they are written as plain text with mathematics in Unicode, not
as reStructuredText.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import torch
from sphinx.errors import ExtensionError
from sphinx.util import logging

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "generated"
#: the modules the API page documents, in reading order (the contract, the engine, the rules, the checks, the tools)
API = ["eqbench.models.base", "eqbench.models", "eqbench.models.layered", "eqbench.models.dchn",
       "eqbench.relaxation", "eqbench.rules", "eqbench.rules.forward", "eqbench.rules.algorithms",
       "eqbench.checks.gdu", "eqbench.checks.order", "eqbench.checks.energy", "eqbench.checks.precision",
       "eqbench.claims", "eqbench.activity", "eqbench.cases", "eqbench.kit", "eqbench.testing",
       "eqbench.testing.assertions", "eqbench.testing.strategies", "eqbench.testing.imports", "eqbench.house",
       "eqbench.config", "eqbench.train", "eqbench.registry", "eqbench.runner", "eqbench.compare",
       "eqbench.regress", "eqbench.history", "eqbench.tracking", "eqbench.estimate", "eqbench.launch",
       "eqbench.errors"]


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def claims_page() -> str:
    from eqbench.claims import claims

    rows = claims()
    lines = ["# The claims catalogue", "",
             f"Generated from `eqbench.claims` at build time: {len(rows)} claims, "
             f"{sum(c.control for c in rows)} of them negative controls that must fail. `make bench` measures them.",
             "", "| family | case | check | bound | why |", "|---|---|---|---|---|"]
    lines += [f"| {c.family} | {_cell(c.label)} | {_cell(c.check)} | {_cell(c.bound_text)} | {_cell(c.why)} |"
              for c in rows]
    return "\n".join(lines) + "\n"


def tracked_page() -> str:
    from eqbench.tracking import FAMILIES, catalogue

    tracked = catalogue()
    lines = ["# The tracked values", "", f"Generated from `eqbench.tracking.catalogue()` at build time: {len(tracked)} "
             "values, each measured at every commit by `make history` and compared by the gate (`eqbench regress`).",
             "", "| family | values | gated |", "|---|---|---|"]
    lines += [f"| `{f}` | {sum(t.family == f for t in tracked.values())} | "
              f"{'yes' if any(t.gated for t in tracked.values() if t.family == f) else 'no (reported)'} |"
              for f in FAMILIES]
    lines += ["", "| key | unit | better | worse means |", "|---|---|---|---|"]
    for t in tracked.values():
        better = f"closer to {t.target:g}" if t.better == "target" else t.better
        worse = (f"× {t.tolerance:g}" if t.relative else f"{t.tolerance:g} further" if t.better == "target"
                 else f"{'+' if t.better == 'lower' else '−'} {t.tolerance:g}")
        lines.append(f"| {_cell(t.key)} | {_cell(t.unit)} | {better} | {worse if t.gated else 'not gated'} |")
    return "\n".join(lines) + "\n"


def registry_page() -> str:
    from eqbench.registry import load_registry

    reg = load_registry()
    lines = ["# The baselines registry", "", f"Generated from `baselines/*.yaml` at build time: {len(reg)} entries. "
             "A number without a source is not a baseline: `value` is empty where the paper's number was not "
             "found (`NOT-FOUND`).", ""]
    papers: dict[str, list] = {}
    for b in reg.values():
        papers.setdefault(b.paper.key, []).append(b)
    for key, entries in papers.items():
        p = entries[0].paper
        lines += [f"## {p.authors} {p.year}: {p.title}", "", f"{p.venue}; `{key}`.", "",
                  "| id | dataset | algorithm | metric | value | provenance | scales |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| `{b.id}` | {b.dataset} | {_cell(b.algorithm)} | {b.metric} | "
                  f"{'—' if b.value is None else _cell(b.value)} | {b.provenance} | {', '.join(b.scales) or '—'} |"
                  for b in entries]
        lines.append("")
    return "\n".join(lines)


def _doc(obj) -> str:
    doc = inspect.getdoc(obj) or "(no docstring)"
    return "```text\n" + doc.replace("```", "'''") + "\n```\n"


def api_page() -> str:
    lines = ["# API reference", "", "Generated from the docstrings at build time.", ""]
    for name in API:
        mod = importlib.import_module(name)
        lines += [f"## `{name}`", "", _doc(mod)]
        public = getattr(mod, "__all__", None)
        members = [(n, getattr(mod, n)) for n in public] if public else [
            (n, o) for n, o in vars(mod).items() if not n.startswith("_") and (inspect.isclass(o) or
                                                                             inspect.isfunction(o))
            and getattr(o, "__module__", None) == name]
        for n, obj in members:
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = "(…)"
            lines += [f"### `{name}.{n}{_cell(sig) if len(sig) < 200 else '(…)'}`", "", _doc(obj)]
    return "\n".join(lines)


def architecture_page() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eqbench.house import FLOORS
    from eqbench.testing.imports import circles, floor_of, import_graph, upward

    graph = import_graph(HERE.parent / "eqbench")
    if circles(graph) or upward(graph, FLOORS):
        raise ExtensionError(f"the house is broken: circles {circles(graph)}, upward imports {upward(graph, FLOORS)}")
    floor = floor_of(FLOORS, graph)
    names = list(FLOORS)
    by_floor: dict[int, list[str]] = {}
    for m, f in floor.items():
        by_floor.setdefault(f, []).append(m)
    pos = {}
    for f, mods in by_floor.items():
        rows = [sorted(mods)[i::2] for i in range(2)] if len(mods) > 12 else [sorted(mods)]  # wide floors: 2 rows
        for r, row in enumerate(rows):
            for i, m in enumerate(row):
                pos[m] = (i - (len(row) - 1) / 2, 2 * f + 0.8 * r)
    fig, ax = plt.subplots(figsize=(18, 1.6 * len(names) + 1))
    for m, deps in graph.items():
        for d in deps:
            (x0, y0), (x1, y1) = pos[m], pos[d]
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "alpha": 0.12, "lw": 0.6})
    for m, (x, y) in pos.items():
        ax.text(x, y, m.removeprefix("eqbench."), ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})
    for f, name in enumerate(names):
        ax.text(-12, 2 * f, name.split(":")[0], ha="right", va="center", fontsize=9, weight="bold")
    ax.set_axis_off()
    ax.set_title("eqbench's modules on their declared floors (eqbench.house): every import runs down or stays")
    fig.savefig(OUT / "architecture.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    lines = ["# Architecture", "", "![the import graph by floors](architecture.png)", "",
             "Generated from the source at build time: the floors are declared in `eqbench.house`, the imports read "
             "by `eqbench.testing.imports`. A module imports its own floor or below, never above, and no circle "
             "(tests/test_house.py asserts both, with controls; the build stops on either).", "",
             "| floor | modules |", "|---|---|"]
    lines += [f"| {_cell(names[f])} | {', '.join(f'`{m}`' for m in sorted(by_floor[f]))} |" for f in sorted(by_floor)]
    return "\n".join(lines) + "\n"


def tutorial_check_page() -> str:
    from eqbench.kit import check

    sys.path.insert(0, str(HERE / "tutorial"))
    try:
        checked = check("my_model:tutorial_net")
    finally:
        sys.path.remove(str(HERE / "tutorial"))
    failed = [r.message for r in checked.results if r.verdict in ("FAIL", "inconclusive")]
    if failed:
        raise ExtensionError("the tutorial's model does not pass eqbench check: " + "; ".join(failed))
    lines = ["| claim | measured | bound | verdict |", "|---|---|---|---|"]
    lines += [f"| {_cell(r.claim.check)} | {_cell(r.measured)} | {_cell(r.claim.bound_text)} | {r.verdict} |"
              for r in checked.results]
    return "\n".join(lines) + "\n"


PAGES = {"claims.md": claims_page, "tracked.md": tracked_page, "registry.md": registry_page, "api.md": api_page,
         "architecture.md": architecture_page, "tutorial-check.md": tutorial_check_page}


PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def example_failures(text: str, name: str = "page") -> list[tuple[int, str]]:
    """(line, error) of each ``python`` block of TEXT that raises, run as the module docstring says."""
    out = []
    sys.path.insert(0, str(HERE / "tutorial"))
    dtype = torch.get_default_dtype()
    try:
        for m in PYTHON_BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            torch.set_default_dtype(torch.float64)
            try:
                exec(compile(m.group(1), f"{name}:{line}", "exec"), {"__name__": f"docs_example_{line}"})
            except Exception as e:  # noqa: BLE001 — any failure of an example is the page's problem
                out.append((line, f"{type(e).__name__}: {e}"))
            finally:
                torch.set_default_dtype(dtype)
    finally:
        sys.path.remove(str(HERE / "tutorial"))
    return out


def run_examples(app, docname: str, source: list[str]) -> None:
    for line, error in example_failures(source[0], f"{docname}.md"):
        log.warning(f"its python example fails: {error}", location=(docname, line))


def generate(app) -> None:
    OUT.mkdir(exist_ok=True)
    for name, page in PAGES.items():
        text = page()
        path = OUT / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged pages keep Sphinx's cache
            path.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", generate)
    app.connect("source-read", run_examples)
    return {"version": "1", "parallel_read_safe": True}
