"""A researcher's day: the console, instant config errors, every Trainer option, derived sizes,
tags, a persistent Optuna study, early stopping that says so."""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, cli
from logitlab.errors import ConfigError


def test_the_trainer_schema_takes_every_trainer_argument(make_cfg) -> None:
    import lightning

    from logitlab.config.schemas import TRAINER_GIVEN, trainer_schema

    parameters = inspect.signature(lightning.pytorch.Trainer.__init__).parameters
    own = {
        name: p.default for name, p in parameters.items() if name not in ("self", *TRAINER_GIVEN)
    }
    schema = {f.name: f.default for f in dataclasses.fields(trainer_schema())}
    assert schema.pop("_target_") == "lightning.pytorch.Trainer"
    assert schema == own  # every argument, with Lightning's own default
    cfg = make_cfg("trainer.accumulate_grad_batches=4", "trainer.val_check_interval=0.5")
    assert (cfg.trainer.accumulate_grad_batches, cfg.trainer.val_check_interval) == (4, 0.5)
    from logitlab.config.compose import preflight

    with pytest.raises(ConfigError, match=r"trainer\.accumulate_grad_batch is not a key"):
        preflight(["trainer.accumulate_grad_batch=4"], str(ROOT / "conf"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=bce"], "loss=bce is a binary loss and does not fit model=multiclass"),
        (["-m", "optimizer.lr=0.01,-1"], "optimizer.lr=-1.0 must be a positive number"),
        (["data.batch_size=0"], "data.batch_size=0 must be positive"),
    ],
)
def test_config_mistakes_are_instant_import_no_torch_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "logitlab.train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "LOGITLAB_ROOT": str(tmp_path / "root")},
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1 and message in lines[0], lines
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "lightning" not in imported
    assert elapsed < 20  # about a second on a quiet machine; generous for a loaded one
    assert not (tmp_path / "root").exists()


