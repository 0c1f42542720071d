"""Training entry point: `python -m logitlab.train [key=value ...]` (console script logitlab-train).

Composes conf/train.yaml, trains, tests the best checkpoint and writes <run_dir>/metrics.json.
Heavy imports (torch, lightning) happen inside `train`, so `--help` answers at once.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import logitlab.config.compose  # noqa: F401  (registers the schemas before Hydra runs)
from logitlab.config import CONFIG_DIR
from logitlab.errors import ConfigError, compile_failures, user_errors
from logitlab.run.launch import Launch, refusal_undone
from logitlab.run.layout import RunFolder

CONFIG_PATH = str(CONFIG_DIR)
CONTINUED = "LOGITLAB_CONTINUED_SWEEP"  # set for the jobs of a sweep that goes on
log = logging.getLogger("logitlab.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Instantiate data, model, callbacks, loggers and trainer from `cfg`; fit, test, record."""
    import lightning as L

    from logitlab.config.instantiate import quiet_lightning
    from logitlab.config.rules import check_config, check_runtime

    quiet_lightning()
    cfg, ckpt_path = starting_point(cfg)
    check_config(cfg)
    check_runtime(cfg)
    if cfg.get("run_name") is None:  # named by its overrides and tags (logitlab.dashboards.naming)
        from logitlab.dashboards.naming import dashboard_name

        cfg.run_name = dashboard_name(cfg.paths.output_dir, cfg.get("tags") or [])
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg, resuming=ckpt_path is not None)
    shown = (cfg.get("extras") or {}).get("print_config", False)
    if shows_console() and shown:
        from logitlab.config.compose import changes
        from logitlab.dashboards.console import print_config

        print_config(cfg, None if shown == "full" else changes(cfg))  # None: the whole tree
    if cfg.get("lr_find") and not cfg.get("resume"):
        from logitlab.run import lr_find

        needed = lr_find.epochs_needed(len(datamodule.train_dataloader()))
        if (trainer.max_epochs or 0) < needed:  # the finder's steps must not end with the epochs
            finder_cfg = copy.deepcopy(cfg)
            finder_cfg.trainer.max_epochs = needed
            L.seed_everything(cfg.seed, workers=True)  # the same weights as a first build
            datamodule, model, trainer = build(finder_cfg)
        suggestion = lr_find.find_lr(trainer, model, datamodule, cfg, shows_console())
        if not cfg.get("lr_find_apply"):
            return {}
        cfg.optimizer.lr = suggestion
        datamodule, model, trainer = build(cfg)  # a fresh trainer and model at that rate
    with compile_failures(bool(cfg.get("compile"))):  # compiled at the first step: one line
        fitted = fit(trainer, model, datamodule, cfg, ckpt_path) if cfg.get("train") else {}
        tested = test_best(trainer, model, datamodule) if cfg.get("test") else {}
    metrics = record(trainer, cfg, fitted, tested)
    if (cfg.get("callbacks") or {}).get("calibrate") and trainer.is_global_zero:
        from logitlab.calibrate import calibrate

        fitted_calibration = calibrate(cfg.paths.output_dir, "best")
        log.info(
            "calibrated (%s): test ECE %.4f -> %.4f, NLL %.4f -> %.4f; %s/calibration.json",
            fitted_calibration["method"],
            fitted_calibration["test/ece_before"], fitted_calibration["test/ece_after"],
            fitted_calibration["test/nll_before"], fitted_calibration["test/nll_after"],
            cfg.paths.output_dir,
        )  # fmt: skip
    return metrics


def shows_console() -> bool:
    """Whether this process prints the config and results: rank 0 of a single run."""
    from logitlab.run.ddp import is_rank_zero
    from logitlab.run.sweep import in_multirun

    return is_rank_zero() and not in_multirun()


def starting_point(cfg: DictConfig) -> tuple[DictConfig, Path | None]:
    """The config to run and the checkpoint to start from (a resume, a SLURM requeue, or none)."""
    from logitlab.run.resume import prepare_resume

    if cfg.get("resume"):
        cfg, ckpt_path = prepare_resume(cfg, resume_overrides())
        log.info("resuming %s from %s", cfg.resume, ckpt_path)
        return cfg, ckpt_path
    last = RunFolder(cfg.paths.output_dir).last
    requeue_point = RunFolder(cfg.paths.output_dir).requeue_point()
    if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0 and requeue_point is not None:
        log.info("SLURM requeued this job: resuming from %s", requeue_point)
        return cfg, requeue_point
    if os.environ.get(CONTINUED) == "1" and last.is_file():
        log.info("the sweep goes on: this job resumes from %s", last)
        return cfg, last
    return cfg, None


