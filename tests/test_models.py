"""The heads: logits out, the notebook's forward bug fixed, losses that agree with each other."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from logitlab.errors import ConfigError
from logitlab.models.heads import BinaryClassifier, MulticlassClassifier
from logitlab.models.nets import MLP

BCE = {"name": "bce", "head": "binary", "input": "probs", "_target_": "torch.nn.BCELoss"}
NLL = {"name": "nll", "head": "multiclass", "input": "log_probs", "_target_": "torch.nn.NLLLoss"}


def multi(features: int = 8, classes: int = 3, hidden=(5,), **kwargs) -> MulticlassClassifier:
    """A multiclass head around a small MLP."""
    net = MLP(in_shape=[features], num_outputs=classes, hidden_sizes=hidden, dropout=0.0)
    return MulticlassClassifier(net=net, num_classes=classes, **kwargs)


def binary(features: int = 8, hidden=(5,), **kwargs) -> BinaryClassifier:
    """A binary head around a small MLP (one logit)."""
    net = MLP(in_shape=[features], num_outputs=1, hidden_sizes=hidden, dropout=0.0)
    return BinaryClassifier(net=net, **kwargs)


def batch(n: int = 16, features: int = 8, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize(
    "model",
    [
        multi(),
        binary(),
    ],
    ids=["multiclass", "binary"],
)
def test_forward_goes_through_the_hidden_layer(model: nn.Module) -> None:
    # The notebook's forward fed `x` (not the hidden activation) to the last layer; here the
    # first layer's weights must receive gradient and change the output.
    x, y = batch(classes=2)
    loss = model.compute_loss(model(x), y)
    loss.backward()
    first = model.net.layers[1]  # after the Flatten
    assert isinstance(first, nn.Linear) and first.in_features == 8 and first.out_features == 5
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    before = model(x).detach().clone()
    with torch.no_grad():
        first.weight.add_(0.5)
    assert not torch.allclose(before, model(x))


def test_output_shapes_are_raw_logits() -> None:
    x, _ = batch()
    logits = multi()(x)
    assert logits.shape == (16, 3)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(16))  # not softmax outputs
    assert binary()(x).shape == (16,)


def test_bce_and_bce_with_logits_give_the_same_loss() -> None:
    torch.manual_seed(0)
    a = binary().double()
    b = binary(loss=BCE).double()
    b.load_state_dict(a.state_dict())
    x, y = batch(classes=2)
    x = x.double()
    la, lb = a.compute_loss(a(x), y), b.compute_loss(b(x), y)
    assert abs(la.item() - lb.item()) < 1e-6
    assert la.item() > 0.1


def test_cross_entropy_and_nll_give_the_same_loss() -> None:
    torch.manual_seed(0)
    a = multi().double()
    b = multi(loss=NLL).double()
    b.load_state_dict(a.state_dict())
    x, y = batch()
    assert abs(a.compute_loss(a(x.double()), y) - b.compute_loss(b(x.double()), y)) < 1e-6


def test_predict_step_returns_probabilities_and_classes() -> None:
    x, _ = batch()
    head = multi().eval()
    out = head.predict_step((x,), 0)
    torch.testing.assert_close(out["probs"].sum(dim=1), torch.ones(16))
    assert torch.equal(out["preds"], head(x).argmax(dim=1))
    one = binary().eval()
    out = one.predict_step(x, 0)
    logits = one(x)
    torch.testing.assert_close(out["probs"][:, 1], torch.sigmoid(logits))
    assert torch.equal(out["preds"], (logits > 0).long())


def test_binary_accuracy_is_computed_from_probabilities_not_logits() -> None:
    # Logits in [0, 1] would be read as probabilities by torchmetrics; a logit of 0.4 means
    # p=0.599 (class 1), which thresholding the raw logit at 0.5 would call class 0.
    model = binary(features=1, hidden=())
    with torch.no_grad():
        model.net.layers[1].weight.fill_(1.0)
        model.net.layers[1].bias.zero_()
    x = torch.tensor([[0.4], [0.3], [-0.2]])
    _, logits, _ = model.model_step((x, torch.tensor([1, 1, 0])))
    assert model.predict_classes(logits).tolist() == [1, 1, 0]
    model.train_stats.update(
        torch.tensor(0.1), model.predict_classes(logits), torch.tensor([1, 1, 0])
    )
    assert model.train_stats.compute()["acc"].item() == 1.0


def test_mlp_layers_and_bad_activation() -> None:
    net = MLP([4], 2, hidden_sizes=[6, 5], activation="gelu", dropout=0.2)
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Flatten", "Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    with pytest.raises(ConfigError, match=r"model\.net\.activation=.swish. is not known"):
        MLP([4], 2, hidden_sizes=[6], activation="swish")


def test_a_loss_of_the_other_head_is_refused() -> None:
    with pytest.raises(ConfigError, match="loss=bce is a binary loss and does not fit model=multi"):
        multi(loss=BCE)


def test_optimizer_comes_from_config_and_scheduler_is_optional() -> None:
    model = multi(
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2},
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].defaults["lr"] == 0.05
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    plain = multi().configure_optimizers()
    assert isinstance(plain, torch.optim.Adam)


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_stage_metric_equals_torchmetrics_mean_and_accuracy(task: str) -> None:
    from torchmetrics import MeanMetric
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

    from logitlab.models.metrics import LossAccuracy

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
    model = multi(features=4, classes=4)
    logits = torch.tensor([[1e4, -1e4, 0.0, 1e4], [2.0, 2.0, 2.0, 2.0], [-1e4, -1e4, -3e3, 0.0]])
    probs = model.probabilities(logits)
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0, 0, 0.5], [0.25] * 4, [0, 0, 0, 1.0]]))
    assert model.predict_classes(logits).tolist() == [0, 0, 3]  # ties: the first class
    half = model.probabilities(torch.randn(8, 4).bfloat16())  # mixed precision
    assert half.dtype == torch.float32
    torch.testing.assert_close(half.sum(-1), torch.ones(8))
