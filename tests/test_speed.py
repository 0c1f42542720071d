"""The performance levers keep their meaning: a throttled bar still ends at the batch count,
profiling and clipping still work when asked for, GPUs come back after a CPU run, and the
benchmark's reference loops do the same work as each other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from logitlab import bench
from logitlab.callbacks import ProgressBar
from logitlab.models import MulticlassClassifier
from logitlab.run import gpus_hidden
from logitlab.train import build


def test_progress_bar_moves_at_most_refresh_rate_times_a_second(monkeypatch) -> None:
    clock = iter(i * 0.01 for i in range(1000))  # a batch every 10 ms: 100 batches in a second
    monkeypatch.setattr("logitlab.callbacks.time.monotonic", lambda: next(clock))
    bar = ProgressBar(refresh_rate=4)
    due = [i for i in range(100) if bar._due(i, total=100)]
    assert due[0] == 0 and due[-1] == 99  # the first batch and the last one always move it
    assert 4 <= len(due) <= 6  # about four a second, not a hundred


def test_progress_bar_ends_each_epoch_at_its_batch_count(make_cfg) -> None:
    cfg = make_cfg(
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=true",
        "+callbacks.rich_progress_bar._target_=logitlab.callbacks.ProgressBar",
        "+callbacks.rich_progress_bar.refresh_rate=1",
    )
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    bar = trainer.progress_bar_callback
    assert isinstance(bar, ProgressBar)
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert task.completed == task.total == trainer.num_training_batches == 20


def test_quiet_profiler_by_default_and_lightning_profilers_when_asked(make_cfg, tmp_path) -> None:
    from lightning.pytorch.profilers import SimpleProfiler

    _, _, trainer = build(make_cfg())
    assert trainer.profiler.profile("a") is trainer.profiler.profile("b")  # one shared no-op
    _, _, profiled = build(make_cfg("trainer.profiler=simple", run_dir=tmp_path / "profiled"))
    assert isinstance(profiled.profiler, SimpleProfiler)


@pytest.mark.parametrize("before", [None, "0"])
def test_cpu_runs_hide_gpus_and_restore_the_environment(monkeypatch, before) -> None:
    if before is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", before)
    with gpus_hidden(True):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert torch.cuda.device_count() == 0
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before
    with gpus_hidden(False):
        assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


@pytest.mark.parametrize("clip", [None, 0.01])
def test_gradient_clipping_still_clips(make_cfg, tmp_path, clip) -> None:
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr=1.0",
        "optimizer.momentum=0.0",
        "optimizer.nesterov=false",
        "trainer.max_steps=1",
        "trainer.num_sanity_val_steps=0",
        "callbacks.early_stopping=null",  # one step: no validation to watch
        "callbacks.model_checkpoint=null",
        "test=false",
        f"trainer.gradient_clip_val={clip if clip else 'null'}",
        run_dir=tmp_path / str(clip),
    )
    datamodule, model, trainer = build(cfg)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer.fit(model, datamodule=datamodule)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = (after - before).norm().item()  # plain SGD, lr 1: the step is the gradient
    if clip:
        assert step == pytest.approx(clip, rel=1e-3)
    else:
        assert step > 10 * 0.01


def test_hook_name_store_leaves_module_registration_alone() -> None:
    model = MulticlassClassifier(num_features=4, num_classes=3, hidden_sizes=[5])
    model._current_fx_name = "training_step"
    assert model.__dict__["_current_fx_name"] == "training_step"
    model.extra = nn.Linear(2, 2)  # other attributes still go through nn.Module
    assert "extra" in dict(model.named_children())
    assert "extra.weight" in dict(model.named_parameters())


def test_bench_reference_loops_do_the_same_work(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench, "N_TRAIN", 1500)
    monkeypatch.setattr(bench, "N_VAL", 500)
    data, _ = bench.make_data(tmp_path)
    bare = bench.bare_loop(data, 256, 2, "cpu", "32-true")
    lightning = bench.lightning_loop(data, 256, 2, "cpu", "32-true")
    assert len(bare["epoch_s"]) == len(lightning["epoch_s"]) == 2
    # Same initial weights, batches and optimizer: the same model, within float noise.
    assert lightning["val_acc"] == pytest.approx(bare["val_acc"], abs=2 / 500)
    assert bare["val_acc"] > 0.5  # and it learned something (10 classes)


def test_diagnostics_give_the_same_values_however_batches_are_grouped(monkeypatch) -> None:
    from logitlab.dashboards import Diagnostics

    model = MulticlassClassifier(num_features=4, num_classes=3, hidden_sizes=[5])
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)) for n in (9, 4, 17)
    ]
    results = []
    for flush_every in (1, 30, 1 << 20):  # per batch, every few batches, once at the end
        monkeypatch.setattr(Diagnostics, "FLUSH_ELEMENTS", flush_every)
        diagnostics = Diagnostics()
        diagnostics.setup(None, model, "fit")
        for logits, targets in batches:
            diagnostics._update("val", model, logits, (None, targets))
        diagnostics._flush("val", model)
        results.append(diagnostics.stages["val"].compute())
    for other in results[1:]:
        for name, value in results[0].items():
            torch.testing.assert_close(other[name], value)
    assert results[0]["confusion"].sum().item() == 30
    # and the values torchmetrics gives the softmax probabilities of all batches at once
    from torchmetrics.functional import classification as tmf

    probs = torch.cat([logits for logits, _ in batches]).softmax(-1)
    targets = torch.cat([targets for _, targets in batches])
    expected = {
        "ece": tmf.multiclass_calibration_error(probs, targets, 3, n_bins=15),
        "f1_macro": tmf.multiclass_f1_score(probs, targets, 3, average="macro"),
        "acc_class": tmf.multiclass_accuracy(probs, targets, 3, average=None),
        "confusion": tmf.multiclass_confusion_matrix(probs, targets, 3),
    }
    for name, value in expected.items():
        torch.testing.assert_close(results[0][name], value, msg=name)


def test_probabilities_and_classes_equal_torch_softmax_and_argmax() -> None:
    model = MulticlassClassifier(num_features=4, num_classes=4, hidden_sizes=[5])
    logits = torch.cat(
        [
            torch.randn(64, 4, generator=torch.Generator().manual_seed(0)) * 5,
            torch.tensor([[1e4, -1e4, 0.0, 1e4], [2.0, 2.0, 2.0, 2.0], [-1e4, -1e4, -3e3, 0.0]]),
        ]
    )
    probs = model.probabilities(logits)
    torch.testing.assert_close(probs, torch.softmax(logits, -1), atol=1e-6, rtol=1e-6)
    assert torch.isfinite(probs).all()
    # ties go to the first maximal class, as argmax does
    assert torch.equal(model.predict_classes(logits), logits.argmax(-1))
    assert model.predict_classes(logits)[-3:].tolist() == [0, 0, 3]
    # bf16 logits (autocast) give float32 probabilities
    half = model.probabilities(logits[:64].bfloat16())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half.sum(-1), torch.ones(64))


def test_bench_rotates_the_order_and_pairs_ratios_within_a_repetition() -> None:
    orders = [bench.running_order(rep) for rep in range(3)]
    for position in range(3):  # every contestant runs first, second and last once in 3 reps
        assert {order[position] for order in orders} == set(bench.CONTESTANTS)
    # The machine runs 1.0x, 1.3x, then 0.9x as fast; logitlab is 1.08x the bare loop in each.
    speeds = [1.0, 1.3, 0.9]
    bare = [{"measured_s": [0.40 * s, 0.41 * s, 0.39 * s]} for s in speeds]
    ours = [{"measured_s": [t * 1.08 for t in b["measured_s"]]} for b in bare]
    assert bench.rep_ratios(ours, bare) == pytest.approx([1.08] * 3)
    with pytest.raises(ValueError):  # a missing run is an error, not a shorter list
        bench.rep_ratios(ours[:2], bare)


def test_bench_report_shows_logitlabs_share_over_the_minimal_lightning_loop(
    tmp_path: Path, capsys
) -> None:
    row = {
        "logitlab_epoch_s": 0.44, "bare_epoch_s": 0.40, "lightning_epoch_s": 0.42,
        "ratio": 1.1, "ratio_of_medians": 1.1, "ratio_by_rep": [1.1, 1.1, 1.1],
        "lightning_ratio": 1.05, "over_lightning": 1.0476, "over_lightning_by_rep": [1.0476] * 3,
        "logitlab_val_acc": 0.99, "bare_val_acc": 0.99,
    }  # fmt: skip
    report = {
        "machine": "x86_64, 2 cpus", "device": "cpu", "trainer": "cpu", "precision": "32-true",
        "epochs": 6, "reps": 3, "workload": "MLP", "b1024": row, "ratio_b1024": 1.1,
        "startup_s": 5.0, "import_floor_s": 4.2, "startup_ratio": 1.19, "help_s": 0.8,
        "peak_rss_mb": {"logitlab": 1064.0, "bare": 906.0, "lightning": 1143.0},
        "rss_over_bare_mb": 158.0,
    }  # fmt: skip
    bench.print_report(report)
    assert "logitlab / minimal Lightning, b1024" in capsys.readouterr().out
    bench.write_docs(report, tmp_path)
    table = (tmp_path / "benchmarks.md").read_text()
    assert "| logitlab / minimal Lightning |" in table
    assert "| 0.420 s (1.050) | 1.048 |" in table


def test_checkpoint_and_early_stopping_keep_lightnings_state_keys() -> None:
    from lightning.pytorch import callbacks as lightning_callbacks

    from logitlab import callbacks

    for name, kwargs in [
        ("ModelCheckpoint", {"monitor": "val/acc", "mode": "max", "every_n_train_steps": 7}),
        ("EarlyStopping", {"monitor": "val/acc", "mode": "max", "patience": 3}),
    ]:
        ours = getattr(callbacks, name)(**kwargs)
        theirs = getattr(lightning_callbacks, name)(**kwargs)
        assert isinstance(ours, type(theirs))
        # checkpoints written with Lightning's classes resume with ours, and the other way round
        assert ours.state_key == theirs.state_key
        assert ours.state_key.startswith(f"{name}{{'monitor': 'val/acc', 'mode': 'max'")
        assert ours.state_key is ours.state_key  # built once
    last = callbacks.LastCheckpoint("/tmp/unused")
    assert last.state_key.startswith("LastCheckpoint{'monitor': None")
    assert (last.filename, last.save_top_k) == ("last", 1)


def test_per_epoch_callbacks_skip_the_per_step_hooks_and_step_checkpoints_still_save(
    make_cfg,
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

    cfg = make_cfg("trainer.max_epochs=1", "callbacks.checkpoint_every_n_steps=7", "test=false")
    datamodule, model, trainer = build(cfg)
    per_step = ("on_train_batch_start", "on_before_backward", "on_train_batch_end")
    acting = [
        callback
        for callback in trainer.callbacks
        if not isinstance(callback, ProgressBar)  # a bar moves per step by nature
        and any(callable(getattr(callback, hook)) for hook in per_step)
    ]
    # Lightning calls no other callback at each step: only the step checkpoint
    (step_checkpoint,) = acting
    assert isinstance(step_checkpoint, ModelCheckpoint)
    assert step_checkpoint._every_n_train_steps == 7
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 20  # the digits training split in batches of 64 ...
    assert step_checkpoint._last_global_step_saved == 14  # ... saved after steps 7 and 14


def test_model_summary_and_bar_take_no_per_step_calls_they_do_not_use(make_cfg, capsys) -> None:
    from lightning.pytorch.callbacks import ModelSummary as LightningSummary

    from logitlab.callbacks import ModelSummary, NoStepHooks, ProgressBar

    step_hooks = [name for name in vars(NoStepHooks) if name.startswith("on_")]
    assert len(step_hooks) == 6
    cfg = make_cfg("trainer.max_epochs=1", "trainer.enable_model_summary=true", "test=false")
    datamodule, model, trainer = build(cfg)
    (summary,) = [c for c in trainer.callbacks if isinstance(c, LightningSummary)]
    assert isinstance(summary, ModelSummary)  # the configured one: Lightning added none
    assert [hook for hook in step_hooks if callable(getattr(summary, hook))] == []
    bar = ProgressBar()
    assert [hook for hook in step_hooks if callable(getattr(bar, hook))] == ["on_train_batch_end"]
    trainer.fit(model, datamodule=datamodule)
    out = capsys.readouterr().out
    assert "Total params" in out and "net" in out  # the summary is still printed
    # trainer.enable_model_summary=false leaves it out, as it leaves out Lightning's
    cfg = make_cfg("trainer.max_epochs=1", "trainer.enable_model_summary=false")
    _, _, trainer = build(cfg)
    assert not [c for c in trainer.callbacks if isinstance(c, LightningSummary)]