def build(cfg: DictConfig, resuming: bool = False) -> tuple[Any, Any, Any]:
    """DataModule (loaded and validated), model and Trainer, all from the config; `resuming`
    (from a checkpoint) keeps the run's splits and data.json, and refuses changed data."""
    from logitlab.config.build import build as build_run
    from logitlab.config.instantiate import (
        instantiate,
        instantiate_callbacks,
        instantiate_loggers,
        lightning_defaults_off,
    )
    from logitlab.data.splits import save_splits
    from logitlab.run import fastpath
    from logitlab.run.files import write_json
    from logitlab.run.sweep import TRIAL

    datamodule, model = build_run(cfg)  # the data loaded and checked once, before training
    if cfg.trainer.get("accelerator") in ("gpu", "cuda") and has_conv(model):
        import torch

        model = model.to(memory_format=torch.channels_last)  # conv nets are faster so on a GPU
    if cfg.get("compile"):
        model.net.compile()  # in place: checkpoints keep their plain parameter names
    loggers = instantiate_loggers(cfg.get("logger"))
    progress_bar = cfg.trainer.get("enable_progress_bar") is not False  # null: Lightning's on
    summary = cfg.trainer.get("enable_model_summary") is not False
    callbacks = instantiate_callbacks(cfg.get("callbacks"), bool(loggers), progress_bar, summary)
    off = lightning_defaults_off(cfg.trainer, callbacks)  # a dropped entry stays dropped
    if not progress_bar or "enable_progress_bar" in off:
        from logitlab.run.callbacks import EpochLine

        callbacks.append(EpochLine())  # one line per epoch instead of the bar
    if os.environ.get(TRIAL):  # a trial of an Optuna search: optuna imported only then
        from logitlab.run.search import pruning_callback

        pruning = pruning_callback()  # None without a pruner
        callbacks.extend([pruning] if pruning is not None else [])
    if cfg.get("resume") and any(o.split("=")[0] == "optimizer.lr" for o in resume_overrides()):
        from logitlab.run.callbacks import NewLearningRate

        callbacks.append(NewLearningRate(float(cfg.optimizer.lr)))
    fast = fastpath.enabled(bool(cfg.get("fastpath")))
    # An object such as the fast path's profiler cannot go through the typed trainer config.
    extra = {"profiler": fastpath.quiet_profiler()} if fast and not cfg.trainer.profiler else {}
    make_trainer = instantiate(cfg.trainer, _partial_=True)
    trainer = make_trainer(callbacks=callbacks, logger=loggers or False, **off, **extra)
    if fast:
        fastpath.apply(trainer, model)
    run = RunFolder(cfg.paths.output_dir)
    if resuming:
        from logitlab.run.restore import data_change

        change = data_change(run.root, datamodule)
        if change:
            raise ConfigError(
                f"resume={run.root}: the data differ from what this run trained on ({change}); "
                "a resume goes on with the same data: restore them, or start a new run"
            )
    if trainer.is_global_zero and not (resuming and run.splits.is_file()):
        save_splits(run.splits, datamodule.split_index)  # a resume keeps the run's own
    if trainer.is_global_zero and not (resuming and run.data.is_file()):
        write_json(run.data, datamodule.run_data())
    return datamodule, model, trainer


