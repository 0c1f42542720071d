"""A sweep's results by configuration: jobs that differ only in `seed` and `data.fold` are
repeats of one configuration; each metric gets its mean, standard deviation (ddof=1) and the
95 % Student-t interval of the mean, `mean ± t(0.975, n-1) · std / √n`. Failed jobs are
counted, never averaged in."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from logitlab.run.files import read_record
from logitlab.run.layout import RunFolder

REPEATS = ("seed", "data.fold")  # what makes two jobs repeats of one configuration
NOT_PARAMETERS = ("hydra.", "paths.")  # where a job runs and writes: not what it tries


@dataclass
class Job:
    """One job folder of a sweep: its overrides, status and metrics."""

    folder: Path
    overrides: dict[str, str]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def configuration(self) -> tuple[tuple[str, str], ...]:
        """Its swept values but the repeats' (set by `swept`)."""
        return tuple((k, v) for k, v in self.overrides.items() if k not in REPEATS)

    @property
    def pairing(self) -> tuple[str, str]:
        """(fold, seed): what pairs a job with its counterpart in another configuration."""
        return self.overrides.get("data.fold", ""), self.overrides.get("seed", "")


def read_jobs(sweep_dir: Path) -> list[Job]:
    """The sweep's job folders in job order, each with its overrides, status and metrics."""
    folders = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    folders.sort(
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
    )
    jobs = []
    for folder in folders:
        run = RunFolder(folder)
        overrides = {}
        for override in OmegaConf.load(run.hydra / "overrides.yaml"):
            key, _, value = str(override).partition("=")
            overrides[key.lstrip("+~")] = value
        record = read_record(run.job)
        metrics = {
            k: float(v) for k, v in read_record(run.metrics).items() if isinstance(v, int | float)
        }
        jobs.append(Job(folder, overrides, str(record.get("status", "unknown")), metrics))
    return swept(jobs)


def swept(jobs: list[Job]) -> list[Job]:
    """The jobs with only their swept overrides: keys whose values differ between jobs, none
    of where a job runs (hydra.*, paths.*) and no whole config nodes."""
    keys = dict.fromkeys(k for job in jobs for k in job.overrides)
    varying = [
        k for k in keys
        if not k.startswith(NOT_PARAMETERS)
        and len({job.overrides.get(k) for job in jobs}) > 1
        and not any(str(job.overrides.get(k, "")).startswith("{") for job in jobs)
    ]  # fmt: skip
    for job in jobs:
        job.overrides = {k: job.overrides.get(k, "") for k in varying}
    return jobs


def mean_interval(values: list[float]) -> dict[str, float | None]:
    """mean, std (ddof=1) and the 95 % Student-t interval of the mean (None when n < 2)."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def aggregate(jobs: list[Job]) -> list[dict[str, Any]]:
    """One row per configuration: its swept values, n (completed), failed, and per metric
    `<metric>_mean`, `_std`, `_ci_low`, `_ci_high`."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.configuration, []).append(job)
    metrics = sorted({m for job in jobs if job.status == "completed" for m in job.metrics})
    rows = []
    for configuration, members in groups.items():
        done = [job for job in members if job.status == "completed"]
        row: dict[str, Any] = {**dict(configuration), "n": len(done)}
        row["failed"] = len(members) - len(done)
        for metric in metrics:
            values = [job.metrics[metric] for job in done if metric in job.metrics]
            summary = mean_interval(values) if values else {}
            for key in ("mean", "std", "ci_low", "ci_high"):
                row[f"{metric}_{key}"] = summary.get(key)
        rows.append(row)
    return rows


def write_aggregate(sweep_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """aggregate.csv at the sweep root (numbers to 10 significant digits, empty when undefined)."""
    from logitlab.run.files import write_text

    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return write_text(sweep_dir / "aggregate.csv", buffer.getvalue())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def headline(rows: list[dict[str, Any]]) -> str | None:
    """The metric the console and the figure show: test/acc, else val/acc_best."""
    for metric in ("test/acc", "val/acc_best"):
        if any(row.get(f"{metric}_mean") is not None for row in rows):
            return metric
    return None


def print_aggregate(rows: list[dict[str, Any]], path: Path) -> None:
    """The aggregate as a rich table: each configuration's n, failed and headline metrics."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    metric = headline(rows)
    keys = [k for k in rows[0] if k not in ("n", "failed") and "/" not in k] if rows else []
    table = Table(title=f"sweep aggregate ({path})", title_justify="left")
    for column in (*keys, "n", "failed", *([f"{metric} mean [95% CI]"] if metric else [])):
        table.add_column(column, justify="left" if column in keys else "right")
    for row in rows:
        cells = [escape(str(row[k])) for k in keys] + [str(row["n"]), str(row["failed"])]
        if metric:
            mean, low, high = (row.get(f"{metric}_{s}") for s in ("mean", "ci_low", "ci_high"))
            interval = f" [{low:.4f}, {high:.4f}]" if low is not None else ""
            cells.append(f"{mean:.4f}{interval}" if mean is not None else "")
        table.add_row(*cells)
    Console(width=None if Console().is_terminal else 160).print(table)


def plot_aggregate(sweep_dir: Path, jobs: list[Job], rows: list[dict[str, Any]]) -> Path | None:
    """aggregate.png: each configuration's jobs as dots, its mean and 95 % interval as a bar."""
    metric = headline(rows)
    if metric is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 1.4 * len(rows)), 3.6))
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:  # in the order aggregate() met them, the order of `rows`
        groups.setdefault(job.configuration, []).append(job)
    labels = []
    for i, ((configuration, members), row) in enumerate(zip(groups.items(), rows, strict=True)):
        values = [
            j.metrics[metric] for j in members if j.status == "completed" and metric in j.metrics
        ]
        axes.scatter([i] * len(values), values, color="tab:blue", alpha=0.6, zorder=2)
        mean, low, high = (row.get(f"{metric}_{s}") for s in ("mean", "ci_low", "ci_high"))
        if mean is not None and low is not None and high is not None:
            axes.errorbar(i + 0.15, mean, yerr=[[mean - low], [high - mean]], fmt="o",
                          color="black", capsize=4)  # fmt: skip
        labels.append("\n".join(f"{k}={v}" for k, v in configuration) or "all")
    axes.set_xticks(range(len(rows)), labels, fontsize=7)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}: jobs, mean and 95% interval", fontsize=9)
    figure.tight_layout()
    path = sweep_dir / "aggregate.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
