"""The recipe against the plain CNN on shifted digits, at the same epoch budget: test accuracy,
ECE and loss from each run's metrics.json, and the epoch time (TensorBoard's time/epoch_s:
the first epoch, which pays for compiling, and the median of the rest) with and without
compile=true. One command each, as the README's table shows them:

    .venv/bin/python benchmarks/recipe.py [--out outputs/recipe] [--seed 42]

Writes outputs/bench/recipe.json and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # name: the training command's overrides
    "plain CNN": ["experiment=shifted_digits_cnn"],
    "recipe": ["experiment=shifted_digits_recipe"],
    "plain CNN, compile=true": ["experiment=shifted_digits_cnn", "compile=true"],
    "recipe, compile=true": ["experiment=shifted_digits_recipe", "compile=true"],
}


def epoch_seconds(run: Path) -> list[float]:
    """time/epoch_s of every epoch, in order."""
    values: list[float] = []
    for events in sorted((run / "tensorboard").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "time/epoch_s" in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars("time/epoch_s")]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "recipe")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data = args.out / "data"
    python = sys.executable
    subprocess.run([python, "-m", "logitlab.data.synthetic", f"out={data}"], cwd=ROOT, check=True)
    results = {}
    for name, overrides in RUNS.items():
        run = args.out / name.replace(" ", "_").replace(",", "").replace("=", "-")
        command = [
            python, "-m", "logitlab.train", *overrides, f"paths.data_dir={data}",
            f"seed={args.seed}", "trainer.enable_progress_bar=false", f"hydra.run.dir={run}",
        ]  # fmt: skip
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        metrics = json.loads((run / "metrics.json").read_text())
        seconds = epoch_seconds(run)
        results[name] = {
            "command": "python " + " ".join(command[1:-1]),
            "test/acc": metrics["test/acc"],
            "test/ece": metrics["test/ece"],
            "test/loss": metrics["test/loss"],
            "first_epoch_s": seconds[0],
            "epoch_s_median": statistics.median(seconds[1:]),
        }
    out = ROOT / "outputs" / "bench" / "recipe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("| run | test acc | test ECE | test loss | first epoch (s) | epoch, median (s) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['test/acc']:.4f} | {r['test/ece']:.4f} | {r['test/loss']:.4f} | "
            f"{r['first_epoch_s']:.2f} | {r['epoch_s_median']:.2f} |"
        )


if __name__ == "__main__":
    main()
