"""The benchmark (benchmarks/bench.py, `make bench`): its reference loops do the same work,
its ratios are paired within a repetition, and its report carries the figures it measured."""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from logitlab.run import gpu_check

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


@pytest.mark.skipif(gpu_check.nvml_loads(), reason="NVML loads on this machine")
def test_the_minimal_lightning_loop_does_not_pay_for_a_missing_nvml(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(bench, "N_TRAIN", 4096)
    monkeypatch.setattr(bench, "N_VAL", 256)
    data, _ = bench.make_data(tmp_path)
    load = ctypes.CDLL

    def nvml_loads(direct: bool) -> int:
        loads: list[str] = []
        with monkeypatch.context() as patch:
            patch.setattr(ctypes, "CDLL", lambda name, *a, **k: loads.append(name) or load(name))
            if not direct:
                patch.setattr(gpu_check, "direct_cuda_check", nullcontext)
            lightning = bench.lightning_loop(data, 256, 2, "cpu", "32-true")
        assert lightning["val_acc"] > 0.3  # its 32 optimizer steps ran
        return sum("nvidia-ml" in str(name) for name in loads)

    # Lightning's setting: each of the 32 steps tries to load NVML; as in a logitlab run, none
    # does (what is left is the Trainer's own look for a GPU, before the first step)
    assert nvml_loads(direct=False) >= 32
    assert nvml_loads(direct=True) <= 3


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
    # CPU time of the sequential runs: the ratio of the minima, which the disturbed epochs miss
    assert row["sequential_cpu_over_lightning"] == pytest.approx(0.441 / 0.42)
    assert row["sequential_cpu_fastpath_ratio"] == pytest.approx(0.44 / 0.40)
    assert row["bare_epoch_cpu_min_s"] == pytest.approx(0.40)
    assert "cpu_over_lightning" not in row  # the figure of merit comes from the turns only


def test_bench_figure_of_merit_is_the_ratio_of_median_epoch_cpu_by_turns() -> None:
    turns = {  # epoch CPU times; the machine's noise lands on all of them alike
        "bare": [1.0, 1.3, 1.1], "bare_again": [1.02, 1.28, 1.1], "lightning": [1.2, 1.1, 1.4],
        "logitlab": [1.3, 1.25, 1.5], "fastpath": [1.2, 1.15, 1.5],
    }  # fmt: skip
    # a second round of new processes: the bare loop's process is 10 % slower for its life
    slower = {name: [t * (1.1 if name == "bare" else 1.0) for t in times]
              for name, times in turns.items()}  # fmt: skip
    row = bench.summarise(fake_runs(), [turns])
    assert row["cpu_over_lightning"] == pytest.approx(1.3 / 1.2)  # medians
    assert row["cpu_over_lightning_min"] == pytest.approx(1.25 / 1.1)  # minima, beside
    assert row["cpu_fastpath_ratio"] == pytest.approx(1.2 / 1.1)
    assert row["cpu_aa"] == pytest.approx(1.1 / 1.1)  # the bare loop against itself
    assert row["cpu_aa_min"] == pytest.approx(1.02 / 1.0)
    assert row["sequential_cpu_over_lightning"] == pytest.approx(0.441 / 0.42)  # kept beside

    row = bench.summarise(fake_runs(), [turns, slower])  # both rounds' epochs pooled
    bare = sorted([1.0, 1.3, 1.1, 1.1, 1.43, 1.21])
    assert row["cpu_fastpath_ratio"] == pytest.approx(1.2 / ((bare[2] + bare[3]) / 2))
    assert row["cpu_fastpath_ratio_by_round"] == pytest.approx([1.2 / 1.1, 1.2 / 1.21])
    assert row["cpu_aa_by_round"] == pytest.approx([1.0, 1.1 / 1.21])
    assert row["cpu_over_lightning_by_round"] == pytest.approx([1.3 / 1.2] * 2)
    assert len(row["bare_turns_epoch_cpu_s"]) == 6


SPINNER = """import json, sys, time
marks = []
while time.process_time() < 0.3:
    marks.append(time.perf_counter())
    end = time.process_time() + 0.001
    while time.process_time() < end:
        pass
json.dump({"marks": marks, "cpu": time.process_time()}, open(sys.argv[1], "w"))
print("done")
"""


def test_by_turns_one_contestant_runs_at_a_time(tmp_path: Path, monkeypatch) -> None:
    import sys

    interleave = load("interleave", monkeypatch)
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    commands = [[sys.executable, "-c", SPINNER, str(out)] for out in outs]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    results = interleave.run_by_turns(commands, logs, {}, tmp_path, slice_s=0.05)
    assert [output for _, output in results] == ["done\n", "done\n"]
    assert all(rss > 1 for rss, _ in results)  # each one's peak RSS in MB
    marks = sorted(
        (t, name)
        for name, out in zip("ab", outs, strict=True)
        for t in json.loads(out.read_text())["marks"]
    )
    blocks = 1 + sum(a[1] != b[1] for a, b in itertools.pairwise(marks))
    # 0.3 CPU-s each in 0.05 s turns: about 6 turns each. Side by side on two cores their
    # millisecond marks would alternate hundreds of times; one after the other, twice.
    assert 6 <= blocks <= 40, blocks
    for out in outs:  # a stopped contestant spends no CPU: each spent its own work's
        assert json.loads(out.read_text())["cpu"] == pytest.approx(0.3, abs=0.05)


def test_by_turns_a_failing_contestant_stops_the_round(tmp_path: Path, monkeypatch) -> None:
    import sys

    interleave = load("interleave", monkeypatch)
    pid_file = tmp_path / "pid"
    forever = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
    commands = [
        [sys.executable, "-c", forever + "while True: time.sleep(0.01)"],
        [sys.executable, "-c", "import sys; print('no data here'); sys.exit(3)"],
    ]
    with pytest.raises(RuntimeError, match="no data here"):
        interleave.run_by_turns(commands, [tmp_path / "a.log", tmp_path / "b.log"], {}, tmp_path)
    with pytest.raises(ProcessLookupError):  # the other contestant is gone, not left stopped
        os.kill(int(pid_file.read_text()), 0)


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


def shrink_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MLP's and the workloads' data a few hundred samples long (bench, workloads)."""
    small = {"bench": {"N_TRAIN": 400, "N_VAL": 100},
             "workloads": {"N_IMAGES": 200, "N_ROWS": 300, "N_VAL": 100}}  # fmt: skip
    for module, sizes in small.items():
        for name, value in sizes.items():
            monkeypatch.setattr(load(module, monkeypatch), name, value)


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
    lightning = workloads.minimal_lightning(data, 3)  # the same work through Lightning's loop
    assert len(lightning["epoch_cpu_s"]) == 3 and lightning["val_acc"] > 0.2
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


def test_the_dataset_workload_adds_fastpath_and_the_minimal_lightning_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logitlab.config.compose import preflight

    workloads = load("workloads", monkeypatch)
    paths = {k: tmp_path / f"{k}.npz" for k in ("images", "splits", "rows")}
    cnn = workloads.contestants_of("cnn", paths, 4, tmp_path / "cnn", tmp_path)
    dataset = workloads.contestants_of("dataset", paths, 4, tmp_path / "ds", tmp_path)
    assert sorted(cnn) == ["bare", "bare_again", "logitlab"]
    assert sorted(dataset) == ["bare", "bare_again", "fastpath", "lightning", "logitlab"]
    commands = {name: command for name, (command, _) in dataset.items()}
    assert "fastpath=true" in commands["fastpath"] and not any(
        arg.startswith("fastpath=") for arg in commands["logitlab"]
    )
    assert commands["lightning"][-1] == "lightning" and commands["bare"][-1] == "bare"
    cfg = preflight(commands["fastpath"][3:], str(ROOT / "conf"))  # after python -m logitlab.train
    assert cfg is not None and cfg.fastpath is True and cfg.data.source == "dataset"


def test_the_workloads_section_splits_the_dataset_ratio_at_lightning(monkeypatch) -> None:
    bench = load("bench", monkeypatch)

    def workload(**ratios: float) -> dict:
        r = {"epoch_cpu_median_s": {"logitlab": 0.5, "bare": 0.4, "fastpath": 0.47,
                                    "lightning": 0.46}}  # fmt: skip
        for key, value in ratios.items():
            r |= {key: value, f"{key}_by_round": [value, value], f"{key}_min": value}
        return r

    cnn = workload(over_bare=1.01, aa=0.99)
    both = workload(over_bare=1.25, aa=1.0, over_lightning=1.087, lightning_over_bare=1.15,
                    fastpath_over_bare=1.175)  # fmt: skip
    text = bench.workloads_section({"cnn": cnn, "dataset": both})
    assert (
        "| 0.500 s | 0.470 s | 0.460 s | 0.400 s | **1.087** (1.087, 1.087; minima 1.087) "
        "| **1.150** (1.150, 1.150; minima 1.150) | **1.175**" in text
    )
    earlier = bench.workloads_section({"cnn": cnn, "dataset": workload(over_bare=1.3, aa=1.0)})
    assert "minimal Lightning / bare" not in earlier  # a report from before the split
    assert "**1.300**" in earlier


def test_each_drop_removes_just_its_callback_and_every_run_keeps_the_same_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra.utils import get_class
    from lightning.pytorch.callbacks import LearningRateMonitor

    from logitlab.config.compose import preflight
    from logitlab.config.instantiate import instantiate_callbacks, instantiate_loggers
    from logitlab.run.callbacks import EpochClock

    drops = load("drops", monkeypatch)
    paths = {k: tmp_path / f"{k}.npz" for k in ("images", "splits", "rows")}
    where = [f"paths.output_dir={tmp_path / 'run'}"]
    times = tmp_path / "epochs.json"

    def built(extra: list[str]) -> tuple[list[str], int]:
        command = drops.command("dataset", paths, 4, tmp_path / "run", extra, times)
        cfg = preflight([*command[3:], *where], str(ROOT / "conf"))
        loggers = instantiate_loggers(cfg.logger)
        callbacks = instantiate_callbacks(
            cfg.callbacks,
            has_logger=bool(loggers),
            progress_bar=cfg.trainer.get("enable_progress_bar") is not False,
            model_summary=cfg.trainer.get("enable_model_summary") is not False,
        )
        return sorted(type(c).__name__ for c in callbacks), len(loggers)

    assert drops.command("dataset", paths, 4, tmp_path, [], times)[1:3] == ["-m", "logitlab.train"]
    defaults, loggers = built([])
    assert len(defaults) == 10 and "EpochTimes" in defaults and "EpochClock" in defaults
    assert loggers == 1
    cfg = preflight(
        [*drops.overrides("dataset", paths, 4, tmp_path / "run"), *where], str(ROOT / "conf")
    )
    for name, extra in drops.DROPS.items():
        left, loggers = built(extra)
        assert loggers == (0 if "logger=none" in extra else 1), name
        if name in ("all", "all_and_logger"):
            assert left == ["EpochTimes"], name  # the clock every run is timed by
        elif name in ("defaults", "defaults_again"):
            assert left == defaults
        elif name == "logger":  # the learning rate monitor needs a logger
            assert left == [c for c in defaults if c != LearningRateMonitor.__name__]
        else:
            gone = list(defaults)
            gone.remove(get_class(cfg.callbacks[name]._target_).__name__)
            assert left == gone, name
    assert EpochClock.__name__ in defaults


def test_the_epoch_clock_of_the_drops_writes_each_epochs_cpu_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = load("marks", monkeypatch)
    path = tmp_path / "epochs.json"
    clock = marks.epoch_times(str(path))

    def burn(seconds: float) -> None:
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass

    clock.on_train_epoch_start(None, None)
    burn(0.2)
    clock.on_train_epoch_start(None, None)
    burn(0.1)
    clock.on_fit_end(None, None)
    spans = json.loads(path.read_text())
    assert len(spans) == 2
    assert spans[0] == pytest.approx(0.2, abs=0.02) and spans[1] == pytest.approx(0.1, abs=0.02)


def test_the_drops_table_gives_each_runs_saving_and_the_minimal_loop_only_where_it_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drops = load("drops", monkeypatch)
    cpu = {
        "mlp": {n: [[1.0, 1.0, 2.0]] for n in drops.DROPS} | {drops.MINIMAL: [[0.8, 0.8, 0.8]]},
        "dataset": {n: [[0.5, 0.5, 0.5]] for n in drops.DROPS},
    }
    cpu["mlp"]["all"] = [[0.9, 0.9, 0.9]]
    report = {"workloads": ["mlp", "dataset"], "epochs": 4, "rounds": 1, "cpu": cpu,
              "saved": {w: drops.saved(c) for w, c in cpu.items()}}  # fmt: skip
    cells = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in drops.section(report).splitlines()
        if line.startswith("| ") and not line.startswith("| run")
    ]
    rows = {row[0]: row[1:] for row in cells}
    # median 1.0 -> 0.9 saves 10 %; mean 4/3 -> 0.9 saves 32.5 %, 100 ms of the 1.0 s median
    assert rows["all the callbacks dropped"][:2] == [
        "+10.0 % (+10.0), +100 ms",
        "+32.5 % (+32.5), +325 ms",
    ]
    assert rows["the minimal Lightning loop (bench.py's)"][0] == "+20.0 % (+20.0), +200 ms"
    assert rows["the minimal Lightning loop (bench.py's)"][2:] == ["-", "-"]
    assert rows["`logger=none`"][2] == "+0.0 % (+0.0), +0 ms"
    assert len(rows) == len(drops.DROPS)  # every run but the defaults, and the minimal loop


def test_the_counted_drops_mark_every_run_and_give_each_drops_saving_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logitlab.config.compose import preflight

    drops = load("drops", monkeypatch)
    shrink_data(monkeypatch)
    seen: dict = {}

    def fake_count(tasks, epochs, *_, **__):  # kernels 5 G for all; the rest shrinks by drop
        seen.update(tasks)
        rest = {"defaults": 2.0e9, "defaults_again": 2.0e9, "diagnostics": 1.9e9,
                "progress_bar": 1.95e9, "all": 1.7e9, drops.MINIMAL: 1.5e9}  # fmt: skip
        return {key: (5e9 + rest.get(key[1], 2.0e9), 5e9) for key in tasks}

    monkeypatch.setattr(load("instructions", monkeypatch), "count_tasks", fake_count)
    counts = drops.count("mlp", tmp_path, 2, jobs=1)
    assert set(counts) == {*drops.DROPS, drops.MINIMAL}
    command, folder = seen["mlp", "diagnostics"]
    cfg = preflight(command[3:], str(ROOT / "conf"))  # after python -m logitlab.train
    assert cfg.callbacks.diagnostics is None and cfg.callbacks.model_checkpoint is not None
    assert cfg.callbacks.count._target_ == "marks.epochs_callback" and cfg.trainer.max_epochs == 2
    assert cfg.callbacks.progress_bar.interval_s == pytest.approx(0.1 * 45)  # valgrind's pace
    assert folder == tmp_path / "drops_counted" / "mlp" / "diagnostics"
    assert "loop" in seen["mlp", drops.MINIMAL][0] and "lightning" in seen["mlp", drops.MINIMAL][0]

    saved = drops.counted_saved(counts, steps=100)
    assert saved["diagnostics"]["rest_share"] == pytest.approx(0.05)  # 0.1 G of 2 G
    assert saved["diagnostics"]["per_step"] == pytest.approx(1e6)
    assert saved["diagnostics"]["all_share"] == pytest.approx(0.1 / 7.0)
    assert saved["sum_of_singles"]["per_epoch"] == pytest.approx(0.15e9)  # diagnostics + bar
    assert saved["defaults_again"]["rest_share"] == 0.0 and saved["kernels_spread"] == 0.0
    report = {"workloads": ["mlp"], "epochs": 2, "counts": {"mlp": counts},
              "saved": {"mlp": saved}}  # fmt: skip
    rows = {
        cells[0]: cells[1:]
        for line in drops.counted_section(report).splitlines()
        if line.startswith("| ") and not line.startswith("| run")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert rows["`diagnostics` dropped"] == ["+5.0 %", "+1.00 M", "+1.43 %"]
    assert rows["the single drops above, added up"] == ["+7.5 %", "+1.50 M", "+2.14 %"]
    assert rows["the minimal Lightning loop (bench.py's)"][0] == "+25.0 %"

    # --runs counts only those again and keeps the other counts the last count left
    import argparse

    (tmp_path / "drops_counted.json").write_text(json.dumps(report))
    seen.clear()
    args = argparse.Namespace(epochs=None, runs=["all"], workloads=["mlp"], jobs=1)
    again = drops.count_report(args, tmp_path, pytest.fail)
    assert set(seen) == {("mlp", "all")}
    assert again["counts"]["mlp"]["diagnostics"] == list(counts["diagnostics"])
    assert again["saved"]["mlp"]["all"]["rest_share"] == pytest.approx(0.15)

    def refuse(message: str) -> None:
        raise SystemExit(message)

    args.workloads = ["dataset"]  # no count of the defaults there yet: refused before counting
    with pytest.raises(SystemExit, match="holds no count of the defaults on dataset"):
        drops.count_report(args, tmp_path, refuse)
    assert set(seen) == {("mlp", "all")}


def test_a_rewritten_section_of_the_benchmark_page_keeps_its_head_and_the_other_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = load("pages", monkeypatch)
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nthe head\n")
    pages.write_section("## Start-up\n\nfast\n", "startup", tmp_path)
    pages.write_section("## Instructions\n\ncounted\n", "instructions", tmp_path)
    pages.write_section("### Where the epoch goes\n\nhooks\n", "callbacks", tmp_path)
    pages.write_section("## Instructions\n\ncounted again\n", "instructions", tmp_path)
    page = (tmp_path / "benchmarks.md").read_text()
    assert page == (
        "# Benchmarks\n\nthe head\n\n## Instructions\n\ncounted again\n\n"
        "### Where the epoch goes\n\nhooks\n\n## Start-up\n\nfast\n"
    )  # the subsection under the rewritten section kept; every section in pages.ORDER
    with pytest.raises(ValueError, match=r"not one of pages\.ORDER"):
        pages.write_section("## Other\n", "other", tmp_path)
    assert (tmp_path / "benchmarks.md").read_text() == page


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


COUNTED_WORK = """import sys
import marks

sum(range(10**5))  # before the marks: not counted
marks.count_from_here()
total = 0
for i in range(int(sys.argv[1])):
    total += i % 7
ordered = sorted(range(int(sys.argv[2]), 0, -1))  # a C function with its own count
marks.count_to_here()
sum(range(10**6))  # after them: not counted
"""


@pytest.mark.skipif(
    not (shutil.which("valgrind") and shutil.which("gcc")), reason="needs valgrind and gcc"
)
def test_instructions_count_the_marked_work_alike_idle_and_loaded(monkeypatch, tmp_path) -> None:
    instructions = load("instructions", monkeypatch)
    busy_core = load("load", monkeypatch).busy_core
    library = instructions.build_marks(tmp_path / "build")
    program = tmp_path / "work.py"
    program.write_text(COUNTED_WORK)
    env = {"PYTHONPATH": str(ROOT / "benchmarks"), "PYTHONHASHSEED": "0"}

    def count(n: int, folder: str, sort: int = 10) -> int:
        command = [sys.executable, str(program), str(n), str(sort)]
        return instructions.counted(command, tmp_path / folder, library, env)

    idle = count(20_000, "idle")
    with busy_core():  # the other core busy: the same instructions
        loaded = count(20_000, "loaded")
    assert loaded == pytest.approx(idle, rel=1e-4)
    # Only the marked loop is counted: twice the loop, twice the count.
    assert count(40_000, "double") / idle == pytest.approx(2.0, rel=0.02)
    assert idle > 20_000 * 20  # tens of instructions per iteration of the loop, not just the marks
    # One function's share (what it calls included): a longer sort grows it and only it.
    small = instructions.inclusive_count(tmp_path / "idle", "builtin_sorted")
    longer = count(20_000, "sort", sort=200_000)
    large = instructions.inclusive_count(tmp_path / "sort", "builtin_sorted")
    assert 0 < small < idle and large > 100 * small
    assert longer - large == pytest.approx(idle - small, rel=0.02)
    assert instructions.inclusive_count(tmp_path / "idle", "mkl_blas_sgemm") == 0  # never called
    with pytest.raises(RuntimeError, match="0 counted regions, 1 expected"):
        instructions.counted([sys.executable, "-c", "pass"], tmp_path / "none", library, env)


def test_instructions_report_splits_off_the_matrix_products(monkeypatch) -> None:
    instructions = load("instructions", monkeypatch)
    steps = -(-60_000 // 256)
    gemm = 20e9  # the same products for everyone, bar a rounding
    rest = {"logitlab": 2.4e9, "fastpath": 1.8e9, "lightning": 1.7e9, "bare": 1.2e9}
    counts = {(256, n): (gemm + r, gemm) for n, r in rest.items()}
    counts[256, "bare"] = (gemm * (1 + 1e-6) + rest["bare"], gemm * (1 + 1e-6))
    report = instructions.summary(counts, [256], epochs=2)
    row = report["b256"]
    assert row["over_lightning"] == pytest.approx((gemm + 2.4e9) / (gemm + 1.7e9))
    assert report["ir_over_lightning_rest_b256"] == pytest.approx(2.4 / 1.7)
    assert row["fastpath_ratio_extra_per_step"] == pytest.approx(0.6e9 / steps)
    assert row["gemm_spread"] == pytest.approx(1e-6)
    loaded = instructions.summary(
        {k: (t * 1.0002, g) for k, (t, g) in counts.items()}, [256], epochs=2
    )
    text = instructions.section(report, loaded)
    assert "| 256 | logitlab / lightning | 1.0323 | 1.412 | +2.98 M |" in text
    assert "| logitlab, batch 256 | 22.4000 G | 22.4045 G | +0.020 % |" in text
    assert "differ by at most 0.0001 %" in text


def test_instructions_count_a_workload_against_its_bare_loop(monkeypatch, tmp_path) -> None:
    from logitlab.config.compose import preflight

    instructions = load("instructions", monkeypatch)
    shrink_data(monkeypatch)
    commands = instructions.workload_commands("dataset", 2, tmp_path, tmp_path / "count")
    cfg = preflight(commands["logitlab"][3:], str(ROOT / "conf"))  # after python -m logitlab.train
    assert cfg.data.source == "dataset" and cfg.callbacks.count._target_ == "marks.epochs_callback"
    assert Path(commands["bare"][1]).name == "workloads.py" and commands["bare"][2:4] == [
        "dataset", str(tmp_path / "data")]  # fmt: skip
    assert commands["bare"][-1] == "bare" and commands["lightning"][-1] == "lightning"
    fast = preflight(commands["fastpath"][3:], str(ROOT / "conf"))
    assert fast.fastpath is True and fast.callbacks.count._target_ == "marks.epochs_callback"
    assert fast.callbacks.progress_bar.interval_s == pytest.approx(0.1 * 45)
    assert sorted(instructions.workload_commands("cnn", 2, tmp_path, tmp_path / "c")) == [
        "bare", "logitlab"]  # fmt: skip

    gemm, rest, bare_rest = 5e9, 1.3e9, 0.5e9  # the same products, a framework's extra work
    fake = {
        ("dataset", "logitlab"): (gemm + rest, gemm),
        ("dataset", "bare"): (gemm + bare_rest, gemm),
        ("dataset", "lightning"): (gemm + 0.9e9, gemm),
        ("dataset", "fastpath"): (gemm + 1.0e9, gemm),
        ("cnn", "logitlab"): (4 * gemm + rest, 4 * gemm),  # the CNN's kernels: its convolutions
        ("cnn", "bare"): (4 * gemm + bare_rest, 4 * gemm),
    }
    monkeypatch.setattr(instructions, "count_tasks", lambda tasks, *_: {k: fake[k] for k in tasks})
    report = instructions.count_workloads(["dataset", "cnn"], 2, tmp_path, 1, None)
    assert report["cnn"]["steps"] == 1  # 200 images, a batch of 256
    assert report["cnn"]["over_bare_extra_per_step"] == pytest.approx(0.8e9)
    assert report["ir_cnn_over_bare"] == pytest.approx((4 * gemm + rest) / (4 * gemm + bare_rest))
    steps = -(-300 // 256)
    assert report["ir_dataset_over_bare"] == pytest.approx((gemm + rest) / (gemm + bare_rest))
    assert report["ir_dataset_over_bare_rest"] == pytest.approx(rest / bare_rest)
    assert report["dataset"]["over_bare_extra_per_step"] == pytest.approx(0.8e9 / steps)
    assert report["ir_dataset_over_lightning_rest"] == pytest.approx(1.3 / 0.9)
    lightning_over_bare = (gemm + 0.9e9) / (gemm + 0.5e9)
    assert report["ir_dataset_lightning_over_bare"] == pytest.approx(lightning_over_bare)
    assert report["dataset"]["fastpath_over_bare_extra_per_step"] == pytest.approx(0.5e9 / steps)
    assert "ir_cnn_over_lightning" not in report  # the CNN has no such contestant
    loaded = {**report, "ir_dataset_over_bare": report["ir_dataset_over_bare"] * 1.001}
    text = instructions.workloads_section(report, loaded)
    assert (
        "| dataset | 6.300 G (1.300 G) | 5.500 G (0.500 G) | **1.1455** | 2.600 | +400.00 M |"
        in text
    )
    assert "| `ir_dataset_over_bare` | 1.1455 | 1.1466 | +0.100 % |" in text
    assert "kernels' counts differ by 0.0000 % between the contestants" in text
    assert "| logitlab / lightning | **1.0678** | 1.444 | +200.00 M |" in text
    assert "| fastpath / bare | **1.0909** | 2.000 | +250.00 M |" in text


def test_the_spread_of_identical_processes_is_told_apart_from_the_spread_of_their_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spread = load("spread", monkeypatch)
    # round 1: two copies at 1.0 and 1.2 s, each steady within 10 % / 0 %; round 2: equal copies
    rounds = [[[1.0, 1.1, 1.0], [1.2, 1.2, 1.2]], [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]]
    found = spread.spreads(rounds)
    assert found["between"] == pytest.approx([0.2, 0.0])
    assert found["within"] == pytest.approx([0.05, 0.0])
    report = {"epochs": 4, "rounds": 2, "processes": 2,
              "workloads": {"cnn": {"epoch_cpu_s": rounds, **found}}}  # fmt: skip
    row = next(line for line in spread.section(report).splitlines() if line.startswith("| cnn"))
    assert row == "| cnn | 1.600 s | 20.0 %, 0.0 % | 5.0 %, 0.0 % |"
    workloads = load("workloads", monkeypatch)
    for name in ("N_IMAGES", "N_ROWS", "N_VAL"):
        monkeypatch.setattr(workloads, name, 200)
    cnn = spread.command("cnn", tmp_path, 4, tmp_path / "out.json")
    assert cnn[1].endswith("workloads.py") and cnn[2:] == [
        "cnn",
        str(tmp_path),
        "4",
        str(tmp_path / "out.json"),
    ]
    assert (tmp_path / "digits28.npz").is_file()  # the copies' data, written before they start


def test_the_image_folders_wall_ratios_pair_the_medians_and_set_the_fastest_beside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_folder = load("image_folder", monkeypatch)
    runs = {  # the second repetition met a busy host; the workers' CPU is in no process's time
        "logitlab": [{"measured_s": [1.10, 1.30, 1.20]}, {"measured_s": [1.60, 1.50, 1.70]}],
        "bare": [{"measured_s": [1.00, 1.40, 1.05]}, {"measured_s": [1.20, 1.25, 1.30]}],
    }
    ratios = image_folder.epoch_ratios(runs)
    assert ratios["images_ratio_min"] == pytest.approx(1.10 / 1.00)
    assert ratios["images_ratio_min_by_rep"] == pytest.approx([1.10 / 1.00, 1.50 / 1.20])
    assert ratios["images_ratio_by_rep"] == pytest.approx([1.20 / 1.05, 1.60 / 1.25])
    assert ratios["images_ratio"] == pytest.approx((1.20 / 1.05 + 1.60 / 1.25) / 2)


def test_the_contention_probe_alternates_the_spinner_and_leaves_none_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contention = load("contention", monkeypatch)
    monkeypatch.setattr(contention, "BLOCK_S", 0.02)
    before = child_pids()
    results = contention.measure(pairs=3)
    assert set(results) == {"python", "matmul", "copy"}
    for times in results.values():
        assert len(times["idle"]) == len(times["loaded"]) == 3
        assert all(0.002 < t < 0.5 for t in times["idle"] + times["loaded"])  # sized blocks
    assert child_pids() == before  # the spinner is gone
    for times in results.values():  # it spun beside the loaded blocks only
        assert sum(times["spinner_idle"]) == 0
        assert sum(times["spinner_loaded"]) > 0.3 * sum(times["loaded"])
    report = contention.summary({"python": {"idle": [1.0, 3.0, 2.0], "loaded": [2.2, 2.4, 9.0]}})
    assert report["python"]["slowdown"] == pytest.approx(2.4 / 2.0)
    assert "| **+20.0 %** | 0.00 / 0.00 |" in contention.section(report, 3)


def child_pids() -> set[int]:
    """This process's live children, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_the_load_section_sets_both_runs_side_by_side_and_judges_the_3_percent() -> None:
    idle = {"cpu_over_lightning_b256": 1.10, "cpu_cnn_over_bare": 1.00, "ratio_b256": 1.2}
    loaded = {"cpu_over_lightning_b256": 1.111, "cpu_cnn_over_bare": 1.05, "ratio_b256": 1.3}
    text = bench.load_section(idle, loaded, 2)
    assert "| `cpu_over_lightning_b256` | 1.100 | 1.111 | +1.0 % |" in text
    assert "| `ratio_b256` | 1.200 | 1.300 | +8.3 % |" in text  # wall time: not judged
    assert "moved by at most 5.0 % under load (`cpu_cnn_over_bare`): beyond the 3 %" in text
    idle["cnn"] = {"epoch_cpu_median_s": {"logitlab": 2.0, "bare": 1.6}}
    loaded["cnn"] = {"epoch_cpu_median_s": {"logitlab": 2.2, "bare": 1.6}}
    assert "| cnn logitlab | 2.000 s | 2.200 s | +10.0 % |" in bench.load_section(idle, loaded, 2)
    loaded["cpu_cnn_over_bare"] = 1.02
    assert "at most 2.0 % under load (`cpu_cnn_over_bare`): within the 3 %" in bench.load_section(
        idle, loaded, 2
    )


def test_group_cpu_counts_a_live_childs_cpu_and_a_waited_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = load("marks", monkeypatch)
    spin = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    start, own = marks.group_cpu(), time.process_time()
    child = subprocess.Popen([sys.executable, "-c", spin + "\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while marks.group_cpu() - start < 0.35 and time.monotonic() < deadline:
            time.sleep(0.05)
        live = marks.group_cpu() - start  # the child is alive, asleep after its 0.4 CPU-s
        assert child.poll() is None and 0.35 <= live < 0.4 + (time.process_time() - own) + 0.1
    finally:
        child.kill()
        child.wait()
    waited = subprocess.run([sys.executable, "-c", spin], check=True)  # ended and waited for
    assert waited.returncode == 0 and marks.group_cpu() - start >= live + 0.35


def test_the_benchmark_refuses_zero_rounds_before_it_runs_anything(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--rounds", "0", "--parts", "mlp"])
    assert stopped.value.code == 2
    assert "--rounds 0: at least 1 round by turns is needed" in capsys.readouterr().err


def test_the_parts_asked_for_run_and_only_they(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    for name, part in (("run_benchmark", "mlp"), ("run_images", "images"),
                       ("run_workloads", "workloads")):  # fmt: skip
        monkeypatch.setattr(bench, name, lambda args, p=part: ran.append(p) or {f"{p}_x": 1})
    args = type("Args", (), {"parts": ["workloads", "mlp"]})()
    assert bench.run_parts(args) == {"mlp_x": 1, "workloads_x": 1}
    assert ran == ["mlp", "workloads"]
