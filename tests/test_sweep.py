"""Sweeps: every job in its own folder, a failing job recorded without stopping the others,
and a summary at the sweep root."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_grid_sweep_with_a_failing_job_summarises_all_four(run_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "logitlab.train",
        "-m",
        "model=binary",
        "data=digits,moons",
        "data.positive_classes=[1],[7]",  # moons has no class 7: job 3 fails
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 1  # the sweep reports that a job failed ...
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["status"] for r in rows] == ["completed", "completed", "completed", "failed"]
    assert rows[3]["overrides"].startswith("model=binary data=moons data.positive_classes=[7]")
    assert rows[3]["error"] == (
        "data.positive_classes has [7], absent from dataset 'moons' (its classes are [0, 1]); "
        "choose classes it has"
    )
    for row in rows[:3]:  # ... after the other three finished and recorded their metrics
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert float(row["test/acc"]) == pytest.approx(metrics["test/acc"], abs=5e-5)
        assert float(row["val/acc_best"]) > 0.5
        assert float(row["wall_time_s"]) > 0
    assert not (sweep / "3" / "metrics.json").exists()
    assert json.loads((sweep / "3" / "job.json").read_text())["status"] == "failed"
    assert "sweep summary" in result.stdout and "failed" in result.stdout
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]


@pytest.mark.slow
def test_optuna_search_records_failing_trials_and_goes_on(run_cli, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    sweep = tmp_path / "optuna"
    result = run_cli(
        "logitlab.train",
        "hparams_search=optuna_digits",
        "hydra.sweeper.n_trials=4",
        "loss=choice(cross_entropy,bce)",  # bce does not fit the multiclass head: those fail
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4
    failed = [r for r in rows if r["status"] == "failed"]
    completed = [r for r in rows if r["status"] == "completed"]
    assert failed and completed
    assert all("loss=bce" in r["overrides"] for r in failed)
    assert all(r["error"].startswith("loss=bce is a binary loss") for r in failed)
    assert result.returncode == 1
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(
        max(float(r["val/acc_best"]) for r in completed), abs=5e-5
    )
    assert best.best_params.loss == "cross_entropy"


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep_and_writes_the_summary(run_cli, tmp_path) -> None:
    sweep = tmp_path / "submitit"
    result = run_cli(
        "logitlab.train",
        "-m",
        "hydra/launcher=local",
        "optimizer.lr=1e-3,1e-2",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    for row in rows:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert float(row["test/acc"]) == pytest.approx(metrics["test/acc"], abs=5e-5)
