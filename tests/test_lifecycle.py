"""Eval and predict from a run folder alone; checkpoints loaded safely; the folder left intact."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from logitlab import eval as eval_cli
from logitlab import predict as predict_cli
from test_train import scalar_tags


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_cli_module) -> dict[str, Path]:
    """One multiclass and one binary run, trained through the real CLI."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for name, args in {
        "multiclass": ["trainer.max_epochs=6"],
        "binary": ["experiment=digits_binary", "trainer.max_epochs=6"],
    }.items():
        folders[name] = root / name
        result = run_cli_module("logitlab.train", *args, f"hydra.run.dir={folders[name]}")
        assert result.returncode == 0, result.stderr[-2000:]
    return folders


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "eval_metrics.json" and "tensorboard" not in p.parts
    }


def run_main(cli, capsys, *args: str) -> tuple[int, str, str]:
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_eval_reproduces_the_training_test_accuracy(runs) -> None:
    run_dir = runs["multiclass"]
    trained = json.loads((run_dir / "metrics.json").read_text())
    metrics = eval_cli.evaluate(str(run_dir))
    assert abs(metrics["test/acc"] - trained["test/acc"]) < 1e-6
    assert abs(metrics["test/loss"] - trained["test/loss"]) < 1e-6
    saved = json.loads((run_dir / "eval_metrics.json").read_text())
    assert saved["test/acc"] == pytest.approx(metrics["test/acc"])
    assert Path(saved["checkpoint"]).name.startswith("best-")
    assert not [t for t in scalar_tags(run_dir / "tensorboard") if t.startswith("eval/")]
    table = eval_table(run_dir)  # TensorBoard's TEXT tab, not single-dot charts
    assert f"| acc | {metrics['test/acc']:.6g} |" in table
    last = eval_cli.evaluate(str(run_dir), "last")
    assert 0.5 < last["test/acc"] <= 1.0


@pytest.mark.slow
def test_predict_test_split_matches_the_recorded_accuracy(runs, capsys) -> None:
    run_dir = runs["multiclass"]
    code, out, _ = run_main(predict_cli, capsys, f"run_dir={run_dir}")
    assert code == 0 and out.strip() == f"predictions written to {run_dir / 'predictions.csv'}"
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    header = ["row", "pred", "pred_name", "target", *(f"prob_{c}" for c in range(10))]
    assert list(rows[0]) == header and len(rows) == 270
    # `row` is the sample's row in the dataset: it joins the predictions back to the data
    assert [int(r["row"]) for r in rows] == np.load(run_dir / "splits.npz")["test"].tolist()
    assert [int(r["target"]) for r in rows] == [load_digits().target[int(r["row"])] for r in rows]
    assert all(r["pred_name"] == r["pred"] for r in rows)  # digits' classes are named 0..9
    probs = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert [int(r["pred"]) for r in rows] == probs.argmax(axis=1).tolist()
    accuracy = np.mean([r["pred"] == r["target"] for r in rows])
    assert accuracy == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["test/acc"])


@pytest.mark.slow
def test_predict_binary_and_user_files(runs, tmp_path: Path) -> None:
    run_dir = runs["binary"]
    digits = load_digits()
    np.save(tmp_path / "x.npy", digits.data[:40])
    header = ",".join(f"pixel{i}" for i in range(64))
    np.savetxt(tmp_path / "x.csv", digits.data[:40], delimiter=",", header=header, comments="")
    out_npy = predict_cli.predict(str(run_dir), str(tmp_path / "x.npy"), str(tmp_path / "a.csv"))
    out_csv = predict_cli.predict(str(run_dir), str(tmp_path / "x.csv"), str(tmp_path / "b.csv"))
    a = list(csv.DictReader(out_npy.open()))
    names = json.loads((run_dir / "data.json").read_text())["label_names"]
    assert list(a[0]) == ["row", "pred", "pred_name", *(f"prob_{n}" for n in names)]
    assert names[1] == "1,3,5,7,9" and [r["row"] for r in a] == [str(i) for i in range(40)]
    assert all(r["pred_name"] == names[int(r["pred"])] for r in a)
    assert out_npy.read_text() == out_csv.read_text()
    p0, p1 = (np.array([float(r[f"prob_{n}"]) for r in a]) for n in names)
    np.testing.assert_allclose(p0 + p1, 1.0, atol=1e-5)
    odd = digits.target[:40] % 2
    assert np.mean(np.array([int(r["pred"]) for r in a]) == odd) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda run, tmp: ["run_dir=" + str(tmp / "nowhere")],
            "run_dir={tmp}/nowhere does not exist; give a folder under outputs/",
        ),
        (
            lambda run, tmp: [f"run_dir={tmp}"],
            "run_dir={tmp} has no .hydra/config.yaml; give the folder of a training run",
        ),
        (
            lambda run, tmp: [f"run_dir={run}", "ckpt=" + str(tmp / "x.ckpt")],
            "ckpt={tmp}/x.ckpt: {tmp}/x.ckpt does not exist; use ckpt=best, last or a path",
        ),
        (
            lambda run, tmp: [f"run_dir={run}", "epochs=3"],
            "unknown argument 'epochs=3'; this command takes run_dir=..., ckpt=..., weights=...",
        ),
    ],
    ids=["run-dir-nowhere", "not-a-run", "ckpt-nowhere", "unknown-key"],
)
def test_eval_refuses_bad_arguments_with_one_line(
    runs, tmp_path: Path, capsys, make_args, message
) -> None:
    run_dir = runs["multiclass"]
    before = digest(run_dir)
    code, _, err = run_main(eval_cli, capsys, *make_args(run_dir, tmp_path))
    assert code == 2
    assert err.strip() == "logitlab: error: " + message.format(tmp=tmp_path)
    assert digest(run_dir) == before
    assert not (tmp_path / "nowhere").exists()


