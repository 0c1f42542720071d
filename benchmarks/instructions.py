"""`python benchmarks/instructions.py [--under-load]`: the MLP contestants' epochs counted in
instructions, a measure no other tenant of the machine can move.

Every contestant of benchmarks/bench.py (logitlab with its defaults, `fastpath=true`, the
minimal Lightning loop, the bare loop) runs under valgrind's callgrind, which counts the
instructions a process executes (all its threads) rather than timing them. The count runs from
the start of the second epoch to the end of training (benchmarks/marks.py, through callgrind's
client requests in benchmarks/marks.c, compiled here with gcc): warm-up and imports are not
counted. The same command counts the same instructions on an idle or a loaded machine; the
ratio of two contestants' counts is the ratio of the work they ask of the CPU.

Two things it is not. An instruction is not a second: Python's dispatch and a SIMD kernel run
at different instructions per cycle, so the ratio of counts is not the ratio of times. And
valgrind runs FMA instructions in software (MKL's AVX2 sgemm runs about 1,000x slower under
it), so MKL is held to SSE4.2 (`MKL_ENABLE_INSTRUCTIONS=SSE4_2`) for every contestant: the
kernels' counts are those of SSE code; everything around the kernels is counted as it runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

SOURCE = Path(__file__).resolve().parent / "marks.c"
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
# the same work in every run: MKL's SSE code (see above), one thread, Python's hashes fixed
COUNTED_ENV = {**bench.PINNED, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "PYTHONHASHSEED": "0"}
TRIGGER = f"desc: Trigger: Client Request: {marks.REGION.decode()}"
PAIRS = {  # as bench.PAIRED
    "over_lightning": ("logitlab", "lightning"),
    "fastpath_ratio": ("fastpath", "bare"),
    "ratio": ("logitlab", "bare"),
    "lightning_ratio": ("lightning", "bare"),
}
REPORT_KEYS = {"over_lightning": "ir_over_lightning", "fastpath_ratio": "ir_fastpath_over_bare"}


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


def region_count(folder: Path) -> int:
    """The instruction count of the one dump of the counted region in a callgrind output folder."""
    totals = []
    for dump in sorted(folder.glob("callgrind.out.*")):
        text = dump.read_text(errors="replace")
        if TRIGGER in text:
            totals.append(int(re.search(r"^totals: (\d+)", text, re.MULTILINE)[1]))  # type: ignore[index]
    if len(totals) != 1:
        raise RuntimeError(f"{folder}: {len(totals)} counted regions, 1 expected (no marks?)")
    return totals[0]


def contestant_commands(
    data: Path, splits: Path, batch_size: int, epochs: int, folder: Path
) -> dict[str, list[str]]:
    """bench.py's four contestants, logitlab with the counting callback added."""
    count = "+callbacks.count._target_=marks.epochs_callback"
    commands = {
        name: [*bench.logitlab_command(data, splits, batch_size, epochs, folder / name / "run",
                                       "cpu", "32-true", name == "fastpath"), count]
        for name in ("logitlab", "fastpath")
    }  # fmt: skip
    for name in ("lightning", "bare"):
        out = folder / name / "result.json"
        commands[name] = bench.loop_command(name, data, batch_size, epochs, out, "cpu", "32-true")
    return commands


