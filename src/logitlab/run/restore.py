"""Rebuild a finished run from its folder alone: its saved config, its splits, its checkpoints.

Checkpoints are always read with `torch.load(weights_only=True)`: a file that needs arbitrary
unpickling (one that pickles a class or a function) is refused, never executed.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from logitlab.config.build import build
from logitlab.config.rules import loss_fits, task_of
from logitlab.config.trust import check_run_targets
from logitlab.errors import ConfigError, first_line, warn
from logitlab.run.layout import RunFolder
from logitlab.run.lock import holder


def load_run_config(run_dir: str | Path) -> tuple[Path, DictConfig]:
    """The run folder and the config it was trained with (experiment and overrides included)."""
    folder = Path(run_dir)
    config = RunFolder(folder).config
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"run_dir={run_dir} is a file; give the run folder (outputs/...)")
    if not folder.is_dir():
        raise ConfigError(f"run_dir={run_dir} does not exist; give a folder under outputs/")
    if not config.is_file():
        raise ConfigError(
            f"run_dir={run_dir} has no .hydra/config.yaml; give the folder of a training run"
        )
    cfg = cast(DictConfig, OmegaConf.load(config))
    check_run_targets(cfg, config, folder)  # before anything is imported or built from it
    owner = holder(folder)
    if owner is not None:
        warn(
            f"{folder} is still training (process {owner.get('pid', '?')} on "
            f"{owner.get('host', '?')}, since {owner.get('started', '?')}); this reads its "
            "checkpoints as they are now: run it again once the run has finished"
        )
    # The saved config points its run folder at Hydra's runtime; outside that run, it is here.
    cfg.paths.output_dir = str(folder)
    return folder, cfg


def find_checkpoint(run_dir: Path, ckpt: str) -> Path:
    """`best` (the best-*.ckpt of the run), `last` (last.ckpt) or a path to a .ckpt file."""
    folder = RunFolder(run_dir).checkpoints
    if ckpt == "best":
        candidates = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ConfigError(f"ckpt=best: no best-*.ckpt in {folder}; use ckpt=last or a path")
        return candidates[-1]
    path = folder / "last.ckpt" if ckpt == "last" else Path(ckpt)
    if path.is_dir():
        raise ConfigError(f"ckpt={ckpt} is a folder; give a .ckpt file (or ckpt=best, last)")
    if not path.is_file():
        raise ConfigError(f"ckpt={ckpt}: {path} does not exist; use ckpt=best, last or a path")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, read with weights_only=True; refused if that is not enough."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error) or "Unsupported global" in str(error):
            raise ConfigError(
                f"{path} needs arbitrary unpickling (it stores a class or function), which can "
                "run code; refused. Re-save it with tensors and plain values only"
            ) from None
        raise ConfigError(
            f"{path} is not a checkpoint (torch.load cannot read it: neither a torch zip "
            "archive nor a pickle of tensors); use a .ckpt written by a run"
        ) from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        struct.error,
        KeyError,
        IndexError,
    ) as error:
        reason = first_line(error)
        raise ConfigError(
            f"{path} is truncated or corrupt ({reason}); use another checkpoint"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} is not a Lightning checkpoint (no state_dict); use a .ckpt")
    return checkpoint


WEIGHTS = ("ema", "raw")


def chosen_weights(checkpoint: dict[str, Any], weights: str) -> dict[str, Any]:
    """The state dict to load: the checkpoint's own (its moving average when the run kept one,
    callbacks.ema), or with weights=raw the raw weights saved beside it. A run without EMA has
    one set of weights, which both give."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights={weights} must be ema (the default) or raw")
    if weights == "raw" and "current_model_state" in checkpoint:
        return checkpoint["current_model_state"]
    return checkpoint["state_dict"]


def build_from_run(
    cfg: DictConfig,
    run_dir: Path,
    checkpoint: dict[str, Any],
    ckpt_path: Path,
    weights: str = "ema",
):
    """The run's DataModule (its saved splits) and model with the checkpoint's weights
    (`weights`: see chosen_weights)."""
    state = chosen_weights(checkpoint, weights)
    check_run_targets(checkpoint.get("hyper_parameters") or {}, ckpt_path, run_dir)
    loss = checkpoint.get("hyper_parameters", {}).get("loss")
    task = task_of(cfg)
    if (
        isinstance(loss, dict)
        and loss.get("head") is not None
        and not loss_fits(loss["head"], task)
    ):
        raise ConfigError(
            f"{ckpt_path} is a checkpoint of the {loss['head']} head but {run_dir} trains the "
            f"{task} head; use this run's own checkpoint"
        )
    splits, stats = RunFolder(run_dir).splits, RunFolder(run_dir).data
    # the loss as trained, class weights from the training split included
    datamodule, model = build(
        cfg,
        "test",
        str(splits) if splits.is_file() else None,
        str(stats) if stats.is_file() else None,
        loss=loss if isinstance(loss, dict) else None,
    )
    change = data_change(run_dir, datamodule)
    if change:
        warn(
            f"the data differ from what {run_dir} was trained on ({change}); these results "
            "describe the new data: restore the training data to reproduce the run's, or train "
            "a new run on this data"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        found = re.search(r"size mismatch for [\w.]+|(Missing|Unexpected) key\(s\)", str(error))
        raise ConfigError(
            f"{ckpt_path} does not fit the network of {run_dir} (model/net "
            f"{cfg.model.net.get('_target_')}; {found.group(0) if found else error}: a different "
            "head or network); use this run's own checkpoint"
        ) from None
    return datamodule, model.eval()


def data_change(run_dir: Path, datamodule: Any) -> str | None:
    """How the data just read differ from the fingerprint in the run's data.json (None: they
    do not, or the run, from an earlier version, has none)."""
    from logitlab.data.fingerprint import difference

    try:
        saved = json.loads(RunFolder(run_dir).data.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None  # no data.json: nothing to compare (Standardization.read names a bad one)
    return difference(saved if isinstance(saved, dict) else None, datamodule.fingerprint)