class Payload:
    """Unpickling this would run a shell command (the classic malicious checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_checkpoints_that_need_unpickling_or_are_damaged_are_refused(
    runs, tmp_path: Path, capsys
) -> None:
    run_dir = runs["multiclass"]
    before = digest(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    malicious = tmp_path / "evil.ckpt"
    marker = tmp_path / "pwned"
    state = torch.load(last, weights_only=True)
    state["hyper_parameters"]["payload"] = Payload(marker)
    torch.save(state, malicious)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    other_head = next((runs["binary"] / "checkpoints").glob("best-*.ckpt"))
    cases = {
        malicious: "needs arbitrary unpickling (it stores a class or function), which can run "
        "code; refused",
        truncated: "is truncated or corrupt (",
        other_head: f"is a checkpoint of the binary head but {run_dir} trains the multiclass "
        "head; use this run's own checkpoint",
    }
    for path, message in cases.items():
        for cli in (eval_cli, predict_cli):
            code, _, err = run_main(cli, capsys, f"run_dir={run_dir}", f"ckpt={path}")
            assert code == 2
            assert err.startswith(f"logitlab: error: {path} ") and message in err, err
            assert len(err.strip().splitlines()) == 1
    assert not marker.exists()
    assert digest(run_dir) == before


@pytest.mark.slow
def test_predict_refuses_bad_input(runs, tmp_path: Path, capsys) -> None:
    run_dir = runs["multiclass"]
    np.save(tmp_path / "narrow.npy", np.zeros((3, 10)))
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    cases = {
        "narrow.npy": "input={p} has 10 features per sample but the model takes 64 (data=digits, "
        "samples of shape (1, 8, 8)); give 64 columns",
        "text.csv": "input={p}: column 'b' holds 'oops' (line 3), not a number; feature columns "
        "must be numeric (encode or drop that column)",
    }
    for name, message in cases.items():
        path = tmp_path / name
        code, _, err = run_main(predict_cli, capsys, f"run_dir={run_dir}", f"input={path}")
        assert code == 2
        assert err.strip() == "logitlab: error: " + message.format(p=path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    output = blocker / "predictions.csv"
    code, _, err = run_main(predict_cli, capsys, f"run_dir={run_dir}", f"output={output}")
    assert code == 2
    assert err.strip() == (
        f"logitlab: error: cannot write {output}: {blocker} is a file; choose a writable folder"
    )


def eval_table(run_dir: Path) -> str:
    """The last eval/metrics text summary of the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = ""
    for path in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        if "eval/metrics/text_summary" in acc.Tags()["tensors"]:
            found = acc.Tensors("eval/metrics/text_summary")[-1].tensor_proto.string_val[0].decode()
    return found


def read_predictions(path: Path) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    """predictions.csv's rows, its class names (prob_ columns) and the probabilities."""
    rows = list(csv.DictReader(path.open()))
    names = [column[5:] for column in rows[0] if column.startswith("prob_")]
    return rows, names, np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])


