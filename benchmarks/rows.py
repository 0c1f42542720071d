"""A user's own Dataset, as benchmarks/workloads.py brings it through `data=dataset`."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

CLASSES = 10


class Rows(Dataset):
    """(a float32 row of features in [0, 1], its class index), read one at a time from an .npz
    with arrays x, y and the split indices `part` (train, val or test) names."""

    def __init__(self, path: str, part: str) -> None:
        with np.load(path) as npz:
            index = npz[part]
            self.x = torch.from_numpy(npz["x"][index].astype(np.float32) / 255.0)
            self.y = torch.from_numpy(npz["y"][index].astype(np.int64))
        self.classes = [str(c) for c in range(CLASSES)]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])
