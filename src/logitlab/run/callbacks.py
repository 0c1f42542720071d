"""Callbacks for what Lightning's own do not cover: an interrupt-safe last.ckpt with the RNG
state, the epoch's wall time and throughput, a best checkpoint whose ties go to the lower
val/loss, an early stopping that keeps a raised patience, a progress bar redrawn by the clock,
a line per epoch without a bar."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from logitlab.dashboards.diagnostics import log_to_loggers
from logitlab.errors import TrainingDiverged
from logitlab.run.layout import LAST

log = logging.getLogger(__name__)


class Resumable(L.Callback):
    """Save last.ckpt when SIGTERM or SIGINT arrives, and carry the RNG state in checkpoints.

    Lightning stops at the next batch boundary on SIGTERM (raising SIGTERMException, which
    reaches `on_exception`) but writes no checkpoint then, and Ctrl+C (SIGINT) interrupts
    wherever it lands, possibly between two parameter updates of one optimizer step. Here SIGINT
    is turned into SIGTERM, so both stop at a batch boundary and last.ckpt holds a finished step.
    The torch RNG state travels in the checkpoint (Lightning restores none), so a resumed run
    draws the same dropout masks as an uninterrupted one. Checkpoint paths in a resumed
    checkpoint follow the run folder, wherever it was moved or copied to.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.signal_received: int | None = None
        self._previous_sigint: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def on_sigint(signum: int, frame: Any) -> None:
            self.signal_received = signum
            signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the batch's end

        if trainer.is_global_zero or trainer.world_size == 1:
            self._previous_sigint = signal.signal(signal.SIGINT, on_sigint)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.signal_received = self.signal_received or signal.SIGTERM
        path = self.dirpath / LAST
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

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Before the checkpoint callbacks read their state: a run folder moved or copied since
        # this checkpoint finds its best checkpoint in the folder it is in now.
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.checkpoint_callbacks:
            state, dirpath = states.get(callback.state_key), getattr(callback, "dirpath", None)
            if isinstance(state, dict) and dirpath:
                states[callback.state_key] = relocated(state, str(dirpath))

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])


def relocated(state: dict[str, Any], dirpath: str) -> dict[str, Any]:
    """A ModelCheckpoint's saved state with its paths moved from its saved dirpath to `dirpath`."""
    old = state.get("dirpath")
    if not isinstance(old, str) or old == dirpath:
        return state

    def move(value: Any) -> Any:
        if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
            return dirpath + value[len(old) :]
        if isinstance(value, dict):
            return {move(key): move(item) for key, item in value.items()}
        return value

    return {key: move(value) for key, value in state.items()}


