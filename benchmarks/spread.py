"""`python benchmarks/spread.py [--rounds 3] [--processes 3]`: how far apart identical processes
of one workload's bare loop run, by turns, against how far apart one process's own epochs are.

A ratio of median epoch CPU times by turns (benchmarks/interleave.py) cancels the host's drift
from one second to the next, since every contestant samples the same seconds; it cannot cancel
what differs from one process to the next and stays for its life (where its memory lands, what
its kernels find in the shared cache). Here `--processes` copies of the same bare loop (bench.py's
MLP at batch 256, workloads.py's CNN and user-Dataset loops) run by turns, `--rounds` times.
Between: each round's slowest copy's median epoch over its fastest's, less one. Within: for each
copy, its slowest measured epoch over its fastest, less one (the median of the copies). A
workload whose copies differ far more than their epochs do needs many processes, not more
epochs, before a ratio of two contestants means anything. Writes outputs/bench/spread.json and
its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench, interleave, workloads, pages
import bench
import interleave
import pages
import workloads

WORKLOADS = ("mlp", "cnn", "dataset")
SECTION = "## One process to the next: identical bare loops by turns"


def command(workload: str, data: Path, epochs: int, out: Path) -> list[str]:
    """One copy of a workload's bare loop on the data in folder `data` (written first), writing
    its epochs' CPU times to `out`."""
    if workload == "mlp":
        x, _ = bench.make_data(data)
        return bench.loop_command("bare", x, 256, epochs, out, "cpu", "32-true")
    workloads.make_data(data)
    return [sys.executable, str(Path(workloads.__file__).resolve()), workload, str(data),
            str(epochs), str(out)]  # fmt: skip


def spreads(rounds: list[list[list[float]]]) -> dict[str, Any]:
    """Between and within, per round, from each round's copies' measured epoch CPU times."""
    between, within = [], []
    for copies in rounds:
        medians = [statistics.median(epochs) for epochs in copies]
        between.append(max(medians) / min(medians) - 1)
        within.append(statistics.median(max(e) / min(e) - 1 for e in copies))
    return {"between": between, "within": within}


def measure(workload: str, out: Path, epochs: int, rounds: int, processes: int) -> dict[str, Any]:
    """Each round's copies' measured epoch CPU times (the first epoch left out)."""
    env = {**bench.PINNED, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    times = []
    for turn in range(rounds):
        print(f"{workload}: {processes} copies by turns, round {turn + 1}/{rounds}", flush=True)
        folder = out / "spread" / f"{workload}_r{turn}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        contestants = {}
        for copy in range(processes):
            result = folder / f"copy{copy}.json"
            contestants[f"copy{copy}"] = (
                command(workload, out / "data", epochs, result),
                lambda r=result: json.loads(r.read_text())["epoch_cpu_s"][1:],
            )
        found = interleave.epochs_by_turns(contestants, folder, env, bench.ROOT)
        times.append([found[name] for name in contestants])
    return {"epoch_cpu_s": times, **spreads(times)}


def section(report: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: between and within, per workload and round."""

    def shares(values: list[float]) -> str:
        return ", ".join(f"{100 * v:.1f} %" for v in values)

    rows = [
        f"| {w} | {statistics.median(t for r in s['epoch_cpu_s'] for c in r for t in c):.3f} s "
        f"| {shares(s['between'])} | {shares(s['within'])} |"
        for w, s in report["workloads"].items()
    ]
    return "\n".join([
        SECTION,
        "",
        f"`python benchmarks/spread.py` (the method in its docstring): {report['processes']} "
        f"copies of each workload's bare loop by turns, {report['rounds']} rounds of "
        f"{report['epochs']} epochs (the first left out). Between: the slowest copy's median "
        "epoch CPU time over the fastest's, less one, each round. Within: one copy's slowest "
        "epoch over its fastest, less one (the copies' median), each round.",
        "",
        "| workload | median epoch | between copies | within a copy |",
        "|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/spread.py")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per copy, the first warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    args = parser.parse_args()
    out = bench.ROOT / "outputs" / "bench"
    found = {w: measure(w, out, args.epochs, args.rounds, args.processes) for w in args.workloads}
    report = {"epochs": args.epochs, "rounds": args.rounds, "processes": args.processes,
              "workloads": found}  # fmt: skip
    (out / "spread.json").write_text(json.dumps(report, indent=2) + "\n")
    text = section(report)
    pages.write_section(text, "spread", bench.ROOT / "docs")
    print(text)


if __name__ == "__main__":
    main()
