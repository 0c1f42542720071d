"""Callbacks: interrupt-safe checkpoints and RNG state, last.ckpt every epoch, a lighter bar,
Lightning's checkpoint and early-stopping callbacks with their state key built once, and its
model summary out of the per-step hook calls."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from types import MethodType
from typing import Any

import lightning as L
import torch
from lightning.pytorch import callbacks as lightning_callbacks
from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from logitlab.errors import TrainingDiverged
from logitlab.run import atomic_path

log = logging.getLogger(__name__)


class NoStepHooks:
    """Leave a callback that acts per epoch out of Lightning's per-step hook calls.

    At every training step Lightning calls these six hooks of every callback, ~3 us a call even
    when the hook does nothing (a profiler label built from the callback's state key, a profiler
    context, the call). Its dispatcher only calls a hook that is callable, so a callback that
    never acts on them sets them to None. List it before the Lightning callback class it
    joins, so its Nones come first in the method lookup; a hook the class itself defines (the
    progress bar's on_train_batch_end) still wins over the None.
    """

    on_train_batch_start = None
    on_before_backward = None
    on_after_backward = None
    on_before_optimizer_step = None
    on_before_zero_grad = None
    on_train_batch_end = None


class Resumable(NoStepHooks, L.Callback):
    """Save last.ckpt when SIGTERM or SIGINT arrives, and carry the RNG state in checkpoints.

    Lightning turns SIGTERM into a SIGTERMException at the next batch boundary; SIGINT (Ctrl+C)
    is routed the same way, so the checkpoint always holds a finished step. The torch RNG state
    travels in the checkpoint so that a resumed run draws the same dropout masks as an
    uninterrupted one.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.signal_received: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def on_sigint(signum: int, frame: Any) -> None:
            self.signal_received = signum
            trainer._signal_connector.received_sigterm = True  # stop at the next batch boundary

        if trainer.is_global_zero or trainer.world_size == 1:
            signal.signal(signal.SIGINT, on_sigint)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.signal_received = self.signal_received or signal.SIGTERM
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning(
            "%s received at step %d (epoch %d): saved %s",
            signal.Signals(self.signal_received).name,
            trainer.global_step,
            trainer.current_epoch,
            path,
        )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Never let NaN weights overwrite the last good checkpoint.
        for name, tensor in pl_module.named_parameters():
            if not torch.isfinite(tensor).all():
                raise TrainingDiverged(
                    trainer.global_step,
                    trainer.current_epoch,
                    f"the weights {name} are not finite",
                    getattr(pl_module, "last_finite_loss", None),
                )

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])


class _StateKeyOnce:
    """Build `state_key` once, not at every hook call.

    Lightning formats each callback's state_key into a profiler label at every hook call, ~10
    calls a training step; ModelCheckpoint and EarlyStopping build theirs from the repr of a
    dict of their settings (~1 us each time). The settings it is made of are fixed once the
    callback is constructed, so the first key is the key.
    """

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_state_key")
        if key is None:
            key = self.__dict__["_state_key"] = super().state_key  # type: ignore[misc]
        return key


