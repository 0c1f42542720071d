"""Contestants that share the machine's noise: their processes run by turns, a slice at a time.

On a shared machine the speed of the same work drifts by 20 % from one second to the next
(other tenants' load on the host), so contestants run one after the other meet different
machines. Here every contestant's process starts at once and all but one are stopped
(SIGSTOP to its process group, DataLoader workers included); every `slice_s` seconds the
running one is stopped and the next continued. A stopped process uses no CPU, so each keeps
measuring its own epochs in CPU time as it always does, while all of them sample the same
seconds of the machine: the ratio of their median epoch CPU times is the ratio of their work.
Wall time means nothing here; it is measured by the sequential runs.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SLICE_S = 0.05  # a turn: 20 switches a second, each costing a cache refill (~0.1 ms)
# The contestants keep to the last core; this controller and benchmarks/load.py's load to the
# others, so no other process ever shares a contestant's core (no context switches that flush
# its caches and branch predictors mid-epoch). One core: nothing is pinned.
CORES = sorted(os.sched_getaffinity(0))
CONTESTANT_CORES = set(CORES[-1:]) if len(CORES) > 1 else set(CORES)
OTHER_CORES = set(CORES[:-1]) or set(CORES)


def run_by_turns(
    commands: list[list[str]],
    logs: list[Path],
    env: dict[str, str],
    cwd: Path,
    slice_s: float = SLICE_S,
) -> list[tuple[float, str]]:
    """Run `commands` by turns until all have ended; each one's peak RSS (MB) and output.

    A command that fails stops the others and raises with its output's end.
    """
    handles = []
    procs: list[subprocess.Popen[Any]] = []
    own_cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, OTHER_CORES)
    for command, log in zip(commands, logs, strict=True):
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("w")
        handles.append(handle)
        procs.append(
            subprocess.Popen(
                command,
                cwd=cwd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                preexec_fn=lambda: os.sched_setaffinity(0, CONTESTANT_CORES),
            )
        )
        os.killpg(procs[-1].pid, signal.SIGSTOP)
    rss: dict[int, float] = {}
    alive = list(range(len(procs)))
    turn = 0
    try:
        while alive:
            index = alive[turn % len(alive)]
            pid = procs[index].pid
            os.killpg(pid, signal.SIGCONT)
            ended = _wait(pid, slice_s)
            if ended is None:
                os.killpg(pid, signal.SIGSTOP)
                turn += 1
                continue
            status, usage = ended
            procs[index].returncode = os.waitstatus_to_exitcode(status)
            rss[index] = usage.ru_maxrss / 1024
            alive.remove(index)
            if procs[index].returncode != 0:
                output = logs[index].read_text()
                raise RuntimeError(f"{' '.join(commands[index][:6])} ... failed:\n{output[-3000:]}")
    finally:
        for index in alive:
            os.killpg(procs[index].pid, signal.SIGKILL)
            os.killpg(procs[index].pid, signal.SIGCONT)
            procs[index].wait()
        for handle in handles:
            handle.close()
        os.sched_setaffinity(0, own_cores)
    return [(rss[i], log.read_text()) for i, log in enumerate(logs)]


def _wait(pid: int, seconds: float) -> tuple[int, Any] | None:
    """The process's (status, rusage) if it ends within `seconds`, else None."""
    deadline = time.monotonic() + seconds
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(left, 0.01))


def epochs_by_turns(
    contestants: dict[str, tuple[list[str], Callable[[], list[float]]]],
    folder: Path,
    env: dict[str, str],
    cwd: Path,
) -> dict[str, list[float]]:
    """Run each contestant's command by turns; then each one's epoch CPU times, read back by
    its reader (the first, warm-up epoch left out by the reader)."""
    names = list(contestants)
    commands = [contestants[name][0] for name in names]
    run_by_turns(commands, [folder / f"{name}.log" for name in names], env, cwd, SLICE_S)
    return {name: contestants[name][1]() for name in names}


def turn_ratios(cpu: dict[str, list[float]], pairs: dict[str, tuple[str, str]]) -> dict[str, float]:
    """For each pair (ours, reference): the ratio of their median epoch CPU times, and beside
    it (`<key>_min`) the ratio of their minima."""
    ratios = {}
    for key, (ours, reference) in pairs.items():
        ratios[key] = statistics.median(cpu[ours]) / statistics.median(cpu[reference])
        ratios[f"{key}_min"] = min(cpu[ours]) / min(cpu[reference])
    return ratios


def pooled(rounds: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Each contestant's epoch CPU times of every round, one list."""
    return {name: [t for r in rounds for t in r[name]] for name in rounds[0]}


def rounds_ratios(
    rounds: list[dict[str, list[float]]], pairs: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """turn_ratios of the epochs of every round pooled, and each round's own (`<key>_by_round`).

    A process keeps its luck for its life (where its memory landed: identical bare loops differ
    by up to 6 %, benchmarks/spread.py), so only more rounds, new processes, average it out.
    """
    ratios: dict[str, Any] = dict(turn_ratios(pooled(rounds), pairs))
    for key in pairs:
        ratios[f"{key}_by_round"] = [turn_ratios(r, {key: pairs[key]})[key] for r in rounds]
    return ratios
