"""`python benchmarks/drops.py [--under-load]`: the default callbacks' cost one by one, as the
epoch CPU time a run saves when each is dropped; and the rest of logitlab's epoch over the
minimal Lightning loop's.

benchmarks/callbacks.py times the callbacks' own hooks inside one run; what it cannot see is
what Lightning spends calling them (every callback's ~8 per-step hooks are dispatched whether it
defines them or not) and what a callback makes others do (a checkpoint's state, a logged
value). Here logitlab runs with its defaults, again with its defaults (the measure's own error),
once with each default callback dropped the way a user drops it (`callbacks.<name>=null`,
`trainer.enable_progress_bar=false`, `trainer.enable_model_summary=false`), once with all of
them dropped, once with the logger dropped (`logger=none`, which also leaves out the learning
rate monitor) and once with all of that dropped: logitlab's LightningModule and DataModule in
Lightning's loop with nothing around them. On the MLP, bench.py's minimal Lightning loop runs
beside them, so what is left between the two is the module's and the data's own work. All of
them by turns (benchmarks/interleave.py), one intra-op thread each, on two workloads: the
benchmark's MLP at batch 256 (benchmarks/bench.py, 235 steps an epoch) and a user Dataset
through `data=dataset` (benchmarks/workloads.py, 79 steps an epoch). Every run is timed by the
same callback (marks.epoch_times: each training epoch from its start to the next one's, so
with its validation and checkpoints; the first is the warm-up). Saved: 1 - (the run's epoch CPU
time / the defaults'), of the medians and of the means (the mean holds the epoch on which
Diagnostics draw their images, every 5th, which the median sets aside). Writes its
section of docs/benchmarks.md (and docs/.benchmarks_drops.section.md).
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
import pages
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
    "epoch_clock": ["callbacks.epoch_clock=null"],
    "progress_bar": ["trainer.enable_progress_bar=false"],
    "model_summary": ["trainer.enable_model_summary=false"],
}
DROPS["all"] = [o for name, extra in DROPS.items() if name != "defaults_again" for o in extra]
DROPS["logger"] = ["logger=none"]
DROPS["all_and_logger"] = DROPS["all"] + DROPS["logger"]
MINIMAL = "minimal_lightning"  # bench.py's minimal Lightning loop, beside the MLP's runs
WORKLOADS = ("mlp", "dataset")


def overrides(workload: str, data: dict[str, Path], epochs: int, run_dir: Path) -> list[str]:
    """A workload's logitlab command line, everything default."""
    if workload == "mlp":
        return bench.logitlab_overrides(data["x"], data["splits"], 256, epochs, run_dir, "cpu",
                                        "32-true", False)  # fmt: skip
    return workloads.overrides(workload, data, epochs, run_dir)


def command(
    workload: str, data: dict[str, Path], epochs: int, run_dir: Path, extra: list[str], times: Path
) -> list[str]:
    """One contestant's logitlab command: the workload, its drops, and the clock that times it
    (marks.epoch_times, writing to `times`)."""
    clock = ["+callbacks.times._target_=marks.epoch_times", f"+callbacks.times.path={times}"]
    return [sys.executable, "-m", "logitlab.train", *overrides(workload, data, epochs, run_dir),
            *extra, *clock]  # fmt: skip


def measure(workload: str, out: Path, epochs: int, rounds: int) -> dict[str, list[list[float]]]:
    """Every contestant's epoch CPU times (after each run's first), one list per round; the
    rounds run by turns (benchmarks/interleave.py), one after the other."""
    data = workloads.make_data(out / "data")
    data["x"], data["splits"] = bench.make_data(out / "data")
    env = {**bench.PINNED, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    names = [*DROPS, MINIMAL] if workload == "mlp" else list(DROPS)
    cpu: dict[str, list[list[float]]] = {name: [] for name in names}
    for turn in range(rounds):
        print(f"{workload}: {len(names)} runs by turns, round {turn + 1}/{rounds}", flush=True)
        folder = out / "drops" / f"{workload}_r{turn}"
        contestants: dict[str, Any] = {}
        for name, extra in DROPS.items():
            run_dir, times = folder / name, folder / f"{name}_epochs.json"
            shutil.rmtree(run_dir, ignore_errors=True)  # an earlier round's run of this name
            times.unlink(missing_ok=True)
            contestants[name] = (
                command(workload, data, epochs, run_dir, extra, times),
                lambda t=times: json.loads(t.read_text())[1:],
            )
        if workload == "mlp":
            result = folder / f"{MINIMAL}.json"
            result.unlink(missing_ok=True)  # an earlier round's, never read as this one's
            contestants[MINIMAL] = (
                bench.loop_command("lightning", data["x"], 256, epochs, result, "cpu", "32-true"),
                lambda r=result: json.loads(r.read_text())["epoch_cpu_s"][1:],
            )
        for name, spans in interleave.epochs_by_turns(contestants, folder, env, bench.ROOT).items():
            cpu[name].append(spans)
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


LABELS = {
    "defaults_again": "defaults again (the error)",
    "all": "all the callbacks dropped",
    "logger": "`logger=none`",
    "all_and_logger": "all the callbacks and the logger dropped",
    MINIMAL: "the minimal Lightning loop (bench.py's)",
}


def section(report: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: each dropped callback's saving on each workload."""
    load = " with one core kept busy (benchmarks/load.py)" if report.get("under_load") else ""
    header = " | ".join(f"{w}: median | {w}: mean" for w in report["workloads"])
    rows = []
    names = [n for n in [*DROPS, MINIMAL] if n != "defaults"]
    for name in [n for n in names if any(n in report["saved"][w] for w in report["workloads"])]:
        cells = []
        for workload in report["workloads"]:
            s = report["saved"][workload].get(name)
            for kind in ("median", "mean"):
                if s is None:
                    cells.append("-")
                    continue
                rounds = ", ".join(f"{100 * r:+.1f}" for r in s[f"{kind}_rounds"])
                cells.append(
                    f"{100 * s[f'{kind}_share']:+.1f} % ({rounds}), {1000 * s[f'{kind}_s']:+.0f} ms"
                )
        rows.append(f"| {LABELS.get(name, f'`{name}` dropped')} | " + " | ".join(cells) + " |")
    epochs = ", ".join(
        f"{w} {statistics.median(t for r in report['cpu'][w]['defaults'] for t in r):.3f} s"
        for w in report["workloads"]
    )
    return "\n".join([
        "### The default callbacks one by one: what dropping each saves",
        "",
        f"`python benchmarks/drops.py`{load} (the method in its docstring): logitlab with its "
        "defaults against itself with each default callback dropped, with all of them, with the "
        "logger and with both dropped, and (MLP) the minimal Lightning loop, all by turns, "
        f"{report['rounds']} rounds of {report['epochs']} epochs; the defaults' median epoch "
        f"CPU time: {epochs}. The share of the defaults' epoch CPU time saved, of the median "
        "epochs and of the mean epochs (which hold the epoch Diagnostics draws its images on), "
        "paired within each round: the mean of the rounds (each round's in brackets), and in "
        "ms of the defaults' median epoch. The first row is the defaults against themselves; "
        "what the last row saves beyond the one above it is the work of logitlab's "
        "LightningModule and DataModule beyond the minimal loop's.",
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
            pages.write_section(section(report), "drops", bench.ROOT / "docs")
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
        pages.write_section(text, "drops", bench.ROOT / "docs")
    print(text)


if __name__ == "__main__":
    main()
