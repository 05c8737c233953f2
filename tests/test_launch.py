"""Sweeps (eqbench.launch): parallel local jobs give the sequential runs' numbers bit for bit, finished jobs are
kept, a failing job is reported without stopping the others, the submitit path runs through submitit's local
executor and writes the sbatch options asked for, and bad input is one line."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

from eqbench.cli import main
from eqbench.errors import ConfigError
from eqbench.launch import Job, expand, launch, slurm_options, state, status_table
from eqbench.runner import run_baseline, seed_folder

pytestmark = pytest.mark.usefixtures("one_thread")

BID = "laborieux2021/mnist5k/mlp-ep-symmetric-mse"  # ci: P_MLP on MNIST-5k, 8 epochs, about 3 s a seed


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "last.pt", weights_only=True)["model"]


def _same_runs(a: Path, b: Path, seeds: list[int]) -> None:
    ra, rb = (json.loads((r / "run.json").read_text()) for r in (a, b))
    assert ra["measured"]["per_seed"] == rb["measured"]["per_seed"] and ra["pass"] == rb["pass"]
    for s in seeds:
        fa, fb = a / f"seed{s}", b / f"seed{s}"
        assert [json.loads(line)["test_acc"] for line in (fa / "metrics.jsonl").read_text().splitlines()] == \
               [json.loads(line)["test_acc"] for line in (fb / "metrics.jsonl").read_text().splitlines()]
        wa, wb = _weights(fa), _weights(fb)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"seed {s}: weights differ"


def test_two_local_jobs_at_a_time_give_the_sequential_numbers_bit_for_bit(tmp_path):
    """3 seeds with --jobs 2 (each job one thread) against `eqbench run --seeds 3` in this process (one thread):
    every epoch's test accuracy, every final weight and the run.json equal."""
    run_baseline(BID, "ci", seeds=3, results=str(tmp_path / "seq"), progress=False)
    jobs = expand([BID], "ci", seeds=3)
    assert [j.seed for j in jobs] == [0, 1, 2] and all(j.seeds == (0, 1, 2) for j in jobs)
    assert launch(jobs, "local", n_jobs=2, threads=1, results=str(tmp_path / "par"), echo=lambda _: None) == 0
    folder = Path(BID.replace("/", "__")) / "ci"
    _same_runs(tmp_path / "seq" / folder, tmp_path / "par" / folder, [0, 1, 2])


def test_a_failing_job_is_reported_and_the_others_finish(tmp_path):
    """Seed 1's folder holds an unreadable checkpoint: that job fails with its one-line reason (failed.json and
    --status), seeds 0 and 2 finish, and no run.json is written for an id with a failed seed; once the folder is
    repaired a rerun keeps the finished seeds and completes the id."""
    results = str(tmp_path)
    bad = seed_folder(results, BID, "ci", 1)
    bad.mkdir(parents=True)
    (bad / "config.yaml").write_text("epochs: 2\n")  # no model: not a run config
    lines: list[str] = []
    jobs = expand([BID], "ci", seeds=3)
    assert launch(jobs, "local", n_jobs=2, threads=1, results=results, echo=lines.append) == 1
    assert sorted(line.split(":")[0] for line in lines) == ["FAILED", "done", "done"]
    st = {j.seed: state(j, results) for j in jobs}
    assert st[0][0] == st[2][0] == "done" and st[1][0] == "failed" and "config.yaml" in st[1][1]
    assert not (seed_folder(results, BID, "ci", 0).parent / "run.json").exists()
    assert "| laborieux2021/mnist5k/mlp-ep-symmetric-mse (ci) seed 1 | failed |" in status_table(jobs, results)
    (bad / "config.yaml").unlink()
    lines.clear()
    assert launch(jobs, "local", n_jobs=1, threads=1, results=results, echo=lines.append) == 0
    assert sum(line.startswith("done (kept)") for line in lines) == 2
    assert json.loads((bad.parent / "run.json").read_text())["measured"]["seeds"] == [0, 1, 2]


