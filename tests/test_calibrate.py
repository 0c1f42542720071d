"""Calibrated probabilities: temperature and Platt scaling, fitted, measured and used by predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import cli, digest
from logitlab.notebook.numerics import temperature_nll, temperature_softmax
from logitlab.uncertainty.calibration import calibrated_probs, fit_platt, fit_temperature, scores


def overconfident(n: int = 600, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Logits three times too sharp for their accuracy: a known temperature of about 3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    z = rng.normal(0, 1, size=(n, classes))
    z[np.arange(n), y] += 1.5
    return torch.tensor(z * 3.0), torch.tensor(y)


def test_temperature_matches_scipy_on_the_numpy_nll() -> None:
    from scipy.optimize import minimize_scalar

    logits, y = overconfident()
    t = fit_temperature(logits, y)
    z, labels = logits.numpy(), y.numpy()
    best = minimize_scalar(
        lambda log_t: temperature_nll(z, labels, np.exp(log_t)),
        bounds=(-5, 5),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert t == pytest.approx(np.exp(best.x), abs=1e-4)
    assert 2.0 < t < 4.0  # the sharpening the data was made with
    p = temperature_softmax(z, t)
    assert np.allclose(p.sum(axis=1), 1.0) and (p.argmax(1) == z.argmax(1)).all()


def test_platt_fits_a_binary_logit_and_keeps_its_order() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=800)
    z = torch.tensor((rng.normal(0, 1, 800) + (2 * y - 1)) * 4.0)
    a, b = fit_platt(z, torch.tensor(y))
    assert 0.1 < a < 0.5 and abs(b) < 0.3
    raw = scores(calibrated_probs(z, None, "binary"), torch.tensor(y))
    fitted = scores(calibrated_probs(z, {"a": a, "b": b}, "binary"), torch.tensor(y))
    assert fitted["nll"] < raw["nll"] and fitted["acc"] == raw["acc"]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_ece_and_brier_are_the_customary_ones(task: str) -> None:
    from sklearn.metrics import brier_score_loss
    from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

    rng = np.random.default_rng(3)
    classes = 2 if task == "binary" else 5
    y = torch.tensor(rng.integers(0, classes, size=600))
    logits = torch.tensor(rng.normal(0, 2, size=(600, 1 if task == "binary" else 5)))
    logits = logits[:, 0] if task == "binary" else logits
    probs = calibrated_probs(logits, None, task)
    ours = scores(probs, y, task)
    if task == "binary":  # P(positive) against the positive rate; the usual binary Brier score
        ece = BinaryCalibrationError(n_bins=15)(probs[:, 1], y)
        assert ours["brier"] == pytest.approx(
            brier_score_loss(y.numpy(), probs[:, 1].numpy()), abs=1e-6
        )
    else:  # top-class confidence against correctness; the Brier score summed over classes
        ece = MulticlassCalibrationError(classes, n_bins=15)(probs, y)
        onehot = np.eye(classes)[y.numpy()]
        assert ours["brier"] == pytest.approx(
            ((probs.numpy() - onehot) ** 2).sum(axis=1).mean(), abs=1e-6
        )
    assert ours["ece"] == pytest.approx(float(ece), abs=1e-5)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Path:
    """A digits run trained 80 epochs without early stopping or dropout: over-confident."""
    run = tmp_path_factory.mktemp("calibration") / "run"
    result = cli(
        "logitlab.train", "trainer.max_epochs=80", "callbacks.early_stopping=null",
        "model.net.dropout=0.0", f"hydra.run.dir={run}",
        # what is calibrated is the last checkpoint: validation and its images only at the end
        "trainer.check_val_every_n_epoch=40", "callbacks.diagnostics=null",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.mark.slow
def test_calibrate_lowers_nll_and_ece_keeps_accuracy_and_predict_uses_it(long_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("logitlab.calibrate", f"run_dir={long_run}", "ckpt=last")  # 80 epochs' weights
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((long_run / "calibration.json").read_text())
    assert record["method"] == "temperature" and record["temperature"] > 1.0
    assert record["test/nll_after"] < record["test/nll_before"]
    assert record["test/ece_after"] < record["test/ece_before"]
    assert record["test/acc_after"] == record["test/acc_before"]
    assert "temperature scaling: T = " in result.stdout
    images, scalars, texts = [], [], {}
    for events in (long_run / "tensorboard").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        images += accumulator.Tags()["images"]
        scalars += accumulator.Tags()["scalars"]
        for tag in accumulator.Tags()["tensors"]:
            texts[tag] = accumulator.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
    assert {"calibration/reliability_before", "calibration/reliability_after"} <= set(images)
    assert not [t for t in scalars if t.startswith("calibration/")]  # no single-dot charts
    ece_after = f"| ece_after | {record['test/ece_after']:.6g} |"
    assert ece_after in texts["calibration/scores/text_summary"]  # a table in TEXT instead

    calibrated, raw = long_run / "cal.csv", long_run / "raw.csv"
    mismatch = cli("logitlab.predict", f"run_dir={long_run}", f"output={calibrated}")
    assert mismatch.returncode == 2 and "was fitted for" in mismatch.stderr  # ckpt=best differs
    last = "ckpt=last"
    result = cli("logitlab.predict", f"run_dir={long_run}", last, f"output={calibrated}")
    assert result.returncode == 0, result.stderr[-2000:]
    result = cli(
        "logitlab.predict", f"run_dir={long_run}", last, f"output={raw}", "calibrated=false"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows_cal = list(csv.DictReader(calibrated.open()))
    rows_raw = list(csv.DictReader(raw.open()))
    assert rows_cal[0]["calibration"] == "temperature" and rows_raw[0]["calibration"] == "none"
    p_raw = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows_raw])
    p_cal = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows_cal])
    evaluated = cli("logitlab.eval", f"run_dir={long_run}", "ckpt=last")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    reported = json.loads((long_run / "eval_metrics.json").read_text())
    assert reported["test/ece_calibrated"] == pytest.approx(record["test/ece_after"], abs=1e-6)
    assert reported["test/ece_raw"] == pytest.approx(record["test/ece_before"], abs=1e-6)
    # softmax(logits / T), from the raw probabilities: log p = z - logsumexp(z)
    expected = temperature_softmax(np.log(np.clip(p_raw, 1e-300, None)), record["temperature"])
    assert np.allclose(p_cal, expected, atol=2e-6)


@pytest.mark.slow
def test_platt_scaling_lowers_nll_and_ece_of_an_overconfident_binary_run(tmp_path: Path) -> None:
    run = tmp_path / "binary"
    result = cli("logitlab.train", "experiment=calibration_binary", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    result = cli("logitlab.calibrate", f"run_dir={run}", "ckpt=last")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run / "calibration.json").read_text())
    assert record["method"] == "platt"
    assert 0 < record["a"] < 1  # over-confident: Platt shrinks the logit
    assert record["val/nll_after"] < record["val/nll_before"]  # it fits what it was given
    for name in ("nll", "ece", "brier"):  # and the fit carries over to the test split
        assert record[f"test/{name}_after"] < record[f"test/{name}_before"], name
    assert abs(record["test/acc_after"] - record["test/acc_before"]) < 0.01  # b moves the cut
    # one ECE for the binary head: calibration.json's equals metrics.json's on one checkpoint
    assert cli("logitlab.calibrate", f"run_dir={run}", "ckpt=best").returncode == 0
    best = json.loads((run / "calibration.json").read_text())
    tested = json.loads((run / "metrics.json").read_text())
    assert best["test/ece_before"] == pytest.approx(tested["test/ece"], abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["method=platt"], "method=platt does not fit the multiclass head"),
        (["method=isotonic"], "method=isotonic is not known"),
        (["ckpt=nowhere.ckpt"], "does not exist; use ckpt=best, last or a path"),
    ],
)
def test_calibrate_refusals_write_nothing(long_run: Path, args, message) -> None:
    before = digest(long_run)
    result = cli("logitlab.calibrate", f"run_dir={long_run}", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert digest(long_run) == before


@pytest.mark.slow
def test_calibrate_callback_calibrates_when_training_ends(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(
        "logitlab.train", "debug=limit", "callbacks.calibrate=true", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run / "calibration.json").read_text())
    assert record["method"] == "temperature" and record["temperature"] > 0
    assert Path(record["checkpoint"]).name.startswith("best-")
    assert "calibrated (temperature): test ECE" in (run / "train.log").read_text()
