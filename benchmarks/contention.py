"""`python benchmarks/contention.py [--pairs 40]`: how much the load of `--under-load` (a process
spinning on the other core, benchmarks/load.py) slows each kind of work on the contestants' core.

The kinds: Python interpreter work (what the framework's hooks, loops and bookkeeping are made
of), the MLP's matrix products (MKL, one thread: what the bare loop is mostly made of) and a
copy of 64 MB (memory-bound). This process does each kind in blocks of a fixed amount on the
contestants' core; the spinner is stopped (SIGSTOP) before one block and continued before the
next, so the two states alternate block by block and meet the same seconds of the host. Per
kind: the median CPU time of a block with the spinner stopped and with it running, and their
ratio. If every kind slowed alike, a ratio of two contestants' CPU times would stay where it was
under load; where they slow differently, a contestant with more Python in its mix slows more,
and no ratio of CPU times can hold. Writes outputs/bench/contention.json and its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # interleave, load, marks, pages
import interleave
import pages
from load import busy_core
from marks import proc_cpu

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Does the busy core slow the contestants' core?"
BLOCK_S = 0.1  # the CPU time of one block, idle (each kind's amount is sized to it)


def python_work(n: int) -> None:
    """Attribute and dict look-ups, calls and small strings: the stuff of hook dispatch."""

    class Hook:
        name = "on_train_batch_end"

    hooks, seen = [Hook() for _ in range(8)], {}
    for i in range(n):
        for hook in hooks:
            key = f"[Callback]{hook.name}"
            seen[key] = seen.get(key, 0) + i


def kinds() -> dict[str, Callable[[int], None]]:
    """Each kind of work as a function of its amount."""
    import torch

    torch.set_num_threads(1)
    x, w = torch.randn(256, 784), torch.randn(256, 784)
    big = torch.empty(16 * 2**20)  # 64 MB of float32
    out = torch.empty_like(big)

    def matmul(n: int) -> None:
        for _ in range(n):
            torch.nn.functional.linear(x, w)

    def copy(n: int) -> None:
        for _ in range(n):
            out.copy_(big)

    return {"python": python_work, "matmul": matmul, "copy": copy}


def block_cpu(work: Callable[[int], None], amount: int) -> float:
    start = time.process_time()
    work(amount)
    return time.process_time() - start


def sized(work: Callable[[int], None]) -> int:
    """The amount of `work` that takes about BLOCK_S of CPU time, idle."""
    work(1)  # first touches (a fresh tensor's pages) outside the sizing
    amount = 1
    while (spent := block_cpu(work, amount)) < BLOCK_S / 4:
        amount *= 2
    return max(1, round(amount * BLOCK_S / spent))


def measure(pairs: int) -> dict[str, dict[str, list[float]]]:
    """Per kind, the CPU time of each block with the spinner stopped and running, alternating,
    and (`spinner_idle`, `spinner_loaded`) the spinner's own CPU time during each block."""
    os.sched_setaffinity(0, interleave.CONTESTANT_CORES)
    results: dict[str, dict[str, list[float]]] = {}
    with busy_core() as spinner:
        os.kill(spinner.pid, signal.SIGSTOP)
        work = kinds()
        amounts = {name: sized(fn) for name, fn in work.items()}
        for name, fn in work.items():
            times: dict[str, list[float]] = {
                "idle": [], "loaded": [], "spinner_idle": [], "spinner_loaded": []
            }  # fmt: skip
            for i in range(2 * pairs):
                state = ("idle", "loaded")[i % 2]
                os.kill(spinner.pid, signal.SIGCONT if state == "loaded" else signal.SIGSTOP)
                time.sleep(0.01)  # the spinner back on (or off) its core
                spun = proc_cpu(spinner.pid)
                times[state].append(block_cpu(fn, amounts[name]))
                times[f"spinner_{state}"].append(proc_cpu(spinner.pid) - spun)
            os.kill(spinner.pid, signal.SIGSTOP)
            results[name] = times
        os.kill(spinner.pid, signal.SIGCONT)  # so busy_core's kill ends it
    return results


def summary(results: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Per kind: the median block CPU time in each state and the loaded one over the idle one."""
    out = {}
    for name, times in results.items():
        idle, loaded = (statistics.median(times[s]) for s in ("idle", "loaded"))
        out[name] = {"idle_s": idle, "loaded_s": loaded, "slowdown": loaded / idle}
        if "spinner_loaded" in times:  # the spinner's share of each state's blocks
            for state in ("idle", "loaded"):
                spun = sum(times[f"spinner_{state}"]) / sum(times[state])
                out[name][f"spinner_share_{state}"] = spun
    return out


def section(report: dict[str, dict[str, float]], pairs: int) -> str:
    """docs/benchmarks.md's section."""
    titles = {"python": "Python interpreter work (attribute and dict look-ups, calls, strings)",
              "matmul": "the MLP's matrix product (MKL, one thread, 256x784 by 784x256)",
              "copy": "a 64 MB copy (memory-bound)"}  # fmt: skip
    rows = [
        f"| {titles[name]} | {r['idle_s'] * 1e3:.1f} ms | {r['loaded_s'] * 1e3:.1f} ms "
        f"| **{100 * (r['slowdown'] - 1):+.1f} %** "
        f"| {r.get('spinner_share_idle', 0):.2f} / {r.get('spinner_share_loaded', 0):.2f} |"
        for name, r in report.items()
    ]
    return "\n".join([
        SECTION,
        "",
        "`python benchmarks/contention.py` (the method in its docstring): blocks of each kind of "
        "work on the contestants' core, the other core's spinner of `--under-load` stopped "
        f"and running in turn, {pairs} blocks in each state; the median CPU time of a block. "
        "Last column: the spinner's CPU time during the blocks of each state over theirs "
        "(0 when stopped, about 1 when it spins beside them: the check that it did).",
        "",
        "| work | spinner stopped | spinner running | slowdown "
        "| spinner's CPU, stopped / running |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/contention.py", description=__doc__)
    parser.add_argument("--pairs", type=int, default=40, help="blocks in each state, per kind")
    args = parser.parse_args(argv)
    results = measure(args.pairs)
    report = summary(results)
    out = ROOT / "outputs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "contention.json").write_text(
        json.dumps({"pairs": args.pairs, "summary": report, "blocks": results}, indent=2) + "\n"
    )
    text = section(report, args.pairs)
    pages.write_section(text, "contention", ROOT / "docs")
    print(text)


if __name__ == "__main__":
    main()
