"""Selective prediction: how accurate a model is on the fraction of samples it is surest of.

The risk-coverage curve sorts the samples by confidence (the top-class probability), most
confident first, and gives for each k the error rate of the first k against the coverage k/n;
its area (AURC, Geifman & El-Yaniv 2017) is the mean of those n error rates: lower is better,
and a model whose confidence ranks its mistakes last has AURC near its error rate squared / 2.
"""

from __future__ import annotations

import numpy as np


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, error rate of the k most confident) for k = 1..n; ties keep their order."""
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    errors = np.cumsum(1.0 - np.asarray(correct, dtype=np.float64)[order])
    k = np.arange(1, len(order) + 1)
    return k / len(order), errors / k


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The area under the risk-coverage curve: the mean error rate over the n coverages."""
    if not len(confidence):
        return float("nan")
    return float(risk_coverage(confidence, correct)[1].mean())
