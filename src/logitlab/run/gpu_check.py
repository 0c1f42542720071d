"""How torch asks, at every optimizer step, whether a GPU is there.

`import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1, so that asking goes through NVML and
does not initialise CUDA before a fork. torch's optimizers ask at every step
(`torch.accelerator.current_accelerator(check_available=True)`). Where NVML cannot be loaded (a
CPU-only machine), each ask tries to load it, fails and asks CUDA itself anyway
(`torch.cuda.device_count`): asking CUDA straight away gives the same answer, without trying
to load a library at every step.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

from logitlab.run.ddp import env_restored

NVML = "libnvidia-ml.so.1"  # what torch.cuda loads for its NVML-based check
VARIABLE = "PYTORCH_NVML_BASED_CUDA_CHECK"


def nvml_loads() -> bool:
    """Whether this machine can load NVML (the NVIDIA driver's management library)."""
    try:
        ctypes.CDLL(NVML)
    except OSError:
        return False
    return True


@contextmanager
def direct_cuda_check() -> Iterator[None]:
    """Within the block, ask CUDA directly where NVML cannot be loaded; restore afterwards."""
    import lightning  # noqa: F401  (it sets the variable when imported)

    with env_restored(VARIABLE):
        if os.environ.get(VARIABLE) == "1" and not nvml_loads():
            os.environ[VARIABLE] = "0"
        yield
