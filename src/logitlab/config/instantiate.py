"""The run's components from config: hydra instantiate with one-line errors, loggers, callbacks."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, ListConfig

from logitlab.errors import ConfigError, first_line

log = logging.getLogger(__name__)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, letting a ConfigError from the constructor reach the user as is."""
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def build_target(spec: Any, where: str, hint: str = "", **kwargs: Any) -> Any:
    """A user's `_target_` built, its two usual mistakes in one line each: a module that cannot
    be imported, and a constructor that raises (`hint`: what logitlab passes it)."""
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    try:
        return instantiate(with_dtypes(spec, where), **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if cause is None or "Error locating target" in str(error):
            raise ConfigError(
                f"{where}._target_={target} cannot be imported; check the name and put its "
                "module on PYTHONPATH"
            ) from None
        raise ConfigError(
            f"{where}: {target} could not be built ({type(cause).__name__}: "
            f"{first_line(cause)}){hint}"
        ) from None


def with_dtypes(node: Any, where: str) -> Any:
    """A config node as plain containers, each `dtype` (or `*_dtype`) named by its string
    (float32, torch.float32) made the torch dtype itself, nested ones included."""
    import torch
    from omegaconf import OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, list):
        return [with_dtypes(value, f"{where}[{i}]") for i, value in enumerate(node)]
    if not isinstance(node, dict):
        return node
    resolved = {}
    for key, value in node.items():
        if (key == "dtype" or str(key).endswith("_dtype")) and isinstance(value, str):
            dtype = getattr(torch, value.removeprefix("torch."), None)
            if not isinstance(dtype, torch.dtype):
                raise ConfigError(
                    f"{where}.{key}={value} is not a torch dtype; name one, e.g. float32"
                )
            resolved[key] = dtype
        else:
            resolved[key] = with_dtypes(value, f"{where}.{key}")
    return resolved


def instantiate_transforms(entries: Any, where: str) -> list[Any]:
    """The `data.transforms.extra` transforms, each `dtype` named by its string resolved."""
    return [
        instantiate(with_dtypes(entry, f"{where}[{i}]")) for i, entry in enumerate(entries or [])
    ]


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
        if name == "ema" and entry.get("decay") is None:
            continue  # no moving average
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


def lightning_defaults_off(trainer: Any, callbacks: list[Any]) -> dict[str, bool]:
    """`{flag: False}` for each of Lightning's own default callbacks (checkpoint, progress bar,
    model summary) whose flag the trainer config leaves unset and whose kind `callbacks` lacks:
    a callback dropped from the config is not replaced by Lightning's own."""
    from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar

    kinds = {"enable_checkpointing": Checkpoint, "enable_progress_bar": ProgressBar,
             "enable_model_summary": ModelSummary}  # fmt: skip
    return {
        flag: False
        for flag, kind in kinds.items()
        if trainer.get(flag) is None and not any(isinstance(c, kind) for c in callbacks)
    }


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


def quiet_lightning() -> None:
    """Lightning's messages without its adverts; eval and predict show only its warnings."""
    package = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        # A Hydra run: its root handlers print to the console and write train.log. Lightning's
        # package adds a console handler of its own at import, which would print each message
        # a second time; its messages reach Hydra's handlers by propagation.
        for handler in list(package.handlers):
            package.removeHandler(handler)
    else:  # eval and predict, outside a Hydra run
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    # Lightning 2.6's own pytree helper builds torch's deprecated LeafSpec (torch >= 2.10): the
    # notice is Lightning's to fix and says nothing about the run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
