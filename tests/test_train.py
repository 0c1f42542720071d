"""Real training runs on the bundled digits: accuracy, metrics.json, checkpoints, TB tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from logitlab.train import train

TAGS = {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"}


def scalar_tags(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar series in the event files under `log_dir`, by tag."""
    series: dict[str, list[float]] = {}
    for events in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            series.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return series


@pytest.mark.slow
def test_multiclass_head_learns_digits_and_records_everything(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    metrics = train(make_cfg("trainer.max_epochs=10", run_dir=run_dir))

    assert metrics["test/acc"] > 0.9  # chance is 0.1
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-9
    assert json.loads((run_dir / "metrics.json").read_text()) == pytest.approx(metrics)

    series = scalar_tags(run_dir / "tensorboard")
    assert set(series) >= TAGS
    assert len(series["val/acc"]) == 10
    assert series["train/loss"][-1] < series["train/loss"][0]
    assert max(series["val/acc"]) == pytest.approx(series["val/acc_best"][-1])
    assert series["test/acc"] == [pytest.approx(metrics["test/acc"])]

    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["hyper_parameters"]["loss"]["_target_"] == "torch.nn.CrossEntropyLoss"
    linear = [tuple(w.shape) for w in last["state_dict"].values() if w.ndim == 2]
    assert linear == [(128, 64), (64, 128), (10, 64)]  # the MLP of model/net=mlp, 64 pixels in
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    assert torch.load(best, weights_only=True)["state_dict"]["net.layers.1.weight"].shape == (
        128,
        64,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "floor"),
    [
        (["experiment=digits_binary"], 0.95),  # chance ~0.5
        (["experiment=digits_binary", "loss=bce"], 0.95),
        (["loss=nll"], 0.9),
        (["model=binary", "data.keep_classes=[3,8]", "data.positive_classes=[8]"], 0.9),
    ],
    ids=["binary-bce_with_logits", "binary-bce", "multiclass-nll", "binary-3-vs-8"],
)
def test_each_head_and_loss_learns(make_cfg, overrides: list[str], floor: float) -> None:
    metrics = train(make_cfg("trainer.max_epochs=8", *overrides))
    assert metrics["test/acc"] > floor


