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

`--count` runs each of them once under valgrind's callgrind instead (benchmarks/
instructions.py: the instructions of the epochs after the first, split at the kernels), a
measure the machine's load cannot move: what each drop saves outside the kernels, as a share,
per epoch and per training step, and the single drops added up beside all of them dropped
(docs/.benchmarks_drops_counted.section.md).
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
SINGLES = [n for n in DROPS if len(DROPS[n]) == 1 and n != "logger"]  # one callback each
MINIMAL = "minimal_lightning"  # bench.py's minimal Lightning loop, beside the MLP's runs
MLP_BATCH = 256
WORKLOADS = ("mlp", "dataset")


def overrides(workload: str, data: dict[str, Path], epochs: int, run_dir: Path) -> list[str]:
    """A workload's logitlab command line, everything default."""
    if workload == "mlp":
        return bench.logitlab_overrides(data["x"], data["splits"], MLP_BATCH, epochs, run_dir,
                                        "cpu", "32-true", False)  # fmt: skip
    return workloads.overrides(workload, data, epochs, run_dir)


def command(
    workload: str, data: dict[str, Path], epochs: int, run_dir: Path, extra: list[str], times: Path
) -> list[str]:
    """One contestant's logitlab command: the workload, its drops, and the clock that times it
    (marks.epoch_times, writing to `times`)."""
    clock = ["+callbacks.times._target_=marks.epoch_times", f"+callbacks.times.path={times}"]
    return [sys.executable, "-m", "logitlab.train", *overrides(workload, data, epochs, run_dir),
            *extra, *clock]  # fmt: skip


def counted_command(
    workload: str, data: dict[str, Path], epochs: int, run_dir: Path, extra: list[str]
) -> list[str]:
    """One contestant's logitlab command, counted in instructions (instructions.py's callback
    marks its epochs after the first) instead of timed."""
    import instructions

    return [sys.executable, "-m", "logitlab.train", *overrides(workload, data, epochs, run_dir),
            *extra, *instructions.COUNTED]  # fmt: skip


def minimal_command(data: dict[str, Path], epochs: int, result: Path) -> list[str]:
    """bench.py's minimal Lightning loop on the MLP's data, its result in `result`."""
    return bench.loop_command("lightning", data["x"], MLP_BATCH, epochs, result, "cpu", "32-true")


def workload_data(out: Path) -> dict[str, Path]:
    """The workloads' data and the MLP's (x, splits), written once."""
    data = workloads.make_data(out / "data")
    data["x"], data["splits"] = bench.make_data(out / "data")
    return data


def measure(workload: str, out: Path, epochs: int, rounds: int) -> dict[str, list[list[float]]]:
    """Every contestant's epoch CPU times (after each run's first), one list per round; the
    rounds run by turns (benchmarks/interleave.py), one after the other."""
    data = workload_data(out)
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
                minimal_command(data, epochs, result),
                lambda r=result: json.loads(r.read_text())["epoch_cpu_s"][1:],
            )
        for name, spans in interleave.epochs_by_turns(contestants, folder, env, bench.ROOT).items():
            cpu[name].append(spans)
    return cpu


def count(
    workload: str, out: Path, epochs: int, jobs: int, runs: list[str] | None = None
) -> dict[str, tuple[float, float]]:
    """Every contestant's (or those of `runs`) instructions per counted epoch under callgrind
    (benchmarks/instructions.py): (all, in the kernels), `jobs` runs at once."""
    import instructions
    from rich.console import Console

    data = workload_data(out)
    folder = out / "drops_counted" / workload
    tasks: dict[Any, tuple[list[str], Path]] = {
        (workload, name): (counted_command(workload, data, epochs, folder / name / "run", extra),
                           folder / name)
        for name, extra in DROPS.items()
    }  # fmt: skip
    if workload == "mlp":
        result = folder / MINIMAL / "result.json"
        tasks[workload, MINIMAL] = (minimal_command(data, epochs, result), folder / MINIMAL)
    tasks = {key: task for key, task in tasks.items() if runs is None or key[1] in runs}
    counts = instructions.count_tasks(tasks, epochs, out, jobs, Console(), run=True)
    return {name: value for (_, name), value in counts.items()}


