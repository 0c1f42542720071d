"""Training entry point: `python -m logitlab.train [key=value ...]` (console script logitlab-train).

Composes conf/train.yaml, trains, tests the best checkpoint and writes <run_dir>/metrics.json.
Heavy imports (torch, lightning) happen inside `train`, so `--help` answers at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import logitlab.config
from logitlab.errors import user_errors

CONFIG_PATH = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("logitlab.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Instantiate data, model, callbacks, loggers and trainer from `cfg`; fit, test, record."""
    import lightning as L

    from logitlab.config import check_config
    from logitlab.run import quiet_lightning

    quiet_lightning()
    cfg, ckpt_path = starting_point(cfg)
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    fitted = fit(trainer, model, datamodule, cfg, ckpt_path) if cfg.get("train") else {}
    tested = test_best(trainer, model, datamodule) if cfg.get("test") else {}
    return record(trainer, cfg, fitted, tested)


def starting_point(cfg: DictConfig) -> tuple[DictConfig, Path | None]:
    """The config to run and the checkpoint to start from (a resume, a SLURM requeue, or none)."""
    from logitlab.config import prepare_resume

    if cfg.get("resume"):
        cfg, ckpt_path = prepare_resume(cfg, resume_overrides())
        log.info("resuming %s from %s", cfg.resume, ckpt_path)
        return cfg, ckpt_path
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0 and last.is_file():
        log.info("SLURM requeued this job: resuming from %s", last)
        return cfg, last
    return cfg, None


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """DataModule (loaded and validated), model and Trainer, all from the config."""
    from logitlab.config import model_class
    from logitlab.run import instantiate, instantiate_callbacks, instantiate_loggers, quiet_profiler

    datamodule = instantiate(cfg.data, task=model_class(cfg).task)
    datamodule.prepare_data()
    datamodule.setup("fit")  # load and validate once, before anything trains
    extra = {"pos_weight": datamodule.pos_weight} if datamodule.pos_weight is not None else {}
    model = instantiate(cfg.model, _recursive_=False, _convert_="all", **extra)
    if cfg.get("compile"):
        model.net.compile()  # in place: checkpoints keep their plain parameter names
    loggers = instantiate_loggers(cfg.get("logger"))
    progress_bar = cfg.trainer.get("enable_progress_bar", True)
    summary = cfg.trainer.get("enable_model_summary", True)
    callbacks = instantiate_callbacks(cfg.get("callbacks"), bool(loggers), progress_bar, summary)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    if not cfg.trainer.get("profiler"):
        trainer.profiler = quiet_profiler()
    if trainer.is_global_zero:
        datamodule.save_splits(Path(cfg.paths.output_dir) / "splits.npz")
    return datamodule, model, trainer


def fit(trainer: Any, model: Any, datamodule: Any, cfg: DictConfig, ckpt_path: Path | None) -> dict:
    """Train; a divergence is recorded in metrics.json, a SIGTERM/Ctrl+C exits 143."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from logitlab.errors import TrainingDiverged
    from logitlab.run import write_json

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingDiverged as diverged:
        if trainer.is_global_zero:
            failure = {
                "status": "diverged",
                "diverged_at_step": diverged.step,
                "diverged_at_epoch": diverged.epoch,
                "last_finite_loss": diverged.last_finite,
                "error": str(diverged),
            }
            write_json(Path(cfg.paths.output_dir) / "metrics.json", failure)
        raise
    except SIGTERMException:
        log.warning(
            "stopped; continue with: python -m logitlab.train resume=%s", cfg.paths.output_dir
        )
        raise SystemExit(143) from None
    return dict(trainer.callback_metrics)


def test_best(trainer: Any, model: Any, datamodule: Any) -> dict:
    """Test the best checkpoint (highest val/acc), or the final weights when there is none."""
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor), "")
    if not best:
        log.warning("no best checkpoint (checkpointing off or fast_dev_run): testing final weights")
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    return results[0] if results else {}


def record(trainer: Any, cfg: DictConfig, fitted: dict, tested: dict) -> dict[str, float]:
    """metrics.json (a resume keeps what it does not recompute) and the TensorBoard summary."""
    from logitlab.dashboards import log_run_summary
    from logitlab.run import final_metrics, write_json

    path = Path(cfg.paths.output_dir) / "metrics.json"
    previous = json.loads(path.read_text()) if cfg.get("resume") and path.is_file() else {}
    metrics = final_metrics(previous, fitted, tested)
    log_run_summary(trainer, cfg, metrics)
    if trainer.is_global_zero:
        write_json(path, metrics)
        log.info("final metrics written to %s", path)
    return metrics


def resume_overrides() -> list[str]:
    """The command-line overrides of this invocation (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Train one configuration; returns the metric a Hydra sweeper optimises."""
    from logitlab.run import ddp_job, gpus_hidden
    from logitlab.sweep import in_multirun, job_record

    sweeping = in_multirun()
    metrics: dict[str, float] = {}
    with (
        user_errors(),
        job_record(cfg.paths.output_dir, keep_going=sweeping),
        ddp_job(cfg.paths.output_dir, resume_overrides()),
        gpus_hidden(cfg.trainer.get("accelerator") == "cpu"),
    ):
        metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "", worst_value())


def worst_value() -> float:
    """What a failed sweep job returns: the worst score, so an Optuna search goes on past it."""
    from hydra.core.hydra_config import HydraConfig

    direction = (
        HydraConfig.get().sweeper.get("direction", "maximize") if HydraConfig.initialized() else ""
    )
    return float("inf") if str(direction).lower() == "minimize" else float("-inf")


def main() -> None:
    """The entry point: `python -m logitlab.train` and the console script logitlab-train."""
    if not ddp_child_argv():  # a DDP child runs a job its parent already checked
        with user_errors():
            logitlab.config.preflight(sys.argv[1:], CONFIG_PATH)
    hydra_main()


def ddp_child_argv() -> bool:
    """In a DDP child process, run exactly its parent's job, not the command line again.

    Lightning starts ranks 1..N-1 by re-running the command line; under `-m` that would re-run
    the whole sweep and write a second sweep folder. The parent leaves its job's folder and
    overrides in LOGITLAB_DDP_JOB, and the child becomes a single run of that job.
    """
    from logitlab.run import DDP_JOB_ENV

    job = os.environ.get(DDP_JOB_ENV)
    rank = os.environ.get("LOCAL_RANK", "0")
    if not job or rank == "0":
        return False
    spec = json.loads(job)
    sys.argv = [
        sys.argv[0],
        *spec["overrides"],
        f"hydra.run.dir={spec['dir']}",
        "hydra.output_subdir=null",
        f"hydra.job.name=train_ddp_process_{rank}",
    ]
    return True


if __name__ == "__main__":
    main()
