"""Where a contestant's counted work starts and ends, for benchmarks/instructions.py; and the
epochs' CPU times of a run, logger or not, for benchmarks/drops.py.

`BENCH_MARKS` (set by instructions.py) names the compiled benchmarks/marks.c; without it, or
outside valgrind, both marks do nothing. Imports nothing heavy: the bare loop uses it too.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

REGION = b"epochs"  # the name of callgrind's dump of the counted region


@functools.cache
def _library() -> Any:
    path = os.environ.get("BENCH_MARKS")
    return ctypes.CDLL(path) if path else None


def count_from_here() -> None:
    """Start counting instructions (and forget what was counted before)."""
    if (library := _library()) is not None:
        library.count_from_here()


def count_to_here() -> None:
    """Write the count since count_from_here() to callgrind's output, and stop counting."""
    if (library := _library()) is not None:
        library.count_to_here(REGION)


def epochs_callback() -> Any:
    """A Lightning callback that counts from the 2nd epoch's start to the end of training
    (`+callbacks.count._target_=marks.epochs_callback` with benchmarks/ on PYTHONPATH)."""
    import lightning as L

    class CountEpochs(L.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == 1:
                count_from_here()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            count_to_here()

    return CountEpochs()


def proc_cpu(pid: int) -> float:
    """Another process's CPU seconds so far (user + system, from /proc, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu() -> float:
    """CPU seconds of this process and of its children: the live ones (DataLoader workers, read
    from /proc, in clock ticks) and those it has waited for."""
    import glob
    import resource
    import time

    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + reaped.ru_utime + reaped.ru_stime
    for listing in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(listing) as file:
            pids = file.read().split()
        for pid in pids:
            try:
                total += proc_cpu(int(pid))
            except OSError:  # ended since the listing: counted once it is waited for
                continue
    return total


def epoch_times(path: str, with_children: bool = False) -> Any:
    """A Lightning callback that writes to `path` (a JSON list) the process CPU time of every
    training epoch, from its start to the next one's (the last one's to the end of fit), so
    with its validation and checkpoints (`+callbacks.times._target_=marks.epoch_times
    +callbacks.times.path=...` with benchmarks/ on PYTHONPATH); `with_children`: its
    DataLoader workers' too (group_cpu)."""
    import itertools
    import json
    import time

    import lightning as L

    clock = group_cpu if with_children else time.process_time

    class EpochTimes(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.marks.append(clock())

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.marks.append(clock())
            spans = [b - a for a, b in itertools.pairwise(self.marks)]
            with open(path, "w") as file:
                json.dump(spans, file)

    return EpochTimes()


def counting() -> bool:
    """Whether this process's work is being counted (run by instructions.py)."""
    return bool(os.environ.get("BENCH_MARKS"))
