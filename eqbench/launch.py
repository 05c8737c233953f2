"""Sweeps: many (baseline, seed) runs handed to an engine that already exists — local processes or SLURM through
submitit — with the run folders as the only shared state.

A job is one seed of one registry baseline at one scale; it trains into the same folder as ``eqbench run``
(``results/<id>/<scale>/seed<k>``, `eqbench.runner.seed_folder`), so a finished job is skipped (its
``result.json``), an interrupted one resumes from its checkpoint, and a folder has one writer at a time
(`eqbench.runlock`). A job that fails writes ``failed.json`` with its one-line reason and does not stop the others.
When the last seed of an id finishes, the job that finished it writes the id's ``run.json`` (under a lock, so two
jobs finishing together write it once); ``eqbench report`` reads them as before.

Launchers:

* ``local``: ``--jobs K`` processes at a time (``concurrent.futures.ProcessPoolExecutor``, spawned): no extra
  dependency, a failed job comes back as its exception, and the same job function as the cluster path. Each
  process gets ``--threads`` intra-op threads (default: the machine's cores over K).
* ``submitit``: one SLURM job per (id, seed) through submitit's ``AutoExecutor`` (partition, time, GPUs, memory,
  CPUs and extra ``sbatch`` options from flags or a YAML profile); ``eqbench sweep`` returns once they are
  submitted and ``--status`` follows them. ``cluster: local`` in the profile runs them through submitit's local
  executor instead (how this is tested without SLURM).

Same config, same seed, same thread count: the same numbers as ``eqbench run`` (tests/test_launch.py compares
them bit for bit).
"""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from .errors import ConfigError, one_line
from .io import read_yaml, write_json
from .registry import load_registry
from .runlock import RunFolderLock
from .runner import _folder, run_seed, seed_configs, seed_folder, summarize

LAUNCHERS = ("local", "submitit")
#: flags of ``eqbench sweep`` → submitit's parameter names (any other key of a profile is passed as it is)
SLURM_KEYS = {"partition": "slurm_partition", "time": "timeout_min", "gpus": "gpus_per_node", "mem_gb": "mem_gb",
              "cpus": "cpus_per_task"}


@dataclass(frozen=True)
class Job:
    """One seed of one baseline; ``seeds`` are all the seeds of that baseline in the sweep (for its run.json)."""

    id: str
    scale: str
    seed: int
    seeds: tuple[int, ...]
    device: str | None = None

    @property
    def name(self) -> str:
        return f"{self.id} ({self.scale}) seed {self.seed}"


def _seed_list(value: Any, where: str) -> list[int] | int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value))):
        raise ConfigError(f"{where}: seeds must be a count or a list of integers, got {value!r}")
    return value


def expand(specs: Iterable[str], scale: str, seeds: int = 1, device: str | None = None) -> list[Job]:
    """The jobs of ``specs``: glob patterns over registry ids (``gammell2021/diabetes/*``; the ids that have
    ``scale``), or one YAML file listing entries ``ID-or-pattern`` or ``{id: ID-or-pattern, seeds: N | [k, …]}``."""
    specs = list(specs)
    entries: list[tuple[str, list[int] | int]] = []
    if len(specs) == 1 and specs[0].endswith((".yaml", ".yml")):
        path = Path(specs[0])
        data = read_yaml(path, "sweep file")
        if not isinstance(data, list) or not data:
            raise ConfigError(f"sweep file {path} must be a non-empty list of ids or {{id, seeds}} entries")
        for i, e in enumerate(data):
            if isinstance(e, str):
                entries.append((e, seeds))
            elif isinstance(e, dict) and isinstance(e.get("id"), str) and set(e) <= {"id", "seeds"}:
                entries.append((e["id"], _seed_list(e.get("seeds", seeds), f"{path} entry {i + 1}")))
            else:
                raise ConfigError(f"{path} entry {i + 1}: expected an id or {{id, seeds}}, got {e!r}")
    else:
        entries = [(s, seeds) for s in specs]
    if not entries:
        raise ConfigError("eqbench sweep needs baseline ids, patterns or a sweep file")
    registry = load_registry()
    seeds_of: dict[str, tuple[int, ...]] = {}  # id → its seeds, in the order first named
    for pattern, n in entries:
        ids = [bid for bid, b in registry.items() if fnmatch.fnmatchcase(bid, pattern) and scale in b.scales]
        if not ids:
            raise ConfigError(f"no baseline with a {scale!r} config matches {pattern!r} (eqbench baselines lists them)")
        for bid in ids:
            new = tuple(cfg.seed for cfg in seed_configs(bid, scale, n, device))
            seeds_of[bid] = tuple(dict.fromkeys(seeds_of.get(bid, ()) + new))
    return [Job(bid, scale, s, seeds, device) for bid, seeds in seeds_of.items() for s in seeds]


def run_job(job: Job, results: str = "results", threads: int | None = None, data_dir: str | None = None,
            download: bool = False) -> dict[str, Any]:
    """Train ``job`` (skip it if finished, resume it if interrupted), then write its id's run.json if it was the
    last seed. A failure is recorded in ``failed.json`` (one line) and raised again."""
    if threads:
        torch.set_num_threads(threads)
    folder = seed_folder(results, job.id, job.scale, job.seed)
    (cfg,) = seed_configs(job.id, job.scale, [job.seed], job.device)
    try:
        result = run_seed(cfg, folder, data_dir=data_dir, download=download, progress=False)
    except Exception as e:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "failed.json", {"reason": one_line(e)})
        raise
    (folder / "failed.json").unlink(missing_ok=True)
    with FileLock(_folder(results, job.id, job.scale) / ".run-json.lock"):
        if all((seed_folder(results, job.id, job.scale, s) / "result.json").exists() for s in job.seeds):
            summarize(job.id, job.scale, list(job.seeds), results)
    return result


