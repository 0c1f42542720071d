"""Your own data through config: a Dataset by `_target_` (split by logitlab, or the splits
given), a torchvision dataset named directly, a LightningDataModule; predictions that keep the
class names and the dataset's rows; the one-line refusals."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, ZYGOTE, cli, digest
from logitlab.errors import ConfigError
from my_data import DigitsImages, IrisRows

USER = {"PYTHONPATH": str(ROOT / "tests")}
SEARCH = f"hydra.searchpath=[file://{ROOT / 'tests' / 'user_conf'}]"
IRIS = ["setosa", "versicolor", "virginica"]
FAKE = (
    "data.dataset={_target_: torchvision.datasets.FakeData, size: 150, image_size: [3, 16, 16], "
    "num_classes: 3, transform: {_target_: torchvision.transforms.v2.Compose, transforms: "
    "[{_target_: torchvision.transforms.v2.ToImage}, {_target_: torchvision.transforms.v2.ToDtype,"
    " dtype: float32, scale: true}]}}"
)


def train(run: Path, *args: str) -> Path:
    result = cli("logitlab.train", *args, f"hydra.run.dir={run}", env=USER)
    assert result.returncode == 0, result.stderr[-2000:]
    return run


def predictions(run: Path, *args: str) -> list[dict[str, str]]:
    out = run.parent / f"{run.name}-predictions.csv"
    result = cli(
        "logitlab.predict", f"run_dir={run}", f"output={out}", "overwrite=true", *args, env=USER
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return list(csv.DictReader(out.open()))


def evaluated_as_trained(run: Path) -> float:
    """eval's test accuracy, which must equal the one recorded at the end of training."""
    result = cli("logitlab.eval", f"run_dir={run}", env=USER)
    assert result.returncode == 0, result.stderr[-2000:]
    recorded = json.loads((run / "metrics.json").read_text())["test/acc"]
    evaluated = json.loads((run / "eval_metrics.json").read_text())["test/acc"]
    assert evaluated == pytest.approx(recorded, abs=1e-6)
    return evaluated


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's Dataset of string labels, by a YAML of their own found through hydra.searchpath."""
    run = tmp_path_factory.mktemp("iris") / "run"
    return train(run, SEARCH, "data=iris_rows", "trainer.max_epochs=40")


@pytest.mark.slow
def test_a_users_dataset_trains_evaluates_predicts_and_calibrates(iris_run: Path) -> None:
    data = json.loads((iris_run / "data.json").read_text())
    assert data["class_names"] == IRIS and data["input_shape"] == [4]  # names from the labels
    assert data["fingerprint"]["label_counts"] == [50, 50, 50]
    assert evaluated_as_trained(iris_run) >= 0.8
    rows = predictions(iris_run)
    header = ["row", "pred", "pred_name", "target", *(f"prob_{n}" for n in IRIS)]
    assert list(rows[0]) == header
    truth = IrisRows().names
    assert [int(r["row"]) for r in rows] == np.load(iris_run / "splits.npz")["test"].tolist()
    assert all(IRIS[int(r["target"])] == truth[int(r["row"])] for r in rows)  # joined back
    assert all(r["pred_name"] == IRIS[int(r["pred"])] for r in rows)
    calibrated = cli("logitlab.calibrate", f"run_dir={iris_run}", env=USER)
    assert calibrated.returncode == 0, calibrated.stderr[-2000:]
    record = json.loads((iris_run / "calibration.json").read_text())
    assert record["method"] == "temperature" and record["temperature"] > 0
    assert {r["calibration"] for r in predictions(iris_run)} == {"temperature"}


@pytest.mark.slow
def test_a_csv_input_keeps_its_order_and_its_id_column(iris_run: Path, tmp_path: Path) -> None:
    iris = IrisRows()
    picked = [140, 3, 77, 12]
    table = tmp_path / "new.csv"
    lines = ["sample_id,a,b,c,d"] + [
        f"flower-{r}," + ",".join(f"{v:.6g}" for v in iris.x[r].tolist()) for r in picked
    ]
    table.write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "new.npy", iris.x[picked].numpy())
    with_ids = predictions(iris_run, f"input={table}", "id_column=sample_id")
    plain = predictions(iris_run, f"input={tmp_path / 'new.npy'}")
    assert list(with_ids[0])[:4] == ["row", "sample_id", "pred", "pred_name"]
    assert [r["sample_id"] for r in with_ids] == [f"flower-{r}" for r in picked]
    assert [r["row"] for r in with_ids] == ["0", "1", "2", "3"]  # the input's own order
    for ours, theirs in zip(with_ids, plain, strict=True):
        assert ours["pred"] == theirs["pred"]
        assert float(ours["prob_setosa"]) == pytest.approx(float(theirs["prob_setosa"]), abs=1e-5)
    missing = cli("logitlab.predict", f"run_dir={iris_run}", f"input={table}", "id_column=nope")
    assert missing.returncode == 2 and "id_column=nope: input=" in missing.stderr


