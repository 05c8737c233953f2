"""Atomic writes: a kill at any moment leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import ConfigError


def _atomic(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` made atomic (checkpoints)."""
    return _atomic(path, lambda f: torch.save(obj, f))


def save_figure(fig, path: str | os.PathLike) -> Path:
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, lambda f: fig.savefig(f, format=fmt, dpi=110, bbox_inches="tight"))


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """``yaml.safe_load`` of a user's file (UTF-8, as YAML is); a missing file or bad YAML is one `ConfigError`
    naming ``what`` and path. Bad YAML includes bytes that are not UTF-8 and a tagged scalar its tag cannot read
    (``!!int abc``), which PyYAML reports as ValueError, not YAMLError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from None


def replace_block(text: str, start: str, end: str, lines: list[str]) -> str:
    """``text`` with what lies between the marker lines ``start`` and ``end`` replaced by ``lines`` (a rendered
    table in a README: the markers stay, so a test can render it again and compare)."""
    if start not in text:
        raise ConfigError(f"no {start} block to render")
    head, rest = text.split(start, 1)
    if end not in rest:
        raise ConfigError(f"the {start} block has no {end}")
    _, tail = rest.split(end, 1)
    return head + start + "\n" + "\n".join(lines) + "\n" + end + tail


def command_line(program: str, argv: Sequence[str] | None = None) -> str:
    """The command a measurement file records: ``program`` and its arguments (``argv``, or this process's own)."""
    return " ".join([program, *(sys.argv[1:] if argv is None else argv)])


def provenance(command: str) -> dict[str, str]:
    """Where a measurement file came from: the command, eqbench's commit, the machine, the date, torch."""
    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"command": command, "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "date": datetime.date.today().isoformat(), "torch": torch.__version__}
