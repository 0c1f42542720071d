"""Start-up of the small commands: eval, predict and calibrate of a small run against the cost
of importing what they need (torch, Lightning, torchmetrics, OmegaConf, scikit-learn), in CPU
time of the child process, the minimum of N repetitions (noise only ever adds CPU time).

    .venv/bin/python benchmarks/startup.py [--repeat 5] [--run-dir DIR]

Writes outputs/bench/startup.json and prints the table docs/benchmarks.md shows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "import torch, lightning, torchmetrics, omegaconf, sklearn"  # sklearn: the data's splits


def cpu_seconds(command: list[str]) -> float:
    """User + system CPU seconds of one child process run to the end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--run-dir", type=Path, default=None, help="a trained run (default: one)")
    args = parser.parse_args()
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="logitlab-startup-"))
    run = args.run_dir or work / "run"
    if args.run_dir is None:  # a small run: digits, 270 test samples
        subprocess.run(
            [python, "-m", "logitlab.train", "trainer.max_epochs=2", f"hydra.run.dir={run}",
             "trainer.enable_progress_bar=false"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    commands = {
        "import floor": [python, "-c", FLOOR],
        "eval": [python, "-m", "logitlab.eval", f"run_dir={run}"],
        "predict": [python, "-m", "logitlab.predict", f"run_dir={run}",
                    f"output={work / 'p.csv'}", "overwrite=true"],
        "calibrate": [python, "-m", "logitlab.calibrate", f"run_dir={run}"],
    }  # fmt: skip
    minima = {name: min(cpu_seconds(c) for _ in range(args.repeat)) for name, c in commands.items()}
    floor = minima["import floor"]
    result = {
        "repeat": args.repeat,
        "cpu_s": {name: round(value, 3) for name, value in minima.items()},
        "over_floor": {n: round(v / floor, 3) for n, v in minima.items() if n != "import floor"},
    }
    out = ROOT / "outputs" / "bench" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| command | CPU s (min of {args.repeat}) | / import floor |")
    print("|---|---|---|")
    for name, value in minima.items():
        ratio = "1.00" if name == "import floor" else f"{value / floor:.2f}"
        print(f"| {name} | {value:.2f} | {ratio} |")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
