"""The fingerprint of a run's data, kept in data.json: eval, predict and calibrate warn when the
data they read differ from it, and a resume refuses to go on.

It holds the sample count, the class names, the label count of each class, and a BLAKE2b hash
of the content as read (every part's features and labels; for an image folder, each file's path
under the root, size and class), so an edit that keeps the row count is noticed too.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def label_counts(y: torch.Tensor, classes: int) -> list[int]:
    """Samples per class; for multilabel 0/1 rows, samples carrying each label."""
    return y.sum(dim=0).tolist() if y.ndim == 2 else torch.bincount(y, minlength=classes).tolist()


def fingerprint(
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]], content: Any, class_names: list[str]
) -> dict[str, Any]:
    """The fingerprint of checked parts; `content(digest, x)` hashes one part's features."""
    digest = hashlib.blake2b(digest_size=16)
    counts, samples = [0] * len(class_names), 0
    for name in sorted(parts):
        x, y = parts[name]
        digest.update(name.encode())
        content(digest, x)
        digest.update(y.to(torch.int64).numpy().tobytes())
        for label, count in enumerate(label_counts(y, len(counts))):
            counts[label] += count
        samples += len(y)
    return {
        "samples": samples,
        "class_names": list(class_names),
        "label_counts": counts,
        "content": f"blake2b:{digest.hexdigest()}",
    }


def hash_tensor(digest: Any, x: torch.Tensor) -> None:
    """Add a tensor's dtype, shape and bytes to `digest`."""
    digest.update(f"{x.dtype}{tuple(x.shape)}".encode())
    digest.update(x.contiguous().numpy().data)


def difference(saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """How the data now differ from the saved fingerprint, in words (None: the same, or no
    fingerprint saved, as in runs of earlier versions)."""
    if not saved:
        return None
    for key, what in (
        ("samples", "samples"),
        ("class_names", "class names"),
        ("label_counts", "samples per class"),
    ):
        if saved.get(key) != now.get(key):
            return f"{what} {_short(saved.get(key))} then, {_short(now.get(key))} now"
    if saved.get("content") != now.get("content"):
        return "the same samples per class, but other content (features, labels or files)"
    return None


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 6:
        return "[" + ", ".join(str(v) for v in value[:6]) + f", ... ({len(value)} in all)]"
    return str(value)
