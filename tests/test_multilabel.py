"""model=multilabel: K sigmoids, its metrics against scikit-learn, its data, predict, calibrate."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_multilabel_classification
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, hamming_loss

from conftest import cli
from logitlab.uncertainty.thresholds import best_f1_threshold

BLOBS = {"n_samples": 1200, "n_features": 20, "n_classes": 5, "n_labels": 2}
TRAIN = ["model=multilabel", "data=multilabel_blobs", "data.source_kwargs.n_samples=1200",
         "trainer.max_epochs=12"]  # fmt: skip


def blobs() -> tuple[np.ndarray, np.ndarray]:
    """data=multilabel_blobs as scikit-learn makes it (the default seed, 42)."""
    return make_multilabel_classification(**BLOBS, allow_unlabeled=True, random_state=42)


def read(path: Path) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    rows = list(csv.DictReader(path.open()))
    names = [column[5:] for column in rows[0] if column.startswith("prob_")]
    return rows, names, np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])


def multi_hot(cells: list[str], names: list[str]) -> np.ndarray:
    return np.array([[n in c.split("|") for n in names] for c in cells], dtype=int)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("multilabel") / "run"
    result = cli("logitlab.train", *TRAIN, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def calibrated(run, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(run, tmp_path_factory.mktemp("calibrated") / "run"))
    result = cli("logitlab.calibrate", f"run_dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.slow
def test_multilabel_metrics_equal_scikit_learns_on_the_saved_probabilities(run, tmp_path) -> None:
    result = cli("logitlab.predict", f"run_dir={run}", f"output={tmp_path / 'p.csv'}")
    assert result.returncode == 0, result.stderr
    rows, names, probs = read(tmp_path / "p.csv")
    assert names == [f"label_{k}" for k in range(5)]
    truth = multi_hot([r["target"] for r in rows], names)
    _, y = blobs()
    assert (truth == y[[int(r["row"]) for r in rows]]).all()  # `row` is the dataset's row
    predicted = (probs > 0.5).astype(int)
    assert (multi_hot([r["labels"] for r in rows], names) == predicted).all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/f1_micro"] == pytest.approx(
        f1_score(truth, predicted, average="micro"), abs=1e-6
    )
    assert metrics["test/f1_macro"] == pytest.approx(
        f1_score(truth, predicted, average="macro"), abs=1e-6
    )
    assert metrics["test/hamming"] == pytest.approx(hamming_loss(truth, predicted), abs=1e-6)
    assert metrics["test/acc"] == pytest.approx(1 - hamming_loss(truth, predicted), abs=1e-6)
    assert metrics["test/subset_acc"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-6)
    ap = average_precision_score(truth, probs, average="macro")
    assert metrics["test/map"] == pytest.approx(ap, abs=1e-4)  # probabilities saved to 6 digits
    assert metrics["test/f1_micro"] > 0.7  # it learnt: chance is about 0.4 here
    # selective prediction over label decisions: confidence max(p, 1 - p), right at 0.5
    confidence = np.maximum(probs, 1 - probs).reshape(-1)
    right = (predicted == truth).reshape(-1)
    order = np.argsort(-confidence, kind="stable")
    risks = np.cumsum(~right[order]) / np.arange(1, len(order) + 1)
    assert metrics["test/aurc"] == pytest.approx(risks.mean(), abs=1e-4)


@pytest.mark.slow
def test_the_dashboards_show_each_label(run) -> None:
    from test_dashboards import tags, text

    assert {"test/reliability", "test/reliability_labels", "test/risk_coverage"} <= tags(
        run, "images"
    )
    table = text(run, "test/labels").splitlines()
    assert table[0] == "| label | precision | recall | F1 | AP |"
    assert [row.split("|")[1].strip() for row in table[2:]] == [f"label_{k}" for k in range(5)]
    f1 = np.mean([float(row.split("|")[4]) for row in table[2:]])
    macro = json.loads((run / "metrics.json").read_text())["test/f1_macro"]
    assert f1 == pytest.approx(macro, abs=1e-3)  # the table's F1s average to f1_macro


def f1_on_grid(p: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of `p > g` for every g of the grid at once: 2 TP / (2 TP + FP + FN)."""
    predicted = p[None, :] > grid[:, None]
    tp = (predicted & y[None, :]).sum(1)
    return 2 * tp / np.maximum(predicted.sum(1) + y.sum(), 1)


def test_the_threshold_maximises_f1_over_a_grid() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(300) < rng.uniform(0.1, 0.6)
        p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 300), 0, 1).round(2)  # ties included
        t = best_f1_threshold(p, y)
        best = f1_score(y, p > t)
        assert best >= f1_on_grid(p, y, np.linspace(0, 1, 1001)).max() - 1e-12
        assert not np.isclose(p, t).any()  # no sample sits on its threshold