def has_conv(model: Any) -> bool:
    """Whether the network has 2-d convolutions (which run channels_last on a GPU)."""
    from torch import nn

    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def fit(trainer: Any, model: Any, datamodule: Any, cfg: DictConfig, ckpt_path: Path | None) -> dict:
    """Train; a divergence is recorded in metrics.json, a SIGTERM/Ctrl+C exits 143."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from logitlab.errors import RunStopped, TrainingDiverged
    from logitlab.run.files import write_json

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingDiverged as diverged:
        last = RunFolder(cfg.paths.output_dir).last
        lower = f"{float(cfg.optimizer.get('lr', 1e-3)) / 10:g}"
        diverged.advice = (
            f"checkpoints/last.ckpt keeps the last good weights: python -m logitlab.train "
            f"resume={cfg.paths.output_dir} optimizer.lr={lower} trainer.gradient_clip_val=1.0"
            if last.is_file()
            else "no checkpoint was written yet: start a new run with a lower optimizer.lr"
        )
        if trainer.is_global_zero:
            failure = {
                "status": "diverged",
                "diverged_at_step": diverged.step,
                "diverged_at_epoch": diverged.epoch,
                "last_finite_loss": diverged.last_finite,
                "error": str(diverged),
            }
            write_json(RunFolder(cfg.paths.output_dir).metrics, failure)
        raise
    except SIGTERMException:
        import signal

        from logitlab.run.callbacks import Resumable

        received = [c.signal_received for c in trainer.callbacks if isinstance(c, Resumable)]
        name = signal.Signals(received[0]).name if received and received[0] else "SIGTERM"
        command = f"python -m logitlab.train resume={cfg.paths.output_dir}"
        log.warning("stopped by %s; continue with: %s", name, command)
        raise RunStopped(name, command) from None
    for early in trainer.early_stopping_callbacks:
        if early.stopped_epoch > 0:
            log.info(
                "early stopping: %s did not improve for %d epochs (patience %d); training ended "
                "after epoch %d. Train on: python -m logitlab.train resume=%s "
                "callbacks.early_stopping.patience=%d trainer.max_epochs=...",
                early.monitor, early.wait_count, early.patience, early.stopped_epoch,
                cfg.paths.output_dir, early.wait_count + max(early.patience, 5),
            )  # fmt: skip
    return dict(trainer.callback_metrics)


def test_best(trainer: Any, model: Any, datamodule: Any) -> dict:
    """Test the best checkpoint (highest val/acc), or the final weights when there is none
    (with callbacks.ema: their moving average)."""
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor), "")
    if not best:
        log.warning("no best checkpoint (checkpointing off or fast_dev_run): testing final weights")
    trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    return dict(trainer.callback_metrics)  # what the loggers were not given too (test/scores)


def record(trainer: Any, cfg: DictConfig, fitted: dict, tested: dict) -> dict[str, float]:
    """metrics.json (a resume keeps what it does not recompute) and the TensorBoard summary."""
    from logitlab.dashboards.diagnostics import log_run_summary
    from logitlab.run.files import write_json

    path = RunFolder(cfg.paths.output_dir).metrics
    previous = json.loads(path.read_text()) if cfg.get("resume") and path.is_file() else {}
    metrics = final_metrics(previous, fitted, tested)
    if trainer.is_global_zero:  # first: a logger that fails cannot lose the results
        tags = [str(t) for t in cfg.get("tags") or []]
        write_json(path, {**metrics, **({"tags": tags} if tags else {})})
        log.info("final metrics written to %s", path)
    log_run_summary(trainer, cfg, metrics)
    if trainer.is_global_zero and shows_console():
        from logitlab.dashboards.console import print_results

        print_results(metrics, cfg.paths.output_dir, cfg.paths.output_root)
    return metrics


def final_metrics(*stages: dict[str, Any]) -> dict[str, float]:
    """Flat {name: float} of the `stage/name` metrics, later stages winning.

    Timings (`time/...`) stay in TensorBoard: metrics.json holds results, which reruns reproduce.
    """
    merged: dict[str, float] = {}
    for metrics in stages:
        for name, value in metrics.items():
            if (
                "/" in name
                and not name.startswith("time/")
                and not name.endswith(("_step", "_epoch"))
            ):
                merged[name] = float(value)
    return dict(sorted(merged.items()))


def resume_overrides() -> list[str]:
    """The command-line overrides of this invocation (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Train one configuration; returns the metric a Hydra sweeper optimises."""
    from logitlab.run.ddp import ddp_job
    from logitlab.run.fastpath import gpus_hidden
    from logitlab.run.gpu_check import direct_cuda_check
    from logitlab.run.sweep import completed_job, in_multirun, job_record

    sweeping = in_multirun()
    if sweeping and os.environ.get(CONTINUED) == "1":
        done = completed_job(cfg.paths.output_dir, resume_overrides())
        if done is not None:
            log.info("kept: this job completed in an earlier launch of the sweep")
            return done.get(cfg.get("optimized_metric") or "")
    metrics: dict[str, float] = {}
    with (
        user_errors(),
        refusal_undone(cfg.paths.output_dir, LAUNCH, sweeping),
        job_record(cfg.paths.output_dir, sweeping, resume_overrides()),
        ddp_job(cfg.paths.output_dir, resume_overrides()),
        gpus_hidden(bool(cfg.get("fastpath")) and cfg.trainer.get("accelerator") == "cpu"),
        direct_cuda_check(),
    ):
        metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "")  # None: failed (job.json says why)


LAUNCH = Launch([])


def main() -> None:
    """The entry point: `python -m logitlab.train` and the console script logitlab-train.

    The command line is checked and the run's folder claimed before Hydra starts (launch.py);
    the claim is released when the run ends, however it ends.
    """
    from logitlab.run.ddp import ddp_child_argv
    from logitlab.run.launch import prepare
    from logitlab.run.lock import release
    from logitlab.run.sweep import STOPPED, stopped

    global LAUNCH
    if ddp_child_argv():  # a DDP child runs a job its parent already checked and claimed
        hydra_main()
        return
    with user_errors():
        LAUNCH = prepare(sys.argv[1:], CONFIG_PATH)
    sys.argv = [sys.argv[0], *LAUNCH.argv]
    if LAUNCH.saved.get("continued"):
        os.environ[CONTINUED] = "1"  # for the jobs, also those a launcher starts elsewhere
    code: Any = 0
    try:
        hydra_main()
    except (SystemExit, KeyboardInterrupt) as stop:
        code = stop.code if isinstance(stop, SystemExit) else STOPPED
        if LAUNCH.kind == "sweep" and LAUNCH.folder is not None and code == STOPPED:
            stopped(LAUNCH.folder)  # the summary so far, and how to go on
            raise SystemExit(STOPPED) from None
        raise
    finally:
        if LAUNCH.folder is not None:
            release(LAUNCH.folder)
            folder = LAUNCH.folder
            if code == 2 and LAUNCH.kind == "sweep" and LAUNCH.fresh and not any(folder.iterdir()):
                folder.rmdir()  # a refused sweep leaves no folder behind


if __name__ == "__main__":
    main()
