"""Mutation testing of eqbench's own code (``make mutation MODULES=...``): mutmut over chosen modules, then a report.

mutmut (3.x) copies the package into ``mutants/``, plants one mutation per copy of a function (an operator, a
constant, a keyword, a returned value…), runs the tests that reach that function and calls the mutant *killed* when
one of them fails and *survived* when all pass. This driver runs it in a scratch copy of the repository
(``build/mutation``: the work tree is never touched) with ``only_mutate`` set to the modules asked for, and writes

* ``reports/mutation/summary.md``: per module, the mutants, killed, survived, equivalent, untested, not run (a
  stopped run's rest) and the kill rate killed / (mutants − equivalent − untested − not run); then every survivor
  with its diff;
* ``reports/mutation/results.json``: every mutant's status. Modules accumulate: a run replaces the rows of its own
  modules and keeps the others', so ``summary.md`` covers every module run so far.

Equivalent mutants (no result of any call can change) are listed with a one-line reason in
``suites/mutation/equivalent.yaml``; an entry whose mutant no longer exists or was killed is reported as stale.
The test tier is ``[tool.mutmut]`` of pyproject.toml: tests/ and the claims, properties and energy suites, without
the slow test files (the gate's clones, the launcher, data-parallel workers, estimate); each of those joins the tier
when a module it tests is mutated (`SLOW_TIERS`), so regress, launch, runlock, estimate and distributed are judged by
their own tests. Code that runs only in a process a test starts (the gate's worker, data-parallel ranks, the local
launcher's pool) records no hit for mutmut, so its mutants read "untested"; the report says so (`OUT_OF_PROCESS`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib
import yaml
from filelock import FileLock, Timeout

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = ROOT / "suites" / "mutation" / "equivalent.yaml"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
UNTESTED = {"no tests", "skipped"}
#: mutants a stopped run did not reach: neither judged nor counted as untested
NOT_RUN = {"not checked", "check was interrupted by user"}


#: test files outside the fast tier (they clone the repository and install commits, start workers, time batches:
#: minutes) that join it when one of their modules is mutated, so every module is judged by its own tests
SLOW_TIERS: dict[str, tuple[str, ...]] = {
    "eqbench/regress.py": ("tests/test_gate.py",),
    "eqbench/history.py": ("tests/test_gate.py",),
    "eqbench/gate_worker.py": ("tests/test_gate.py",),
    "eqbench/launch.py": ("tests/test_launch.py",),
    "eqbench/runlock.py": ("tests/test_launch.py",),
    "eqbench/estimate.py": ("tests/test_estimate.py",),
    "eqbench/distributed.py": ("tests/test_distributed.py",),
}
#: why a module's mutants may read "untested" although tests run its code: the code runs in a process the tests
#: start, from which mutmut records no hit (its stats are collected in the pytest process only), so no test is
#: selected for that function's mutants
OUT_OF_PROCESS: dict[str, str] = {
    "eqbench/gate_worker.py": "runs only as the gate's worker process (python -P eqbench/gate_worker.py)",
    "eqbench/distributed.py": "its per-rank training runs in the processes torch.multiprocessing spawns",
    "eqbench/launch.py": "run_job of --launcher local runs in the worker processes of a process pool",
}


def _dotted(module: str) -> str:
    """The module's dotted name as mutmut writes it in a mutant's name (a package's ``__init__`` left out)."""
    return module[: -len(".py")].replace("/", ".").removesuffix(".__init__")


def tier(selection: list[str], modules: list[str]) -> list[str]:
    """The test selection of [tool.mutmut] with the slow test files of ``modules`` let in (their --ignore dropped)."""
    let_in = {f"--ignore={t}" for m in modules for t in SLOW_TIERS.get(m, ())}
    return [a for a in selection if a not in let_in]


def _status(code) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def configure(pyproject: str, modules: list[str]) -> str:
    """``pyproject`` with its [tool.mutmut] table replaced whole: ``only_mutate`` set to ``modules`` and the test
    selection widened by their slow tiers (`tier`); the other keys and tables kept."""
    config = tomllib.loads(pyproject)["tool"]["mutmut"]
    selection = config["pytest_add_cli_args_test_selection"]
    head = "[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()
                                       if k not in ("pytest_add_cli_args_test_selection", "only_mutate"))
    only = "only_mutate = [" + ", ".join(json.dumps(m) for m in modules) + "]\n"
    selection = f"pytest_add_cli_args_test_selection = {json.dumps(tier(selection, modules))}\n"
    start = pyproject.index("[tool.mutmut]\n")
    end = pyproject.find("\n[", start + 1)
    return pyproject[:start] + head + only + selection + ("" if end < 0 else pyproject[end:])


