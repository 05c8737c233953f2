"""The regression gate (``eqbench regress`` / ``make regress``): BASE against HEAD, side by side in one run.

    eqbench regress [--base REV] [--head REV] [--false-alarm 0.01] [--detect 1.25] [--factor F] [--mem-factor 1.10]
                    [--profile quick|full] [--rounds R] [--device cpu|cuda|all] [--out reports/regress]

Like ``asv continuous``, with the measured values of eqbench.tracking gated at their own tolerances:

1. each commit's eqbench is installed on its own (``git archive`` → ``pip install --no-deps --target``, built
   from that commit's files) under ``.asv/regress/<sha>/``, beside the project's environment (torch is never
   installed again); a commit that does not build is named in one line and the other's results are kept;
2. the benchmarks of the work tree's suites/asv_benchmarks (the profile in its ``config.json``) run against each
   commit in a fresh process (eqbench/gate_worker.py): timed rounds interleave BASE and HEAD (B H H B B H …),
   so a drift in machine load hits both alike; each round keeps the minimum of ``repeat`` calls;
3. the tracked values (GDU slopes and errors, energy margins, step equality, graph bytes, one-epoch ci
   accuracy) are measured once per commit, on one thread each, both commits at once; the speed ratios (timed,
   reported only) one commit after the other;
4. each time's limit is measured in the same run (`calibrate`): the rounds of one commit against each other (A/A:
   BASE against BASE, HEAD against HEAD) give the spread of that benchmark on this machine now, and the limit is
   the ratio that an unchanged commit exceeds with probability ``false_alarm`` / (number of timed benchmarks) —
   so ``false_alarm`` is the chance that a gate of an unchanged commit flags any time at all. The statistic is the
   ratio of the geometric means of each side's fastest half of the rounds (a burst only ever slows a round). The
   report gives each time's noise, its limit and the slowdown it detects 9 times in 10; a time whose noise hides
   a slowdown of ``detect`` gets ``rounds`` more rounds, up to the profile's ``max_rounds``. ``factor`` replaces the
   measured limits with one fixed ratio, compared with the medians over rounds (the gate before the calibration);
5. the table: benchmark, BASE, HEAD, ratio, noise, limit, detects, verdict. Exit status 1 when a time grew beyond
   its limit, a peak memory beyond ``mem_factor``, a tracked value got worse beyond its tolerance, or a benchmark
   that ran at BASE fails at HEAD; improvements are reported and never fail. Exit status 2 on bad input. A time
   over its limit is confirmed first: the flagged benchmarks alone run ``rounds`` fresh interleaved rounds, and
   only a ratio over the limit of those rounds too fails (the confirmation clears a burst, never raises a flag).

Every finished measurement is appended to ``.asv/regress/results.jsonl`` (keyed by machine, commit, the
benchmark definitions and the task) as soon as it is done, so an interrupted gate loses nothing finished and a
rerun continues where it stopped. The report is written to ``OUT/<base>-<head>.json`` (atomically), and its Markdown
summary to ``OUT/<base>-<head>.md`` and, under GitHub Actions, appended to ``$GITHUB_STEP_SUMMARY`` (the job's page).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .errors import EqbenchError
from .io import write_json, write_text
from .tracking import catalogue, selected

#: the detection probability of the report's "detects" column
POWER = 0.9


class GateError(EqbenchError):
    """Bad input to the gate or the history (unknown commit, dirty work tree, a commit that does not build)."""


def git(repo: Path, *args: str) -> str:
    """``git -C repo ARGS``'s standard output; a failure is a GateError carrying git's own last line."""
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if p.returncode:
        last = (p.stderr.strip().splitlines() or ["git failed"])[-1]
        raise GateError(f"git {' '.join(args)}: {last}")
    return p.stdout.strip()


def repo_root(path: str | Path = ".") -> Path:
    try:
        return Path(git(Path(path), "rev-parse", "--show-toplevel"))
    except GateError:
        raise GateError(f"{Path(path).resolve()} is not inside a git repository; run the gate from a clone of "
                        "eqbench") from None


def resolve(repo: Path, rev: str) -> str:
    """The full sha of ``rev``; an unknown revision is a one-line GateError."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except GateError:
        raise GateError(f"unknown commit {rev!r} in {repo}: give a commit, branch or tag that "
                        "'git log' shows (e.g. HEAD~1)") from None


