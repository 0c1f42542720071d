"""The open template: networks from `model/net` (logitlab's and a user's own), images that keep
their shape, batch augmentation, losses and metrics from config."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, shifted_digits_mnist
from logitlab.data.augment import Augment
from logitlab.errors import ConfigError
from logitlab.eval import evaluate
from logitlab.models.nets import CNN, MLP, Linear, ResNet
from logitlab.train import build, train

USER = [f"hydra.searchpath=[file://{ROOT / 'tests' / 'user_conf'}]", "model/net=tiny_conv"]


@pytest.mark.parametrize(
    ("net", "in_shape"),
    [
        (MLP, (64,)),
        (MLP, (1, 8, 8)),
        (Linear, (13,)),
        (Linear, (3, 16, 16)),
        (CNN, (1, 8, 8)),
        (CNN, (3, 64, 64)),
        (CNN, (1, 28, 28)),
        (ResNet, (1, 28, 28)),
        (ResNet, (3, 8, 8)),
    ],
)
@pytest.mark.parametrize("num_outputs", [1, 10])
def test_every_network_maps_a_batch_to_raw_logits(net, in_shape, num_outputs) -> None:
    model = net(in_shape=list(in_shape), num_outputs=num_outputs).eval()
    with torch.no_grad():
        logits = model(torch.randn(5, *in_shape))
    assert logits.shape == (5, num_outputs)
    assert torch.isfinite(logits).all()


def test_an_image_network_refuses_a_table_in_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        CNN(in_shape=[64], num_outputs=10)
    assert str(error.value) == (
        "model/net=cnn takes images (C, H, W) but the data gives samples of shape (64,); use "
        "model/net=mlp or model/net=linear for tables"
    )


def test_resnet_loads_a_local_state_dict_read_weights_only(tmp_path: Path) -> None:
    source = ResNet(in_shape=[1, 28, 28], num_outputs=10)
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    loaded = ResNet(in_shape=[1, 28, 28], num_outputs=10, weights_path=str(path))
    pairs = zip(source.state_dict().items(), loaded.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name
    # another head width: every tensor but the last layer's is taken
    other = ResNet(in_shape=[1, 28, 28], num_outputs=3, weights_path=str(path))
    assert torch.equal(other.net.conv1.weight, source.net.conv1.weight)
    (tmp_path / "junk.pt").write_bytes(os.urandom(64))
    with pytest.raises(ConfigError, match=r"junk\.pt cannot be read as a state dict of tensors"):
        ResNet(in_shape=[1, 28, 28], num_outputs=10, weights_path=str(tmp_path / "junk.pt"))


def test_images_keep_their_shape_and_are_standardised_per_channel(make_cfg) -> None:
    datamodule, model, _ = build(make_cfg())
    assert datamodule.input_shape == (1, 8, 8)  # the digits are 8x8 grayscale images
    x, _ = datamodule.splits["train"]
    assert x.shape[1:] == (1, 8, 8)
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5)  # one mean and std per channel
    assert x.std().item() == pytest.approx(1.0, abs=1e-3)
    assert datamodule.stats.mean.shape == (1, 1, 1)
    assert model(x[:4]).shape == (4, 10)


def test_augmentation_is_seeded_shifts_flips_and_erases() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one lit pixel in the middle
    augment = Augment(shift=2, flip=True, erase=0.0)
    a, b = augment(x, seed=7), augment(x, seed=7)
    assert torch.equal(a, b)  # the same seed, the same draws: a resumed run repeats them
    assert not torch.equal(a, augment(x, seed=8))
    assert torch.equal(a.sum(dim=(1, 2, 3)), torch.ones(64))  # moved, never lost
    rows, cols = torch.nonzero(a[:, 0], as_tuple=True)[1:]
    assert set(rows.tolist()) <= {2, 3, 4, 5, 6} and set(cols.tolist()) <= {2, 3, 4, 5, 6}
    assert (
        len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10
    )  # shifts of their own per image
    erased = Augment(erase=1.0)(torch.ones(64, 3, 16, 16), seed=0)
    assert (erased == 0).any(dim=(1, 2, 3)).all()  # every image lost a rectangle ...
    assert ((erased == 0).float().mean(dim=(1, 2, 3)) <= 0.25).all()  # ... a small one
    with pytest.raises(ConfigError, match=r"data\.augment\.erase=2\.0 must be a probability"):
        Augment(erase=2.0)


def test_augmentation_touches_training_batches_only(make_cfg) -> None:
    datamodule, model, trainer = build(
        make_cfg("data.augment.shift=2", "trainer.max_epochs=1", "test=false")
    )
    seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}
    forward = model.forward

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen["train" if model.training else "val"].append(x.detach().clone())
        return forward(x)

    model.forward = spy
    trainer.fit(model, datamodule=datamodule)
    val_x, _ = datamodule.splits["val"]
    assert torch.equal(torch.cat(seen["val"][-1:]), val_x)  # validation as it is
    train_x, _ = datamodule.splits["train"]
    first = seen["train"][0]
    assert first.shape == (64, 1, 8, 8)
    # every training image is a shifted copy of some training image, not the image itself
    assert not any(torch.equal(first[i], row) for i in range(4) for row in train_x)


def test_class_weights_and_label_smoothing_reach_the_criterion(make_cfg, tmp_path) -> None:
    _, model, _ = build(
        make_cfg("data.balance=class_weight", "loss.label_smoothing=0.1", "data.keep_classes=null")
    )
    assert model.criterion.label_smoothing == 0.1
    weights = model.criterion.weight
    assert weights.shape == (10,) and weights.mean().item() == pytest.approx(1.0, abs=0.02)
    cfg = make_cfg("model=binary", "loss=bce", "data.balance=pos_weight", run_dir=tmp_path)
    with pytest.raises(ConfigError) as error:
        build(cfg)
    assert str(error.value) == (
        "data.balance=pos_weight sets the loss's pos_weight, which loss=bce does not take; use a "
        "loss with pos_weight or data.balance=null"
    )


def test_metrics_of_the_other_head_are_refused_before_anything_runs(run_cli, tmp_path) -> None:
    run = tmp_path / "run"
    result = run_cli("logitlab.train", "metrics=binary_extra", f"hydra.run.dir={run}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "logitlab: error: metrics.precision: BinaryPrecision is a binary metric and does not fit "
        "model=multiclass; use metrics=multiclass_extra or a multiclass torchmetrics class"
    )
    assert not (run / "checkpoints").exists()


@pytest.mark.slow
def test_configured_metrics_are_logged_per_stage(make_cfg) -> None:
    metrics = train(make_cfg("metrics=multiclass_extra", "trainer.max_epochs=3"))
    for stage in ("val", "test"):
        assert metrics[f"{stage}/acc"] <= metrics[f"{stage}/acc_top3"] <= 1.0
        assert 0.5 < metrics[f"{stage}/auroc"] <= 1.0


@pytest.mark.slow
def test_binary_head_takes_the_focal_loss(make_cfg) -> None:
    metrics = train(make_cfg("experiment=digits_binary", "loss=focal", "trainer.max_epochs=5"))
    assert metrics["test/acc"] > 0.9


@pytest.mark.slow
def test_cnn_learns_shifted_digits_the_mlp_finds_hard(make_cfg, tmp_path) -> None:
    shifted_digits_mnist(tmp_path / "data")
    common = [
        "experiment=mnist_multiclass", f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=64", "trainer.max_epochs=10",
    ]  # fmt: skip
    narrow = ["model/net=cnn", "model.net.channels=[16,32]", "model.net.hidden=64"]
    cnn = train(make_cfg(*common, *narrow, run_dir=tmp_path / "cnn"))
    assert cnn["test/acc"] >= 0.9  # the MLP: 0.87 with the same 10 epochs
    last = torch.load(tmp_path / "cnn" / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(weight.ndim == 4 for weight in last["state_dict"].values())  # convolutions


@pytest.mark.slow
def test_resnet_and_linear_run_on_images(make_cfg, tmp_path) -> None:
    shifted_digits_mnist(tmp_path / "data", n=200, n_test=40)
    common = [
        "experiment=mnist_multiclass", f"paths.data_dir={tmp_path / 'data'}",
        "trainer.max_epochs=1", "data.batch_size=64",
    ]  # fmt: skip
    cfg = make_cfg(*common, "model/net=resnet", run_dir=tmp_path / "resnet")
    resnet = train(cfg)
    saved = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    (tmp_path / "resnet" / ".hydra").mkdir()
    OmegaConf.save(saved, tmp_path / "resnet" / ".hydra" / "config.yaml")  # as Hydra saves it
    evaluated = evaluate(str(tmp_path / "resnet"))  # the checkpoint rebuilds the same network
    assert evaluated["test/acc"] == pytest.approx(resnet["test/acc"], abs=1e-6)
    last = torch.load(tmp_path / "resnet" / "checkpoints" / "last.ckpt", weights_only=True)
    assert sum(w.ndim == 4 for w in last["state_dict"].values()) == 20  # ResNet-18's convolutions
    linear = train(make_cfg(*common, "model/net=linear", "trainer.max_epochs=10",
                            run_dir=tmp_path / "linear"))  # fmt: skip
    assert linear["test/acc"] > 0.2  # softmax regression learns something


@pytest.mark.slow
def test_a_users_own_network_trains_evals_and_predicts(run_cli, tmp_path) -> None:
    env = {"PYTHONPATH": str(ROOT / "tests")}
    run = tmp_path / "mine"
    trained = run_cli(
        "logitlab.train", *USER, "trainer.max_epochs=8", f"hydra.run.dir={run}", env=env
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.5  # one conv layer on the 8x8 digits
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "_target_: my_nets.TinyConvNet" in config and "width: 16" in config
    evaluated = run_cli("logitlab.eval", f"run_dir={run}", env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((run / "eval_metrics.json").read_text())["test/acc"] == pytest.approx(
        metrics["test/acc"], abs=1e-6
    )
    predicted = run_cli("logitlab.predict", f"run_dir={run}", env=env)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    accuracy = sum(r["pred"] == r["target"] for r in rows) / len(rows)
    assert len(rows) == 270 and accuracy == pytest.approx(metrics["test/acc"], abs=1e-6)
    binary = run_cli(
        "logitlab.train", *USER, "model=binary", "loss=focal", "trainer.max_epochs=3",
        f"hydra.run.dir={tmp_path / 'binary'}", env=env,
    )  # fmt: skip
    assert binary.returncode == 0, binary.stderr[-2000:]
    assert json.loads((tmp_path / "binary" / "metrics.json").read_text())["test/acc"] > 0.85
    missing = run_cli("logitlab.train", *USER, f"hydra.run.dir={tmp_path / 'no_path'}")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        "logitlab: error: model.net._target_=my_nets.TinyConvNet cannot be imported; check the "
        "name and put its module on PYTHONPATH"
    )
