"""The benchmark (benchmarks/bench.py, `make bench`): its reference loops do the same work,
its ratios are paired within a repetition, and its report carries the figures it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_bench_reference_loops_do_the_same_work(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench, "N_TRAIN", 1500)
    monkeypatch.setattr(bench, "N_VAL", 500)
    data, _ = bench.make_data(tmp_path)
    bare = bench.bare_loop(data, 256, 2, "cpu", "32-true")
    lightning = bench.lightning_loop(data, 256, 2, "cpu", "32-true")
    assert len(bare["epoch_s"]) == len(lightning["epoch_s"]) == 2
    for loop in (bare, lightning):  # one thread: an epoch's CPU time is at most its wall time
        for wall, cpu in zip(loop["epoch_s"], loop["epoch_cpu_s"], strict=True):
            assert 0 < cpu <= wall * 1.2 + 0.05
    # Same initial weights, batches and optimizer: the same model, within float noise.
    assert lightning["val_acc"] == pytest.approx(bare["val_acc"], abs=2 / 500)
    assert bare["val_acc"] > 0.5  # and it learned something (10 classes)


def test_bench_rotates_the_order_and_pairs_ratios_within_a_repetition() -> None:
    n = len(bench.CONTESTANTS)
    orders = [bench.running_order(rep) for rep in range(n)]
    for position in range(n):  # every contestant runs in every position once in n reps
        assert {order[position] for order in orders} == set(bench.CONTESTANTS)
    # The machine runs 1.0x, 1.3x, then 0.9x as fast; logitlab is 1.08x the bare loop in each.
    speeds = [1.0, 1.3, 0.9]
    bare = [{"measured_s": [0.40 * s, 0.41 * s, 0.39 * s]} for s in speeds]
    ours = [{"measured_s": [t * 1.08 for t in b["measured_s"]]} for b in bare]
    assert bench.rep_ratios(ours, bare) == pytest.approx([1.08] * 3)
    with pytest.raises(ValueError):  # a missing run is an error, not a shorter list
        bench.rep_ratios(ours[:2], bare)


def fake_runs() -> dict[str, list[dict]]:
    """Four contestants over two repetitions; the second runs on a machine 1.2x slower. Their
    CPU time per epoch is the work plus what other processes cost it (never less than the
    work): one epoch of each is undisturbed."""
    per_epoch = {"bare": 0.40, "lightning": 0.42, "fastpath": 0.44, "logitlab": 0.441}
    disturbed = {"bare": 1.1, "lightning": 1.5, "fastpath": 1.0, "logitlab": 1.3}  # second rep
    return {
        name: [
            {
                "measured_s": [t * speed] * 3,
                "measured_cpu_s": [t * 1.25, t * extra, t * 1.6],
                "val_acc": 0.9,
                "rss_mb": 1000.0,
            }
            for speed, extra in zip((1.0, 1.2), (1.0, disturbed[name]), strict=True)
        ]
        for name, t in per_epoch.items()
    }


def test_bench_summary_holds_every_paired_ratio() -> None:
    row = bench.summarise(fake_runs())
    assert row["over_lightning"] == pytest.approx(0.441 / 0.42)  # defaults / minimal Lightning
    assert row["fastpath_ratio"] == pytest.approx(0.44 / 0.40)  # fastpath / bare
    assert row["fastpath_gain"] == pytest.approx(0.441 / 0.44)
    assert row["over_lightning_by_rep"] == pytest.approx([0.441 / 0.42] * 2)
    assert row["logitlab_epoch_s"] == pytest.approx(0.441 * 1.1)  # the median of both reps
    # CPU time: the ratio of the minima, which the disturbed epochs cannot move
    assert row["cpu_over_lightning"] == pytest.approx(0.441 / 0.42)
    assert row["cpu_fastpath_ratio"] == pytest.approx(0.44 / 0.40)
    assert row["bare_epoch_cpu_min_s"] == pytest.approx(0.40)


def test_bench_report_and_docs_show_the_measured_figures(tmp_path: Path, capsys) -> None:
    report = {
        "machine": "x86_64, 2 cpus", "device": "cpu", "trainer": "cpu", "precision": "32-true",
        "epochs": 6, "reps": 4, "workload": "MLP", "b1024": bench.summarise(fake_runs()),
        "startup_s": 5.0, "import_floor_s": 4.2, "startup_ratio": 1.19, "help_s": 0.8,
        "peak_rss_mb": {"logitlab": 1064.0, "bare": 906.0, "lightning": 1143.0},
        "rss_over_bare_mb": 158.0,
    }  # fmt: skip
    bench.print_report(report)
    out = capsys.readouterr().out
    assert "batch 1024: logitlab, defaults" in out and "1.050" in out and "1.100" in out
    bench.write_docs(report, tmp_path)
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "**1.050** (1.050, 1.050)" in doc  # defaults over minimal Lightning, per repetition
    assert "**1.100** (1.100, 1.100)" in doc  # fastpath over bare
    assert (tmp_path / "benchmarks.png").stat().st_size > 10_000
    json.dumps(report)  # latest.json is JSON


@pytest.mark.parametrize("fastpath", [False, True])
def test_bench_runs_a_config_logitlab_accepts(tmp_path: Path, fastpath: bool) -> None:
    from logitlab.config.compose import preflight

    overrides = bench.logitlab_overrides(
        tmp_path / "d.npz", tmp_path / "s.npz", 256, 6, tmp_path / "run", "cpu", "32-true", fastpath
    )
    preflight(overrides, str(ROOT / "conf"))  # composes: every key exists, every value fits
    assert f"fastpath={str(fastpath).lower()}" in overrides


def load(name: str, monkeypatch: pytest.MonkeyPatch):
    """A module of benchmarks/ by name, benchmarks/ on the path (as bench.py runs them)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_the_workloads_bare_loops_train_logitlabs_networks(monkeypatch, tmp_path: Path) -> None:
    import torch

    workloads = load("workloads", monkeypatch)
    monkeypatch.setattr(workloads, "N_IMAGES", 600)
    monkeypatch.setattr(workloads, "N_ROWS", 600)
    monkeypatch.setattr(workloads, "N_VAL", 200)
    monkeypatch.setattr(workloads.bench, "N_TRAIN", 800)  # the rows come from bench's data
    monkeypatch.setattr(workloads.bench, "N_VAL", 200)
    data = workloads.make_data(tmp_path)
    with np.load(data["images"]) as npz:
        assert npz["x"].shape == (800, 1, 28, 28) and npz["x"].dtype == np.uint8
    for workload in ("cnn", "dataset"):
        result = workloads.bare(workload, data, 3)
        assert len(result["epoch_cpu_s"]) == 3 and min(result["epoch_cpu_s"]) > 0
        assert result["val_acc"] > 0.2, workload  # it learned: twice chance (10 classes)
    rows = load("rows", monkeypatch).Rows(str(data["rows"]), "val")
    x, y = rows[0]
    assert np.load(tmp_path / "mnist_like.npz")["x"].shape == (1000, 784)
    assert (
        x.dtype == torch.float32 and x.shape == (784,) and isinstance(y, int) and len(rows) == 200
    )


