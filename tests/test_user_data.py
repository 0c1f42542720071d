"""Your own data: CSV tables, scikit-learn's bundled tables and folders of images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shifted_digits, write_png_folder
from logitlab.data.datamodule import ClassificationDataModule
from logitlab.data.images import read_image
from logitlab.data.tables import read_feature_csv, read_labelled_csv
from logitlab.errors import ConfigError
from logitlab.predict import read_features


def breast_cancer_csv(path: Path, bom: bool = True) -> Path:
    """scikit-learn's breast-cancer table as a CSV with a header and string labels."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    lines = [",".join([*bunch.feature_names, "label"])]
    for x, y in zip(bunch.data, bunch.target, strict=True):
        lines.append(",".join([*(f"{v:.6g}" for v in x), str(bunch.target_names[y])]))
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- CSV tables ------------------------------------------------------------------------------


def test_csv_with_bom_header_and_string_labels(tmp_path: Path) -> None:
    table = read_labelled_csv(breast_cancer_csv(tmp_path / "bc.csv"), "label")
    assert table.x.shape == (569, 30)
    assert table.feature_names[0] == "mean radius"  # the byte-order mark is not in the name
    assert table.class_names == ["benign", "malignant"]  # sorted: indices 0 and 1
    assert np.bincount(table.y).tolist() == [357, 212]
    assert table.target_name == "label" and table.target_index == 30


