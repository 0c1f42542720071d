"""Split-conformal prediction sets (Vovk et al. 2005; Angelopoulos & Bates 2021).

A nonconformity score s(x, y) is computed for every validation sample at its true class; with
n of them, the threshold q is NumPy's `quantile(scores, ceil((n + 1)(1 - alpha)) / n,
method="higher")`, as in Angelopoulos & Bates' reference code, and the set of a new sample holds
every class c with s(x, c) <= q. If validation and test samples are exchangeable, the set holds
the true class with probability at least 1 - alpha. (For k = ceil((n + 1)(1 - alpha)) < n that
quantile is the (k + 1)-th smallest score, one rank above the k-th that the guarantee needs: a
little conservative, coverage at most 1 - alpha + 2 / (n + 1) for continuous scores.)

- lac (least ambiguous classifier, Sadinle et al. 2019): s = 1 - p_c. The smallest sets on
  average.
- aps (adaptive prediction sets, Romano et al. 2020): s = the probability of the classes
  ranked above c, plus u * p_c with u uniform on [0, 1).
- raps (regularised aps, Angelopoulos et al. 2021): aps + lam * max(0, rank of c - k_reg).

The u of each sample is drawn from a generator seeded by (seed, split) at the sample's row, so
conformal.json's test coverage and predict's `set` column agree exactly. aps and raps sets can
be empty (a sample whose top class already exceeds q once randomised).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError
from logitlab.uncertainty.calibration import (
    calibrated_probs,
    fitted_for,
    same_checkpoint,
    split_logits,
)

SCORES = ("lac", "aps", "raps")
STREAMS = {"val": 1, "test": 2, "input": 3}  # one uniform stream per split
FILE = "conformal.json"


def uniforms(rows: list[int], seed: int, split: str) -> np.ndarray:
    """Each sample's u for aps/raps, by its row: the same sample always draws the same u."""
    if not rows:
        return np.zeros(0)
    drawn = np.random.default_rng([seed, STREAMS[split]]).random(max(rows) + 1)
    return drawn[np.asarray(rows, dtype=np.int64)]


