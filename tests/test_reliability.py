"""One run per folder under concurrency; refusals that change nothing; no run file overwritten."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, ZYGOTE, Forked, cli, digest
from logitlab.errors import ConfigError
from logitlab.run.lock import LOCK, claim, fresh_folder, release

QUICK = ("train=false", "test=false")  # build everything, claim, write the run's files; no fit


def start(*args: str) -> Forked:
    """`python -m logitlab.train args` started in the background (forked by the zygote)."""
    return ZYGOTE.start("logitlab.train", list(args))


def finish(proc: Forked) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def copy_run(run: Path, where: Path) -> Path:
    target = where / "copy"
    shutil.copytree(run, target)
    return target


# --- claiming a folder --------------------------------------------------------------------------


def test_claim_is_exclusive_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    lock = claim(tmp_path)
    assert lock.name == LOCK and lock.is_file()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / LOCK).write_text(f'{{"pid": {dead}, "host": "{__import__("socket").gethostname()}"}}')
    claim(other)  # its owner has exited: taken over
    assert f'"pid": {__import__("os").getpid()}' in (other / LOCK).read_text()
    release(tmp_path)
    assert not lock.exists()
    first, second = fresh_folder(tmp_path, "stamp"), fresh_folder(tmp_path, "stamp")
    assert (first.name, second.name) == ("stamp", "stamp_1")


@pytest.mark.slow
def test_two_starts_into_one_folder_exactly_one_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    procs = [start(*QUICK, f"hydra.run.dir={run}") for _ in range(2)]
    results = sorted(finish(p) for p in procs)
    codes = [code for code, _ in results]
    assert codes == [0, 2], results
    refused = results[1][1].strip().splitlines()
    assert len(refused) == 1
    assert "is in use by process" in refused[0] or "already holds a run" in refused[0]
    assert (run / "splits.npz").is_file() and not (run / LOCK).exists()
    assert len(list(run.glob(".hydra/config.yaml"))) == 1


@pytest.mark.slow
def test_two_default_named_runs_in_one_second_get_two_folders(tmp_path: Path) -> None:
    args = (*QUICK, f"paths.output_root={tmp_path}", "task_name=twins")
    procs = [start(*args) for _ in range(2)]
    assert [finish(p)[0] for p in procs] == [0, 0]
    folders = sorted(p.parent.parent for p in (tmp_path / "twins").glob("*/.hydra/config.yaml"))
    assert len(folders) == 2
    assert all((f / "splits.npz").is_file() and (f / "job.json").is_file() for f in folders)


def test_a_folder_with_other_files_is_not_trained_into(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "metrics.json").write_text("my own numbers\n")
    result = cli("logitlab.train", *QUICK, f"hydra.run.dir={folder}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"logitlab: error: hydra.run.dir={folder} holds files that are not a logitlab run "
        "(metrics.json); give an empty or new folder, so that none of them is overwritten"
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json"]
    assert (folder / "metrics.json").read_text() == "my own numbers\n"


@pytest.mark.slow
def test_a_second_sweep_into_a_used_sweep_folder_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    first = cli("logitlab.train", "-m", *QUICK, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-2000:]
    before = digest(sweep)
    assert {"0/job.json", "1/job.json", "summary.csv"} <= set(before)
    second = cli("logitlab.train", "-m", *QUICK, "seed=3,4", f"hydra.sweep.dir={sweep}")
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"hydra.sweep.dir={sweep} already holds an earlier sweep" in lines[0]
    assert digest(sweep) == before


def test_a_sweeps_bad_value_is_one_line_before_any_job(tmp_path: Path) -> None:
    started = time.monotonic()
    result = cli("logitlab.train", "-m", "optimizer.lr=0.01,abc", f"paths.output_root={tmp_path}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "optimizer.lr=abc" in lines[0], lines
    assert time.monotonic() - started < 60
    assert not any(tmp_path.iterdir())


# --- refused commands change nothing ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "extra", "message"),
    [
        (None, "optimizer.weight_decay=0.5", "would change the run being resumed"),
        ("truncate_last", "", "last.ckpt is truncated or corrupt"),
        ("corrupt_metrics", "", "metrics.json is not readable JSON"),
        ("random_last", "", "last.ckpt is not a checkpoint"),
    ],
)
def test_a_refused_resume_changes_nothing(
    finished_run: Path, tmp_path: Path, damage, extra, message
) -> None:
    run = copy_run(finished_run, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    if damage == "truncate_last":
        last.write_bytes(last.read_bytes()[:2000])
    elif damage == "random_last":
        last.write_bytes(bytes(range(256)) * 8)
    elif damage == "corrupt_metrics":
        (run / "metrics.json").write_text("{not json")
    before = digest(run)
    out = tmp_path / "elsewhere"  # where a stray default run folder would appear
    result = cli("logitlab.train", f"resume={run}", *extra.split(), env={"LOGITLAB_ROOT": str(out)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "arbitrary unpickling" not in lines[0]
    assert digest(run) == before and not list(run.glob(".hydra/resumed_*"))
    assert not out.exists()


def test_resume_of_a_file_names_the_cause(tmp_path: Path) -> None:
    file = tmp_path / "a.ckpt"
    file.write_bytes(b"x")
    result = cli("logitlab.train", f"resume={file}", f"paths.output_root={tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"resume={file} is a file; give the run folder" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resume_removes_stale_temporaries_and_takes_a_lower_lr(
    finished_run: Path, tmp_path: Path
) -> None:
    run = copy_run(finished_run, tmp_path)
    stale = [run / "checkpoints" / ".last.ckpt.99999.tmp", run / ".metrics.json.99999.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    epochs = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 2
    result = cli(
        "logitlab.train",
        f"resume={run}",
        f"trainer.max_epochs={epochs}",
        "optimizer.lr=0.0001",
        "trainer.gradient_clip_val=1.0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any(path.exists() for path in stale)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    (record,) = run.glob(".hydra/resumed_*/overrides.yaml")
    assert "optimizer.lr=0.0001" in record.read_text()


# --- outputs never land on files that matter ----------------------------------------------------


@pytest.mark.slow
def test_predict_never_overwrites_a_run_file_or_its_input(
    finished_run: Path, tmp_path: Path
) -> None:
    import numpy as np

    run = copy_run(finished_run, tmp_path)
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((3, 64), dtype=np.float32))
    before = digest(run)
    for output, message in (
        (run / "metrics.json", "is one of the run's own files"),
        (run / "checkpoints" / "last.ckpt", "is one of the run's own files"),
        (features, "is the input"),
    ):
        result = cli("logitlab.predict", f"run_dir={run}", f"input={features}", f"output={output}")
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert digest(run) == before and np.load(features).shape == (3, 64)
    mine = tmp_path / "mine.csv"
    mine.write_text("keep me\n")
    result = cli("logitlab.predict", f"run_dir={run}", f"input={features}", f"output={mine}")
    assert result.returncode == 2 and "overwrite=true" in result.stderr
    assert mine.read_text() == "keep me\n"
    result = cli(
        "logitlab.predict",
        f"run_dir={run}",
        f"input={features}",
        f"output={mine}",
        "overwrite=true",
    )
    assert result.returncode == 0 and mine.read_text().startswith("row,pred,pred_name,")


# --- messages that name the right cause ----------------------------------------------------------


def test_divergence_advice_depends_on_a_checkpoint(tmp_path: Path) -> None:
    from logitlab.errors import TrainingDiverged

    error = TrainingDiverged(3, 0, "the loss is nan", None)
    assert "last.ckpt" not in str(error)
    error.advice = "no checkpoint was written yet: start a new run with a lower optimizer.lr"
    assert str(error).endswith("(no checkpoint was written yet: start a new run with a lower "
                               "optimizer.lr)")  # fmt: skip
    assert isinstance(error, ConfigError)


# --- every write inside the claimed folder -------------------------------------------------------


@pytest.mark.slow
def test_an_interpolated_run_folder_is_claimed_as_it_resolves(finished_run, tmp_path) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / "runs" / "train"))
    before = digest(run)
    result = cli("logitlab.train", *QUICK, f"hydra.run.dir={tmp_path / 'runs'}/${{task_name}}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"logitlab: error: hydra.run.dir={run} already holds a run; continue it with "
        f"resume={run}, or give a new folder"
    ]
    assert digest(run) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("paths.output_dir={other}", "paths.output_dir is the run's own folder, chosen and"),
        ("task_name=../../escaped", "task_name=../../escaped must be a plain name (no / or \\)"),
        (
            "callbacks.model_checkpoint.dirpath={other}/checkpoints",
            "callbacks.model_checkpoint.dirpath={other}/checkpoints lies outside the run's folder",
        ),
    ],
)
def test_a_run_writes_only_into_its_own_folder(finished_run, tmp_path, override, message) -> None:
    other = Path(shutil.copytree(finished_run, tmp_path / "other"))
    before = digest(other)
    new = tmp_path / "new"
    result = cli(
        "logitlab.train", *QUICK, override.format(other=other), f"hydra.run.dir={new}",
        f"paths.output_root={tmp_path / 'out'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(other=other) in lines[0], lines
    assert digest(other) == before and not new.exists() and not (tmp_path / "escaped").exists()


# --- lifecycle gaps, messages, special files -----------------------------------------------------


@pytest.mark.slow
def test_a_second_resume_starts_from_what_the_first_set(finished_run, tmp_path) -> None:
    import torch

    run = Path(shutil.copytree(finished_run, tmp_path / "run"))  # debug=limit: 3 epochs
    first = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=4")
    assert first.returncode == 0, first.stderr[-2000:]
    again = cli("logitlab.train", f"resume={run}")  # max_epochs 4, as the first resume set
    assert again.returncode == 0, again.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


@pytest.mark.slow
def test_a_resume_never_follows_a_link_out_of_its_folder(finished_run, tmp_path) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    outside = tmp_path / "elsewhere.log"
    outside.write_text("not the run's\n")
    (run / "train.log").unlink()
    (run / "train.log").symlink_to(outside)
    result = cli("logitlab.train", f"resume={run}", "trainer.max_epochs=4")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"logitlab: error: resume={run}: train.log is a symbolic link (to {outside}), and a "
        "resume writes only into its own folder; replace the link with the file itself"
    ]
    assert outside.read_text() == "not the run's\n"


def test_predict_never_replaces_a_pipe(finished_run, tmp_path) -> None:
    import os

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    result = cli("logitlab.predict", f"run_dir={finished_run}", f"output={fifo}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"logitlab: error: output={fifo} is not a regular file (a pipe or a device), which "
        "writing would replace; give a .csv file name"
    )
    assert fifo.is_fifo()


@pytest.mark.slow
def test_eval_into_a_closed_pipe_ends_quietly(finished_run, tmp_path) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    proc = ZYGOTE.start("logitlab.eval", [f"run_dir={run}"], env, stdout=False)  # `| head -0`
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err and "BrokenPipeError" not in err
    assert (run / "eval_metrics.json").is_file()  # the result is written all the same


@pytest.mark.slow
def test_a_refusal_found_at_setup_is_not_preceded_by_the_config_tree(tmp_path) -> None:
    run = tmp_path / "run"
    result = cli(
        "logitlab.train", "model=binary", "data.positive_classes=[42]", f"hydra.run.dir={run}"
    )
    assert result.returncode == 2
    assert "source: digits" not in result.stdout  # the tree comes once the run is built
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "logitlab: error: data.positive_classes has [42], absent from dataset 'digits' (its "
        "classes are [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); choose classes it has"
    ]
    assert not run.exists()


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("calibration.json", {"temperature": -1.0}, "holds temperature=-1.0, which no fit gives"),
        ("data.json", {"std": "zeros"}, "holds a std that is not a positive finite number"),
    ],
)
def test_implausible_run_files_are_refused(finished_run, tmp_path, file, change, message) -> None:
    """A temperature of -1 would reverse every prediction, a std of 0 make them NaN."""
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    if file == "calibration.json":
        (best,) = (run / "checkpoints").glob("best-*.ckpt")
        record = {"method": "temperature", "checkpoint": str(best), **change}
    else:
        record = json.loads((run / file).read_text())
        record["std"] = [0.0 for _ in record["std"]]
    (run / file).write_text(json.dumps(record))
    before = digest(run)
    result = cli("logitlab.predict", f"run_dir={run}", f"output={tmp_path / 'p.csv'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{run / file} {message}" in lines[0], lines
    assert digest(run) == before and not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_an_exploding_loss_is_divergence(tmp_path) -> None:
    run = tmp_path / "run"
    result = cli("logitlab.train", "debug=limit", "optimizer.lr=1e6", f"hydra.run.dir={run}")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "training diverged at step" in last and "times its first value" in last, last
    loss = float(last.split("the loss is ")[1].split(",")[0])
    first = float(last.split("its first value (")[1].split(")")[0])
    assert loss > 1e4 * max(first, 1.0)  # finite, but no longer a loss of this problem
    assert json.loads((run / "metrics.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_a_start_that_stopped_before_its_first_checkpoint_starts_again(tmp_path) -> None:
    table = tmp_path / "t.csv"
    rows = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60))
    table.write_text("a,b,label\n" + rows + "5,5,nan\n")  # refused once Hydra has started
    run = tmp_path / "run"
    run.mkdir()  # an explicit folder the user made: a refusal leaves it, with the start's files
    start = ("data=csv", f"data.path={table}", "data.target=label", f"hydra.run.dir={run}")
    failed = cli("logitlab.train", *start)
    assert failed.returncode == 2 and (run / ".hydra" / "config.yaml").is_file()
    assert json.loads((run / "job.json").read_text())["status"] == "failed"
    resumed = cli("logitlab.train", f"resume={run}")
    assert resumed.returncode == 2
    assert resumed.stderr.strip().splitlines()[-1] == (
        f"logitlab: error: resume={run}: this run stopped before its first checkpoint, so there "
        "is nothing to resume; start it again in its folder: python -m logitlab.train "
        f"hydra.run.dir={run} data=csv data.path={table} data.target=label"
    )
    table.write_text("a,b,label\n" + rows)  # fixed
    again = cli("logitlab.train", *start, *QUICK)
    assert again.returncode == 0, again.stderr[-2000:]
    (kept,) = (run / ".hydra").glob("failed_start_*/config.yaml")  # the first start's record
    assert json.loads((run / "job.json").read_text())["status"] == "completed"
    assert "train: true" in kept.read_text()  # the first start's, not the second's
    assert "train: false" in (run / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_a_stopped_sweep_writes_its_summary_and_goes_on(tmp_path) -> None:
    import signal

    sweep = tmp_path / "sweep"
    command = (
        "-m", "debug=limit", "trainer.max_epochs=2,40,2", "logger=[]",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    proc = start(*command)
    deadline = time.monotonic() + 240
    while not (sweep / "1" / "checkpoints" / "last.ckpt").is_file():  # the long job is training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl+C
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "stopped")]
    assert f"run the same command again with hydra.sweep.dir={sweep}" in out  # Hydra's log
    kept = ("checkpoints", "metrics.json", "data.json", "splits.npz")
    first_job = {k: v for k, v in digest(sweep / "0").items() if k.startswith(kept)}
    code, err = finish(start(*command))
    assert code == 0, err[-2000:]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [(str(i), "completed") for i in range(3)]
    again = {k: v for k, v in digest(sweep / "0").items() if k.startswith(kept)}
    assert again == first_job and len(first_job) >= 4  # kept as it was, not trained again
    assert "resumes from" in (sweep / "1" / "train.log").read_text()
    assert torch.load(sweep / "1" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 39


def test_calibrating_a_run_still_training_warns(finished_run, tmp_path) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    code = (
        "import sys, time; from pathlib import Path; from logitlab.run.lock import claim; "
        "claim(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = cli("logitlab.calibrate", f"run_dir={run}")
        assert result.returncode == 0, result.stderr[-2000:]
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("logitlab: warning")]
        assert line.startswith(
            f"logitlab: warning: {run} is still training (process {holder.pid} on "
        )
        assert line.endswith(
            "this reads its checkpoints as they are now: run it again once the run has finished"
        )
    finally:
        holder.kill()
        holder.wait()
    after = cli("logitlab.calibrate", f"run_dir={run}")  # the holder is gone: no warning
    assert after.returncode == 0 and "logitlab: warning" not in after.stderr
