"""The loggers researchers use, each writing a real run on disk: MLflow's local file store (read
back through `mlflow ui`), W&B's offline run, several loggers at once; and the one line when an
extra is missing."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from logitlab.errors import ConfigError
from test_train import scalar_tags


def only_run(out: Path) -> Path:
    (run,) = [p for p in (out / "train").iterdir() if p.is_dir()]
    return run


def last_value(series_file: Path) -> tuple[float, int]:
    """(value, count) of an MLflow metric file: one `timestamp value step` line per point."""
    lines = series_file.read_text().splitlines()
    return float(lines[-1].split()[1]), len(lines)


@pytest.mark.slow
def test_mlflow_writes_a_run_to_the_local_file_store(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    out = tmp_path / "out"
    result = run_cli(
        "logitlab.train", "logger=[tensorboard,mlflow]", "trainer.max_epochs=2",
        "optimizer.lr=0.002", "tags=[t1]", f"paths.output_root={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (experiment,) = [p.parent for p in (out / "mlruns").glob("*/meta.yaml") if p.parent.name != "0"]
    assert "name: train" in (experiment / "meta.yaml").read_text()  # one experiment per task
    (mlrun,) = [p for p in experiment.iterdir() if p.is_dir()]
    name = "trainer.max_epochs=2,optimizer.lr=0.002[t1]"
    assert (mlrun / "tags" / "mlflow.runName").read_text() == name
    assert (mlrun / "params" / "optimizer.lr").read_text() == "0.002"
    assert (mlrun / "params" / "model.net._target_").read_text() == "logitlab.models.nets.MLP"
    assert not (mlrun / "params" / "data.data_dir").exists()  # no paths among the params
    _, epochs = last_value(mlrun / "metrics" / "val" / "acc")
    assert epochs == 2
    final = json.loads((only_run(out) / "metrics.json").read_text())
    test_acc, _ = last_value(mlrun / "metrics" / "test" / "acc")
    assert test_acc == pytest.approx(final["test/acc"], abs=1e-6)
    assert (only_run(out) / "tensorboard" / name).is_dir()  # the same name in TensorBoard
    with mlflow_ui(out / "mlruns") as url:  # the store as `mlflow ui` serves it
        assert "<title>MLflow</title>" in urlopen(url, timeout=30).read().decode()  # the web UI
        (run,) = api(url, "runs/search", {"experiment_ids": [experiment.name]})["runs"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert tags["mlflow.runName"] == name
    assert params["optimizer.lr"] == "0.002"
    assert metrics["test/acc"] == pytest.approx(final["test/acc"], abs=1e-6)


@contextmanager
def mlflow_ui(store: Path) -> Iterator[str]:
    """`mlflow ui --backend-store-uri <store>` on a free loopback port, until it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", str(store)]
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def api(url: str, endpoint: str, body: dict) -> dict:
    """A POST to MLflow's REST API."""
    request = Request(
        f"{url}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return json.loads(urlopen(request, timeout=30).read())


def wandb_records(path: Path) -> list:
    """The records of a W&B run file (`run-*.wandb`, what `wandb sync` uploads): a 7-byte
    header, then LevelDB-style blocks of 32 KiB holding chunks (crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data, records, pos, pending = path.read_bytes(), [], 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.mark.slow
def test_wandb_writes_an_offline_run(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    out = tmp_path / "out"
    result = run_cli(
        "logitlab.train", "logger=wandb", "trainer.max_epochs=2", "tags=[t1,t2]",
        f"paths.output_root={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(out)
    (log_file,) = run.glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(log_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    (meta,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert meta.display_name == "trainer.max_epochs=2[t1,t2]"
    assert list(meta.tags) == ["t1", "t2"] and meta.run_group == "train"
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["optimizer.lr"] == pytest.approx(1e-3) and config["model.net"] == "mlp"
    history = [
        {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    val_acc = [row["val/acc"] for row in history if "val/acc" in row]
    assert len(val_acc) == 2 and all(0.0 < a <= 1.0 for a in val_acc)
    final = json.loads((run / "metrics.json").read_text())
    (test_acc,) = [row["test/acc"] for row in history if "test/acc" in row]
    assert test_acc == pytest.approx(final["test/acc"], abs=1e-6)
    assert "exit" in kinds  # the run was closed: `wandb sync` uploads it whole
    assert not (run / "tensorboard").exists()  # logger=wandb alone


@pytest.mark.slow
def test_two_loggers_at_once_record_the_same_curve(run_cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli(
        "logitlab.train", "logger=[tensorboard,csv]", "trainer.max_epochs=3",
        f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with (run / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    from_csv = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    from_events = scalar_tags(run / "tensorboard")["val/acc"]
    assert len(from_csv) == 3 and from_csv == pytest.approx(from_events)
    assert [int(r["step"]) for r in rows if r.get("val/acc")] == [0, 1, 2]  # the epoch


@pytest.mark.parametrize(("logger", "extra"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_logger_without_its_package_is_one_line(monkeypatch, logger: str, extra: str) -> None:
    import importlib.util

    from conftest import CONF
    from logitlab.config.compose import preflight

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == extra else real(name, *a)
    )
    with pytest.raises(ConfigError) as error:
        preflight([f"logger={logger}"], str(CONF))
    assert str(error.value) == (
        f"logger={logger} needs the {extra} package, which is not installed; "
        f"pip install -e '.[{extra}]' (or choose logger=tensorboard)"
    )