@pytest.mark.slow
def test_calibrate_fits_platt_and_thresholds_per_label_on_val(calibrated, tmp_path) -> None:
    record = json.loads((calibrated / "calibration.json").read_text())
    assert record["method"] == "platt" and len(record["a"]) == len(record["thresholds"]) == 5
    x, y = blobs()
    val = np.load(calibrated / "splits.npz")["val"]
    np.save(tmp_path / "val.npy", x[val])
    result = cli("logitlab.predict", f"run_dir={calibrated}", f"input={tmp_path / 'val.npy'}",
                 f"output={tmp_path / 'val.csv'}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows, names, probs = read(tmp_path / "val.csv")
    assert {r["calibration"] for r in rows} == {"platt"}
    for k, threshold in enumerate(record["thresholds"]):  # each maximises its label's val F1
        chosen = f1_score(y[val, k], probs[:, k] > threshold)
        grid = max(
            f1_score(y[val, k], probs[:, k] > g, zero_division=0) for g in np.linspace(0, 1, 201)
        )
        assert chosen >= grid - 1e-3  # the CSV's probabilities are rounded to 6 digits
    picked = multi_hot([r["labels"] for r in rows], names)
    assert (picked == (probs > np.array(record["thresholds"]))).all()
    assert record["test/f1_macro_after"] > record["test/f1_macro_before"]
    evaluated = json.loads(
        (
            cli("logitlab.eval", f"run_dir={calibrated}") and calibrated / "eval_metrics.json"
        ).read_text()
    )
    assert evaluated["test/f1_macro_calibrated"] == pytest.approx(record["test/f1_macro_after"])


@pytest.mark.slow
def test_conformal_sets_are_refused_for_the_multilabel_head(run) -> None:
    result = cli("logitlab.calibrate", f"run_dir={run}", "method=conformal")
    assert result.returncode == 2 and not (run / "conformal.json").exists()
    assert result.stderr.strip() == (
        f"logitlab: error: method=conformal makes sets of one class per sample and does not fit "
        f"the multilabel head of {run}; calibrate it with method=platt (per-label thresholds)"
    )


def write_tables(folder: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 20, size=(300, 4))
    y = (x[:, :3] + rng.normal(0, 4, size=(300, 3)) > 10).astype(int)  # each label from a feature
    names = ["cat", "dog", "owl"]
    columns, sets = folder / "columns.csv", folder / "sets.csv"
    with columns.open("w") as a, sets.open("w") as b:
        a.write("f0,f1,f2,f3,cat,dog,owl\n")
        b.write("f0,tags,f1,f2,f3\n")
        for features, labels in zip(x, y, strict=True):
            cells = [f"{v:g}" for v in features]
            a.write(",".join(cells + [str(v) for v in labels]) + "\n")
            tags = "|".join(n for n, on in zip(names, labels, strict=True) if on)
            b.write(",".join([cells[0], tags, *cells[1:]]) + "\n")
    return columns, sets, y


def test_both_csv_forms_read_the_same_labels_and_the_split_keeps_label_rates(tmp_path) -> None:
    from logitlab.data.datamodule import ClassificationDataModule

    columns, sets, y = write_tables(tmp_path)
    built = []
    for path, target, separator in ((columns, ["cat", "dog", "owl"], None), (sets, "tags", "|")):
        dm = ClassificationDataModule(
            "csv", "multilabel", path=str(path), target=target, label_separator=separator,
            balance="pos_weight",
        )  # fmt: skip
        dm.setup()
        built.append(dm)
    for dm in built:
        assert dm.label_names() == ["cat", "dog", "owl"] and dm.num_classes == 3
        rows = {name: dm.sample_rows(name) for name in ("train", "val", "test")}
        for name, (_, labels) in dm.splits.items():
            assert (labels.numpy() == y[rows[name]]).all()
            assert np.abs(labels.float().mean(0).numpy() - y.mean(0)).max() < 0.08
        train = y[rows["train"]]
        expected = (len(train) - train.sum(0)) / train.sum(0)
        np.testing.assert_allclose(dm.pos_weight, expected)  # negatives / positives per label
    assert torch.equal(built[0].splits["train"][0], built[1].splits["train"][0])


def bad_table(tmp_path: Path) -> dict[str, Path]:
    columns, sets, _ = write_tables(tmp_path)
    bad = tmp_path / "bad.csv"
    lines = columns.read_text().splitlines()
    bad.write_text("\n".join([*lines[:2], lines[2].rsplit(",", 2)[0] + ",2,0", *lines[3:]]) + "\n")
    return {"bad": bad, "sets": sets, "columns": columns}


@pytest.mark.parametrize(
    ("file", "settings", "message"),
    [
        (
            "bad",
            {"task": "multilabel", "target": ["cat", "dog", "owl"]},
            "data.path={bad}: label column 'dog' holds '2' (line 3); a multilabel target column "
            "holds 0 or 1",
        ),
        (
            "sets",
            {
                "task": "multilabel",
                "target": "tags",
                "label_separator": "|",
                "class_names": ["cat", "dog"],
            },
            "data.path={sets}: line 2 names label 'owl', which is not one of data.class_names "
            "(cat, dog); add it there or fix the row",
        ),
        (
            "columns",
            {"task": "multiclass", "target": ["cat", "dog", "owl"]},
            "data=csv has 3 labels per sample; train it with model=multilabel",
        ),
    ],
    ids=["not-0-1", "unknown-label", "several-for-multiclass"],
)
def test_bad_multilabel_data_is_one_line(tmp_path, file, settings, message) -> None:
    from logitlab.data.datamodule import ClassificationDataModule
    from logitlab.errors import ConfigError

    files = bad_table(tmp_path)
    with pytest.raises(ConfigError) as error:
        ClassificationDataModule("csv", path=str(files[file]), **settings).setup()
    assert str(error.value) == message.format(**files)


def test_mixup_is_refused_for_the_multilabel_head() -> None:
    from logitlab.data.settings import check_settings
    from logitlab.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        check_settings({"source": "multilabel_blobs", "augment": {"mixup": 0.2}}, "multilabel")
    assert str(error.value) == (
        "data.augment.mixup and cutmix mix one class per sample and do not apply to "
        "model=multilabel; set them to 0"
    )


@pytest.mark.slow
def test_one_label_column_with_the_multilabel_head_is_one_line_and_writes_nothing(tmp_path) -> None:
    columns = bad_table(tmp_path)["columns"]
    run = tmp_path / "run"
    result = cli("logitlab.train", "model=multilabel", "data=csv", f"data.path={columns}",
                 "data.target=cat", f"hydra.run.dir={run}")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "logitlab: error: data=csv has one label per sample, and model=multilabel needs several: "
        "give 0/1 label columns (data.target=[a,b,c]) or a label-set column "
        "(data.label_separator), or use model=multiclass"
    )
    assert not run.exists()


