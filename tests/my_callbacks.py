"""Callbacks of the tests' own (on PYTHONPATH through tests/): the raw weights after every
optimizer step, saved to `path` when training ends, for an EMA computed independently; CPU
work where Lightning writes checkpoints, for the epoch clock."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


class RecordWeights(L.Callback):
    def __init__(self, path: str) -> None:
        self.path, self.steps = path, []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(self.steps, self.path)


class BusyEpochEnd(L.Callback):
    """`seconds` of CPU work at every epoch's end, after logitlab's EpochClock has logged the
    epoch: where Lightning writes the epoch's checkpoints."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        end = time.process_time() + self.seconds
        while time.process_time() < end:
            pass
