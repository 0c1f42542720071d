"""Mixup and cutmix (data.augment.mixup, cutmix, mix_prob): the mixed batch is the convex
combination (or the patchwork) its soft targets say; off, or never drawn, it changes nothing,
bit for bit; on, the heads learn with soft targets; what cannot work is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import cli
from logitlab.data.mixing import mix_batch
from logitlab.models.heads import hard_labels
from logitlab.train import train


def shares(soft: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each sample's own share of its mixed target (its class's probability)."""
    return soft[torch.arange(len(y)), y]


def test_mixup_of_table_rows_is_the_convex_combination_its_targets_say() -> None:
    x, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mixed, soft = mix_batch(x, y, 3, False, (0.4, 0.0), 1.0, seed=3)
    lam = shares(soft, y)[0]  # y[0] differs from y[-1], the sample it is mixed with
    assert torch.allclose(mixed, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))
    larger = torch.where(shares(soft, y) >= 0.5, y, y.roll(1))
    assert torch.equal(hard_labels(soft, "multiclass"), larger)
    again = mix_batch(x, y, 3, False, (0.4, 0.0), 1.0, seed=3)
    assert torch.equal(again[0], mixed)  # a seed of the step: the same draw


def test_cutmix_pastes_the_share_of_pixels_its_targets_say() -> None:
    x = torch.arange(4 * 16 * 16, dtype=torch.float32).reshape(4, 1, 16, 16)  # all distinct
    y = torch.tensor([0, 1, 0, 1])
    state = torch.get_rng_state()
    mixed, soft = mix_batch(x, y, 2, False, (0.0, 1.0), 1.0, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left as it was
    own = (mixed == x).float().mean(dim=(1, 2, 3))
    assert torch.equal((mixed == x) | (mixed == x.roll(1, 0)), torch.ones_like(mixed).bool())
    assert torch.allclose(own, shares(soft, y), atol=1e-6)  # torchvision's lam is the box's area
    _, binary = mix_batch(x, y, 2, True, (0.0, 1.0), 1.0, seed=5)
    assert torch.allclose(binary, soft[:, 1])  # the binary head: P(positive)


@pytest.mark.slow
def test_mixing_that_is_off_or_never_drawn_changes_nothing(make_cfg, tmp_path: Path) -> None:
    common = ["debug=limit", "data.augment.shift=1", "model.net.dropout=0.2"]  # other draws
    weights = []
    for name, extra in {
        "plain": [], "alpha0": ["data.augment.mixup=0", "data.augment.cutmix=0"],
        "never": ["data.augment.mixup=1", "data.augment.cutmix=1", "data.augment.mix_prob=0"],
    }.items():  # fmt: skip
        train(make_cfg(*common, *extra, run_dir=tmp_path / name))
        last = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)
        weights.append(last["state_dict"])
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        [
            "data.augment.mixup=0.2",
            "data.augment.cutmix=1.0",
            "data.augment.mix_prob=0.8",
            "loss.label_smoothing=0.1",
            "data.balance=class_weight",
        ],
        ["experiment=digits_binary", "data.augment.cutmix=1.0"],
        ["experiment=digits_binary", "loss=focal", "data.augment.mixup=0.4"],
        ["data=blobs", "data.augment.mixup=0.4"],
    ],
    ids=["multiclass-both", "binary-cutmix", "focal-mixup", "table-mixup"],
)
def test_the_heads_learn_from_mixed_batches(make_cfg, tmp_path, overrides) -> None:
    metrics = train(make_cfg(*overrides, "trainer.max_epochs=8", run_dir=tmp_path / "run"))
    assert metrics["test/acc"] > 0.9
    assert 0.5 < metrics["train/acc"] <= 1.0  # against the larger share's label


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.augment.mixup=0.2", "loss=nll"],
         "data.augment.mixup=0.2 trains on soft targets, which loss=nll cannot take (it takes "
         "class indices); use loss=cross_entropy"),
        (["data=blobs", "data.augment.cutmix=1"],
         "data.augment.cutmix=1.0 cuts patches out of images, and data=blobs is a table (input "
         "shape [2]); use data.augment.mixup for tables"),
        (["data.augment.mixup=-1"], "data.augment.mixup=-1.0 must be >= 0 (a Beta alpha; 0: off)"),
        (["data.augment.mixup=1", "data.augment.mix_prob=2"],
         "data.augment.mix_prob=2.0 must be in [0, 1]"),
    ],
)  # fmt: skip
def test_mixing_that_cannot_work_is_one_line(tmp_path, overrides, message) -> None:
    run = tmp_path / "run"
    result = cli("logitlab.train", *overrides, f"hydra.run.dir={run}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"logitlab: error: {message}"]
    assert not run.exists()
