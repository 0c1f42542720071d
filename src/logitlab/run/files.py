"""Writing a run's files: a temporary file beside the target, then a rename over it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from logitlab.errors import ConfigError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to, renamed over `path` when the block ends.

    Readers find the old file or the new one, never part of one; if the block raises, the
    temporary file goes and `path` stays as it was. The temporary file is created by whatever
    the block writes with, so it gets the usual permissions (umask), not mkstemp's 0600.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a process killed mid-write with this pid
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write `text` atomically: a temporary file in the same folder, then a rename."""
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: {path.parent} is a file; choose a writable folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            temporary.write_text(text)
    except OSError as error:
        raise ConfigError(
            f"cannot write {path} ({error.strerror}); choose a writable folder"
        ) from None
    return path


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write a flat dict as JSON atomically (non-finite floats as strings: JSON has none)."""

    def finite(value: Any) -> Any:
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)

    return write_text(path, json.dumps({k: finite(v) for k, v in data.items()}, indent=2) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    """A run's JSON record (job.json, metrics.json): {} when it is missing, unreadable or not an
    object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
