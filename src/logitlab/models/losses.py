"""Losses from config: any callable by `_target_`, with what logitlab needs to know about it."""

from __future__ import annotations

import functools
from typing import Any

import torch
from hydra.utils import get_object

# Keys of a loss config that describe it to logitlab; the rest are the criterion's arguments.
LOSS_KEYS = ("name", "head", "input")


def build_criterion(loss: dict[str, Any]) -> Any:
    """The callable `loss[_target_]` with its arguments (a functools.partial if `_partial_`).

    Class weights (`weight`, `pos_weight`) given as numbers become float32 tensors.
    """

    spec = {key: value for key, value in loss.items() if key not in LOSS_KEYS}
    target, partial = get_object(spec.pop("_target_")), spec.pop("_partial_", False)
    for key in ("weight", "pos_weight"):
        if spec.get(key) is not None:
            spec[key] = torch.as_tensor(spec[key], dtype=torch.float32)
    return functools.partial(target, **spec) if partial else target(**spec)
