"""Shared fixtures: compose the real conf/ with overrides, as `python -m logitlab.train` would."""

from __future__ import annotations

import os

# One torch thread per test process (and the commands it starts), unless set already: `make test`
# runs a worker per core (pytest-xdist), and threads beyond the cores only spin.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib
import hashlib
import importlib
import io
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import logitlab.config.compose  # noqa: F401  (the schemas the configs extend)
from logitlab.data.synthetic import shifted_digits, shifted_digits_mnist, write_idx  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CPU_REPORT = os.environ.get("LOGITLAB_TEST_CPU")  # a file: CPU seconds of each test, children too


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    forked = ZYGOTE.cpu  # commands the zygote forked: not this process's children
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + forked


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With LOGITLAB_TEST_CPU=<file>: append each test's CPU seconds (setup, call, teardown)."""
    if not CPU_REPORT:
        return (yield)
    start, wall = _cpu_seconds(), time.monotonic()
    try:
        return (yield)
    finally:
        with open(CPU_REPORT, "a") as report:
            cpu, elapsed = _cpu_seconds() - start, time.monotonic() - wall
            report.write(f"{cpu:.2f}\t{elapsed:.2f}\t{item.nodeid}\n")


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


# Commands without a Hydra app run their main() in this process, as their console scripts do:
# the same code path, without five seconds of imports per call. Training runs as a subprocess.
IN_PROCESS = tuple(
    f"logitlab.{name}" for name in ("eval", "predict", "calibrate", "compare", "export")
)


def cli(
    module: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a logitlab module as a user would, from the repository root (`env`: extra variables):
    eval, predict and calibrate in this process, train in a process of its own (forked by the
    zygote, or started afresh with LOGITLAB_TEST_FORK=0)."""
    if module in IN_PROCESS:
        return in_process(module, list(args), env or {})
    env = {**os.environ, "HYDRA_FULL_ERROR": "", **(env or {})}
    if os.environ.get("LOGITLAB_TEST_FORK", "1") != "0":
        return ZYGOTE.run(module, list(args), env, timeout)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Forked:
    """A command the zygote forked, as much of `subprocess.Popen` as the tests use."""

    def __init__(self, zygote: Zygote, pid: int, folder: Path) -> None:
        self.zygote, self.pid, self.folder = zygote, pid, folder
        self.returncode: int | None = None

    def poll(self) -> int | None:
        import json

        status = self.folder / "status"
        if self.returncode is None and status.is_file():
            answer = json.loads(status.read_text())
            self.returncode = answer["code"]
            self.zygote.cpu += answer["cpu"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        import shutil

        self.wait(timeout)
        out = (self.folder / "out").read_text() if (self.folder / "out").is_file() else ""
        err = (self.folder / "err").read_text()
        shutil.rmtree(self.folder, ignore_errors=True)
        return out, err

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


class Zygote:
    """tests/zygote.py, started once per test process: it forks each command from an
    interpreter that has imported Lightning already, as `python -m` would run it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.cpu = 0.0  # CPU seconds of the commands it ran (children included)

    def start(
        self,
        module: str,
        args: list[str],
        env: dict[str, str] | None = None,
        stdout: bool = True,
        cwd: Path = ROOT,
    ) -> Forked:
        """Fork `python -m module args` in `cwd` (`env`: the whole environment; default this
        one's; stdout=False: its standard output a pipe whose reader has gone)."""
        import json
        import tempfile

        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("zygote.py"))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        folder = Path(tempfile.mkdtemp(prefix="forked-"))
        request = {"module": module, "args": args, "env": env or dict(os.environ)}
        out = str(folder / "out") if stdout else None
        request.update(cwd=str(cwd), out=out, err=str(folder / "err"))
        request["status"] = str(folder / "status")
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return Forked(self, json.loads(self.process.stdout.readline())["pid"], folder)

    def run(
        self, module: str, args: list[str], env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to its end, as subprocess.run does."""
        forked = self.start(module, args, env)
        try:
            out, err = forked.communicate(timeout)
        except subprocess.TimeoutExpired:
            forked.kill()
            raise
        return subprocess.CompletedProcess([module, *args], forked.returncode or 0, out, err)

    def close(self) -> None:
        """End the zygote and wait for it, so its CPU time counts as this process's children's."""
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


ZYGOTE = Zygote()


def pytest_sessionfinish(session: pytest.Session) -> None:
    ZYGOTE.close()


@pytest.fixture(scope="session", autouse=True)
def inductor_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """torch.compile starts from an empty cache: what an earlier run compiled proves nothing."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))


def in_process(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`module`'s main(args) with `env` set (PYTHONPATH on sys.path): exit status and output."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_env, saved_path, saved_cwd = dict(os.environ), list(sys.path), os.getcwd()
    os.environ.update({"HYDRA_FULL_ERROR": "", **env})
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            importlib.import_module(module).main(args)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run (debug=limit) trained through the command line, shared by the tests of a
    process: read it, or copy it before changing anything."""
    run = tmp_path_factory.mktemp("finished") / "run"
    result = cli("logitlab.train", "debug=limit", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli` as a fixture."""
    return cli


@pytest.fixture(scope="module")
def run_cli_module() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli` for module-scoped fixtures."""
    return cli


def write_png_folder(
    root: Path, images: np.ndarray, labels: np.ndarray, names: list[str] | None = None
) -> Path:
    """One PNG per image under root/<class name>/<index>.png (class names default to digits)."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / (names[label] if names else str(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return root