def test_fast_dev_run_tests_final_weights_without_checkpoints(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    metrics = train(make_cfg("debug=fdr", run_dir=run_dir))
    assert not list(run_dir.rglob("best-*.ckpt"))
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert set(json.loads((run_dir / "metrics.json").read_text())) >= {"test/acc", "test/loss"}


def test_without_checkpoint_callbacks_a_run_writes_no_checkpoint(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    metrics = train(make_cfg("callbacks=none", "debug=limit", run_dir=run_dir))
    assert not list(run_dir.rglob("*.ckpt"))  # not Lightning's own default one either
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] == pytest.approx(
        metrics["test/acc"]
    )


@pytest.mark.parametrize(
    ("overrides", "lightnings"),
    [
        (["callbacks=none"], set()),
        (["callbacks.progress_bar=null", "callbacks.model_summary=null"], {"Checkpoint"}),
        (["callbacks=none", "trainer.enable_progress_bar=true"], {"ProgressBar"}),  # asked for
    ],
    ids=["none", "bar-and-summary-dropped", "bar-asked-for"],
)
def test_a_dropped_callback_is_not_replaced_by_lightnings_own(
    make_cfg, overrides: list[str], lightnings: set[str]
) -> None:
    from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar

    from logitlab.run.callbacks import EpochLine
    from logitlab.train import build

    _, _, trainer = build(make_cfg(*overrides))
    kinds = {"Checkpoint": Checkpoint, "ProgressBar": ProgressBar, "ModelSummary": ModelSummary}
    present = {
        name for name, kind in kinds.items() if any(isinstance(c, kind) for c in trainer.callbacks)
    }
    assert present == lightnings
    lines = [c for c in trainer.callbacks if isinstance(c, EpochLine)]
    assert len(lines) == (0 if "ProgressBar" in present else 1)  # a line per epoch, no bar


def test_logger_none_still_writes_metrics(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    metrics = train(make_cfg("logger=none", "debug=limit", run_dir=run_dir))
    assert not (run_dir / "tensorboard").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] == pytest.approx(
        metrics["test/acc"]
    )


@pytest.mark.slow
def test_cli_run_folder_layout(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "cli"
    result = run_cli(
        "logitlab.train", "trainer.max_epochs=3", "optimizer=sgd", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "optimizer=sgd" in overrides
    assert "_target_: torch.optim.SGD" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert "final metrics written to" in (run_dir / "train.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= TAGS
    assert set(scalar_tags(run_dir / "tensorboard")) >= TAGS


@pytest.mark.parametrize("clip", [None, 0.01])
def test_gradient_clipping_clips_when_asked(make_cfg, tmp_path, clip) -> None:
    from logitlab.train import build

    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr=1.0",
        "optimizer.momentum=0.0",
        "optimizer.nesterov=false",
        "trainer.max_steps=1",
        "trainer.num_sanity_val_steps=0",
        "callbacks.early_stopping=null",  # one step: no validation to watch
        "callbacks.model_checkpoint=null",
        "test=false",
        f"trainer.gradient_clip_val={clip if clip else 'null'}",
        run_dir=tmp_path / str(clip),
    )
    datamodule, model, trainer = build(cfg)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer.fit(model, datamodule=datamodule)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = (after - before).norm().item()  # plain SGD, lr 1: the step is the gradient
    if clip:
        assert step == pytest.approx(clip, rel=1e-3)
    else:
        assert step > 10 * 0.01


@pytest.mark.slow
def test_a_tie_of_val_acc_goes_to_the_lower_val_loss(run_cli, tmp_path: Path) -> None:
    """breast_cancer's 86 val samples tie val/acc over several epochs: the best checkpoint is
    the tied epoch of lowest val/loss, not the first."""
    import csv

    run = tmp_path / "run"
    result = run_cli(
        "logitlab.train", "data=breast_cancer", "model=binary", "logger=csv",
        "trainer.max_epochs=8", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r["val/acc"]]
    epochs = {int(r["step"]): (float(r["val/acc"]), float(r["val/loss"])) for r in rows}
    top = max(acc for acc, _ in epochs.values())
    tied = [e for e, (acc, _) in epochs.items() if acc == top]
    assert len(tied) > 1  # the case this is about
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    chosen = int(best.name.split("-")[1].removeprefix("epoch"))
    assert chosen == min(tied, key=lambda e: epochs[e][1]) and chosen != tied[0]
    assert torch.load(best, weights_only=True)["epoch"] == chosen  # the weights of that epoch
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val/acc_best"] == pytest.approx(top)


@pytest.mark.parametrize("interval_s", [3600.0, 0.0], ids=["by-the-clock", "every-batch"])
def test_the_progress_bar_is_redrawn_by_the_clock_and_at_every_epochs_last_batch(
    make_cfg, tmp_path: Path, interval_s: float
) -> None:
    from lightning import seed_everything

    from logitlab.run.callbacks import ProgressBar
    from logitlab.train import build

    cfg = make_cfg("trainer.max_epochs=2", "test=false", run_dir=tmp_path / "run")
    cfg.callbacks.progress_bar.interval_s = interval_s
    seed_everything(cfg.seed)
    datamodule, model, trainer = build(cfg)
    bar = next(c for c in trainer.callbacks if isinstance(c, ProgressBar))
    drawn: list[tuple[int, int]] = []  # (epoch, batches done) at each redraw of the training bar
    make = bar.init_train_tqdm

    def recorded() -> Any:
        tqdm = make()
        refresh = tqdm.refresh

        def redraw(*args: Any, **kwargs: Any) -> Any:
            drawn.append((trainer.current_epoch, tqdm.n))
            return refresh(*args, **kwargs)

        tqdm.refresh = redraw
        return tqdm

    bar.init_train_tqdm = recorded
    trainer.fit(model, datamodule=datamodule)
    total = trainer.num_training_batches
    assert total > 10
    batches = sorted({point for point in drawn if point[1]})
    if interval_s:  # drawn at the sanity check's batches; within the hour only each epoch's last
        assert batches == [(0, total), (1, total)]
    else:
        assert batches == [(epoch, n) for epoch in (0, 1) for n in range(1, total + 1)]
