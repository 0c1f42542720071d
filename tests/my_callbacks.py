"""A callback of the tests' own (on PYTHONPATH through tests/): the raw weights after every
optimizer step, saved to `path` when training ends, for an EMA computed independently."""

from __future__ import annotations

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
