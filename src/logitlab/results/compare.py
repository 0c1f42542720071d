"""Paired comparisons: the configurations of a sweep, paired by (fold, seed), and two runs on
one test split, sample by sample.

Sweep pairs: the differences d of a metric between two configurations' paired jobs. With folds,
the corrected resampled t-test of Nadeau and Bengio (2003): t = mean(d) / se,
se = sqrt((1/J + n_val/n_train) · var(d)), J paired jobs, var with ddof=1, J-1 degrees of
freedom; without folds (seeds on the same split), the paired t-test, se = sqrt(var(d) / J).
The 95 % interval is mean(d) ± t(0.975, J-1) · se. Two runs: McNemar's exact test (a two-sided
binomial test on the discordant samples) and a seeded paired bootstrap interval (10,000
resamples) of the accuracy difference.
"""

from __future__ import annotations

import csv
import io
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError
from logitlab.results.aggregate import Job, read_jobs
from logitlab.run.layout import RunFolder

COLUMNS = ("a", "b", "metric", "n", "mean_diff", "ci_low", "ci_high", "p_value", "test")
RESAMPLES = 10_000


def paired_t(d: np.ndarray, correction: float = 0.0) -> tuple[float, float, float]:
    """(p-value, ci_low, ci_high) of mean(d) for the (corrected) paired t-test;
    `correction` is n_val/n_train for folds, 0 for the plain test."""
    from scipy import stats

    j = len(d)
    mean = float(d.mean())
    se = math.sqrt((1 / j + correction) * float(d.var(ddof=1)))
    if se == 0:
        return (1.0 if mean == 0 else 0.0), mean, mean
    t = mean / se
    half = float(stats.t.ppf(0.975, j - 1)) * se
    return float(2 * stats.t.sf(abs(t), j - 1)), mean - half, mean + half


def describe(job: Job) -> str:
    """A configuration as its swept values (`all` when nothing else is swept)."""
    return " ".join(f"{k}={v}" for k, v in job.configuration) or "all"


def fold_sizes(job: Job) -> tuple[int, int]:
    """(n_val, n_train) of a job's fold, from its splits.npz."""
    with np.load(RunFolder(job.folder).splits, allow_pickle=False) as splits:
        return len(splits["val"]), len(splits["train"])


def compare_sweep(sweep_dir: Path, metric: str = "val/acc_best") -> list[dict[str, Any]]:
    """Every pair of the sweep's configurations on `metric`, paired by (fold, seed)."""
    if not sweep_dir.is_dir() or not any(sweep_dir.glob("*/.hydra/overrides.yaml")):
        raise ConfigError(f"{sweep_dir} is not a sweep folder (no job folders with .hydra/)")
    jobs = [job for job in read_jobs(sweep_dir) if job.status == "completed"]
    groups: dict[tuple, dict[tuple[str, str], Job]] = {}
    for job in jobs:
        if metric not in job.metrics:
            known = ", ".join(sorted(job.metrics)[:6])
            raise ConfigError(f"metric={metric} is not in {job.folder}/metrics.json ({known})")
        groups.setdefault(job.configuration, {})[job.pairing] = job
    if len(groups) < 2:
        raise ConfigError(
            f"{sweep_dir} holds one configuration (only seeds or folds vary); sweep two or "
            "more to compare, e.g. -m cv=5 optimizer.lr=1e-3,1e-2"
        )
    rows = []
    for a, b in combinations(groups.values(), 2):
        common = sorted(set(a) & set(b))
        if len(common) < 2:
            raise ConfigError(
                f"{describe(next(iter(a.values())))} and {describe(next(iter(b.values())))} "
                f"share {len(common)} (fold, seed) pair(s); a paired test needs two or more"
            )
        d = np.array([a[k].metrics[metric] - b[k].metrics[metric] for k in common])
        folded = any(fold for fold, _ in common)
        n_val, n_train = fold_sizes(a[common[0]]) if folded else (0, 1)
        p, low, high = paired_t(d, n_val / n_train if folded else 0.0)
        rows.append({
            "a": describe(a[common[0]]), "b": describe(b[common[0]]), "metric": metric,
            "n": len(d), "mean_diff": float(d.mean()), "ci_low": low, "ci_high": high,
            "p_value": p, "test": "corrected_resampled_t" if folded else "paired_t",
        })  # fmt: skip
    return rows


def correctness(run_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(targets, whether each test sample is predicted right, the run's data record with the
    test rows) of a run's best checkpoint on its own test split."""
    import json

    from logitlab.results.ensemble import test_probabilities

    probs, y, rows = test_probabilities(run_dir)
    data = RunFolder(run_dir).data
    record = json.loads(data.read_text()) if data.is_file() else {}
    record["rows"] = rows
    return y, probs.argmax(axis=1) == y, record


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """McNemar's exact test and a paired bootstrap interval of test accuracy, a - b."""
    from scipy import stats

    y_a, right_a, data_a = correctness(a)
    y_b, right_b, data_b = correctness(b)
    same = (
        len(y_a) == len(y_b) and bool((y_a == y_b).all()) and data_a["rows"] == data_b["rows"]
        and (data_a.get("fingerprint") or {}).get("content")
        == (data_b.get("fingerprint") or {}).get("content")
    )  # fmt: skip
    if not same:
        raise ConfigError(
            f"a={a} and b={b} were tested on different test splits (other data, seed or "
            "split); compare runs on the same test samples"
        )
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    p = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    rng = np.random.default_rng(0)
    n, diffs = len(y_a), []
    difference = right_a.astype(np.float64) - right_b.astype(np.float64)
    for start in range(0, RESAMPLES, 500):  # in chunks: memory stays n x 500
        index = rng.integers(0, n, size=(min(500, RESAMPLES - start), n))
        diffs.append(difference[index].mean(axis=1))
    low, high = np.percentile(np.concatenate(diffs), [2.5, 97.5])
    return {
        "a": str(a), "b": str(b), "metric": "test/acc", "n": n,
        "mean_diff": float(difference.mean()), "ci_low": float(low), "ci_high": float(high),
        "p_value": p, "test": "mcnemar",
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """The comparison as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.10g}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def print_table(rows: list[dict[str, Any]], path: Path) -> None:
    """The comparison as a rich table, naming the test used."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    view = Table(title=f"paired comparison ({path})", title_justify="left")
    for column in COLUMNS:
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else escape(str(row[c]))
                       for c in COLUMNS))  # fmt: skip
    Console(width=None if Console().is_terminal else 160).print(view)