def count_all(
    batch_sizes: list[int], epochs: int, out: Path, jobs: int, console: Any
) -> dict[str, Any]:
    """Every contestant at every batch size, `jobs` at a time: instructions per counted epoch and
    their ratios."""
    library = build_marks(out / "build")
    data, splits = bench.make_data(out / "data")
    env = {**COUNTED_ENV, "PYTHONPATH": str(bench.ROOT / "benchmarks")}
    tasks = {
        (size, name): (command, out / "instructions" / f"b{size}" / name)
        for size in batch_sizes
        for name, command in contestant_commands(
            data, splits, size, epochs, out / "instructions" / f"b{size}"
        ).items()
    }
    counts: dict[tuple[int, str], float] = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {
            pool.submit(counted, command, folder / "callgrind", library, env): key
            for key, (command, folder) in tasks.items()
        }
        for future in concurrent.futures.as_completed(futures):
            size, name = futures[future]
            counts[size, name] = future.result() / (epochs - 1)
            console.print(f"batch {size} {name}: {counts[size, name] / 1e9:.3f} G instructions")
    report: dict[str, Any] = {"epochs": epochs, "mkl": COUNTED_ENV["MKL_ENABLE_INSTRUCTIONS"]}
    for size in batch_sizes:
        row = {f"{name}_ir_per_epoch": counts[size, name] for _, name in tasks if _ == size}
        row |= {key: counts[size, a] / counts[size, b] for key, (a, b) in PAIRS.items()}
        report[f"b{size}"] = row
        report |= {f"{name}_b{size}": row[key] for key, name in REPORT_KEYS.items()}
    return report


def section(idle: dict[str, Any], loaded: dict[str, Any]) -> str:
    """docs/benchmarks.md's section: counts and ratios, idle and (where run) under load."""
    lines = [
        "## Instructions",
        "",
        "`python benchmarks/instructions.py` (and `--under-load`): each contestant under "
        "valgrind's callgrind, counting the instructions of its epochs after the first (all "
        "threads), MKL held to SSE4.2 for all (valgrind runs FMA in software); the method and "
        "its limits are in the script's docstring. G = 10^9 instructions per epoch.",
        "",
        "| batch | logitlab | fastpath=true | minimal Lightning | bare | defaults / minimal "
        "Lightning | fastpath / bare | defaults / bare | minimal Lightning / bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in [k for k in idle if k.startswith("b") and isinstance(idle[k], dict)]:
        r = idle[key]
        counts = " | ".join(
            f"{r[f'{n}_ir_per_epoch'] / 1e9:.3f} G"
            for n in ("logitlab", "fastpath", "lightning", "bare")
        )
        ratios = " | ".join(f"{r[p]:.4f}" for p in PAIRS)
        lines.append(f"| {key[1:]} | {counts} | {ratios} |")
    shared = [k for k in idle if k.startswith("ir_") and k in loaded]
    if shared:
        lines += ["", "| ratio | idle | one core busy | change |", "|---|---|---|---|"]
        for key in shared:
            change = loaded[key] / idle[key] - 1
            lines.append(
                f"| `{key}` | {idle[key]:.4f} | {loaded[key]:.4f} | {100 * change:+.2f} % |"
            )
    return "\n".join(lines) + "\n"


def write_section(text: str, docs: Path) -> None:
    """docs/.benchmarks_instructions.section.md, and the section in docs/benchmarks.md."""
    (docs / ".benchmarks_instructions.section.md").write_text(text)
    page = docs / "benchmarks.md"
    current = page.read_text() if page.is_file() else "# Benchmarks\n"
    title = text.split("\n", 1)[0]
    if title in current:  # replace the section up to the next one
        head, _, tail = current.partition(title)
        rest = tail.split("\n## ", 1)
        current = head + text + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    page.write_text(current)


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
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first is warm-up, not counted")
    from load import busy_core
    from rich.console import Console

    out = bench.ROOT / "outputs" / "bench"
    name = "instructions_loaded.json" if args.under_load else "instructions.json"
    if args.under_load:
        with busy_core():
            report = count_all(args.batch_sizes, args.epochs, out, args.jobs, Console())
    else:
        report = count_all(args.batch_sizes, args.epochs, out, args.jobs, Console())
    (out / name).write_text(json.dumps(report, indent=2) + "\n")
    idle_path, loaded_path = out / "instructions.json", out / "instructions_loaded.json"
    idle = json.loads(idle_path.read_text()) if idle_path.is_file() else report
    loaded = json.loads(loaded_path.read_text()) if loaded_path.is_file() else {}
    text = section(idle, loaded)
    write_section(text, bench.ROOT / "docs")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
