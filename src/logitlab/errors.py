"""Errors meant for people: one line that says what is wrong, where, and how to fix it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A setting or an input that cannot work; its message is the whole explanation."""


class TrainingDiverged(ConfigError):
    """The loss or the weights became NaN or inf, or the loss exploded; the run stopped there."""

    def __init__(self, step: int, epoch: int, what: str, last_finite: float | None) -> None:
        self.step, self.epoch, self.last_finite = step, epoch, last_finite
        last = f"{last_finite:.6g}" if last_finite is not None else "none yet"
        self.advice = ""  # set by the trainer: how to go on, from a checkpoint or afresh
        super().__init__(
            f"training diverged at step {step} (epoch {epoch}): {what}, the last finite loss was "
            f"{last}; lower optimizer.lr or set trainer.gradient_clip_val=1.0"
        )

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.advice})" if self.advice else base


class RunStopped(SystemExit):
    """A run stopped by a signal (SIGTERM, a preemption; SIGINT, Ctrl+C) after saving last.ckpt:
    exit status 143, and the command that goes on."""

    def __init__(self, signal_name: str, resume: str) -> None:
        super().__init__(143)
        self.signal_name, self.resume = signal_name, resume


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ConfigError into one line on stderr and exit 2 (full trace: HYDRA_FULL_ERROR=1)."""
    try:
        yield
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"logitlab: error: {one_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def warn(message: str) -> None:
    """One line on stderr for something the user should know but that does not stop the work."""
    print(f"logitlab: warning: {message}", file=sys.stderr, flush=True)


def one_line(error: ConfigError) -> str:
    """The message itself, also when a DataLoader worker raised it: torch re-raises a worker's
    error with the worker's whole traceback in the message, and the last line is ours."""
    text = str(error)
    if "\n" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split("ConfigError: ", 1)[-1].strip()


def first_line(error: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message (for a reason in
    parentheses inside one of logitlab's own lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def compile_failures(on: bool) -> Iterator[None]:
    """With compile=true: an error of torch.compile's own (TorchDynamo, TorchInductor: no C++
    compiler, no Triton, an operator it cannot take), here or in its cause, becomes one line."""
    try:
        yield
    except Exception as error:
        seen: BaseException | None = error
        while on and seen is not None:
            package = type(seen).__module__.split(".")[:2]  # which of torch's own raised it
            if package in (["torch", "_dynamo"], ["torch", "_inductor"]):
                raise ConfigError(
                    f"compile=true: torch.compile cannot work here ({first_line(seen)}); set "
                    "compile=false, or give it what it needs (a C++ compiler on the CPU, "
                    "Triton on a GPU)"
                ) from None
            seen = seen.__cause__ or seen.__context__
        raise


@contextmanager
def closed_pipe_quiet() -> Iterator[None]:
    """A reader that stops early (`logitlab.eval ... | head`) ends the output, not a traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # Python's own advice: stdout goes nowhere
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