@pytest.mark.slow
def test_conformal_sets_cover_and_predict_and_eval_agree_with_conformal_json(
    runs, tmp_path: Path
) -> None:
    import math
    import shutil

    from conftest import cli

    run = Path(shutil.copytree(runs["multiclass"], tmp_path / "run"))
    digits = load_digits()
    val_rows = np.load(run / "splits.npz")["val"]
    np.save(tmp_path / "val.npy", digits.data[val_rows])  # the val split, as new samples
    predict_cli.predict(str(run), str(tmp_path / "val.npy"), str(tmp_path / "val.csv"))
    _, _, val_probs = read_predictions(tmp_path / "val.csv")
    val_scores = 1 - val_probs[np.arange(len(val_rows)), digits.target[val_rows]]
    n = len(val_scores)
    for alpha, score in ((0.05, "lac"), (0.1, "lac"), (0.2, "lac"), (0.1, "aps")):
        result = cli("logitlab.calibrate", f"run_dir={run}", "method=conformal",
                     f"alpha={alpha}", f"score={score}")  # fmt: skip
        assert result.returncode == 0, result.stderr
        record = json.loads((run / "conformal.json").read_text())
        assert record["test/coverage"] >= 1 - alpha - 0.03
        if score == "lac":  # the threshold, from the probabilities predict saved
            level = math.ceil((n + 1) * (1 - alpha) - 1e-9) / n
            expected = np.quantile(val_scores, level, method="higher")
            assert record["quantile"] == pytest.approx(expected, abs=1e-5)
        predict_cli.predict(str(run))
        rows, names, _ = read_predictions(run / "predictions.csv")
        sets = [r["set"].split("|") if r["set"] else [] for r in rows]
        covered = np.mean([names[int(r["target"])] in s for r, s in zip(rows, sets, strict=True)])
        assert covered == record["test/coverage"]  # the same sets, u included
        assert np.mean([len(s) for s in sets]) == pytest.approx(record["test/set_size"])
        evaluated = eval_cli.evaluate(str(run))
        assert evaluated["test/coverage"] == record["test/coverage"]
        assert evaluated["test/set_size"] == pytest.approx(record["test/set_size"])
    assert f"test coverage {record['test/coverage']:.4f}, mean set size" in result.stdout


@pytest.mark.slow
def test_conformal_sets_for_the_binary_head_and_on_a_calibration(runs, tmp_path: Path) -> None:
    import shutil

    from conftest import cli

    run = Path(shutil.copytree(runs["binary"], tmp_path / "run"))
    assert cli("logitlab.calibrate", f"run_dir={run}").returncode == 0  # platt first
    result = cli("logitlab.calibrate", f"run_dir={run}", "method=conformal", "alpha=0.1")
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "conformal.json").read_text())
    platt = json.loads((run / "calibration.json").read_text())
    assert record["calibration"] == {"method": "platt", "a": platt["a"], "b": platt["b"]}
    assert "on platt" in result.stdout.splitlines()[0]
    predict_cli.predict(str(run), calibrated=False)  # the sets keep the probabilities they had
    rows, names, _ = read_predictions(run / "predictions.csv")
    assert {r["set"] for r in rows} <= {"", names[0], names[1], f"{names[0]}|{names[1]}"}
    covered = np.mean([names[int(r["target"])] in r["set"].split("|") for r in rows])
    assert covered == record["test/coverage"] >= 0.87


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alpha=0"], "alpha=0.0 must lie strictly between 0 and 1 (e.g. alpha=0.1)"),
        (["alpha=1.5"], "alpha=1.5 must lie strictly between 0 and 1 (e.g. alpha=0.1)"),
        (["alpha=tenth"], "alpha=tenth must be a number (e.g. 0.1)"),
        (["score=top"], "score=top is not known; use one of lac, aps, raps"),
        (["lam=-1"], "lam=-1.0 and k_reg=1 must be >= 0 (raps' penalty)"),
        (
            ["alpha=0.001"],
            "alpha=0.001 needs at least 999 validation samples for a finite threshold, and the "
            "run has 270; give a larger alpha or a larger val split",
        ),
    ],
    ids=["zero", "above-one", "not-a-number", "unknown-score", "negative-lam", "too-few-val"],
)
def test_conformal_refuses_bad_arguments_in_one_line(runs, args, message) -> None:
    from conftest import cli

    before = digest(runs["multiclass"])
    result = cli("logitlab.calibrate", f"run_dir={runs['multiclass']}", "method=conformal", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"logitlab: error: {message}"
    assert digest(runs["multiclass"]) == before  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("head", ["multiclass", "binary"])
def test_aurc_equals_numpy_on_the_saved_probabilities(runs, tmp_path: Path, head: str) -> None:
    output = predict_cli.predict(str(runs[head]), output=str(tmp_path / "p.csv"))
    rows, _, probs = read_predictions(output)
    correct = probs.argmax(axis=1) == np.array([int(r["target"]) for r in rows])
    order = np.argsort(-probs.max(axis=1), kind="stable")  # most confident first
    risks = np.cumsum(~correct[order]) / np.arange(1, len(order) + 1)
    recorded = json.loads((runs[head] / "metrics.json").read_text())["test/aurc"]
    assert recorded == pytest.approx(risks.mean(), abs=1e-4)
    assert 0 <= recorded < 1 - correct.mean()  # confidence ranks mistakes later than chance
