"""Real loaders on small data the tests write: MNIST-format IDX files through torchvision's own
classes, .npz files with bad labels or features, splits that are saved and reused."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DistributedSampler

from conftest import write_idx
from logitlab.data.datamodule import ClassificationDataModule
from logitlab.data.loaders import EpochOrder, TensorBatches
from logitlab.errors import ConfigError
from logitlab.train import train


def fake_mnist(root: Path, folder: str = "MNIST", n_train: int = 400, n_test: int = 100) -> Path:
    """28x28 images in which class k lights up a 4x4 square at its own place, plus noise."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, k in enumerate(labels):
            r, c = 4 + 6 * (k // 4), 4 + 6 * (k % 4)
            images[i, r : r + 4, c : c + 4] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return raw


def read_idx_images(path: Path) -> np.ndarray:
    """The uint8 images of an IDX file written by write_idx."""
    data = path.read_bytes()
    n, rows, cols = struct.unpack(">3I", data[4:16])
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, rows, cols).copy()


def mnist_module(data_dir: Path, **kwargs) -> ClassificationDataModule:
    settings = {"source": "mnist", "task": "multiclass", "num_features": 784, "num_classes": 10}
    settings.update(val_fraction=0.1, test_fraction=0.0, data_dir=str(data_dir), seed=0)
    return ClassificationDataModule(**{**settings, **kwargs})


