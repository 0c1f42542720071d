"""`python benchmarks/callbacks.py`: what each default callback costs per epoch, in CPU time.

logitlab's benchmark run (benchmarks/bench.py's MLP, data and overrides, batch 256, one
intra-op thread) with all its defaults, then once without each default callback in turn
(`callbacks.<name>=null`); each figure is the minimum epoch CPU time over the runs' epochs after
the first (time/epoch_cpu_s), and a callback's cost is the defaults' minimum less the minimum
without it. Writes docs/.benchmarks_callbacks.section.md (docs/benchmarks.md's section).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(bench)  # type: ignore[union-attr]

CALLBACKS = (
    "diagnostics", "model_checkpoint", "last_checkpoint", "early_stopping", "progress_bar",
    "learning_rate_monitor", "model_summary", "resumable",
)  # fmt: skip


def least_cpu(without: str | None, batch_size: int, epochs: int, reps: int, out: Path) -> float:
    """The minimum epoch CPU time of logitlab's run without callback `without`."""
    data, splits = bench.make_data(out / "data")
    best = float("inf")
    for rep in range(reps):
        run_dir = out / "callbacks" / f"{without or 'defaults'}_{rep}"
        overrides = bench.logitlab_overrides(
            data, splits, batch_size, epochs, run_dir, "cpu", "32-true", False
        )
        overrides += [f"callbacks.{without}=null"] if without else []
        command = [sys.executable, "-m", "logitlab.train", *overrides]
        bench.run_measured(command, run_dir.with_suffix(".log"), bench.PINNED)
        best = min(best, min(epoch_cpu(run_dir)[1:]))
    return best


def epoch_cpu(run_dir: Path) -> list[float]:
    """A run's time/epoch_cpu_s, from its TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "time/epoch_cpu_s" in accumulator.Tags()["scalars"]:
            values += [e.value for e in accumulator.Scalars("time/epoch_cpu_s")]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/callbacks.py")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    out = ROOT / "outputs" / "bench"
    defaults = least_cpu(None, args.batch_size, args.epochs, args.reps, out)
    rows = [f"| all defaults | {defaults:.3f} s | |"]
    for name in CALLBACKS:
        without = least_cpu(name, args.batch_size, args.epochs, args.reps, out)
        rows.append(f"| without `{name}` | {without:.3f} s | {defaults - without:+.3f} s |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "### What each default callback costs",
        "",
        f"`python benchmarks/callbacks.py`: the benchmark's logitlab run at batch "
        f"{args.batch_size} (one intra-op thread), minimum epoch CPU time over {args.reps} runs "
        f"of {args.epochs} epochs (the first left out), with every default, then without each "
        "default callback in turn; the cost is the difference (within about 0.02 s of noise).",
        "",
        "| run | min epoch CPU | the callback's cost per epoch |",
        "|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip
    (ROOT / "docs" / ".benchmarks_callbacks.section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
