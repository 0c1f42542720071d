"""Rules across config groups, checked once before anything is built."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

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
    for rule, message in _range_rules(cfg):
        if not rule:
            raise ConfigError(message)


def _range_rules(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(holds, message) for every value that has a valid range."""
    lr = cfg.optimizer.get("lr", 1.0)
    hidden = list(cfg.model.get("hidden_sizes") or [])
    dropout = cfg.model.get("dropout", 0.0)
    epochs, steps = cfg.trainer.get("max_epochs", 1), cfg.trainer.get("max_steps", -1)
    return [
        (lr > 0, f"optimizer.lr={lr} must be positive, e.g. optimizer.lr=1e-3"),
        (
            cfg.data.batch_size > 0,
            f"data.batch_size={cfg.data.batch_size} must be positive, e.g. data.batch_size=64",
        ),
        (
            epochs is None or epochs >= 0 or (epochs == -1 and steps > 0),
            f"trainer.max_epochs={epochs} must be >= 0 (-1, unbounded, needs trainer.max_steps)",
        ),
        (
            len(hidden) > 0 and all(h > 0 for h in hidden),
            f"model.hidden_sizes={hidden} must list positive layer widths, e.g. [128,64]",
        ),
        (0 <= dropout < 1, f"model.dropout={dropout} must be in [0, 1), e.g. model.dropout=0.1"),
    ]


# Keys a resumed run may change: how long it trains and on what; not what it trains.
RESUME_SAFE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.min_epochs",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.enable_progress_bar",
    "callbacks.early_stopping.patience",
    "callbacks.checkpoint_every_n_steps",
)


def _run_dir_or(resume: str | None, default: str) -> str:
    # Only a real run folder is reused; anything else gets a fresh folder (and a clear error).
    return resume if resume and (Path(resume) / ".hydra" / "config.yaml").is_file() else default


def _hydra_subdir(resume: str | None, stamp: str) -> str:
    # A resumed run keeps the config it was started with in .hydra/ and records its own beside.
    return f".hydra/resumed_{stamp}" if resume else ".hydra"


OmegaConf.register_new_resolver("logitlab.run_dir", _run_dir_or, replace=True)
OmegaConf.register_new_resolver("logitlab.hydra_subdir", _hydra_subdir, replace=True)


def prepare_resume(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path]:
    """The saved config of run `cfg.resume` with the safe `overrides` applied, and last.ckpt."""
    run_dir = Path(cfg.resume)
    saved = run_dir / ".hydra" / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    if not saved.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no .hydra/config.yaml there; give the folder of a training run"
        )
    if not last.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no checkpoints/last.ckpt to resume from; start a new run"
        )
    resumed = OmegaConf.load(saved)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra."):
            continue
        if key not in RESUME_SAFE:
            raise ConfigError(
                f"resume: '{override}' would change the run being resumed; only "
                f"{', '.join(RESUME_SAFE)} may change (start a new run for anything else)"
            )
        OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), force_add=True)
    resumed.paths.output_dir = str(run_dir)
    resumed.resume = str(run_dir)
    return resumed, last
