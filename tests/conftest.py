"""Fixtures of tests/: a throw-away clone of this repository and a way to plant commits in it (the gate tests),
one intra-op thread for a module of tiny tensors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# `make mutation` (suites/mutation/run.py): during mutmut's stats run the processes a test starts (the gate's
# worker, data-parallel ranks, the launcher's pool) must run plain code; they inherit MUTANT_UNDER_TEST and would try
# to record hits, which needs mutmut's config from a folder they do not run in. The variable is dropped from the
# environment; this process keeps recording (mutmut's process-local copy), and a mutant's name, set per mutant
# later, is inherited as it must be, so a subprocess runs the mutant too.
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]
GIT_ID = ["-c", "user.name=eqbench-test", "-c", "user.email=test@eqbench.invalid"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT_ID, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _plant(repo: Path, path: str, old: str, new: str, message: str) -> str:
    """Commit a one-place edit of ``path`` in ``repo`` and return its sha; fails loudly if ``old`` is not in the
    file exactly once (the code moved: update the test)."""
    f = repo / path
    text = f.read_text()
    assert text.count(old) == 1, f"the planted edit's anchor is not (once) in {path}: update the test"
    f.write_text(text.replace(old, new))
    _git(repo, "commit", "-qam", message)
    return _git(repo, "rev-parse", "HEAD")


_plant.git = _git  # type: ignore[attr-defined]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A throw-away clone of this repository's HEAD."""
    dst = tmp_path / "clone"
    # make mutation runs these tests in a copy without .git (mutmut's mutants/): it names the repository to clone
    # (the gate under test is this process's regress.py, mutated or not; the clone is only its input)
    src = os.environ.get("EQBENCH_TEST_REPO", str(ROOT))
    subprocess.run(["git", "clone", "-q", src, str(dst)], check=True)
    return dst


@pytest.fixture
def plant():
    """``plant(repo, path, old, new, message)`` → sha; ``plant.git(repo, *args)`` runs git there."""
    return _plant


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is fastest and does not spin against other processes on a small CI
    machine (the twin of suites/conftest.py's). Restored after the module."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def ascii_locale(tmp_path: Path):
    """The process's text encoding set to ASCII (the C locale without UTF-8 mode; Windows' cp1252 fails alike), so
    that a file read without ``encoding="utf-8"`` fails on the first non-ASCII character. Checked, not assumed:
    the fixture proves the default read really fails, and skips where Python runs in UTF-8 mode."""
    import locale
    import sys

    if sys.flags.utf8_mode:
        pytest.skip("Python runs in UTF-8 mode: the locale does not choose the text encoding")
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        probe = tmp_path / "probe.txt"
        probe.write_text("≥", encoding="utf-8")
        with pytest.raises(UnicodeDecodeError):
            probe.read_text()  # the negative control: the locale's encoding is in force
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)
