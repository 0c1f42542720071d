"""Callbacks that make a run resumable: interrupt-safe checkpoints and restored RNG state."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
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


class EpochTimer(L.Callback):
    """Log each training epoch's wall time (training and its validation) and throughput.

    An epoch resumed midway is timed from the resume on.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.samples = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.samples = time.perf_counter(), 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.samples = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.samples += len(batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self.start
        pl_module.log("time/epoch_s", seconds, on_epoch=True, sync_dist=False)
        pl_module.log("time/samples_per_s", self.samples / seconds, on_epoch=True)
