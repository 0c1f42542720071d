"""`python -m logitlab.seed`: the notebook's NumPy-vs-PyTorch comparisons, reproduced and explained.

Every number the notebook printed is recomputed here from the notebook's own inputs, with the
NumPy value next to the PyTorch value, plus the binary counterpart and the overflow case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from rich.console import Console
from rich.table import Table
from rich.text import Text
from torch import nn

from logitlab.notebook import numerics as nx


@dataclass
class Row:
    """One comparison: what is computed, on which input, by NumPy and by PyTorch."""

    quantity: str
    inputs: str
    numpy: str
    torch: str
    note: str = ""


@dataclass
class Section:
    """A titled table of comparisons, with an explanation printed under it."""

    title: str
    rows: list[Row] = field(default_factory=list)
    explanation: str = ""


def _vec(values: ArrayLike, digits: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in np.asarray(values).ravel()) + "]"


def _ints(values: object) -> str:
    return "[" + ", ".join(str(int(v)) for v in np.asarray(values).ravel()) + "]"


def comparisons() -> list[Section]:
    """Compute every comparison of the notebook (and the additions) as table rows."""
    sections: list[Section] = []

    # --- softmax ---------------------------------------------------------------------------
    x = [2.0, 1.0, 0.1]
    sm_np = nx.softmax(np.array(x))
    sm_t = torch.softmax(torch.tensor(x), dim=0)
    overflow = [1000.0, 1001.0]
    sections.append(
        Section(
            "Softmax: NumPy vs PyTorch",
            [
                Row(
                    "softmax",
                    _vec(x, 1),
                    str(np.array(nx.naive_softmax(np.array(x)))),
                    f"{sm_t}",
                    "notebook: [0.65900114 0.24243297 0.09856589]",
                ),
                Row(
                    "softmax (logitlab, max-shifted)",
                    _vec(x, 1),
                    _vec(sm_np, 8),
                    _vec(sm_t.double().numpy(), 8),
                    f"max |diff| {np.abs(sm_np - sm_t.double().numpy()).max():.1e} (float32)",
                ),
                Row(
                    "notebook softmax, exp(x)/sum(exp(x))",
                    _vec(overflow, 1),
                    str(nx.naive_softmax(np.array(overflow))),
                    str(torch.softmax(torch.tensor(overflow), dim=0)),
                    "exp(1000) overflows to inf; inf/inf = nan",
                ),
                Row(
                    "logitlab softmax",
                    _vec(overflow, 1),
                    _vec(nx.softmax(np.array(overflow, dtype=np.float32))),
                    _vec(torch.softmax(torch.tensor(overflow), dim=0).numpy()),
                    "exp(x - max(x)) never overflows",
                ),
            ],
        )
    )

    # --- cross-entropy ---------------------------------------------------------------------
    y_onehot = np.array([1, 0, 0])
    good_p, bad_p = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.3, 0.6])
    good_z, bad_z = [[2.0, 1.0, 0.1]], [[0.5, 2.0, 0.3]]
    ce = nn.CrossEntropyLoss()
    target = torch.tensor([0])
    loss_t = [ce(torch.tensor(z), target).item() for z in (good_z, bad_z)]
    nb = [nx.notebook_cross_entropy(y_onehot, p) for p in (good_p, bad_p)]
    per_sample = [nx.cross_entropy_from_probs(p, y_onehot) for p in (good_p, bad_p)]
    loss_np = [nx.cross_entropy(np.array(z), np.array([0])) for z in (good_z, bad_z)]
    sections.append(
        Section(
            "Cross-entropy: NumPy vs PyTorch (one sample, true class 0)",
            [
                Row(
                    "Loss 1, notebook NumPy (probs, one-hot)",
                    _vec(good_p, 1),
                    f"{nb[0]:.4f}",
                    "",
                    "divides by pred.shape[0] = 3 classes",
                ),
                Row(
                    "Loss 2, notebook NumPy (probs, one-hot)",
                    _vec(bad_p, 1),
                    f"{nb[1]:.4f}",
                    "",
                    "divides by pred.shape[0] = 3 classes",
                ),
                Row(
                    "Loss 1, per sample -log p[0]",
                    _vec(good_p, 1),
                    f"{per_sample[0]:.4f}",
                    f"{F.nll_loss(torch.from_numpy(good_p[None]).log(), target).item():.4f}",
                    "= 3 x 0.1189; NLLLoss on log-probs agrees",
                ),
                Row(
                    "Loss 2, per sample -log p[0]",
                    _vec(bad_p, 1),
                    f"{per_sample[1]:.4f}",
                    f"{F.nll_loss(torch.from_numpy(bad_p[None]).log(), target).item():.4f}",
                    "= 3 x 0.7675",
                ),
                Row(
                    "Loss 1, nn.CrossEntropyLoss (logits, index)",
                    _vec(good_z[0], 1),
                    f"{loss_np[0]:.4f}",
                    f"{loss_t[0]:.4f}",
                    "notebook PyTorch: 0.4170 (softmax of these logits gives p[0] = 0.659)",
                ),
                Row(
                    "Loss 2, nn.CrossEntropyLoss (logits, index)",
                    _vec(bad_z[0], 1),
                    f"{loss_np[1]:.4f}",
                    f"{loss_t[1]:.4f}",
                    "notebook PyTorch: 1.8406",
                ),
                Row(
                    "prediction 1 (argmax)",
                    _vec(good_z[0], 1),
                    _ints(nx.predict(np.array(good_z))),
                    str(torch.max(torch.tensor(good_z), dim=1).indices),
                    "notebook: tensor([0])",
                ),
                Row(
                    "prediction 2 (argmax)",
                    _vec(bad_z[0], 1),
                    _ints(nx.predict(np.array(bad_z))),
                    str(torch.max(torch.tensor(bad_z), dim=1).indices),
                    "notebook: tensor([1])",
                ),
            ],
            "Why NumPy's 0.1189 is not PyTorch's 0.4170: the notebook's cross_entropy divides "
            "by pred.shape[0], which for one sample (a 1-D vector) is the number of classes, 3, "
            "not the number of samples, 1; its per-sample value is -log(0.7) = 0.3567. It also "
            "takes probabilities [0.7, 0.2, 0.1] while nn.CrossEntropyLoss takes raw logits "
            "[2.0, 1.0, 0.1] and applies log_softmax itself (p[0] = 0.659, -log 0.659 = 0.4170). "
            "Fed the same logits, logitlab's NumPy cross_entropy and PyTorch agree.",
        )
    )

    # --- the batch of three ----------------------------------------------------------------
    y3 = [2, 0, 1]
    good3 = [[0.1, 1.0, 2.1], [2.0, 1.0, 0.1], [2.0, 3.0, 0.1]]
    bad3 = [[2.1, 1.0, 0.1], [0.0, 2.0, 0.1], [2.0, 1.0, 4.1]]
    rows = []
    for i, batch in enumerate((good3, bad3), start=1):
        lt = ce(torch.tensor(batch), torch.tensor(y3)).item()
        ln = nx.cross_entropy(np.array(batch), np.array(y3))
        rows.append(
            Row(f"Loss {i}, mean over 3 samples", "targets [2, 0, 1]", f"{ln:.4f}", f"{lt:.4f}")
        )
        rows.append(
            Row(
                f"predictions {i}",
                "argmax per row",
                _ints(nx.predict(np.array(batch))),
                str(torch.max(torch.tensor(batch), dim=1).indices),
            )
        )
    rows[0].note, rows[2].note = "notebook: 0.3846, [2, 0, 1]", "notebook: 2.6299, [0, 1, 2]"
    sections.append(Section("A batch of three samples", rows))

    # --- binary: sigmoid + BCELoss vs BCEWithLogitsLoss -------------------------------------
    z = [2.0, -1.0, 0.3]
    yb = [1.0, 0.0, 1.0]
    zt, ybt = torch.tensor(z), torch.tensor(yb)
    bce_t = nn.BCELoss()(torch.sigmoid(zt), ybt).item()
    bcel_t = nn.BCEWithLogitsLoss()(zt, ybt).item()
    bce_np = nx.binary_cross_entropy(nx.sigmoid(np.array(z)), np.array(yb))
    bcel_np = nx.binary_cross_entropy_with_logits(np.array(z), np.array(yb))
    far, far_y = [40.0], [0.0]
    far_bce_t = nn.BCELoss()(torch.sigmoid(torch.tensor(far)), torch.tensor(far_y)).item()
    far_bcel_t = nn.BCEWithLogitsLoss()(torch.tensor(far), torch.tensor(far_y)).item()
    far_bce_np = nx.binary_cross_entropy(nx.sigmoid(np.array(far, np.float32)), np.array(far_y))
    far_bcel_np = nx.binary_cross_entropy_with_logits(np.array(far, np.float32), np.array(far_y))
    sections.append(
        Section(
            "Binary head: sigmoid + BCELoss vs BCEWithLogitsLoss",
            [
                Row(
                    "sigmoid",
                    _vec(z, 1),
                    _vec(nx.sigmoid(np.array(z))),
                    _vec(torch.sigmoid(zt).numpy()),
                ),
                Row(
                    "sigmoid, then BCELoss (notebook's form)",
                    "targets [1, 0, 1]",
                    f"{bce_np:.4f}",
                    f"{bce_t:.4f}",
                ),
                Row(
                    "BCEWithLogitsLoss (logitlab's default)",
                    "targets [1, 0, 1]",
                    f"{bcel_np:.4f}",
                    f"{bcel_t:.4f}",
                    "same loss, computed on the logit",
                ),
                Row(
                    "sigmoid, then BCELoss",
                    "logit 40, target 0 (float32)",
                    f"{far_bce_np:.4f}",
                    f"{far_bce_t:.4f}",
                    "sigmoid(40) rounds to 1.0; log(0) clamped at -100",
                ),
                Row(
                    "BCEWithLogitsLoss",
                    "logit 40, target 0 (float32)",
                    f"{far_bcel_np:.4f}",
                    f"{far_bcel_t:.4f}",
                    "exact: the true loss is 40",
                ),
            ],
            "The binary head returns one logit and trains with BCEWithLogitsLoss, which folds "
            "the sigmoid into a log-sum-exp; sigmoid + BCELoss gives the same number until the "
            "probability rounds to 0 or 1, then saturates (and its gradient vanishes).",
        )
    )
    return sections


def render(sections: list[Section], width: int | None = None) -> None:
    """Print each section as a rich table with its explanation."""
    console = Console(width=width)
    if width is None and not console.is_terminal:
        console = Console(width=150)  # piped or captured: no terminal to wrap to
    console.rule("[bold]logitlab: the notebook, reproduced")
    for section in sections:
        table = Table(title=section.title, title_justify="left", show_lines=False)
        for column, style in (
            ("quantity", "bold"),
            ("input", "dim"),
            ("NumPy", "cyan"),
            ("PyTorch", "magenta"),
            ("note", ""),
        ):
            wide = column in ("NumPy", "PyTorch") and console.width >= 120
            table.add_column(column, style=style, no_wrap=wide, min_width=9, overflow="fold")
        for row in section.rows:
            # Text, not markup: "[nan nan]" would otherwise be read as a style tag.
            table.add_row(
                *(Text(cell) for cell in (row.quantity, row.inputs, row.numpy, row.torch, row.note))
            )
        console.print(table)
        if section.explanation:
            console.print(section.explanation, style="italic")
        console.print()


def main() -> None:
    """Print the comparisons."""
    render(comparisons())


if __name__ == "__main__":
    main()