def test_csv_target_by_index_and_numeric_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("3,0.5,1.5\n1,0.25,2.5\n2,1.0,3.5\n3,2.0,4.5\n")  # no header, labels 1..3
    table = read_labelled_csv(path, 0)
    assert table.class_names == ["1", "2", "3"]
    assert table.y.tolist() == [2, 0, 1, 2]
    assert table.x.tolist() == [[0.5, 1.5], [0.25, 2.5], [1.0, 3.5], [2.0, 4.5]]
    assert read_labelled_csv(path, -1).class_names == ["1.5", "2.5", "3.5", "4.5"]


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("a,b,label\n1,2,x\n3,4\n5,6,y\n", "label", "line 3 has 2 columns, the header 3"),
        ("a,colour,label\n1,red,x\n3,blue,y\n", "label", "column 'colour' holds 'red' (line 2)"),
        ("a,b,label\n1,2,x\n3,4,y\n", "kind", "no column 'kind' (the columns are a, b, label)"),
        ("a,b,label\n1,2,x\n3,4,x\n", "label", "the label column 'label' holds one class (x)"),
        ("", "label", "is empty; give a CSV with one sample per row"),
        ("a,b,label\n", "label", "has a header but no data rows"),
        ("1,2,x\n3,4,y\n", "label", "column 'label' named, but the file has no header row"),
        ("a,b,label\n1,2,\n3,4,y\n", "label", "the label column 'label' is empty on line 2"),
        ("a,b,label\n1,2,x\n3,4,y\n", 5, "column index 5 is out of range for 3 columns"),
    ],
)
def test_bad_csv_is_refused_in_one_line(
    tmp_path: Path, text: str, target: object, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        read_labelled_csv(path, target)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_predict_csv_takes_the_training_columns(tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    path.write_text("\ufefflabel,b,a\nx,2,1\ny,4,3\n")  # other order, label column present
    assert read_feature_csv(path, ["a", "b"]).tolist() == [[1, 2], [3, 4]]
    bare = tmp_path / "bare.csv"
    bare.write_text("1,2,x\n3,4,y\n")  # no header: the label column (index 2) is dropped
    target = {"target_index": 2}
    assert read_feature_csv(bare, ["a", "b"], target).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(ConfigError, match="lacks the training column\\(s\\) c"):
        read_feature_csv(path, ["a", "c"])


def test_predict_reads_every_row_of_a_bom_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("\ufeff1,2\n3,4\n5,6\n", encoding="utf-8")
    assert read_features(path).tolist() == [[1, 2], [3, 4], [5, 6]]


# --- scikit-learn's bundled tables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "shape", "classes", "first_name"),
    [
        ("breast_cancer", (30,), 2, "malignant"),
        ("wine", (13,), 3, "class_0"),
        ("iris", (4,), 3, "setosa"),
    ],
)
def test_bundled_tables(source: str, shape: tuple, classes: int, first_name: str) -> None:
    dm = ClassificationDataModule(source, "multiclass", None)
    dm.setup()
    assert dm.input_shape == shape
    assert dm.dataset_num_classes == classes
    assert dm.label_names()[0] == first_name
    total = sum(len(y) for _, y in dm.splits.values())
    assert total == {"breast_cancer": 569, "wine": 178, "iris": 150}[source]


def test_positive_class_by_name() -> None:
    dm = ClassificationDataModule("breast_cancer", "binary", 2, positive_classes=["malignant"])
    dm.setup()
    assert dm.label_names() == ["not malignant", "malignant"]
    assert sum(int(y.sum()) for _, y in dm.splits.values()) == 212  # the malignant tumours
    with pytest.raises(ConfigError, match=r"names class 'tumour'.*malignant, benign"):
        ClassificationDataModule("breast_cancer", "binary", 2, positive_classes=["tumour"]).setup()


# --- image folders ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,500 shifted 28x28 digit PNGs in one folder per class."""
    images, labels = shifted_digits(2500, seed=1)
    return write_png_folder(tmp_path_factory.mktemp("pngs") / "digits", images, labels)


@pytest.fixture
def small_pngs(tmp_path: Path) -> Path:
    images, labels = shifted_digits(120, seed=2)
    return write_png_folder(tmp_path / "small", images, labels % 3, ["a", "b", "c"])


def test_image_folder_split_shape_and_statistics(small_pngs: Path) -> None:
    dm = ClassificationDataModule(
        source="image_folder", root=str(small_pngs), task="multiclass", num_workers=0
    )
    dm.setup()
    assert dm.class_names == ["a", "b", "c"] and dm.dataset_num_classes == 3
    assert dm.input_shape == (1, 28, 28)  # from the images: grayscale 28x28
    sizes = {name: len(y) for name, (_, y) in dm.splits.items()}
    assert sum(sizes.values()) == 120 and sizes["val"] == 18 and sizes["test"] == 18
    train_files = dm.sample_names("train")
    pixels = np.stack([np.asarray(read_image(f, 1), dtype=np.float64) / 255 for f in train_files])
    assert dm.stats.mean.flatten().item() == pytest.approx(pixels.mean(), abs=1e-5)
    assert dm.stats.std.flatten().item() == pytest.approx(pixels.std(), abs=1e-5)
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (18, 1, 28, 28) and x.dtype == torch.float32
    labels = [{"a": 0, "b": 1, "c": 2}[Path(f).parent.name] for f in dm.sample_names("test")]
    assert y.tolist() == labels


def test_image_folder_own_splits_and_rgb(tmp_path: Path) -> None:
    images, labels = shifted_digits(90, seed=3)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    rgb[..., 0] = 255 - rgb[..., 0]  # a colour image: the channels differ
    for part, index in (("train", slice(0, 60)), ("val", slice(60, 75)), ("test", slice(75, 90))):
        write_png_folder(tmp_path / "root" / part, rgb[index], labels[index] % 2, ["no", "yes"])
    dm = ClassificationDataModule(
        source="image_folder", root=str(tmp_path / "root"), task="multiclass", num_workers=0
    )
    dm.setup()
    assert dm.input_shape == (3, 28, 28)
    assert {n: len(y) for n, (_, y) in dm.splits.items()} == {"train": 60, "val": 15, "test": 15}
    assert all("/test/" in f for f in dm.sample_names("test"))
    assert dm.stats.mean.flatten()[0] > 0.5 > dm.stats.mean.flatten()[1]  # inverted red is bright


def test_image_folder_resizes_mixed_sizes_when_asked(small_pngs: Path) -> None:
    from PIL import Image

    Image.new("L", (40, 36), color=200).save(small_pngs / "a" / "big.png")
    with pytest.raises(ConfigError, match=r"mixes image sizes .* set data.image_size"):
        ClassificationDataModule(
            source="image_folder", root=str(small_pngs), task="multiclass", num_workers=0
        ).setup()
    dm = ClassificationDataModule(
        source="image_folder",
        root=str(small_pngs),
        task="multiclass",
        num_workers=0,
        image_size=[16, 16],
    )
    dm.setup()
    assert dm.input_shape == (1, 16, 16)
    assert next(iter(dm.train_dataloader()))[0].shape[1:] == (1, 16, 16)


def test_image_folder_extra_transform_from_config(small_pngs: Path, make_cfg) -> None:
    from logitlab.config.build import build

    cfg = make_cfg(
        "data=image_folder",
        f"data.root={small_pngs}",
        "data.num_workers=0",
        "+data.transforms.extra=[{_target_: torchvision.transforms.v2.RandomInvert, p: 1.0}]",
    )
    dm, _ = build(cfg)
    mean, std = dm.stats.mean.flatten().item(), dm.stats.std.flatten().item()
    trained, _ = dm.train_dataloader().dataset[0]  # the first training image, augmented
    seen = next(dm.sample_batches("train"))[0][0]  # the same image as evaluation sees it
    # the training image is the inverted one: pixel p becomes 1 - p before normalising
    assert torch.allclose(trained * std + mean, 1 - (seen * std + mean), atol=1e-5)


def test_an_extra_transforms_dtype_is_named_by_its_string(small_pngs: Path, make_cfg) -> None:
    from logitlab.config.build import build_data

    extra = (
        "+data.transforms.extra=[{_target_: torchvision.transforms.v2.ToDtype, dtype: float32, "
        "scale: true}]"
    )
    cfg = make_cfg("data=image_folder", f"data.root={small_pngs}", extra)
    dm = build_data(cfg, "multiclass")
    trained, _ = dm.train_dataloader().dataset[0]  # scaled by the extra ToDtype, then normalised
    seen = next(dm.sample_batches("train"))[0][0]
    assert trained.dtype == torch.float32 and torch.allclose(trained, seen, atol=1e-6)
    bad = make_cfg(
        "data=image_folder", f"data.root={small_pngs}", extra.replace("float32", "float33")
    )
    with pytest.raises(
        ConfigError, match=r"data.transforms.extra\[0\].dtype=float33 is not a torch dtype"
    ):
        build_data(bad, "multiclass")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("empty_class", "class folder {root}/c holds no .png/.jpg/.jpeg/.bmp images"),
        ("one_class", "has one class folder (a); a classifier needs at least two"),
        ("loose_images", "has no class subfolders (it holds images)"),
        ("train_only", "has train/ but no test/ folder"),
        ("not_an_image", "{root}/a/fake.png is not a readable image"),
    ],
)
def test_bad_image_folders_are_refused(small_pngs: Path, damage: str, message: str) -> None:
    import shutil

    root = small_pngs
    if damage == "empty_class":
        for file in (root / "c").iterdir():
            file.unlink()
    elif damage in ("one_class", "loose_images"):
        shutil.rmtree(root / "b")
        shutil.rmtree(root / "c")
        if damage == "loose_images":
            for file in (root / "a").iterdir():
                file.rename(root / file.name)
            (root / "a").rmdir()
    elif damage == "train_only":
        (root / "train").mkdir()
        for name in ("a", "b", "c"):
            (root / name).rename(root / "train" / name)
    elif damage == "not_an_image":
        (root / "a" / "fake.png").write_text("not a png")
    with pytest.raises(ConfigError) as error:
        ClassificationDataModule(
            source="image_folder", root=str(root), task="multiclass", num_workers=0
        ).setup()
    assert message.format(root=root) in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_truncated_image_in_a_worker_is_one_line(small_pngs: Path, run_cli, tmp_path) -> None:
    victim = sorted((small_pngs / "b").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])  # the header survives, the pixels do not
    result = run_cli(
        "logitlab.train",
        "data=image_folder",
        f"data.root={small_pngs}",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"logitlab: error: {victim} is not a readable image (image file is truncated); "
        "replace or delete the file"
    ]


