"""`python benchmarks/drops.py [--under-load]`: the default callbacks' cost one by one, as the
epoch CPU time a run saves when each is dropped.

benchmarks/callbacks.py times the callbacks' own hooks inside one run; what it cannot see is
what Lightning spends calling them (every callback's ~8 per-step hooks are dispatched whether it
defines them or not) and what a callback makes others do (a checkpoint's state, a logged
value). Here logitlab runs with its defaults, again with its defaults (the measure's own error)
and once with each default callback dropped the way a user drops it (`callbacks.<name>=null`,
`trainer.enable_progress_bar=false`, `trainer.enable_model_summary=false`), and once with all of
them dropped; all of them by turns (benchmarks/interleave.py), one intra-op thread each, on two
workloads: the benchmark's MLP at batch 256 (benchmarks/bench.py, 235 steps an epoch) and a
user Dataset through `data=dataset` (benchmarks/workloads.py, 79 steps an epoch). EpochClock
stays: it is what times the epochs. Saved: 1 - (the run's epoch CPU time / the defaults'), of
the medians and of the means (the mean holds the epoch on which Diagnostics draw their images,
every 5th, which the median sets aside). Writes docs/.benchmarks_drops.section.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench, interleave, workloads, load
import bench
import interleave
import workloads

DROPS = {
    "defaults": [],
    "defaults_again": [],
    "model_checkpoint": ["callbacks.model_checkpoint=null"],
    "last_checkpoint": ["callbacks.last_checkpoint=null"],
    "resumable": ["callbacks.resumable=null"],
    "early_stopping": ["callbacks.early_stopping=null"],
    "diagnostics": ["callbacks.diagnostics=null"],
    "learning_rate_monitor": ["callbacks.learning_rate_monitor=null"],
    "progress_bar": ["trainer.enable_progress_bar=false"],
    "model_summary": ["trainer.enable_model_summary=false"],
}
DROPS["all"] = [o for name, extra in DROPS.items() if name != "defaults_again" for o in extra]
WORKLOADS = ("mlp", "dataset")
SECTION = bench.ROOT / "docs" / ".benchmarks_drops.section.md"


def overrides(workload: str, data: dict[str, Path], epochs: int, run_dir: Path) -> list[str]:
    """A workload's logitlab command line, everything default."""
    if workload == "mlp":
        return bench.logitlab_overrides(data["x"], data["splits"], 256, epochs, run_dir, "cpu",
                                        "32-true", False)  # fmt: skip
    return workloads.overrides(workload, data, epochs, run_dir)


def measure(workload: str, out: Path, epochs: int, rounds: int) -> dict[str, list[list[float]]]:
    """Every contestant's epoch CPU times (after each run's first), one list per round; the
    rounds run by turns (benchmarks/interleave.py), one after the other."""
    data = workloads.make_data(out / "data")
    data["x"], data["splits"] = bench.make_data(out / "data")
    env = {**bench.PINNED, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    cpu: dict[str, list[list[float]]] = {name: [] for name in DROPS}
    for turn in range(rounds):
        print(f"{workload}: {len(DROPS)} runs by turns, round {turn + 1}/{rounds}", flush=True)
        folder = out / "drops" / f"{workload}_r{turn}"
        contestants: dict[str, Any] = {}
        for name, extra in DROPS.items():
            run_dir = folder / name
            shutil.rmtree(run_dir, ignore_errors=True)  # an earlier round's run of this name
            command = [sys.executable, "-m", "logitlab.train",
                       *overrides(workload, data, epochs, run_dir), *extra]  # fmt: skip
            contestants[name] = (
                command,
                lambda d=run_dir: bench.logged_epochs(d, epochs)["measured_cpu_s"],
            )
        for name, times in interleave.epochs_by_turns(contestants, folder, env, bench.ROOT).items():
            cpu[name].append(times)
    return cpu


def saved(cpu: dict[str, list[list[float]]]) -> dict[str, dict[str, Any]]:
    """Per contestant: the share of the defaults' epoch CPU time it saves, paired within each
    round (the rounds meet different machines), of the medians and of the means: the mean
    over the rounds, each round's beside it, and in seconds of the defaults' median epoch."""
    epoch = statistics.median(t for times in cpu["defaults"] for t in times)
    result = {}
    for name, rounds in cpu.items():
        shares = {
            kind: [
                1 - average(own) / average(base)
                for own, base in zip(rounds, cpu["defaults"], strict=True)
            ]
            for kind, average in (("median", statistics.median), ("mean", statistics.fmean))
        }
        result[name] = {
            **{f"{kind}_share": statistics.fmean(v) for kind, v in shares.items()},
            **{f"{kind}_rounds": v for kind, v in shares.items()},
            **{f"{kind}_s": statistics.fmean(v) * epoch for kind, v in shares.items()},
        }
    return result


def section(report: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: each dropped callback's saving on each workload."""
    load = " with one core kept busy (benchmarks/load.py)" if report.get("under_load") else ""
    header = " | ".join(f"{w}: median | {w}: mean" for w in report["workloads"])
    rows = []
    for name in [n for n in DROPS if n != "defaults"]:
        cells = []
        for workload in report["workloads"]:
            s = report["saved"][workload][name]
            for kind in ("median", "mean"):
                rounds = ", ".join(f"{100 * r:+.1f}" for r in s[f"{kind}_rounds"])
                cells.append(
                    f"{100 * s[f'{kind}_share']:+.1f} % ({rounds}), {1000 * s[f'{kind}_s']:+.0f} ms"
                )
        label = "defaults again (the error)" if name == "defaults_again" else f"`{name}` dropped"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    epochs = ", ".join(
        f"{w} {statistics.median(t for r in report['cpu'][w]['defaults'] for t in r):.3f} s"
        for w in report["workloads"]
    )
    return "\n".join([
        "### The default callbacks one by one: what dropping each saves",
        "",
        f"`python benchmarks/drops.py`{load} (the method in its docstring): logitlab with its "
        "defaults against itself with each default callback dropped, all by turns, "
        f"{report['rounds']} rounds of {report['epochs']} epochs; the defaults' median epoch "
        f"CPU time: {epochs}. The share of the defaults' epoch CPU time saved, of the median "
        "epochs and of the mean epochs (which hold the epoch Diagnostics draws its images on), "
        "paired within each round: the mean of the rounds (each round's in brackets), and in "
        "ms of the defaults' median epoch. The first row is the defaults against themselves.",
        "",
        f"| run | {header} |",
        "|---|" + "---|---|" * len(report["workloads"]),
        *rows,
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/drops.py")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run, the first warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument(
        "--under-load", action="store_true", help="beside a process spinning on one core"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="the section again from the last drops.json"
    )
    args = parser.parse_args()
    out = bench.ROOT / "outputs" / "bench"
    name = "drops_loaded.json" if args.under_load else "drops.json"
    if args.report_only:
        report = json.loads((out / name).read_text())
        print(section(report))
        if not args.under_load:
            SECTION.write_text(section(report))
        return
    from load import busy_core

    with busy_core() if args.under_load else contextlib.nullcontext():
        cpu = {w: measure(w, out, args.epochs, args.rounds) for w in args.workloads}
    report = {"workloads": args.workloads, "epochs": args.epochs, "rounds": args.rounds,
              "under_load": args.under_load, "cpu": cpu,
              "saved": {w: saved(c) for w, c in cpu.items()}}  # fmt: skip
    (out / name).write_text(json.dumps(report, indent=2) + "\n")
    text = section(report)
    if not args.under_load:
        SECTION.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
