"""The main job (``make bench`` / ``eqbench bench``): every check on embedded data, in minutes.

The GDU, energy and step checks of the engine, then every ``ci``-scale reproduction of the
registry trained for one seed against its band.

Prints one table — model, check, measured value, bound, verdict — and writes a report folder:
``report.md`` (the table and the figures), ``results.json`` and the PNGs. Negative controls are
rows whose verdict is "pass" when the check *fails* on the broken variant, as it must. Exit status
is 1 when any row fails.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import tracking
from .cases import (
    SIGN_BETA,
    SIGN_CASES,
    SIGN_T1,
    SIGN_T2,
    THEOREM_CASES,
    THEOREM_T1,
    THEOREM_T2,
    build_case,
    case,
    theorem_settings,
)
from .checks import energy as en
from .checks.controls import FlippedSignEP, values_unlike_keys_case
from .checks.gdu import (
    SIGN_ERROR_LIVE_BOUND,
    SLOPE_ONE_SIDED,
    SLOPE_SYMMETRIC,
    SYMMETRIC_BETA,
    SYMMETRIC_BOUND,
    ep_for,
    prepare,
    report,
    symmetric_mean,
)
from .io import write_json, write_text
from .plots import plot_gdu, plot_sweep
from .rules import EP


@dataclass
class Row:
    model: str
    check: str
    measured: str
    bound: str
    verdict: str  # "pass", "FAIL" or "info"


def _band(v: float, band: tuple[float, float]) -> str:
    return "pass" if band[0] <= v <= band[1] else "FAIL"


def _le(v: float, bound: float) -> str:
    return "pass" if v <= bound else "FAIL"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def gdu_rows(out: Path, figures: list[str]) -> list[Row]:
    rows = []
    for label in THEOREM_CASES:
        m = tracking.gdu_case(label)
        sw, sym_rep = m.sweep, m.symmetric
        sym = sym_rep.rel_error
        if m.run.model.name.startswith("SEQ"):
            # Bal & Sengupta: the question is per layer, projection layers (s1…, proj.k) included
            rows += [Row(label, f"GDU symmetric rel. error at β={SYMMETRIC_BETA:g}, {layer.key}",
                         f"{layer.rel_error:.2e}", f"≤ {SYMMETRIC_BOUND:g}", _le(layer.rel_error, SYMMETRIC_BOUND))
                     for layer in sym_rep.layers]
        rows += [
            Row(label, "GDU one-sided slope (float64)", f"{sw.slope_one_sided:.3f}", f"{SLOPE_ONE_SIDED}",
                _band(sw.slope_one_sided, SLOPE_ONE_SIDED)),
            Row(label, "GDU symmetric slope (float64)", f"{sw.slope_symmetric:.3f}", f"{SLOPE_SYMMETRIC}",
                _band(sw.slope_symmetric, SLOPE_SYMMETRIC)),
            Row(label, f"GDU symmetric rel. error at β={SYMMETRIC_BETA:g}", f"{sym:.2e}", f"≤ {SYMMETRIC_BOUND:g}",
                _le(sym, SYMMETRIC_BOUND)),
        ]
        name = f"sweep_{_slug(label)}.png"
        plot_sweep(sw, out / name, title=f"{label}: EP vs BPTT")
        figures.append(name)
        if label == "P_MLP":
            ep = symmetric_mean(ep_for(m.run, m.rule, 0.01), ep_for(m.run, m.rule, -0.01))
            plot_gdu(ep, m.run.bptt, out / "gdu_p_mlp.png",
                     title="P_MLP: EP symmetric β=0.01 (dashed) vs BPTT (solid)")
            figures.append("gdu_p_mlp.png")
    for label, spec in SIGN_CASES.items():
        model, x, y = case(spec)
        rule = EP(beta=SIGN_BETA, T1=SIGN_T1, T2=SIGN_T2, estimator="symmetric")
        rep = report(prepare(model, x, y, rule), rule, SIGN_BETA, "symmetric")
        rows.append(Row(label, f"GDU sign error, live pairs (β={SIGN_BETA:g}, T2={SIGN_T2})",
                        f"{rep.sign_error_live:.3f}", f"≤ {SIGN_ERROR_LIVE_BOUND}",
                        _le(rep.sign_error_live, SIGN_ERROR_LIVE_BOUND)))
        rows.append(Row(label, "GDU sign error, Laborieux (worst layer)", f"{rep.sign_error:.3f}", "—", "info"))
    return rows


def control_rows() -> list[Row]:
    """Negative controls: each must fail the GDU bound (verdict pass = the check caught it)."""
    rows = []
    base = THEOREM_CASES["P_MLP"]
    controls = [
        ("VF_MLP, independent feedback", case({**base, "name": "VF_MLP"}), EP, THEOREM_T1),
        ("VF_CNN, independent feedback", case({**THEOREM_CASES["P_CNN avg pool"], "name": "VF_CNN"}), EP, THEOREM_T1),
        ("P_MLP, estimator sign flipped", case(base), FlippedSignEP, THEOREM_T1),
        ("P_MLP, free phase of 3 steps", case(base), EP, 3),
        ("HOPFIELD, the authors' nudge (≈ 2× the gradient)",
         case({**THEOREM_CASES[HOPFIELD_CASE], "nudge": "reference"}), EP, theorem_settings(HOPFIELD_CASE)[0]),
        ("BIN_MLP bin_W, the authors' nudge after ρ (moves saturated outputs)",
         case({**THEOREM_CASES[BINARY_CASE], "nudge": "reference"}), EP, THEOREM_T1),
        ("SEQ_IMDB, retrieval with values unlike keys (asymmetric Jacobian)",
         values_unlike_keys_case(), EP, THEOREM_T1),
    ]
    for label, (model, x, y), cls, T1 in controls:
        rule = cls(beta=SYMMETRIC_BETA, T1=T1, T2=THEOREM_T2, estimator="one_sided")
        err = report(prepare(model, x, y, rule), rule, SYMMETRIC_BETA, "symmetric").rel_error
        rows.append(Row(label, f"negative control: GDU rel. error at β={SYMMETRIC_BETA:g} must exceed the bound",
                        f"{err:.2e}", f"> {SYMMETRIC_BOUND:g}", "pass" if err > SYMMETRIC_BOUND else "FAIL"))
    return rows


def energy_rows() -> list[Row]:
    rows = []
    reports = tracking.energy_reports()
    for label, (name, kw, steps, _) in tracking.ENERGY_CASES.items():
        rep = reports[label]
        energy = "½‖s‖² − Φ" if name == "BIN_MLP" else "(a/2)‖s‖² − Φ"
        rows.append(Row(label, f"async relaxation never increases E = {energy}",
                        f"max ΔE {rep.max_increase:.1e}", f"≤ {rep.tol:.0e}", "pass" if rep.passed else "FAIL"))
        if name == "BIN_MLP":
            continue
        model, x, _ = build_case(name, **kw)
        sync = en.energy_descent(model, x, steps, mode="sync")
        rows.append(Row(label, "sync relaxation: steps with an E increase (reported)",
                        f"{sync.n_increases} (max ΔE {sync.max_increase:.1e})", "—", "info"))
    rep = reports[tracking.HOPFIELD_ENERGY]
    label = tracking.HOPFIELD_ENERGY
    rows.append(Row(label, "free Euler phase never increases E (500 steps, paper init)",
                    f"max ΔE {rep.max_increase:.1e}", f"≤ {rep.tol:.0e}", "pass" if rep.passed else "FAIL"))
    model, x = tracking.paper_hopfield()
    bound = model.euler_step_bound()
    rows.append(Row(label, "Euler step bound 2/λmax(I − W_ss) (reported; ε must stay below)", f"{bound:.3f}",
                    "ε = 0.5", "info"))
    start, predicted = en.euler_overshoot(model, x[:1], 1.5)
    neg = en.energy_descent(model, x[:1], 1, mode="sync", start=start)
    rows.append(Row("HOPFIELD, ε = 1.5 × bound", "negative control: E must increase (predicted "
                    f"{predicted:.2e})", f"max ΔE {neg.max_increase:.2e}", f"> {neg.tol:.0e}",
                    "pass" if not neg.passed else "FAIL"))
    model, x, y = build_case("BIN_MLP", sizes=[784, 8192, 100], binary="W_N", expand_output=10, data="mnist5k",
                             batch=64)
    rep = en.activity_convergence(model, x, 20)
    rows.append(Row("BIN_MLP bin_W_N 784-8192-100, paper init", "free phase (T = 20): r_{t+1} ≤ ½·r_t while "
                    f"activities hold; last activity change at step {rep.last_change}",
                    f"max excess {rep.max_excess:.1e}", f"≤ {rep.tol:.0e}", "pass" if rep.contracts else "FAIL"))
    from .relaxation import relax

    free = relax(model, x, model.init_state(x), 20)
    for beta in (2.0, -2.0):
        rep = en.activity_convergence(model, x, 10, beta=beta, y=y, start=free)
        rows.append(Row("BIN_MLP bin_W_N 784-8192-100, paper init", f"nudged phase β = {beta:g}: rate q of the "
                        f"accumulators (reported); settled {rep.settled:.2f}", f"q = {rep.rate:g}",
                        "q < 1 contracts", "info"))
    model, x, _ = build_case("P_MLP", act="my_sigmoid", sizes=[64, 32, 16, 10], scale=2.0)
    neg = en.energy_descent(model, x, 60, mode="async", a=1.0)
    rows.append(Row("P_MLP my_sigmoid, E with a=1", "negative control: E must increase (non-clip σ)",
                    f"max ΔE {neg.max_increase:.1e}", f"> {neg.tol:.0e}", "pass" if not neg.passed else "FAIL"))
    model, x, _ = build_case("P_MLP", act="hard_sigmoid", sizes=[64, 32, 16, 10], scale=2.0)
    neg = en.energy_descent(model, x, 60, mode="async", a=2.0)
    rows.append(Row("P_MLP hard_sigmoid, E with a=2", "negative control: E must increase (wrong a)",
                    f"max ΔE {neg.max_increase:.1e}", f"> {neg.tol:.0e}", "pass" if not neg.passed else "FAIL"))
    return rows


HOPFIELD_CASE = "HOPFIELD SW_no_intra, gradient nudge"
BINARY_CASE = "BIN_MLP bin_W, gradient nudge"


def step_rows() -> list[Row]:
    """The closed-form step against the generic autograd one, the fused Hopfield step against the generic one:
    equality (float64) and speed ratios timed side by side (reported)."""
    rows = []
    diffs = tracking.step_differences()
    for label in tracking.STEP_CASES:
        rows.append(Row(label, "closed-form step = autograd step (float64, max |Δu|)", f"{diffs[label]:.1e}",
                        "≤ 1e-12", _le(diffs[label], 1e-12)))
    label = tracking.HOPFIELD_STEP
    rows.append(Row(label, "fused Euler step = generic step, 100 steps (float64, max |Δs|)",
                    f"{diffs[label]:.1e}", "≤ 1e-12", _le(diffs[label], 1e-12)))
    ratios = tracking.speed_ratios()
    for key, ratio in ratios.items():
        model, what = key.split("/")
        rows.append(Row(model, f"speed ratio {what}, timed side by side (reported)", f"×{ratio:.2f}", "—", "info"))
    return rows


def flip_rows() -> list[Row]:
    """The flip optimizer (Laydevant et al.) on ½‖W − W*‖² with binary W* = α·signs: with γ = 1 and τ = 0 it is
    sign descent and lands on W* in one step; the reversed rule (negative control) must not."""
    from .checks.controls import ReversedFlipOptimizer
    from .optim import FlipOptimizer

    rows = []
    g = torch.Generator().manual_seed(0)
    target = 0.05 * torch.where(torch.rand(64, 32, generator=g) < 0.5, -1.0, 1.0)
    for cls in (FlipOptimizer, ReversedFlipOptimizer):
        w = torch.nn.Parameter(0.05 * torch.where(torch.rand(64, 32, generator=g) < 0.5, -1.0, 1.0))
        opt = cls([{"params": [w], "binary": True, "gamma": 1.0, "threshold": 0.0}])
        for _ in range(3):
            w.grad = w.detach() - target
            opt.step()
        wrong = int((w.detach() != target).sum())
        control = cls is ReversedFlipOptimizer
        rows.append(Row("FlipOptimizer" + (", sign reversed" if control else ""),
                        ("negative control: must not solve" if control else "γ = 1, τ = 0 solves") +
                        " ½‖W − W*‖² (binary W*) in 3 steps", f"{wrong} of {w.numel()} weights wrong",
                        "> 0" if control else "0", "pass" if (wrong > 0) == control else "FAIL"))
    return rows


def accuracy_rows(out: Path) -> list[Row]:
    """Every ci-scale reproduction of the registry, one seed each, against its band."""
    import shutil

    from .registry import load_registry
    from .runner import run_baseline

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
    from rich.console import Console
    from rich.table import Table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs get the whole table
    t0 = time.perf_counter()
    figures: list[str] = []
    rows: list[Row] = []
    for title, fn in [("GDU", lambda: gdu_rows(out, figures)), ("negative controls", control_rows),
                      ("energy", energy_rows), ("step", step_rows), ("flip optimizer", flip_rows),
                      ("accuracy (training the ci configs)", lambda: accuracy_rows(out))]:
        with console.status(f"running the {title} checks…"):
            rows += fn()
    elapsed = time.perf_counter() - t0
    table = Table(title=f"eqbench bench ({elapsed:.0f} s)")
    for col in ("model", "check", "measured", "bound", "verdict"):
        table.add_column(col)
    for r in rows:
        style = {"pass": "green", "FAIL": "bold red", "info": "dim"}[r.verdict]
        table.add_row(r.model, r.check, r.measured, r.bound, f"[{style}]{r.verdict}[/]")
    console.print(table)
    failed = [r for r in rows if r.verdict == "FAIL"]
    summary = f"{len(rows)} rows, {len(failed)} failed, {elapsed:.0f} s, torch {torch.__version__}."
    md = ["# eqbench bench", "", summary, "",
          "| model | check | measured | bound | verdict |", "|---|---|---|---|---|"]
    md += [f"| {r.model} | {r.check} | {r.measured} | {r.bound} | {r.verdict} |" for r in rows]
    md += ["", "Negative controls pass when the check fails on the broken variant, as it must.", ""]
    md += [f"![{f}]({f})" for f in figures]
    write_text(out / "report.md", "\n".join(md) + "\n")
    write_json(out / "results.json", {"elapsed_s": elapsed, "rows": [asdict(r) for r in rows]})
    console.print(f"report: {out / 'report.md'}")
    return 1 if failed else 0
