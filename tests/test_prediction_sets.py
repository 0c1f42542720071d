"""Conformal prediction sets and selective prediction, checked against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logitlab.errors import ConfigError
from logitlab.uncertainty import conformal, selective


def dirichlet_task(n: int, classes: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Probabilities and labels drawn from them: a model calibrated by construction."""
    probs = rng.dirichlet(np.full(classes, 0.3), size=n)
    labels = (rng.random(n)[:, None] < probs.cumsum(axis=1)).argmax(axis=1)
    return probs, labels


def aps_by_loop(probs: np.ndarray, u: np.ndarray, lam: float, k_reg: int) -> np.ndarray:
    """APS/RAPS scores one sample and one class at a time, from their definition."""
    scores = np.zeros_like(probs)
    for i, p in enumerate(probs):
        ranked = sorted(range(len(p)), key=lambda c: -p[c])
        for rank, c in enumerate(ranked, start=1):
            above = sum(p[d] for d in ranked[: rank - 1])
            scores[i, c] = above + u[i] * p[c] + lam * max(0, rank - k_reg)
    return scores


@pytest.mark.parametrize(("score", "lam", "k_reg"), [("aps", 0.0, 0), ("raps", 0.05, 2)])
def test_aps_and_raps_scores_follow_their_definition(score: str, lam: float, k_reg: int) -> None:
    rng = np.random.default_rng(0)
    probs, _ = dirichlet_task(50, 6, rng)
    u = rng.random(50)
    record = {"score": score, "lam": lam, "k_reg": k_reg}
    np.testing.assert_allclose(
        conformal.class_scores(probs, record, u), aps_by_loop(probs, u, lam, k_reg), atol=1e-12
    )
    lac = conformal.class_scores(probs, {"score": "lac"}, u)
    np.testing.assert_allclose(lac, 1 - probs)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_the_threshold_is_the_finite_sample_quantile(alpha: float) -> None:
    rng = np.random.default_rng(1)
    probs, labels = dirichlet_task(137, 5, rng)
    record = conformal.fit(probs, labels, rng.random(137), {"score": "lac", "alpha": alpha})
    scores = 1 - probs[np.arange(137), labels]
    k = math.ceil(138 * (1 - alpha) - 1e-9)
    assert record["quantile"] == np.quantile(scores, k / 137, method="higher")
    # NumPy's "higher" at k/n rounds the index (n - 1) k / n up: the (k + 1)-th smallest
    assert record["quantile"] == np.sort(scores)[k]


@pytest.mark.parametrize(("alpha", "enough"), [(0.1, 9), (0.05, 19), (0.2, 4)])
def test_too_few_validation_samples_for_alpha_is_one_line(alpha: float, enough: int) -> None:
    assert conformal.quantile_level(enough, alpha) == 1.0  # n = 1/alpha - 1: the maximum
    with pytest.raises(ConfigError) as error:
        conformal.quantile_level(enough - 1, alpha)
    assert str(error.value) == (
        f"alpha={alpha} needs at least {enough} validation samples for a finite threshold, "
        f"and the run has {enough - 1}; give a larger alpha or a larger val split"
    )


@pytest.mark.parametrize("score", ["lac", "aps", "raps"])
def test_sets_cover_at_least_one_minus_alpha_on_exchangeable_data(score: str) -> None:
    """Split conformal's guarantee: over many splits, mean coverage is in
    [1 - alpha, 1 - alpha + 2 / (n + 1)] (the threshold is one rank conservative), within the
    Monte Carlo error."""
    rng = np.random.default_rng(2)
    alpha, n, trials, coverages, sizes = 0.1, 99, 300, [], []
    settings = {"score": score, "alpha": alpha, "lam": 0.01, "k_reg": 1}
    for _ in range(trials):
        probs, labels = dirichlet_task(n + 200, 4, rng)
        u = rng.random(n + 200)
        fitted = conformal.fit(probs[:n], labels[:n], u[:n], settings)
        sets = conformal.prediction_sets(probs[n:], fitted, u[n:])
        measured = conformal.measure(sets, labels[n:])
        coverages.append(measured["coverage"])
        sizes.append(measured["set_size"])
    spread = 3 * np.std(coverages) / np.sqrt(trials)
    assert 1 - alpha - spread <= np.mean(coverages) <= 1 - alpha + 2 / (n + 1) + spread
    assert 1.0 < np.mean(sizes) < 4.0


def test_smaller_alpha_gives_nested_larger_sets() -> None:
    rng = np.random.default_rng(3)
    probs, labels = dirichlet_task(400, 5, rng)
    u = rng.random(400)
    sets = [
        conformal.prediction_sets(
            probs, conformal.fit(probs, labels, u, {"score": "aps", "alpha": a}), u
        )
        for a in (0.3, 0.2, 0.1)
    ]
    assert (sets[0] <= sets[1]).all() and (sets[1] <= sets[2]).all()
    assert sets[0].sum() < sets[1].sum() < sets[2].sum()


def test_a_samples_u_depends_on_its_row_and_split_only() -> None:
    a = conformal.uniforms([5, 2, 9], seed=0, split="test")
    b = conformal.uniforms([9, 5], seed=0, split="test")
    assert a[0] == b[1] and a[2] == b[0]
    assert conformal.uniforms([5], seed=0, split="val")[0] != a[0]
    assert conformal.uniforms([5], seed=1, split="test")[0] != a[0]


def aurc_by_loop(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The mean, over k = 1..n, of the error rate of the k most confident samples."""
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    risks = [1 - np.mean([correct[i] for i in order[:k]]) for k in range(1, len(order) + 1)]
    return float(np.mean(risks))


def test_aurc_is_the_mean_risk_over_coverages() -> None:
    rng = np.random.default_rng(4)
    confidence = rng.random(300)
    correct = rng.random(300) < confidence  # confident samples are right more often
    assert selective.aurc(confidence, correct) == pytest.approx(aurc_by_loop(confidence, correct))
    shuffled = selective.aurc(rng.random(300), correct)
    assert selective.aurc(confidence, correct) < shuffled  # informative confidence ranks better
    best = np.sort(correct.astype(float))[::-1]  # all mistakes last: the lowest possible area
    assert selective.aurc(np.arange(300, 0, -1), best) <= selective.aurc(confidence, correct)
