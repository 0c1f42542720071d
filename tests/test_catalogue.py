# ruff: noqa: E501  (the catalogue reads best one entry a line)
"""The catalogue of mistakes: each ends with one line on stderr naming the key or file and the
fix, exit status 2, no traceback, and an existing run folder left byte for byte as it was."""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import digest
from logitlab import eval as eval_cli
from logitlab import predict as predict_cli
from logitlab import train as train_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory, finished_run: Path) -> dict[str, Path]:
    """A finished run (read only), and the bad files the catalogue feeds to the commands."""
    root = tmp_path_factory.mktemp("catalogue")
    run = finished_run
    x = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)
    y = np.arange(80) % 4
    for name, (xx, yy) in {
        "out_of_range": (x, np.where(y == 3, 7, y)),
        "negative": (x, np.where(y == 0, -1, y)),
        "fractional": (x, y + 0.5 * (np.arange(80) < 2)),
        "nan": (np.where(np.arange(240).reshape(80, 3) == 7, np.nan, x), y),
    }.items():
        np.savez(root / f"{name}.npz", x=xx, y=yy)
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 50), ("t10k", 20)):
        images = np.zeros((n, 28, 28), np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + bytes(n))
    broken = raw / "t10k-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:100])
    last = run / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    output = [key for key, weight in state["state_dict"].items() if weight.ndim == 2][-1]
    state["state_dict"][output] = torch.zeros(1, 64)  # another head's output layer
    torch.save(state, root / "other_head.ckpt")
    (root / "truncated.ckpt").write_bytes(last.read_bytes()[:1000])
    (root / "tiny.ckpt").write_bytes(b"abcd")
    np.save(root / "narrow.npy", np.zeros((3, 10)))
    (root / "text.csv").write_text("1,2\n3,oops\n")
    (root / "random.ckpt").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "text.npz").write_text("x,y\n1,2\n")
    splits = np.load(run / "splits.npz")
    (root / "truncated_splits.npz").write_bytes((run / "splits.npz").read_bytes()[:50])
    np.savez(
        root / "far_splits.npz", n=splits["n"], train=splits["train"] + 5000, val=splits["val"],
        test=splits["test"],
    )  # fmt: skip
    (root / "a-file").write_text("not a folder")
    (root / "empty").mkdir()
    return {"root": root, "run": run}


def call(module, args: list[str], capsys) -> tuple[int, list[str]]:
    """Run a command's main() in this process, as its console script would."""
    argv = sys.argv
    logging.getLogger().handlers.clear()  # handlers an earlier in-process run bound to old streams
    try:
        if module is train_cli:
            sys.argv = ["logitlab-train", *args]
            module.main()
        else:
            module.main(args)
        code = 0
    except SystemExit as exit:
        code = exit.code
    finally:
        sys.argv = argv
        logging.getLogger().handlers.clear()  # Hydra's handlers hold this test's closing streams
    return code, capsys.readouterr().err.strip().splitlines()