def test_data_mistakes_are_answered_before_torch_is_imported(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n1,2,0\n3,4,1\n")
    cases = [
        (["logitlab.train", "data=csv", f"data.path={table}", "data.target=label"],
         f"data.path={table}, data.target=label: no column 'label' (the columns are a, b, y)"),
        (["logitlab.predict", f"run_dir={tmp_path}", f"input={tmp_path / 'gone.csv'}"],
         f"input={tmp_path / 'gone.csv'} does not exist; give a .npy or .csv feature matrix"),
    ]  # fmt: skip
    for args, message in cases:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", *args, f"hydra.run.dir={tmp_path / 'r'}"]
            if args[0] == "logitlab.train"
            else [sys.executable, "-X", "importtime", "-m", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
        assert len(lines) == 1 and lines[0].startswith(f"logitlab: error: {message}"), lines
        imported = {
            line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line
        }
        assert "torch" not in imported and "lightning" not in imported
    assert not (tmp_path / "r").exists()


def test_npz_sizes_come_from_the_data(make_cfg, tmp_path: Path) -> None:
    from logitlab.config.build import build

    path = tmp_path / "wine.npz"
    from sklearn.datasets import load_wine

    wine = load_wine()
    np.savez(path, x=wine.data.astype(np.float32), y=wine.target)
    cfg = make_cfg("data=npz", f"data.path={path}")
    datamodule, model = build(cfg)
    assert datamodule.dataset_num_classes == 3 and cfg.data.num_classes == 3
    assert datamodule.input_shape == (13,)
    assert model(torch.zeros(2, 13)).shape == (2, 3)  # 3 logits, not digits' 10
    with pytest.raises(ConfigError, match=r"data.num_classes=10 but data=npz has 3 classes"):
        build(make_cfg("data=npz", f"data.path={path}", "data.num_classes=10"))


@pytest.mark.slow
def test_a_run_prints_its_config_results_and_next_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli("logitlab.train", "debug=limit", "tags=[baseline,v2]", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    # the config tree: the groups chosen, then only what differs from their defaults
    assert "groups: data=digits model=multiclass model/net=mlp loss=cross_entropy" in out
    assert "debug=limit" in out and "tags: [baseline, v2]" in out
    assert "limit_train_batches: 4" in out  # set by debug=limit
    assert "source: digits" not in out and "hidden_sizes" not in out  # defaults left out
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"run folder: {run}" in out and f"{metrics['test/acc']:.4f}" in out
    assert f"python -m logitlab.eval run_dir={run}" in out
    assert f"python -m logitlab.predict run_dir={run}" in out
    assert f"make tensorboard LOGDIR={run} " in out  # `make tensorboard` serves outputs/ only
    assert metrics["tags"] == ["baseline", "v2"]
    full = cli("logitlab.train", "train=false", "extras.print_config=full",
               f"hydra.run.dir={tmp_path / 'full'}")  # fmt: skip
    assert "source: digits" in full.stdout and "hidden_sizes" in full.stdout  # all of it


@pytest.mark.slow
def test_a_sweep_prints_no_config_tree_and_its_summary_has_tags(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = cli(
        "logitlab.train", "-m", "train=false", "seed=1,2", "tags=[probe]",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "source: digits" not in result.stdout and "logitlab.eval run_dir" not in result.stdout
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["tags"] for row in rows] == ["probe", "probe"]


@pytest.mark.slow
def test_early_stopping_says_so_and_a_resume_needs_more_patience(tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    first = cli(
        "logitlab.train", "debug=limit", "trainer.max_epochs=8", "optimizer.lr=1e-12",
        "callbacks.early_stopping.patience=2", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run}",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    log = (run / "train.log").read_text()
    assert "early stopping: val/acc did not improve for 2 epochs (patience 2)" in log
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert stopped < 7
    # no progress bar: one line per epoch, each with the epoch's own train and val metrics
    lines = [line.split(" - ", 1)[1] for line in log.splitlines() if "] - epoch " in line]
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/8" for e in range(stopped + 1)]
    assert all("train/loss" in line and "val/acc" in line for line in lines)
    again = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=8")
    assert again.returncode == 2
    assert "early stopping ended this run after epoch" in again.stderr
    assert "callbacks.early_stopping.patience=" in again.stderr
    more = cli(
        "logitlab.train", f"resume={run}", "trainer.max_epochs=8",
        "callbacks.early_stopping.patience=20",
    )  # fmt: skip
    assert more.returncode == 0, more.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 7


@pytest.mark.slow
def test_an_optuna_study_in_sqlite_continues(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for launch in range(2):
        result = cli(
            "logitlab.train", "hparams_search=optuna_digits", "debug=limit",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=day",
            "hydra.sweeper.n_trials=1", "hydra.sweeper.pruner=null",
            f"hydra.sweep.dir={tmp_path / f'sweep{launch}'}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="day", storage=storage)
    assert len(study.trials) == 2  # the second launch went on with the same study
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_an_offline_download_names_the_real_cause(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets as tvd

    from logitlab.data.sources import load_torchvision

    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tvd.MNIST, "download", offline)
    with pytest.raises(ConfigError) as error:
        load_torchvision("mnist", data_dir=str(tmp_path), download=True)
    assert "data.download=true could not fetch MNIST" in str(error.value)
    assert "no network here?" in str(error.value) and "truncated" not in str(error.value)


@pytest.mark.slow
def test_lr_find_suggests_logs_the_curve_and_can_train_with_it(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "find"
    result = cli("logitlab.train", "lr_find=true", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads((run / "lr_find.json").read_text())
    assert 1e-8 <= found["suggestion"] <= 1.0 and len(found["lr"]) == len(found["loss"]) > 10
    assert f"lr_find: suggested optimizer.lr={found['suggestion']:.3g}" in result.stdout
    assert not (run / "metrics.json").exists()  # it found, and stopped
    images = []
    for events in (run / "tensorboard").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        images += accumulator.Tags()["images"]
    assert "lr_find/curve" in images

    applied = tmp_path / "apply"
    result = cli(
        "logitlab.train", "lr_find=true", "lr_find_apply=true", "trainer.max_epochs=2",
        f"hydra.run.dir={applied}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    applied_found = json.loads((applied / "lr_find.json").read_text())
    suggestion = applied_found["suggestion"]
    # two epochs are 40 steps of digits: the finder's 100 steps are not cut short by them
    assert applied_found["steps"] == found["steps"] > 40 and suggestion == found["suggestion"]
    assert applied_found["swept"][0] == pytest.approx(1e-8)
    state = torch.load(applied / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(suggestion)
    assert (applied / "metrics.json").is_file()