def require_ancestor(repo: Path, base: str, head: str) -> None:
    """The gate compares a commit with one of its ancestors (for a pull request: the merge base)."""
    if subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", base, head]).returncode:
        raise GateError(f"BASE {base[:10]} is not an ancestor of HEAD {head[:10]}: gate a commit against one before "
                        "it (for a branch: BASE=$(git merge-base main HEAD))")


def require_clean(repo: Path) -> None:
    """The benchmark definitions are read from the work tree: refuse uncommitted changes to tracked files, except in
    asv's results folder (``results_dir`` of asv.conf.json), which ``eqbench history`` writes and the gate never
    reads — so that history and gate run one after the other."""
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no")
    results = _results_dir(repo)
    files = [line.split(maxsplit=1)[-1] for line in dirty.splitlines()]
    files = [f for f in files if results is None or not (f + "/").startswith(results + "/")]
    if files:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise GateError(f"the work tree has uncommitted changes ({shown}): commit or stash them first, "
                        "the benchmarks and their definitions must be those of a commit")


def _results_dir(repo: Path) -> str | None:
    """asv's results folder, relative to the repository (None without an asv.conf.json that names one)."""
    try:
        return str(json.loads((repo / "asv.conf.json").read_text())["results_dir"]).rstrip("/")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def machine_name() -> str:
    """A name for this machine's results: architecture, cores, CPU model, and the GPU when CUDA sees one
    (absolute times are compared on one machine only)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1]
                break
    except OSError:
        cpu = platform.processor()
    parts = [platform.machine(), f"{os.cpu_count()}cpu", cpu]
    try:

        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    slug = "-".join("".join(c if c.isalnum() else "-" for c in p.strip()).strip("-") for p in parts if p.strip())
    return "-".join(filter(None, slug.split("-")))[:80]


def install(repo: Path, sha: str, root: Path) -> Path:
    """Install commit ``sha``'s eqbench (no dependencies) under ``root/<sha>/site``, once; returns that folder.

    A commit that does not build raises GateError naming it, with pip's last line."""
    site = root / sha / "site"
    if (site / ".installed").exists():
        return site
    shutil.rmtree(root / sha, ignore_errors=True)
    src = root / sha / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", sha], capture_output=True)
    if archive.returncode:
        raise GateError(f"cannot read commit {sha[:12]}: {archive.stderr.decode().strip()[-300:]}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                       capture_output=True, text=True)
    if p.returncode:
        last = [line for line in (p.stderr or p.stdout).strip().splitlines() if line.strip()] or ["pip failed"]
        raise GateError(f"commit {sha[:12]} does not build ({last[-1].strip()[:200]}); fix it or gate another "
                        "commit — the results of the other commits are kept")
    (site / ".installed").touch()
    return site


# ---------------------------------------------------------------------------------------------------- store
class Store:
    """Append-only JSON lines of finished measurements; a torn last line (a kill mid-write) is ignored."""

    def __init__(self, path: Path, machine: str, defs: str) -> None:
        self.path, self.machine, self.defs = path, machine, defs
        self.done: dict[tuple[str, str], Any] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("machine") == machine and rec.get("defs") == defs:
                    self.done[(rec["commit"], rec["task"])] = rec["result"]

    def get(self, commit: str, task: str) -> Any:
        return self.done.get((commit, task))

    def put(self, commit: str, task: str, result: Any) -> None:
        self.done[(commit, task)] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"machine": self.machine, "defs": self.defs, "commit": commit, "task": task,
                           "result": result})
        with open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def definitions_hash(repo: Path) -> str:
    """What the measurements mean: the benchmark folder's files (a changed benchmark invalidates old results)."""
    h = hashlib.sha256()
    bench = repo / "suites" / "asv_benchmarks"
    for f in sorted(bench.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(f.relative_to(bench).as_posix().encode())
            h.update(f.read_bytes())
    h.update((repo / "eqbench" / "gate_worker.py").read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------- worker
def _worker(repo: Path, site: Path, tasks: list[dict], threads_env: dict[str, str] | None = None,
            wait: bool = True):
    """Run eqbench/gate_worker.py of the work tree over ``tasks`` with commit ``site``'s eqbench."""
    tmp = Path(tempfile.mkdtemp(prefix="eqbench-gate-"))
    job, out = tmp / "job.json", tmp / "out.json"
    job.write_text(json.dumps({"suites": str(repo / "suites"), "tasks": tasks, "out": str(out)}))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env["EQBENCH_BASELINES_DIR"] = str(repo / "baselines")  # measured on the work tree's configs
    env.update(threads_env or {})
    proc = subprocess.Popen([sys.executable, "-P", str(repo / "eqbench" / "gate_worker.py"), str(job)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def collect() -> list[dict]:
        _, err = proc.communicate()
        answers = json.loads(out.read_text()) if out.exists() else []
        shutil.rmtree(tmp, ignore_errors=True)
        if len(answers) < len(tasks):  # the process died: the unfinished tasks failed with its last line
            last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]
            answers += [{"error": f"worker died: {last}"}] * (len(tasks) - len(answers))
        return answers

    return collect() if wait else collect


def _task_id(task: dict) -> str:
    if task["kind"] == "tracked":
        return f"tracked:{task['family']}"
    params = ", ".join(str(p) for p in task.get("params", []))
    return f"{task['kind']}:{task['name']}({params})"


# ----------------------------------------------------------------------------------------------------- gate
@dataclass
class Row:
    benchmark: str
    kind: str  # time, peakmem, track, tracked
    unit: str
    base: float | None
    head: float | None
    ratio: float | None
    verdict: str  # ok, REGRESSED, FAILED at HEAD, improved, info, new, skipped
    note: str = ""
    noise: float | None = None  # a time's spread from round to round (relative standard deviation)
    limit: float | None = None  # the ratio over which the row is REGRESSED
    detects: float | None = None  # the slowdown flagged with probability POWER
    rounds: dict[str, list[float]] | None = None  # a time's per-round values, BASE and HEAD


@dataclass
class Calibration:
    ratio: float  # HEAD over BASE: exp of the difference of the means of each side's fastest rounds' log times
    noise: float  # the spread of log time from round to round (≈ relative standard deviation of a round)
    limit: float  # the ratio that an unchanged commit exceeds with probability alpha
    detects: float  # the slowdown over the limit with probability POWER


#: Monte-Carlo draws of the statistic's null distribution (fixed seed: same limits for the same rounds)
NULL_DRAWS = 200_000


def _fastest(logs: np.ndarray) -> np.ndarray:
    """Each row's fastest ⌈n/2⌉ rounds (two at least): a burst only ever slows a round, so the fast half is where
    the clean rounds are."""
    n = logs.shape[-1]
    return np.sort(logs, axis=-1)[..., :max(2, (n + 1) // 2)]


def _statistic(lb: np.ndarray, lh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d = mean of HEAD's fastest half − mean of BASE's, s = their pooled spread (rows: independent gates)."""
    fb, fh = _fastest(lb), _fastest(lh)
    return fh.mean(-1) - fb.mean(-1), np.sqrt((fb.var(-1) + fh.var(-1)) / 2)


@lru_cache(maxsize=8)
def _null(nb: int, nh: int) -> tuple[np.ndarray, np.ndarray]:
    """(d, s) of NULL_DRAWS gates of an unchanged commit with Gaussian log times of unit spread."""
    z = np.random.default_rng(0).standard_normal((NULL_DRAWS, nb + nh))
    return _statistic(z[:, :nb], z[:, nb:])


@lru_cache(maxsize=256)
def _quantiles(nb: int, nh: int, alpha: float) -> tuple[float, float, float]:
    """q, δ and E[s₀] of `calibrate` for these round counts."""
    d0, s0 = _null(nb, nh)
    q = float(np.quantile(d0 / s0, 1 - alpha))
    return q, float(np.quantile(q * s0 - d0, POWER)), float(s0.mean())


def calibrate(base: list[float], head: list[float], alpha: float) -> Calibration | None:
    """The limit of one timed benchmark, from its own rounds (None without two rounds on each side).

    A/A: the rounds of one commit against each other (BASE against BASE, HEAD against HEAD) hold no change, only
    the machine's noise. The statistic keeps each side's fastest half of the rounds (a process that lands slow as a
    whole — ×1.1 to ×1.6 in about one round in seven on the 2-core CI machine — only ever slows a round):

        d = mean log t_HEAD − mean log t_BASE,   s = √((var log t_BASE + var log t_HEAD) / 2)   (fastest halves)

    and d / s does not depend on the time scale or the noise level. Its distribution for an unchanged commit with
    Gaussian log times, drawn once per round count (`_null`), gives q = its 1 − α quantile; then

        limit = exp(q · s),   detects = exp(δ · s / E[s₀]),   P(d₀ + δ > q · s₀) = POWER

    where d₀, s₀ are the drawn unit-spread gates: an unchanged commit lands over the limit with probability α, a
    slowdown of ``detects`` with probability POWER (at the noise s measured). Slow bursts can only raise s and the
    fast halves, so they cost power, not false alarms (tests/test_gate.py draws both)."""
    if len(base) < 2 or len(head) < 2:
        return None
    d, s = (float(v) for v in _statistic(np.log(base), np.log(head)))
    q, delta, mean_s0 = _quantiles(len(base), len(head), alpha)
    noise = s / mean_s0
    return Calibration(math.exp(d), noise, math.exp(q * s), math.exp(delta * noise))


def _fast_mean(values: list[float]) -> float | None:
    """The geometric mean of the fastest half of the rounds (all of them below four): what `calibrate` compares."""
    return float(np.exp(_fastest(np.log(values)).mean())) if values else None


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.3f} s"
    if unit == "bytes":
        return f"{v / 2**20:.2f} MiB"
    return f"{v:.4g}"


def _profile(repo: Path, name: str) -> dict:
    path = repo / "suites" / "asv_benchmarks" / "config.json"
    try:
        profiles = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GateError(f"cannot read the gate profiles {path}: {exc}") from None
    if name not in profiles or name.startswith("_"):
        known = ", ".join(k for k in profiles if not k.startswith("_"))
        raise GateError(f"unknown gate profile {name!r}; known: {known}")
    return profiles[name]


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def plan(profile: dict, device: str) -> dict[str, list[dict]]:
    """The profile's tasks by kind, for ``device`` (cpu, cuda or all; CUDA variants only where CUDA is seen)."""
    if device not in ("cpu", "cuda", "all"):
        raise GateError(f"unknown device {device!r}; known: cpu, cuda, all")
    cuda = _cuda_available()
    if device == "cuda" and not cuda:
        raise GateError("--device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")

    def keep(params: list) -> bool:
        dev = next((p for p in params if p in ("cpu", "cuda")), "cpu")
        return (device in ("all", dev)) and (dev != "cuda" or cuda)

    out: dict[str, list[dict]] = {}
    for kind in ("time", "peakmem", "track"):
        out[kind] = [{"kind": kind, "name": n, "params": p, "repeat": profile.get("repeat", 5)}
                     for n, p in profile.get(kind, []) if keep(p)]
    out["tracked"] = [{"kind": "tracked", "family": f} for f in profile.get("tracked", [])]  # "gdu" or "gdu/P_MLP"
    return out


def run_gate(base: str = "HEAD~1", head: str = "HEAD", *, factor: float | None = None, false_alarm: float = 0.01,
             detect: float = 1.25, mem_factor: float = 1.10, profile: str = "quick", rounds: int | None = None,
             device: str = "all", repo: str | Path = ".", out: str | Path = "reports/regress",
             quiet: bool = False) -> tuple[int, list[Row]]:
    """Run the gate; returns (exit status, rows). See the module docstring. ``factor=None`` (the default): each
    time's limit is measured (`calibrate`) at ``false_alarm`` per gate, with more rounds (up to the profile's
    ``max_rounds``, 3 × ``rounds`` by default) for a time whose noise hides a slowdown of ``detect``; a number: that
    fixed ratio for every time."""
    if (factor is not None and factor < 1) or mem_factor < 1:
        raise GateError(f"--factor and --mem-factor must be at least 1 (got {factor} and {mem_factor})")
    if detect <= 1:
        raise GateError(f"--detect must be a slowdown above 1 (got {detect}), e.g. 1.25")
    if not 0 < false_alarm < 0.5:
        raise GateError(f"--false-alarm must lie strictly between 0 and 0.5 (got {false_alarm}): it is the chance "
                        "that a gate of an unchanged commit flags a time, e.g. 0.01")
    root = repo_root(repo)
    require_clean(root)
    shas = {"BASE": resolve(root, base), "HEAD": resolve(root, head)}
    require_ancestor(root, shas["BASE"], shas["HEAD"])
    prof = _profile(root, profile)
    tasks = plan(prof, device)
    R = int(rounds or prof.get("rounds", 3))
    if factor is None and tasks["time"] and R < 2:
        raise GateError(f"{R} timed round per commit cannot measure the noise: give --rounds 2 or more, or a fixed "
                        "--factor")
    store = Store(root / ".asv" / "regress" / "results.jsonl", machine_name(), definitions_hash(root))
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))

    sites: dict[str, Path] = {}
    for side, sha in shas.items():
        say(f"installing {side} {sha[:10]}")
        sites[side] = install(root, sha, root / ".asv" / "regress")

    def run_missing(side: str, todo: list[dict], key_suffix: str = "", threads: dict | None = None, wait=True):
        sha = shas[side]
        missing = [t for t in todo if store.get(sha, _task_id(t) + key_suffix) is None]
        if not missing:
            return (lambda: None) if not wait else None

        def record(answers):
            for t, a in zip(missing, answers):
                store.put(sha, _task_id(t) + key_suffix, a)

        pending = _worker(root, sites[side], missing, threads, wait=wait)
        if wait:
            record(pending)
            return None
        return lambda: record(pending())

    # tracked values: deterministic, one thread each, both commits at once (two cores); the speed ratios are
    # timed, so they run alone, one commit after the other
    one = {"EQBENCH_NUM_THREADS": "1"}
    timed = [t for t in tasks["tracked"] if t["family"].split("/")[0] == "speed"]
    exact = [t for t in tasks["tracked"] if t not in timed]
    if exact:
        say(f"measuring the tracked values ({', '.join(t['family'] for t in exact)}) at both commits")
        for finish in [run_missing(side, exact, wait=False, threads=one) for side in shas]:
            finish()
    for side in shas:
        run_missing(side, timed, threads=one)
    # timed rounds, interleaved: B H, H B, B H, …; one intra-op thread unless $EQBENCH_NUM_THREADS says otherwise:
    # on a small shared machine OpenMP threads that outnumber the free cores make single timings jump by ×1.3
    # and more, one thread keeps the minimum of a round within a few per cent
    timing_env = {"EQBENCH_NUM_THREADS": os.environ.get("EQBENCH_NUM_THREADS", "1")}

    def timed_rounds(first: int, last: int, timed: list[dict], what: str, tag: str = "r") -> None:
        """Rounds ``first`` to ``last`` − 1 of ``timed`` (stored as ``#<tag><round>``: "r" for the rounds that
        are judged, "c" for the confirmation's fresh ones)."""
        for r in range(first, last):
            for side in ["BASE", "HEAD"] if r % 2 == 0 else ["HEAD", "BASE"]:
                todo = timed + (tasks["track"] if r == 0 and tag == "r" else [])
                if todo:
                    say(f"round {r + 1}/{last}: {what} {side}")
                    run_missing(side, todo, key_suffix=f"#{tag}{r}", threads=timing_env)

    for r in range(int(prof.get("mem_rounds", 1))):
        for side in ["BASE", "HEAD"] if r % 2 == 0 else ["HEAD", "BASE"]:
            for t in tasks["peakmem"]:  # one process each: peak RSS is a property of the whole process
                run_missing(side, [t], key_suffix=f"#r{r}", threads=timing_env)

    rows: list[Row] = []
    sha_b, sha_h = shas["BASE"], shas["HEAD"]

    def round_values(sha: str, t: dict, rounds: range, tag: str = "r") -> tuple[list[float], str]:
        vals, errs, skipped = [], [], []
        for r in rounds:
            a = store.get(sha, _task_id(t) + f"#{tag}{r}") or {}
            if "samples" in a:
                vals.append(min(a["samples"]))
            elif "value" in a:
                vals.append(a["value"])
            elif "skipped" in a:
                skipped.append(a["skipped"])
            elif "error" in a:
                errs.append(a["error"])
        return vals, "" if vals else (errs or skipped or ["not measured"])[0]

    def name_of(t: dict) -> str:
        return f"{t['name']}({', '.join(str(p) for p in t['params'])})"

    def median_row(t: dict, kind: str, rounds: range, limit: float) -> Row:
        (vb, nb), (vh, nh) = round_values(sha_b, t, rounds), round_values(sha_h, t, rounds)
        b, h = (statistics.median(v) if v else None for v in (vb, vh))
        return _verdict_ratio(name_of(t), kind, "bytes", b, h, limit, nb, nh)

    def time_row(t: dict, rounds: range, alpha: float, tag: str = "r") -> Row:
        """The median over rounds against ``factor``, or the fastest half's geometric mean against the measured
        limit (`calibrate`)."""
        (vb, nb), (vh, nh) = round_values(sha_b, t, rounds, tag), round_values(sha_h, t, rounds, tag)
        cal = calibrate(vb, vh, alpha)
        if factor is not None:
            b, h = (statistics.median(v) if v else None for v in (vb, vh))
            row = _verdict_ratio(name_of(t), "time", "s", b, h, factor, nb, nh)
        else:
            row = _verdict_ratio(name_of(t), "time", "s", _fast_mean(vb), _fast_mean(vh),
                                 cal.limit if cal else math.inf, nb, nh)
            if row.ratio is not None:
                row.note = (f"false alarms {alpha:.2g}" if cal else
                            "too few rounds measured to know the noise: not judged")
            if cal:
                row.detects = cal.detects
        row.rounds = {"BASE": vb, "HEAD": vh}
        if cal:
            row.noise = cal.noise
        return row

    R_max = int(prof.get("max_rounds", 3 * R)) if factor is None else R

    def judged(timed: list[dict], alpha: float, tag: str) -> list[Row]:
        """R rounds of ``timed`` (those of tag "r" ran already), then R more at a time, up to max_rounds, for each
        time whose noise hides a slowdown of ``detect``. The choice reads the spread alone, never the ratio, so it
        does not bias the verdict (for Gaussian rounds mean and spread are independent; the false-alarm rate with
        it is measured: docs/across-commits.md, "The gate's power")."""
        n = {_task_id(t): R for t in timed}
        timed_rounds(0, R, timed, "confirming" if tag == "c" else "timing", tag)
        while True:
            judged_rows = [time_row(t, range(n[_task_id(t)]), alpha, tag) for t in timed]
            loud = [t for t, row in zip(timed, judged_rows) if n[_task_id(t)] < R_max and (row.detects or 0) > detect]
            if not loud:
                return judged_rows
            first = n[_task_id(loud[0])]
            batch = [t for t in loud if n[_task_id(t)] == first]
            last = min(first + R, R_max)
            say(f"{len(batch)} time(s) too noisy to detect ×{detect:g}: rounds {first + 1} to {last}")
            timed_rounds(first, last, batch, "more rounds", tag)
            for t in batch:
                n[_task_id(t)] = last

    # the false-alarm rate is per gate: each of the m timed benchmarks gets α/m (Bonferroni)
    time_rows = judged(tasks["time"], false_alarm / max(1, len(tasks["time"])), "r")
    # confirmation: a slowdown must show again in fresh interleaved rounds of the flagged benchmarks alone, judged
    # the same way. One process in a round can land ×1.2–1.5 slow as a whole (host contention for seconds; seen on
    # the 2-core CI machine), and such bursts are independent between passes, so a false alarm must happen twice
    # while a true slowdown, present in every process, shows in both passes
    flagged = [t for t, row in zip(tasks["time"], time_rows) if row.verdict == "REGRESSED"]
    if flagged:
        say(f"{len(flagged)} timed benchmark(s) over their limit: confirming in fresh rounds")
        again_rows = dict(zip(map(_task_id, flagged), judged(flagged, false_alarm / len(flagged), "c")))
    for t, row in zip(tasks["time"], time_rows):
        if t in flagged:
            again = again_rows[_task_id(t)]
            n = len(again.rounds["HEAD"]) if again.rounds else 0
            shown = (f"×{again.ratio:.3f} over ×{again.limit:.3f}" if again.ratio is not None else again.note)
            if again.verdict == "REGRESSED":
                row.note += f"; confirmed: {shown} in {n} fresh rounds"
            else:
                shown = shown.replace(" over ", " within ")
                row.verdict, row.note = "ok", row.note + f"; not confirmed ({shown} in {n} fresh rounds): noise"
        rows.append(row)
    for kind, n, limit in (("peakmem", int(prof.get("mem_rounds", 1)), mem_factor), ("track", 1, mem_factor)):
        rows += [median_row(t, kind, range(n), limit) for t in tasks[kind]]
    cat = catalogue()
    for t in tasks["tracked"]:
        rb, rh = store.get(sha_b, _task_id(t)) or {}, store.get(sha_h, _task_id(t)) or {}
        vb, vh = rb.get("values", {}), rh.get("values", {})
        for key in [k for k in cat if selected(k, t["family"])]:
            tr = cat[key]
            b, h = vb.get(key), vh.get(key)
            note_b, note_h = rb.get("error", ""), rh.get("error", "")
            if h is None:
                verdict = "FAILED at HEAD" if b is not None else "skipped"
                rows.append(Row(key, "tracked", tr.unit, b, None, None, verdict, note_h or "not measured"))
                continue
            if b is None:
                rows.append(Row(key, "tracked", tr.unit, None, h, None, "new", note_b or "not measured at BASE"))
                continue
            worse = tr.worse_by(b, h)
            tol = f"×{tr.tolerance:g}" if tr.relative else f"{tr.tolerance:g}"
            if not tr.gated:
                verdict = "info"
            elif tr.regressed(b, h):
                verdict = "REGRESSED"
            elif (worse < 1 / tr.tolerance) if tr.relative else (worse < -tr.tolerance):
                verdict = "improved"
            else:
                verdict = "ok"
            ratio = h / b if b not in (0, None) and math.isfinite(b) else None
            rows.append(Row(key, "tracked", tr.unit, b, h, ratio, verdict, f"worse by {worse:.3g} (tolerance {tol})"))

    failed = [r for r in rows if r.verdict in ("REGRESSED", "FAILED at HEAD")]
    report = {"base": sha_b, "head": sha_h, "factor": factor, "false_alarm": false_alarm, "mem_factor": mem_factor,
              "profile": profile,
              "rounds": R, "machine": store.machine, "rows": [asdict(r) for r in rows],
              "regressions": len(failed), "pass": not failed}
    write_json(Path(out) / f"{sha_b[:10]}-{sha_h[:10]}.json", report)
    summary = markdown(rows, shas, factor, mem_factor, false_alarm)
    write_text(Path(out) / f"{sha_b[:10]}-{sha_h[:10]}.md", summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # where GitHub Actions shows a job's summary
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(summary + "\n")
    if not quiet:
        print_table(rows, shas, factor, mem_factor, false_alarm)
    return (1 if failed else 0), rows


def _time_rule(factor: float | None, false_alarm: float) -> str:
    if factor is not None:
        return f"times at ×{factor:g}"
    return f"times at their measured limits (false-alarm rate {false_alarm:g} a gate)"


def _cells(r: Row) -> list[str]:
    """benchmark, BASE, HEAD, ratio, noise, limit, detects, verdict, note."""
    def ratio(v: float | None) -> str:
        return "—" if v is None else "∞" if math.isinf(v) else f"×{v:.3f}"

    noise = "—" if r.noise is None else f"±{100 * r.noise:.1f} %"
    return [r.benchmark, _fmt(r.base, r.unit), _fmt(r.head, r.unit), ratio(r.ratio), noise, ratio(r.limit),
            ratio(r.detects), r.verdict, r.note]


COLUMNS = ("benchmark", "BASE", "HEAD", "ratio", "noise", "limit", "detects", "verdict", "note")


def markdown(rows: list[Row], shas: dict[str, str], factor: float | None, mem_factor: float,
             false_alarm: float = 0.01) -> str:
    """The gate's verdict and table in Markdown (what a CI job summary or a pull-request comment shows): the
    regressions first, then every row, then a strip plot of each time's rounds."""
    bad = [r for r in rows if r.verdict in ("REGRESSED", "FAILED at HEAD")]
    head = (f"## eqbench regress: {'**' + str(len(bad)) + ' regressed**' if bad else 'no regression'}\n\n"
            f"BASE `{shas['BASE'][:10]}` → HEAD `{shas['HEAD'][:10]}`: {len(rows)} compared; "
            f"{_time_rule(factor, false_alarm)}, a flag confirmed in fresh rounds; peak memory at ×{mem_factor:g}, "
            "tracked values at their tolerances. *noise*: a time's spread from round to round; *limit*: the ratio "
            f"over which a row regresses; *detects*: the slowdown flagged {POWER:.0%} of the time.\n")
    lines = [head]
    if bad:
        lines += ["", *[f"- **{r.benchmark}**: {r.verdict} ({_fmt(r.base, r.unit)} → {_fmt(r.head, r.unit)}"
                        + (f", ×{r.ratio:.3f}" if r.ratio is not None else "") + f"; {r.note})" for r in bad], ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        if r in bad:
            cells[7] = f"**{r.verdict}**"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    timed = [r for r in rows if r.rounds and (r.rounds["BASE"] or r.rounds["HEAD"])]
    if timed:
        width = max(len(r.benchmark) for r in timed)
        lines += ["", "Rounds of each time (B: BASE, H: HEAD, *: both), from its fastest to its slowest round:", "",
                  "```", *[f"{r.benchmark:<{width}}  {_strip(r.rounds)}" for r in timed], "```"]
    return "\n".join(lines) + "\n"


def _strip(rounds: dict[str, list[float]], width: int = 40) -> str:
    """One line: the rounds of BASE and HEAD placed on a common scale from the fastest to the slowest."""
    values = rounds["BASE"] + rounds["HEAD"]
    lo, hi = min(values), max(values)
    cells = [" "] * width
    for mark, vals in (("B", rounds["BASE"]), ("H", rounds["HEAD"])):
        for v in vals:
            i = 0 if hi == lo else round((v - lo) / (hi - lo) * (width - 1))
            cells[i] = mark if cells[i] in (" ", mark) else "*"
    return f"|{''.join(cells)}|  {_fmt(lo, 's')} … {_fmt(hi, 's')}"


def _verdict_ratio(name: str, kind: str, unit: str, b: float | None, h: float | None, limit: float,
                   note_b: str, note_h: str) -> Row:
    if h is None:
        verdict = "FAILED at HEAD" if b is not None and not note_h.startswith("NotImplementedError") else "skipped"
        return Row(name, kind, unit, b, None, None, verdict, note_h)
    if b is None:
        return Row(name, kind, unit, None, h, None, "new", note_b)
    ratio = h / b if b > 0 else math.inf
    verdict = "REGRESSED" if ratio > limit else "improved" if ratio < 1 / limit else "ok"
    return Row(name, kind, unit, b, h, ratio, verdict, f"limit ×{limit:g}", limit=limit)


def print_table(rows: list[Row], shas: dict[str, str], factor: float | None, mem_factor: float,
                false_alarm: float = 0.01) -> None:
    console = Console(width=None if sys.stdout.isatty() else 220)
    table = Table(title=f"eqbench regress: BASE {shas['BASE'][:10]} → HEAD {shas['HEAD'][:10]} "
                        f"({_time_rule(factor, false_alarm)}, memory ×{mem_factor:g}, tracked values at their "
                        "tolerances)")
    for col in COLUMNS:
        table.add_column(col)
    style = {"REGRESSED": "bold red", "FAILED at HEAD": "bold red", "improved": "green", "ok": "", "info": "dim",
             "new": "dim", "skipped": "dim"}
    for r in rows:
        cells = _cells(r)
        cells[7] = f"[{style[r.verdict]}]{r.verdict}[/]" if style[r.verdict] else r.verdict
        table.add_row(*cells)
    console.print(table)
    bad = [r for r in rows if r.verdict in ("REGRESSED", "FAILED at HEAD")]
    console.print(f"{len(rows)} compared, {len(bad)} regressed" + (": " + ", ".join(r.benchmark for r in bad)
                                                                    if bad else ""))


#: the docs page and block that show the gate's measured power, rendered from POWER_FILE by `power_table`
POWER_PAGE = "docs/across-commits.md"
POWER_MARKERS = ("<!-- gate:power (eqbench.regress.power_table of suites/measurements/gate-power.json) -->",
                 "<!-- /gate:power -->")
POWER_FILE = "suites/measurements/gate-power.json"


def power_table(doc: dict) -> list[str]:
    """The docs' table of the gate's power (docs/across-commits.md) from a measurement of tests/test_gate_power.py:
    per planted commit, the gates that failed at the measured limits, those a fixed ×1.3 on the first five rounds'
    medians would have flagged, and per benchmark the ratios seen and the median noise, limit, detectable slowdown
    and rounds used."""
    lines = ["| planted commit | gates failed | fixed ×1.3 would flag | benchmark | ratio seen | noise | limit | "
             "detects | rounds |", "|---|---|---|---|---|---|---|---|---|"]
    for label, row in doc["table"].items():
        for i, (name, b) in enumerate(row["benchmarks"].items()):
            lead = [label, f"{row['failed']}/{row['gates']}", f"{row['fixed 1.3, first pass']}/{row['gates']}"]
            lo, hi = b["ratio range"]
            cells = [*(lead if i == 0 else ["", "", ""]), f"`{name.removeprefix('free_phase.')}`",
                     f"×{lo:.2f} – ×{hi:.2f}", f"±{100 * b['median noise']:.1f} %", f"×{b['median limit']:.3f}",
                     f"×{b['median detects']:.3f}", "–".join(str(n) for n in sorted(set(b["rounds"])))]
            lines.append("| " + " | ".join(cells) + " |")
    prov = doc["provenance"]
    lines += ["", f"Measured by `{prov['command']}` at commit {prov['commit']} on {prov['machine']}, {prov['date']} "
                  f"(torch {prov['torch']}): the `{doc['profile']}` profile, false-alarm rate {doc['false_alarm']:g} a "
                  "gate; noise, limit and detects are medians over the gates, rounds the fewest and most a gate used."]
    return lines
