"""How checkpoint files are written: streamed into a temporary file beside the target, then
renamed over it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, with a cheaper atomic write for local files.

    Lightning serialises the whole checkpoint into memory, copies it once more, and writes it
    through an fsspec transaction whose temporary file lives in the system temp folder: the
    checkpoint's size in RAM twice over, and where that folder is another filesystem than the
    run's (a node's /tmp under a shared outputs/), the final move is a copy, not a rename.
    Here torch.save streams into `.<name>.tmp` in the checkpoint's own folder, which is then
    renamed over the target: a reader (resume, a requeued job) finds the old file or the new
    one, never half of one, and a failed save leaves the old file as it was. Remote paths
    (s3://, gs://, ...) keep Lightning's way. Loading is Lightning's.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            torch.save(checkpoint, temporary)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
