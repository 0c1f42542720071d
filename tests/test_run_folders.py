"""Run folders keep working: one written by the flat-module layout (0.1.0), moved or copied."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.datasets import load_digits

from conftest import cli, digest

FLAT_LAYOUT_RUN = Path(__file__).parent / "fixtures" / "flat_layout_run"

pytestmark = pytest.mark.slow


def test_the_fixture_was_written_by_the_flat_layout():
    """Its config names the old module paths and its checkpoints a folder that is gone."""
    saved = OmegaConf.load(FLAT_LAYOUT_RUN / ".hydra" / "config.yaml")
    assert saved.model.net._target_ == "logitlab.nets.MLP"
    assert saved.callbacks.resumable._target_ == "logitlab.callbacks.Resumable"
    state = torch.load(FLAT_LAYOUT_RUN / "checkpoints" / "last.ckpt", weights_only=True)
    dirpaths = {s["dirpath"] for k, s in state["callbacks"].items() if "ModelCheckpoint" in k}
    assert dirpaths and not any(Path(d).exists() for d in dirpaths)


@pytest.fixture
def flat_run(tmp_path: Path) -> Path:
    """A fresh copy of the flat-layout run folder."""
    return Path(shutil.copytree(FLAT_LAYOUT_RUN, tmp_path / "flat_run"))


def test_eval_of_a_flat_layout_run_reproduces_its_test_accuracy(flat_run):
    result = cli("logitlab.eval", f"run_dir={flat_run}")
    assert result.returncode == 0, result.stderr[-2000:]
    trained = json.loads((flat_run / "metrics.json").read_text())
    evaluated = json.loads((flat_run / "eval_metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-5)


def test_predict_on_a_flat_layout_run_scores_its_test_split(flat_run):
    result = cli("logitlab.predict", f"run_dir={flat_run}")
    assert result.returncode == 0, result.stderr[-2000:]
    with (flat_run / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    test_rows = np.load(flat_run / "splits.npz")["test"]
    assert len(rows) == len(test_rows)
    probs = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    preds = np.array([int(r["pred"]) for r in rows])
    np.testing.assert_array_equal(preds, probs.argmax(axis=1))
    labels = load_digits().target[test_rows]
    trained = json.loads((flat_run / "metrics.json").read_text())
    assert (preds == labels).mean() == pytest.approx(trained["test/acc"], abs=1e-6)


def test_calibrate_a_flat_layout_run(flat_run):
    result = cli("logitlab.calibrate", f"run_dir={flat_run}")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((flat_run / "calibration.json").read_text())
    assert record["method"] == "temperature" and record["temperature"] > 0
    assert record["val/nll_after"] <= record["val/nll_before"] + 1e-9
    assert record["test/acc_after"] == pytest.approx(record["test/acc_before"])
    moved = Path(shutil.move(flat_run, flat_run.parent / "moved"))  # the calibration follows
    result = cli("logitlab.predict", f"run_dir={moved}")
    assert result.returncode == 0, result.stderr[-2000:]
    with (moved / "predictions.csv").open() as handle:
        assert {row["calibration"] for row in csv.DictReader(handle)} == {"temperature"}


def best_checkpoint(run: Path) -> Path:
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    return best


def evaluated_best(run: Path) -> float:
    """test/acc of the run's own best checkpoint, by logitlab.eval."""
    result = cli("logitlab.eval", f"run_dir={run}", "ckpt=best")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((run / "eval_metrics.json").read_text())["test/acc"]


def test_moved_and_copied_runs_resume_in_their_own_folder(flat_run, tmp_path):
    """The flat-layout run, moved here from a folder that is gone, trains on one epoch; a copy of
    it resumes and tests its own best checkpoint, not the original's (which is spoiled here)."""
    result = cli("logitlab.train", f"resume={flat_run}", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(flat_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2  # 0-based: the third epoch (the fixture stopped after two)
    tested = json.loads((flat_run / "metrics.json").read_text())["test/acc"]
    assert tested == pytest.approx(evaluated_best(flat_run), abs=1e-6)

    copy = Path(shutil.copytree(flat_run, tmp_path / "copy", symlinks=True))
    original_best = best_checkpoint(flat_run)
    spoiled = torch.load(original_best, weights_only=True)
    spoiled["state_dict"] = {k: torch.zeros_like(v) for k, v in spoiled["state_dict"].items()}
    torch.save(spoiled, original_best)
    before = digest(flat_run)
    result = cli("logitlab.train", f"resume={copy}", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert digest(flat_run) == before
    tested = json.loads((copy / "metrics.json").read_text())["test/acc"]
    assert tested == pytest.approx(evaluated_best(copy), abs=1e-6)
    assert tested > 0.3  # the spoiled original predicts one class: about 0.1
