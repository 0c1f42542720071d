"""The GPU check torch's optimizers make at every step: where NVML cannot be loaded, logitlab's
runs ask CUDA directly (the answer torch falls back to anyway) instead of trying to load NVML at
every step; where NVML loads, Lightning's NVML-based check stays."""

from __future__ import annotations

import ctypes
import json
import os

import pytest
import torch

from conftest import ROOT, cli
from logitlab.run import gpu_check

needs_no_nvml = pytest.mark.skipif(gpu_check.nvml_loads(), reason="NVML loads on this machine")


def nvml_loads_during(steps: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often `steps` Adam steps try to load NVML."""
    loads, load = [], ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: loads.append(name) or load(name))
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight])
    for _ in range(steps):
        weight.grad = torch.ones(3)
        optimizer.step()
    monkeypatch.undo()
    return sum("nvidia-ml" in str(name) for name in loads)


@needs_no_nvml
def test_without_nvml_the_steps_ask_cuda_directly_with_the_same_answer(monkeypatch) -> None:
    import lightning  # noqa: F401  (sets the NVML-based check, as in every run)

    assert os.environ[gpu_check.VARIABLE] == "1"
    answer = torch.cuda.is_available()
    assert nvml_loads_during(5, monkeypatch) == 5  # Lightning's setting: one try a step
    with gpu_check.direct_cuda_check():
        assert os.environ[gpu_check.VARIABLE] == "0"
        assert torch.cuda.is_available() == answer
        assert nvml_loads_during(5, monkeypatch) == 0
    assert os.environ[gpu_check.VARIABLE] == "1"


def test_where_nvml_loads_the_nvml_based_check_stays(monkeypatch) -> None:
    import lightning  # noqa: F401

    monkeypatch.setattr(gpu_check, "nvml_loads", lambda: True)
    with gpu_check.direct_cuda_check():
        assert os.environ[gpu_check.VARIABLE] == "1"


@pytest.mark.slow
@needs_no_nvml
def test_a_default_training_run_never_tries_to_load_nvml(tmp_path) -> None:
    record = tmp_path / "nvml.json"
    result = cli(
        "logitlab.train", "debug=limit", "model.net.hidden_sizes=[8]",
        "+callbacks.nvml._target_=my_callbacks.CountNvmlLoads",
        f"+callbacks.nvml.path={record}", f"hydra.run.dir={tmp_path / 'run'}",
        env={"PYTHONPATH": str(ROOT / "tests"), gpu_check.VARIABLE: "1"},  # as lightning sets it
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    counted = json.loads(record.read_text())
    assert counted == {"loads": 0, "steps": 12, "check": "0"}  # debug=limit: 3 epochs of 4
