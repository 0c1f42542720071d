"""DDP under Hydra: child processes run their parent's job, and a job leaves no DDP state behind.

Lightning starts ranks 1..N-1 by re-running the command line (its subprocess launcher). Under
`-m` that would re-run the whole sweep and write a second sweep folder, so the parent leaves
its job's folder and overrides in LOGITLAB_DDP_JOB and each child becomes a single run of it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

DDP_JOB_ENV = "LOGITLAB_DDP_JOB"
# Set by Lightning's DDP launcher in the launching process, and cleared after each job so that
# the next job of a sweep starts processes of its own.
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", DDP_JOB_ENV)


@contextmanager
def env_restored(*keys: str) -> Iterator[None]:
    """When the block ends, put the environment variables `keys` back as they were."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def ddp_job(run_dir: str, overrides: list[str]) -> Iterator[None]:
    """Tell DDP child processes which job they belong to; afterwards leave no DDP state behind."""
    with env_restored(*DDP_ENV):
        os.environ[DDP_JOB_ENV] = json.dumps({"dir": str(run_dir), "overrides": overrides})
        try:
            yield
        finally:
            if "torch" in sys.modules:
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    dist.destroy_process_group()


def is_rank_zero() -> bool:
    """Whether this process is global rank 0, as Lightning tells it: `rank_zero_only.rank`, read
    from RANK, LOCAL_RANK or SLURM_PROCID at import and set by the strategy once DDP starts."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def ddp_child_argv() -> bool:
    """In a DDP child process, turn sys.argv into a single run of its parent's job."""
    job = os.environ.get(DDP_JOB_ENV)
    rank = os.environ.get("LOCAL_RANK", "0")
    if not job or rank == "0":
        return False
    spec = json.loads(job)
    sys.argv = [
        sys.argv[0],
        *spec["overrides"],
        f"hydra.run.dir={spec['dir']}",
        "hydra.output_subdir=null",
        f"hydra.job.name=train_ddp_process_{rank}",
    ]
    return True
