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


class CountNvmlLoads(L.Callback):
    """How often training tried to load NVML (torch's NVML-based GPU check), and the optimizer
    steps it took, written to `path` as JSON when training ends."""

    def __init__(self, path: str) -> None:
        self.path, self.loads = path, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import ctypes

        self.cdll = load = ctypes.CDLL

        def counting(name: Any, *args: Any, **kwargs: Any) -> Any:
            self.loads += "nvidia-ml" in str(name)
            return load(name, *args, **kwargs)

        ctypes.CDLL = counting  # type: ignore[misc, assignment]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import ctypes
        import json
        import os

        ctypes.CDLL = self.cdll  # type: ignore[misc]
        record = {
            "loads": self.loads,
            "steps": trainer.global_step,
            "check": os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"),
        }
        with open(self.path, "w") as file:
            json.dump(record, file)