@pytest.mark.slow
def test_image_folder_cnn_trains_and_predicts_files(
    digit_pngs: Path, run_cli, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "logitlab.train",
        "data=image_folder",
        f"data.root={digit_pngs}",
        "model/net=cnn",
        "model.net.channels=[16,32]",
        "model.net.hidden=64",
        "data.batch_size=64",
        "trainer.max_epochs=10",
        f"hydra.run.dir={run_dir}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.85
    data = json.loads((run_dir / "data.json").read_text())
    assert data["input_shape"] == [1, 28, 28] and data["class_names"] == list("0123456789")
    assert 0.0 < data["mean"][0] < 1.0 and len(data["std"]) == 1

    images, labels = shifted_digits(60, seed=11)  # new images, not in the training folder
    new = tmp_path / "new"
    new.mkdir()
    from PIL import Image

    for i, image in enumerate(images):
        Image.fromarray(image).save(new / f"img{i:03d}.png")
    out = tmp_path / "pred.csv"
    result = run_cli("logitlab.predict", f"run_dir={run_dir}", f"input={new}", f"output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == [f"img{i:03d}.png" for i in range(60)]
    accuracy = np.mean([int(r["pred"]) == int(y) for r, y in zip(rows, labels, strict=True)])
    assert accuracy >= 0.8
    probs = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_csv_breast_cancer_trains_and_predicts(run_cli, tmp_path: Path) -> None:
    table = breast_cancer_csv(tmp_path / "breast_cancer.csv")
    run_dir = tmp_path / "run"
    result = run_cli(
        "logitlab.train",
        "data=csv",
        f"data.path={table}",
        "data.target=label",
        "model=binary",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] >= 0.95
    data = json.loads((run_dir / "data.json").read_text())
    assert data["class_names"] == ["benign", "malignant"]
    assert data["label_names"] == ["not malignant", "malignant"] and data["target"] == "label"
    out = tmp_path / "pred.csv"
    result = run_cli("logitlab.predict", f"run_dir={run_dir}", f"input={table}", f"output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    truth = read_labelled_csv(table, "label").y
    assert len(rows) == 569
    assert np.mean([int(r["pred"]) == y for r, y in zip(rows, truth, strict=True)]) >= 0.95


@pytest.mark.slow
def test_breast_cancer_experiment(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "logitlab.train", "experiment=breast_cancer_binary", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] >= 0.95


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data=csv"], "data=csv needs data.path and data.target; e.g. data.path=mine.csv"),
        (["data=image_folder"], "data=image_folder needs data.root; e.g. data.root="),
    ],
)
def test_missing_data_keys_answered_before_anything_runs(
    run_cli, tmp_path: Path, args: list[str], message: str
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("logitlab.train", *args, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_an_image_folder_skips_dot_files_and_never_follows_links(small_pngs: Path) -> None:
    """macOS leaves `._x.png` beside each image (not an image at all); a link inside a class
    folder pointing back up would repeat every image once per level if it were followed."""
    counted = len(list(small_pngs.rglob("*.png")))
    (small_pngs / "a" / "._00000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (small_pngs / ".thumbnails").mkdir()  # a hidden folder is no class
    (small_pngs / "a" / "loop").symlink_to(small_pngs, target_is_directory=True)
    (small_pngs / "b" / "link.png").symlink_to(next((small_pngs / "c").glob("*.png")))
    dm = ClassificationDataModule(
        source="image_folder", root=str(small_pngs), task="multiclass", num_workers=0
    )
    dm.setup()
    assert dm.class_names == ["a", "b", "c"]
    assert sum(len(y) for _, y in dm.splits.values()) == counted
    names = [n for split in ("train", "val", "test") for n in dm.sample_names(split) or []]
    assert not [n for n in names if "/." in n or "loop" in n or n.endswith("link.png")]
