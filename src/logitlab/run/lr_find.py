"""`lr_find=true`: Lightning's learning-rate finder before training, its curve and suggestion."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from logitlab.errors import ConfigError

STEPS = 100  # the learning-rate finder's steps, whatever trainer.max_epochs is
log = logging.getLogger("logitlab.train")


def epochs_needed(batches: int) -> int:
    """Epochs of `batches` training batches the finder's steps need (they must not end first)."""
    return math.ceil(STEPS / max(batches, 1)) + 1


def find_lr(trainer: Any, model: Any, datamodule: Any, cfg: DictConfig, console: bool) -> float:
    """Lightning's learning-rate finder: the curve to TensorBoard, lr_find.json, the suggestion
    (and, with `console`, a line on the console)."""
    from lightning.pytorch.tuner import Tuner

    from logitlab.dashboards.diagnostics import tensorboard
    from logitlab.run.files import write_json

    finder = Tuner(trainer).lr_find(
        model, datamodule=datamodule, update_attr=False, num_training=STEPS
    )
    if finder is None:  # another rank under DDP
        return float(cfg.optimizer.lr)
    suggestion = finder.suggestion()
    if suggestion is None:
        raise ConfigError(
            "lr_find: the loss curve gave no suggestion (too few batches?); set "
            "optimizer.lr by hand or use more data"
        )
    folder = Path(cfg.paths.output_dir)
    write_json(
        folder / "lr_find.json",
        {
            "suggestion": suggestion,
            "steps": len(finder.results["lr"]),  # what it swept: this many steps, lr from-to
            "swept": [float(finder.results["lr"][0]), float(finder.results["lr"][-1])],
            "lr": [float(v) for v in finder.results["lr"]],
            "loss": [float(v) if math.isfinite(v) else None for v in finder.results["loss"]],
        },
    )
    logger = tensorboard(trainer)
    if logger is not None:
        logger.experiment.add_figure("lr_find/curve", finder.plot(suggest=True), 0)
        logger.experiment.flush()
    log.info(
        "lr_find: swept %d steps, optimizer.lr from %.3g to %.3g (it stops early once the loss "
        "diverges)", len(finder.results["lr"]), finder.results["lr"][0], finder.results["lr"][-1],
    )  # fmt: skip
    log.info(
        "lr_find: suggested optimizer.lr=%.3g (the curve: lr_find/curve in TensorBoard, "
        "%s); train with: python -m logitlab.train optimizer.lr=%.3g",
        suggestion, folder / "lr_find.json", suggestion,
    )  # fmt: skip
    if console:
        print(f"lr_find: suggested optimizer.lr={suggestion:.3g}", flush=True)
    return float(suggestion)
