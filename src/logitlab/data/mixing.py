"""Mixup and cutmix of training batches, with the soft targets they make.

Images go through torchvision's `transforms.v2.MixUp` and `CutMix` (each image mixed with the
next one in the batch, the share `lam` drawn from Beta(alpha, alpha)); a table's rows are mixed
here the same way, `lam * x + (1 - lam) * x.roll(1)`, as no library does it for tables. The
draws come from a seed of the training step (as data.augment's do), so a resumed run mixes what
an uninterrupted one would, and the global random stream is left as it was. Targets become
`lam * y + (1 - lam) * y.roll(1)`: class probabilities (N, C) for the multiclass head, the
probability of the positive class (N,) for the binary head.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    binary: bool,
    alphas: tuple[float, float],
    prob: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch mixed by mixup or cutmix (`alphas`: their Beta alphas, 0 = off; both
    on: one of them per batch, even odds), with probability `prob`; else as it came."""
    mixup, cutmix = alphas
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(2, generator=generator).tolist()
    if draws[0] >= prob or not (mixup or cutmix):
        return x, y
    use_cutmix = cutmix > 0 and (mixup == 0 or draws[1] < 0.5)
    classes = 2 if binary else num_classes
    devices = [x.device] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):  # torchvision draws from the global stream
        torch.manual_seed(seed)
        if x.ndim == 4:
            mixer = (
                v2.CutMix(alpha=cutmix, num_classes=classes)
                if use_cutmix
                else v2.MixUp(alpha=mixup, num_classes=classes)
            )
            mixed, soft = mixer(x, y.long())
        else:  # a table: rows mixed as torchvision mixes images
            lam = float(torch.distributions.Beta(mixup, mixup).sample())
            mixed = lam * x + (1 - lam) * x.roll(1, 0)
            one_hot = torch.nn.functional.one_hot(y.long(), classes).to(x.dtype)
            soft = lam * one_hot + (1 - lam) * one_hot.roll(1, 0)
    return mixed, soft[:, 1] if binary else soft