def prepare(work: Path, modules: list[str]) -> None:
    """A copy of the tracked files in ``work`` whose [tool.mutmut] mutates ``modules`` only (kept between runs of
    the same modules, so that mutmut resumes; started afresh when the modules or the sources changed)."""
    stamp = work / ".modules"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    key = json.dumps({"modules": modules, "mtimes": [os.path.getmtime(ROOT / f) for f in files if f.endswith(".py")]})
    if stamp.exists() and stamp.read_text() == key:
        return
    shutil.rmtree(work, ignore_errors=True)
    for f in files:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, work / f)
    (work / "pyproject.toml").write_text(configure((work / "pyproject.toml").read_text(), modules))
    stamp.write_text(key)


def results(work: Path) -> dict[str, dict[str, str]]:
    """module path → mutant name → status, from mutmut's ``mutants/**/*.meta``."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if codes:
            out[module] = {name: _status(code) for name, code in sorted(codes.items())}
    return out


def functions(source: str, dotted: str) -> dict[str, str]:
    """mutmut's name of each function of a module (``pkg.mod.x_f``, ``pkg.mod.xǁClassǁmethod``; its mutants are
    that name + ``__mutmut_N``, numbered within the function) → the function's source."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[f"{dotted}.x_{node.name}"] = ast.get_source_segment(source, node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"{dotted}.xǁ{node.name}ǁ{item.name}"] = ast.get_source_segment(source, item)
    return out


def again(work: Path, modules: list[str], root: Path = ROOT) -> tuple[list[str], dict[str, int]]:
    """What ``--again`` re-runs, read from the last run in ``work`` before it is replaced: every mutant that was not
    killed, and every mutant of a function whose source changed since (globs); and the exit codes to carry over
    for the others (the same function, so the same mutant; killed stays killed, as tests are only added)."""
    names, carried = [], {}
    for module in modules:
        meta = work / "mutants" / (module + ".meta")
        if not meta.exists():
            raise SystemExit(f"error: no earlier run of {module} in {work} to run again (run it without --again)")
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        dotted = _dotted(module)
        before = functions((work / module).read_text(), dotted)
        now = functions((root / module).read_text(), dotted)
        changed = {f for f in now if before.get(f) != now[f]}
        names += [f"{f}__mutmut_*" for f in sorted(changed)]
        for name, code in codes.items():
            if name.rsplit("__mutmut_", 1)[0] in changed:
                continue
            if code is not None and _status(code) in KILLED:
                carried[name] = code
            else:
                names.append(name)
    return names, carried


def diff(work: Path, name: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, capture_output=True, text=True)
    return r.stdout.strip() or r.stderr.strip()


