"""Opt-in speed levers that reach into Lightning's internals: `fastpath=true`.

Off by default. Each lever saves microseconds per training step, which shows on a small model
on a CPU (an MLP step of a few hundred microseconds) and nowhere else: a CNN or a GPU step
dwarfs it. `make bench` measures logitlab with and without them (docs/benchmarks.md).

Every lever depends on how a given Lightning release calls hooks, so they are applied only
under the Lightning versions listed in TESTED; under any other version `fastpath=true` warns
once and the run goes on with Lightning's stock behaviour.

The levers:
- Per-step callback hooks a callback does not define are set to None on the instance.
  Lightning calls each of them on every callback at every step, building a profiler label from
  the callback's state key each time; its dispatcher skips a hook that is not callable.
- The same for the LightningModule's per-training-step hooks that return nothing
  (on_before_backward, on_train_batch_end, ...) when the module's class does not define them.
- With no clipping configured (`trainer.gradient_clip_val` null or 0), the module's
  `configure_gradient_clipping`, when its class does not define it, set to None the same way:
  Lightning calls it at every step, and it validates its arguments and clips by 0, which does
  nothing.
- Whether a step method takes `batch_idx` is read from its signature once, not at every step
  (Lightning's loops call `inspect.getfullargspec` on training_step and validation_step at each
  batch, about 10 microseconds).
- A profiler whose `profile()` hands back one shared do-nothing context (Lightning's
  PassThroughProfiler builds a new one for each of the ~70 hook calls of a step), given to the
  Trainer at construction when `trainer.profiler` is null.
- The module's `_current_fx_name`, which Lightning sets twice around every hook call, is stored
  with `object.__setattr__`, not through nn.Module's parameter/buffer/submodule checks.
- CPU runs hide CUDA devices (CUDA_VISIBLE_DEVICES=""), restored afterwards: after `import
  lightning` a CUDA build of torch asks NVML at every optimizer step whether a GPU is there.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import lightning
import lightning as L
from lightning.pytorch.loops import evaluation_loop, training_epoch_loop
from lightning.pytorch.profilers import PassThroughProfiler

from logitlab.run.ddp import env_restored

log = logging.getLogger(__name__)

# Lightning releases (major.minor) these levers were written against and tested with.
TESTED = ("2.5", "2.6")
STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
)
# the LightningModule's per-training-step hooks whose result Lightning does not use (the
# evaluation loop reads the validation batch hooks' signatures, so those stay)
MODULE_STEP_HOOKS = STEP_HOOKS[:6]


def supported(version: str | None = None) -> bool:
    """Whether the installed Lightning (or `version`) is one the levers were tested with."""
    if version is None:
        version = lightning.__version__
    return ".".join(version.split(".")[:2]) in TESTED


def enabled(requested: bool) -> bool:
    """`fastpath=true` on a tested Lightning; on another, one warning and False."""
    if not requested:
        return False
    if supported():
        return True

    log.warning(
        "fastpath=true: Lightning %s is not among the tested releases (%s); running with "
        "Lightning's stock behaviour",
        lightning.__version__,
        ", ".join(TESTED),
    )
    return False


def quiet_profiler() -> Any:
    """A profiler that records nothing and costs nothing: one shared no-op context."""

    class QuietProfiler(PassThroughProfiler):
        _nothing = nullcontext()

        def profile(self, action_name: str) -> Any:
            return self._nothing

    return QuietProfiler()


def skip_unused_step_hooks(callbacks: list[Any]) -> None:
    """Set each per-step hook a callback inherits unchanged from L.Callback to None."""
    for callback in callbacks:
        for hook in STEP_HOOKS:
            if getattr(type(callback), hook, None) is getattr(L.Callback, hook):
                setattr(callback, hook, None)


def skip_unused_module_hooks(model: Any, hooks: tuple[str, ...] = MODULE_STEP_HOOKS) -> None:
    """Set each of `hooks` the model's class inherits unchanged from L.LightningModule to None
    on the instance (stored plainly: nn.Module's __setattr__ would look it up first)."""
    for hook in hooks:
        if getattr(type(model), hook, None) is getattr(L.LightningModule, hook):
            object.__setattr__(model, hook, None)


def signature_read_once(check: Callable[..., bool]) -> Callable[..., bool]:
    """Lightning's `is_param_in_hook_signature`, answered from a cache keyed by the function
    (a bound method's underlying one) and the question."""
    if getattr(check, "_logitlab_cached", False):
        return check
    cached = functools.lru_cache(maxsize=256)(check)

    @functools.wraps(check)
    def is_param_in_hook_signature(
        hook_fx: Callable, param: str, explicit: bool = False, min_args: int | None = None
    ) -> bool:
        fx = getattr(hook_fx, "__func__", hook_fx)
        try:
            return cached(fx, param, explicit, min_args)
        except TypeError:  # an unhashable callable: asked every time, as Lightning does
            return check(hook_fx, param, explicit, min_args)

    is_param_in_hook_signature._logitlab_cached = True  # type: ignore[attr-defined]
    return is_param_in_hook_signature


def read_step_signatures_once() -> None:
    """The training and evaluation loops ask a cached signature check (for the process)."""
    for loop in (training_epoch_loop, evaluation_loop):
        loop.is_param_in_hook_signature = signature_read_once(loop.is_param_in_hook_signature)  # type: ignore[attr-defined]


_PLAIN = ("_current_fx_name",)


def plain_hook_name_store(model: Any) -> None:
    """Give `model` a class whose __setattr__ stores the hook name plainly."""
    base = type(model)
    if getattr(base, "_logitlab_fastpath", False):
        return

    setter: Any = base.__setattr__

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name in _PLAIN:
            object.__setattr__(self, name, value)
        else:
            setter(self, name, value)

    model.__class__ = type(
        base.__name__,
        (base,),
        {"__setattr__": __setattr__, "_logitlab_fastpath": True, "__module__": base.__module__},
    )


def apply(trainer: Any, model: Any) -> None:
    """Apply the per-object levers to a built Trainer's callbacks and the model."""
    skip_unused_step_hooks(trainer.callbacks)
    clipping = () if trainer.gradient_clip_val else ("configure_gradient_clipping",)
    skip_unused_module_hooks(model, MODULE_STEP_HOOKS + clipping)
    plain_hook_name_store(model)
    read_step_signatures_once()


@contextmanager
def gpus_hidden(hide: bool) -> Iterator[None]:
    """Within a CPU run, show torch no GPUs (CUDA_VISIBLE_DEVICES=""); restore afterwards."""
    with env_restored("CUDA_VISIBLE_DEVICES"):
        if hide:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        yield
