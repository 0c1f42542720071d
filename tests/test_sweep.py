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
    assert best.trials == {"complete": len(completed), "fail": len(failed)}  # told as failed


PRUNE_ALL = (  # a pruner that stops every trial after its first epoch: val/acc never reaches 1.01
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
    "+hydra.sweeper.pruner.lower=1.01",
    "~hydra.sweeper.pruner.n_startup_trials",
    "~hydra.sweeper.pruner.n_warmup_steps",
)


@pytest.mark.slow
@pytest.mark.parametrize(("launcher", "trials"), [("basic", 2), ("local", 1)])
def test_a_pruned_trial_is_recorded_as_pruned(run_cli, tmp_path, launcher, trials) -> None:
    """In this process (the basic launcher) and in submitit's (the study through its storage)."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = tmp_path / "sweep"
    result = run_cli(
        "logitlab.train", "hparams_search=optuna_digits", f"hydra.sweeper.n_trials={trials}",
        "trainer.max_epochs=3", f"hydra.sweeper.storage={storage}", f"hydra/launcher={launcher}",
        *PRUNE_ALL, f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]  # pruning is not a failure
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["pruned"] * trials
    assert rows[0]["error"] == "Trial was pruned at epoch 0."
    study = optuna.load_study(study_name="optuna_digits", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * trials
    assert all(t.intermediate_values[0] < 1.01 for t in study.trials)  # val/acc of epoch 0
    assert not (sweep / "0" / "metrics.json").exists()


def test_a_pruner_for_jobs_in_other_processes_needs_a_storage(run_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "logitlab.train", "hparams_search=optuna_digits", "hydra.sweeper.n_trials=1",
        "debug=limit", "hydra/launcher=local", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 2  # before any job starts
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("logitlab: error: hydra.sweeper.pruner: this launcher runs the trials")
    assert not sweep.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.sweeper.sampler._target_=os.system",
         "hydra.sweeper.sampler._target_=os.system is not an Optuna sampler"),
        ("optimizer.lr=glob(*)",
         "optimizer.lr: an Optuna search takes interval(a, b), tag(log, interval(a, b)), "
         "choice(...) or range(...), not glob(*)"),
    ],
)  # fmt: skip
def test_a_bad_search_is_one_line(run_cli, tmp_path: Path, override: str, message: str) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "logitlab.train", "hparams_search=optuna_digits", override, f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"logitlab: error: {message}")
    assert not sweep.exists()


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep_and_writes_the_summary(run_cli, tmp_path) -> None:
    sweep = tmp_path / "submitit"
    result = run_cli(
        "logitlab.train",
        "-m",
        "hydra/launcher=local",
        "optimizer.lr=1e-3,1e-2",
        "debug=limit",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    for row in rows:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert float(row["test/acc"]) == pytest.approx(metrics["test/acc"], abs=5e-5)
