"""How checkpoint files are written: streamed into a temporary file beside the target, then
renamed over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

from logitlab.run.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, with a leaner atomic write for local files.

    Lightning serialises the whole checkpoint into memory first (peak RSS + the checkpoint's
    size while saving) and writes it through an fsspec transaction whose temporary file lives
    in the system temp folder; where that is another filesystem than the run's (a node's /tmp
    under a shared outputs/), the final move is a copy, not a rename. Here torch.save streams
    into a temporary file in the checkpoint's own folder, which is then renamed over the
    target (logitlab.run.files.atomic_path): a reader (resume, a requeued job) finds the old file or
    the new one, never part of one, and a failed save leaves the old file as it was. It takes
    the same time. Remote paths (s3://, gs://, ...) keep Lightning's way; loading is Lightning's.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            torch.save(checkpoint, temporary)