class EpochClock(L.Callback):
    """`time/epoch_s` (from the previous epoch's end to this one's: a training epoch, its
    validation and the previous epoch's checkpoints, which Lightning writes after every other
    callback's epoch end), `time/epoch_cpu_s` (the CPU time this process spent on it, every
    thread; DataLoader workers are processes of their own) and `time/samples_per_s`.

    The first epoch of a run (or of a resume) counts from its start. Samples are those of all
    DDP ranks. Timings are not results: they go to the loggers (TensorBoard), not to
    metrics.json.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.cpu_started = 0.0
        self.samples = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.started is None:
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
        self.samples = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.samples += len(batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now, cpu_now = time.perf_counter(), time.process_time()
        seconds = now - (self.started or now)
        samples = self.samples * trainer.world_size
        log_to_loggers(
            trainer,
            {
                "time/epoch_s": seconds,
                "time/epoch_cpu_s": cpu_now - self.cpu_started,
                "time/samples_per_s": samples / seconds if seconds > 0 else 0.0,
            },
        )
        self.started, self.cpu_started = now, cpu_now  # the next epoch starts here


class NewLearningRate(L.Callback):
    """A resume with `optimizer.lr=...` (the rescue of a diverged run) trains at that rate.

    Lightning restores the optimizer's state from the checkpoint, old learning rate included,
    after the optimizer was built with the new one; this puts the new rate back once training
    starts (and a scheduler's base rates with it).
    """

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr
                if "initial_lr" in group:
                    group["initial_lr"] = self.lr
        for config in trainer.lr_scheduler_configs:
            if hasattr(config.scheduler, "base_lrs"):
                config.scheduler.base_lrs = [self.lr for _ in config.scheduler.base_lrs]


class EarlyStopping(LightningEarlyStopping):
    """Lightning's EarlyStopping, except that a resumed run keeps the patience it is given.

    Lightning's restores the checkpoint's patience along with the count of epochs without
    improvement, so `callbacks.early_stopping.patience=30` on resume had no effect; here the
    count comes back and the patience stays the configured one.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience
        if self.wait_count < patience:
            self.stopped_epoch = 0  # it may train on: no longer a stopped run


class EMAWeightAveraging(LightningEMA):
    """Lightning's EMA of the weights, tested with them: a checkpoint loaded to test (the best
    one, after fit) keeps its weights, the average, where Lightning's callback would load the
    raw ones saved beside them. Fitting (a resume) restores both, as Lightning does."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint; with save_top_k=1 a tie of `monitor` goes to the epoch with
    the lower `tie_break` (val/loss).

    On a small val split val/acc ties for many epochs (86 samples: from epoch 2 on), and
    Lightning keeps the first of them, an under-trained model; here a later epoch of the same
    val/acc and a lower val/loss replaces it. tie_break=null: Lightning's first-wins.
    """

    def __init__(self, *args: Any, tie_break: str | None = "val/loss", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tie_break = tie_break
        self.tie_break_score: float | None = None  # `tie_break` of the best checkpoint

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        better = super().check_monitor_top_k(trainer, current)
        second = trainer.callback_metrics.get(self.tie_break) if self.tie_break else None
        if current is None or second is None or self.save_top_k != 1:
            return better
        tied = bool(self.best_k_models) and bool(
            current == self.best_k_models[self.kth_best_model_path]
        )
        lower = self.tie_break_score is not None and float(second) < self.tie_break_score
        better = trainer.strategy.reduce_boolean_decision(better or (tied and lower))
        if better:
            self.tie_break_score = float(second)
        return better

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tie_break_score": self.tie_break_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.tie_break_score = state_dict.get("tie_break_score")  # None from earlier versions


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every `interval_s` seconds and at the last batch.

    Lightning's redraws every `refresh_rate` batches, whatever a batch takes: an MLP step of a
    few milliseconds then pays for 25 redraws a second, a ResNet step of half a second shows a
    bar that moves every 5 s. tqdm's own default of 0.1 s fits both; `refresh_rate` still
    counts too (the batches between redraws at the least, 1: every batch may be drawn).
    """

    def __init__(self, refresh_rate: int = 1, interval_s: float = 0.1, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.interval_s = interval_s
        self.next_draw = 0.0  # time.monotonic() from which the next redraw is due

    def due(self, done: int, total: float | None) -> bool:
        """Whether the bar at `done` of `total` batches is redrawn now."""
        now = time.monotonic()
        if done != total and now < self.next_draw:
            return False
        self.next_draw = now + self.interval_s
        return True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self.due(idx + 1, self.train_progress_bar.total):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.due(idx + 1, self.val_progress_bar.total):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, idx, dataloader_idx)


class EpochLine(L.Callback):
    """One line per epoch when the progress bar is off (trainer.enable_progress_bar=false):
    `epoch 3/20: train/loss 0.1234, ..., val/acc 0.9700 (1.2 s)`. The module logs its epoch's
    train metrics after the callbacks' on_train_epoch_end, so the line is printed at the next
    epoch's start, or when training ends."""

    SHOWN = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")

    def __init__(self) -> None:
        self.start = 0.0
        self.ended: tuple[int, float] | None = None  # (epoch, seconds) not printed yet

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print(trainer)
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ended = (trainer.current_epoch, time.monotonic() - self.start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print(trainer)

    def print(self, trainer: L.Trainer) -> None:
        if self.ended is None or not trainer.is_global_zero:
            return
        (epoch, seconds), self.ended = self.ended, None
        metrics = trainer.callback_metrics
        shown = ", ".join(f"{k} {float(metrics[k]):.4f}" for k in self.SHOWN if k in metrics)
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info("epoch %d%s: %s (%.1f s)", epoch, total, shown, seconds)
