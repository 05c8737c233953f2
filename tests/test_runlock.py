"""A run folder many processes can share: one writer at a time, a killed writer's lock taken over, and a damaged
last checkpoint falling back to the one before it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from eqbench.cli import main
from eqbench.config import RunConfig
from eqbench.errors import ConfigError
from eqbench.train import Trainer

ROOT = Path(__file__).resolve().parents[1]



def small(epochs: int) -> dict:
    return {"model": {"name": "P_MLP", "sizes": [64, 16, 10]}, "rule": {"name": "EP", "beta": 0.5, "T1": 8, "T2": 3},
            "optimizer": {"name": "sgd", "lrs": [0.1, 0.05], "momentum": 0.9},
            "data": {"name": "digits", "batch_size": 64, "test_batch_size": 200}, "epochs": epochs, "seed": 3}


def _final(result: dict) -> dict:
    return {k: v for k, v in result["final"].items() if k != "time_s"}


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from eqbench.runlock import RunFolderLock

    with RunFolderLock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of ``tmp_path / 'run'`` (killed at the end)."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path, holder, capsys):
    cfg = RunConfig.from_dict(small(epochs=1))
    with pytest.raises(ConfigError, match=f"is being written by pid {holder.pid} on {socket.gethostname()}"):
        Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing written by the refused process
    (tmp_path / "cfg.yaml").write_text(json.dumps(small(epochs=1)))
    assert main(["train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"pid {holder.pid}" in err and len(err.splitlines()) == 1, err


def test_a_killed_writers_lock_is_taken_over_with_a_warning(tmp_path, holder, capfd):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / ".lock.json").exists()  # the killed holder's note is still there
    result = Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path / "run", progress=False).fit()
    err = capfd.readouterr().err
    assert f"taking over {tmp_path / 'run'}, left locked by pid {holder.pid}" in err
    assert result["epochs"] == 1 and not (tmp_path / "run" / ".lock.json").exists()


def test_a_finished_writer_leaves_no_note_and_no_warning(tmp_path, capfd):
    """Negative control of the takeover warning: a run that ended normally leaves nothing to take over."""
    Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path / "run", progress=False).fit()
    assert not (tmp_path / "run" / ".lock.json").exists()
    Trainer(RunConfig.from_dict(small(epochs=1)), tmp_path / "run", progress=False).fit()
    assert "taking over" not in capfd.readouterr().err


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, capfd):
    """Two epochs written, last.pt truncated (a disk that filled, a copy cut short): resume warns in one line,
    continues from epoch 1's checkpoint, replays epoch 2 and ends with the uninterrupted run's numbers."""
    run = tmp_path / "run"
    Trainer(RunConfig.from_dict(small(epochs=2)), run, progress=False).fit()
    assert torch.load(run / "previous.pt", weights_only=True)["epoch"] == 1
    _truncate(run / "last.pt")
    (run / "result.json").unlink()
    resumed = Trainer.resume(run, progress=False)
    err = capfd.readouterr().err.strip()
    assert resumed.epoch == 1 and len(err.splitlines()) == 1
    assert f"{run / 'last.pt'} is unreadable" in err and f"resuming from {run / 'previous.pt'} (epoch 1)" in err
    full = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path / "full", progress=False).fit()
    assert _final(resumed.fit()) == _final(full)


def test_a_run_killed_between_moving_and_writing_last_resumes_from_previous(tmp_path, capfd):
    """`_checkpoint` moves last.pt to previous.pt, then writes the new last.pt: a kill in between leaves
    previous.pt alone. Resume continues from it (no warning: nothing is damaged), not from scratch."""
    run = tmp_path / "run"
    Trainer(RunConfig.from_dict(small(epochs=2)), run, progress=False).fit()
    (run / "last.pt").unlink()
    (run / "result.json").unlink()
    resumed = Trainer.resume(run, progress=False)
    assert resumed.epoch == 1 and "warning" not in capfd.readouterr().err
    full = Trainer(RunConfig.from_dict(small(epochs=2)), tmp_path / "full", progress=False).fit()
    assert _final(resumed.fit()) == _final(full)


def test_no_readable_checkpoint_is_one_line_naming_each_file_and_why(tmp_path):
    """The whole line: each unreadable file with torch's reason (type and message), then what it means."""
    run = tmp_path / "run"
    Trainer(RunConfig.from_dict(small(epochs=2)), run, progress=False).fit()
    _truncate(run / "last.pt")
    (run / "previous.pt").write_bytes(b"not a checkpoint")
    reasons = []
    for name in ("last.pt", "previous.pt"):
        try:
            torch.load(run / name, weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch's own reason, as the user will read it
            reasons.append(f"{type(e).__name__}: {' '.join(str(e).split())}")
    with pytest.raises(ConfigError) as e:
        Trainer.resume(run, progress=False)
    m = re.fullmatch(rf"cannot resume {re.escape(str(run))}: {re.escape(str(run / 'last.pt'))} is unreadable \((.+)\); "
                     rf"{re.escape(str(run / 'previous.pt'))} is unreadable \((.+)\), and no earlier checkpoint is "
                     "readable", str(e.value))
    assert m, str(e.value)
    for shown, reason in zip(m.groups(), reasons):
        assert reason.startswith(shown) and len(shown) >= min(len(reason), 100), (shown, reason)
    assert os.path.exists(run / "last.pt")  # nothing deleted: the user decides


class _Payload:
    """An object whose unpickling runs code: what a checkpoint from an untrusted source could carry."""

    ran = False

    def __reduce__(self):
        return (_Payload._run, ())

    @staticmethod
    def _run():
        _Payload.ran = True
        return 0


def test_a_checkpoint_that_would_run_code_is_not_loaded(tmp_path):
    """Checkpoints are read with weights_only=True: a last.pt carrying arbitrary objects is refused (reported as
    unreadable) and its code never runs."""
    run = tmp_path / "run"
    Trainer(RunConfig.from_dict(small(epochs=1)), run, progress=False).fit()
    ck = torch.load(run / "last.pt", weights_only=True)
    ck["extra"] = _Payload()
    torch.save(ck, run / "last.pt")
    with pytest.raises(ConfigError, match=r"last.pt is unreadable \(UnpicklingError: ") as e:
        Trainer.resume(run, progress=False)
    assert not _Payload.ran
    # torch's reason is a page of advice; the line keeps its start, short enough to read
    with pytest.raises(Exception) as full:
        torch.load(run / "last.pt", weights_only=True)
    shown = re.search(r"is unreadable \((.*)\), and no earlier", str(e.value)).group(1)
    assert len(str(full.value)) > 1000 and len(shown) <= 200


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_configured_device(tmp_path, monkeypatch):
    """A run trained on a GPU and continued on a CPU-only machine (config's device set to cpu): the checkpoint's
    tensors are mapped to the run's device. The file is written with CUDA storage tags (what a GPU run
    writes); loading it without a map_location fails here, where CUDA is absent."""
    run = tmp_path / "run"
    Trainer(RunConfig.from_dict(small(epochs=2)), run, progress=False).fit()
    ck = torch.load(run / "last.pt", weights_only=True)
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    torch.save(ck, run / "last.pt")
    monkeypatch.undo()
    if not torch.cuda.is_available():  # the control: the tags are really CUDA's
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(run / "last.pt", weights_only=True)
    resumed = Trainer.resume(run, progress=False)
    assert resumed.epoch == 2
    assert all(v.device.type == "cpu" for v in resumed.run.model.state_dict().values())


def test_a_holder_without_a_readable_note_is_named_by_question_marks(tmp_path):
    """A lock held by a process whose note is missing or torn: still one line, '?' for what the note would say."""
    from filelock import FileLock

    from eqbench.runlock import RunFolderLock

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock.json").write_text('{"pid": ')  # torn
    with FileLock(folder / ".lock", timeout=0):  # its own descriptor: flock conflicts in-process too
        with pytest.raises(ConfigError, match=r"^.* is being written by pid \? on \?; a run folder has one writer$"):
            RunFolderLock(folder).__enter__()
