"""Ship it: the exported model (ONNX, TorchScript) maps raw inputs to the probabilities the
PyTorch predict gives, calibrated and not, for the MLP and the CNN, both heads; predict from an
.onnx file imports neither torch nor Lightning; a corrupt or foreign model is one line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from conftest import ROOT

RUNS = {  # (network, head): the training command's overrides
    "mlp_multiclass": ["debug=limit"],
    "mlp_binary": ["experiment=digits_binary", "debug=limit"],
    "cnn_multiclass": ["model/net=cnn", "debug=limit"],
    "cnn_binary": ["experiment=digits_binary", "model/net=cnn", "debug=limit"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_cli_module) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    folders = {}
    for name, args in RUNS.items():
        folders[name] = root / name
        result = run_cli_module("logitlab.train", *args, f"hydra.run.dir={folders[name]}")
        assert result.returncode == 0, result.stderr[-2000:]
    return folders


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory, run_cli_module) -> Path:
    """A copy of the MLP run exported as ONNX and as TorchScript: read it, do not change it."""
    run = Path(shutil.copytree(runs["mlp_multiclass"], tmp_path_factory.mktemp("exp") / "run"))
    for fmt in ("torchscript", "onnx"):
        result = run_cli_module("logitlab.export", f"run_dir={run}", f"format={fmt}")
        assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Digits the runs did not necessarily see: a .npy matrix and a folder of 8x8 PNGs."""
    root = tmp_path_factory.mktemp("inputs")
    digits = load_digits()
    np.save(root / "digits.npy", digits.data[:40].astype(np.float32))
    images = root / "images"
    images.mkdir()
    larger = root / "larger"  # 16x16: both predicts resize them to the training 8x8
    larger.mkdir()
    for i, image in enumerate(digits.images[:12]):
        png = Image.fromarray(np.round(image * 255 / 16).astype(np.uint8))
        png.save(images / f"{i:02d}.png")
        png.resize((16, 16), Image.Resampling.NEAREST).save(larger / f"{i:02d}.png")
    return {"npy": root / "digits.npy", "images": images, "larger": larger}


def table(path: Path) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """(header, the prob_ columns, the other cells of each row) of a predictions CSV."""
    rows = list(csv.reader(path.open()))
    header, body = rows[0], rows[1:]
    probs = [i for i, name in enumerate(header) if name.startswith("prob_")]
    rest = [[row[i] for i in range(len(header)) if i not in probs] for row in body]
    return header, np.array([[float(row[i]) for i in probs] for row in body]), rest


