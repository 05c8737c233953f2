"""Fixtures of the gate tests: a throw-away clone of this repository and a way to plant commits in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dst)], check=True)
    return dst


@pytest.fixture
def plant():
    """``plant(repo, path, old, new, message)`` → sha; ``plant.git(repo, *args)`` runs git there."""
    return _plant
