"""Batches of a split: a seeded per-epoch order (DDP shards, mid-epoch resume), tensor batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochOrder(DistributedSampler):
    """Sample indices in a seeded per-epoch order, and one DDP rank's shard of it.

    Training (`pad`) takes DistributedSampler's own order and shards: `randperm(n)` seeded with
    `seed + epoch` (0..n-1 without shuffling), its head repeated so every rank gets as many,
    every world_size-th index from the rank's. It depends only on the seed and the epoch, so a
    resumed run sees the same batches; Lightning calls `set_epoch` every training epoch.
    Evaluation shards are disjoint and unpadded (DistributedSampler would count some samples
    twice in the metrics). `skip` (if given) says how many of this epoch's indices a resumed run
    already trained on; iteration starts after them while `len` stays the epoch's.
    """

    def __init__(
        self,
        n: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = False,
        skip: Callable[[], int] | None = None,
    ) -> None:
        positions = cast(Dataset, range(n))  # DistributedSampler reads only its length
        super().__init__(positions, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        self.n, self.pad, self.skip = n, pad, skip

    def indices(self) -> torch.Tensor:
        """This rank's indices for the current epoch, as a tensor."""
        if self.pad and self.num_replicas > 1:
            return torch.tensor(list(super().__iter__()), dtype=torch.int64)
        if self.shuffle:  # as DistributedSampler orders them (one rank: no Python list)
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        first = self.skip() if self.skip else 0
        return iter(self.indices()[first:].tolist())

    def __len__(self) -> int:
        if self.pad or self.num_replicas == 1:
            return self.num_samples
        return len(range(self.rank, self.n, self.num_replicas))


class TensorBatches:
    """Whole batches indexed out of tensors already in memory.

    No per-sample __getitem__, no collate, no worker processes: one index_select per batch.
    It yields the same batches as a DataLoader over a TensorDataset with the same `sampler`.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        sampler: EpochOrder,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        # How many batches of this epoch a resumed run already trained on (Lightning's count).
        self.batches_done = batches_done or (lambda: 0)
        # Lightning reads these like a DataLoader's: it calls sampler.set_epoch every epoch.
        self.sampler = sampler
        self.batch_sampler = None

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Makes the loader resumable mid-epoch for Lightning: the epoch is all it needs."""
        return {"epoch": self.sampler.epoch}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """The epoch comes back through set_epoch and the position through `batches_done`."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler.indices()
        contiguous = not self.sampler.shuffle and self.sampler.num_replicas == 1
        first = self.batches_done() * self.batch_size  # skip what a resumed run already saw
        for start in range(first, len(order), self.batch_size):
            if contiguous:  # views, no copy
                yield (
                    self.x[start : start + self.batch_size],
                    self.y[start : start + self.batch_size],
                )
            else:  # index_select copies whole rows (docs/benchmarks.md)
                index = order[start : start + self.batch_size]
                yield self.x.index_select(0, index), self.y.index_select(0, index)


class Loaders:
    """Each split's batches: this rank's shard of a seeded order, resumable mid-epoch, either
    whole batches indexed out of in-memory tensors or a DataLoader over a split's Dataset."""

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
    ) -> None:
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed

    def batches(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        dataset: Dataset | None,
        split: str,
        shuffle: bool,
        pad: bool,
        trainer: Any,
    ) -> TensorBatches | DataLoader:
        """TensorBatches of (x, y), or a DataLoader of `dataset` when one is given."""
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        train = split == "train"
        batch_size = self.batch_size if train else self.eval_batch_size

        def done() -> int:  # batches of this epoch a resumed run already trained on
            return trained_batches(trainer)

        if dataset is None:
            sampler = EpochOrder(len(y), shuffle, self.seed, rank, world, pad)
            return TensorBatches(x, y, batch_size, sampler, done if train else None)

        def skip() -> int:
            return done() * batch_size

        sampler = EpochOrder(len(y), shuffle, self.seed, rank, world, pad, skip if train else None)
        pin = self.pin_memory
        if pin is None:  # on when training on a GPU
            pin = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=pin,
            collate_fn=batches_of(dataset),
        )

    def evaluation(
        self, x: torch.Tensor, y: torch.Tensor, dataset: Dataset | None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """A split's batches in order, outside a Trainer (predict, calibrate)."""
        if dataset is None:
            return zip(x.split(4096), y.split(4096), strict=True)
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=batches_of(dataset),
        )


def batches_of(dataset: Dataset) -> Callable[[list[Any]], Any] | None:
    """The collate function of a dataset that forms its own batches (a `collate` method:
    DatasetItems standardises a whole batch); None: the DataLoader's default_collate."""
    return getattr(dataset, "collate", None)


def trained_batches(trainer: Any) -> int:
    """Batches of the current epoch already trained on: > 0 only in a run resumed mid-epoch.

    Read from the trainer's public counters: every epoch takes ceil(batches / accumulation)
    optimizer steps, so the steps beyond the finished epochs are this epoch's.
    """
    if trainer is None or not isinstance(trainer.num_training_batches, int):
        return 0
    per_epoch, accumulate = trainer.num_training_batches, trainer.accumulate_grad_batches
    steps = trainer.global_step - trainer.current_epoch * math.ceil(per_epoch / accumulate)
    return min(max(steps * accumulate, 0), per_epoch)