def state(job: Job, results: str = "results") -> tuple[str, str]:
    """(state, detail) of a job from its folder: done, failed (reason), running (who), interrupted (resumable),
    queued (not started)."""
    folder = seed_folder(results, job.id, job.scale, job.seed)
    if (folder / "result.json").exists():
        return "done", ""
    h = RunFolderLock(folder).running_holder()
    if h is not None:
        return "running", f"pid {h.get('pid')} on {h.get('host')} since {h.get('since')}"
    if (folder / "failed.json").exists():
        return "failed", json.loads((folder / "failed.json").read_text())["reason"]
    if (folder / "config.yaml").exists():
        return "interrupted", "resumes from its last checkpoint"
    return "queued", ""


def _submitit_executor(results: str, slurm: dict[str, Any]):
    try:
        # lazy: submitit is the optional `cluster` extra; only a SLURM launch needs it
        import submitit
    except ImportError:
        raise ConfigError("--launcher submitit needs the submitit package: pip install 'eqbench[cluster]'") from None
    params = {"name": "eqbench", **slurm}
    cluster = params.pop("cluster", None)
    try:
        ex = submitit.AutoExecutor(folder=Path(results) / ".submitit" / "%j", cluster=cluster)
    except RuntimeError as e:  # e.g. no srun: not on a SLURM cluster
        raise ConfigError(f"submitit cannot submit here: {one_line(e)}") from None
    try:
        ex.update_parameters(**{SLURM_KEYS.get(k, k): v for k, v in params.items()})
    except (ValueError, TypeError, NameError) as e:
        raise ConfigError(f"submitit rejects the SLURM options: {one_line(e)}") from None
    return ex


def slurm_options(profile: str | None = None, *, partition: str | None = None, time: int | None = None,
                  gpus: int | None = None, mem_gb: float | None = None, cpus: int | None = None,
                  sbatch: Iterable[str] = ()) -> dict[str, Any]:
    """The SLURM parameters: a YAML profile (``partition``, ``time`` in minutes, ``gpus``, ``mem_gb``, ``cpus``,
    any other submitit parameter, ``sbatch: {KEY: VALUE}`` for extra ``#SBATCH`` lines), then the flags."""
    opts: dict[str, Any] = {}
    if profile:
        data = read_yaml(profile, "SLURM profile")
        if not isinstance(data, dict):
            raise ConfigError(f"SLURM profile {profile} must be a mapping of options")
        opts.update(data)
    flags = {"partition": partition, "time": time, "gpus": gpus, "mem_gb": mem_gb, "cpus": cpus}
    opts.update({k: v for k, v in flags.items() if v is not None})
    extra = dict(opts.pop("sbatch", None) or {})
    for item in sbatch:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--sbatch takes KEY=VALUE (an #SBATCH option without its dashes), got {item!r}")
        extra[key.lstrip("-")] = value
    if extra:
        opts["slurm_additional_parameters"] = extra
    return opts


def launch(jobs: list[Job], launcher: str = "local", *, n_jobs: int = 1, threads: int | None = None,
           results: str = "results", slurm: dict[str, Any] | None = None, data_dir: str | None = None,
           download: bool = False, echo=print) -> int:
    """Run ``jobs``; exit status 0 when all finished (local) or were submitted (submitit), 1 if any failed."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {launcher!r}; known: {', '.join(LAUNCHERS)}")
    if n_jobs < 1:
        raise ConfigError(f"--jobs must be ≥ 1, got {n_jobs}")
    todo = []
    for job in jobs:
        if state(job, results)[0] == "done":
            echo(f"done (kept): {job.name}")
        else:
            todo.append(job)
    kw = {"results": results, "data_dir": data_dir, "download": download}
    failed = 0
    if launcher == "submitit":
        ex = _submitit_executor(results, slurm or {})
        subs = []
        for job in todo:
            try:
                sub = ex.submit(run_job, job, threads=threads, **kw)
            except Exception as e:  # sbatch refused it (an option SLURM rejects, a full queue): the others go on
                failed += 1
                echo(f"FAILED: {job.name}: not submitted: {one_line(e)}")
                continue
            subs.append((job, sub))
            echo(f"submitted: {job.name} as job {sub.job_id}")
        if ex.cluster == "local":  # tests and single machines: wait, as the local launcher does
            for job, s in subs:
                try:
                    s.result()
                    echo(f"done: {job.name}")
                except Exception:
                    failed += 1
                    echo(f"FAILED: {job.name}: {state(job, results)[1]}")
        return 1 if failed else 0
    threads = threads or max(1, (os.cpu_count() or 1) // n_jobs)

    with ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job, threads=threads, **kw): job for job in todo}
        for f in as_completed(futures):
            job = futures[f]
            try:
                f.result()
                echo(f"done: {job.name}")
            except Exception as e:
                failed += 1
                echo(f"FAILED: {job.name}: {one_line(e)}")
    return 1 if failed else 0


def status_table(jobs: list[Job], results: str = "results") -> str:
    """One row per job: its state and detail, then the counts per state."""
    rows = [(job, *state(job, results)) for job in jobs]
    lines = ["| job | state | detail |", "|---|---|---|"]
    lines += [f"| {job.name} | {st} | {detail} |" for job, st, detail in rows]
    counts: dict[str, int] = {}
    for _, st, _ in rows:
        counts[st] = counts.get(st, 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {st}" for st, n in counts.items()))
    return "\n".join(lines)