def report(work: Path, out: Path, modules: list[str], seconds: float | None) -> dict:
    """Judge this run's modules and merge them into ``out/results.json``, which keeps every module run before
    (with its statuses, survivors' diffs, date and duration); every module is judged again against the current
    equivalent.yaml, and ``summary.md`` is written from all of them."""
    res = {m: v for m, v in results(work).items() if m in modules}
    equivalent = (yaml.safe_load(EQUIVALENT.read_text()) or {}) if EQUIVALENT.exists() else {}
    old = out / "results.json"
    data = json.loads(old.read_text()) if old.exists() else {}
    runs = data.get("modules", {}) if isinstance(data.get("modules"), dict) else {}
    minutes = None if seconds is None else round(seconds / 60, 1)
    for module in sorted(set(runs) | set(res)):
        kept = runs.get(module, {})
        fresh = module in res
        statuses = res[module] if fresh else kept["statuses"]
        eq = {n for n in statuses if n in equivalent and statuses[n] == "survived"}
        killed = sum(s in KILLED for s in statuses.values())
        untested = sum(s in UNTESTED for s in statuses.values())
        not_run = sum(s in NOT_RUN for s in statuses.values())
        survived = [n for n, s in statuses.items() if s == "survived" and n not in eq]
        judged = len(statuses) - len(eq) - untested - not_run
        prefix = _dotted(module) + "."
        stale = [n for n in equivalent if n.startswith(prefix) and statuses.get(n) != "survived"]
        diffs = {n: diff(work, n) for n in survived} if fresh else {n: kept["survivors"][n] for n in survived}
        runs[module] = {"mutants": len(statuses), "killed": killed, "survived": len(survived), "equivalent": len(eq),
                        "untested": untested, "not_run": not_run, "kill_rate": killed / judged if judged else None,
                        "date": time.strftime("%Y-%m-%d") if fresh else kept["date"],
                        "minutes": minutes if fresh and seconds is not None else kept.get("minutes"),
                        "stale_equivalent": stale, "survivors": diffs, "statuses": statuses}
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Mutation testing", "",
             "| module | date | mutants | killed | survived | equivalent | untested | not run | kill rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for module in sorted(runs):
        r = runs[module]
        rate = "—" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f} %"
        lines.append(f"| {module} | {r['date']} | {r['mutants']} | {r['killed']} | {r['survived']} | "
                     f"{r['equivalent']} | {r['untested']} | {r.get('not_run', 0)} | {rate} |")
    packages = sorted({m.rsplit("/", 1)[0] + "/" for m in runs if m.count("/") > 1})
    for pkg in packages:  # the targets of checks/ and models/ are per package
        rows = [r for m, r in runs.items() if m.startswith(pkg)]
        n = {k: sum(r.get(k, 0) for r in rows)
             for k in ("mutants", "killed", "survived", "equivalent", "untested", "not_run")}
        judged = n["mutants"] - n["equivalent"] - n["untested"] - n["not_run"]
        rate = f"{100 * n['killed'] / judged:.1f} %" if judged else "—"
        lines.append(f"| **{pkg}** (all) | | {n['mutants']} | {n['killed']} | {n['survived']} | {n['equivalent']} | "
                     f"{n['untested']} | {n['not_run']} | {rate} |")
    lines += ["", "Kill rate = killed / (mutants − equivalent − untested − not run: a stopped run's rest); equivalent "
              "mutants are listed with their reason in suites/mutation/equivalent.yaml. Each module's row is from its "
              f"latest run (this one: {', '.join(modules)}"
              + (f", {minutes} min" if minutes is not None else "") + ").", ""]
    unjudged = [m for m in sorted(runs) if runs[m]["untested"] and m in OUT_OF_PROCESS]
    if unjudged:
        lines += ["## Mutants it cannot judge", ""] + [
            f"- `{m}`: {runs[m]['untested']} untested: {OUT_OF_PROCESS[m]}; mutmut records no hit there, so no "
            "test is selected for them (the tests that start those processes still run the code)" for m in unjudged]
        lines.append("")
    stale = [n for r in runs.values() for n in r["stale_equivalent"]]
    if stale:
        lines += ["## Stale equivalent entries (no such surviving mutant)", ""] + [f"- `{n}`" for n in stale] + [""]
    survivors = [(n, d) for m in sorted(runs) for n, d in runs[m]["survivors"].items()]
    lines += [f"## Survivors ({len(survivors)})", ""]
    for name, text in survivors:
        lines += [f"### `{name}`", "", "```diff", text, "```", ""]
    (out / "summary.md").write_text("\n".join(lines))
    data = {"modules": runs}
    (out / "results.json").write_text(json.dumps(data, indent=1))
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="+", help="module paths, e.g. eqbench/relaxation.py (a folder: every .py in it)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "mutation")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "mutation")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last run")
    ap.add_argument("--again", action="store_true",
                    help="after adding tests: run only the mutants the last run of these modules did not kill, and "
                         "those of functions changed since; carry the other results over")
    a = ap.parse_args(argv)
    modules: list[str] = []
    for m in a.modules:
        p = ROOT / m
        if p.is_dir():
            modules += sorted(str(f.relative_to(ROOT)) for f in p.rglob("*.py"))
        elif p.suffix == ".py" and p.is_file():
            modules.append(m)
        else:
            ap.error(f"no such module {m!r} (a .py file or a folder of the repository)")
    a.work.parent.mkdir(parents=True, exist_ok=True)
    try:  # a second run in the same scratch copy would delete the first one's mutants mid-run (and its results)
        lock = FileLock(str(a.work) + ".lock").acquire(timeout=0)
    except Timeout:
        print(f"error: another mutation run is using {a.work} (wait for it, or give this one --work)", file=sys.stderr)
        return 2
    with lock:
        seconds = None
        if not a.report_only:
            names, carried = again(a.work, modules) if a.again else ([], {})
            if a.again and not names:  # every mutant killed, no function changed: the last run stands, kept
                print("nothing to run again: every mutant of the last run was killed and no function changed")
            else:
                if a.again:
                    shutil.rmtree(a.work, ignore_errors=True)  # a fresh copy of today's code and tests
                prepare(a.work, modules)
                env = {**os.environ, "EQBENCH_HYPOTHESIS_PROFILE": "ci", "OMP_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1", "EQBENCH_TEST_REPO": str(ROOT)}  # the gate tests' clone source
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(a.jobs), *names],
                               cwd=a.work, env=env, check=False)
                seconds = time.perf_counter() - t0
            for meta in (a.work / "mutants").rglob("*.py.meta") if carried else ():  # carried over, where not run
                d = json.loads(meta.read_text())
                codes = d.get("exit_code_by_key", {})
                codes.update({n: carried[n] for n, c in codes.items() if c is None and n in carried})
                meta.write_text(json.dumps(d))
        data = report(a.work, a.out, modules, seconds)
    for module in modules:
        r = data["modules"].get(module)
        if r is None:
            print(f"{module}: no mutants")
            continue
        rate = "—" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f} %"
        print(f"{module}: {r['mutants']} mutants, {r['killed']} killed, {r['survived']} survived, "
              f"{r['equivalent']} equivalent, {r['untested']} untested, {r['not_run']} not run: kill rate {rate}")
    print(f"report: {a.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
