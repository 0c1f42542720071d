"""A user's own network, outside logitlab's source: trained through hydra.searchpath.

tests/user_conf/model/net/tiny_conv.yaml names it by `_target_: my_nets.TinyConvNet`; the
tests put this folder on PYTHONPATH, as a user puts their own package there.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyConvNet(nn.Module):
    """One conv layer, a global average pool and a linear layer."""

    def __init__(self, in_shape: list[int], num_outputs: int, width: int = 8) -> None:
        super().__init__()
        channels = in_shape[0]
        self.conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.out = nn.Linear(width * 4, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(torch.relu(self.conv(x))).flatten(1))


class DataDependent(nn.Module):
    """A linear layer behind a branch on the data's values, which eager PyTorch runs and
    torch.export cannot trace: the network an ONNX export refuses."""

    def __init__(self, in_shape: list[int], num_outputs: int) -> None:
        super().__init__()
        self.out = nn.Linear(int(torch.tensor(in_shape).prod()), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.sum().item() > 0:  # a Python branch on a value: no graph can hold it
            x = x * 2
        return self.out(x)
