"""NumPy reference for what the heads compute: softmax, cross-entropy, sigmoid, BCE, gradients.

Every function is vectorised over a batch (rows are samples, the last axis is classes), keeps
the input's float dtype (float32 or float64), and stays finite for logits up to ±1e4, where the
textbook `exp(x) / sum(exp(x))` overflows to nan. The tests hold these definitions to PyTorch's
(`torch.softmax`, `nn.CrossEntropyLoss`, `nn.BCEWithLogitsLoss`, ...) to 1e-6.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

EPS = 1e-12


def _float(x: np.ndarray | list | float) -> np.ndarray:
    array = np.asarray(x)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)


def naive_softmax(x: np.ndarray) -> np.ndarray:
    """The notebook's softmax, `exp(x) / sum(exp(x))`: nan once exp overflows (x > 88, float32)."""
    x = _float(x)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / np.sum(e, axis=-1, keepdims=True)


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) along `axis`, computed as max + log(sum(exp(x - max))): never overflows."""
    x = _float(x)
    peak = np.max(x, axis=axis, keepdims=True)
    out = peak + np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log(softmax(x)) along the last axis, as x - logsumexp(x): finite for any finite logits."""
    x = _float(x)
    return x - logsumexp(x, axis=-1, keepdims=True)


def softmax(x: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis; subtracting the max first keeps exp from overflowing."""
    x = _float(x)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def one_hot(targets: np.ndarray, num_classes: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """Rows of zeros with a one at each target's class index."""
    targets = np.asarray(targets)
    return np.eye(num_classes, dtype=dtype)[targets]


def notebook_cross_entropy(actual: np.ndarray, pred: np.ndarray) -> float:
    """The notebook's cross_entropy(actual, pred), kept verbatim to explain its numbers.

    It sums -actual * log(pred) and divides by `pred.shape[0]`: for a single sample (a 1-D
    vector) that is the number of classes, not the number of samples.
    """
    loss = -np.sum(actual * np.log(pred))
    return loss / float(pred.shape[0])


def cross_entropy_from_probs(probs: np.ndarray, onehot: np.ndarray) -> np.ndarray | float:
    """Mean over samples of -sum(onehot * log(probs)); a 1-D input is one sample."""
    probs = _float(probs)
    per_sample = -np.sum(onehot * np.log(np.clip(probs, EPS, None)), axis=-1)
    return per_sample.mean() if per_sample.ndim else per_sample


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """PyTorch's form: mean over samples of -log_softmax(logits)[target] (nn.CrossEntropyLoss)."""
    logits = np.atleast_2d(_float(logits))
    targets = np.atleast_1d(np.asarray(targets))
    picked = np.take_along_axis(log_softmax(logits), targets[:, None], axis=-1)[:, 0]
    return -picked.mean()


def cross_entropy_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d(mean cross-entropy)/d(logits) = (softmax(logits) - onehot(targets)) / N."""
    logits = np.atleast_2d(_float(logits))
    n, c = logits.shape
    return (softmax(logits) - one_hot(targets, c, logits.dtype)) / n


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    x = _float(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def binary_cross_entropy(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """nn.BCELoss: mean of -(y log p + (1-y) log(1-p)), each log clamped at -100 as PyTorch does."""
    probs = _float(probs)
    targets = np.asarray(targets, dtype=probs.dtype)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(probs), -100.0)
        log_not_p = np.maximum(np.log1p(-probs), -100.0)
    return -np.mean(targets * log_p + (1 - targets) * log_not_p)


def binary_cross_entropy_with_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """nn.BCEWithLogitsLoss: mean of max(z, 0) - z*y + log(1 + exp(-|z|)), finite for any z."""
    logits = _float(logits)
    targets = np.asarray(targets, dtype=logits.dtype)
    per_sample = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return per_sample.mean()


def predict(logits: np.ndarray) -> np.ndarray:
    """The predicted class of each row: the argmax of its logits (= of its probabilities)."""
    return np.argmax(np.atleast_2d(logits), axis=-1)


def temperature_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(z / T): temperature scaling (T > 1 softens over-confident probabilities)."""
    return softmax(_float(logits) / temperature)


def temperature_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """The mean negative log-likelihood of softmax(z / T), the quantity temperature scaling
    minimises over T on the validation split."""
    return float(cross_entropy(_float(logits) / temperature, np.asarray(targets)).mean())
