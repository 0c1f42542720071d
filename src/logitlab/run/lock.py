"""One process per run folder: a lock held for the run's life (filelock's FileLock).

`claim(folder)` takes `folder/.logitlab.lock` with an OS lock (flock, or filelock's own marker
where the file system has none), so of two processes started at the same moment exactly one
gets it; the other is refused in one line naming the owner (pid, host, SLURM job, start time),
which the holder writes into the file. The operating system lets go of the lock when its owner
dies (`kill -9`, a requeued SLURM job), so a dead owner's folder is taken over.
Default run folders get a fresh name the same way: `os.mkdir` of the stamp, or of the stamp
with a suffix `_1`, `_2`, ... when a run started in the same second already holds it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from logitlab.errors import ConfigError
from logitlab.run.layout import RunFolder

LOCK = ".logitlab.lock"
HELD: dict[Path, FileLock] = {}  # the folders this process holds


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _write_owner(descriptor: int) -> None:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(_owner()).encode(), 0)


def make_folder(folder: Path, what: str) -> bool:
    """Create `folder` (and its parents); True if this call created it. One line if it cannot."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what}={folder} is a file; give a folder")
    try:
        folder.mkdir(parents=True)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        raise ConfigError(
            f"{what}={folder} cannot be created ({error.strerror}); choose a writable folder"
        ) from None


def claim(folder: Path, what: str = "hydra.run.dir") -> Path:
    """Take the run folder's lock for this process, or refuse in one line."""
    path = folder / LOCK
    lock = FileLock(path, timeout=0, thread_local=False, on_acquired=_write_owner)
    try:
        lock.acquire()
    except Timeout:
        try:
            owner = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            owner = {}
        raise ConfigError(
            f"{what}={folder} is in use by process {owner.get('pid', '?')} on "
            f"{owner.get('host', '?')} (since {owner.get('started', '?')}); wait for it to "
            "finish or give another folder"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{what}={folder} cannot be written ({error.strerror}); choose a writable folder"
        ) from None
    HELD[folder.resolve()] = lock
    return path


def holder(folder: Path) -> dict[str, Any] | None:
    """The owner of `folder`'s lock while a live process holds it (a run still training), else
    None; the lock is only tested, never kept."""
    path = folder / LOCK
    if folder.resolve() in HELD or not path.is_file():
        return None  # a finished run's holder removed its lock file
    lock = FileLock(path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        try:
            return dict(json.loads(path.read_text() or "{}"))
        except (OSError, ValueError):
            return {}
    except OSError:
        return None  # a read-only copy of a run: no one trains in it
    lock.release()
    return None


def release(folder: Path) -> None:
    """Let go of this process's lock of `folder` (another process's lock stays)."""
    lock = HELD.pop(folder.resolve(), None)
    if lock is not None:
        Path(lock.lock_file).unlink(missing_ok=True)  # while still held: no one else's file
        lock.release()


def fresh_folder(parent: Path, stamp: str, what: str = "hydra.run.dir") -> Path:
    """A new folder parent/stamp (or stamp_1, stamp_2, ...), created by this call alone."""
    make_folder(parent, what)
    for n in range(1000):
        folder = parent / (stamp if n == 0 else f"{stamp}_{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
        except OSError as error:
            raise ConfigError(
                f"{what}: {parent} cannot be written ({error.strerror}); choose a writable folder"
            ) from None
    raise ConfigError(f"{what}: {parent} has 1000 runs stamped {stamp}; give hydra.run.dir")


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files a killed writer left in a run folder (`.<name>.<pid>.tmp`, `.*.tmp`).

    Only called by the lock's holder: no other process writes there, so every one is stale.
    """
    found: list[Path] = []
    for where in (folder, RunFolder(folder).checkpoints):
        if where.is_dir():
            found += [p for p in where.glob(".*.tmp") if p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found
