"""The DataModule: real digits, stratified seeded splits, train-only standardisation, task views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logitlab.data.datamodule import ClassificationDataModule
from logitlab.data.loaders import EpochOrder, TensorBatches
from logitlab.errors import ConfigError


def digits(task: str = "multiclass", **kwargs) -> ClassificationDataModule:
    dm = ClassificationDataModule(
        source="digits", task=task, num_features=64, num_classes=10, seed=7, **kwargs
    )
    dm.setup()
    return dm


def test_digits_splits_are_disjoint_stratified_and_complete() -> None:
    dm = digits()
    sizes = {name: len(index) for name, index in dm.split_index.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 270 and sizes["val"] == 270
    all_index = np.concatenate(list(dm.split_index.values()))
    assert len(np.unique(all_index)) == 1797
    for name in ("train", "val", "test"):
        counts = torch.bincount(dm.splits[name][1], minlength=10).float()
        share = counts / counts.sum()
        assert torch.all((share - 0.1).abs() < 0.01), name  # every class ~10% in every split


def test_splits_depend_only_on_the_seed() -> None:
    a, b = digits(), digits()
    for name in a.split_index:
        np.testing.assert_array_equal(a.split_index[name], b.split_index[name])
    other = ClassificationDataModule("digits", "multiclass", 10, seed=8)
    other.setup()
    assert not np.array_equal(other.split_index["test"], a.split_index["test"])


def test_standardisation_uses_training_statistics_only() -> None:
    dm = digits()  # 8x8 grayscale images: one mean and one std, of the training split
    train_x = dm.splits["train"][0]
    assert train_x.shape[1:] == (1, 8, 8) and dm.stats.mean.shape == dm.stats.std.shape == (1, 1, 1)
    assert train_x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert train_x.std().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.isfinite(train_x).all()
    from sklearn.datasets import load_digits

    raw = load_digits().images  # the statistics are those of the raw training split
    assert dm.stats.mean.item() == pytest.approx(raw[dm.split_index["train"]].mean(), rel=1e-5)
    assert dm.stats.std.item() == pytest.approx(raw[dm.split_index["train"]].std(ddof=1), rel=1e-4)


def test_tables_are_standardised_per_feature() -> None:
    dm = ClassificationDataModule("blobs", "multiclass", 3, num_features=4, seed=0)
    dm.setup()
    train_x = dm.splits["train"][0]
    assert dm.input_shape == (4,) and dm.stats.mean.shape == (4,)
    torch.testing.assert_close(train_x.mean(dim=0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_x.std(dim=0), torch.ones(4), atol=1e-5, rtol=0)


def test_binary_view_one_vs_rest() -> None:
    dm = digits("binary", positive_classes=[1, 3, 5, 7, 9])
    assert dm.num_classes == 2
    y = torch.cat([dm.splits[n][1] for n in ("train", "val", "test")])
    assert len(y) == 1797
    assert int(y.sum()) == 906  # odd digits in load_digits
    assert dm.label_names() == ["not 1,3,5,7,9", "1,3,5,7,9"]


def test_binary_view_keep_classes_three_vs_eight() -> None:
    dm = digits("binary", positive_classes=[8], keep_classes=[3, 8])
    y = torch.cat([dm.splits[n][1] for n in ("train", "val", "test")])
    assert len(y) == 183 + 174
    assert int(y.sum()) == 174


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"task": "binary", "positive_classes": [12]},
            "data.positive_classes has [12], absent from dataset 'digits'",
        ),
        (
            {"task": "binary", "positive_classes": []},
            "data.positive_classes is empty; the binary head needs the classes that count as 1",
        ),
        (
            {"task": "multiclass", "keep_classes": [3, 8]},
            "data.keep_classes applies to the binary head only",
        ),
        (
            {"task": "binary", "positive_classes": [3, 8], "keep_classes": [3, 8]},
            "must be a proper subset of data.keep_classes=[3, 8]",
        ),
        ({"task": "multiclass", "num_classes": 5}, "set data.num_classes=10"),
        ({"task": "multiclass", "num_features": 32}, "set data.num_features=64"),
        ({"task": "multiclass", "source": "digitz"}, "data.source='digitz' is not a known dataset"),
    ],
)
def test_bad_data_settings_get_one_clear_line(kwargs: dict, message: str) -> None:
    settings = {"source": "digits", "num_features": 64, "num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=None) as error:
        ClassificationDataModule(**settings).setup()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_tensor_batches_cover_every_sample_once_in_a_seeded_epoch_order() -> None:
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(10)
    batches = TensorBatches(x, y, batch_size=4, sampler=EpochOrder(10, shuffle=True, seed=3))
    assert len(batches) == 3
    first = torch.cat([b[1] for b in batches])
    assert sorted(first.tolist()) == list(range(10))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    torch.testing.assert_close(torch.cat([b[0][:, 0] for b in batches]), first.float())
    assert torch.equal(first, torch.cat([b[1] for b in batches]))  # same epoch, same order
    batches.sampler.set_epoch(1)
    assert not torch.equal(first, torch.cat([b[1] for b in batches]))
    ordered = TensorBatches(x, y, batch_size=4, sampler=EpochOrder(10))
    assert torch.equal(torch.cat([b[1] for b in ordered]), y)
