"""Shared fixtures: compose the real conf/ with overrides, as `python -m logitlab.train` would."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path: to prove a folder unchanged."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """conf/train.yaml with `overrides`, its run folder at `output_dir`, Hydra's resolvers live."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a fast training config whose run folder is a fresh temporary directory."""

    def make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        return compose_train(list(overrides), output_dir=run_dir or tmp_path / "run")

    return make


def cli(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a logitlab module as a user would, from the repository root."""
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli` as a fixture."""
    return cli


@pytest.fixture(scope="module")
def run_cli_module() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli` for module-scoped fixtures."""
    return cli
