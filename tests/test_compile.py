"""compile=true: torch.compile on the network (inductor and the system's C++ compiler on the
CPU); the checkpoint has the plain parameter names, so eval, predict and a resume load it
without compiling; where compile cannot work the run stops in one line naming the cause."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("compiled") / "run"
    result = cli("logitlab.train", "compile=true", "debug=limit", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run


def test_a_compiled_runs_checkpoint_loads_uncompiled(compiled) -> None:
    last = torch.load(compiled / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["state_dict"] and not [k for k in last["state_dict"] if "_orig_mod" in k]
    trained = json.loads((compiled / "metrics.json").read_text())
    result = cli("logitlab.eval", f"run_dir={compiled}")  # eval never compiles
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((compiled / "eval_metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-5)
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-5)


def test_a_compiled_run_resumes_without_compiling(compiled, tmp_path) -> None:
    import shutil

    run = Path(shutil.copytree(compiled, tmp_path / "run"))
    result = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=4", "compile=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


def test_compile_without_a_compiler_is_one_line(tmp_path) -> None:
    """A machine without g++: a PATH with Python's folder only."""
    run = tmp_path / "run"
    env = {"PATH": str(Path(sys.executable).parent), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    result = cli("logitlab.train", "compile=true", "debug=limit", f"hydra.run.dir={run}", env=env)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # after Lightning's progress bar
    assert last.startswith("logitlab: error: compile=true: torch.compile cannot work here (")
    assert "InvalidCxxCompiler" in last and "'g++'" in last
    assert last.endswith("set compile=false, or give it what it needs (a C++ compiler on the "
                         "CPU, Triton on a GPU)")  # fmt: skip
    assert not run.exists()
