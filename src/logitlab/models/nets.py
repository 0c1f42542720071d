"""Networks for the heads: any nn.Module taking `in_shape` and `num_outputs` works.

logitlab builds the network from `model/net` (`_target_` and the network's own arguments) and
passes two keyword arguments: `in_shape`, one sample's shape ((F,) for a table, (C, H, W) for
an image), and `num_outputs` (C for the multiclass head, 1 for the binary head). `forward(x)`
returns (N, num_outputs) raw logits; the head owns softmax or sigmoid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from logitlab.errors import ConfigError, first_line

log = logging.getLogger(__name__)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


def activation_class(name: str) -> type[nn.Module]:
    """The activation called `name`, or a one-line error listing the known ones."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"model.net.activation='{name}' is not known; use one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


def image_shape(in_shape: Sequence[int], net: str) -> tuple[int, int, int]:
    """(C, H, W) of an image input, or a one-line error for a table."""
    if len(in_shape) != 3:
        raise ConfigError(
            f"model/net={net} takes images (C, H, W) but the data gives samples of shape "
            f"{tuple(in_shape)}; use model/net=mlp or model/net=linear for tables"
        )
    channels, height, width = (int(d) for d in in_shape)
    return channels, height, width


class Linear(nn.Module):
    """One linear layer on the flattened input: softmax (or logistic) regression, the
    notebook's one-layer model."""

    def __init__(self, in_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MLP(nn.Module):
    """Flatten, then linear → activation → dropout per hidden size, then a linear layer."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (128, 64),
        activation: str = "relu",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        act = activation_class(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CNN(nn.Module):
    """A small conv net for 1- or 3-channel images from 8x8 to 64x64.

    Per width in `channels`: 3x3 conv (batch norm if `batch_norm`), ReLU and a 2x2 max-pool
    (while the map is at least 2x2); then the map is flattened (or first average-pooled to
    `pool` x `pool`) into a head: linear → ReLU → dropout → linear.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.25,
        pool: int | None = None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        width, size, _ = image_shape(in_shape, "cnn")
        layers: list[nn.Module] = []
        for out in channels:
            norm = nn.BatchNorm2d(out) if batch_norm else nn.Identity()
            layers += [nn.Conv2d(width, out, 3, padding=1), norm, nn.ReLU()]
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            width = out
        if pool:
            layers.append(nn.AdaptiveAvgPool2d(pool))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():  # the flattened size for this image size
            flat = self.features(torch.zeros(1, *in_shape)).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResNet(nn.Module):
    """torchvision's resnet18 for small images with `in_shape` channels: a 3x3 stride-1 stem,
    no stem max-pool, a `num_outputs` head. No download; `weights_path` may name a local state
    dict (read with weights_only=True) whose tensors of matching shape are loaded."""

    def __init__(
        self, in_shape: Sequence[int], num_outputs: int, weights_path: str | None = None
    ) -> None:
        super().__init__()

        channels, _, _ = image_shape(in_shape, "resnet")
        net = resnet18(weights=None, num_classes=num_outputs)
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net
        if weights_path:
            self.load_weights(weights_path)

    def load_weights(self, path: str) -> None:
        """Load the tensors of a local state dict whose names and shapes fit this network."""
        if not Path(path).is_file():
            raise ConfigError(f"model.net.weights_path={path}: no such file; give a state dict")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            reason = first_line(error)
            raise ConfigError(
                f"model.net.weights_path={path} cannot be read as a state dict of tensors "
                f"({reason}); save one with torch.save(model.state_dict(), path)"
            ) from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ConfigError(f"model.net.weights_path={path} holds no state dict")
        own = self.net.state_dict()
        fitting = {
            key.removeprefix("net."): value
            for key, value in state.items()
            if isinstance(value, torch.Tensor)
            and own.get(key.removeprefix("net.")) is not None
            and own[key.removeprefix("net.")].shape == value.shape
        }
        if not fitting:
            raise ConfigError(
                f"model.net.weights_path={path}: no tensor fits resnet18's layers; give a "
                "resnet18 state dict"
            )
        self.net.load_state_dict(fitting, strict=False)
        log.info("model.net.weights_path: %d of %d tensors loaded", len(fitting), len(own))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
