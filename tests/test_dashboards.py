"""TensorBoard dashboards, read back from the event files: HPARAMS rows, images, PR curves,
calibration and per-class scalars, the Text tab; and a real TensorBoard server serving them."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from logitlab.train import train


def events(run_dir: Path) -> list[EventAccumulator]:
    accumulators = []
    for path in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
        acc.Reload()
        accumulators.append(acc)
    return accumulators


def tags(run_dir: Path, kind: str) -> set[str]:
    return {t for acc in events(run_dir) for t in acc.Tags()[kind]}


def scalar(run_dir: Path, tag: str) -> list[float]:
    return [
        e.value for acc in events(run_dir) if tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)
    ]


def text(run_dir: Path, tag: str) -> str:
    for acc in events(run_dir):
        if f"{tag}/text_summary" in acc.Tags()["tensors"]:
            return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()
    raise KeyError(tag)


def scores_table(markdown: str) -> dict[str, float]:
    """{metric: value} of a `| metric | value |` table."""
    return {
        row.split("|")[1].strip(): float(row.split("|")[2]) for row in markdown.splitlines()[2:]
    }


def table_counts(markdown: str) -> list[list[int]]:
    """The count cells of the confusion table (row label and header left out)."""
    rows = markdown.splitlines()[2:]
    return [[int(c) for c in row.strip("|").split("|")[1:]] for row in rows]


def hparams(run_dir: Path) -> tuple[dict, list[str]]:
    """The run's HPARAMS session: its hyperparameters and the metric names it declares."""
    values, metric_names = {}, []
    for acc in events(run_dir):
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:
            continue
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        )
        for key, value in start.session_start_info.hparams.items():
            values[key] = value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
        metric_names = [m.name.tag for m in experiment.experiment.metric_infos]
    return values, metric_names


def hparam_columns(run_dir: Path) -> list[tuple[str, bool]]:
    """HPARAMS columns as TensorBoard orders them: the ones marked as differing first, then by
    name (tensorboard/plugins/hparams/backend_context.py); with the mark."""
    for acc in events(run_dir):
        try:
            content = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
        except KeyError:
            continue
        infos = plugin_data_pb2.HParamsPluginData.FromString(content).experiment.hparam_infos
        return sorted(((i.name, i.differs) for i in infos), key=lambda c: (not c[1], c[0]))
    raise KeyError("no HPARAMS experiment")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from conftest import compose_train

    root = tmp_path_factory.mktemp("dash")
    base = ["trainer.max_epochs=5"]
    folders = {}
    for name, extra in {"multiclass": [], "binary": ["experiment=digits_binary"]}.items():
        folders[name] = root / name
        train(compose_train([*base, *extra], output_dir=folders[name]))
    return folders


