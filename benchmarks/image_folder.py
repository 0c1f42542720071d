"""The image-folder part of `make bench`: reading images from disk, sample by sample.

- Epoch time: logitlab (`python -m logitlab.train data=image_folder ...` with its defaults: two
  DataLoader workers, per-sample torchvision.transforms.v2, callbacks, TensorBoard) against a
  bare loop over `torchvision.datasets.ImageFolder` + `DataLoader` with the same transforms
  (resize, scale, normalise), the same workers and batch sizes and the same MLP, in a plain
  PyTorch loop that never imports Lightning. The folder holds 28x28 grayscale PNGs in
  root/train, root/val and root/test, so both read exactly the same files. As in the main
  benchmark, an epoch runs from one end of epoch to the next (training and validation), the
  first is warm-up. The figure of merit: the contestants by turns (benchmarks/interleave.py),
  each epoch's CPU time with its DataLoader workers' (marks.group_cpu); the sequential runs'
  wall-time ratios (of the median epochs, paired within a repetition, and of the fastest) beside.
- Memory: the peak RSS of a one-epoch logitlab run over a folder of images and over one 5x
  larger: lazy loading keeps it flat.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLIT_SIZES = {"train": 12000, "val": 2000, "test": 200}
RSS_SIZES = (2000, 10000)
CLASSES, SIDE, WORKERS = 10, 28, 2
BATCH = int(os.environ.get("BENCH_IMAGE_BATCH", "256"))
NET = ["model.net.hidden_sizes=[256,128]", "model.net.dropout=0.0"]


def write_pngs(folder: Path, n: int, seed: int) -> None:
    """`n` class-structured 28x28 grayscale PNGs in folder/<class>/<i>.png."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(0).integers(0, 256, size=(CLASSES, SIDE, SIDE))
    labels = rng.integers(0, CLASSES, size=n)
    for c in range(CLASSES):
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
    for i, label in enumerate(labels):
        noise = rng.normal(0, 70, size=(SIDE, SIDE))
        pixels = np.clip(prototypes[label] * 0.3 + noise + 80, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / str(label) / f"{i:06d}.png")


def make_folders(out: Path) -> dict[str, Path]:
    """The epoch benchmark's split folder and the two RSS folders (written once, then reused)."""
    folders = {"epochs": out / "pngs", **{f"rss_{n}": out / f"pngs_{n}" for n in RSS_SIZES}}
    done = out / f"pngs_{SPLIT_SIZES['train']}_{SPLIT_SIZES['val']}.done"
    if done.is_file():
        return folders
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)  # written for other sizes
    for seed, (part, n) in enumerate(SPLIT_SIZES.items()):
        write_pngs(folders["epochs"] / part, n, seed + 1)
    for n in RSS_SIZES:
        write_pngs(folders[f"rss_{n}"], n, n)
    done.write_text("ok\n")
    return folders


def read_gray(path: str) -> Any:
    """A PNG as uint8 (1, H, W), read as logitlab reads it (PIL, converted to grayscale)."""
    import torch
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("L"))).unsqueeze(0)