def test_mnist_idx_files_load_through_torchvision(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    dm = mnist_module(tmp_path)
    dm.setup()
    assert {k: len(v) for k, v in dm.split_index.items()} == {"train": 360, "val": 40, "test": 100}
    x, y = dm.splits["test"]
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32  # images keep their shape
    assert torch.equal(y, torch.arange(100) % 10)  # the official test split, in file order


@pytest.mark.slow
def test_mnist_experiment_trains_from_idx_files_and_predicts_image_files(
    make_cfg, tmp_path: Path
) -> None:
    from torchvision.io import write_png

    from logitlab.predict import predict

    fake_mnist(tmp_path / "data")
    run = tmp_path / "run"
    cfg = make_cfg(
        "experiment=mnist_multiclass", f"paths.data_dir={tmp_path / 'data'}",
        "trainer.max_epochs=4", run_dir=run,
    )  # fmt: skip
    assert train(cfg)["test/acc"] > 0.9
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    (run / ".hydra").mkdir()
    OmegaConf.save(job, run / ".hydra" / "config.yaml", resolve=True)  # as a Hydra job saves it
    # the first five test images as PNG files, one resized to 56x56: predict reads the folder
    images = read_idx_images(tmp_path / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte")[:5]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        picture = torch.from_numpy(image)[None]
        if i == 4:
            picture = picture.repeat_interleave(2, 1).repeat_interleave(2, 2)  # 56x56
        write_png(picture, str(folder / f"digit_{i}.png"))
    (folder / "notes.txt").write_text("not an image")
    from_files = list(
        csv.DictReader(predict(str(run), input=str(folder), output=str(tmp_path / "p.csv")).open())
    )
    from_split = list(csv.DictReader(predict(str(run), output=str(tmp_path / "t.csv")).open()))
    assert [Path(r["path"]).name for r in from_files] == [f"digit_{i}.png" for i in range(5)]
    for ours, theirs in zip(from_files[:4], from_split[:4], strict=True):
        assert ours["pred"] == theirs["pred"]
        assert float(ours["prob_3"]) == pytest.approx(float(theirs["prob_3"]), abs=1e-5)
    assert from_files[4]["pred"] == from_split[4]["pred"]  # resized back to 28x28
    with pytest.raises(ConfigError, match=r"holds no \.png/\.jpg/\.jpeg/\.bmp files"):
        predict(str(run), input=str(tmp_path / "data"))


def test_fashion_mnist_and_kmnist_use_their_own_folders(tmp_path: Path) -> None:
    fake_mnist(tmp_path, "FashionMNIST")
    fake_mnist(tmp_path, "KMNIST", n_train=200, n_test=50)
    fashion = mnist_module(tmp_path, source="fashion_mnist")
    fashion.setup()
    kmnist = mnist_module(tmp_path, source="kmnist")
    kmnist.setup()
    assert len(fashion.splits["test"][1]) == 100 and len(kmnist.splits["test"][1]) == 50


def test_missing_dataset_offline_names_folder_files_and_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        mnist_module(tmp_path).setup()
    message = str(error.value)
    assert message.startswith(f"data=mnist: no MNIST files in {tmp_path / 'MNIST' / 'raw'}")
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "data.download=true" in message


@pytest.mark.parametrize("damage", ["truncate", "magic"])
def test_corrupt_idx_file_is_named(tmp_path: Path, damage: str) -> None:
    raw = fake_mnist(tmp_path)
    target = raw / "t10k-images-idx3-ubyte"
    data = target.read_bytes()
    target.write_bytes(
        data[: len(data) // 2] if damage == "truncate" else b"\x00\x00\x99\x07" + data[4:]
    )
    with pytest.raises(ConfigError) as error:
        mnist_module(tmp_path).setup()
    assert str(error.value) == (
        f"data=mnist: {target} is truncated or corrupt; delete it and fetch it again "
        "(data.download=true)"
    )


def npz_module(tmp_path: Path, x, y, **kwargs) -> ClassificationDataModule:
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.asarray(x), y=np.asarray(y))
    settings = {"source": "npz", "task": "multiclass", "num_features": 3, "num_classes": 4}
    settings["source_kwargs"] = {"path": str(path)}
    return ClassificationDataModule(**{**settings, **kwargs})


GOOD_X = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)
GOOD_Y = np.arange(80) % 4


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (
            GOOD_X,
            np.where(GOOD_Y == 3, 7, GOOD_Y),
            {},
            "data=npz, split 'all': labels must lie in [0, 4) (data.num_classes=4), found 7 "
            "(20 samples); fix the labels or set data.num_classes=8",
        ),
        (
            GOOD_X,
            np.where(GOOD_Y == 0, -1, GOOD_Y),
            {},
            "data=npz, split 'all': labels must lie in [0, 4) (data.num_classes=4), found -1 "
            "(20 samples); class indices start at 0; fix the labels",
        ),
        (
            GOOD_X,
            GOOD_Y + np.where(np.arange(80) < 2, 0.5, 0.0),
            {},
            "data=npz, split 'all': labels must be integer class indices, found 0.5, 1.5 "
            "(2 samples); map them to 0..3",
        ),
        (
            np.where(np.arange(240).reshape(80, 3) == 7, np.nan, GOOD_X),
            GOOD_Y,
            {},
            "data=npz, split 'all': 1 features are NaN or inf, e.g. x[2, 1]=nan; clean the data",
        ),
        (
            np.where(np.arange(240).reshape(80, 3) == 5, np.inf, GOOD_X),
            GOOD_Y,
            {},
            "data=npz, split 'all': 1 features are NaN or inf, e.g. x[1, 2]=inf; clean the data",
        ),
        (
            np.where(np.arange(240).reshape(80, 3) == 4, 1e39, GOOD_X.astype(np.float64)),
            GOOD_Y,
            {},
            "data=npz, split 'all': 1 features are beyond float32's range (about 3.4e38), e.g. "
            "x[1, 1]=1e+39; rescale the data",
        ),
        (
            GOOD_X[:0],
            GOOD_Y[:0],
            {},
            "data=npz, split 'all' is empty; check the data files or the split fractions",
        ),
        (
            GOOD_X,
            GOOD_Y,
            {"task": "binary", "positive_classes": [9]},
            "data.positive_classes has [9], absent from dataset 'npz' "
            "(its classes are [0, 1, 2, 3]); choose classes it has",
        ),
        (
            GOOD_X[:8],
            GOOD_Y[:8],
            {"val_fraction": 0.05, "test_fraction": 0.05},
            "data=npz: cannot split 8 samples with data.val_fraction=0.05 and "
            "data.test_fraction=0.05",
        ),
        (
            GOOD_X,
            GOOD_Y,
            {"val_fraction": 0.6, "test_fraction": 0.5},
            "data.val_fraction=0.6 and data.test_fraction=0.5 leave a split empty; each must be in "
            "(0, 1) and their sum below 1",
        ),
    ],
    ids=[
        "out-of-range",
        "negative",
        "float",
        "nan",
        "inf",
        "beyond-float32",
        "empty",
        "positive-absent",
        "split-too-small",
        "fractions",
    ],
)
def test_bad_labels_and_features_are_refused_at_setup(tmp_path, x, y, kwargs, message) -> None:
    with pytest.raises(ConfigError) as error:
        npz_module(tmp_path, x, y, **kwargs).setup()
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_whole_float_labels_are_accepted(tmp_path: Path) -> None:
    dm = npz_module(tmp_path, GOOD_X, GOOD_Y.astype(np.float64))
    dm.setup()
    assert dm.splits["train"][1].dtype == torch.int64


