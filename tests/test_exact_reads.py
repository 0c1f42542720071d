"""Data read exactly as the file holds it, or refused in one line; data that change after
training are noticed by eval, predict and calibrate (a warning) and by resume (a refusal)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli, digest
from logitlab.data.images import read_image
from logitlab.data.sources import load_npz
from logitlab.data.tables import read_feature_csv, read_labelled_csv
from logitlab.errors import ConfigError


def table(path: Path, header: str | None, labels: list[str], seed: int = 0) -> Path:
    """A CSV of two feature columns and the given labels, one row each."""
    rng = np.random.default_rng(seed)
    rows = [
        f"{a:.4f},{b:.4f},{label}"
        for (a, b), label in zip(rng.normal(size=(len(labels), 2)), labels, strict=True)
    ]
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    return path


# --- CSV --------------------------------------------------------------------------------------


def test_numeric_labels_are_classes_by_value(tmp_path: Path) -> None:
    labels = ["1", "1.0", "0", "0.0", "1e0", "2", "2.00", "0"]
    read = read_labelled_csv(table(tmp_path / "t.csv", "a,b,y", labels), "y")
    assert read.class_names == ["0", "1", "2"]
    assert read.y.tolist() == [int(float(label)) for label in labels]


@pytest.mark.parametrize("marker", ["nan", "NaN", "NA", "n/a", "null", "", "inf", "-inf"])
def test_a_missing_label_is_refused_with_its_line(tmp_path: Path, marker: str) -> None:
    labels = ["0", "1", "0", marker, "1", "0"]
    path = table(tmp_path / "t.csv", "a,b,y", labels)
    with pytest.raises(ConfigError, match=r"is (empty|'.+') on line 5 \(1 of 6 rows\), a missing"):
        read_labelled_csv(path, "y")


def test_a_header_of_numbers_is_never_guessed(tmp_path: Path) -> None:
    labels = ["0", "1"] * 10
    path = table(tmp_path / "t.csv", "0,1,2", labels)
    with pytest.raises(ConfigError, match=r"first row \(0, 1, 2\) may be a header .* data.header"):
        read_labelled_csv(path, -1)
    with_header = read_labelled_csv(path, -1, header=True)
    assert with_header.x.shape == (20, 2) and with_header.feature_names == ["0", "1"]
    assert with_header.header
    # the header's names pick the columns when predicting, in any order
    shuffled = tmp_path / "new.csv"
    shuffled.write_text("1,2,0\n5,0,4\n")
    info = {"header": True, "target_index": 2}
    assert read_feature_csv(shuffled, with_header.feature_names, info).tolist() == [[4, 5]]
    # said to be no header, the first row is data
    assert read_labelled_csv(path, -1, header=False).x.shape == (21, 2)


def test_a_header_that_names_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", "a,a,y", ["0", "1"] * 5)
    with pytest.raises(ConfigError, match=r"names column 'a' twice \(columns 0 and 1\)"):
        read_labelled_csv(path, "y")
    new = tmp_path / "new.csv"
    new.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(ConfigError, match="names column 'a' twice"):
        read_feature_csv(new, ["a", "b"], {"header": True, "target_index": 2})


def test_data_header_is_a_setting_of_data_csv(make_cfg, tmp_path: Path) -> None:
    from logitlab.config.build import build_data

    path = table(tmp_path / "t.csv", "0,1,2", ["0", "1"] * 30)
    cfg = make_cfg("data=csv", f"data.path={path}", "data.target=-1", "data.header=true")
    datamodule = build_data(cfg, "multiclass")
    assert sum(len(y) for _, y in datamodule.splits.values()) == 60
    assert datamodule.run_data()["header"] is True


# --- npz --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((10, 2)), "Y": np.zeros(10)}, "lacks array(s) x, y (it holds X, Y)"),
        (
            {"x": np.array([{"a": 1}] * 10, dtype=object), "y": np.zeros(10)},
            "holds a pickled object array, which can run code (refused)",
        ),
    ],
)
def test_npz_messages_name_what_the_file_holds(tmp_path: Path, arrays, message) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError) as refused:
        load_npz(str(path))
    assert message in str(refused.value)


def test_samples_without_features_are_refused(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((100, 0), np.float32), y=np.arange(100) % 2)
    result = run_cli(
        "logitlab.train", "data=npz", f"data.path={path}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "logitlab: error: data=npz, split 'all': samples of shape (0,) hold no features; give "
        "at least one feature per sample"
    ]
    assert not (tmp_path / "r").exists()


# --- images -----------------------------------------------------------------------------------


def test_a_16_bit_png_keeps_its_depth(tmp_path: Path) -> None:
    values = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")  # stored as 16 bits
    gray = read_image(path, 1)
    assert gray.dtype == torch.float32 and gray.shape == (1, 64, 64)
    np.testing.assert_allclose(gray[0].numpy(), values / 65535, rtol=1e-6)
    assert len(torch.unique(gray)) == 64 * 64  # not clipped to 256 levels
    rgb = read_image(path, 3)
    assert rgb.shape == (3, 64, 64) and torch.equal(rgb[0], rgb[2])


def test_a_broken_image_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(ConfigError) as refused:
        read_image(np.array([str(path)])[0], 1)  # as the image folder's file table holds it
    assert "np.str_" not in str(refused.value) and str(refused.value).startswith(str(path))


@pytest.mark.slow
def test_digits_as_png_predict_as_the_arrays_do(finished_run: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from logitlab.predict import predict

    images = load_digits().images[:40]  # pixel values 0..16
    np.save(tmp_path / "digits.npy", images.reshape(40, 64).astype(np.float32))
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):  # 0..16 saved as 8-bit grey levels 0..255
        Image.fromarray(np.round(image / 16 * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    arrays = predict(
        str(finished_run), input=str(tmp_path / "digits.npy"), output=str(tmp_path / "a.csv")
    )
    pngs = predict(str(finished_run), input=str(folder), output=str(tmp_path / "p.csv"))
    a, p = list(csv.DictReader(arrays.open())), list(csv.DictReader(pngs.open()))
    assert [r["pred"] for r in a] == [r["pred"] for r in p]
    probs = [[float(r[f"prob_{c}"]) for c in range(10)] for r in a]
    np.testing.assert_allclose(
        probs, [[float(r[f"prob_{c}"]) for c in range(10)] for r in p], atol=0.02
    )


# --- data that changed after training ----------------------------------------------------------


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A short run on a CSV of two well-separated classes: (run folder, its CSV)."""
    where = tmp_path_factory.mktemp("csv_run")
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 2
    x = rng.normal(size=(300, 2)) + 4 * labels[:, None]
    path = where / "table.csv"
    path.write_text(
        "a,b,label\n"
        + "".join(f"{u:.5f},{v:.5f},{y}\n" for (u, v), y in zip(x, labels, strict=True))
    )
    run = where / "run"
    result = cli(
        "logitlab.train",
        "debug=limit",
        "data=csv",
        f"data.path={path}",
        "data.target=label",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return run, path


@pytest.mark.slow
def test_changed_data_are_noticed(csv_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, path = csv_run
    saved = json.loads((run / "data.json").read_text())["fingerprint"]
    assert saved["samples"] == 300 and saved["label_counts"] == [150, 150]
    assert saved["class_names"] == ["0", "1"] and saved["content"].startswith("blake2b:")
    original = path.read_text()
    clean = cli("logitlab.eval", f"run_dir={run}")
    assert clean.returncode == 0 and "logitlab: warning" not in clean.stderr
    accuracy = json.loads((run / "eval_metrics.json").read_text())["test/acc"]
    lines = original.splitlines()
    flipped = [lines[0]] + [
        f"{row.rsplit(',', 1)[0]},{1 - int(row.rsplit(',', 1)[1])}" for row in lines[1:]
    ]
    try:
        path.write_text("\n".join(flipped) + "\n")  # the same rows and counts, labels flipped
        for module, extra in (
            ("logitlab.eval", []),
            ("logitlab.predict", [f"output={tmp_path / 'p.csv'}"]),
        ):
            result = cli(module, f"run_dir={run}", *extra)
            assert result.returncode == 0, result.stderr[-2000:]
            warnings = [line for line in result.stderr.splitlines() if "warning" in line]
            assert warnings == [
                f"logitlab: warning: the data differ from what {run} was trained on (the same "
                "samples per class, but other content (features, labels or files)); these results "
                "describe the new data: restore the training data to reproduce the run's, or train "
                "a new run on this data"
            ]
        flipped_accuracy = json.loads((run / "eval_metrics.json").read_text())["test/acc"]
        assert flipped_accuracy == pytest.approx(1 - accuracy, abs=1e-6)
        before = digest(run)
        refused = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=4")
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1] == (
            f"logitlab: error: resume={run}: the data differ from what this run trained on (the "
            "same samples per class, but other content (features, labels or files)); a resume "
            "goes on with the same data: restore them, or start a new run"
        )
        assert digest(run) == before
        one = [lines[0], f"{lines[1].rsplit(',', 1)[0]},{1 - int(lines[1][-1])}", *lines[2:]]
        path.write_text("\n".join(one) + "\n")  # one label changed: the counts differ
        changed = cli("logitlab.eval", f"run_dir={run}")
        assert "(samples per class [150, 150] then, [149, 151] now)" in changed.stderr
        path.write_text(original + "1.0,1.0,1\n")  # a row more: the saved splits do not fit
        longer = cli("logitlab.eval", f"run_dir={run}")
        assert (
            longer.returncode == 2
            and "indexes 300 samples but the dataset has 301" in longer.stderr
        )
    finally:
        path.write_text(original)


def test_an_image_moved_to_another_class_changes_the_fingerprint(tmp_path: Path) -> None:
    from conftest import write_png_folder
    from logitlab.data.datamodule import ClassificationDataModule
    from logitlab.data.fingerprint import difference

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(20, 8, 8), dtype=np.uint8)
    root = write_png_folder(tmp_path / "imgs", images, np.arange(20) % 2, ["cat", "dog"])

    def fingerprint() -> dict:
        dm = ClassificationDataModule(
            "image_folder", "multiclass", root=str(root), val_fraction=0.2, test_fraction=0.2
        )
        dm.setup()
        return dm.fingerprint

    before = fingerprint()
    assert before["label_counts"] == [10, 10] and difference(before, fingerprint()) is None
    shutil.move(root / "cat" / "00000.png", root / "dog" / "00000.png")
    assert difference(before, fingerprint()) == "samples per class [10, 10] then, [9, 11] now"
    assert difference(None, before) is None  # a run of an earlier version has no fingerprint
