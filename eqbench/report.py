"""``eqbench report``: a Markdown "paper / eqbench" table of every finished run (``results/*/*/run.json``).

One row per baseline and scale: the published value with its provenance tag, what was expected, the
measured mean ± std over seeds, seconds per epoch and the verdict; then the tables of the relative claims
that `eqbench.stats` tests (small-world vs layered, error gap to a full-precision reference), then each
run's accuracy plot. ci-scale bands are labelled as this project's own measurements, never as published
numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from .io import write_text
from .registry import load_registry
from .stats import relative_claims, topology_claims


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.4g}"


def write_report(results: str = "results", out: str = "reports/report.md") -> Path:
    """A Markdown "paper / eqbench" table of every baseline that has been run, with its plots."""
    registry = load_registry()
    runs = sorted(Path(results).glob("*/*/run.json"))
    loaded = [json.loads(p.read_text()) for p in runs]
    out_path = Path(out)
    lines = ["# eqbench report", "",
             "Published numbers carry their provenance tag; ci-scale bands are this project's own measurements.", "",
             "| baseline | scale | metric | paper | expected | eqbench (mean ± std, seeds) | s/epoch | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    figures = []
    for path, r in zip(runs, loaded):
        b = registry.get(r["id"])
        paper = "—"
        if b is not None and b.value is not None:
            paper = f"{b.value}{' ± ' + str(b.std) if b.std is not None else ''} {b.unit} ({b.metric}) [{b.provenance}]"
        elif b is not None:
            paper = f"[{b.provenance}]"
        e = r["expected"]
        exp = f"band {e['band'][0]}–{e['band'][1]} (eqbench)" if "band" in e else \
            (f"{e['value']}" + (f" ± tol {e['tolerance']}" if e["tolerance"] is not None else " (no tolerance)")
             if e.get("value") is not None else "no published value")
        m = r["measured"]
        verdict_txt = {True: "pass", False: "FAIL", None: "—"}[r["pass"]]
        lines.append(f"| {r['id']} | {r['scale']} | {r['metric']} | {paper} | {exp} | {_fmt(m['mean'])} ± "
                     f"{_fmt(m['std'])} ({len(m['per_seed'])}) | {m['mean_epoch_s']:.1f} | {verdict_txt} |")
        plot = path.parent / f"seed{m['seeds'][0]}" / "accuracy.png"
        if plot.exists():
            figures.append((r["id"], r["scale"], plot))
    if not runs:
        lines.append("| (no run yet: `eqbench run ID --scale ci`) | | | | | | | |")
    lines.append("")
    claims = topology_claims(loaded)
    if claims:
        lines += ["## Small-world vs layered (Gammell et al.: SW has the lower error)", "",
                  "| SW run | MLFF run | scale | SW mean | MLFF mean | SW − MLFF | p (one-sided) | claim |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in claims:
            lines.append(f"| {c['a']} | {c['b']} | {c['scale']} | {_fmt(c['a_mean'])} | {_fmt(c['b_mean'])} | "
                         f"{_fmt(c['difference'])} | {c['p_value']:.3g} ({c['test']}) | {c['verdict']} |")
        lines.append("")
    gaps = relative_claims(loaded, registry)
    if gaps:
        lines += ["## Relative claims (error gap to the full-precision reference)", "",
                  "| run | reference | scale | published claim | run mean | reference mean | gap | max gap | "
                  "p (gap > max) | claim |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in gaps:
            lines.append(f"| {c['a']} | {c['b']} | {c['scale']} | {c['statement']} [{c['of']}] | {_fmt(c['a_mean'])} | "
                         f"{_fmt(c['b_mean'])} | {_fmt(c['gap'])} | {c['max_gap']} | "
                         f"{c['p_value']:.3g} ({c['test']}) | "
                         f"{c['verdict']} |")
        lines.append("")
    for bid, scale, plot in figures:
        rel = Path(*[".."] * (len(out_path.parent.parts))) / plot if not out_path.is_absolute() else plot.resolve()
        lines += [f"### {bid} ({scale})", "", f"![accuracy]({rel.as_posix()})", ""]
    write_text(out_path, "\n".join(lines) + "\n")
    return out_path