NPZ = "data=npz data.num_features=3 data.num_classes=4 data.path={root}/{name}.npz"
CATALOGUE = [
    # (command, arguments, message fragment)
    ("train", "model=foo", "model=foo is not an option of 'model'; choose one of binary, multiclass, multilabel"),
    ("train", "trainer.max_epoch=3", "trainer.max_epoch is not a key of the config"),
    ("train", "trainer.max_epochs=abc", "could not be converted to Integer (full_key: trainer.max_epochs)"),
    ("train", "optimizer.lr=0", "optimizer.lr=0.0 must be a positive number"),
    ("train", "data.batch_size=0", "data.batch_size=0 must be positive"),
    ("train", "trainer.max_epochs=-3", "trainer.max_epochs=-3 must be >= 0"),
    ("train", "model.net.hidden_sizes=[]", "model.net.hidden_sizes=[] must list positive layer widths"),
    ("train", "model.net.dropout=1.0", "model.net.dropout=1.0 must be in [0, 1)"),
    ("train", "model.net.activation=swish", "model.net.activation='swish' is not known; use one of relu"),
    ("train", "data.val_fraction=0.6 data.test_fraction=0.5", "leave a split empty"),
    ("train", "loss=bce", "loss=bce is a binary loss and does not fit model=multiclass"),
    ("train", "data.num_classes=5", "set data.num_classes=10"),
    ("train", NPZ.format(root="{root}", name="out_of_range"), "labels must lie in [0, 4)"),
    ("train", NPZ.format(root="{root}", name="negative"), "class indices start at 0"),
    ("train", NPZ.format(root="{root}", name="fractional"), "labels must be integer class indices"),
    ("train", NPZ.format(root="{root}", name="nan"), "features are NaN or inf, e.g. x[2, 1]=nan"),
    ("train", "model=binary data.positive_classes=[12]", "data.positive_classes has [12], absent"),
    ("train", "data=mnist paths.data_dir={root}/empty", "no MNIST files in {root}/empty/MNIST/raw"),
    ("train", "data=mnist paths.data_dir={root}/mnist", "t10k-images-idx3-ubyte is truncated or corrupt"),
    ("train", "hydra.run.dir={run}", "already holds a run; continue it with resume="),
    ("train", "resume={root}/nowhere paths.output_root={root}/out", "resume={root}/nowhere does not exist; give the folder of a training run"),
    ("eval", "run_dir={root}/nowhere", "run_dir={root}/nowhere does not exist"),
    ("eval", "run_dir={run} ckpt={root}/nowhere.ckpt", "does not exist; use ckpt=best, last or a path"),
    ("eval", "run_dir={run} ckpt={root}/tiny.ckpt", "tiny.ckpt is truncated or corrupt"),
    ("eval", "run_dir={run} ckpt={root}/other_head.ckpt", ": a different head or network); use this run's own checkpoint"),
    ("eval", "run_dir={run} ckpt={root}/truncated.ckpt", "truncated.ckpt is truncated or corrupt"),
    ("predict", "run_dir={run} input={root}/narrow.npy", "has 10 features per sample but the model takes 64"),
    ("predict", "run_dir={run} input={root}/text.csv", "column 'column 1' holds 'oops' (line 2), not a number"),
    ("train", "seed=-1", "seed=-1 must be an integer in [0, 4294967295]"),
    ("train", "run_name=../../elsewhere", "run_name=../../elsewhere must be a plain name"),
    ("train", "logger=mlflow run_name=..", "run_name=.. must be a plain name"),
    ("train", "data.eval_batch_size=-5", "data.eval_batch_size=-5 must be positive"),
    ("train", "data.num_classes=1000000000", "data.num_classes=1000000000 must be in [2, 100000]"),
    ("train", "model.num_classes=3", "model.num_classes=3 contradicts data.num_classes=10"),
    ("train", "optimizer._target_=torch.optim.Nope", "optimizer._target_=torch.optim.Nope cannot be imported"),
    ("train", "data.splits_file={root}/truncated_splits.npz", "truncated_splits.npz is not a readable .npz file"),
    ("train", "data.splits_file={root}/far_splits.npz", "indexes samples up to"),
    ("train", "data=npz data.path={root}/text.npz data.num_classes=4", "text.npz is not an .npz archive"),
    ("train", "resume={root}/a-file", "resume={root}/a-file is a file; give the run folder"),
    ("eval", "run_dir={run} ckpt={root}/random.ckpt", "random.ckpt is not a checkpoint"),
    ("eval", "run_dir={run} ckpt={root}/empty", "ckpt={root}/empty is a folder; give a .ckpt file"),
    ("eval", "run_dir={root}/a-file", "run_dir={root}/a-file is a file; give the run folder"),
    ("predict", "run_dir={run} output={root}/a-file/p.csv", "is a file; choose a writable folder"),
]  # fmt: skip
if not torch.cuda.is_available():
    CATALOGUE.append(("train", "trainer=gpu", "trainer.accelerator=gpu but no CUDA GPU is visible"))
MODULES = {"train": train_cli, "eval": eval_cli, "predict": predict_cli}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "args", "fragment"), CATALOGUE, ids=[c[2][:40] for c in CATALOGUE]
)
def test_catalogue_entry(world, tmp_path, capsys, command, args, fragment) -> None:
    before = digest(world["run"])
    words = args.format(root=world["root"], run=world["run"]).split()
    if command == "train" and not any(w.startswith(("resume=", "hydra.run.dir=")) for w in words):
        words.append(f"hydra.run.dir={tmp_path / 'new'}")
    code, lines = call(MODULES[command], words, capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("logitlab: error: "), lines
    assert fragment.format(root=world["root"]) in lines[0]
    assert "Traceback" not in lines[0]
    assert "allow_pickle" not in lines[0] and "arbitrary unpickling" not in lines[0]
    assert digest(world["run"]) == before
    assert not (tmp_path / "new").exists()  # a refused run leaves no folder behind
