"""A CPU-bound process of our own on one core for as long as a block runs: the benchmark under
load (`python benchmarks/bench.py --under-load`), to show its CPU-time ratios hold."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from interleave import OTHER_CORES

SPIN = "while True:\n    pass"


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """Start a process that spins on one core (the first: never the core of contestants run by
    turns, benchmarks/interleave.py); stop it when the block ends, however it ends."""
    first = {min(OTHER_CORES)}
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPIN], preexec_fn=lambda: os.sched_setaffinity(0, first)
    )
    try:
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


if __name__ == "__main__":  # `python benchmarks/load.py CMD ...`: CMD under load
    with busy_core():
        sys.exit(subprocess.call(sys.argv[1:]))
