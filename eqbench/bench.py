"""The main job (``make bench`` / ``eqbench bench``): every check on embedded data, in minutes.

Every claim of the catalogue (eqbench.claims: the GDU, energy, step and optimizer claims and their
negative controls), the speed ratios and what lower precisions cost the GDU theorem (reported), the
kit on the zoo of outside models (eqbench.zoo: each model's verdicts against the expected ones, and
the confusion matrix), then every ``ci``-scale reproduction of the registry trained for one seed
against its band.

Prints one table — model, check, measured value, bound, verdict — and writes a report folder:
``report.md`` (the table and the figures), ``results.json`` and the PNGs. Negative controls are
rows whose verdict is "pass" when the claim *fails* on the broken variant, as it must. Exit status
is 1 when any row fails.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from . import tracking
from .cases import THEOREM_CASES
from .checks.gdu import ep_for, symmetric_mean
from .checks.precision import precision_errors
from .claims import Result, claims, subject
from .io import write_json, write_text
from .plots import plot_gdu, plot_ladder
from .registry import load_registry
from .runner import run_baseline
from .zoo import DEFAULT, run_zoo


@dataclass
class Row:
    model: str
    check: str
    measured: str
    bound: str
    verdict: str  # "pass", "FAIL", "inconclusive" or "info"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def _row(r: Result) -> Row:
    return Row(r.claim.label, r.claim.check + (" [negative control]" if r.claim.control else ""), r.measured,
               r.claim.bound_text, r.verdict)


def claim_rows(families: tuple[str, ...]) -> list[Row]:
    """The catalogue's claims of ``families`` (eqbench.claims), measured and judged."""
    return [_row(c.evaluate()) for c in claims() if c.family in families]


def gdu_figures(out: Path, figures: list[str]) -> None:
    """The β ladder of every theorem case (errors, noise floors, asymptotic ranges), and P_MLP's per-step comparison
    at β = 0.01."""
    for label in THEOREM_CASES:
        sub = subject(label)
        name = f"ladder_{_slug(label)}.png"
        plot_ladder(sub.ladder(), out / name, title=f"{label}: EP vs BPTT")
        figures.append(name)
    run, rule = subject("P_MLP").gdu()
    ep = symmetric_mean(ep_for(run, rule, 0.01), ep_for(run, rule, -0.01))
    plot_gdu(ep, run.bptt, out / "gdu_p_mlp.png", title="P_MLP: EP symmetric β=0.01 (dashed) vs BPTT (solid)")
    figures.append("gdu_p_mlp.png")


def speed_rows() -> list[Row]:
    """Speed ratios timed side by side in this process (reported, never judged: benchmarks measure speed)."""
    rows = []
    for key, ratio in tracking.speed_ratios().items():
        model, what = key.split("/")
        target = tracking.SPEED_TARGETS.get(key)
        rows.append(Row(model, f"speed ratio {what}, timed side by side (reported)", f"×{ratio:.2f}",
                        "—" if target is None else f"target ≥ {target:g} (not judged)", "info"))
    return rows


def precision_rows(device: str = "cpu") -> list[Row]:
    """What float32 and bfloat16 (and TF32 on an Ampere or newer GPU) cost the GDU theorem on two theorem cases
    (eqbench.checks.precision): reported, never judged."""
    return [Row(r.case, f"GDU rel. error of EP in {r.precision} on {device} vs float64 BPTT, best of β = "
                        f"{', '.join(f'{b:g}' for b in r.errors)} (reported)",
                f"{r.error:.1e} at β={r.beta:g}", "—", "info") for r in precision_errors(device)]


def zoo_rows(matrix: list[str]) -> list[Row]:
    """The kit on eqbench's zoo (eqbench.zoo): one row per model, every claim's verdict as expected; the confusion
    matrix goes to ``matrix`` (for the report)."""
    if not (DEFAULT / "zoo.yaml").is_file():
        return [Row("zoo", "the kit on outside models", "not found", "—", "info")]  # an installed copy has no zoo
    report = run_zoo(DEFAULT)
    matrix += ["## The kit on the zoo (examples/zoo): expected × given verdicts", "", *report.matrix_lines(), ""]
    rows = []
    for r in report.results:
        n, bad = len(r.model.expected), r.mismatches
        measured = f"{n - len(bad)}/{n} as expected" + (f"; differ: {', '.join(bad)}" if bad else "")
        rows.append(Row(f"zoo: {r.model.name} ({r.model.kind})", "eqbench check: every judged claim's verdict",
                        measured, "all as expected", "FAIL" if bad else "pass"))
    return rows


def accuracy_rows(out: Path) -> list[Row]:
    """Every ci-scale reproduction of the registry, one seed each, against its band."""
    runs = out / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # the bench measures this checkout, never an old run
    rows = []
    for bid, b in load_registry().items():
        if "ci" not in b.scales:
            continue
        r = run_baseline(bid, "ci", seeds=1, results=str(runs), progress=False)
        low, high = r["expected"]["band"]
        rows.append(Row(bid, f"ci {r['metric']}, 1 seed, {r['measured']['epochs']} epochs "
                             f"({r['measured']['mean_epoch_s']:.1f} s/epoch)",
                        f"{r['measured']['mean']:.2f}", f"[{low}, {high}] (eqbench band)",
                        "pass" if r["pass"] else "FAIL"))
    return rows


def run_bench(out_dir: str = "reports/bench") -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs get the whole table
    t0 = time.perf_counter()
    figures: list[str] = []
    matrix: list[str] = []
    rows: list[Row] = []
    for title, fn in [("GDU", lambda: claim_rows(("gdu",))), ("negative controls", lambda: claim_rows(("control",))),
                      ("energy", lambda: claim_rows(("energy",))),
                      ("step", lambda: claim_rows(("step",)) + speed_rows()),
                      ("precision", precision_rows),
                      ("flip optimizer", lambda: claim_rows(("optimizer",))),
                      ("zoo", lambda: zoo_rows(matrix)),
                      ("figures", lambda: gdu_figures(out, figures) or []),
                      ("accuracy (training the ci configs)", lambda: accuracy_rows(out))]:
        with console.status(f"running the {title} checks…"):
            rows += fn()
    elapsed = time.perf_counter() - t0
    table = Table(title=f"eqbench bench ({elapsed:.0f} s)")
    for col in ("model", "check", "measured", "bound", "verdict"):
        table.add_column(col)
    for r in rows:
        style = {"pass": "green", "FAIL": "bold red", "inconclusive": "yellow", "info": "dim", "n/a": "dim"}[r.verdict]
        table.add_row(r.model, r.check, r.measured, r.bound, f"[{style}]{r.verdict}[/]")
    console.print(table)
    if matrix:
        console.print("\n".join(matrix), markup=False, highlight=False)
    failed = [r for r in rows if r.verdict in ("FAIL", "inconclusive")]
    summary = f"{len(rows)} rows, {len(failed)} failed, {elapsed:.0f} s, torch {torch.__version__}."
    md = ["# eqbench bench", "", summary, "",
          "| model | check | measured | bound | verdict |", "|---|---|---|---|---|"]
    md += [f"| {r.model} | {r.check} | {r.measured} | {r.bound} | {r.verdict} |" for r in rows]
    md += ["", "Negative controls pass when the check fails on the broken variant, as it must.", "", *matrix]
    md += [f"![{f}]({f})" for f in figures]
    write_text(out / "report.md", "\n".join(md) + "\n")
    write_json(out / "results.json", {"elapsed_s": elapsed, "rows": [asdict(r) for r in rows]})
    console.print(f"report: {out / 'report.md'}")
    return 1 if failed else 0
