"""One process per run folder: an exclusive lock file, held for the run's life.

`claim(folder)` creates `folder/.logitlab.lock` with O_CREAT | O_EXCL, so of two processes
started at the same moment exactly one gets it; the other is refused in one line. The lock
records the owner's pid, host and SLURM job; it is removed when the owner exits, and a lock
whose owner died (`kill -9`, a node that went down and the job requeued) is taken over.
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

from logitlab.errors import ConfigError

LOCK = ".logitlab.lock"


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process that wrote the lock still runs (unknown hosts count as alive)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and owner.get("slurm_job") == job:
        return False  # this very SLURM job, requeued: its earlier life is over
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return int(owner.get("pid", 0)) > 0


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
    lock = folder / LOCK
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            if not owner:  # being written this instant by its owner, or unreadable
                time.sleep(0.2)
                try:
                    owner = json.loads(lock.read_text() or "{}")
                except (OSError, ValueError):
                    owner = {"pid": -1, "host": "?"}
            if _alive(owner):
                raise ConfigError(
                    f"{what}={folder} is in use by process {owner.get('pid')} on "
                    f"{owner.get('host')} (since {owner.get('started', '?')}); wait for it to "
                    f"finish or give another folder (a lock left by a dead process: delete {lock})"
                ) from None
            lock.unlink(missing_ok=True)  # its owner is gone: take it over
            continue
        except OSError as error:
            raise ConfigError(
                f"{what}={folder} cannot be written ({error.strerror}); choose a writable folder"
            ) from None
        with os.fdopen(descriptor, "w") as handle:
            json.dump(_owner(), handle)
        return lock
    raise ConfigError(f"{what}={folder}: its lock {lock} keeps coming back; try again")


def release(folder: Path) -> None:
    """Remove this process's lock of `folder` (a lock of another process stays)."""
    lock = folder / LOCK
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


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
    for where in (folder, folder / "checkpoints"):
        if where.is_dir():
            found += [p for p in where.glob(".*.tmp") if p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found