def test_a_users_dataset_with_multi_hot_targets(monkeypatch) -> None:
    from logitlab.data.datamodule import ClassificationDataModule
    from logitlab.errors import ConfigError
    from my_data import TaggedDigits

    dm = ClassificationDataModule(
        "dataset", "multilabel", dataset={"_target_": "my_data.TaggedDigits"}
    )
    dm.setup()
    assert dm.label_names() == ["odd", "large", "triple"]  # the Dataset's `classes`
    tags = TaggedDigits().tags
    for name in ("train", "val", "test"):
        assert torch.equal(dm.splits[name][1], tags[dm.sample_rows(name)])
    monkeypatch.setattr(TaggedDigits, "__getitem__", lambda self, i: (self.x[i], [0.5, 1, 0]))
    with pytest.raises(ConfigError) as error:
        ClassificationDataModule(
            "dataset", "multilabel", dataset={"_target_": "my_data.TaggedDigits"}
        ).setup()
    assert str(error.value) == (
        "data.dataset: sample 0: a multilabel target [0.5, 1, 0]; each label is 0 (absent) or 1 "
        "(present)"
    )


@pytest.mark.slow
def test_export_refuses_the_multilabel_head_in_one_line(run) -> None:
    result = cli("logitlab.export", f"run_dir={run}")
    assert result.returncode == 2 and not (run / "export").exists()
    assert result.stderr.strip() == (
        f"logitlab: error: {run} trains the multilabel head, which export does not ship yet; "
        f"predict with python -m logitlab.predict run_dir={run}"
    )


def write_tagged_images(root: Path, n: int = 120) -> tuple[Path, np.ndarray]:
    """Digits as flat PNGs under root/images/ and root/labels.csv of their tags (odd, large)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (root / "images").mkdir(parents=True)
    tags = np.stack([digits.target[:n] % 2 == 1, digits.target[:n] >= 5], axis=1).astype(int)
    lines = ["file,labels"]
    for i in range(n):
        Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(
            root / "images" / f"{i:03d}.png"
        )
        lines.append(
            f"{i:03d}.png,"
            + "|".join(t for t, on in zip(("odd", "large"), tags[i], strict=True) if on)
        )
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root, tags


def test_an_image_folder_with_a_labels_file(tmp_path) -> None:
    from logitlab.data.datamodule import ClassificationDataModule
    from logitlab.errors import ConfigError

    root, tags = write_tagged_images(tmp_path)
    settings = {
        "root": str(root / "images"),
        "labels_file": str(root / "labels.csv"),
        "num_workers": 0,
    }
    dm = ClassificationDataModule("image_folder", "multilabel", loader="dataloader", **settings)
    dm.setup()
    assert dm.label_names() == ["large", "odd"] and dm.input_shape == (1, 8, 8)
    rows = dm.sample_rows("val")
    assert (dm.splits["val"][1].numpy() == tags[rows][:, ::-1]).all()  # sorted names: large, odd
    x, y = next(iter(dm.sample_batches("val")))
    assert x.shape == (len(rows), 1, 8, 8) and torch.equal(y, dm.splits["val"][1])
    (root / "labels.csv").write_text("file,labels\n000.png,odd\nmissing.png,large\n")
    with pytest.raises(ConfigError) as error:
        ClassificationDataModule("image_folder", "multilabel", **settings).setup()
    assert str(error.value) == (
        f"data.labels_file={root / 'labels.csv'}: line 3 names missing.png, which is not an image "
        f"file under data.root={root / 'images'}; fix the row or add the image"
    )
