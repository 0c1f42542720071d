"""A process that imports what `python -m logitlab.train` imports once, then forks one child per
command: each child runs the module as `python -m` would (`__main__`, argv, environment, working
folder first on sys.path), so a test's command starts in milliseconds instead of spending about
4.5 CPU-seconds importing Lightning, torchmetrics and torchvision.

Protocol: a request is one JSON line {module, args, env, cwd, out, err, status} (out null: a
closed pipe); the answer,
once forked, is {pid}. Commands run side by side: when one ends, this process (its parent)
writes {code, cpu} to its `status` file (the exit status as Popen reports it, negative for a
signal; cpu: its CPU seconds, its own children's included, from wait4).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import runpy
import select
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from pathlib import Path

BASE_PATH = [p for p in sys.path[1:]]  # the interpreter's own path, without this file's folder


def preload() -> None:
    """What every training command imports; the notebook and the CLIs import a part of it."""
    import lightning.pytorch  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import tensorboard  # noqa: F401
    import torchmetrics  # noqa: F401
    import torchvision.transforms.v2  # noqa: F401

    import logitlab.config.build
    import logitlab.train  # noqa: F401


def warm_up() -> None:
    """Train once here (debug=limit), before forking any command, so each starts with what a
    first run initialises done (Hydra's config search, matplotlib's fonts, torch's kernels):
    about a CPU-second less each. What the run changed in this process is put back."""
    loggers = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name, logger in [("", logging.getLogger()), *logging.Logger.manager.loggerDict.items()]
        if isinstance(logger, logging.Logger)
    }
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    filters, environ, argv, cwd = list(warnings.filters), dict(os.environ), sys.argv, os.getcwd()
    saved_fds = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    with tempfile.TemporaryDirectory() as folder:
        try:
            for fd in (1, 2):
                os.dup2(null, fd)
            os.chdir(Path(__file__).resolve().parents[1])
            sys.argv = ["logitlab.train", "debug=limit", f"hydra.run.dir={folder}/run"]
            with contextlib.suppress(SystemExit):
                runpy.run_module("logitlab.train", run_name="__main__", alter_sys=True)
        finally:
            for fd, saved in zip((1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            os.close(null)
            sys.argv = argv
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            warnings.filters[:] = filters
            warnings._filters_mutated()  # type: ignore[attr-defined]  # warned-once is forgotten
            for name, logger in logging.Logger.manager.loggerDict.items():
                if isinstance(logger, logging.Logger) and name not in loggers:
                    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
                    for handler in files:  # the warm-up run's train.log
                        logger.removeHandler(handler)
                        handler.close()
            for name, (level, kept, propagate, disabled) in loggers.items():
                logger = logging.getLogger(name or None)
                for handler in logger.handlers:
                    if handler not in kept:
                        handler.close()
                logger.handlers, logger.level = kept, level
                logger.propagate, logger.disabled = propagate, disabled
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from tqdm._monitor import TMonitor

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]
    for monitor in [t for t in threading.enumerate() if isinstance(t, TMonitor)]:
        monitor.exit()  # the progress bar's monitor thread: none may outlive the run
        monitor.tqdm_cls.monitor = None
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        raise RuntimeError(f"threads outlived the warm-up run, a fork would lose them: {others}")
    gc.collect()
    gc.freeze()  # what the commands share stays shared: collection does not touch its pages


def child(request: dict) -> int:
    """Run one command in this forked process; its exit status."""
    for fd, path in ((1, request["out"]), (2, request["err"])):
        if path is None:  # a pipe whose reader has gone, as `| head -0` leaves it
            reader, target = os.pipe()
            os.close(reader)
        else:
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [request["cwd"], *extra, *BASE_PATH]  # as `python -m` orders it
    from lightning.fabric.utilities import rank_zero

    rank_zero.rank_zero_only.rank = rank_zero._get_rank() or 0  # read at import: this env's
    sys.argv = [request["module"], *request["args"]]
    sys.modules.pop(request["module"], None)  # `python -m` runs it afresh as __main__
    for name in ("lightning.pytorch", "lightning.fabric"):
        # as imported after Hydra set up logging: no console handler of their own, propagating
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if not isinstance(exit.code, int | None):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter does at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # as the interpreter flushes them at exit
        if stream.closed:
            continue
        try:
            stream.flush()
        except OSError as error:
            with contextlib.suppress(OSError):
                print(f"Exception ignored in: {stream!r}\n{error!r}", file=sys.__stderr__)
            code = code or 120
    return code


def reap(status: dict[int, str]) -> None:
    """Write the status file of every command that has ended."""
    while status:
        try:
            pid, code, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = status.pop(pid, None)
        if path is not None:
            answer = {
                "code": os.waitstatus_to_exitcode(code),
                "cpu": usage.ru_utime + usage.ru_stime,
            }
            with open(f"{path}.tmp", "w") as handle:
                json.dump(answer, handle)
            os.replace(f"{path}.tmp", path)


def serve() -> None:
    preload()
    warm_up()
    status: dict[int, str] = {}
    pending = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.02)
        reap(status)
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break  # the tests have ended
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)  # the child never reads the requests meant for this process
                os.close(null)
                os._exit(child(request))
            status[pid] = request["status"]
            os.write(1, (json.dumps({"pid": pid}) + "\n").encode())
    while status:  # commands still running when the tests ended
        os.wait4(-1, 0)
        status.popitem()


if __name__ == "__main__":
    serve()
