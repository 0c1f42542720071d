"""Callbacks: interrupt-safe checkpoints and RNG state, and a lighter progress bar."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from logitlab.errors import TrainingDiverged

log = logging.getLogger(__name__)


class Resumable(L.Callback):
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


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, moved forward at most `refresh_rate` times a second.

    RichProgressBar redraws `refresh_rate` times a second, but after every batch it also moves
    its task and re-reads the progress-bar metrics; on a small model that bookkeeping costs
    more than the drawing (about 35 us a batch, 2-3 % of an MNIST-sized MLP epoch on a CPU).
    Here a batch updates the bar only when a redraw is due, and the last batch always does, so
    what is shown is the same.
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
            super().on_train_batch_end(trainer, pl_module, outputs, batch, idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # An epoch cut short (max_steps, a signal) shows where it stopped.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done > 0:
            super().on_train_batch_end(trainer, pl_module, None, None, done - 1)
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
