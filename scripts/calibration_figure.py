"""Reliability diagrams of a calibrated run, before and after, side by side: docs/calibration.png.

python scripts/calibration_figure.py <run_dir>   (after python -m logitlab.calibrate run_dir=...)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from logitlab.models.metrics import ReliabilityBins
from logitlab.run.restore import build_from_run, load_checkpoint, load_run_config
from logitlab.uncertainty.calibration import calibrated_probs, load_calibration, split_logits


def main(run_dir: str, out: str = "docs/calibration.png") -> None:
    folder, cfg = load_run_config(run_dir)
    calibration = load_calibration(folder)
    if calibration is None:
        raise SystemExit(f"{folder} has no calibration.json; run python -m logitlab.calibrate")
    path = Path(calibration["checkpoint"])
    datamodule, model = build_from_run(cfg, folder, load_checkpoint(path), path)
    logits, targets = split_logits(model, datamodule, "test")
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.0), dpi=100, sharey=True)
    for ax, (title, used) in zip(axes, (("before", None), ("after", calibration)), strict=True):
        bins = ReliabilityBins(n_bins=15)
        bins.update(calibrated_probs(logits, used, model.task), targets)
        result = bins.compute()
        count = result["count"]
        centers = (range(15), [(i + 0.5) / 15 for i in range(15)])[1]
        used_bins = [i for i in range(15) if count[i] > 0]
        ax.bar([centers[i] for i in used_bins], [float(result["accuracy"][i]) for i in used_bins],
               width=0.9 / 15, alpha=0.8, label="accuracy")  # fmt: skip
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(f"{title}: test ECE {float(result['ece']):.4f}")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"written: {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
