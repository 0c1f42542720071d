"""A wheel of logitlab, installed (not editable) into a fresh virtualenv, trains from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding logitlab's wheel; torch and the rest come from this environment."""
    where = tmp_path_factory.mktemp("install")
    source, wheels = where / "source", where / "wheels"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        check=True, capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    env_dir = where / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (wheel,) = wheels.glob("logitlab-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    # Then the dependencies of this environment, as a plain path after the wheel's: its .pth
    # files (the editable install of the checkout among them) are not read.
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_the_installed_console_script_trains_from_an_empty_folder(installed, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOGITLAB_ROOT")}
    env["PYTHONPATH"] = str(ROOT / "tests")  # the user's own network (my_nets.TinyConvNet)
    result = subprocess.run(
        [installed / "bin" / "logitlab-train", "trainer.max_epochs=2", "optimizer.lr=1e-2",
         "extras.print_config=false",
         f"hydra.searchpath=[file://{ROOT / 'tests' / 'user_conf'}]", "model/net=tiny_conv",
         "hydra.run.dir=run"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    where = subprocess.run(
        [installed / "bin" / "python", "-c", "import logitlab; print(logitlab.__file__)"],
        cwd=folder, env=env, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed)
    saved = (folder / "run" / ".hydra" / "config.yaml").read_text()
    assert "_target_: my_nets.TinyConvNet" in saved
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.4  # two epochs of a tiny conv net: 0.69, chance 0.1
