"""Calibrated probabilities: temperature scaling (multiclass), Platt scaling (binary), and the
scores they are judged by (NLL, ECE with the dashboards' bins, Brier score, accuracy).

- temperature (Guo et al. 2017): softmax(z / T) with one T > 0 minimising the validation NLL;
  L-BFGS on log T in float64. Every argmax, so the accuracy, is kept.
- platt: sigmoid(a * z + b), a and b minimising the validation NLL (L-BFGS, float64).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from logitlab.errors import ConfigError
from logitlab.models.metrics import ReliabilityBins

N_BINS = 15
FILE = "calibration.json"


def fit_temperature(logits: Any, targets: Any) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T): L-BFGS on log T, float64."""
    z, y = logits.double(), targets.long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fit_platt(logits: Any, targets: Any) -> tuple[float, float]:
    """The (a, b) minimising the mean NLL of sigmoid(a * logit + b): L-BFGS, float64."""
    z, y = logits.double(), targets.double()
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(params[0] * z + params[1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = params.detach().tolist()
    return float(a), float(b)


def calibrated_probs(logits: Any, calibration: dict[str, Any] | None, task: str) -> Any:
    """Class probabilities (N, C) from raw logits, through the calibration when one is given
    (multilabel: P(label), (N, K), through each label's Platt fit)."""
    z = logits.double()
    if task == "multilabel":
        if calibration:
            a, b = (torch.tensor(calibration[k], dtype=torch.float64) for k in ("a", "b"))
            z = a * z + b
        return torch.sigmoid(z).float()
    if task == "binary":
        if calibration:
            z = calibration["a"] * z + calibration["b"]
        p = torch.sigmoid(z)
        return torch.stack([1 - p, p], dim=1).float()
    if calibration:
        z = z / calibration["temperature"]
    return torch.softmax(z, dim=1).float()


def binned(probs: Any, task: str) -> Any:
    """What the reliability bins take: P(positive) for the binary head (against the positive
    rate: torchmetrics' BinaryCalibrationError), the (N, C) probabilities otherwise (top-class
    confidence against correctness: MulticlassCalibrationError)."""
    return probs[:, 1] if task == "binary" else probs


def scores(probs: Any, targets: Any, task: str = "multiclass") -> dict[str, float]:
    """NLL, ECE (15 bins, l1), Brier score and accuracy of (N, C) probs. The binary head's ECE
    bins P(positive), its Brier score is mean((p - y)^2) as sklearn's brier_score_loss; the
    multiclass head's ECE bins the top-class confidence, its Brier score sums over classes."""
    eps = torch.finfo(torch.float64).tiny
    p = probs.double()
    y = targets.long()
    nll = -torch.log(p[torch.arange(len(y)), y].clamp_min(eps)).mean()
    if task == "binary":
        brier = ((p[:, 1] - y.double()) ** 2).mean()
    else:
        brier = ((p - F.one_hot(y, p.shape[1]).double()) ** 2).sum(dim=1).mean()
    bins = ReliabilityBins(n_bins=N_BINS)
    bins.update(binned(probs.float(), task), y)
    return {
        "nll": float(nll),
        "ece": float(bins.compute()["ece"]),
        "brier": float(brier),
        "acc": float((p.argmax(dim=1) == y).double().mean()),
    }


def split_logits(model: Any, datamodule: Any, split: str) -> tuple[Any, Any]:
    """The raw logits (float32) and targets of a split, in split order."""
    chunks, labels = [], []
    with torch.inference_mode():
        for x, y in datamodule.sample_batches(split):
            chunks.append(model(x).float())
            labels.append(y)
    if not chunks or not sum(len(y) for y in labels):
        raise ConfigError(f"the run has no {split} samples to calibrate with")
    return torch.cat(chunks), torch.cat(labels)


def load_calibration(run_dir: Path) -> dict[str, Any] | None:
    """The run's calibration.json, or None; a file that cannot be read is one line."""
    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        calibration = json.loads(path.read_text())
        method = calibration["method"]
        keys = {"temperature": ("temperature",), "platt": ("a", "b")}[method]
        keys += ("thresholds",) if "thresholds" in calibration else ()  # multilabel: per label
        values = [v for k in keys for v in np.atleast_1d(calibration[k]).tolist()]
        if not all(isinstance(v, int | float) for v in values):
            raise ValueError(keys)
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a calibration logitlab wrote; delete it or run "
            f"python -m logitlab.calibrate run_dir={run_dir}"
        ) from None
    # a fit only shrinks or stretches the logits: a scale <= 0 would reverse every prediction
    shown = calibration["temperature"] if method == "temperature" else calibration["a"]
    scale, offset = np.atleast_1d(shown), np.atleast_1d(calibration.get("b", 0.0))
    if not (np.isfinite(scale).all() and (scale > 0).all() and np.isfinite(offset).all()):
        name = "temperature" if method == "temperature" else "a"
        raise ConfigError(
            f"{path} holds {name}={shown}, which no fit gives (it must be a positive finite "
            f"number); delete it or run python -m logitlab.calibrate run_dir={run_dir}"
        )
    return calibration


def same_checkpoint(recorded: Any, checkpoint: Path) -> bool:
    """Whether a fit recorded for `recorded` is for `checkpoint`: the same file of the run's
    checkpoints/, however the run folder is spelt or where it was moved."""
    return Path(str(recorded)).parts[-2:] == checkpoint.parts[-2:]


def fitted_for(record: dict[str, Any], checkpoint: Path, weights: str) -> bool:
    """Whether a fit (calibration.json, conformal.json) is for these checkpoint and weights."""
    return same_checkpoint(record.get("checkpoint"), checkpoint) and (
        record.get("weights", "ema") == weights
    )


def calibrated_scores(
    folder: Path, model: Any, datamodule: Any, checkpoint: Path, weights: str = "ema"
) -> dict[str, float]:
    """With a calibration in the run: test ECE and NLL with it and without (eval reports both)."""
    calibration = load_calibration(folder)
    if calibration is None or not fitted_for(calibration, checkpoint, weights):
        return {}  # none, or fitted for another checkpoint or the checkpoint's other weights
    logits, targets = split_logits(model, datamodule, "test")
    if model.task == "multilabel":  # the per-label thresholds too
        from logitlab.uncertainty.thresholds import label_scores

        raw = label_scores(calibrated_probs(logits, None, model.task), targets, None)
        fitted = label_scores(
            calibrated_probs(logits, calibration, model.task), targets, calibration["thresholds"]
        )
        extra = {f"test/{k}_calibrated": fitted[k] for k in ("acc", "f1_micro", "f1_macro")}
    else:
        raw = scores(calibrated_probs(logits, None, model.task), targets, model.task)
        fitted = scores(calibrated_probs(logits, calibration, model.task), targets, model.task)
        extra = {}
    return {
        **extra,
        "test/ece_raw": raw["ece"],
        "test/ece_calibrated": fitted["ece"],
        "test/nll_raw": raw["nll"],
        "test/nll_calibrated": fitted["nll"],
    }


def for_checkpoint(folder: Path, checkpoint: Path, weights: str = "ema") -> dict[str, Any] | None:
    """The run's calibration for `checkpoint` and `weights` (predict); one line if it was
    fitted for another."""
    calibration = load_calibration(folder)
    if calibration is not None and not same_checkpoint(calibration.get("checkpoint"), checkpoint):
        raise ConfigError(
            f"{folder / FILE} was fitted for {calibration.get('checkpoint')}, not {checkpoint}; "
            "predict with that ckpt, or calibrated=false, or calibrate this checkpoint "
            f"(python -m logitlab.calibrate run_dir={folder} ckpt=...)"
        )
    fitted_weights = (calibration or {}).get("weights", "ema")
    if calibration is not None and fitted_weights != weights:
        raise ConfigError(
            f"{folder / FILE} was fitted for the {fitted_weights} weights, not weights={weights}; "
            f"predict with weights={fitted_weights}, or calibrated=false, or calibrate these "
            f"(python -m logitlab.calibrate run_dir={folder} weights={weights})"
        )
    return calibration
