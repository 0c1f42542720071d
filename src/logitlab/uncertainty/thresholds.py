"""The multilabel head's calibration: Platt scaling per label, then the probability threshold of
each label that maximises its F1 score on the validation split.

A label is predicted where its (calibrated) probability exceeds its threshold. Each threshold
lies halfway between two neighbouring validation probabilities, so no validation sample sits on
it; the F1 of a label is 2 TP / (2 TP + FP + FN), sklearn's f1_score of that label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from logitlab.errors import ConfigError
from logitlab.models.metrics import ReliabilityBins

N_BINS = 15


def fit_label_platt(logits: Any, targets: Any, names: list[str], run_dir: str) -> dict[str, Any]:
    """Platt's (a, b) for every label, each label's own fit (uncertainty.calibration)."""
    from logitlab.uncertainty.calibration import fit_platt

    a, b = [], []
    for k, name in enumerate(names):
        if len(targets[:, k].unique()) < 2:
            raise ConfigError(
                f"{run_dir}: label '{name}' is {'present in' if targets[0, k] else 'absent from'}"
                " every validation sample; Platt scaling needs both"
            )
        a_k, b_k = fit_platt(logits[:, k], targets[:, k])
        a.append(a_k)
        b.append(b_k)
    return {"method": "platt", "a": a, "b": b}


def best_f1_threshold(probs: np.ndarray, targets: np.ndarray) -> float:
    """The threshold t maximising the F1 of `probs > t` against 0/1 `targets` (the lowest
    such t among ties)."""
    order = np.argsort(-probs, kind="stable")
    p, y = probs[order], targets[order].astype(np.float64)
    tp = np.cumsum(y)  # predicting the first i + 1 as positive
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + y.sum())
    cut = np.append(p[:-1] > p[1:], True)  # a threshold can fall only between distinct values
    best = int(np.flatnonzero(cut)[np.argmax(f1[cut])]) if y.sum() else 0
    below = p[best + 1] if best + 1 < len(p) else 0.0
    return float((p[best] + below) / 2)


def f1_thresholds(probs: Any, targets: Any) -> list[float]:
    """Each label's F1-maximising threshold on (N, K) probabilities and 0/1 targets."""
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    return [best_f1_threshold(p[:, k], y[:, k]) for k in range(p.shape[1])]


def label_scores(probs: Any, targets: Any, thresholds: list[float] | None) -> dict[str, float]:
    """NLL, ECE (15 bins), Brier score and accuracy over all label decisions, and micro and
    macro F1 at `thresholds` (0.5 for every label when None)."""
    from sklearn.metrics import f1_score

    p, y = probs.double(), targets.double()
    cut = torch.tensor(thresholds or [0.5] * p.shape[1], dtype=torch.float64)
    predicted = (p > cut).long().numpy()
    eps = torch.finfo(torch.float64).tiny
    nll = -(y * p.clamp_min(eps).log() + (1 - y) * (1 - p).clamp_min(eps).log()).mean()
    bins = ReliabilityBins(n_bins=N_BINS)
    bins.update(p.float().reshape(-1), targets.reshape(-1))
    truth = targets.long().numpy()
    return {
        "nll": float(nll),
        "ece": float(bins.compute()["ece"]),
        "brier": float(((p - y) ** 2).mean()),
        "acc": float((predicted == truth).mean()),
        "f1_micro": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }
