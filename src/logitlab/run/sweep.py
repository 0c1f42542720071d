"""Sweeps: every job records how it ended; the sweep root gets a summary table of all of them.

A job that fails is written down as failed with its error line and the sweep goes on; at the end
`summary.csv` lists every job (a column per swept parameter, the overrides, status,
val/acc_best, test/acc, test/loss, wall time), `aggregate.csv` (and .png) each configuration's
mean and 95 % interval over its seeds and folds (results/aggregate.py); both tables are
printed, and the sweep exits non-zero if any job failed. A sweep stopped by
SIGTERM or Ctrl+C writes the summary so far; the same command with its `hydra.sweep.dir` goes on:
completed jobs are kept, the others run (from their last.ckpt when they have one).
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from logitlab.errors import RunStopped, first_line
from logitlab.run.files import read_record
from logitlab.run.layout import RunFolder

log = logging.getLogger("logitlab.run.sweep")

STOPPED = 143  # the exit status of a run stopped by SIGTERM or Ctrl+C
TRIAL = "LOGITLAB_OPTUNA_TRIAL"  # an Optuna trial's number, set for its job (run/search.py)
COLUMNS = (
    "job", "overrides", "tags", "status", "val/acc_best", "test/acc", "test/loss", "wall_time_s"
)  # fmt: skip


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra sweep (-m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def job_record(
    run_dir: str | Path, keep_going: bool, overrides: Sequence[str] = ()
) -> Iterator[None]:
    """Write <run_dir>/job.json with the job's status, error line, wall time and overrides.

    With `keep_going` (a sweep job), an error is logged and recorded instead of raised, so the
    other jobs of the sweep still run. A SIGTERM or Ctrl+C is recorded as `stopped`.
    """
    from logitlab.run.ddp import is_rank_zero
    from logitlab.run.files import write_json

    start = time.monotonic()
    record: dict[str, Any] = {"status": "completed", "error": ""}
    try:
        yield
    except Exception as error:
        pruned = pruned_trial(error)
        record = {"status": "pruned" if pruned else "failed", "error": first_line(error)}
        if not keep_going:
            raise
        log.log(logging.INFO if record["status"] == "pruned" else logging.ERROR,
                "job %s: %s", record["status"], record["error"])  # fmt: skip
    except KeyboardInterrupt:
        record = {"status": "stopped", "error": "interrupted (Ctrl+C)"}
        raise SystemExit(STOPPED) from None
    except SystemExit as exit:
        if exit.code in (0, None):
            raise
        status = "stopped" if exit.code == STOPPED else "failed"
        record = {"status": status, "error": f"exited with status {exit.code}"}
        if isinstance(exit, RunStopped):  # saved, not crashed: how it stopped and how to go on
            record.update(error=f"stopped by {exit.signal_name}", signal=exit.signal_name)
            record["resume"] = exit.resume
        raise
    finally:
        record["wall_time_s"] = round(time.monotonic() - start, 3)
        record["overrides"] = list(overrides)
        if Path(run_dir).is_dir() and is_rank_zero():
            write_json(RunFolder(run_dir).job, record)


def pruned_trial(error: Exception) -> bool:
    """Whether an Optuna search's pruner stopped this trial; without Optuna imported, no
    trial was pruned (so a failing run does not import it)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.exceptions.TrialPruned)


def completed_job(run_dir: str | Path, overrides: list[str]) -> dict[str, Any] | None:
    """The metrics of a job that completed with these overrides in an earlier launch of a
    continued sweep (None: it did not, so it runs)."""
    record = read_record(RunFolder(run_dir).job)
    if record.get("status") != "completed" or record.get("overrides") != list(overrides):
        return None
    return read_record(RunFolder(run_dir).metrics)


def continuable(sweep_dir: Path, overrides: list[str]) -> bool:
    """Whether `sweep_dir` holds an earlier launch of the same sweep that did not complete (it
    was stopped, or some jobs failed): the same overrides, and not every job completed."""
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task
    except Exception:  # no multirun.yaml, or not one Hydra wrote: not a sweep to continue
        return False
    mine = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith("hydra.")]
    if sorted(str(o) for o in saved) != sorted(mine):
        return False
    rows = summarize(sweep_dir)
    return not rows or any(row["status"] != "completed" for row in rows)