def class_scores(probs: np.ndarray, record: dict[str, Any], u: np.ndarray) -> np.ndarray:
    """The nonconformity score of every (sample, class) pair, (N, C)."""
    p = np.asarray(probs, dtype=np.float64)
    if record["score"] == "lac":
        return 1.0 - p
    order = np.argsort(-p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    above = np.cumsum(ranked, axis=1) - ranked  # the mass of the classes ranked above
    ranked_scores = above + u[:, None] * ranked
    if record["score"] == "raps":
        ranks = np.arange(1, p.shape[1] + 1)
        ranked_scores = ranked_scores + record["lam"] * np.maximum(0, ranks - record["k_reg"])
    scores = np.empty_like(p)
    np.put_along_axis(scores, order, ranked_scores, axis=1)
    return scores


def quantile_level(n: int, alpha: float) -> float:
    """ceil((n + 1)(1 - alpha)) / n, refused in one line when it exceeds 1 (n < 1/alpha - 1)."""
    k = math.ceil((n + 1) * (1 - Fraction(str(alpha))))  # exact: 0.95 * 20 is 19, not 19.0000001
    if k > n:
        raise ConfigError(
            f"alpha={alpha} needs at least {math.ceil(1 / alpha - 1)} validation samples for a "
            f"finite threshold, and the run has {n}; give a larger alpha or a larger val split"
        )
    return k / n


def check(alpha: float, score: str, lam: float, k_reg: int) -> None:
    """The arguments of a conformal fit, each refused in one line."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha={alpha} must lie strictly between 0 and 1 (e.g. alpha=0.1)")
    if score not in SCORES:
        raise ConfigError(f"score={score} is not known; use one of {', '.join(SCORES)}")
    if not (math.isfinite(lam) and lam >= 0) or k_reg < 0:
        raise ConfigError(f"lam={lam} and k_reg={k_reg} must be >= 0 (raps' penalty)")


def fit(
    probs: np.ndarray, targets: np.ndarray, u: np.ndarray, record: dict[str, Any]
) -> dict[str, Any]:
    """`record` (alpha, score, lam, k_reg, seed) with the threshold fitted on validation."""
    scores = class_scores(probs, record, u)[np.arange(len(targets)), np.asarray(targets)]
    level = quantile_level(len(scores), record["alpha"])
    quantile = float(np.quantile(scores, level, method="higher"))
    return {**record, "quantile": quantile, "level": level, "val_samples": len(scores)}


def prediction_sets(probs: np.ndarray, record: dict[str, Any], u: np.ndarray) -> np.ndarray:
    """A boolean (N, C) membership matrix: class c is in sample i's set."""
    return class_scores(probs, record, u) <= record["quantile"]


def measure(sets: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Coverage (the fraction of sets holding the true class), mean set size, size histogram."""
    sizes = sets.sum(axis=1)
    histogram = np.bincount(sizes, minlength=sets.shape[1] + 1)
    return {
        "coverage": float(sets[np.arange(len(targets)), np.asarray(targets)].mean()),
        "set_size": float(sizes.mean()),
        "set_size_histogram": {str(size): int(n) for size, n in enumerate(histogram) if n},
    }


def set_names(sets: np.ndarray, class_names: list[str]) -> list[str]:
    """Each set as its class names in class order, joined by `|` (an empty set: "")."""
    return ["|".join(class_names[c] for c in np.flatnonzero(row)) for row in sets]


def calibration_parameters(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of a calibration.json the sets are computed on: its method and parameters."""
    if calibration is None:
        return None
    keys = (
        ("method", "temperature")
        if calibration["method"] == "temperature"
        else ("method", "a", "b")
    )
    return {key: calibration[key] for key in keys}


def probabilities(logits: Any, record: dict[str, Any], task: str) -> np.ndarray:
    """(N, C) probabilities as the fit saw them: through its calibration, if it had one."""
    return calibrated_probs(logits, record.get("calibration"), task).double().numpy()


def split_probs(
    model: Any, datamodule: Any, split: str, calibration: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    """A split's probabilities (through `calibration`) and targets, in split order."""
    logits, targets = split_logits(model, datamodule, split)
    return probabilities(logits, {"calibration": calibration}, model.task), targets.numpy()


def load(run_dir: Path) -> dict[str, Any] | None:
    """The run's conformal.json, or None; a file logitlab did not write is one line."""
    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        valid = (
            record["score"] in SCORES
            and 0 < record["alpha"] < 1
            and math.isfinite(record["quantile"])
            and isinstance(record["seed"], int)
            and record["lam"] >= 0
            and record["k_reg"] >= 0
        )
        calibration = record["calibration"]
        if calibration is not None:
            scale = calibration["temperature" if calibration["method"] == "temperature" else "a"]
            valid = valid and math.isfinite(scale) and scale > 0
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise ConfigError(
            f"{path} is not a conformal fit logitlab wrote; delete it or run "
            f"python -m logitlab.calibrate run_dir={run_dir} method=conformal"
        )
    return record


def for_checkpoint(folder: Path, checkpoint: Path, weights: str) -> dict[str, Any] | None:
    """The run's conformal fit for `checkpoint` and `weights` (predict); one line if it was
    fitted for others."""
    record = load(folder)
    if record is None or fitted_for(record, checkpoint, weights):
        return record
    fitted = (
        f"the {record.get('weights', 'ema')} weights"
        if same_checkpoint(record.get("checkpoint"), checkpoint)
        else str(record.get("checkpoint"))
    )
    raise ConfigError(
        f"{folder / FILE} was fitted for {fitted}, not this ckpt and weights={weights}; predict "
        f"with those, or sets=false, or fit these (python -m logitlab.calibrate "
        f"run_dir={folder} method=conformal ckpt=... weights={weights})"
    )


def eval_scores(
    folder: Path, model: Any, datamodule: Any, checkpoint: Path, weights: str
) -> dict[str, float]:
    """With a conformal fit for this checkpoint: test/coverage and test/set_size (eval)."""
    record = load(folder)
    if record is None or not fitted_for(record, checkpoint, weights):
        return {}
    probs, targets = split_probs(model, datamodule, "test", record["calibration"])
    u = uniforms(datamodule.sample_rows("test"), record["seed"], "test")
    measured = measure(prediction_sets(probs, record, u), targets)
    return {"test/coverage": measured["coverage"], "test/set_size": measured["set_size"]}
