"""Learning-rate schedules: the `scheduler` group's keys turned into Lightning's scheduler config.

A scheduler node is its `_target_`'s arguments plus three keys of Lightning's own: `interval`
(`step` or `epoch`), `frequency` and `monitor` (ReduceLROnPlateau's metric). A target that takes
`total_steps` or `steps_per_epoch` gets them from the Trainer (`estimated_stepping_batches`:
`max_epochs`, `max_steps`, `limit_train_batches` and gradient accumulation included), counted in
the schedule's own interval, unless the config sets them.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import lightning as L
from hydra.utils import get_class, instantiate
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from logitlab.config.rules import SCHEDULE_KEYS
from logitlab.errors import ConfigError


class WarmupCosine(SequentialLR):
    """A linear warmup over `warmup_epochs` from `warmup_start_factor * lr` to `lr`, then a
    cosine from `lr` that reaches `min_lr` at the last step: torch's LinearLR, then its
    CosineAnnealingLR. Stepped every optimizer step (or every epoch with interval=epoch)."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        steps_per_epoch: int,
        warmup_epochs: float = 1.0,
        warmup_start_factor: float = 0.01,
        min_lr: float = 0.0,
    ) -> None:
        warmup = min(round(warmup_epochs * steps_per_epoch), total_steps - 1)
        schedules: list[Any] = [
            CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup - 1, 1), eta_min=min_lr)
        ]
        if warmup > 0:
            start = LinearLR(optimizer, warmup_start_factor, 1.0, total_iters=warmup)
            schedules.insert(0, start)
        super().__init__(optimizer, schedules, milestones=[warmup] if warmup > 0 else [])


def scheduler_config(spec: dict[str, Any], optimizer: Optimizer, module: L.LightningModule) -> dict:
    """Lightning's `lr_scheduler` dict for a scheduler node of `module` (its Trainer is asked
    for the lengths only when the target takes them)."""
    spec = dict(spec)
    lightning = {key: spec.pop(key, default) for key, default in SCHEDULE_KEYS.items()}
    takes = inspect.signature(get_class(spec["_target_"])).parameters
    wanted = [k for k in ("total_steps", "steps_per_epoch") if k in takes and k not in spec]
    lengths = schedule_lengths(module.trainer, lightning["interval"]) if wanted else {}
    scheduler = instantiate(spec, optimizer=optimizer, **{k: lengths[k] for k in wanted})
    name = f"lr-{type(optimizer).__name__}"  # LearningRateMonitor's name without a scheduler
    return {"scheduler": scheduler, "name": name, **lightning}


def schedule_lengths(trainer: L.Trainer, interval: str) -> dict[str, int]:
    """total_steps and steps_per_epoch of the run, in optimizer steps or (interval=epoch) in
    epochs."""
    total = trainer.estimated_stepping_batches  # sets up the training data: first
    per_epoch = steps_per_epoch(trainer)
    if interval == "epoch":
        return {"total_steps": math.ceil(total / per_epoch), "steps_per_epoch": 1}
    return {"total_steps": int(total), "steps_per_epoch": per_epoch}


def steps_per_epoch(trainer: L.Trainer) -> int:
    """Optimizer steps in one training epoch (once `estimated_stepping_batches` set it up)."""
    batches = trainer.num_training_batches
    if not math.isfinite(batches):
        raise ConfigError(
            "scheduler: a schedule needs a training set of known length (an iterable dataset "
            "has none); set trainer.max_steps and the schedule's total_steps, or scheduler=none"
        )
    return max(math.ceil(batches / trainer.accumulate_grad_batches), 1)