@pytest.mark.parametrize("workload", ["cnn", "dataset"])
def test_the_workloads_run_configs_logitlab_accepts(
    tmp_path: Path, workload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logitlab.config.compose import preflight

    workloads = load("workloads", monkeypatch)
    paths = {k: tmp_path / f"{k}.npz" for k in ("images", "splits", "rows")}
    cfg = preflight(workloads.overrides(workload, paths, 4, tmp_path / "run"), str(ROOT / "conf"))
    assert cfg is not None and cfg.data.batch_size == workloads.BATCH
    if workload == "cnn":
        assert cfg.model.net._target_ == "logitlab.models.nets.CNN"
        net = {k: cfg.model.net[k] for k in workloads.CNN}  # the bare loop's CNN is model/net=cnn
        assert net == {k: list(v) if isinstance(v, tuple) else v for k, v in workloads.CNN.items()}
    else:
        assert cfg.data.train == {
            "_target_": "rows.Rows",
            "path": str(paths["rows"]),
            "part": "train",
        }


def test_the_callback_profile_reads_lightnings_report(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.profilers import SimpleProfiler

    callbacks = load("callbacks", monkeypatch)
    profiler = SimpleProfiler()
    for _ in range(3):
        with profiler.profile("[Callback]ModelCheckpoint{'monitor': 'val/acc'}.on_train_epoch_end"):
            pass
    with profiler.profile("run_training_epoch"):
        pass
    rows = {}
    for line in profiler.summary().splitlines():
        found = callbacks.ROW.match(line.strip())
        if found and found.group(1) not in ("Action", "Total"):
            rows[found.group(1)] = (int(found.group(3)), float(found.group(4)))
    recorded = profiler.recorded_durations
    assert rows.keys() == recorded.keys()
    for action, (calls, total) in rows.items():
        assert calls == len(recorded[action])
        assert total == pytest.approx(sum(recorded[action]), rel=1e-3, abs=1e-6)
    assert callbacks.owner(next(iter(recorded))) == "[Callback]ModelCheckpoint"
