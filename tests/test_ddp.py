"""DDP on 2 CPU processes (gloo): one folder per run or job, no second sweep folder, metrics
synced across ranks."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from conftest import ROOT, ZYGOTE
from logitlab.eval import evaluate

DDP = ["trainer=ddp_cpu", "trainer.max_epochs=2"]


def tree(root: Path) -> list[str]:
    """Every folder under `root` that holds a run (a .hydra/ or a metrics.json), relative."""
    found = {p.parent for p in root.rglob("metrics.json")} | {
        p.parent for p in root.rglob(".hydra")
    }
    return sorted(str(p.relative_to(root)) for p in found)


@pytest.mark.slow
def test_single_ddp_run_makes_one_folder_with_synced_metrics(run_cli, tmp_path: Path) -> None:
    result = run_cli("logitlab.train", *DDP, f"paths.output_root={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = tree(tmp_path)
    run_dir = tmp_path / run
    assert run.startswith("train/") and "multirun" not in run
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 logged into the same folder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The test accuracy both ranks agreed on (torchmetrics' sync over two disjoint shards)
    # equals one process evaluating the same checkpoint on the whole test split.
    single = evaluate(str(run_dir))
    assert abs(single["test/acc"] - metrics["test/acc"]) < 1e-6
    assert abs(single["test/loss"] - metrics["test/loss"]) < 1e-5


@pytest.mark.slow
def test_ddp_sweep_makes_one_sweep_folder_with_one_folder_per_job(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "logitlab.train", "-m", *DDP, "optimizer.lr=1e-3,1e-2", f"paths.output_root={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multirun").iterdir()
    rel = str(sweep.relative_to(tmp_path))
    assert tree(tmp_path) == [f"{rel}/0", f"{rel}/1"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    assert (
        "optimizer.lr=0.001" in rows[0]["overrides"] and "optimizer.lr=0.01" in rows[1]["overrides"]
    )
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["test/acc"] > 0.3
    assert result.stdout.count("sweep summary") == 1


@pytest.mark.slow
@pytest.mark.parametrize("task", [0, 1])
def test_under_srun_only_task_zero_writes_the_run_files(task: int, tmp_path: Path) -> None:
    """Tasks started as SLURM's srun starts them (SLURM_PROCID, no LOCAL_RANK): Lightning's rank
    (tests/slurm_task.py, run as a command)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE")}
    env.update(
        SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_PROCID=str(task),
        SLURM_LOCALID=str(task), SLURM_NODEID="0", SLURM_JOB_NAME="logitlab_ddp",
        PYTHONPATH=str(ROOT / "tests"),
    )  # fmt: skip
    forked = ZYGOTE.start("slurm_task", [str(tmp_path)], env)
    out, err = forked.communicate(timeout=300)
    assert forked.returncode == 0, err[-2000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"detected": True, "rank": task, "world": 2, "console": task == 0}
    assert (tmp_path / "job.json").is_file() == (task == 0)