@pytest.mark.slow
def test_multiclass_images_scalars_and_text(runs) -> None:
    run = runs["multiclass"]
    images = tags(run, "images")
    assert {
        "val/confusion_matrix",
        "val/reliability",
        "test/confusion_matrix",
        "test/reliability",
    } <= images
    counts = text(run, "test/confusion_counts")
    matrix = table_counts(counts)
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    assert sum(map(sum, matrix)) == 270  # the digits test split
    assert counts.splitlines()[0].startswith("| true \\ predicted | 0 | 1 |")
    final = json.loads((run / "metrics.json").read_text())
    assert 0.5 < scalar(run, "val/f1_macro")[-1] <= 1.0
    scores = scores_table(text(run, "test/scores"))  # the test stage's once-off numbers: TEXT
    assert 0.5 < scores["f1_macro"] <= 1.0
    assert scores["ece"] == pytest.approx(final["test/ece"], abs=1e-5)
    assert set(scores) == {k.removeprefix("test/") for k in final if k.startswith("test/")} - {
        "acc", "loss"
    }  # fmt: skip
    assert {t for t in tags(run, "scalars") if t.startswith("test/")} == {"test/acc", "test/loss"}
    # per-class accuracy is each class's recall: the diagonal of the confusion counts
    per_class = [final[f"test/acc_class/{c}"] for c in range(10)]
    assert per_class == pytest.approx([row[c] / sum(row) for c, row in enumerate(matrix)])
    assert [scores[f"acc_class/{c}"] for c in range(10)] == pytest.approx(per_class, abs=1e-5)
    assert len(scalar(run, "val/ece")) == 5  # every epoch
    assert len(scalar(run, "val/acc_class/0")) == 5
    assert {f"test/acc_class/{c}" for c in range(10)} <= set(final)  # the test stage's, once
    assert not [k for k in final if k.startswith(("val/acc_class", "time/"))]  # TensorBoard only
    assert len(scalar(run, "time/epoch_s")) == 5 and min(scalar(run, "time/samples_per_s")) > 0
    for wall, cpu in zip(scalar(run, "time/epoch_s"), scalar(run, "time/epoch_cpu_s"), strict=True):
        assert 0 < cpu <= wall * (os.cpu_count() or 1) + 0.05  # this process's CPU, per epoch
    assert scalar(run, "lr-Adam")[-1] == pytest.approx(1e-3)
    assert "loss:\n  name: cross_entropy" in text(run, "run/config")
    assert re.match(r"^([0-9a-f]{40}|unknown)", text(run, "run/git_commit"))


def steps(run_dir: Path, tag: str, kind: str = "scalars") -> list[int]:
    read = {"scalars": "Scalars", "images": "Images"}[kind]
    return [
        e.step
        for acc in events(run_dir)
        if tag in acc.Tags()[kind]
        for e in getattr(acc, read)(tag)
    ]


@pytest.mark.slow
def test_epoch_level_charts_are_drawn_against_the_epoch(runs) -> None:
    run = runs["multiclass"]  # five epochs, images every fifth
    for tag in ("train/loss", "val/acc", "val/acc_best", "val/ece", "val/acc_class/0",
                "time/epoch_s"):  # fmt: skip
        assert steps(run, tag) == [0, 1, 2, 3, 4], tag
    assert steps(run, "val/reliability", "images") == [4]
    assert "epoch" not in tags(run, "scalars")  # the x is the epoch: no chart of it
    batches = 20  # 1,257 training digits in batches of 64: the optimizer's steps per epoch
    assert steps(run, "lr-Adam") == [batches * epoch for epoch in range(5)]  # Lightning's monitor