@pytest.mark.slow
def test_a_downloaded_runs_dataset_target_is_gated(iris_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(iris_run, tmp_path / "downloaded"))
    config = run / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(config)
    cfg.data.dataset = {
        "_target_": "shutil.copyfile",
        "src": str(config),
        "dst": str(tmp_path / "x"),
    }
    OmegaConf.save(cfg, config)
    before = digest(run)
    result = cli("logitlab.eval", f"run_dir={run}", env=USER)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"logitlab: error: data.dataset._target_=shutil.copyfile in {config} is a function, not "
        "a class, so not a dataset"
    )
    assert not (tmp_path / "x").exists() and digest(run) == before


@pytest.mark.slow
def test_given_splits_keep_their_own_rows(tmp_path: Path) -> None:
    splits = [
        f"data.{p}={{_target_: my_data.IrisRows, part: {p}}}" for p in ("train", "val", "test")
    ]
    run = train(tmp_path / "run", "data=dataset", *splits, "trainer.max_epochs=40")
    data = json.loads((run / "data.json").read_text())
    assert data["fingerprint"]["samples"] == 150 and data["class_names"] == IRIS
    evaluated_as_trained(run)
    rows = predictions(run)
    test = IrisRows("test")
    assert [int(r["row"]) for r in rows] == list(range(len(test)))  # rows of the test dataset
    assert all(IRIS[int(r["target"])] == test.names[int(r["row"])] for r in rows)


@pytest.mark.slow
def test_a_torchvision_dataset_by_target_with_workers(tmp_path: Path) -> None:
    run = train(
        tmp_path / "run", "data=dataset", FAKE, "model/net=cnn", "data.num_workers=2",
        "trainer.max_epochs=2",
    )  # fmt: skip
    data = json.loads((run / "data.json").read_text())
    assert data["input_shape"] == [3, 16, 16] and data["class_names"] == ["0", "1", "2"]
    assert len(data["mean"]) == 3  # per channel, measured in one streaming pass
    evaluated_as_trained(run)
    assert len(predictions(run)) == len(np.load(run / "splits.npz")["test"])


@pytest.mark.slow
def test_a_users_datamodule_trains_evaluates_predicts_and_calibrates(tmp_path: Path) -> None:
    run = train(
        tmp_path / "run", "data=datamodule", "data.datamodule={_target_: my_data.DigitsDataModule}",
        "trainer.max_epochs=4",
    )  # fmt: skip
    assert json.loads((run / "data.json").read_text())["class_names"] == DigitsImages.classes
    assert evaluated_as_trained(run) > 0.5
    rows = predictions(run)
    truth = DigitsImages().targets[1497:]  # the DataModule's test split, in its order
    assert [int(r["target"]) for r in rows] == truth.tolist() and rows[0]["row"] == "0"
    assert all(r["pred_name"] == DigitsImages.classes[int(r["pred"])] for r in rows)
    assert cli("logitlab.calibrate", f"run_dir={run}", env=USER).returncode == 0
    binary = train(
        tmp_path / "binary", "data=datamodule", "model=binary", "data.positive_classes=[eight]",
        "data.datamodule={_target_: my_data.DigitsDataModule}", "trainer.max_epochs=2",
    )  # fmt: skip
    rows = predictions(binary)
    assert list(rows[0])[-2:] == ["prob_not eight", "prob_eight"]
    assert {r["target"] for r in rows} == {"0", "1"}
    assert sum(r["target"] == "1" for r in rows) == int((truth == 8).sum())


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [
        ("data=dataset", "data.dataset={_target_: my_data.IrisRows}"),
        ("data=datamodule", "data.datamodule={_target_: my_data.DigitsDataModule}"),
    ],
    ids=["dataset", "datamodule"],
)
def test_own_data_resumes_after_sigterm(tmp_path: Path, data: tuple[str, str]) -> None:
    run = tmp_path / "run"
    command = [*data, "trainer.max_epochs=400", f"hydra.run.dir={run}"]
    proc = ZYGOTE.start("logitlab.train", command, {**os.environ, **USER})
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "last.ckpt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    resumed = cli(
        "logitlab.train", f"resume={run}", "trainer.max_epochs=" + str(stopped + 3), env=USER
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == stopped + 2
    assert "test/acc" in json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.dataset={_target_: my_data.Unpaired}"], "a sample is a Tensor, not a pair (x, y)"),
        (["data.dataset={_target_: my_data.Ragged}"], "has shape (5,), the first sample (4,)"),
        (
            ["data.dataset={_target_: my_data.MultiHot}"],
            "has 3 labels per sample; train it with model=multilabel",
        ),
        (["data.dataset={_target_: my_data.Nope}"], "_target_=my_data.Nope cannot be imported"),
        (
            ["data.dataset={_target_: collections.OrderedDict}"],
            "built a OrderedDict, not a map-style torch.utils.data.Dataset",
        ),
        (
            ["data.dataset={_target_: torchvision.datasets.FakeData, size: 0}"],
            "data.dataset is empty (len 0)",
        ),
        (
            ["data.dataset={_target_: my_data.DigitsImages}", "data.num_classes=5"],
            "labels must lie in [0, 5)",
        ),
        (
            ["data=datamodule", "data.datamodule={_target_: my_data.IrisRows}"],
            "built a IrisRows, not a lightning.pytorch.LightningDataModule",
        ),
        (
            ["data=datamodule", "data.datamodule={_target_: my_data.NamelessDataModule}"],
            "NamelessDataModule names no classes; give it a `classes` list of class names",
        ),
    ],
)
def test_own_data_refusals(make_cfg, overrides: list[str], message: str) -> None:
    from logitlab.config.build import build_data

    if not overrides[0].startswith("data="):
        overrides = ["data=dataset", *overrides]
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as refused:
        dm = build_data(cfg, "multiclass")
        next(iter(dm.train_dataloader()))  # what a worker meets when training starts
    assert message in str(refused.value)


