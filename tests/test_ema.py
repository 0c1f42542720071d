"""EMA weights (callbacks.ema, Lightning's EMAWeightAveraging): the checkpoint's weights equal a
moving average computed here from the run's own per-step weights; validation, test, eval,
predict and calibrate use them, and weights=raw the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import ROOT, cli

DECAY = 0.8


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ema") / "run"
    result = cli(
        "logitlab.train", f"callbacks.ema.decay={DECAY}", "debug=limit",
        "model.net.hidden_sizes=[8]", "+callbacks.record._target_=my_callbacks.RecordWeights",
        f"+callbacks.record.path={run.parent / 'steps.pt'}", f"hydra.run.dir={run}",
        env={"PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.mark.slow
def test_the_checkpoints_weights_are_the_moving_average_of_the_steps(ema_run) -> None:
    steps = [  # the network's weights (the state dict also holds the metrics' running sums)
        {k: v for k, v in step.items() if k.startswith("net.")}
        for step in torch.load(ema_run.parent / "steps.pt", weights_only=True)
    ]
    assert len(steps) == 12  # debug=limit: 3 epochs of 4 batches
    average = dict(steps[0])  # the first update copies the weights (torch's AveragedModel)
    for weights in steps[1:]:
        average = {k: DECAY * average[k] + (1 - DECAY) * weights[k] for k in average}
    last = torch.load(ema_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert average and all(k in last["state_dict"] for k in average)
    for name, value in average.items():
        assert torch.allclose(last["state_dict"][name], value, atol=1e-6), name
        assert torch.equal(last["current_model_state"][name], steps[-1][name]), name  # raw
    assert any(not torch.allclose(last["state_dict"][k], steps[-1][k]) for k in average)


@pytest.mark.slow
def test_eval_reproduces_the_test_with_the_average_and_raw_weights_differ(ema_run) -> None:
    trained = json.loads((ema_run / "metrics.json").read_text())
    result = cli("logitlab.eval", f"run_dir={ema_run}")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((ema_run / "eval_metrics.json").read_text())
    assert evaluated["weights"] == "ema"
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-6)
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    raw = cli("logitlab.eval", f"run_dir={ema_run}", "weights=raw")
    assert raw.returncode == 0, raw.stderr[-2000:]
    raw_metrics = json.loads((ema_run / "eval_metrics.json").read_text())
    assert raw_metrics["weights"] == "raw"
    assert abs(raw_metrics["test/loss"] - trained["test/loss"]) > 1e-4


@pytest.mark.slow
def test_a_calibration_is_for_the_weights_it_was_fitted_on(ema_run, tmp_path) -> None:
    import shutil

    run = Path(shutil.copytree(ema_run, tmp_path / "run"))
    fitted = cli("logitlab.calibrate", f"run_dir={run}", "weights=raw")
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert json.loads((run / "calibration.json").read_text())["weights"] == "raw"
    refused = cli("logitlab.predict", f"run_dir={run}")  # the average: another model
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"logitlab: error: {run / 'calibration.json'} was fitted for the raw weights, not "
        f"weights=ema; predict with weights=raw, or calibrated=false, or calibrate these "
        f"(python -m logitlab.calibrate run_dir={run} weights=ema)"
    ]
    assert cli("logitlab.predict", f"run_dir={run}", "weights=raw").returncode == 0
    bad = cli("logitlab.eval", f"run_dir={run}", "weights=swa")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "logitlab: error: weights=swa must be ema (the default) or raw"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("callbacks.ema.decay=1.5", "callbacks.ema.decay=1.5 must be in (0, 1), e.g. 0.999"),
        ("callbacks.ema.update_every_n_steps=0", "update_every_n_steps=0 must be >= 1"),
    ],
)
def test_a_bad_ema_setting_is_one_line(tmp_path, override: str, message: str) -> None:
    result = cli("logitlab.train", override, f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("logitlab: error: ") and message in line