def test_states_queued_interrupted_and_running(tmp_path):
    from eqbench.runlock import RunFolderLock

    job = Job(BID, "ci", 0, (0,))
    assert state(job, str(tmp_path))[0] == "queued"
    folder = seed_folder(tmp_path, BID, "ci", 0)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("{}")
    assert state(job, str(tmp_path))[0] == "interrupted"
    with RunFolderLock(folder):
        st, detail = state(job, str(tmp_path))
    assert st == "running" and f"pid {os.getpid()}" in detail


def test_a_killed_writers_leftover_note_reads_interrupted_not_running(tmp_path):
    """`eqbench sweep --status` probes the lock itself: a writer killed with SIGKILL leaves its note (host, pid)
    but the OS releases its lock, so the job reads "interrupted" (resumable), never "running" forever."""
    import signal
    import subprocess
    import sys

    job = Job(BID, "ci", 0, (0,))
    folder = seed_folder(tmp_path, BID, "ci", 0)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("{}")
    code = ("import sys, time; from eqbench.runlock import RunFolderLock; lock = RunFolderLock(sys.argv[1]); "
            "lock.__enter__(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        st, detail = state(job, str(tmp_path))
        assert st == "running" and f"pid {proc.pid}" in detail
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (folder / ".lock.json").exists()  # the note outlives its writer
    assert state(job, str(tmp_path)) == ("interrupted", "resumes from its last checkpoint")
    assert "| interrupted |" in status_table([job], str(tmp_path))


def test_a_sweep_file_with_seed_lists_and_patterns(tmp_path):
    f = tmp_path / "sweep.yaml"
    f.write_text("- {id: 'laborieux2021/mnist5k/mlp-ep-*-mse', seeds: [3, 5]}\n- laborieux2021/mnist5k/mlp-bptt-mse\n")
    jobs = expand([str(f)], "ci", seeds=2)
    assert {(j.id.rsplit("/", 1)[1], j.seed) for j in jobs} == {
        ("mlp-ep-onesided-mse", 3), ("mlp-ep-onesided-mse", 5), ("mlp-ep-randomsign-mse", 3),
        ("mlp-ep-randomsign-mse", 5), ("mlp-ep-symmetric-mse", 3), ("mlp-ep-symmetric-mse", 5),
        ("mlp-bptt-mse", 0), ("mlp-bptt-mse", 1)}


def test_a_sweep_file_that_names_a_baseline_twice_adds_the_seeds_of_both(tmp_path):
    """Entries add up: the seeds of every entry that names (or matches) an id, each once, in the order first named;
    every job of the id knows the whole seed set (its run.json is written after the last)."""
    f = tmp_path / "sweep.yaml"
    f.write_text(f"- {{id: '{BID}', seeds: [3]}}\n- {{id: '{BID}', seeds: [5, 3]}}\n"
                 "- {id: 'laborieux2021/mnist5k/mlp-ep-sym*-mse', seeds: [7]}\n")
    jobs = expand([str(f)], "ci")
    assert [(j.id, j.seed) for j in jobs] == [(BID, 3), (BID, 5), (BID, 7)]
    assert {j.seeds for j in jobs} == {(3, 5, 7)}


@pytest.mark.parametrize("argv, message", [
    (["sweep", "nobody/*", "--scale", "ci"], "no baseline with a 'ci' config matches 'nobody/*'"),
    (["sweep", BID, "--scale", "ci", "--jobs", "0"], "--jobs must be ≥ 1"),
    (["sweep", BID, "--scale", "ci", "--seeds", "0"], "--seeds must be at least 1"),
    (["sweep", BID, "--scale", "ci", "--launcher", "submitit", "--sbatch", "account"], "--sbatch takes KEY=VALUE"),
    (["sweep", "missing.yaml", "--scale", "ci"], "sweep file missing.yaml does not exist"),
    (["run", BID, "--scale", "ci", "--launcher", "submitit", "--slurm-profile", "missing.yaml"],
     "SLURM profile missing.yaml"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_seeds_that_are_not_integers_are_one_line(tmp_path):
    f = tmp_path / "sweep.yaml"
    f.write_text(f"- {{id: {BID}, seeds: [1, two]}}\n")
    with pytest.raises(ConfigError, match="seeds must be a count or a list of integers"):
        expand([str(f)], "ci")


def test_submitit_missing_or_rejecting_an_option_is_one_line(monkeypatch, tmp_path):
    jobs = expand([BID], "ci")
    with pytest.raises(ConfigError, match="rejects the SLURM options: .*bogus"):
        launch(jobs, "submitit", results=str(tmp_path), slurm={"cluster": "local", "bogus_option": 1})
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs the submitit package: pip install 'eqbench\[cluster\]'"):
        launch(jobs, "submitit", results=str(tmp_path), slurm={})


def test_the_submitit_path_through_its_local_executor_gives_the_same_numbers(tmp_path):
    run_baseline(BID, "ci", seeds=2, results=str(tmp_path / "seq"), progress=False)
    jobs = expand([BID], "ci", seeds=2)
    lines: list[str] = []
    assert launch(jobs, "submitit", threads=1, results=str(tmp_path / "sub"), slurm={"cluster": "local"},
                  echo=lines.append) == 0
    assert sum(line.startswith("submitted:") for line in lines) == 2
    folder = Path(BID.replace("/", "__")) / "ci"
    _same_runs(tmp_path / "seq" / folder, tmp_path / "sub" / folder, [0, 1])


def test_the_sbatch_script_carries_the_requested_options(tmp_path, monkeypatch):
    """No SLURM here: a fake ``sbatch`` (and ``srun``, which submitit looks for) on PATH keeps the script it is
    given; the options of the flags and of the profile's ``sbatch`` mapping are its #SBATCH lines."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fakes = {"srun": "exit 0", "sbatch": f'cp "$1" {tmp_path}/job.sh\necho "Submitted batch job 4242"'}
    for name, body in fakes.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    profile = tmp_path / "slurm.yaml"
    profile.write_text("partition: gpu\nmem_gb: 32\nsbatch: {account: ep-lab}\n")
    slurm = slurm_options(str(profile), time=600, gpus=1, cpus=8, sbatch=["--qos=high"])
    lines: list[str] = []
    assert launch(expand([BID], "ci"), "submitit", results=str(tmp_path / "r"), slurm={"cluster": "slurm", **slurm},
                  echo=lines.append) == 0
    assert lines == [f"submitted: {BID} (ci) seed 0 as job 4242"]
    script = (tmp_path / "job.sh").read_text()
    for option in ("--partition=gpu", "--mem=32GB", "--time=600", "--gpus-per-node=1", "--cpus-per-task=8",
                   "--account=ep-lab", "--qos=high", "--job-name=eqbench"):
        assert f"#SBATCH {option}\n" in script, option


def test_the_sweep_command_writes_every_run_json_and_the_report(tmp_path, capsys):
    ids = [f"laborieux2021/mnist5k/mlp-ep-{e}-mse" for e in ("onesided", "randomsign", "symmetric")]
    argv = ["sweep", "laborieux2021/mnist5k/mlp-ep-*-mse", "--scale", "ci", "--launcher", "local", "--jobs", "2",
            "--threads", "1", "--results", str(tmp_path / "r"), "--report", str(tmp_path / "report.md")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done: ") == 3 and "report: " in out
    for bid in ids:
        assert json.loads((tmp_path / "r" / bid.replace("/", "__") / "ci" / "run.json").read_text())["id"] == bid
    assert all(bid in (tmp_path / "report.md").read_text() for bid in ids)
    assert main([*argv[:4], "--results", str(tmp_path / "r"), "--status"]) == 0
    assert capsys.readouterr().out.count("| done |") == 3


def test_a_job_sbatch_refuses_is_reported_in_one_line(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, body in {"srun": "exit 0", "sbatch": 'echo "sbatch: error: invalid partition specified: nope" >&2\nexit 1'
                       }.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    lines: list[str] = []
    assert launch(expand([BID], "ci", seeds=2), "submitit", results=str(tmp_path / "r"),
                  slurm={"cluster": "slurm", "partition": "nope"}, echo=lines.append) == 1
    assert len(lines) == 2 and all(line.startswith(f"FAILED: {BID} (ci) seed ") and "not submitted" in line
                                   and "\n" not in line for line in lines), lines