@pytest.mark.slow
def test_an_epochs_time_holds_the_work_after_its_clock(tmp_path) -> None:
    from conftest import ROOT, cli

    run = tmp_path / "run"  # 0.3 CPU-s at each epoch's end, after the clock: checkpoints' place
    result = cli(
        "logitlab.train", "debug=limit", "+callbacks.busy._target_=my_callbacks.BusyEpochEnd",
        "+callbacks.busy.seconds=0.3", f"hydra.run.dir={run}",
        env={"PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    ends = [  # when each epoch's time was written
        e.wall_time
        for acc in events(run)
        if "time/epoch_s" in acc.Tags()["scalars"]
        for e in acc.Scalars("time/epoch_s")
    ]
    walls, cpus = scalar(run, "time/epoch_s"), scalar(run, "time/epoch_cpu_s")
    assert len(walls) == len(cpus) == 3  # debug=limit: three epochs
    for later, (before, end) in enumerate(itertools.pairwise(ends), start=1):
        assert cpus[later] >= 0.3 and walls[later] >= 0.3  # the previous epoch's end work
        assert walls[later] == pytest.approx(end - before, abs=0.05)  # end to end


@pytest.mark.slow
def test_hparams_row_has_the_config_and_final_metrics(runs) -> None:
    run = runs["multiclass"]
    values, metric_names = hparams(run)
    assert values["model.net.hidden_sizes"] == "[128, 64]"  # a list, shown as text, not dropped
    assert values["model.net._target_"] == "logitlab.models.nets.MLP"  # which network ran
    assert values["optimizer.lr"] == pytest.approx(1e-3)
    assert values["loss"] == "cross_entropy" and values["model.net"] == "mlp"  # the choices
    assert values["trainer.max_epochs"] == 5
    # never paths, I/O flags, None or copies of another key (model.optimizer is ${optimizer})
    for left_out in (
        "data.data_dir",
        "data.download",
        "data.num_workers",
        "model.scheduler",
        "trainer.default_root_dir",
        "trainer.enable_progress_bar",
        "data.seed",
    ):
        assert left_out not in values
    assert not [k for k in values if k.startswith(("model.optimizer", "paths", "hydra"))]
    assert "data.positive_classes" not in values  # a binary-only key, on a multiclass run
    assert len(values) < 45
    # the overridden key (the fixture sets trainer.max_epochs) is the first column, ticked
    assert hparam_columns(run)[0] == ("trainer.max_epochs", True)
    assert sum(differs for _, differs in hparam_columns(run)) == 1
    assert set(metric_names) == {"val/acc_best", "test/acc", "test/loss"}  # the run's own tags
    final = json.loads((run / "metrics.json").read_text())
    assert scalar(run, "test/acc") == [pytest.approx(final["test/acc"])]
    assert scalar(run, "val/acc_best")[-1] == pytest.approx(final["val/acc_best"])
    assert not [t for t in tags(run, "scalars") if t.startswith("hp/")]  # no copies
    binary, _ = hparams(runs["binary"])
    assert binary["experiment"] == "digits_binary"
    assert binary["data.positive_classes"] == "[1, 3, 5, 7, 9]"


@pytest.mark.slow
def test_binary_pr_curves_roc_and_auroc(runs) -> None:
    run = runs["binary"]
    assert {"val/pr_curve", "test/pr_curve"} <= tags(run, "tensors")
    assert {"val/roc", "test/roc", "test/confusion_matrix"} <= tags(run, "images")
    pr = next(acc for acc in events(run) if "test/pr_curve" in acc.Tags()["tensors"])
    curve = pr.Tensors("test/pr_curve")[-1].tensor_proto
    assert curve.tensor_shape.dim[0].size == 6  # TP, FP, TN, FN, precision, recall
    scores = scores_table(text(run, "test/scores"))
    for stage, values in (("val", {n: scalar(run, f"val/{n}")[-1] for n in ("auroc", "ap")}),
                          ("test", scores)):  # fmt: skip
        assert 0.9 < values["auroc"] <= 1.0 and 0.9 < values["ap"] <= 1.0, stage
    matrix = table_counts(text(run, "test/confusion_counts"))
    assert len(matrix) == 2 and sum(map(sum, matrix)) == 270


@pytest.mark.slow
def test_four_job_sweep_names_its_runs_and_puts_the_swept_columns_first(
    run_cli, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "logitlab.train", "-m", "optimizer.lr=1e-3,1e-2", "loss=cross_entropy,nll",
        "trainer.max_epochs=1", "tags=[grid]", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [hparams(sweep / str(job))[0] for job in range(4)]
    assert {(r["optimizer.lr"], r["loss"]) for r in rows} == {
        (1e-3, "cross_entropy"), (1e-2, "cross_entropy"), (1e-3, "nll"), (1e-2, "nll"),
    }  # fmt: skip
    # each job is named by its swept values (not the shared trainer.max_epochs) and its tags
    names = sorted(p.name for job in range(4) for p in (sweep / str(job) / "tensorboard").iterdir())
    assert names == [
        "optimizer.lr=0.001,loss=cross_entropy[grid]", "optimizer.lr=0.001,loss=nll[grid]",
        "optimizer.lr=0.01,loss=cross_entropy[grid]", "optimizer.lr=0.01,loss=nll[grid]",
    ]  # fmt: skip
    columns = hparam_columns(sweep / "0")  # what varies is ticked; what all jobs share is not
    assert columns[:2] == [("loss", True), ("optimizer.lr", True)]
    assert ("trainer.max_epochs", False) in columns
    assert not any(differs for _, differs in columns[2:])
    assert rows[0]["tags"] == "grid"
    for job in range(4):
        final = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert scalar(sweep / str(job), "val/acc_best")[-1] == pytest.approx(final["val/acc_best"])


@pytest.mark.slow
def test_tensorboard_server_serves_runs_and_scalars(runs) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logdir = runs["multiclass"].parent
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
         "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, run_names = time.monotonic() + 90, []
        wanted = {
            "multiclass/tensorboard/trainer.max_epochs=5",
            "binary/tensorboard/trainer.max_epochs=5,experiment=digits_binary",
        }  # each run named by its overrides
        while time.monotonic() < deadline and not wanted <= set(run_names):
            try:
                with urllib.request.urlopen(f"{base}/data/runs", timeout=5) as response:
                    run_names = json.loads(response.read())
            except OSError:
                pass
            time.sleep(0.5)
        assert wanted <= set(run_names), run_names
        query = urllib.parse.urlencode(
            {"run": "multiclass/tensorboard/trainer.max_epochs=5", "tag": "val/acc"}
        )
        with urllib.request.urlopen(f"{base}/data/plugin/scalars/scalars?{query}", timeout=10) as r:
            served = [value for _, _, value in json.loads(r.read())]
        assert served == pytest.approx(scalar(runs["multiclass"], "val/acc"))
        assert len(served) == 5
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_reliability_bins_imply_torchmetrics_calibration_error(task: str) -> None:
    from torchmetrics.functional.classification import (
        binary_calibration_error,
        multiclass_calibration_error,
    )

    from logitlab.models.metrics import ReliabilityBins

    g = torch.Generator().manual_seed(0)
    bins, n = ReliabilityBins(n_bins=15), 0
    all_probs, all_targets = [], []
    for size in (9, 40, 17):  # batch by batch, as the diagnostics update it
        logits = torch.randn(size, 4, generator=g) * 3
        targets = torch.randint(0, 4 if task == "multiclass" else 2, (size,), generator=g)
        probs = logits.softmax(-1) if task == "multiclass" else logits[:, 0].sigmoid()
        bins.update(probs, targets)
        all_probs.append(probs)
        all_targets.append(targets)
        n += size
    probs, targets = torch.cat(all_probs), torch.cat(all_targets)
    result = bins.compute()
    if task == "multiclass":
        expected = multiclass_calibration_error(probs, targets, 4, n_bins=15)
    else:
        expected = binary_calibration_error(probs, targets, n_bins=15)
    assert result["ece"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert result["count"].sum().item() == n == 66
    used = result["count"] > 0
    assert ((result["confidence"][used] >= 0) & (result["confidence"][used] <= 1)).all()


@pytest.mark.parametrize("n", [10, 30])
def test_the_confusion_heatmap_writes_its_counts_in_the_cells_only_while_readable(n: int) -> None:
    import matplotlib.pyplot as plt
    from torchmetrics.classification import ConfusionMatrix

    from logitlab.dashboards import plots

    matrix = torch.randint(0, 50, (n, n), generator=torch.Generator().manual_seed(n))
    metric = ConfusionMatrix(task="multiclass", num_classes=n)
    figure = plots.confusion(metric, matrix, [f"class {i}" for i in range(n)])
    ax = figure.axes[0]
    assert np.array_equal(ax.images[0].get_array(), matrix.numpy())  # true classes down
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["class 0", "class 1"]
    cells = sorted(int(t.get_text()) for t in ax.texts)
    if n <= plots.CELL_NUMBERS_MAX_CLASSES:
        assert cells == sorted(matrix.flatten().tolist())  # every cell's count, once
    else:
        assert cells == []  # 900 numbers would be unreadable; confusion_counts has them
    plt.close(figure)
