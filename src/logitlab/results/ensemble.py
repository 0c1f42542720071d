"""Fold ensembles: the models of a cross-validation sweep (or a list of runs) averaged on their
shared, held-out test split: the mean of their class probabilities, beside the folds' own
mean accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError
from logitlab.results.aggregate import read_jobs


def members(run_dir: str) -> dict[str, list[Path]]:
    """The run folders to ensemble, by configuration: a `cv=K` sweep's completed jobs, or the
    comma-separated run folders given."""
    if "," in run_dir:
        return {"runs": [Path(p) for p in run_dir.split(",") if p]}
    sweep = Path(run_dir)
    jobs = read_jobs(sweep)
    if not jobs or not any(job.overrides.get("data.fold") for job in jobs):
        raise ConfigError(
            f"run_dir={run_dir} is a sweep without folds; an ensemble is of a cross-validation "
            "sweep's fold models (cv=K or data.folds), or give run_dir=RUN_A,RUN_B,..."
        )
    groups: dict[str, list[Path]] = {}
    for job in jobs:
        if job.status == "completed":
            name = " ".join(f"{k}={v}" for k, v in job.configuration) or "all"
            groups.setdefault(name, []).append(job.folder)
    return groups


def test_probabilities(folder: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(probabilities, targets, rows) of a run's best checkpoint on its test split."""
    import torch

    from logitlab.run.restore import (
        build_from_run,
        find_checkpoint,
        load_checkpoint,
        load_run_config,
    )

    run, cfg = load_run_config(folder)
    path = find_checkpoint(run, "best")
    datamodule, model = build_from_run(cfg, run, load_checkpoint(path), path)
    probs, targets = [], []
    with torch.inference_mode():
        for x, y in datamodule.sample_batches("test"):
            probs.append(model.predict_step(x, 0)["probs"])
            targets.append(y)
    return torch.cat(probs).numpy(), torch.cat(targets).numpy(), datamodule.sample_rows("test")


def ensemble(folders: list[Path]) -> dict[str, Any]:
    """The ensemble's test accuracy and NLL, and the members' mean accuracy."""
    if len(folders) < 2:
        raise ConfigError(f"an ensemble needs two or more runs; got {len(folders)}")
    outputs = [test_probabilities(folder) for folder in folders]
    _, targets, rows = outputs[0]
    for folder, (_, y, r) in zip(folders[1:], outputs[1:], strict=True):
        if r != rows or not np.array_equal(y, targets):
            raise ConfigError(
                f"{folder} was tested on other samples than {folders[0]}; an ensemble's members "
                "share one test split"
            )
    mean = np.mean([p for p, _, _ in outputs], axis=0)
    accuracies = [float((p.argmax(axis=1) == targets).mean()) for p, _, _ in outputs]
    picked = np.clip(mean[np.arange(len(targets)), targets], 1e-12, 1.0)
    return {
        "ensemble/acc": float((mean.argmax(axis=1) == targets).mean()),
        "ensemble/nll": float(-np.log(picked).mean()),
        "members/acc_mean": float(np.mean(accuracies)),
        "members": len(folders),
    }
