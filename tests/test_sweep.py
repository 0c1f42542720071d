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
        "trainer.enable_progress_bar=false",
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