def bare_images(root: Path, epochs: int) -> dict[str, Any]:
    """torchvision's ImageFolder and DataLoader with the same transforms, in a plain loop; each
    epoch's wall time and CPU time, its workers' included."""
    import torch
    import torch.nn.functional as F
    from marks import group_cpu
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    torch.manual_seed(0)
    transform = v2.Compose(
        [
            v2.Resize([SIDE, SIDE], antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.45], [0.3]),
        ]
    )

    def loader(part: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = ImageFolder(str(root / part), loader=read_gray, transform=transform)
        return DataLoader(
            dataset, batch_size, shuffle=shuffle, num_workers=WORKERS, persistent_workers=True
        )

    train, val = loader("train", BATCH, True), loader("val", 256, False)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(SIDE * SIDE, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    marks, cpu, correct = [], [], 0
    for _ in range(epochs):
        marks.append(time.perf_counter())
        cpu.append(group_cpu())
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
    marks.append(time.perf_counter())
    cpu.append(group_cpu())
    return {
        "epoch_s": [b - a for a, b in itertools.pairwise(marks)],
        "epoch_cpu_s": [b - a for a, b in itertools.pairwise(cpu)],
        "val_acc": correct / SPLIT_SIZES["val"],
    }


def epoch_ends(run_dir: Path) -> list[float]:
    """Wall times of a logitlab run's end-of-epoch events (time/epoch_s) in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ends: list[float] = []
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "time/epoch_s" in accumulator.Tags()["scalars"]:
            ends += [e.wall_time for e in accumulator.Scalars("time/epoch_s")]
    return ends


def logitlab_overrides(root: Path, epochs: int, run_dir: Path) -> list[str]:
    """A user's image-folder run: everything default but the bench's network and epochs."""
    return [
        "data=image_folder", f"data.root={root}", f"data.batch_size={BATCH}", *NET,
        f"trainer.max_epochs={epochs}", "test=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def epoch_ratios(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """logitlab over the bare loop in wall time, the sequential runs': the median epochs' ratio
    paired within a repetition (each repetition's beside it), and the ratio of the fastest
    epochs of all the repetitions (which noise cannot lower; each repetition's beside it)."""
    pairs = list(zip(runs["logitlab"], runs["bare"], strict=True))
    least = {
        name: min(t for r in results for t in r["measured_s"]) for name, results in runs.items()
    }
    by_rep = [
        statistics.median(o["measured_s"]) / statistics.median(b["measured_s"]) for o, b in pairs
    ]
    return {
        "images_ratio": statistics.median(by_rep),
        "images_ratio_by_rep": by_rep,
        "images_ratio_min": least["logitlab"] / least["bare"],
        "images_ratio_min_by_rep": [min(o["measured_s"]) / min(b["measured_s"]) for o, b in pairs],
    }


def by_turns(
    root: Path, out: Path, runs_dir: Path, epochs: int, rounds: int, console: Any
) -> dict[str, Any]:
    """logitlab, the bare loop and the bare loop again by turns (benchmarks/interleave.py; a
    stopped process group stops its workers too), `rounds` rounds: each epoch's CPU time with
    its DataLoader workers' (marks.group_cpu), and the ratios of the medians."""
    import bench
    import interleave

    env = {**bench.PINNED, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    by_round = []
    for turn in range(rounds):
        console.print(f"[bold]image folder[/] by turns, round {turn + 1}/{rounds}: logitlab, "
                      "bare loop, bare loop again (CPU time with the workers')")  # fmt: skip
        folder = runs_dir / f"images_turns_r{turn}"
        times = folder / "logitlab_epochs.json"
        command = [
            sys.executable, "-m", "logitlab.train",
            *logitlab_overrides(root, epochs, folder / "logitlab"),
            "+callbacks.times._target_=marks.epoch_times", f"+callbacks.times.path={times}",
            "+callbacks.times.with_children=true",
        ]  # fmt: skip
        contestants: dict[str, Any] = {
            "logitlab": (command, lambda t=times: json.loads(t.read_text())[1:])
        }
        for name in ("bare", "bare_again"):
            result = folder / f"{name}.json"
            contestants[name] = (
                [sys.executable, __file__, "--out", str(out), "--bare", str(result),
                 "--epochs", str(epochs)],
                lambda r=result: json.loads(r.read_text())["epoch_cpu_s"][1:],
            )  # fmt: skip
        folder.mkdir(parents=True)
        by_round.append(interleave.epochs_by_turns(contestants, folder, env, bench.ROOT))
    ratios = interleave.rounds_ratios(
        by_round, {"over_bare": ("logitlab", "bare"), "aa": ("bare_again", "bare")}
    )
    cpu = interleave.pooled(by_round)
    return {
        "cpu_images_over_bare": ratios["over_bare"],
        "cpu_images_aa": ratios["aa"],
        "images_turns": {
            **ratios, "rounds": rounds,
            "epoch_cpu_median_s": {n: statistics.median(t) for n, t in cpu.items()},
            "turns_epoch_cpu_s": cpu,
        },
    }  # fmt: skip


def run(
    out: Path, runs_dir: Path, epochs: int, reps: int, run_measured: Any, console: Any,
    rounds: int = 3,
) -> dict[str, Any]:  # fmt: skip
    """Both contestants `reps` times in alternating order, then the RSS pair, then `rounds`
    rounds by turns (by_turns: the figure of merit).

    The PNGs are written once under `out`; the runs go to `runs_dir` (emptied of earlier ones).
    """
    import subprocess

    for old in runs_dir.glob("images_*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    subprocess.run([sys.executable, __file__, "--out", str(out)], check=True)  # the PNGs
    folders = make_folders(out)  # paths only, now
    runs: dict[str, list[dict[str, Any]]] = {"logitlab": [], "bare": []}
    for rep in range(reps):
        order = ("logitlab", "bare") if rep % 2 == 0 else ("bare", "logitlab")
        console.print(f"[bold]image folder[/] repetition {rep + 1}/{reps}: {', '.join(order)}")
        for name in order:
            if name == "logitlab":
                run_dir = runs_dir / f"images_r{rep}"
                command = [sys.executable, "-m", "logitlab.train",
                           *logitlab_overrides(folders["epochs"], epochs, run_dir)]  # fmt: skip
                _, rss, _ = run_measured(command, run_dir.with_suffix(".log"))
                ends = epoch_ends(run_dir)
                metrics = json.loads((run_dir / "metrics.json").read_text())
                measured = [b - a for a, b in itertools.pairwise(ends)]
                runs[name].append({"measured_s": measured, "val_acc": metrics["val/acc"]})
            else:
                result_file = runs_dir / f"images_bare_r{rep}.json"
                result_file.parent.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, __file__, "--out", str(out), "--bare",
                           str(result_file), "--epochs", str(epochs)]  # fmt: skip
                run_measured(command, result_file.with_suffix(".log"))
                result = json.loads(result_file.read_text())
                runs[name].append({**result, "measured_s": result["epoch_s"][1:]})
    console.print("[bold]image folder[/]: peak RSS, one epoch, folder of 2,000 vs 10,000 images")
    rss = {}
    for n in RSS_SIZES:
        run_dir = runs_dir / f"images_rss_{n}"
        command = [sys.executable, "-m", "logitlab.train",
                   *logitlab_overrides(folders[f"rss_{n}"], 1, run_dir)]  # fmt: skip
        rss[n] = run_measured(command, run_dir.with_suffix(".log"))[1]
    small, big = (rss[n] for n in RSS_SIZES)
    return {
        "images_workload": (
            f"{SPLIT_SIZES['train']} train + {SPLIT_SIZES['val']} val 28x28 PNGs, MLP "
            f"784-256-128-10, batch {BATCH}, {WORKERS} workers"
        ),
        "images_logitlab_epoch_s": statistics.median(
            t for r in runs["logitlab"] for t in r["measured_s"]
        ),
        "images_bare_epoch_s": statistics.median(t for r in runs["bare"] for t in r["measured_s"]),
        **epoch_ratios(runs),
        "images_epoch_s": {
            name: [r["measured_s"] for r in results] for name, results in runs.items()
        },
        "images_val_acc": {name: results[-1]["val_acc"] for name, results in runs.items()},
        "images_rss_mb": {str(n): rss[n] for n in RSS_SIZES},
        "images_rss_growth": big / small - 1.0,
        **by_turns(folders["epochs"], out, runs_dir, epochs, rounds, console),
    }


def main() -> None:
    """Internal: `--out DIR` writes the PNG folders; `--bare FILE` also runs the bare loop."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bare", type=Path)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    folders = make_folders(args.out)
    if args.bare:
        args.bare.write_text(json.dumps(bare_images(folders["epochs"], args.epochs)))


if __name__ == "__main__":
    main()
