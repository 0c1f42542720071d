"""Small helpers around a run: build callbacks and loggers, collect and write final metrics."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

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


@contextmanager
def gpus_hidden(hide: bool) -> Iterator[None]:
    """Within a CPU run, show torch no GPUs (CUDA_VISIBLE_DEVICES=""); restore afterwards.

    Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, after which each
    torch.cuda.is_available() on a CUDA build of torch asks NVML again: a dlopen of
    libnvidia-ml, ~80 us, and torch's optimizers ask on every step() (a CUDA-graph capture
    check). With no visible device the answer is immediate. Restored, so that a later GPU job of
    the same sweep still sees its GPUs.
    """
    with env_restored("CUDA_VISIBLE_DEVICES"):
        if hide:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        yield


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


def quiet_lightning() -> None:
    """One copy of each Lightning message, through the run's own handlers, without adverts."""
    import warnings

    if logging.getLogger().handlers:  # Hydra's root handlers already print them
        logging.getLogger("lightning").handlers.clear()
    else:  # eval and predict: only warnings
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # The module moves its (features, targets) batches itself, on purpose.
    warnings.filterwarnings("ignore", message=r"You have overridden `transfer_batch_to_device`")
    # Metrics are logged per epoch, so a short epoch loses nothing to the step interval.
    warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")


def instantiate(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, letting a ConfigError from the constructor reach the user as is."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def quiet_profiler() -> Any:
    """The profiler a run gets when trainer.profiler is null: one that costs nothing.

    Lightning wraps each of the ~70 hook calls of a training step in `trainer.profiler.profile`
    even when profiling is off; its pass-through profiler still builds a context manager per
    call (about 10 us a step in all, 2 % of a small-MLP step on a CPU). This one hands back a
    single shared do-nothing context. `trainer.profiler=simple|advanced|pytorch` profiles as usual.
    """
    from contextlib import nullcontext

    from lightning.pytorch.profilers import PassThroughProfiler

    class QuietProfiler(PassThroughProfiler):
        _nothing = nullcontext()

        def profile(self, action_name: str) -> Any:
            return self._nothing

    return QuietProfiler()


def log_to_loggers(trainer: Any, scalars: dict[str, Any]) -> None:
    """Write scalars straight to the run's loggers at the current step, from rank zero.

    For values that are shown but never monitored (no checkpoint or early stopping watches them,
    and they stay out of callback_metrics): Lightning's `self.log` costs about 0.3 ms a key,
    because each call walks its result objects. The values must already be global, as
    torchmetrics' compute() makes them under DDP.
    """
    if not scalars or not trainer.is_global_zero:
        return
    values = {name: float(value) for name, value in scalars.items()}
    for logger in trainer.loggers:
        logger.log_metrics(values, step=trainer.global_step)


def instantiate_loggers(cfg: DictConfig | None) -> list[Any]:
    """One logger per non-null entry of the `logger` group."""
    return [instantiate(entry) for entry in (cfg or {}).values() if entry is not None]


def instantiate_callbacks(
    cfg: DictConfig | None, has_logger: bool, progress_bar: bool = True, model_summary: bool = True
) -> list[Any]:
    """One callback per non-null entry of the `callbacks` group.

    LearningRateMonitor needs a logger, a progress bar trainer.enable_progress_bar and a model
    summary trainer.enable_model_summary; without them these are left out instead of failing
    (or, for the summary, printing although turned off).
    """
    callbacks = []
    for name, entry in (cfg or {}).items():
        if not isinstance(entry, Mapping):
            continue  # a setting such as checkpoint_every_n_steps, not a callback
        if name == "step_checkpoint" and not entry.get("every_n_train_steps"):
            continue  # step checkpoints are off
        target = entry.get("_target_", "")
        if not has_logger and target.endswith("LearningRateMonitor"):
            log.info("callbacks.%s left out: it needs a logger", name)
            continue
        if not progress_bar and target.endswith("ProgressBar"):
            continue
        if not model_summary and target.endswith("ModelSummary"):
            continue
        callbacks.append(instantiate(entry))
    return callbacks


def final_metrics(*stages: Mapping[str, Any]) -> dict[str, float]:
    """Flat {name: float} of the `stage/name` metrics, later stages winning.

    Timings (`time/...`) stay in TensorBoard: metrics.json holds results, which reruns reproduce.
    """
    merged: dict[str, float] = {}
    for metrics in stages:
        for name, value in metrics.items():
            if (
                "/" in name
                and not name.startswith("time/")
                and not name.endswith(("_step", "_epoch"))
            ):
                merged[name] = float(value)
    return dict(sorted(merged.items()))


def write_json(path: Path, data: Any) -> Path:
    """Write a flat dict as JSON atomically (non-finite floats as strings: JSON has none)."""

    def finite(value: Any) -> Any:
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)

    return write_text(path, json.dumps({k: finite(v) for k, v in data.items()}, indent=2) + "\n")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to, renamed over `path` when the block ends.

    Readers find the old file or the new one, never part of one; if the block raises, the
    temporary file goes and `path` stays as it was. The temporary file is created by whatever
    the block writes with, so it gets the usual permissions (umask), not mkstemp's 0600.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a process killed mid-write with this pid
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write `text` atomically: a temporary file in the same folder, then a rename."""
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: {path.parent} is a file; choose a writable folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            temporary.write_text(text)
    except OSError as error:
        raise ConfigError(
            f"cannot write {path} ({error.strerror}); choose a writable folder"
        ) from None
    return path
