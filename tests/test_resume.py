"""Resume: a run killed (SIGKILL) or stopped (SIGTERM) mid-training and resumed ends exactly
where an uninterrupted run with the same seed ends: same metrics.json, same final weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import ZYGOTE, Forked
from logitlab.run.checkpoint_io import AtomicCheckpointIO
from test_train import scalar_tags

ARGS = [
    "trainer.max_epochs=5",
    "trainer.deterministic=true",
    "data.batch_size=16",  # 79 steps an epoch: 395 steps in all, a few seconds of training
    "callbacks.checkpoint_every_n_steps=25",
    "data.augment.shift=1",  # seeded by the step: a resumed run draws the same shifts
    "data.augment.mixup=0.2",  # and mixes the same batches
    "scheduler=cosine",  # stepped every batch: a resume must go on from the same step
    "callbacks.ema.decay=0.9",  # a moving average of the weights: resumed with them
]
TOTAL_STEPS = 5 * 79


def start(run_dir: Path, *extra: str) -> Forked:
    """A training command in the background (forked by the zygote, a process of its own)."""
    return ZYGOTE.start("logitlab.train", [*ARGS, *extra, f"hydra.run.dir={run_dir}"])


def interrupt_after_first_checkpoint(proc: Forked, run_dir: Path, sig: int) -> int:
    """Wait for the first step checkpoint, let training go on a little, then send `sig`."""
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode


def final_state(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """metrics.json and the last weights: the moving average and the raw ones (raw.*)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    raw = {f"raw.{k}": v for k, v in last["current_model_state"].items()}
    return metrics, {**last["state_dict"], **raw}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    proc = start(run_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return run_dir


def learning_rates(run_dir: Path) -> list[tuple[int, float]]:
    """(step, rate) of every logged learning rate (lr-Adam: every 10 steps), in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rates = []
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "lr-Adam" in acc.Tags()["scalars"]:
            rates += [(e.step, e.value) for e in acc.Scalars("lr-Adam")]
    return rates


def assert_same_run(a: Path, b: Path) -> None:
    metrics_a, weights_a = final_state(a)
    metrics_b, weights_b = final_state(b)
    assert metrics_a == metrics_b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(uninterrupted, run_cli, tmp_path):
    run_dir = tmp_path / "killed"
    assert interrupt_after_first_checkpoint(start(run_dir), run_dir, signal.SIGKILL) == -9
    killed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert 25 <= killed["global_step"] < TOTAL_STEPS  # it really died mid-training
    assert not (run_dir / "metrics.json").exists()

    result = run_cli("logitlab.train", f"resume={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_run(uninterrupted, run_dir)
    assert (run_dir / ".hydra" / "overrides.yaml").read_text().count("resume=") == 0
    assert len(list((run_dir / ".hydra").glob("resumed_*/overrides.yaml"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_sigterm_saves_a_checkpoint_and_resume_continues_the_same_tensorboard(
    uninterrupted, run_cli, tmp_path, signum
):
    run_dir = tmp_path / "stopped"
    proc = start(run_dir)
    # both stop at the end of a batch through Lightning's SIGTERM handling
    assert interrupt_after_first_checkpoint(proc, run_dir, signum) == 143
    stopped = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert 25 <= stopped["global_step"] < TOTAL_STEPS
    log = (run_dir / "train.log").read_text()
    assert f"{signal.Signals(signum).name} received at step {stopped['global_step']}" in log
    name = signal.Signals(signum).name
    assert f"stopped by {name}; continue with: python -m logitlab.train resume={run_dir}" in log
    job = json.loads((run_dir / "job.json").read_text())  # saved and stopped, not crashed
    assert (job["status"], job["signal"], job["error"]) == ("stopped", name, f"stopped by {name}")
    assert job["resume"] == f"python -m logitlab.train resume={run_dir}"

    result = run_cli("logitlab.train", f"resume={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_run(uninterrupted, run_dir)
    series = scalar_tags(run_dir / "tensorboard")
    assert len(series["val/acc"]) == 5  # one point per epoch: none missing, none twice
    assert series["val/acc"] == scalar_tags(uninterrupted / "tensorboard")["val/acc"]
    rates = learning_rates(run_dir)  # the schedule went on where it stopped: the same rates
    assert rates == learning_rates(uninterrupted) and len(rates) == TOTAL_STEPS // 10


@pytest.mark.slow
def test_resume_takes_safe_overrides_and_refuses_the_rest(uninterrupted, run_cli, tmp_path):
    uninterrupted = Path(shutil.copytree(uninterrupted, tmp_path / "copy"))
    before = (uninterrupted / ".hydra" / "config.yaml").read_text()
    refused = run_cli("logitlab.train", f"resume={uninterrupted}", "optimizer.weight_decay=0.5")
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(
        "logitlab: error: resume: 'optimizer.weight_decay=0.5' would change the run being resumed; "
        "only trainer.max_epochs,"
    )
    nowhere = run_cli(
        "logitlab.train", f"resume={tmp_path / 'nowhere'}", f"paths.output_root={tmp_path}/out"
    )
    assert nowhere.returncode == 2
    assert nowhere.stderr.strip() == (
        f"logitlab: error: resume={tmp_path / 'nowhere'} does not exist; "
        "give the folder of a training run"
    )
    assert not (tmp_path / "nowhere").exists()
    more = run_cli("logitlab.train", f"resume={uninterrupted}", "trainer.max_epochs=9")
    assert more.returncode == 0, more.stderr[-2000:]
    assert len(scalar_tags(uninterrupted / "tensorboard")["val/acc"]) == 9
    assert (uninterrupted / ".hydra" / "config.yaml").read_text() == before


def test_a_requeued_slurm_job_starts_from_its_last_checkpoint(make_cfg, tmp_path, monkeypatch):
    from logitlab.train import starting_point

    run_dir = tmp_path / "job"
    cfg = make_cfg(run_dir=run_dir)
    assert starting_point(cfg)[1] is None  # a first start
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert starting_point(cfg)[1] is None  # a checkpoint alone does not make a resume ...
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert starting_point(cfg)[1] == run_dir / "checkpoints" / "last.ckpt"  # ... a requeue does


def test_last_checkpoint_is_the_last_epoch_even_without_a_new_best(make_cfg) -> None:
    # lr 0: val/acc never improves after epoch 0, so the best checkpoint stays at epoch 0;
    # last.ckpt must still follow every epoch (Lightning >= 2.6's save_last alone would not).
    from logitlab.train import build

    cfg = make_cfg("trainer.max_epochs=3", "optimizer.lr=0.0", "test=false")
    datamodule, model, trainer = build(cfg)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)  # conf/trainer/cpu
    trainer.fit(model, datamodule=datamodule)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, trainer.global_step)
    assert trainer.global_step == 3 * trainer.num_training_batches
    (best,) = folder.glob("best-*.ckpt")
    assert best.name.startswith("best-epoch000-")
    assert torch.load(best, weights_only=True)["global_step"] == trainer.num_training_batches
    assert sorted(p.name for p in folder.iterdir()) == sorted([best.name, "last.ckpt"])


def test_resuming_from_last_checkpoint_carries_on_after_its_epoch(make_cfg) -> None:
    from logitlab.train import build

    cfg = make_cfg("trainer.max_epochs=1", "test=false")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    steps = trainer.num_training_batches
    cfg = make_cfg("trainer.max_epochs=2", "test=false", run_dir=folder.parent)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=folder / "last.ckpt", weights_only=True)
    assert trainer.global_step == 2 * steps
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 2 * steps)
    (new_best,) = folder.glob("best-*.ckpt")  # epoch 1 improved: one best file
    assert new_best.name.startswith("best-epoch001-")
    assert sorted(p.name for p in folder.iterdir()) == sorted([new_best.name, "last.ckpt"])


def test_checkpoint_write_replaces_whole_files_and_a_failed_one_keeps_the_old(tmp_path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "nested" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(4.0)}, path)
    io.save_checkpoint({"step": 2, "w": torch.arange(8.0)}, path)
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 2 and torch.equal(saved["w"], torch.arange(8.0))
    before = path.read_bytes()
    with pytest.raises(Exception, match="pickle"):  # a lambda cannot be saved
        io.save_checkpoint({"step": 3, "hook": lambda: None}, path)
    assert path.read_bytes() == before  # the failed save left last.ckpt as it was
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # and no temporary file


def test_atomic_writes_keep_the_usual_permissions_and_leave_no_temporary_file(tmp_path) -> None:
    from logitlab.run.files import write_json

    old_umask = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"test/acc": 0.5})
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old_umask)
    for name in ("metrics.json", "last.ckpt"):  # readable by the group, as plain.txt is
        assert (tmp_path / name).stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"test/acc": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "metrics.json", "plain.txt"]


def test_remote_checkpoint_paths_keep_lightnings_writer() -> None:
    import fsspec

    AtomicCheckpointIO().save_checkpoint({"step": 7}, "memory://logitlab-test/last.ckpt")
    memory = fsspec.filesystem("memory")
    with memory.open("/logitlab-test/last.ckpt", "rb") as handle:
        assert torch.load(handle, weights_only=True) == {"step": 7}
    memory.rm("/logitlab-test", recursive=True)


@pytest.mark.slow
def test_the_slurm_pre_timeout_signal_saves_requeues_and_the_requeued_job_goes_on(
    uninterrupted, tmp_path
):
    """SIGUSR1, as `#SBATCH --signal=SIGUSR1@90` sends it: Lightning's SLURM auto-requeue saves
    hpc_ckpt_1.ckpt and calls `scontrol requeue <job>`; SLURM then stops the job (SIGTERM, here
    sent by the stand-in scontrol) and starts the same command again, which goes on from the
    newest checkpoint and ends as an uninterrupted run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nkill -TERM $PPID\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "logitlab", "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    run_dir = tmp_path / "slurm"
    command = [*ARGS, f"hydra.run.dir={run_dir}"]
    proc = ZYGOTE.start("logitlab.train", command, {**os.environ, **slurm})
    assert interrupt_after_first_checkpoint(proc, run_dir, signal.SIGUSR1) == 143
    assert calls.read_text().split() == ["requeue", "4242"]
    assert (run_dir / "hpc_ckpt_1.ckpt").is_file()  # Lightning's, at the signal
    job = json.loads((run_dir / "job.json").read_text())
    assert (job["status"], job["signal"]) == ("stopped", "SIGTERM")

    requeued = {**os.environ, **slurm, "SLURM_RESTART_COUNT": "1"}
    again = ZYGOTE.start("logitlab.train", command, requeued)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert "SLURM requeued this job: resuming from" in (run_dir / "train.log").read_text()
    assert_same_run(uninterrupted, run_dir)
