"""fastpath=true: each lever acts, none changes what is trained, and an untested Lightning
gets the stock behaviour. The default path uses no private Lightning or torchmetrics API."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
import torch
from lightning import Callback, seed_everything
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

from logitlab.models.heads import MulticlassClassifier
from logitlab.run import fastpath
from logitlab.train import build

SRC = Path(__file__).resolve().parents[1] / "src" / "logitlab"


class CountSteps(Callback):
    """A user's callback with a per-step hook: it must be called at every step."""

    def __init__(self) -> None:
        self.calls = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.calls += 1


def fitted(make_cfg, tmp_path: Path, name: str, *overrides: str):
    cfg = make_cfg("trainer.max_epochs=2", "test=false", *overrides, run_dir=tmp_path / name)
    seed_everything(cfg.seed)  # as logitlab.train does before building
    datamodule, model, trainer = build(cfg)
    counter = CountSteps()
    trainer.callbacks.append(counter)
    trainer.fit(model, datamodule=datamodule)
    return model, trainer, counter


def test_fastpath_trains_exactly_the_same_model(make_cfg, tmp_path) -> None:
    stock, stock_trainer, _ = fitted(make_cfg, tmp_path, "stock")
    fast, fast_trainer, _ = fitted(make_cfg, tmp_path, "fast", "fastpath=true")
    for (name, a), (_, b) in zip(
        stock.state_dict().items(), fast.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    for key in ("val/acc", "val/loss", "train/loss"):
        assert stock_trainer.callback_metrics[key] == fast_trainer.callback_metrics[key]
    assert fast_trainer.global_step == stock_trainer.global_step == 40


def test_unused_per_step_hooks_are_skipped_and_used_ones_still_called(make_cfg, tmp_path) -> None:
    _, stock, stock_counter = fitted(make_cfg, tmp_path, "stock", "trainer.profiler=simple")
    _, fast, fast_counter = fitted(
        make_cfg, tmp_path, "fast", "trainer.profiler=simple", "fastpath=true"
    )
    for trainer in (stock, fast):
        assert isinstance(trainer.profiler, SimpleProfiler)  # a profiler asked for still runs

    def step_hook_calls(trainer, callback: str) -> int:
        return sum(
            len(durations)
            for action, durations in trainer.profiler.recorded_durations.items()
            if action.startswith(f"[Callback]{callback}") and action.endswith(".on_train_batch_end")
        )

    # Lightning calls EarlyStopping's inherited no-op hook at every step; the fast path skips it
    assert step_hook_calls(stock, "EarlyStopping") == stock.global_step == 40
    assert step_hook_calls(fast, "EarlyStopping") == 0
    # a hook a callback does define still runs at every step, with or without the fast path
    assert stock_counter.calls == fast_counter.calls == 40
    assert step_hook_calls(fast, "ProgressBar") == 40


def test_quiet_profiler_and_hook_name_store_only_with_fastpath(make_cfg, tmp_path) -> None:
    _, _, stock = build(make_cfg(run_dir=tmp_path / "stock"))
    assert type(stock.profiler) is PassThroughProfiler  # Lightning's own
    _, model, fast = build(make_cfg("fastpath=true", run_dir=tmp_path / "fast"))
    assert fast.profiler.profile("a") is fast.profiler.profile("b")  # one shared no-op context
    # the model's class is a subclass that stores the hook name plainly; all else is nn.Module's
    assert isinstance(model, MulticlassClassifier) and type(model) is not MulticlassClassifier
    model._current_fx_name = "training_step"
    assert vars(model)["_current_fx_name"] == "training_step"
    model.extra = torch.nn.Linear(2, 2)
    assert "extra.weight" in dict(model.named_parameters())


def test_an_untested_lightning_gets_one_warning_and_the_stock_path(
    make_cfg, tmp_path, monkeypatch, caplog
) -> None:
    import lightning

    assert fastpath.supported("2.6.6") and not fastpath.supported("2.7.0")
    monkeypatch.setattr(lightning, "__version__", "2.7.0")
    with caplog.at_level(logging.WARNING, logger="logitlab.run.fastpath"):
        _, model, trainer = build(make_cfg("fastpath=true"))
    (record,) = [r for r in caplog.records if r.name == "logitlab.run.fastpath"]
    assert record.getMessage() == (
        "fastpath=true: Lightning 2.7.0 is not among the tested releases (2.5, 2.6); running "
        "with Lightning's stock behaviour"
    )
    assert type(model) is MulticlassClassifier and type(trainer.profiler) is PassThroughProfiler


@pytest.mark.parametrize("before", [None, "0"])
def test_cpu_runs_hide_gpus_and_restore_the_environment(monkeypatch, before) -> None:
    if before is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", before)
    with fastpath.gpus_hidden(True):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert torch.cuda.device_count() == 0
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before
    with fastpath.gpus_hidden(False):
        assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


# What reaching into Lightning / torchmetrics internals looks like in this code base.
PRIVATE = re.compile(
    r"(?<![\w.])(?!self\b|cls\b)([a-z]\w*)\._[a-z]\w*"  # other_object._private
    r"|_current_fx_name|__setattr__|fit_loop|batch_progress|_signal_connector"
    r"|CUDA_VISIBLE_DEVICES"
)


def test_no_private_lightning_api_outside_the_fast_path_module() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "fastpath.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if PRIVATE.search(code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []
    # and the checker finds what it looks for
    assert PRIVATE.search("trainer._signal_connector.received_sigterm = True")
    assert PRIVATE.search("done = trainer.fit_loop.epoch_loop.batch_progress.current.completed")
    assert PRIVATE.search("metric.confidences if callback._last_global_step_saved else None")
    assert not PRIVATE.search("self._stats = {}")


def test_unused_module_hooks_are_skipped_and_defined_ones_still_called(make_cfg, tmp_path) -> None:
    _, fast, _ = build(make_cfg("fastpath=true", run_dir=tmp_path / "fast"))
    assert fast.on_before_backward is None and fast.on_train_batch_end is None
    assert callable(fast.on_train_epoch_end) and callable(fast.on_validation_batch_end)
    calls = []

    class Counted(MulticlassClassifier):  # a user's head with a per-step hook of its own
        def on_after_backward(self) -> None:
            calls.append(self.global_step)

    cfg = make_cfg("trainer.max_epochs=1", "test=false", run_dir=tmp_path / "counted")
    datamodule, model, trainer = build(cfg)
    model.__class__ = Counted
    fastpath.apply(trainer, model)
    assert callable(model.on_after_backward) and model.on_before_zero_grad is None
    trainer.fit(model, datamodule=datamodule)
    assert calls == list(range(trainer.global_step)) and len(calls) == 20  # every step, in order


def test_the_cached_signature_check_answers_as_lightnings() -> None:
    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature as stock

    cached = fastpath.signature_read_once(stock)
    assert fastpath.signature_read_once(cached) is cached  # wrapped once

    class Steps:
        def two(self, batch, batch_idx): ...
        def one(self, batch): ...
        def named(self, batch, idx): ...
        def varargs(self, *args): ...

    steps = Steps()
    questions = [("batch_idx", False, 2), ("batch_idx", True, None),
                 ("dataloader_iter", True, None), ("dataloader_idx", False, None)]  # fmt: skip
    for name in ("two", "one", "named", "varargs"):
        for question in questions:
            method = getattr(steps, name)
            assert cached(method, *question) == stock(method, *question), (name, question)
            assert cached(method, *question) == stock(method, *question)  # from the cache
    assert cached(steps.two, "batch_idx", min_args=2)
    assert not cached(steps.one, "batch_idx", min_args=2)


def test_without_clipping_its_hook_is_skipped_and_with_it_clipping_acts_as_stock(
    make_cfg, tmp_path
) -> None:
    def clip_calls(trainer) -> int:
        return sum(
            len(durations)
            for action, durations in trainer.profiler.recorded_durations.items()
            if action.endswith(".configure_gradient_clipping")
        )

    clip = ("trainer.profiler=simple", "trainer.gradient_clip_val=0.01")
    stock, stock_trainer, _ = fitted(make_cfg, tmp_path, "stock", *clip)
    fast, fast_trainer, _ = fitted(make_cfg, tmp_path, "fast", *clip, "fastpath=true")
    free, free_trainer, _ = fitted(
        make_cfg, tmp_path, "free", "trainer.profiler=simple", "fastpath=true"
    )
    # clipping asked for: the hook runs at every step and clips as Lightning's stock path does
    assert clip_calls(stock_trainer) == clip_calls(fast_trainer) == 40
    for (name, a), (_, b) in zip(
        stock.state_dict().items(), fast.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # none asked for: the hook, which would clip by 0, is not called, and the weights differ
    assert clip_calls(free_trainer) == 0
    assert not all(
        torch.equal(a, b) for a, b in zip(free.parameters(), fast.parameters(), strict=True)
    )
