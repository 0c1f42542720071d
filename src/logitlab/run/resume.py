"""A resumed run: its saved config with the few overrides that may change it, and last.ckpt."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf

from logitlab.config.trust import check_run_targets
from logitlab.errors import ConfigError
from logitlab.run.layout import RunFolder

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
    "fastpath",
    "compile",  # the same network, compiled or not
    # the rescue of a diverged run: a lower learning rate, gradient clipping
    "optimizer.lr",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
)


def prepare_resume(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path]:
    """The saved config of run `cfg.resume` with the safe `overrides` applied, and last.ckpt."""
    run_dir = Path(cfg.resume)
    saved = RunFolder(run_dir).config
    last = RunFolder(run_dir).last
    if not saved.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no .hydra/config.yaml there; give the folder of a training run"
        )
    if not last.is_file():
        from logitlab.run.launch import failed_start

        if failed_start(run_dir):
            record = RunFolder(run_dir).hydra / "overrides.yaml"
            started: Any = OmegaConf.load(record) if record.is_file() else []
            again = " ".join(str(o) for o in started if not str(o).startswith("hydra.run.dir"))
            raise ConfigError(
                f"resume={cfg.resume}: this run stopped before its first checkpoint, so there is "
                f"nothing to resume; start it again in its folder: python -m logitlab.train "
                f"hydra.run.dir={cfg.resume} {again}".rstrip()
            )
        raise ConfigError(
            f"resume={cfg.resume}: no checkpoints/last.ckpt to resume from; start a new run"
        )
    resumed = cast(DictConfig, OmegaConf.load(saved))
    check_run_targets(resumed, saved, run_dir)  # what the resume builds, checked first
    for earlier in sorted(RunFolder(run_dir).hydra.glob("resumed_*/overrides.yaml")):
        for override in OmegaConf.load(earlier):  # what earlier resumes changed, in order
            key, _, value = str(override).partition("=")
            if key.lstrip("+~") in RESUME_SAFE:
                OmegaConf.update(resumed, key.lstrip("+~"), yaml.safe_load(value), force_add=True)
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
