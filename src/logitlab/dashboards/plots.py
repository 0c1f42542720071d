"""The reliability diagram and the risk-coverage curve (matplotlib, Agg backend) and the
confusion counts as a table; the confusion matrix and ROC figures are torchmetrics' `.plot()`."""

from __future__ import annotations

from typing import Any

import torch

# Numbers in the heatmap's cells up to this many classes; beyond it they are unreadable and cost
# seconds to draw (100 classes: 7 CPU-s an image, 0.3 without), and the counts table has them.
CELL_NUMBERS_MAX_CLASSES = 20


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion(metric: Any, matrix: torch.Tensor, labels: list[str]) -> Any:
    """The confusion matrix as torchmetrics' heatmap (true classes down), with each cell's count
    written in it for up to CELL_NUMBERS_MAX_CLASSES classes."""
    _pyplot()  # the Agg backend: no window
    figure, _ = metric.plot(matrix, labels=labels, add_text=len(labels) <= CELL_NUMBERS_MAX_CLASSES)
    return figure


def confusion_markdown(matrix: torch.Tensor, labels: list[str]) -> str:
    """The same counts as a markdown table (rows: true class, columns: predicted)."""
    head = "| true \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = [
        f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |"
        for label, row in zip(labels, matrix, strict=True)
    ]
    return "\n".join([head, rule, *rows])


def scores_markdown(scores: dict[str, float]) -> str:
    """One-off results (eval's metrics, calibration's before/after) as a markdown table for
    TensorBoard's TEXT tab, where they do not open the SCALARS page as single-dot charts."""
    rows = [f"| {name} | {value:.6g} |" for name, value in sorted(scores.items())]
    return "\n".join(["| metric | value |", "|---|---|", *rows])


def reliability(bins: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ece: float) -> Any:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    plt = _pyplot()
    _, accuracy, count = bins
    used = count > 0
    width = 1.0 / len(count)
    centers = (torch.arange(len(count)) + 0.5) * width
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.bar(
        centers[used].numpy(),
        accuracy[used].numpy(),
        width=width * 0.9,
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def risk_coverage(coverage: torch.Tensor, risk: torch.Tensor, aurc: float) -> Any:
    """The error rate of the most confident samples against the fraction of them kept."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.plot(coverage.numpy(), risk.numpy(), label="model")
    if len(risk):
        ax.axhline(float(risk[-1]), linestyle="--", color="gray", label="error rate (all kept)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (fraction kept, most confident first)")
    ax.set_ylabel("error rate of the kept")
    ax.set_title(f"risk-coverage (AURC {aurc:.4f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def reliability_grid(per_label: list[dict[str, torch.Tensor]], names: list[str]) -> Any:
    """One small reliability diagram per label (multilabel): P(label) against the fraction
    present, with each label's ECE."""
    plt = _pyplot()
    columns = min(4, len(per_label))
    rows = -(-len(per_label) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), dpi=100)
    for k, ax in enumerate(list(getattr(axes, "flat", [axes]))):
        if k >= len(per_label):
            ax.axis("off")
            continue
        bins = per_label[k]
        used = bins["count"] > 0
        width = 1.0 / len(bins["count"])
        centers = (torch.arange(len(bins["count"])) + 0.5) * width
        ax.bar(centers[used].numpy(), bins["accuracy"][used].numpy(), width=width * 0.9)
        ax.plot([0, 1], [0, 1], "--", color="gray")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{names[k] if names else k} (ECE {float(bins['ece']):.3f})", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