class ModelCheckpoint(_StateKeyOnce, NoStepHooks, lightning_callbacks.ModelCheckpoint):
    """Lightning's ModelCheckpoint (same name, so the same state key in checkpoints), out of
    the per-step hook calls unless it saves every N steps or every so many seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._every_n_train_steps >= 1 or self._train_time_interval is not None:
            saves_in_steps = lightning_callbacks.ModelCheckpoint.on_train_batch_end
            self.on_train_batch_end = MethodType(saves_in_steps, self)  # type: ignore[method-assign]


class EarlyStopping(_StateKeyOnce, NoStepHooks, lightning_callbacks.EarlyStopping):
    """Lightning's EarlyStopping (same name, so the same state key in checkpoints)."""


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` at the end of every epoch, whether or not the monitored metric improved.

    Since Lightning 2.6, `ModelCheckpoint(save_last=True)` refreshes last.ckpt only in an epoch
    that saves a new top-k checkpoint, so a run whose metric stalls would resume from its best
    epoch, not its last. This callback writes last.ckpt every epoch. When another checkpoint
    callback has just written this step's full checkpoint (a new best), last.ckpt becomes a hard
    link to that file rather than a second copy: one write of the weights and optimizer state
    instead of two (4 ms an epoch for the benchmark's MLP; far more for a large model on a
    network filesystem). The link is made under a temporary name and renamed over last.ckpt,
    so last.ckpt is never missing; the next epoch's write replaces the link, not the best file.
    Runs of several processes (DDP) always write a copy.
    """

    def __init__(self, dirpath: str, **kwargs: Any) -> None:
        kwargs = {"filename": "last", "save_top_k": 1, "enable_version_counter": False} | kwargs
        super().__init__(dirpath=dirpath, **kwargs)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        twin = self._twin(trainer)
        if twin is None or not _link_over(twin, filepath):
            super()._save_checkpoint(trainer, filepath)
            return
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        for logger in trainer.loggers:
            logger.after_save_checkpoint(self)

    def _twin(self, trainer: L.Trainer) -> str | None:
        """A full checkpoint file another callback wrote at this very step, if there is one."""
        if trainer.world_size != 1 or self.save_weights_only:
            return None
        for callback in trainer.checkpoint_callbacks:
            if (
                callback is not self
                and isinstance(callback, lightning_callbacks.ModelCheckpoint)
                and not callback.save_weights_only
                and callback._last_global_step_saved == trainer.global_step
                and callback._last_checkpoint_saved
                and Path(callback._last_checkpoint_saved).is_file()
            ):
                return callback._last_checkpoint_saved
        return None


def _link_over(source: str, target: str) -> bool:
    """Make `target` a hard link to `source`, atomically; False where links are not possible."""
    try:
        with atomic_path(Path(target)) as temporary:
            os.link(source, temporary)
    except OSError:
        return False
    return True


class ModelSummary(NoStepHooks, RichModelSummary):
    """Lightning's rich model summary, printed at the start of fit, out of the per-step hook
    calls (Lightning adds its own, which it calls six times a step, when none is configured)."""


class ProgressBar(NoStepHooks, RichProgressBar):
    """Lightning's rich progress bar, moved forward at most `refresh_rate` times a second.

    RichProgressBar redraws `refresh_rate` times a second, but after every batch it also moves
    its task and re-reads the progress-bar metrics; on a small model that bookkeeping costs
    more than the drawing (about 35 us a batch, 2-3 % of an MNIST-sized MLP epoch on a CPU).
    Here a batch updates the bar only when a redraw is due, and the last batch always does, so
    what is shown is the same. Of the per-step hooks it keeps on_train_batch_end only.
    """

    def __init__(self, refresh_rate: int = 10, leave: bool = False, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave, **kwargs)
        self._next_update = 0.0
        self._train_total: float = 0  # this epoch's batch count, read once per epoch

    def _due(self, batch_idx: int, total: float) -> bool:
        now = time.monotonic()
        if now < self._next_update and batch_idx + 1 < total:
            return False
        self._next_update = now + 1 / max(self.refresh_rate, 1)
        return True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_update = 0.0  # the first batch of an epoch moves the bar: rich's it/s needs it
        self._train_total = self.total_train_batches
        super().on_train_epoch_start(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_update = 0.0
        super().on_validation_start(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self._due(idx, self._train_total or self.total_train_batches):
            # RichProgressBar's by name: NoStepHooks's None comes first in the method lookup
            RichProgressBar.on_train_batch_end(self, trainer, pl_module, outputs, batch, idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # An epoch cut short (max_steps, a signal) shows where it stopped.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done > 0:
            RichProgressBar.on_train_batch_end(self, trainer, pl_module, None, None, done - 1)
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._due(idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, idx, dataloader_idx)
