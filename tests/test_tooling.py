"""The checks a contributor runs: mypy in `make lint` catches wrong argument types, and the
pre-commit hooks are the same tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_catches_a_wrong_argument_type(tmp_path: Path) -> None:
    use = tmp_path / "use.py"
    use.write_text(
        "from pathlib import Path\n"
        "from logitlab.dashboards.naming import run_name\n\n"
        "run_name(Path('outputs/x'), tags=['a'])  # right\n"
        "run_name(3)  # wrong: an int for the run folder\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), str(use)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'{use}:5: error: Argument 1 to "run_name" has incompatible type "int"' in result.stdout
    assert "Found 1 error in 1 file" in result.stdout


def test_pre_commit_runs_the_tools_of_make_lint() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks == {
        "ruff-check": ".venv/bin/ruff check --fix",
        "ruff-format": ".venv/bin/ruff format",
        "mypy": ".venv/bin/mypy",
    }
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/ruff check ." in lint and "$(BIN)/mypy" in lint
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
