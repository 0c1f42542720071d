"""A run folder is data: its config and checkpoints can name only classes of the kinds logitlab
builds. Written as an attacker would: each crafted file tries to run a command or write a file,
and the test checks that nothing happened and the refusal is one line naming target and place."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ZYGOTE, cli, digest

pytestmark = pytest.mark.slow


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run, to tamper with."""
    return Path(shutil.copytree(finished_run, tmp_path / "downloaded"))


def tamper_checkpoints(run: Path, **hyper_parameters: object) -> None:
    for path in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(path, weights_only=True)
        state["hyper_parameters"].update(hyper_parameters)
        torch.save(state, path)


def tamper_config(run: Path, key: str, node: object) -> None:
    path = run / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(path)
    OmegaConf.update(cfg, key, node, force_add=True)
    OmegaConf.save(cfg, path)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout[-1000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logitlab: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", ["logitlab.eval", "logitlab.predict", "logitlab.calibrate"])
def test_a_checkpoints_loss_cannot_run_a_command(run: Path, tmp_path: Path, command) -> None:
    marker = tmp_path / "pwned"
    loss = {
        "name": "x",
        "head": "multiclass",
        "_target_": "os.system",
        "command": f"touch {marker}",
    }
    tamper_checkpoints(run, loss=loss)
    before = digest(run)
    refused(cli(command, f"run_dir={run}"), "loss._target_=os.system in ", "not a loss criterion")
    assert not marker.exists() and digest(run) == before


@pytest.mark.parametrize(
    ("key", "target", "place"),
    [
        ("callbacks.evil", "shutil.copyfile", "not a callback"),
        ("model.net", "builtins.open", "not a network"),
        ("logger.evil", "subprocess.Popen", "not a logger"),
        ("scheduler", "shutil.copyfile", "not a scheduler"),
        ("model.net.extra", "torch.save", "not a class logitlab builds"),  # nested argument
    ],
)
def test_a_saved_config_cannot_write_a_file(run: Path, tmp_path: Path, key, target, place) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    node = {"_target_": target, "src": str(run / "metrics.json"), "dst": str(victim)}
    if target == "torch.save":
        node = {"_target_": target, "obj": 1, "f": str(victim)}
    tamper_config(run, key, node)
    before = digest(run)
    refused(cli("logitlab.eval", f"run_dir={run}"), f"{key}._target_={target} in ", place)
    resumed = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=4")
    refused(resumed, f"{key}._target_={target} in ", place)
    assert victim.read_text() == "mine" and digest(run) == before


def test_code_beside_a_downloaded_run_is_never_imported(run: Path) -> None:
    """`python -m` puts the current folder on sys.path: from inside the run folder, a config
    naming its own evil.py would import it."""
    marker = run.parent / "imported"
    (run / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Net(torch.nn.Module):\n    pass\n"
    )
    tamper_config(run, "model.net", {"_target_": "evil.Net"})
    forked = ZYGOTE.start("logitlab.eval", ["run_dir=."], cwd=run)
    out, err = forked.communicate(timeout=300)
    result = subprocess.CompletedProcess([], forked.returncode or 0, out, err)
    refused(result, "model.net._target_=evil.Net in ", "a module of the run folder itself (evil)")
    assert not marker.exists()


def test_a_run_of_a_users_own_classes_still_builds(run: Path) -> None:
    """Classes of the right kinds pass the gate: eval of the untouched copy works."""
    result = cli("logitlab.eval", f"run_dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test/acc" in result.stdout
