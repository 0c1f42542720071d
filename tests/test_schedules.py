"""The scheduler group: the learning rate of every logged step equals its formula, the step count
comes from the Trainer, and every option trains; a bad key is one line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from conftest import cli
from logitlab.train import train
from test_resume import learning_rates


def logged_rates(run_dir: Path) -> dict[int, float]:
    """{optimizer step: learning rate} from the CSV logger (lr-Adam rows)."""
    rows = csv.DictReader((run_dir / "csv" / "metrics.csv").open())
    return {int(r["step"]): float(r["lr-Adam"]) for r in rows if r.get("lr-Adam")}


@pytest.mark.slow
def test_cosine_with_warmup_follows_its_formula_at_every_step(make_cfg, tmp_path) -> None:
    base, start, floor = 1e-2, 0.1, 1e-4
    run = tmp_path / "cosine"
    cfg = make_cfg(
        "scheduler=cosine", f"optimizer.lr={base}", f"scheduler.warmup_start_factor={start}",
        f"scheduler.min_lr={floor}", "trainer.max_epochs=3", "trainer.limit_train_batches=10",
        "trainer.accumulate_grad_batches=2", "trainer.log_every_n_steps=1",
        "logger=[tensorboard,csv]", run_dir=run,
    )  # fmt: skip
    train(cfg)
    total, warmup = 3 * 10 // 2, 10 // 2  # optimizer steps: epochs x batches / accumulation

    def expected(t: int) -> float:
        if t < warmup:
            return base * (start + (1 - start) * t / warmup)
        return floor + (base - floor) * 0.5 * (
            1 + math.cos(math.pi * (t - warmup) / (total - warmup - 1))
        )

    rates = logged_rates(run)
    assert sorted(rates) == list(range(total))  # every step, counted by the Trainer
    assert max(abs(rates[t] - expected(t)) for t in rates) < 1e-7
    assert rates[total - 1] == pytest.approx(floor, abs=1e-12)  # min_lr at the last step
    assert dict(learning_rates(run)) == pytest.approx(rates, abs=1e-9)  # TensorBoard: the same


@pytest.mark.slow
def test_step_onecycle_and_plateau_train_with_their_own_intervals(make_cfg, tmp_path) -> None:
    step = tmp_path / "step"
    train(make_cfg("scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5",
                   "debug=limit", "logger=csv", run_dir=step))  # fmt: skip
    assert logged_rates(step) == pytest.approx({0: 1e-3, 4: 5e-4, 8: 2.5e-4})  # each epoch
    onecycle = tmp_path / "onecycle"
    train(make_cfg("scheduler=onecycle", "optimizer.lr=0.01", "debug=limit",
                   "trainer.log_every_n_steps=1", "logger=csv", run_dir=onecycle))  # fmt: skip
    rates = logged_rates(onecycle)
    assert sorted(rates) == list(range(12))  # 3 epochs of 4 batches: OneCycleLR's total_steps
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    same = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=12)
    reference = []
    for _ in range(12):
        reference.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        same.step()
    assert [rates[t] for t in range(12)] == pytest.approx(reference, rel=1e-6)
    plateau = tmp_path / "plateau"
    train(make_cfg("scheduler=plateau", "debug=limit", "logger=csv", run_dir=plateau))
    state = torch.load(plateau / "checkpoints" / "last.ckpt", weights_only=True)
    rows = [r for r in csv.DictReader((plateau / "csv" / "metrics.csv").open()) if r["val/loss"]]
    # it watched val/loss: last.ckpt is saved before the last epoch's scheduler step
    assert state["lr_schedulers"][0]["best"] == pytest.approx(
        min(float(r["val/loss"]) for r in rows[:-1]), rel=1e-6
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scheduler.interval=batch", "scheduler.interval=batch must be step or epoch"),
        ("scheduler.warmup_epochs=-1", "scheduler.warmup_epochs=-1 must be >= 0 (0: no warmup)"),
        ("scheduler.warmupepochs=2", "did you mean scheduler.warmup_epochs?"),
    ],
)
def test_a_bad_schedule_is_one_line(tmp_path, override: str, message: str) -> None:
    result = cli("logitlab.train", "scheduler=cosine", override, f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("logitlab: error: ") and message in line
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_the_recipe_experiment_trains_with_all_its_parts(tmp_path) -> None:
    data = tmp_path / "data"
    made = cli("logitlab.data.synthetic", f"out={data}", "n=400", "n_test=100")
    assert made.returncode == 0, made.stderr[-2000:]
    assert sorted(p.name for p in (data / "MNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    ]  # fmt: skip
    run = tmp_path / "recipe"
    result = cli(
        "logitlab.train", "experiment=shifted_digits_recipe", f"paths.data_dir={data}",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "logger=csv", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "current_model_state" in last  # EMA
    assert any(w.ndim == 4 for w in last["state_dict"].values())  # the CNN
    rates = logged_rates(run)
    assert rates[0] == pytest.approx(1e-5) and max(rates.values()) == pytest.approx(1e-3, rel=0.05)
    bad = cli("logitlab.data.synthetic", f"out={data}", "n=10", "n_test=20")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "logitlab: error: n_test=20 must lie between 0 and n=10 (both excluded)"
    )
