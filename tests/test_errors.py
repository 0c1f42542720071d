"""Bad values are refused before anything is built; a diverging run stops at the step it
diverges, keeps its last good checkpoint and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import compose_train, digest
from logitlab.config.rules import check_config
from logitlab.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=0", "optimizer.lr=0.0 must be a positive number, e.g. optimizer.lr=1e-3"),
        (
            "optimizer.lr=-0.1",
            "optimizer.lr=-0.1 must be a positive number, e.g. optimizer.lr=1e-3",
        ),
        ("data.batch_size=0", "data.batch_size=0 must be positive, e.g. data.batch_size=64"),
        (
            "trainer.max_epochs=-2",
            "trainer.max_epochs=-2 must be >= 0 (-1, unbounded, needs trainer.max_steps)",
        ),
        (
            "model.net.hidden_sizes=[]",
            "model.net.hidden_sizes=[] must list positive layer widths, e.g. [128,64]",
        ),
        (
            "model.net.hidden_sizes=[64,0]",
            "model.net.hidden_sizes=[64, 0] must list positive layer widths, e.g. [128,64]",
        ),
        (
            "model.net.dropout=1.0",
            "model.net.dropout=1.0 must be in [0, 1), e.g. model.net.dropout=0.1",
        ),
        (
            "model.net.dropout=-0.1",
            "model.net.dropout=-0.1 must be in [0, 1), e.g. model.net.dropout=0.1",
        ),
        ("trainer.devices=0", "trainer.devices=0 must be a positive count, -1 (all), auto"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing, and the test would"),
        ("trainer.precision=abc", "trainer.precision=abc is not a precision Lightning knows"),
        ("trainer.precision=16-true", "trainer.precision=16-true on the CPU: float16 underflows"),
        (
            "trainer.accumulate_grad_batches=0",
            "trainer.accumulate_grad_batches=0 must be >= 1 (1: no accumulation)",
        ),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0 must be >= 1"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1.0 must be >= 0"),
        ("optimizer.betas=[2,0]", "optimizer.betas=[2.0, 0.0] must be two numbers in [0, 1)"),
        ("loss.label_smoothing=2", "loss.label_smoothing=2 must be in [0, 1]"),
        ("data.num_workers=-1", "data.num_workers=-1 must be >= 0 (0: load in the main process)"),
        ("run_name=" + "r" * 300, "run_name is 300 characters; it names a folder: keep it to 128"),
        ("data.class_names=[a,b,c]", "data.class_names has 3 names but data.num_classes=10"),
    ],
)
def test_values_out_of_range_are_refused(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        check_config(compose_train([override], tmp_path))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_unbounded_epochs_need_a_step_budget(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs=-1 must be >= 0 \(-1, unbounded"):
        check_config(compose_train(["trainer.max_epochs=-1"], tmp_path))
    check_config(compose_train(["trainer.max_epochs=-1", "trainer.max_steps=100"], tmp_path))


@pytest.mark.slow
def test_cli_range_error_is_one_line_and_builds_nothing(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("logitlab.train", "model.net.dropout=1.5", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "logitlab: error: model.net.dropout=1.5 must be in [0, 1), e.g. model.net.dropout=0.1"
    ]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_divergence_stops_at_its_step_and_keeps_the_last_good_checkpoint(run_cli, tmp_path):
    run_dir = tmp_path / "diverged"
    result = run_cli(
        "logitlab.train",
        "optimizer=sgd",
        "optimizer.lr=1e6",
        "callbacks.checkpoint_every_n_steps=1",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    step = metrics["diverged_at_step"]
    assert metrics["status"] == "diverged" and metrics["diverged_at_epoch"] == 0
    assert 0 < step < 20  # the first epoch has 20 steps; lr=1e6 blows up within a few
    assert line == f"logitlab: error: {metrics['error']}"
    assert line.startswith(f"logitlab: error: training diverged at step {step} (epoch 0): ")
    assert "lower optimizer.lr or set trainer.gradient_clip_val=1.0" in line
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == step  # the checkpoint of the last step that was still finite
    weights = [v for k, v in last["state_dict"].items() if k.startswith("net.")]
    assert weights and all(torch.isfinite(w).all() for w in weights)


@pytest.mark.slow
def test_gradient_clipping_is_one_override_away(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "clipped"
    result = run_cli(
        "logitlab.train",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.gradient_clip_val=0.5",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] > 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["model=foo"],
            "model=foo is not an option of 'model'; choose one of binary, multiclass, multilabel",
        ),
        (
            ["trainer.max_epoch=3"],
            "trainer.max_epoch is not a key of the config (python -m logitlab.train --cfg job "
            "lists them); did you mean trainer.max_epochs? or add a new key with "
            "+trainer.max_epoch=...",
        ),
        (
            ["trainer.zzzqq=3"],
            "trainer.zzzqq is not a key of the config (python -m logitlab.train --cfg job "
            "lists them); check the spelling, or add a new key with +trainer.zzzqq=...",
        ),
        (
            ["trainer.max_epochs=abc"],
            "trainer.max_epochs=abc: Value 'abc' of type 'str' could not be converted to Integer "
            "(full_key: trainer.max_epochs)",
        ),
        (
            ["optimizer=sgd", "optimizer.lr=abc"],
            "optimizer.lr=abc: Value 'abc' of type 'str' could not be converted to Float "
            "(full_key: optimizer.lr)",
        ),
        (
            ["data.batch_size=many"],
            "data.batch_size=many: Value 'many' of type 'str' could not be converted to Integer "
            "(full_key: data.batch_size)",
        ),
        (
            ["data.batch_size=[1"],
            "cannot parse an override (no viable alternative at input '[1'); check its brackets "
            "and quotes",
        ),
    ],
    ids=[
        "unknown-option",
        "unknown-key",
        "unknown-key-far-from-any",
        "wrong-type-trainer",
        "wrong-type-optimizer",
        "wrong-type-data",
        "syntax",
    ],
)
def test_hydra_mistakes_are_one_line_before_any_folder_exists(run_cli, tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = run_cli("logitlab.train", *args, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"logitlab: error: {message}"]
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_second_run_never_writes_into_an_existing_run_folder(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_cli("logitlab.train", "debug=limit", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    before = digest(run_dir)
    again = run_cli("logitlab.train", "debug=limit", f"hydra.run.dir={run_dir}")
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"logitlab: error: hydra.run.dir={run_dir} already holds a run; continue it with "
        f"resume={run_dir}, or give a new folder"
    )
    for args, message in (
        (["loss=bce"], "loss=bce is a binary loss and does not fit model=multiclass"),
        (["trainer.max_epochs=abc"], "could not be converted to Integer"),
    ):  # a config mistake is answered first, the folder untouched all the same
        again = run_cli("logitlab.train", *args, f"hydra.run.dir={run_dir}")
        assert again.returncode == 2
        assert len(again.stderr.strip().splitlines()) == 1 and message in again.stderr
    assert digest(run_dir) == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["+optimizer.fooo=1"],
            "optimizer.fooo is not an argument of torch.optim.Adam (it takes lr,",
        ),
        (["+model.net.widht=3"], "model.net.widht is not an argument of logitlab.models.nets.MLP"),
        (
            ["model=binary", "loss=focal", "+loss.gama=2"],
            "loss.gama is not an argument of torchvision.ops.sigmoid_focal_loss (it takes inputs,",
        ),
    ],
)
def test_a_key_its_target_does_not_take_is_one_line(overrides, message, tmp_path: Path) -> None:
    from logitlab.config.rules import check_runtime

    with pytest.raises(ConfigError) as error:
        check_runtime(compose_train(overrides, tmp_path))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    check_runtime(compose_train(["+optimizer.foreach=false"], tmp_path))  # a real argument
