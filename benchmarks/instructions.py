"""`python benchmarks/instructions.py [--under-load]`: the MLP contestants' epochs counted in
instructions, a measure no other tenant of the machine can move.

Every contestant of benchmarks/bench.py (logitlab with its defaults, `fastpath=true`, the
minimal Lightning loop, the bare loop) runs under valgrind's callgrind, which counts the
instructions a process executes (all its threads) rather than timing them. The count runs from
the start of the second epoch to the end of training (benchmarks/marks.py, through callgrind's
client requests in benchmarks/marks.c, compiled here with gcc): warm-up and imports are not
counted. The same command counts the same instructions on an idle or a loaded machine; the
ratio of two contestants' counts is the ratio of the work they ask of the CPU.
`--parts dataset cnn` counts the workloads of benchmarks/workloads.py the same way (logitlab's
`data=dataset` run against its bare DataLoader loop, logitlab's CNN against its bare loop).

Each count is split in two: the instructions inside the kernels, MKL's matrix product
(`mkl_blas_sgemm`) and oneDNN's primitives (`dnnl_primitive_execute`: the CNN's convolutions)
with what they call, by callgrind_annotate's inclusive costs, the same calls on the same shapes
for every contestant; and the rest: the framework's, the optimizer's and the loop's own work,
where the contestants differ. The ratio of the rest, and the extra instructions per training
step, are the overhead with the kernels left out.

What it is not: a ratio of times. An instruction is not a second: Python's dispatch and a SIMD
kernel run at different instructions per cycle. And valgrind runs FMA instructions in software
(MKL's AVX2 sgemm runs about 3,500x slower under it), so MKL is held to SSE4.2
(`MKL_ENABLE_INSTRUCTIONS=SSE4_2`) and oneDNN to SSE4.1 (`ONEDNN_MAX_CPU_ISA=SSE41`) for every
contestant. Natively, the MLP's products at batch
256 take about 4.8x the CPU time in SSE code that they take in the AVX-512 code MKL runs by
default on this machine. The matrix products weigh far more in these counts than in an epoch's
time, so the ratio of all instructions understates the overhead; the ratio of the rest
overstates it (an epoch's time is not all overhead).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import bench
import marks
import pages
import workloads
from omegaconf import OmegaConf

SOURCE = Path(__file__).resolve().parent / "marks.c"
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
# the same work in every run: MKL's SSE code (see above), one thread, Python's hashes fixed
COUNTED_ENV = {**bench.PINNED, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
               "PYTHONHASHSEED": "0"}  # fmt: skip
TRIGGER = f"desc: Trigger: Client Request: {marks.REGION.decode()}"
PAIRS = bench.PAIRED  # the same pairs, the same keys, as the timed benchmark
NAMES = ("logitlab", "fastpath", "lightning", "bare")
GEMM = "mkl_blas_sgemm"  # MKL's matrix product: the same calls, the same count, for everyone
KERNELS = (GEMM, "dnnl_primitive_execute")  # and oneDNN's primitives (convolutions)
REPORT_KEYS = {"over_lightning": "ir_over_lightning", "fastpath_ratio": "ir_fastpath_over_bare"}
COUNT_CALLBACK = "+callbacks.count._target_=marks.epochs_callback"  # logitlab's counted epochs
# Under callgrind a step takes about 45 times as long as natively (the MLP at batch 256: a
# counted epoch 57.7 s of wall time, 1.2 s natively), and logitlab's progress bar is redrawn by
# the clock: it would be drawn at every step. Its interval is stretched as much, so a counted
# run draws it about as often per step as a native one.
SLOWDOWN = 45
BAR_INTERVAL_S = OmegaConf.load(
    bench.ROOT / "src" / "logitlab" / "conf" / "callbacks" / "default.yaml"
).progress_bar.interval_s
COUNTED = [COUNT_CALLBACK, f"callbacks.progress_bar.interval_s={BAR_INTERVAL_S * SLOWDOWN:g}"]
WORKLOADS = ("dataset", "cnn")  # benchmarks/workloads.py's, counted


def build_marks(folder: Path) -> Path:
    """benchmarks/marks.c compiled into `folder` (again only when the source is newer)."""
    library = folder / "libmarks.so"
    if not library.is_file() or library.stat().st_mtime < SOURCE.stat().st_mtime:
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.which("valgrind") is None or shutil.which("gcc") is None:
            raise SystemExit("instructions.py needs valgrind and gcc (apt install valgrind gcc)")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", library, SOURCE], check=True)
    return library


def counted(command: list[str], folder: Path, library: Path, env: dict[str, str]) -> int:
    """The instructions `command` executes between its marks, run under callgrind in `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "output.log"
    with log.open("w") as handle:
        done = subprocess.run(
            [*CALLGRIND, f"--callgrind-out-file={folder / 'callgrind.out.%p'}", *command],
            cwd=bench.ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "BENCH_MARKS": str(library)},
        )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed:\n{log.read_text()[-3000:]}")
    return region_count(folder)


def region_dump(folder: Path) -> Path:
    """The one callgrind dump of the counted region in a callgrind output folder."""
    dumps = [
        dump
        for dump in sorted(folder.glob("callgrind.out.*"))
        if TRIGGER in dump.read_text(errors="replace")
    ]
    if len(dumps) != 1:
        raise RuntimeError(f"{folder}: {len(dumps)} counted regions, 1 expected (no marks?)")
    return dumps[0]


def region_count(folder: Path) -> int:
    """The instruction count of the counted region in a callgrind output folder."""
    text = region_dump(folder).read_text(errors="replace")
    return int(re.search(r"^totals: (\d+)", text, re.MULTILINE)[1])  # type: ignore[index]


def inclusive_count(folder: Path, function: str) -> int:
    """The instructions of the counted region spent in `function` and what it calls (0 if it
    was never called), by valgrind's callgrind_annotate."""
    listing = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", region_dump(folder)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(rf"^\s*([\d,]+) .*:{re.escape(function)} \[", listing, re.MULTILINE)
    return int(found[1].replace(",", "")) if found else 0


def contestant_commands(
    data: Path, splits: Path, batch_size: int, epochs: int, folder: Path
) -> dict[str, list[str]]:
    """bench.py's four contestants, logitlab with the counting callback added."""
    commands = {
        name: [*bench.logitlab_command(data, splits, batch_size, epochs, folder / name / "run",
                                       "cpu", "32-true", name == "fastpath"), *COUNTED]
        for name in ("logitlab", "fastpath")
    }  # fmt: skip
    for name in ("lightning", "bare"):
        out = folder / name / "result.json"
        commands[name] = bench.loop_command(name, data, batch_size, epochs, out, "cpu", "32-true")
    return commands


def workload_commands(workload: str, epochs: int, out: Path, folder: Path) -> dict[str, list[str]]:
    """A workload's contestants (benchmarks/workloads.py): logitlab with the counting callback
    added, its bare loop and, for the Dataset, `fastpath=true` and the minimal Lightning loop."""
    data = workloads.make_data(out / "data")
    commands: dict[str, list[str]] = {}
    for name in ("logitlab", *[n for n in workloads.EXTRA[workload] if n == "fastpath"]):
        run = workloads.overrides(workload, data, epochs, folder / name / "run")
        fast = ["fastpath=true"] if name == "fastpath" else []
        commands[name] = [sys.executable, "-m", "logitlab.train", *run, *fast, *COUNTED]
    for name in ("bare", *[n for n in workloads.EXTRA[workload] if n == "lightning"]):
        result = folder / name / "result.json"
        commands[name] = [sys.executable, str(Path(workloads.__file__)), workload,
                          str(out / "data"), str(epochs), str(result), name]  # fmt: skip
    return commands


def count_tasks(
    tasks: dict[Any, tuple[list[str], Path]], epochs: int, out: Path, jobs: int, console: Any,
    run: bool,
) -> dict[Any, tuple[float, float]]:  # fmt: skip
    """Each task's command counted in its folder, `jobs` at a time (or, with run=False, the
    counts an earlier run left there): (instructions, of them in the matrix products) per
    counted epoch."""
    library = build_marks(out / "build")
    env = {**COUNTED_ENV, "PYTHONPATH": str(bench.ROOT / "benchmarks")}
    if run:  # a run folder left by an earlier count is not resumed
        for _, folder in tasks.values():
            shutil.rmtree(folder, ignore_errors=True)

    def count(command: list[str], folder: Path) -> tuple[int, int]:
        where = folder / "callgrind"
        total = counted(command, where, library, env) if run else region_count(where)
        return total, sum(inclusive_count(where, kernel) for kernel in KERNELS)

    counts: dict[Any, tuple[float, float]] = {}
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    futures = {pool.submit(count, *task): key for key, task in tasks.items()}
    try:
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            total, gemm = (n / (epochs - 1) for n in future.result())
            counts[key] = total, gemm
            console.print(
                f"{' '.join(map(str, key))}: {total / 1e9:.3f} G instructions, "  # "256 bare: ..."
                f"{(total - gemm) / 1e9:.3f} G outside the matrix products"
            )
    finally:  # one failed contestant: the others not yet started are not run
        pool.shutdown(cancel_futures=True)
    return counts


def count_all(
    batch_sizes: list[int], epochs: int, out: Path, jobs: int, console: Any, run: bool = True,
    kind: str = "instructions",
) -> dict[str, Any]:  # fmt: skip
    """Every MLP contestant at every batch size in `out`/`kind`: instructions per counted
    epoch, in all and outside the matrix products, and their ratios."""
    data, splits = bench.make_data(out / "data")
    tasks = {
        (size, name): (command, out / kind / f"b{size}" / name)
        for size in batch_sizes
        for name, command in contestant_commands(
            data, splits, size, epochs, out / kind / f"b{size}"
        ).items()
    }
    return summary(count_tasks(tasks, epochs, out, jobs, console, run), batch_sizes, epochs)


def count_workloads(
    names: list[str], epochs: int, out: Path, jobs: int, console: Any, run: bool = True,
    kind: str = "instructions",
) -> dict[str, Any]:  # fmt: skip
    """Each workload's logitlab run and bare loop counted: per counted epoch, in all and outside
    the matrix products, their ratio and the extra per training step."""
    tasks = {
        (name, who): (command, out / kind / name / who)
        for name in names
        for who, command in workload_commands(name, epochs, out, out / kind / name).items()
    }
    counts = count_tasks(tasks, epochs, out, jobs, console, run)
    report: dict[str, Any] = {}
    for name in names:
        samples = workloads.N_IMAGES if name == "cnn" else workloads.N_ROWS
        steps = -(-samples // workloads.BATCH)
        (total, gemm), (bare, bare_gemm) = counts[name, "logitlab"], counts[name, "bare"]
        rest, bare_rest = total - gemm, bare - bare_gemm
        report[name] = {
            "steps": steps, "gemm_spread": max(gemm, bare_gemm) / min(gemm, bare_gemm) - 1,
            "logitlab_ir_per_epoch": total, "logitlab_rest_ir_per_epoch": rest,
            "bare_ir_per_epoch": bare, "bare_rest_ir_per_epoch": bare_rest,
            "over_bare": total / bare, "over_bare_rest": rest / bare_rest,
            "over_bare_extra_per_step": (rest - bare_rest) / steps,
        }  # fmt: skip
        report |= {
            f"ir_{name}_over_bare": total / bare,
            f"ir_{name}_over_bare_rest": rest / bare_rest,
        }
        for key, (a, b) in workloads.RATIOS.items():  # the Dataset's split at Lightning's loop
            if key in ("over_bare", "aa") or (name, a) not in counts or (name, b) not in counts:
                continue
            (total_a, gemm_a), (total_b, gemm_b) = counts[name, a], counts[name, b]
            report[name] |= {
                f"{a}_ir_per_epoch": total_a, f"{a}_rest_ir_per_epoch": total_a - gemm_a,
                f"{b}_ir_per_epoch": total_b, f"{b}_rest_ir_per_epoch": total_b - gemm_b,
                key: total_a / total_b, f"{key}_rest": (total_a - gemm_a) / (total_b - gemm_b),
                f"{key}_extra_per_step": (total_a - gemm_a - total_b + gemm_b) / steps,
            }  # fmt: skip
            report[f"ir_{name}_{key}"] = total_a / total_b
            report[f"ir_{name}_{key}_rest"] = (total_a - gemm_a) / (total_b - gemm_b)
    return report


def summary(
    counts: dict[tuple[int, str], tuple[float, float]], batch_sizes: list[int], epochs: int
) -> dict[str, Any]:
    """The report of (instructions, of them in the matrix products) per contestant and size."""
    report: dict[str, Any] = {"epochs": epochs, "mkl": COUNTED_ENV["MKL_ENABLE_INSTRUCTIONS"]}
    for size in batch_sizes:
        steps = -(-bench.N_TRAIN // size)
        same = [counts[size, name][1] for name in NAMES]  # the same products: their spread
        row: dict[str, float] = {"steps": steps, "gemm_spread": max(same) / min(same) - 1}
        for name in NAMES:
            total, gemm = counts[size, name]
            row |= {f"{name}_ir_per_epoch": total, f"{name}_rest_ir_per_epoch": total - gemm}
        for key, (a, b) in PAIRS.items():
            rest_a, rest_b = (row[f"{n}_rest_ir_per_epoch"] for n in (a, b))
            row |= {
                key: row[f"{a}_ir_per_epoch"] / row[f"{b}_ir_per_epoch"],
                f"{key}_rest": rest_a / rest_b,
                f"{key}_extra_per_step": (rest_a - rest_b) / steps,
            }
        report[f"b{size}"] = row
        for key, name in REPORT_KEYS.items():
            report |= {f"{name}_b{size}": row[key], f"{name}_rest_b{size}": row[f"{key}_rest"]}
    return report


def section(idle: dict[str, Any], loaded: dict[str, Any]) -> str:
    """docs/benchmarks.md's section: counts and ratios, idle and (where run) under load."""
    lines = [
        "## Instructions",
        "",
        "`python benchmarks/instructions.py` (and `--under-load`): each contestant under "
        "valgrind's callgrind, counting the instructions of its epochs after the first (all "
        "threads), MKL held to SSE4.2 for all (valgrind runs FMA in software); the method and "
        "its limits are in the script's docstring. G = 10^9 instructions per epoch; "
        "in brackets, those outside the matrix products (MKL's `sgemm`, the same count for "
        "every contestant): the framework's and the optimizer's work.",
        "",
        "| batch | logitlab | fastpath=true | minimal Lightning | bare |",
        "|---|---|---|---|---|",
    ]
    rows = [k for k in idle if k.startswith("b") and isinstance(idle[k], dict)]
    for key in rows:
        r = idle[key]
        counts = " | ".join(
            f"{r[f'{n}_ir_per_epoch'] / 1e9:.3f} G ({r[f'{n}_rest_ir_per_epoch'] / 1e9:.3f} G)"
            for n in NAMES
        )
        lines.append(f"| {key[1:]} | {counts} |")
    spread = max(idle[key]["gemm_spread"] for key in rows)
    lines += ["", f"The matrix products' counts differ by at most {100 * spread:.4f} % "
              "between contestants."]  # fmt: skip
    lines += [
        "",
        "Ratios of the counts, in all and outside the matrix products, and the extra "
        "instructions outside them per training step (an epoch's extra, its validation and "
        "checkpoints included, over its training steps; M = 10^6).",
        "",
        "| batch | pair | all | outside the matrix products | extra per step |",
        "|---|---|---|---|---|",
    ]
    for key in rows:
        r = idle[key]
        for pair, (a, b) in PAIRS.items():
            extra = r[f"{pair}_extra_per_step"] / 1e6
            lines.append(
                f"| {key[1:]} | {a} / {b} | {r[pair]:.4f} | {r[f'{pair}_rest']:.3f} "
                f"| {extra:+.2f} M |"
            )
    if len(rows) > 1:
        lines += split_per_step(idle, rows)
    shared = [k for k in idle if k.startswith("ir_") and k in loaded]
    if shared:
        lines += ["", "Idle and with a process spinning on one core (`--under-load`):", "",
                  "| count | idle | one core busy | change |", "|---|---|---|---|"]  # fmt: skip
        for key in [k for k in rows if k in loaded]:
            for name in NAMES:
                was, now = idle[key][f"{name}_ir_per_epoch"], loaded[key][f"{name}_ir_per_epoch"]
                lines.append(
                    f"| {name}, batch {key[1:]} | {was / 1e9:.4f} G | {now / 1e9:.4f} G "
                    f"| {100 * (now / was - 1):+.3f} % |"
                )
        for key in shared:
            change = loaded[key] / idle[key] - 1
            lines.append(
                f"| `{key}` | {idle[key]:.4f} | {loaded[key]:.4f} | {100 * change:+.3f} % |"
            )
    return "\n".join(lines) + "\n"


def workloads_section(idle: dict[str, Any], loaded: dict[str, Any]) -> str:
    """docs/benchmarks.md's section of the workloads' counts, idle and (where run) under load."""
    lines = [
        "## Instructions: the workloads",
        "",
        "`python benchmarks/instructions.py --parts dataset cnn` (and `--under-load`): the "
        "workloads of benchmarks/workloads.py counted as the MLP's contestants are: logitlab "
        "with its defaults against its bare loop (the user Dataset, `data=dataset`, 79 "
        "training steps an epoch; the CNN, 24), the epochs after the first; split at the "
        "kernels (MKL's matrix products, oneDNN's convolutions).",
        "",
        "| workload | logitlab | bare | all | outside the kernels | extra per step |",
        "|---|---|---|---|---|---|",
    ]
    for name in (n for n in WORKLOADS if n in idle):
        r = idle[name]
        lines.append(
            f"| {name} | {r['logitlab_ir_per_epoch'] / 1e9:.3f} G "
            f"({r['logitlab_rest_ir_per_epoch'] / 1e9:.3f} G) "
            f"| {r['bare_ir_per_epoch'] / 1e9:.3f} G "
            f"({r['bare_rest_ir_per_epoch'] / 1e9:.3f} G) | **{r['over_bare']:.4f}** "
            f"| {r['over_bare_rest']:.3f} | {r['over_bare_extra_per_step'] / 1e6:+.2f} M |"
        )
    spread = max(idle[n]["gemm_spread"] for n in WORKLOADS if n in idle)
    lines += ["", f"The kernels' counts differ by {100 * spread:.4f} % between the contestants."]
    split = [k for k in ("over_lightning", "lightning_over_bare", "fastpath_over_bare")
             if k in idle.get("dataset", {})]  # fmt: skip
    if split:
        r = idle["dataset"]
        lines += ["", "The user Dataset's ratio split at the minimal Lightning loop over the same "
                  "DataLoaders (workloads.py's), and `fastpath=true`: "
                  f"fastpath {r['fastpath_ir_per_epoch'] / 1e9:.3f} G "
                  f"({r['fastpath_rest_ir_per_epoch'] / 1e9:.3f} G outside the kernels), "
                  f"minimal Lightning {r['lightning_ir_per_epoch'] / 1e9:.3f} G "
                  f"({r['lightning_rest_ir_per_epoch'] / 1e9:.3f} G).", "",
                  "| pair | all | outside the kernels | extra per step |",
                  "|---|---|---|---|"]  # fmt: skip
        for key in split:
            a, b = workloads.RATIOS[key]
            lines.append(f"| {a} / {b} | **{r[key]:.4f}** | {r[f'{key}_rest']:.3f} "
                         f"| {r[f'{key}_extra_per_step'] / 1e6:+.2f} M |")  # fmt: skip
    shared = [k for k in idle if k.startswith("ir_") and k in loaded]
    if shared:
        lines += ["", "Idle and with a process spinning on one core (`--under-load`):", "",
                  "| ratio | idle | one core busy | change |", "|---|---|---|---|"]  # fmt: skip
        for k in shared:
            change = 100 * (loaded[k] / idle[k] - 1)
            lines.append(f"| `{k}` | {idle[k]:.4f} | {loaded[k]:.4f} | {change:+.3f} % |")
    return "\n".join(lines) + "\n"


def split_per_step(report: dict[str, Any], rows: list[str]) -> list[str]:
    """Each pair's extra instructions outside the matrix products as a cost per training step
    and one per epoch (checkpoints, logging, validation's ends), fitted over the batch sizes."""
    import numpy as np

    steps = [report[key]["steps"] for key in rows]
    lines = [
        "",
        "The same extra as a straight line in the number of training steps, fitted over the "
        "batch sizes (an epoch's extra = per step x steps + per epoch; through both points "
        "when there are two sizes):",
        "",
        "| pair | per training step | per epoch |",
        "|---|---|---|",
    ]
    for pair, (a, b) in PAIRS.items():
        extra = [report[key][f"{pair}_extra_per_step"] * report[key]["steps"] for key in rows]
        per_step, per_epoch = np.polyfit(steps, extra, 1)
        lines.append(f"| {a} / {b} | {per_step / 1e6:+.2f} M | {per_epoch / 1e9:+.3f} G |")
    return lines


def read(path: Path) -> dict[str, Any]:
    """A JSON report, or {} when there is none."""
    return json.loads(path.read_text()) if path.is_file() else {}


def saved(path: Path) -> dict[str, Any]:
    """A report an earlier run wrote, or {} when there is none or it lacks today's keys."""
    report = json.loads(path.read_text()) if path.is_file() else {}
    rows = [row for key, row in report.items() if key.startswith("b") and isinstance(row, dict)]
    return report if rows and all("gemm_spread" in row for row in rows) else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/instructions.py",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs per run, the first not counted"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once")
    parser.add_argument(
        "--under-load", action="store_true", help="with a CPU-bound process on one core"
    )
    parser.add_argument(
        "--report-only", action="store_true",
        help="write the report and docs again from the counts an earlier run left",
    )  # fmt: skip
    parser.add_argument(
        "--parts", nargs="+", default=["mlp"], choices=("mlp", *WORKLOADS),
        help="the MLP's four contestants, and/or a workload of benchmarks/workloads.py",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first is warm-up, not counted")
    from load import busy_core
    from rich.console import Console

    out = bench.ROOT / "outputs" / "bench"
    kind = "instructions_loaded" if args.under_load else "instructions"
    run = not args.report_only
    names = [p for p in args.parts if p in WORKLOADS]
    with busy_core() if args.under_load and run else contextlib.nullcontext():
        if "mlp" in args.parts:
            report = count_all(args.batch_sizes, args.epochs, out, args.jobs, Console(), run, kind)
        if names:
            counts = count_workloads(names, args.epochs, out, args.jobs, Console(), run, kind)
    if names:  # the workloads' counts beside those of earlier runs of other workloads
        path = out / f"{kind}_workloads.json"
        path.write_text(json.dumps({**read(path), **counts}, indent=2) + "\n")
        idle = read(out / "instructions_workloads.json")
        loaded = read(out / "instructions_loaded_workloads.json")
        text = workloads_section(idle or loaded, loaded if idle else {})
        pages.write_section(text, "instructions_workloads", bench.ROOT / "docs")
        print(text)
    if "mlp" not in args.parts:
        return
    (out / f"{kind}.json").write_text(json.dumps(report, indent=2) + "\n")
    idle = saved(out / "instructions.json") or report
    text = section(idle, saved(out / "instructions_loaded.json") if idle is not report else {})
    pages.write_section(text, "instructions", bench.ROOT / "docs")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