@pytest.mark.slow
def test_a_refused_dataset_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(
        "logitlab.train",
        "data=dataset",
        "data.dataset={_target_: my_data.Unpaired}",
        f"hydra.run.dir={run}",
        env=USER,
    )
    assert result.returncode == 2 and "source:" not in result.stdout
    assert result.stderr.strip().splitlines() == [
        "logitlab: error: data.dataset: sample 0: a sample is a Tensor, not a pair (x, y); "
        "return (x, y)"
    ]
    assert not run.exists()
    missing = cli("logitlab.train", "data=dataset", f"hydra.run.dir={run}")
    assert missing.returncode == 2 and "data=dataset needs data.dataset" in missing.stderr
    assert not run.exists()


def test_a_batch_read_at_once_equals_its_samples_read_one_by_one() -> None:
    """DataLoader batches of a user's Dataset (one `__getitems__` call a batch) hold its
    samples as default_collate stacks them: converted to float32, (H, W) images given their
    channel, labels gathered, standardised; a sample of another shape is refused by its row."""
    from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

    from logitlab.data.datasets import DatasetItems
    from logitlab.data.standardize import Standardization

    class Images(Dataset):
        def __init__(self, n: int, odd: int | None = None) -> None:
            self.x = torch.randint(
                0, 256, (n, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(n)
            )
            self.odd = odd

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            x = self.x[i].numpy()
            return (x[:4] if i == self.odd else x if i % 2 else x.astype(np.float64) / 255), i % 3

    first, second = Images(10), Images(9)  # other pixels; the second is the split: rows 10..18
    ids, labels = torch.arange(10, 19), torch.tensor([i % 3 for i in range(9)])
    mean, std = torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.25)
    items = DatasetItems(
        ConcatDataset([first, second]), ids, labels, (1, 5, 4), Standardization(mean, std)
    )
    order = [4, 0, 7, 1, 8, 2, 5, 3, 6]
    batches = list(DataLoader(items, 4, sampler=order, collate_fn=items.collate))
    assert [len(y) for _, y in batches] == [4, 4, 1]
    x = torch.cat([b[0] for b in batches])
    expected = default_collate([torch.as_tensor(second[i][0], dtype=torch.float32) for i in order])
    expected = torch.where(
        torch.tensor([i % 2 == 1 for i in order])[:, None, None], expected / 255, expected
    )
    assert x.dtype == torch.float32 and x.shape == (9, 1, 5, 4)
    torch.testing.assert_close(x, ((expected[:, None] - 0.5) / 0.25))
    assert torch.cat([b[1] for b in batches]).tolist() == [labels[i].item() for i in order]
    assert [items[i][0].shape for i in (0, 1)] == [torch.Size([1, 5, 4])] * 2

    ragged = DatasetItems(
        ConcatDataset([Images(6, odd=5)]), torch.arange(6), labels[:6], (1, 5, 4), None
    )
    with pytest.raises(
        ConfigError, match=r"sample 5 has shape \(1, 4, 4\), the first sample \(1, 5, 4\)"
    ):
        list(DataLoader(ragged, 3, collate_fn=ragged.collate))
