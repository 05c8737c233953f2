"""One writer per run folder: a lock taken for the run's life, and the holder named when a second process asks.

The lock is ``filelock.FileLock`` on ``<folder>/.lock``: an OS lock (``flock``) that the kernel releases when its
holder dies, however it dies, so a lock left by a killed process is never in the way; it is only noticed (the
holder's note ``<folder>/.lock.json`` is still there) and taken over with a one-line warning. The note names the
host, the pid and the start time, so that a second writer is refused with one line saying who holds the folder.
On a cluster the results folder must be on a file system with working ``flock`` (local disks, NFSv4, Lustre and
GPFS with locking enabled).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from .errors import ConfigError
from .io import write_json


class RunFolderLock:
    """``with RunFolderLock(folder):`` — the one writer of ``folder`` (created if missing) until the block ends.

    Raises `ConfigError` (one line naming the holder's host and pid) when another process holds it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.note = self.folder / ".lock.json"
        self._lock = FileLock(self.folder / ".lock", timeout=0)

    def _holder(self) -> dict:
        try:
            return json.loads(self.note.read_text())
        except (OSError, ValueError):
            return {}

    def running_holder(self) -> dict | None:
        """The note of the live process holding this folder (host, pid, since), or None when nobody does; a
        killed holder's note is left but its lock is not, so it answers None too."""
        if not self.note.exists():
            return None
        probe = FileLock(self.folder / ".lock", timeout=0)  # its own descriptor: flock conflicts even in-process
        try:
            with probe:
                return None
        except Timeout:
            return self._holder()

    def __enter__(self) -> RunFolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            h = self._holder()
            who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}" + (f" since {h['since']}" if "since" in h else "")
            raise ConfigError(f"{self.folder} is being written by {who}; a run folder has one writer") from None
        left = self._holder()
        if left:  # its holder is gone: the OS released the lock, only the note remained
            print(f"eqbench: warning: taking over {self.folder}, left locked by pid {left.get('pid', '?')} on "
                  f"{left.get('host', '?')}, which no longer runs", file=sys.stderr)
        write_json(self.note, {"host": socket.gethostname(), "pid": os.getpid(),
                               "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.note.unlink(missing_ok=True)
        self._lock.release()
