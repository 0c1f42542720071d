"""Errors meant for people: one line that says what is wrong, where, and how to fix it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A setting or an input that cannot work; its message is the whole explanation."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ConfigError into one line on stderr and exit 2 (full trace: HYDRA_FULL_ERROR=1)."""
    try:
        yield
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"logitlab: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