def report(sweep_dir: Path) -> None:
    """aggregate.csv and aggregate.png at the sweep root, and the aggregate table printed."""
    from logitlab.results.aggregate import (
        aggregate,
        plot_aggregate,
        print_aggregate,
        read_jobs,
        write_aggregate,
    )

    jobs = read_jobs(sweep_dir)
    rows = aggregate(jobs)
    path = write_aggregate(sweep_dir, rows)
    plot_aggregate(sweep_dir, jobs, rows)
    print_aggregate(rows, path)


def tables(sweep_dir: Path) -> tuple[list[dict[str, str]], Path]:
    """summary.csv and the aggregate written and printed; the summary's rows (none: no jobs)."""
    rows = summarize(sweep_dir)
    path = sweep_dir / "summary.csv"
    if rows:
        path = write_summary(sweep_dir, rows)
        print_summary(rows, path)
        report(sweep_dir)
    return rows, path


def stopped(sweep_dir: Path) -> None:
    """A sweep stopped by SIGTERM or Ctrl+C: the summary of the jobs so far, and how to go on."""
    rows, _ = tables(sweep_dir)
    if not rows:
        return
    done = sum(row["status"] == "completed" for row in rows)
    log.warning(
        "the sweep stopped after %d completed job(s); run the same command again with "
        "hydra.sweep.dir=%s to run the others (a stopped job goes on from its last.ckpt)",
        done,
        sweep_dir,
    )


def summarize(sweep_dir: Path) -> list[dict[str, str]]:
    """One row per job folder under `sweep_dir`, in job order, a column per swept parameter."""
    from logitlab.results.aggregate import read_jobs

    rows = []
    for job in read_jobs(sweep_dir):
        overrides = OmegaConf.load(RunFolder(job.folder).hydra / "overrides.yaml")
        record = read_record(RunFolder(job.folder).job) or {"status": "unknown", "error": ""}
        metrics = read_record(RunFolder(job.folder).metrics)
        row = {"job": job.folder.name, **job.overrides, "overrides": " ".join(overrides)}
        row["status"] = record["status"]
        row["tags"] = ",".join(str(t) for t in metrics.get("tags", []) if isinstance(t, str))
        for key in ("val/acc_best", "test/acc", "test/loss"):
            value = metrics.get(key)
            row[key] = f"{value:.4f}" if isinstance(value, float) else ""
        row["wall_time_s"] = f"{record.get('wall_time_s', 0.0):.1f}"
        row["error"] = record.get("error", "")
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path, rows: list[dict[str, str]]) -> Path:
    """summary.csv at the sweep root, written atomically."""
    from logitlab.run.files import write_text

    buffer = io.StringIO()
    swept = [k for k in (rows[0] if rows else {}) if k not in (*COLUMNS, "error")]
    columns = ["job", *swept, *COLUMNS[1:], "error"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(sweep_dir / "summary.csv", buffer.getvalue())


def print_summary(rows: list[dict[str, str]], path: Path) -> None:
    """The summary as a rich table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"sweep summary ({path})", title_justify="left")
    for column in (*COLUMNS, "error"):
        table.add_column(column, overflow="fold", justify="right" if "/" in column else "left")
    for row in rows:
        style = {"completed": None, "pruned": "yellow"}.get(row["status"], "red")
        table.add_row(*(escape(row[c]) for c in (*COLUMNS, "error")), style=style)  # [x] as typed
    Console(width=None if Console().is_terminal else 160).print(table)


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write and print the sweep summary."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rows, path = tables(Path(config.hydra.sweep.dir))
        if not rows:
            return
        failed = sum(row["status"] not in ("completed", "pruned") for row in rows)
        if failed:
            log.error("%d of %d jobs failed; see %s", failed, len(rows), path)
            raise SystemExit(1)
