"""The heads: logits out, the notebook's forward bug fixed, losses that agree with each other."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from logitlab.errors import ConfigError
from logitlab.models import BinaryClassifier, MulticlassClassifier, build_mlp


def batch(n: int = 16, features: int = 8, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize(
    "model",
    [
        MulticlassClassifier(num_features=8, num_classes=3, hidden_sizes=[5]),
        BinaryClassifier(num_features=8, hidden_sizes=[5]),
    ],
    ids=["multiclass", "binary"],
)
def test_forward_goes_through_the_hidden_layer(model: nn.Module) -> None:
    # The notebook's forward fed `x` (not the hidden activation) to the last layer; here the
    # first layer's weights must receive gradient and change the output.
    x, y = batch(classes=2)
    loss = model.compute_loss(model(x), y)
    loss.backward()
    first = model.net[0]
    assert isinstance(first, nn.Linear) and first.in_features == 8 and first.out_features == 5
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    before = model(x).detach().clone()
    with torch.no_grad():
        first.weight.add_(0.5)
    assert not torch.allclose(before, model(x))


def test_output_shapes_are_raw_logits() -> None:
    x, _ = batch()
    multi = MulticlassClassifier(num_features=8, num_classes=3, hidden_sizes=[5])
    logits = multi(x)
    assert logits.shape == (16, 3)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(16))  # not softmax outputs
    binary = BinaryClassifier(num_features=8, hidden_sizes=[5])
    assert binary(x).shape == (16,)


def test_bce_and_bce_with_logits_give_the_same_loss() -> None:
    torch.manual_seed(0)
    a = BinaryClassifier(num_features=8, hidden_sizes=[5], loss="bce_with_logits").double()
    b = BinaryClassifier(num_features=8, hidden_sizes=[5], loss="bce").double()
    b.load_state_dict(a.state_dict())
    x, y = batch(classes=2)
    x = x.double()
    la, lb = a.compute_loss(a(x), y), b.compute_loss(b(x), y)
    assert abs(la.item() - lb.item()) < 1e-6
    assert la.item() > 0.1


def test_cross_entropy_and_nll_give_the_same_loss() -> None:
    torch.manual_seed(0)
    a = MulticlassClassifier(num_features=8, num_classes=3, hidden_sizes=[5]).double()
    b = MulticlassClassifier(num_features=8, num_classes=3, hidden_sizes=[5], loss="nll").double()
    b.load_state_dict(a.state_dict())
    x, y = batch()
    assert abs(a.compute_loss(a(x.double()), y) - b.compute_loss(b(x.double()), y)) < 1e-6


def test_predict_step_returns_probabilities_and_classes() -> None:
    x, _ = batch()
    multi = MulticlassClassifier(num_features=8, num_classes=3, hidden_sizes=[5]).eval()
    out = multi.predict_step((x,), 0)
    torch.testing.assert_close(out["probs"].sum(dim=1), torch.ones(16))
    assert torch.equal(out["preds"], multi(x).argmax(dim=1))
    binary = BinaryClassifier(num_features=8, hidden_sizes=[5]).eval()
    out = binary.predict_step(x, 0)
    logits = binary(x)
    torch.testing.assert_close(out["probs"][:, 1], torch.sigmoid(logits))
    assert torch.equal(out["preds"], (logits > 0).long())


def test_binary_accuracy_is_computed_from_probabilities_not_logits() -> None:
    # Logits in [0, 1] would be read as probabilities by torchmetrics; a logit of 0.4 means
    # p=0.599 (class 1), which thresholding the raw logit at 0.5 would call class 0.
    model = BinaryClassifier(num_features=1, hidden_sizes=[])
    with torch.no_grad():
        model.net[0].weight.fill_(1.0)
        model.net[0].bias.zero_()
    x = torch.tensor([[0.4], [0.3], [-0.2]])
    _, logits, _ = model.model_step((x, torch.tensor([1, 1, 0])))
    assert model.predict_classes(logits).tolist() == [1, 1, 0]
    model.train_stats.update(
        torch.tensor(0.1), model.predict_classes(logits), torch.tensor([1, 1, 0])
    )
    assert model.train_stats.compute()["acc"].item() == 1.0


def test_build_mlp_layers_and_bad_activation() -> None:
    net = build_mlp(4, [6, 5], 2, activation="gelu", dropout=0.2)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    with pytest.raises(ConfigError, match=r"model\.activation=.swish. is not known"):
        build_mlp(4, [6], 2, activation="swish")


def test_optimizer_comes_from_config_and_scheduler_is_optional() -> None:
    model = MulticlassClassifier(
        num_features=8,
        num_classes=3,
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2},
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].defaults["lr"] == 0.05
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    plain = MulticlassClassifier(num_features=8, num_classes=3).configure_optimizers()
    assert isinstance(plain, torch.optim.Adam)


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_stage_metric_equals_torchmetrics_mean_and_accuracy(task: str) -> None:
    from torchmetrics import MeanMetric
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

    from logitlab.metrics import LossAccuracy

    g = torch.Generator().manual_seed(3)
    ours, mean = LossAccuracy(), MeanMetric()
    accuracy = BinaryAccuracy() if task == "binary" else MulticlassAccuracy(5, average="micro")
    for size in (7, 64, 1, 33):  # uneven batches: the mean must weight by batch size
        loss = torch.rand((), generator=g) * 3
        targets = torch.randint(0, 2 if task == "binary" else 5, (size,), generator=g)
        preds = torch.randint(0, 2 if task == "binary" else 5, (size,), generator=g)
        ours.update(loss, preds, targets)
        mean.update(loss, weight=size)
        accuracy.update(preds, targets)
    computed = ours.compute()
    assert computed["loss"].item() == pytest.approx(mean.compute().item(), rel=1e-6)
    assert computed["acc"].item() == pytest.approx(accuracy.compute().item(), rel=1e-6)
    ours.reset()
    assert ours.count.item() == 0 and ours.loss_sum.item() == 0.0


def test_probabilities_are_float32_softmax_even_for_bf16_logits() -> None:
    model = MulticlassClassifier(num_features=4, num_classes=4, hidden_sizes=[5])
    logits = torch.tensor([[1e4, -1e4, 0.0, 1e4], [2.0, 2.0, 2.0, 2.0], [-1e4, -1e4, -3e3, 0.0]])
    probs = model.probabilities(logits)
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0, 0, 0.5], [0.25] * 4, [0, 0, 0, 1.0]]))
    assert model.predict_classes(logits).tolist() == [0, 0, 3]  # ties: the first class
    half = model.probabilities(torch.randn(8, 4).bfloat16())  # mixed precision
    assert half.dtype == torch.float32
    torch.testing.assert_close(half.sum(-1), torch.ones(8))
