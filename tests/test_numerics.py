"""The NumPy reference: parity with PyTorch, stability at extreme logits, the notebook's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from logitlab.models.heads import BinaryClassifier, MulticlassClassifier
from logitlab.notebook import numerics as nx

TOL = 1e-6


@st.composite
def logit_batches(draw, max_scale: float = 50.0):
    """(logits float64 [N, C], integer targets [N]) with varied shapes and scales."""
    n = draw(st.integers(1, 16))
    c = draw(st.integers(2, 12))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, max_scale]))
    unit = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    logits = draw(arrays(np.float64, (n, c), elements=unit)) * scale
    targets = draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return logits, targets


@settings(max_examples=60, deadline=None)
@given(logit_batches())
def test_softmax_and_log_softmax_match_torch(batch) -> None:
    logits, _ = batch
    t = torch.from_numpy(logits)
    np.testing.assert_allclose(nx.softmax(logits), torch.softmax(t, dim=-1).numpy(), atol=TOL)
    np.testing.assert_allclose(nx.log_softmax(logits), F.log_softmax(t, dim=-1).numpy(), atol=TOL)
    np.testing.assert_allclose(nx.softmax(logits).sum(axis=-1), 1.0, atol=TOL)


@settings(max_examples=60, deadline=None)
@given(logit_batches())
def test_cross_entropy_matches_cross_entropy_loss_and_nll(batch) -> None:
    logits, targets = batch
    t, y = torch.from_numpy(logits), torch.from_numpy(targets)
    ours = nx.cross_entropy(logits, targets)
    assert abs(ours - nn.CrossEntropyLoss()(t, y).item()) < TOL
    assert abs(ours - nn.NLLLoss()(F.log_softmax(t, dim=-1), y).item()) < TOL
    probs = nx.softmax(logits)
    onehot = nx.one_hot(targets, logits.shape[1])
    if probs.min() > 1e-12:  # the probability form needs probabilities it can take the log of
        assert abs(nx.cross_entropy_from_probs(probs, onehot) - ours) < TOL


@settings(max_examples=60, deadline=None)
@given(logit_batches())
def test_cross_entropy_gradient_matches_autograd(batch) -> None:
    logits, targets = batch
    t = torch.from_numpy(logits).requires_grad_(True)
    F.cross_entropy(t, torch.from_numpy(targets)).backward()
    np.testing.assert_allclose(nx.cross_entropy_grad(logits, targets), t.grad.numpy(), atol=TOL)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 32), elements=st.floats(-30, 30, allow_nan=False)),
    st.data(),
)
def test_sigmoid_and_both_bce_forms_match_torch(z: np.ndarray, data) -> None:
    y = data.draw(arrays(np.float64, z.shape, elements=st.sampled_from([0.0, 1.0])))
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    np.testing.assert_allclose(nx.sigmoid(z), torch.sigmoid(zt).numpy(), atol=TOL)
    with_logits = nn.BCEWithLogitsLoss()(zt, yt).item()
    assert abs(nx.binary_cross_entropy_with_logits(z, y) - with_logits) < TOL
    on_probs = nn.BCELoss()(torch.sigmoid(zt), yt).item()
    assert abs(nx.binary_cross_entropy(nx.sigmoid(z), y) - on_probs) < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite_and_correct(dtype) -> None:
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4 - 1, 1e4], [1000.0, 1001.0, 0.0]], dtype)
    targets = np.array([0, 2, 1])
    t = torch.from_numpy(logits.astype(np.float64))
    probs = nx.softmax(logits)
    assert probs.dtype == dtype and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, torch.softmax(t, -1).numpy(), atol=TOL)
    np.testing.assert_allclose(nx.log_softmax(logits), F.log_softmax(t, -1).numpy(), atol=1e-3)
    ce = nx.cross_entropy(logits, targets)
    assert np.isfinite(ce)
    assert abs(ce - F.cross_entropy(t, torch.from_numpy(targets)).item()) < 1e-3
    grad = nx.cross_entropy_grad(logits, targets)
    t.requires_grad_(True)
    F.cross_entropy(t, torch.from_numpy(targets)).backward()
    np.testing.assert_allclose(grad, t.grad.numpy(), atol=TOL)
    z = np.array([1e4, -1e4, 0.0], dtype)
    y = np.array([0.0, 0.0, 1.0])
    bce = nx.binary_cross_entropy_with_logits(z, y)
    assert bce.dtype == dtype
    assert abs(bce - (1e4 + 0.0 + np.log(2)) / 3) < 1e-3  # exact values: z, 0, log 2
    assert np.array_equal(nx.sigmoid(z), np.array([1.0, 0.0, 0.5], dtype))


def test_notebook_softmax_overflows_where_ours_does_not() -> None:
    assert np.isnan(nx.naive_softmax(np.array([1000.0, 1001.0]))).all()
    np.testing.assert_allclose(nx.softmax(np.array([1000.0, 1001.0])), [0.26894142, 0.73105858])


def test_notebook_numbers() -> None:
    np.testing.assert_allclose(
        nx.softmax(np.array([2.0, 1.0, 0.1])), [0.65900114, 0.24243297, 0.09856589], atol=1e-8
    )
    y = np.array([1, 0, 0])
    assert round(nx.notebook_cross_entropy(y, np.array([0.7, 0.2, 0.1])), 4) == 0.1189
    assert round(nx.notebook_cross_entropy(y, np.array([0.1, 0.3, 0.6])), 4) == 0.7675
    assert round(float(nx.cross_entropy_from_probs(np.array([0.7, 0.2, 0.1]), y)), 4) == 0.3567
    assert round(float(nx.cross_entropy(np.array([[2.0, 1.0, 0.1]]), [0])), 4) == 0.4170
    assert round(float(nx.cross_entropy(np.array([[0.5, 2.0, 0.3]]), [0])), 4) == 1.8406
    good = np.array([[0.1, 1.0, 2.1], [2.0, 1.0, 0.1], [2.0, 3.0, 0.1]])
    bad = np.array([[2.1, 1.0, 0.1], [0.0, 2.0, 0.1], [2.0, 1.0, 4.1]])
    assert round(float(nx.cross_entropy(good, [2, 0, 1])), 4) == 0.3846
    assert round(float(nx.cross_entropy(bad, [2, 0, 1])), 4) == 2.6299
    assert nx.predict(good).tolist() == [2, 0, 1]
    assert nx.predict(bad).tolist() == [0, 1, 2]


@pytest.mark.parametrize("loss", ["cross_entropy", "nll", "bce_with_logits", "bce"])
def test_the_heads_train_with_the_reference_mathematics(loss: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64)
    from omegaconf import OmegaConf

    from conftest import CONF
    from logitlab.models.nets import MLP

    spec = OmegaConf.to_container(OmegaConf.load(CONF / "loss" / f"{loss}.yaml"))  # as shipped
    if loss in ("cross_entropy", "nll"):
        net = MLP([6], 4, hidden_sizes=[8])
        model = MulticlassClassifier(net=net, num_classes=4, loss=spec)
        y = torch.randint(0, 4, (32,), generator=g)
    else:
        model = BinaryClassifier(net=MLP([6], 1, hidden_sizes=[8]), loss=spec)
        y = torch.randint(0, 2, (32,), generator=g)
    model = model.double()
    logits = model(x)
    computed = model.compute_loss(logits, y).item()
    z, t = logits.detach().numpy(), y.numpy()
    reference = {
        "cross_entropy": lambda: nx.cross_entropy(z, t),
        "nll": lambda: nx.cross_entropy(z, t),
        "bce_with_logits": lambda: nx.binary_cross_entropy_with_logits(z, t),
        "bce": lambda: nx.binary_cross_entropy(nx.sigmoid(z), t),
    }[loss]()
    assert abs(computed - reference) < TOL
    assert computed > 0.1