def test_tensor_path_and_dataloader_path_yield_identical_batches() -> None:
    fast = ClassificationDataModule("digits", "multiclass", 10, batch_size=100, seed=3)
    slow = ClassificationDataModule(
        "digits", "multiclass", 10, batch_size=100, seed=3, loader="dataloader"
    )
    fast.setup()
    slow.setup()
    for make in ("train_dataloader", "val_dataloader"):
        a, b = getattr(fast, make)(), getattr(slow, make)()
        assert isinstance(a, TensorBatches) and not isinstance(b, TensorBatches)
        for epoch in (0, 1):
            a.sampler.set_epoch(epoch)
            b.sampler.set_epoch(epoch)
            batches_a, batches_b = list(a), list(b)
            assert len(batches_a) == len(batches_b) == len(a)
            for (xa, ya), (xb, yb) in zip(batches_a, batches_b, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("shuffle", [False, True])
def test_ddp_shards_match_distributed_sampler(shuffle: bool) -> None:
    n, world = 103, 2
    order = EpochOrder(n, shuffle=shuffle, seed=5).indices()
    shards = []
    for rank in range(world):
        ours = EpochOrder(n, shuffle=shuffle, seed=5, rank=rank, world_size=world, pad=True)
        reference = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
        assert ours.indices().tolist() == [order[i].item() for i in reference]
        assert len(ours) == len(reference) == 52
        shards.append(set(ours.indices().tolist()))
    assert shards[0] | shards[1] == set(range(n))
    assert len(shards[0] & shards[1]) == 1  # the one padded sample, as DistributedSampler pads
    evals = [EpochOrder(n, rank=r, world_size=world).indices().tolist() for r in range(world)]
    assert sorted(evals[0] + evals[1]) == list(range(n))  # evaluation: no padding, no overlap


@pytest.mark.parametrize("pad", [False, True])
def test_one_process_order_is_distributed_samplers(pad: bool) -> None:
    # A resumed run (and one from an earlier version) sees the same order every epoch.
    ours = EpochOrder(1000, shuffle=True, seed=5, pad=pad)
    reference = DistributedSampler(range(1000), num_replicas=1, rank=0, shuffle=True, seed=5)
    for epoch in (0, 3):
        ours.set_epoch(epoch)
        reference.set_epoch(epoch)
        assert ours.indices().tolist() == list(reference)
        assert list(ours) == list(reference)


def test_pos_weight_balances_the_binary_view() -> None:
    dm = ClassificationDataModule(
        "digits", "binary", 10, positive_classes=[1], balance="pos_weight", seed=0
    )
    dm.setup()
    negatives, positives = torch.bincount(dm.splits["train"][1]).tolist()
    assert dm.pos_weight == pytest.approx(negatives / positives)
    assert 8.0 < dm.pos_weight < 10.0
    with pytest.raises(ConfigError, match=r"data\.balance=pos_weight is not available for the"):
        ClassificationDataModule("digits", "multiclass", 10, balance="pos_weight")


def test_balanced_binary_run_passes_pos_weight_to_the_loss(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = make_cfg("model=binary", "data.balance=pos_weight", "debug=limit", run_dir=run_dir)
    train(cfg)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert 8.0 < ckpt["hyper_parameters"]["loss"]["pos_weight"] < 10.0


def test_splits_are_saved_and_reused(make_cfg, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(make_cfg("debug=limit", run_dir=run_dir))
    saved = np.load(run_dir / "splits.npz")
    assert int(saved["n"]) == 1797
    again = ClassificationDataModule(
        "digits", "multiclass", 10, seed=999, splits_file=str(run_dir / "splits.npz")
    )
    again.setup()
    for name in ("train", "val", "test"):
        assert np.array_equal(again.split_index[name], saved[name])
    wrong = ClassificationDataModule(
        "moons", "multiclass", 2, splits_file=str(run_dir / "splits.npz")
    )
    with pytest.raises(ConfigError, match="indexes 1797 samples but the dataset has 2000"):
        wrong.setup()
