"""Rules across config groups, checked once before anything is built."""

from __future__ import annotations

from omegaconf import DictConfig

from logitlab.errors import ConfigError


def model_class(cfg: DictConfig) -> type:
    """The LightningModule class that `cfg.model` names."""
    from hydra.utils import get_class

    return get_class(cfg.model._target_)


def check_config(cfg: DictConfig) -> None:
    """Refuse a composition that cannot train, with one line that names the keys and the fix."""
    from logitlab.models import loss_mismatch_message

    task = model_class(cfg).task
    if cfg.loss.head != task:
        raise ConfigError(loss_mismatch_message(cfg.loss.name, task))
