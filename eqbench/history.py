"""Benchmark history across commits with asv (``eqbench history`` / ``make history``).

    eqbench history [--range REV-RANGE] [--bench REGEX] [--no-publish]

1. ``asv machine`` records this machine under `eqbench.regress.machine_name` (architecture, cores, CPU model,
   GPU): absolute times are compared on one machine only, the tracked values of eqbench.tracking on any;
2. ``asv run HASHFILE:… --skip-existing-commits`` benchmarks the commits of the range (default: the last 10
   commits of ``main``) that have no results yet on this machine, in one shared virtualenv built from
   ``constraints.txt`` (asv.conf.json: torch is installed once, each commit then installs only its own wheel),
   with ``--quick`` (one call per benchmark: about 4 minutes a commit on two cores; the tracked values are
   deterministic and lose nothing, the absolute times are single samples — the gate is where times are compared
   with statistics).
   A commit that does not build, or a benchmark that did not exist yet or fails, is recorded as failed by asv
   and the run goes on;
3. ``asv publish`` writes the HTML site to ``reports/history/`` and `write_summary` adds
   ``reports/history/summary.md`` with one PNG per family (GDU errors and slopes, speed ratios, memory,
   accuracy, CPU times).

The results live in ``suites/asv_results/<machine>/`` and are committed with the code: a fresh clone has the
whole history, and CI, which clones main only, sees it too (a results branch would need a second push and
would be missing from such clones). Commit them after a run (``git add suites/asv_results``).
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from .io import save_figure, write_text
from .regress import GateError, git, machine_name, repo_root, require_clean

DEFAULT_COUNT = 10


def commits_of(repo: Path, rev_range: str | None) -> list[str]:
    """The commits of ``rev_range`` (a git range such as ``HEAD~5..HEAD``, or one revision and its ancestors),
    newest first; the default is the last 10 commits of main."""
    try:
        if rev_range is None:
            out = git(repo, "rev-list", f"--max-count={DEFAULT_COUNT}", "main")
        elif ".." in rev_range:
            out = git(repo, "rev-list", rev_range)
        else:
            out = git(repo, "rev-list", f"--max-count={DEFAULT_COUNT}", rev_range)
    except GateError:
        raise GateError(f"unknown commit range {rev_range or 'main'!r}: give a git range such as HEAD~5..HEAD "
                        "(see 'git log')") from None
    shas = out.split()
    if not shas:
        raise GateError(f"the range {rev_range!r} holds no commit")
    return shas


def _asv(repo: Path, *args: str) -> int:
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo).returncode


def run_history(rev_range: str | None = None, *, bench: str | None = None, publish: bool = True,
                repo: str | Path = ".", asv_args: tuple[str, ...] = ("--quick",)) -> int:
    """Benchmark the range's missing commits, publish the site and the summary. Returns 0, or 1 when a commit
    of the range has no result at all after the run (it did not build: asv's log above says why)."""
    root = repo_root(repo)
    require_clean(root)
    shas = commits_of(root, rev_range)
    machine = machine_name()
    hashfile = root / ".asv" / "history-commits.txt"
    hashfile.parent.mkdir(parents=True, exist_ok=True)
    hashfile.write_text("\n".join(shas) + "\n")
    _asv(root, "machine", "--yes", "--machine", machine)
    args = ["run", f"HASHFILE:{hashfile}", "--skip-existing-commits", "--machine", machine, "--show-stderr",
            *asv_args]
    if bench:
        args += ["--bench", bench]
    _asv(root, *args)  # failures are recorded per commit and benchmark; the run never aborts on them
    results = load_results(root, machine)
    folder = _results_root(root)
    others = sorted(p.name for p in folder.glob("*") if p.is_dir() and p.name != machine)
    if not results and others:
        raise GateError(f"{folder.relative_to(root)} has no results of this machine ({machine}), only of "
                        f"{', '.join(others)}: times are compared on one machine, and none of the range's commits "
                        "was benchmarked here (asv's log above says why)")
    missing = [s for s in shas if s not in results]
    for s in missing:
        print(f"eqbench history: commit {s[:10]} has no results (it did not build; asv's log above says why); "
              "the other commits' results are kept", file=sys.stderr)
    if publish:
        _asv(root, "publish")
        summary = write_summary(root, machine, shas)
        print(f"site: {root / 'reports' / 'history' / 'index.html'}; summary: {summary}")
    return 1 if missing else 0


def _results_root(repo: Path) -> Path:
    """asv's results folder (``results_dir`` of asv.conf.json), one sub-folder per machine."""
    return repo / json.loads((repo / "asv.conf.json").read_text())["results_dir"]


def load_results(repo: Path, machine: str) -> dict[str, dict[str, float | None]]:
    """{commit sha: {"bench(params)": value}} of the asv results of ``machine`` (value None: failed/skipped)."""
    folder = _results_root(repo) / machine
    out: dict[str, dict[str, float | None]] = {}
    for f in sorted(folder.glob("*.json")):
        if f.name == "machine.json":
            continue
        data = json.loads(f.read_text())
        cols = data.get("result_columns", [])
        values = out.setdefault(data["commit_hash"], {})
        for name, row in data.get("results", {}).items():
            rec = dict(zip(cols, row))
            result, params = rec.get("result"), rec.get("params") or []
            if not params:
                values[name] = _num(result)
                continue
            combos = _product([[ast.literal_eval(p) if _literal(p) else p for p in axis] for axis in params])
            for combo, v in zip(combos, result if isinstance(result, list) else [result] * len(combos)):
                values[f"{name}({', '.join(str(c) for c in combo)})"] = _num(v)
    return out


def _literal(p: str) -> bool:
    try:
        ast.literal_eval(p)
        return True
    except (ValueError, SyntaxError):
        return False


def _product(axes: list[list]) -> list[tuple]:
    combos: list[tuple] = [()]
    for axis in axes:
        combos = [c + (v,) for c in combos for v in axis]
    return combos


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


#: summary figure → (title, selector of "bench(params)" names, log scale)
FIGURES = {
    "gdu_errors": ("GDU symmetric rel. error at β = 1e-3 (lower is better)",
                   lambda k: k.startswith("tracked.GDU.") and k.endswith("symmetric_error)"), True),
    "gdu_slopes": ("GDU log–log slopes (one-sided → 1, symmetric → 2)",
                   lambda k: k.startswith("tracked.GDU.") and "slope" in k, False),
    "speed_ratios": ("speed ratios timed side by side (higher is faster)", lambda k: k.startswith("tracked.Speed."),
                     False),
    "accuracy": ("one-epoch ci accuracy (%) per seed paper", lambda k: k.startswith("tracked.Accuracy.") and
                 "gammell" not in k, False),
    "memory": ("bytes saved for backward (EP and BPTT step, T2 = 10)",
               lambda k: k.startswith("tracked.Memory.") and "bytes)" in k and "over" not in k, True),
    "cpu_times": ("absolute CPU times of this machine (s)",
                  lambda k: ".time_" in k and k.endswith("cpu)"), True),
}


def write_summary(repo: Path, machine: str, shas: list[str]) -> Path:
    """reports/history/summary.md: a PNG per family of tracked values against the range's commits (oldest
    first), and the table of the newest commit's values against the oldest one that has them."""
    # lazy: matplotlib (and its backend choice) only when the summary's figures are drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: pyplot after the backend is chosen
    import matplotlib.pyplot as plt

    out = repo / "reports" / "history"
    results = load_results(repo, machine)
    order = [s for s in reversed(shas)]
    labels = [s[:7] for s in order]
    md = ["# eqbench history", "", f"Machine `{machine}`, {len(order)} commits (oldest first): "
          + ", ".join(labels) + ".", "",
          "The HTML site (`index.html`, `asv publish`) has every benchmark; these figures are the tracked families.",
          ""]
    for fig_name, (title, select, log) in FIGURES.items():
        series: dict[str, list[float | None]] = defaultdict(lambda: [None] * len(order))
        for i, sha in enumerate(order):
            for key, v in results.get(sha, {}).items():
                if select(key):
                    series[key][i] = v
        series = {k: v for k, v in series.items() if any(x is not None for x in v)}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for k, ys in sorted(series.items()):
            pts = [(i, y) for i, y in enumerate(ys) if y is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=_short(k))
        ax.set_xticks(range(len(order)), labels, rotation=45, fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
        save_figure(fig, out / f"summary_{fig_name}.png")
        plt.close(fig)
        md += [f"## {title}", "", f"![{fig_name}](summary_{fig_name}.png)", "",
               "| value | first | newest | points |", "|---|---|---|---|"]
        for k, ys in sorted(series.items()):
            pts = [y for y in ys if y is not None]
            md.append(f"| {_short(k)} | {pts[0]:.4g} | {pts[-1]:.4g} | {len(pts)} |")
        md.append("")
    return write_text(out / "summary.md", "\n".join(md) + "\n")


def _short(key: str) -> str:
    name, _, params = key.partition("(")
    parts = name.split(".")
    return f"{parts[1]}.{parts[2]}({params}" if len(parts) >= 3 and parts[0] != "tracked" else params.rstrip(")")
