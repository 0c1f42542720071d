"""`python benchmarks/callbacks.py`: where logitlab's epoch goes, callback by callback and hook by
hook, measured inside one run.

logitlab's benchmark run (benchmarks/bench.py's MLP, data and overrides, batch 256, one
intra-op thread, every default) with Lightning's own `SimpleProfiler` (`trainer.profiler=simple`),
which times every hook call of every callback, of the LightningModule and of the loops in the
same process. Costs compared within one process do not move with the machine the way two runs'
epoch times do (on this shared machine two runs of the same command differ by up to 10 %, more
than a callback costs). Writes docs/.benchmarks_callbacks.section.md (docs/benchmarks.md's
section): each default callback's seconds per epoch, and the largest hooks.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(bench)  # type: ignore[union-attr]

# "|  [Callback]EpochClock.on_train_batch_end  |  1.2e-05  |  940  |  0.0113  |  0.1  |"
ROW = re.compile(r"^\|\s*(\S.*?)\s*\|\s*([\d.e+-]+)\s*\|\s*(\d+)\s*\|\s*([\d.e+-]+)\s*\|")


def profile(batch_size: int, epochs: int, out: Path) -> tuple[list[tuple[str, int, float]], str]:
    """(action, calls, total seconds) of every profiled action of one run; and its log."""
    data, splits = bench.make_data(out / "data")
    run_dir = out / "profile" / f"b{batch_size}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    overrides = bench.logitlab_overrides(
        data, splits, batch_size, epochs, run_dir, "cpu", "32-true", False
    )
    command = [sys.executable, "-m", "logitlab.train", *overrides, "trainer.profiler=simple"]
    _, _, output = bench.run_measured(command, run_dir.with_suffix(".log"), bench.PINNED)
    rows = []
    for line in output.splitlines():
        found = ROW.match(line.strip())
        if found and found.group(1) not in ("Action", "Total"):
            rows.append((found.group(1), int(found.group(3)), float(found.group(4))))
    if not rows:
        raise RuntimeError(f"no profiler report in {run_dir.with_suffix('.log')}")
    return rows, output


def owner(action: str) -> str:
    """The callback (its class), the module or the loop an action belongs to."""
    name = action.split(".")[0]
    return re.sub(r"\{.*", "", name)  # "[Callback]ModelCheckpoint{'monitor': ...}" -> its class


def shares(rows: list[tuple[str, int, float]], epochs: int) -> tuple[dict[str, float], float]:
    """Each default callback's hook time as a share of the training epochs; an epoch's time."""
    callbacks: collections.Counter[str] = collections.Counter()
    for action, _, total in rows:
        if action.startswith("[Callback]"):
            callbacks[owner(action).removeprefix("[Callback]")] += total
    epoch_total = sum(t for a, _, t in rows if a == "run_training_epoch")
    return {k: v / epoch_total for k, v in callbacks.most_common()}, epoch_total / epochs


def section(out: Path, batch_size: int) -> str:
    """docs/benchmarks.md's section: the idle run's callbacks and hooks, the loaded run's
    shares beside them when it exists."""
    idle = json.loads((out / "callbacks.json").read_text())
    loaded_path = out / "callbacks_loaded.json"
    loaded = json.loads(loaded_path.read_text()) if loaded_path.is_file() else None
    share, epoch_s = shares(idle["rows"], idle["epochs"])
    under = shares(loaded["rows"], loaded["epochs"])[0] if loaded else {}
    table = [
        f"| `{name}` | {1000 * part * epoch_s:.1f} ms | {100 * part:.2f} % | "
        + (f"{100 * under.get(name, 0.0):.2f} % |" if loaded else "|")
        for name, part in share.items()
    ]
    total, total_under = sum(share.values()), sum(under.values())
    table.append(
        f"| all of them | {1000 * total * epoch_s:.1f} ms | {100 * total:.2f} % | "
        + (f"{100 * total_under:.2f} % |" if loaded else "|")
    )
    hooks = sorted(
        (r for r in idle["rows"] if r[0] not in ("run_training_epoch", "run_training_batch")),
        key=lambda r: -r[2],
    )[:15]
    hook_rows = [
        f"| `{re.sub(r'{.*}', '', action)}` | {calls} | {1e6 * t / max(calls, 1):.0f} µs "
        f"| {1000 * t / idle['epochs']:.1f} ms |"
        for action, calls, t in hooks
    ]
    return "\n".join([
        "### Where the epoch goes: callbacks and hooks",
        "",
        f"`python benchmarks/callbacks.py`: one logitlab run of the benchmark (batch "
        f"{batch_size}, {idle['epochs']} epochs, every default, one intra-op thread) under "
        "Lightning's `SimpleProfiler` (`trainer.profiler=simple`), which times each hook call "
        f"in the run's own process; a training epoch took {epoch_s:.3f} s (wall time, the "
        "profiler's own cost included). `--under-load`: the same beside a process spinning on "
        "the other core (benchmarks/load.py).",
        "",
        "| default callback | its hooks per epoch | share of the epoch | share under load |",
        "|---|---|---|---|",
        *table,
        "",
        "The largest actions (the LightningModule's steps hold the model's own work):",
        "",
        "| action | calls | per call | per epoch |",
        "|---|---|---|---|",
        *hook_rows,
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/callbacks.py")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--under-load", action="store_true",
        help="beside a process spinning on one core (benchmarks/load.py): the shares again",
    )  # fmt: skip
    args = parser.parse_args()
    out = ROOT / "outputs" / "bench"
    if args.under_load:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from load import busy_core

        with busy_core():
            rows, _ = profile(args.batch_size, args.epochs, out)
    else:
        rows, _ = profile(args.batch_size, args.epochs, out)
    name = "callbacks_loaded.json" if args.under_load else "callbacks.json"
    (out / name).write_text(json.dumps({"rows": rows, "epochs": args.epochs}))
    if not (out / "callbacks.json").is_file():
        print("run python benchmarks/callbacks.py (idle) too")
        return
    text = section(out, args.batch_size)
    (ROOT / "docs" / ".benchmarks_callbacks.section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