def predict_both(run: Path, model: Path, input: Path, out: Path, run_cli) -> None:
    """The same input through the run's checkpoint and through the exported model."""
    via_torch = run_cli("logitlab.predict", f"run_dir={run}", f"input={input}",
                        f"output={out / 'torch.csv'}", "overwrite=true")  # fmt: skip
    assert via_torch.returncode == 0, via_torch.stderr[-2000:]
    via_onnx = run_cli("logitlab.predict", f"model={model}", f"input={input}",
                       f"output={out / 'onnx.csv'}", "overwrite=true")  # fmt: skip
    assert via_onnx.returncode == 0, via_onnx.stderr[-2000:]
    header_t, probs_t, rest_t = table(out / "torch.csv")
    header_o, probs_o, rest_o = table(out / "onnx.csv")
    assert header_o == header_t  # the same columns
    assert rest_o == rest_t  # rows, paths, predicted classes, calibration
    assert np.abs(probs_o - probs_t).max() <= 1e-5
    assert np.allclose(probs_o.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_the_exported_model_gives_predicts_probabilities(
    runs, inputs, run_cli, tmp_path, name
) -> None:
    run = Path(shutil.copytree(runs[name], tmp_path / "run"))
    given = inputs["images"] if name.startswith("cnn") else inputs["npy"]
    for calibrated in (False, True):
        if calibrated:
            fitted = run_cli("logitlab.calibrate", f"run_dir={run}")
            assert fitted.returncode == 0, fitted.stderr[-2000:]
        exported = run_cli("logitlab.export", f"run_dir={run}")
        assert exported.returncode == 0, exported.stderr[-2000:]
        model = run / "export" / "model.onnx"
        info = json.loads(model.with_suffix(".json").read_text())
        assert info["calibration"] == (json.loads((run / "calibration.json").read_text())[
            "method"] if calibrated else "none")  # fmt: skip
        assert info["head"] == ("binary" if "binary" in name else "multiclass")
        assert info["input_shape"] == [1, 8, 8] and info["opset"] == 18
        predict_both(run, model, given, tmp_path, run_cli)
        if name.startswith("cnn"):  # PIL's bilinear resize against torchvision's antialiased one
            predict_both(run, model, inputs["larger"], tmp_path, run_cli)


@pytest.mark.slow
def test_torchscript_export_matches_and_any_batch_size_runs(exported, inputs) -> None:
    import onnxruntime

    run = exported
    scripted = torch.jit.load(str(run / "export" / "model.pt"))
    session = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"))
    x = np.load(inputs["npy"]).reshape(-1, 1, 8, 8)
    for batch in (1, 7, 40):  # a dynamic batch dimension
        (onnx_probs,) = session.run(None, {"x": x[:batch]})
        with torch.no_grad():
            script_probs = scripted(torch.from_numpy(x[:batch])).numpy()
        assert onnx_probs.shape == (batch, 10)
        assert np.abs(onnx_probs - script_probs).max() <= 1e-5


@pytest.mark.slow
def test_predict_from_onnx_imports_neither_torch_nor_lightning(exported, inputs, tmp_path):
    run = exported
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "logitlab.predict",
         f"model={run / 'export' / 'model.onnx'}", f"input={inputs['npy']}",
         f"output={tmp_path / 'p.csv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported
    assert not imported & {"torch", "lightning", "hydra", "torchvision"}
    assert len(list(csv.reader((tmp_path / "p.csv").open()))) == 41


@pytest.mark.slow
def test_a_corrupt_or_foreign_model_and_a_wrong_input_are_one_line(
    exported, inputs, run_cli, tmp_path
) -> None:
    model = exported / "export" / "model.onnx"
    corrupt = tmp_path / "corrupt" / "model.onnx"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\x08\x07not a protobuf" * 10)
    shutil.copy(model.with_suffix(".json"), corrupt.with_suffix(".json"))
    foreign = tmp_path / "foreign" / "model.onnx"  # a model that is not the one its JSON names
    foreign.parent.mkdir()
    shutil.copy(model, foreign)
    info = json.loads(model.with_suffix(".json").read_text())
    foreign.with_suffix(".json").write_text(json.dumps({**info, "input_shape": [64]}))
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((3, 10), np.float32))
    cases = [
        (corrupt, inputs["npy"], f"model={corrupt} is not a readable ONNX model ("),
        (foreign, inputs["npy"], f"model={foreign} takes input of shape [batch, 1, 8, 8], not"),
        (tmp_path / "none.onnx", inputs["npy"], f"model={tmp_path / 'none.onnx'} is not an .onnx"),
        (model, narrow, f"input={narrow} has 10 features per sample but the model takes 64"),
    ]
    for given, input, message in cases:
        result = run_cli("logitlab.predict", f"model={given}", f"input={input}",
                         f"output={tmp_path / 'out.csv'}")  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip().startswith(f"logitlab: error: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_a_network_the_exporter_cannot_take_is_named_in_one_line(run_cli, tmp_path) -> None:
    env = {"PYTHONPATH": str(ROOT / "tests")}
    run = tmp_path / "run"
    trained = run_cli(
        "logitlab.train", f"hydra.searchpath=[file://{ROOT / 'tests' / 'user_conf'}]",
        "model/net=data_dependent", "debug=limit", f"hydra.run.dir={run}", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    refused = run_cli("logitlab.export", f"run_dir={run}", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]  # one line, no dump
    assert refused.stderr.startswith(
        "logitlab: error: format=onnx: torch.onnx.export cannot export this network at layer "
        "net (my_nets.DataDependent, tests/my_nets.py:"
    )
    assert "Could not guard on data-dependent expression" in refused.stderr
    assert not (run / "export" / "model.onnx").exists()