STEPS = {"mlp": -(-bench.N_TRAIN // MLP_BATCH),
         "dataset": -(-workloads.N_ROWS // workloads.BATCH)}  # fmt: skip


def counted_saved(counts: dict[str, tuple[float, float]], steps: int) -> dict[str, Any]:
    """Per contestant: the instructions per epoch it saves against the defaults, outside the
    kernels (the framework's work: their share, per epoch and per training step) and in all."""
    total, kernels = counts["defaults"]
    rest = total - kernels
    result: dict[str, Any] = {}
    for name, (own, own_kernels) in counts.items():
        fewer = rest - (own - own_kernels)
        result[name] = {"rest_share": fewer / rest, "all_share": 1 - own / total,
                        "per_epoch": fewer, "per_step": fewer / steps}  # fmt: skip
    singles = [n for n in SINGLES if n in result]
    result["sum_of_singles"] = {k: sum(result[n][k] for n in singles) for k in result["defaults"]}
    kernels = [k for _, k in counts.values()]
    result["kernels_spread"] = max(kernels) / min(kernels) - 1
    return result


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


def counted_section(report: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the counts: what each run does less than the defaults."""
    works = report["workloads"]
    header = " | ".join(f"{w}: outside the kernels | {w}: per step | {w}: of all" for w in works)
    labels = {**LABELS, "sum_of_singles": "the single drops above, added up"}
    names = [n for n in [*DROPS, "sum_of_singles", MINIMAL] if n != "defaults"]
    rows = []
    for name in [n for n in names if any(n in report["saved"][w] for w in works)]:
        cells = []
        for workload in works:
            s = report["saved"][workload].get(name)
            if s is None:
                cells += ["-"] * 3
                continue
            cells += [f"{100 * s['rest_share']:+.1f} %", f"{s['per_step'] / 1e6:+.2f} M",
                      f"{100 * s['all_share']:+.2f} %"]  # fmt: skip
        rows.append(f"| {labels.get(name, f'`{name}` dropped')} | " + " | ".join(cells) + " |")
    base = ", ".join(
        f"{w} {report['counts'][w]['defaults'][0] / 1e9:.3f} G "
        f"({(report['counts'][w]['defaults'][0] - report['counts'][w]['defaults'][1]) / 1e9:.3f}"
        f" G outside the kernels, {STEPS[w]} steps)"
        for w in works
    )
    spread = max(report["saved"][w]["kernels_spread"] for w in works)
    return "\n".join([
        "### The default callbacks one by one, counted",
        "",
        "`python benchmarks/drops.py --count`: the same runs under valgrind's callgrind "
        "(benchmarks/instructions.py: the instructions of the epochs after the first, MKL held "
        "to SSE4.2, split at the kernels), one of each: a count does not move with the "
        f"machine's load. {report['epochs']} epochs a run; the defaults' count per epoch: "
        f"{base}. What each run does less than the defaults: outside the kernels (the "
        "framework's work, the part an epoch's extra time is spent in) as a share of the "
        "defaults' and per training step (M = 10^6 instructions, an epoch's saving over its "
        "steps), and as a share of all instructions. The kernels' counts differ by at most "
        f"{100 * spread:.4f} % between runs.",
        "",
        f"| run | {header} |",
        "|---|" + "---|---|---|" * len(works),
        *rows,
        "",
    ])  # fmt: skip


def count_report(args: argparse.Namespace, out: Path, error: Any) -> dict[str, Any]:
    """`--count`: the runs counted (those of --runs, the others' counts kept from
    drops_counted.json), their savings, written to drops_counted.json."""
    path = out / "drops_counted.json"
    epochs = args.epochs or 2
    earlier = json.loads(path.read_text()) if args.runs and path.is_file() else {}
    if earlier and earlier["epochs"] != epochs:
        error(f"--runs: {path} counted {earlier['epochs']} epochs a run, not {epochs}")
    counts = dict(earlier.get("counts", {}))
    for w in args.workloads if args.runs and "defaults" not in args.runs else []:
        if "defaults" not in counts.get(w, {}):
            error(f"--runs: {path} holds no count of the defaults on {w}; add defaults")
    for w in args.workloads:
        counts[w] = {**counts.get(w, {}), **count(w, out, epochs, args.jobs, args.runs)}
    works = [w for w in WORKLOADS if w in counts]
    report = {"workloads": works, "epochs": epochs, "counts": counts,
              "saved": {w: counted_saved(counts[w], STEPS[w]) for w in works}}  # fmt: skip
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/drops.py")
    parser.add_argument(
        "--epochs", type=int, help="epochs per run, the first warm-up (6; counted: 2)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument(
        "--under-load", action="store_true", help="beside a process spinning on one core"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="the section again from the last drops.json"
    )
    parser.add_argument(
        "--count", action="store_true",
        help="count each run's instructions under callgrind (one of each) instead of timing them",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="counted runs at once (--count)")
    parser.add_argument(
        "--runs", nargs="+", choices=[*DROPS, MINIMAL],
        help="--count: count these again, keeping the other counts of drops_counted.json",
    )  # fmt: skip
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 2:
        parser.error("--epochs must be at least 2: the first is warm-up, not counted or timed")
    out = bench.ROOT / "outputs" / "bench"
    if args.count:
        report = count_report(args, out, parser.error)
        text = counted_section(report)
        pages.write_section(text, "drops_counted", bench.ROOT / "docs")
        print(text)
        return
    name = "drops_loaded.json" if args.under_load else "drops.json"
    if args.report_only:
        report = json.loads((out / name).read_text())
        print(section(report))
        if not args.under_load:
            pages.write_section(section(report), "drops", bench.ROOT / "docs")
        return
    from load import busy_core

    with busy_core() if args.under_load else contextlib.nullcontext():
        cpu = {w: measure(w, out, args.epochs or 6, args.rounds) for w in args.workloads}
    report = {"workloads": args.workloads, "epochs": args.epochs or 6, "rounds": args.rounds,
              "under_load": args.under_load, "cpu": cpu,
              "saved": {w: saved(c) for w, c in cpu.items()}}  # fmt: skip
    (out / name).write_text(json.dumps(report, indent=2) + "\n")
    text = section(report)
    if not args.under_load:
        pages.write_section(text, "drops", bench.ROOT / "docs")
    print(text)


if __name__ == "__main__":
    main()
