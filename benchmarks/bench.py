"""`make bench` / `python benchmarks/bench.py`: logitlab against a bare PyTorch loop.

Workload: an MLP 784-256-128-10 (ReLU, Adam 1e-3) on in-memory MNIST-shaped data (60,000 train
+ 10,000 val samples of 28x28 uint8, 10 classes, generated with class structure so it learns).
Four contestants, each in its own process, take turns in every repetition (the order rotates
from one repetition to the next), several repetitions per batch size:

- logitlab: `python -m logitlab.train` as a user runs it, with the default callbacks
  (best and last checkpoints, progress bar, early stopping, learning-rate monitor, epoch
  clock, diagnostics), the TensorBoard logger and torchmetrics loss/accuracy for train and
  val. An epoch's time is the interval between its end-of-epoch TensorBoard event and the
  previous one's, so it holds the training batches, validation, checkpoint writing and
  logging: everything the epoch costs.
- logitlab fastpath: the same run with `fastpath=true` (logitlab/fastpath.py's levers).
- bare: the same model, optimizer, batches (the same shuffled order, gathered from the same
  in-memory tensors with index_select) and validation pass in a plain loop, no metric
  objects, no logging; it never imports Lightning.
- minimal Lightning loop (a reference): the bare loop's work in a bare LightningModule, every
  Trainer extra off, asking CUDA directly for a GPU where NVML does not load (as logitlab runs
  do; see minimal_fit): Lightning's own share of the ratio.

The first epoch of every run is warm-up and left out. Each contestant's median epoch is over
all its runs; the ratio is the median over repetitions of (the contestant's median epoch / the
bare loop's) within a repetition, whose runs follow each other within seconds: the machine's
drift between repetitions cancels out (see rep_ratios). The ratio of the pooled medians is
reported beside it. These wall-time figures are the sequential runs'.
The figure of merit (`cpu_*`) is CPU time with the contestants run by turns
(benchmarks/interleave.py): per batch size all of them, the bare loop twice, start at once and
take 0.05 s turns, so their epochs meet the same machine; `--rounds` rounds (3) of new
processes, whose luck lasts their life; the ratio of median epoch CPU times over all the
rounds' epochs, and the bare loop over itself (`cpu_aa_*`) as the measure's own error. The
contestants keep to the machine's last core, this process and the load of `--under-load` to
the others.
The same contestants counted in instructions under valgrind: benchmarks/instructions.py.
Then the image-folder contestants (benchmarks/image_folder.py): logitlab over a folder of PNGs
against torchvision's ImageFolder + DataLoader in a plain loop, and the peak RSS of an
image-folder run as the folder grows 5x. `--parts mlp` or `--parts images` runs one half (the
other half's figures are kept from the previous latest.json).
Results go to outputs/bench/latest.json and docs/benchmarks.md (+ a PNG chart).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # its sibling modules: interleave, marks, ...
N_TRAIN, N_VAL, FEATURES, CLASSES = 60_000, 10_000, 784, 10
HIDDEN = [256, 128]
IMPORT_FLOOR = "import lightning, torchvision, torchmetrics, hydra"
THREADS = 1  # intra-op threads of every contestant on the CPU: CPU time then counts one core
PINNED = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


def make_data(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """MNIST-shaped uint8 data with learnable class structure, and its train/val split file."""
    data, splits = folder / "mnist_like.npz", folder / "mnist_like_splits.npz"
    if data.is_file() and splits.is_file():
        return data, splits
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    y = rng.integers(0, CLASSES, size=n)
    prototypes = rng.integers(0, 256, size=(CLASSES, FEATURES))
    noise = rng.normal(0, 70, size=(n, FEATURES))
    x = np.clip(prototypes[y] * 0.15 + noise + 90, 0, 255).astype(np.uint8)
    np.savez(data, x=x, y=y)
    index = np.arange(n)
    # logitlab needs a test split too; the benchmark sets test=false, so a sliver will do.
    np.savez(
        splits,
        n=np.array(n),
        train=index[:N_TRAIN],
        val=index[N_TRAIN:],
        test=index[N_TRAIN:][:100],
    )
    return data, splits


def _prepared(data: Path, device: str) -> tuple[Any, Any, Any, Any]:
    """Train and val tensors on `device`, standardised with the training split's statistics."""
    import torch

    with np.load(data) as npz:
        x = torch.from_numpy(npz["x"]).float().div_(255.0)
        y = torch.from_numpy(npz["y"]).long()
    mean, std = x[:N_TRAIN].mean(0), x[:N_TRAIN].std(0)
    std[std == 0] = 1.0
    x = x.sub_(mean).div_(std).to(device)
    y = y.to(device)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _mlp() -> Any:
    """The benchmark's network in plain PyTorch: the same layers as logitlab's build_mlp."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(FEATURES, HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),
        nn.Linear(HIDDEN[1], CLASSES),
    )


def bare_loop(
    data: Path, batch_size: int, epochs: int, device: str, precision: str
) -> dict[str, Any]:
    """The practical limit: the same work as a training run, with nothing around it.

    Plain PyTorch only: neither logitlab nor Lightning is imported in this process.
    """
    import marks
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(THREADS)  # as OMP_NUM_THREADS sets it in the logitlab runs
    train_x, train_y, val_x, val_y = _prepared(data, device)
    model = _mlp().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    eval_size = max(batch_size, 1024)
    times, cpu, val_acc = [], [], 0.0
    for epoch in range(epochs):
        if epoch == 1:
            marks.count_from_here()  # counted in instructions from here (instructions.py)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(epoch)).to(device)
        for i in range(0, N_TRAIN, batch_size):
            index = order[i : i + batch_size]  # gathered as logitlab's batches are
            with autocast:
                loss = F.cross_entropy(
                    model(train_x.index_select(0, index)), train_y.index_select(0, index)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for i in range(0, N_VAL, eval_size):
                logits = model(val_x[i : i + eval_size])
                correct += (logits.argmax(1) == val_y[i : i + eval_size]).sum()
        val_acc = correct.item() / N_VAL
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    marks.count_to_here()
    return {"epoch_s": times, "epoch_cpu_s": cpu, "val_acc": val_acc}


def lightning_loop(
    data: Path, batch_size: int, epochs: int, device: str, precision: str
) -> dict[str, Any]:
    """Lightning's own share: the bare loop's work in a minimal LightningModule.

    The Trainer runs with every extra off (no logger, checkpoints, progress bar, model
    summary, sanity check or metric objects), over the same index_select batches. An epoch is
    timed from its start to the next one's, as logitlab's are.
    """
    import lightning as L
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    train_x, train_y, val_x, val_y = _prepared(data, device)

    class Batches:
        def __init__(self, x: Any, y: Any, size: int, shuffle: bool) -> None:
            self.x, self.y, self.size, self.shuffle, self.epoch = x, y, size, shuffle, 0

        def __len__(self) -> int:
            return -(-len(self.y) // self.size)

        def __iter__(self) -> Any:
            n = len(self.y)
            if not self.shuffle:
                for i in range(0, n, self.size):
                    yield self.x[i : i + self.size], self.y[i : i + self.size]
                return
            generator = torch.Generator().manual_seed(self.epoch)
            order = torch.randperm(n, generator=generator).to(self.x.device)
            self.epoch += 1
            for i in range(0, n, self.size):
                index = order[i : i + self.size]
                yield self.x.index_select(0, index), self.y.index_select(0, index)

    class Minimal(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()
            self.correct = torch.zeros(())

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def on_validation_epoch_start(self) -> None:
            self.correct = torch.zeros((), device=self.device)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.correct += (self.net(batch[0]).argmax(1) == batch[1]).sum()

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    model = Minimal()
    times, cpu = minimal_fit(
        model,
        Batches(train_x, train_y, batch_size, shuffle=True),
        Batches(val_x, val_y, max(batch_size, 1024), shuffle=False),
        epochs, device, precision,
    )  # fmt: skip
    return {"epoch_s": times, "epoch_cpu_s": cpu, "val_acc": model.correct.item() / N_VAL}


def minimal_fit(
    model: Any, train: Any, val: Any, epochs: int, device: str, precision: str
) -> tuple[list[float], list[float]]:
    """`model` fitted by a Trainer with every extra off (no logger, checkpoints, progress bar,
    model summary or sanity check): each epoch's wall and CPU seconds, start to start.

    Where NVML does not load, torch is told to ask CUDA directly whether a GPU is there, as a
    logitlab run does (logitlab/run/gpu_check.py): otherwise `import lightning` has each
    optimizer step try to load NVML, a cost of the machine, not of Lightning's loop."""
    import lightning as L
    import marks

    from logitlab.run.gpu_check import direct_cuda_check

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.cpu: list[float] = []

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.marks.append(time.perf_counter())
            self.cpu.append(time.process_time())

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.marks.append(time.perf_counter())
            self.cpu.append(time.process_time())

    clock = Clock()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[clock, marks.epochs_callback()] if marks.counting() else [clock],
    )
    with direct_cuda_check():
        trainer.fit(model, train, val)
    times = [b - a for a, b in itertools.pairwise(clock.marks)]
    cpu = [b - a for a, b in itertools.pairwise(clock.cpu)]
    return times, cpu


LOOPS = {"bare": bare_loop, "lightning": lightning_loop}


def run_measured(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run a command (output to `log`); return its wall time, its peak RSS in MB and its output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    output = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed:\n{output[-3000:]}")
    return wall, usage.ru_maxrss / 1024, output


def logitlab_overrides(
    data: Path, splits: Path, batch_size: int, epochs: int, run_dir: Path, trainer: str,
    precision: str, fastpath: bool,
) -> list[str]:  # fmt: skip
    """The overrides of a benchmark run: the bench's data and MLP, everything else default."""
    return [
        "data=npz", f"data.path={data}", f"data.splits_file={splits}",
        f"data.num_features={FEATURES}", f"data.num_classes={CLASSES}",
        f"data.batch_size={batch_size}", "model.net.hidden_sizes=[256,128]",
        "model.net.dropout=0.0", f"trainer={trainer}", f"trainer.precision={precision}",
        f"trainer.max_epochs={epochs}", "test=false", f"fastpath={str(fastpath).lower()}",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def logitlab_command(
    data: Path, splits: Path, batch_size: int, epochs: int, run_dir: Path, trainer: str,
    precision: str, fastpath: bool = False,
) -> list[str]:  # fmt: skip
    """`python -m logitlab.train` with the benchmark's overrides."""
    return [sys.executable, "-m", "logitlab.train", *logitlab_overrides(
        data, splits, batch_size, epochs, run_dir, trainer, precision, fastpath
    )]  # fmt: skip


def logitlab_run(
    data: Path,
    splits: Path,
    batch_size: int,
    epochs: int,
    run_dir: Path,
    trainer: str,
    precision: str,
    fastpath: bool = False,
) -> dict[str, Any]:
    """One `python -m logitlab.train` run; its epoch times from its own TensorBoard scalars."""
    command = logitlab_command(
        data, splits, batch_size, epochs, run_dir, trainer, precision, fastpath
    )
    wall, rss, _ = run_measured(command, run_dir.with_suffix(".log"), PINNED)
    return {**logged_epochs(run_dir, epochs), "wall_s": wall, "rss_mb": rss}


def logged_epochs(run_dir: Path, epochs: int) -> dict[str, Any]:
    """A finished run's epoch wall and CPU times (after the first) and val/acc, from its own
    TensorBoard scalars and metrics.json."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ends, cpu = [], []  # wall time of each epoch's end-of-epoch event; its CPU seconds
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "time/epoch_s" in accumulator.Tags()["scalars"]:
            ends += [e.wall_time for e in accumulator.Scalars("time/epoch_s")]
            cpu += [e.value for e in accumulator.Scalars("time/epoch_cpu_s")]
    if len(ends) != epochs:
        raise RuntimeError(f"{run_dir}: {len(ends)} epochs logged, {epochs} expected")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Epoch 0 (warm-up) has no earlier event; each later epoch runs from one end to the next.
    measured = [b - a for a, b in itertools.pairwise(ends)]
    return {"measured_s": measured, "measured_cpu_s": cpu[1:], "val_acc": metrics["val/acc"]}


def loop_command(
    kind: str, data: Path, batch_size: int, epochs: int, out: Path, device: str, precision: str
) -> list[str]:
    """This script's `loop` command: the bare or the minimal-Lightning loop, its result in `out`."""
    return [
        sys.executable, str(Path(__file__).resolve()), "loop", "--kind", kind, "--data", str(data),
        "--batch-size", str(batch_size), "--epochs", str(epochs), "--out", str(out),
        "--device", device, "--precision", precision,
    ]  # fmt: skip


def loop_run(
    kind: str, data: Path, batch_size: int, epochs: int, out: Path, device: str, precision: str
) -> dict[str, Any]:
    """The bare or the minimal-Lightning loop in its own process, like the logitlab run.

    Both run in the environment logitlab's default path runs in: no variable is set for them.
    """
    command = loop_command(kind, data, batch_size, epochs, out, device, precision)
    wall, rss, _ = run_measured(command, out.with_suffix(".log"), PINNED)
    result = json.loads(out.read_text())
    return {
        **result, "measured_s": result["epoch_s"][1:], "measured_cpu_s": result["epoch_cpu_s"][1:],
        "wall_s": wall, "rss_mb": rss,
    }  # fmt: skip


def turns_round(
    data: Path, splits: Path, batch_size: int, epochs: int, folder: Path, precision: str
) -> dict[str, list[float]]:
    """Every contestant at once, by turns (benchmarks/interleave.py), the bare loop twice (the
    measure's own error): each one's epoch CPU times after the first. CPU only."""
    import interleave

    folder.mkdir(parents=True, exist_ok=True)
    contestants: dict[str, Any] = {}
    for name in (*CONTESTANTS, "bare_again"):
        if name in ("logitlab", "fastpath"):
            run_dir = folder / name
            command = logitlab_command(
                data, splits, batch_size, epochs, run_dir, "cpu", precision, name == "fastpath"
            )
            contestants[name] = (
                command,
                lambda d=run_dir: logged_epochs(d, epochs)["measured_cpu_s"],
            )
        else:
            out = folder / f"{name}.json"
            command = loop_command(name.removesuffix("_again"), data, batch_size, epochs, out,
                                   "cpu", precision)  # fmt: skip
            contestants[name] = (
                command,
                lambda o=out: json.loads(o.read_text())["epoch_cpu_s"][1:],
            )
    return interleave.epochs_by_turns(contestants, folder, PINNED, ROOT)


CONTESTANTS = ("logitlab", "fastpath", "bare", "lightning")
NAMES = {
    "logitlab": "logitlab",
    "fastpath": "logitlab fastpath=true",
    "bare": "bare loop",
    "lightning": "minimal Lightning loop",
}


def running_order(rep: int) -> tuple[str, ...]:
    """The contestants' order in repetition `rep`, rotated so each runs in every position
    equally often: a machine that slows down or speeds up within a repetition favours none."""
    shift = rep % len(CONTESTANTS)
    return CONTESTANTS[shift:] + CONTESTANTS[:shift]


def rep_ratios(runs: list[dict[str, Any]], bare: list[dict[str, Any]]) -> list[float]:
    """Per repetition, the contestant's median epoch over the bare loop's in that repetition.

    Runs of one repetition follow each other within seconds, so they share the machine's
    state; between repetitions a shared 2-core machine can drift by 20 %. The median of these
    paired ratios is the benchmark's ratio: drift between repetitions cancels out of it.
    """
    return [
        statistics.median(r["measured_s"]) / statistics.median(b["measured_s"])
        for r, b in zip(runs, bare, strict=True)
    ]


PAIRED = {
    "ratio": ("logitlab", "bare"),  # logitlab with defaults over the bare loop
    "fastpath_ratio": ("fastpath", "bare"),
    "lightning_ratio": ("lightning", "bare"),  # Lightning's own share
    "over_lightning": ("logitlab", "lightning"),  # what logitlab adds to Lightning's loop
    "fastpath_over_lightning": ("fastpath", "lightning"),
    "fastpath_gain": ("logitlab", "fastpath"),  # what the fast path saves
}


def summarise(
    runs: dict[str, list[dict[str, Any]]], turns: list[dict[str, list[float]]] | None = None
) -> dict[str, Any]:
    """One batch size's medians and paired ratios, from every contestant's sequential runs and
    (`turns`: each round's epoch CPU times by contestant) their rounds by turns."""
    medians = {
        name: statistics.median(t for r in results for t in r["measured_s"])
        for name, results in runs.items()
    }
    paired = PAIRED
    row: dict[str, Any] = {f"{name}_epoch_s": medians[name] for name in runs}
    for key, (ours, reference) in paired.items():
        by_rep = rep_ratios(runs[ours], runs[reference])
        row[key], row[f"{key}_by_rep"] = statistics.median(by_rep), by_rep
    row["ratio_of_medians"] = medians["logitlab"] / medians["bare"]
    # minimum epoch CPU times of the sequential runs (which process was lucky moves them)
    least = {
        name: min(t for r in results for t in r["measured_cpu_s"]) for name, results in runs.items()
    }
    typical = {
        name: statistics.median(t for r in results for t in r["measured_cpu_s"])
        for name, results in runs.items()
    }
    row |= {f"{name}_epoch_cpu_min_s": least[name] for name in runs}
    row |= {f"{name}_epoch_cpu_median_s": typical[name] for name in runs}
    for key, (ours, reference) in paired.items():
        row[f"sequential_cpu_{key}"] = least[ours] / least[reference]
        row[f"sequential_cpu_{key}_of_medians"] = typical[ours] / typical[reference]
    row |= {f"{name}_val_acc": results[-1]["val_acc"] for name, results in runs.items()}
    if turns:  # the figure of merit: epoch CPU times of contestants sharing the machine's noise
        import interleave

        pairs = {**paired, "aa": ("bare_again", "bare")}
        ratios = interleave.rounds_ratios(turns, pairs)
        row |= {f"cpu_{key}": value for key, value in ratios.items()}
        row |= {f"{name}_turns_epoch_cpu_s": t for name, t in interleave.pooled(turns).items()}
    return row


def run_images(args: argparse.Namespace) -> dict[str, Any]:
    """The image-folder contestants (benchmarks/image_folder.py)."""
    import image_folder
    from rich.console import Console

    out = ROOT / "outputs" / "bench"
    epochs = max(args.epochs - 2, 3)  # an image epoch is long: 4 by default, the first warm-up
    return image_folder.run(
        out / "data", out / "runs", epochs, args.reps, run_measured, Console(), args.rounds
    )


def run_workloads(args: argparse.Namespace) -> dict[str, Any]:
    """The CNN and user-Dataset contestants (benchmarks/workloads.py)."""
    import workloads
    from rich.console import Console

    # 6 epochs by default (the first warm-up), --rounds rounds by turns
    return workloads.run(ROOT / "outputs" / "bench", args.epochs, args.rounds, Console())


def run_parts(args: argparse.Namespace) -> dict[str, Any]:
    """The figures of the parts `--parts` names: the MLP, the image folder, the workloads."""
    runs = {"mlp": run_benchmark, "images": run_images, "workloads": run_workloads}
    report: dict[str, Any] = {}
    for part, run in runs.items():
        if part in args.parts:
            report.update(run(args))
    return report


def median_wall(command: list[str], reps: int, log: Path) -> list[float]:
    return [run_measured(command, log)[0] for _ in range(reps)]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the contestants over batch sizes and repetitions; measure start-up too."""
    from rich.console import Console

    console = Console()
    out = ROOT / "outputs" / "bench"
    shutil.rmtree(out / "runs", ignore_errors=True)  # run folders of an earlier benchmark
    # Generated in a child process: Linux counts the memory a process has when it forks a
    # contestant into that contestant's peak RSS, so this process must stay small.
    subprocess.run([sys.executable, __file__, "data", "--out", str(out / "data")], check=True)
    data, splits = make_data(out / "data")  # now only the paths
    device = "cuda" if args.trainer == "gpu" else "cpu"
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "device": device,
        "trainer": args.trainer,
        "precision": args.precision,
        "epochs": args.epochs,
        "reps": args.reps,
        "rounds": args.rounds,
        "workload": f"MLP {FEATURES}-256-128-{CLASSES}, Adam, {N_TRAIN} train + {N_VAL} val",
    }
    if device == "cuda":
        import torch

        report["device"] = torch.cuda.get_device_name(0)
    rss = dict.fromkeys(CONTESTANTS, 0.0)
    for batch_size in args.batch_sizes:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTESTANTS}
        for rep in range(args.reps):
            tag = f"b{batch_size}_r{rep}"
            order = running_order(rep)
            names = ", ".join(NAMES[name] for name in order)
            console.print(f"[bold]batch {batch_size}[/] repetition {rep + 1}/{args.reps}: {names}")
            for name in order:
                if name in ("logitlab", "fastpath"):
                    result = logitlab_run(
                        data, splits, batch_size, args.epochs, out / "runs" / f"{tag}_{name}",
                        args.trainer, args.precision, fastpath=name == "fastpath",
                    )  # fmt: skip
                else:
                    path = out / "runs" / f"{tag}_{name}.json"
                    result = loop_run(
                        name, data, batch_size, args.epochs, path, device, args.precision
                    )
                runs[name].append(result)
        for name in rss:
            rss[name] = max(rss[name], *(r["rss_mb"] for r in runs[name]))
        turns = []
        for turn in range(args.rounds if device == "cpu" else 0):
            console.print(f"[bold]batch {batch_size}[/] by turns, round {turn + 1}/{args.rounds}: "
                          "every contestant, bare twice")  # fmt: skip
            folder = out / "runs" / f"b{batch_size}_turns_r{turn}"
            turns.append(turns_round(data, splits, batch_size, args.epochs, folder, args.precision))
        report[f"b{batch_size}"] = summarise(runs, turns)
        row = report[f"b{batch_size}"]
        report[f"ratio_b{batch_size}"] = row["fastpath_ratio"]
        report[f"lightning_ratio_b{batch_size}"] = row["over_lightning"]
        report[f"defaults_ratio_b{batch_size}"] = row["ratio"]
        if turns:
            report[f"cpu_over_lightning_b{batch_size}"] = row["cpu_over_lightning"]
            report[f"cpu_fastpath_over_bare_b{batch_size}"] = row["cpu_fastpath_ratio"]
            report[f"cpu_aa_b{batch_size}"] = row["cpu_aa"]
    console.print("[bold]start-up[/]: import floor vs `python -m logitlab.train debug=fdr`")
    floor, startup = [], []
    for rep in range(args.reps):
        floor.append(run_measured([sys.executable, "-c", IMPORT_FLOOR], out / "floor.log")[0])
        startup.append(
            run_measured(
                [sys.executable, "-m", "logitlab.train", "debug=fdr",
                 f"hydra.run.dir={out / 'runs' / f'fdr_{rep}'}"],
                out / "fdr.log",
            )[0]
        )  # fmt: skip
    help_s = median_wall(
        [sys.executable, "-m", "logitlab.train", "--help"], args.reps, out / "help.log"
    )
    report.update(
        startup_s=statistics.median(startup),
        import_floor_s=statistics.median(floor),
        help_s=statistics.median(help_s),
        peak_rss_mb=rss,
        rss_over_bare_mb=rss["logitlab"] - rss["bare"],
    )
    report["startup_ratio"] = report["startup_s"] / report["import_floor_s"]
    return report


# Targets on a 2-core CPU: logitlab with defaults against the minimal Lightning loop, and
# logitlab with fastpath=true against the bare loop.
TARGETS = {
    "cpu_over_lightning_b256": 1.05,
    "cpu_over_lightning_b1024": 1.05,
    "cpu_fastpath_over_bare_b256": 1.15,
    "cpu_fastpath_over_bare_b1024": 1.08,
    "cpu_cnn_over_bare": 1.03,
    "cpu_dataset_over_bare": 1.05,
    "cpu_images_over_bare": 1.10,
    "lightning_ratio_b256": 1.05,
    "lightning_ratio_b1024": 1.05,
    "ratio_b256": 1.15,
    "ratio_b1024": 1.08,
    "startup_ratio": 1.25,
    "help_s": 1.5,
    "rss_over_bare_mb": 300.0,
    "images_ratio": 1.10,
    "images_rss_growth": 0.10,
}


def batch_sizes(report: dict[str, Any]) -> list[str]:
    """The report's per-batch-size keys, e.g. ["b256", "b1024"]."""
    return [k for k in report if k.startswith("b") and isinstance(report[k], dict)]


def print_report(report: dict[str, Any]) -> None:
    """The results as a rich table, each against its target."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"logitlab vs bare loop ({report['device']}, {report['machine']})")
    for column in ("measure", "epoch (median)", "against", "ratio", "target", "ok"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for key in batch_sizes(report):
        row, size = report[key], key[1:]
        lines = [
            ("logitlab, defaults", "logitlab", "lightning", "over_lightning",
             TARGETS.get(f"lightning_ratio_{key}")),
            ("logitlab, fastpath=true", "fastpath", "bare", "fastpath_ratio",
             TARGETS.get(f"ratio_{key}")),
            ("logitlab, defaults", "logitlab", "bare", "ratio", None),
            ("minimal Lightning loop", "lightning", "bare", "lightning_ratio", None),
        ]  # fmt: skip
        for label, ours, against, ratio, target in lines:
            table.add_row(
                f"batch {size}: {label}", f"{row[f'{ours}_epoch_s']:.3f} s",
                f"{NAMES[against]} {row[f'{against}_epoch_s']:.3f} s", f"{row[ratio]:.3f}",
                f"<= {target:.2f}" if target else "(reference)", _ok(row[ratio], target),
            )  # fmt: skip
    for key in [k for k in CPU_KEYS if k in report]:  # the figure of merit
        table.add_row(
            key, "median epoch CPU, by turns", "", f"{report[key]:.3f}",
            f"<= {TARGETS[key]:.2f}", _ok(report[key], TARGETS[key]),
        )  # fmt: skip
    for key in [k for k in AA_KEYS if k in report]:  # the measure's own error
        table.add_row(key, "bare loop / itself, by turns", "", f"{report[key]:.3f}", "", "")
    table.add_row(
        "start-up (debug=fdr vs imports)", f"{report['startup_s']:.2f} s",
        f"{report['import_floor_s']:.2f} s", f"{report['startup_ratio']:.3f}", "<= 1.25",
        _ok(report["startup_ratio"], 1.25),
    )  # fmt: skip
    table.add_row(
        "--help", f"{report['help_s']:.2f} s", "", "", "< 1.5 s", _ok(report["help_s"], 1.5)
    )
    rss = report["peak_rss_mb"]
    table.add_row(
        "peak RSS", f"{rss['logitlab']:.0f} MB", f"bare {rss['bare']:.0f} MB",
        f"+{report['rss_over_bare_mb']:.0f} MB", "<= +300 MB",
        _ok(report["rss_over_bare_mb"], 300.0),
    )  # fmt: skip
    if "images_ratio" in report:
        table.add_row(
            "image folder: logitlab, wall", f"{report['images_logitlab_epoch_s']:.3f} s",
            f"ImageFolder loop {report['images_bare_epoch_s']:.3f} s",
            f"{report['images_ratio']:.3f}", "(reference)", "",
        )  # fmt: skip
        small, big = report["images_rss_mb"].values()
        table.add_row(
            "image folder: peak RSS, 5x images", f"{big:.0f} MB", f"{small:.0f} MB",
            f"+{100 * report['images_rss_growth']:.1f} %", "< +10 %",
            _ok(report["images_rss_growth"], 0.10),
        )  # fmt: skip
    table.caption = "ratio: median over repetitions of the ratio paired within a repetition"
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def _ok(value: float, target: float | None) -> str:
    return "" if target is None else ("yes" if value <= target else "NO")


def write_docs(report: dict[str, Any], docs: Path) -> None:
    """docs/benchmarks.md with the table and a PNG bar chart of the median epoch times."""
    import matplotlib
    import pages

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs.mkdir(parents=True, exist_ok=True)
    suffix = "" if report["device"] == "cpu" else "_gpu"
    sizes = batch_sizes(report)
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=120)
    positions = np.arange(len(sizes))
    width = 0.2
    order = ("bare", "lightning", "fastpath", "logitlab")
    for i, name in enumerate(order):
        offset = (i - 1.5) * width
        ax.bar(positions + offset, [report[k][f"{name}_epoch_s"] for k in sizes], width,
               label=NAMES[name])  # fmt: skip
    ax.set_xticks(positions, [f"batch {k[1:]}" for k in sizes])
    tallest = max(report[k][f"{name}_epoch_s"] for k in sizes for name in order)
    ax.set_ylim(0, tallest * 1.35)  # room for the legend above the bars
    ax.set_ylabel("median epoch time (s)")
    ax.set_title(f"MLP 784-256-128-10 on 60k+10k samples ({report['device']})")
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(docs / f"benchmarks{suffix}.png")
    plt.close(fig)

    def reps(values: list[float]) -> str:
        return ", ".join(f"{x:.3f}" for x in values)

    rows = [
        f"| batch {k[1:]} | {r['logitlab_epoch_s']:.3f} s | {r['fastpath_epoch_s']:.3f} s "
        f"| {r['lightning_epoch_s']:.3f} s | {r['bare_epoch_s']:.3f} s "
        f"| **{r['over_lightning']:.3f}** ({reps(r['over_lightning_by_rep'])}) "
        f"| **{r['fastpath_ratio']:.3f}** ({reps(r['fastpath_ratio_by_rep'])}) "
        f"| {r['ratio']:.3f} | {r['lightning_ratio']:.3f} | {r['fastpath_gain']:.3f} "
        f"| {r['logitlab_val_acc']:.4f} / {r['bare_val_acc']:.4f} |"
        for k, r in ((k, report[k]) for k in sizes)
    ]

    def turns(r: dict[str, Any], name: str) -> str:
        return f"{statistics.median(r[f'{name}_turns_epoch_cpu_s']):.3f} s"

    cpu_rows = [
        f"| batch {k[1:]} | {turns(r, 'logitlab')} | {turns(r, 'fastpath')} "
        f"| {turns(r, 'lightning')} | {turns(r, 'bare')} "
        f"| **{r['cpu_over_lightning']:.3f}** ({by_round(r, 'cpu_over_lightning')}) "
        f"| **{r['cpu_fastpath_ratio']:.3f}** ({by_round(r, 'cpu_fastpath_ratio')}) "
        f"| {r['cpu_ratio']:.3f} | {r['cpu_lightning_ratio']:.3f} "
        f"| {r['cpu_aa']:.3f} ({by_round(r, 'cpu_aa')}) "
        f"| {r['sequential_cpu_over_lightning']:.3f} / {r['sequential_cpu_fastpath_ratio']:.3f} |"
        for k, r in ((k, report[k]) for k in sizes)
        if "cpu_aa" in r
    ]
    rss = report["peak_rss_mb"]
    text = "\n".join(
        [
            f"## {report['device']} ({report['machine']}, trainer={report['trainer']}, "
            f"precision={report['precision']})",
            "",
            f"{report['workload']}; {report['epochs']} epochs per run (the first is warm-up and "
            f"not counted), {report['reps']} repetitions, the contestants' order rotating.",
            "",
            "| | logitlab (defaults) | logitlab fastpath=true | minimal Lightning loop "
            "| bare loop | defaults / minimal Lightning (each repetition) "
            "| fastpath / bare (each repetition) | defaults / bare | minimal Lightning / bare "
            "| defaults / fastpath | val acc (logitlab / bare) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "The figure of merit: CPU time per epoch (the process's user + system time, every "
            "contestant on one intra-op thread) with the contestants run by turns "
            "(benchmarks/interleave.py): all five processes start at once on one core (the "
            "load of `--under-load` on the other), all but one stopped, and every 0.05 s the "
            "running one is stopped and the next continued, so every contestant's epochs sample "
            "the same seconds of the machine. "
            f"{report.get('rounds', 1)} rounds, each with new processes (a process keeps its "
            "luck for its life: identical bare loops differ by up to 6 %, below), of "
            f"{report['epochs']} epochs: the medians of all the rounds' epochs after the first, "
            "their ratios (in brackets each round's, and the ratio of the minima); the bare loop "
            "runs twice, and `bare / bare` is the measure's own error. Last column: the ratios "
            "of the minima "
            "of the sequential runs above (defaults / minimal Lightning, fastpath / bare), the "
            "measure this replaced.",
            "",
            "| | logitlab (defaults) | fastpath=true | minimal Lightning | bare loop "
            "| defaults / minimal Lightning | fastpath / bare | defaults / bare "
            "| minimal Lightning / bare | bare / bare | sequential minima |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *cpu_rows,
            "",
            f"Start-up: `python -m logitlab.train debug=fdr` {report['startup_s']:.2f} s vs "
            f'`python -c "{IMPORT_FLOOR}"` {report["import_floor_s"]:.2f} s: ratio '
            f"{report['startup_ratio']:.3f}. `--help`: {report['help_s']:.2f} s. Peak RSS: "
            f"logitlab {rss['logitlab']:.0f} MB, bare loop {rss['bare']:.0f} MB "
            f"(+{report['rss_over_bare_mb']:.0f} MB), minimal Lightning loop "
            f"{rss['lightning']:.0f} MB.",
            "",
            f"![epoch times](benchmarks{suffix}.png)",
            "",
        ]
    )
    if "images_ratio" in report:
        small, big = report["images_rss_mb"].values()
        sizes_text = " vs ".join(f"{int(n):,}" for n in report["images_rss_mb"])
        text += "\n".join(
            [
                "",
                "### Image folders",
                "",
                f"{report['images_workload']}: logitlab (`data=image_folder`, defaults) "
                f"{report['images_logitlab_epoch_s']:.3f} s per epoch vs torchvision's "
                f"`ImageFolder` + `DataLoader` (same transforms and workers) in a plain loop "
                f"{report['images_bare_epoch_s']:.3f} s (median epochs of the sequential "
                "runs). The workers' CPU time is not the training process's, so the figure of "
                "merit counts it: both by turns as above, each epoch's CPU time with its "
                "DataLoader workers' (benchmarks/marks.py's `group_cpu`), "
                f"{report.get('images_turns', {}).get('rounds', 0)} rounds: "
                f"**{report.get('cpu_images_over_bare', float('nan')):.3f}** (each round's "
                f"{reps(report.get('images_turns', {}).get('over_bare_by_round', []))}; "
                "target <= 1.10), the bare loop over itself "
                f"{report.get('cpu_images_aa', float('nan')):.3f}. In wall time, sequential "
                f"runs: the median epochs' ratio {report['images_ratio']:.3f} (paired, "
                f"{reps(report['images_ratio_by_rep'])}), the fastest epochs' "
                f"{report.get('images_ratio_min', float('nan')):.3f}.",
                "",
                f"Peak RSS of a one-epoch image-folder run, folder of {sizes_text} images: "
                f"{small:.0f} MB vs {big:.0f} MB, **{100 * report['images_rss_growth']:+.1f} %** "
                "(target < +10 %): the images are read lazily, only their paths are in memory.",
                "",
            ]
        )
    if "cpu_cnn_over_bare" in report:
        text += workloads_section(report)
    pages.section_file(docs, suffix.lstrip("_")).write_text(text)
    parts = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/bench.py`; the method is in its "
        "docstring). Targets on a 2-core CPU, on the median epoch CPU time of contestants run by "
        "turns (below): logitlab with its "
        "defaults <= 1.05 x the minimal Lightning loop at batch 256 and 1024, and with "
        "`fastpath=true` <= 1.15 x the bare loop at batch 256 and <= 1.08 x at batch 1024; the "
        "CNN <= 1.03 x its bare loop, a user Dataset through `data=dataset` <= 1.05 x a bare "
        "DataLoader loop, an image folder <= 1.10 x torchvision's ImageFolder loop; start-up "
        "<= 1.25 x the import floor, `--help` under 1.5 s, peak RSS within 300 MB of the bare "
        "loop.",
        "",
        "Contestants: logitlab (`python -m logitlab.train` as a user runs it: default "
        "callbacks, TensorBoard, torchmetrics), the same with `fastpath=true`, the bare loop "
        "(plain PyTorch; it never imports Lightning) and a minimal Lightning loop (the same "
        "work in a bare LightningModule, every Trainer extra off, torch asking CUDA directly "
        "for a GPU where NVML does not load, as logitlab runs do): how much of the ratio is "
        "Lightning's own loop. An epoch is timed from one end of epoch to the next: training, "
        "validation, checkpoint writing and logging. Each logitlab run's 5th epoch is one on "
        "which Diagnostics draw their images (every 5th by default): it is counted, and the "
        "median sets it aside as it sets aside any one slow epoch.",
        "",
        "Ratios are paired: in each repetition the contestants run one after the other (in a "
        "rotating order), and the repetition's ratio is one median epoch over another's; the "
        "ratio reported is the median of these. A shared 2-core machine drifts by up to 20 % "
        "between repetitions, which moves the pooled medians but not the paired ratios.",
        "",
        "In-memory data reaches the model as whole tensor batches (data/loaders.py's "
        "`TensorBatches`): one `index_select` per shuffled batch, which gathers whole rows about "
        "3x faster than `x[index]` on the CPU, and no per-sample collate.",
        "",
    ]
    pages.assemble("\n".join(parts) + "\n", docs)


def by_round(r: dict[str, Any], key: str) -> str:
    """A ratio's rounds by turns, each round's, then the ratio of the pooled minima."""
    rounds = ", ".join(f"{x:.3f}" for x in r.get(f"{key}_by_round", []))
    return f"{rounds}; minima {r[f'{key}_min']:.3f}".lstrip("; ")


def workloads_section(report: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the CNN and user-Dataset workloads (workloads.py)."""
    rows = []
    for name, title, target in (("cnn", "CNN on 28x28 images", 1.03),
                                ("dataset", "user Dataset, `data=dataset`", 1.05)):  # fmt: skip
        r = report[name]
        typical = r["epoch_cpu_median_s"]
        rows.append(
            f"| {title} | {typical['logitlab']:.3f} s | {typical['bare']:.3f} s "
            f"| **{r['over_bare']:.3f}** ({by_round(r, 'over_bare')}) | {target:.2f} "
            f"| {r['aa']:.3f} ({by_round(r, 'aa')}) |"
        )
    return "\n".join([
        "",
        "### The workloads researchers run",
        "",
        "`python benchmarks/bench.py --parts workloads` (benchmarks/workloads.py): each "
        "against its bare-PyTorch equal, batch 256, one intra-op thread, by turns as above "
        f"(logitlab, the bare loop and the bare loop again), {report.get('workload_rounds', 2)} "
        f"rounds of {report.get('workload_epochs', 6)} epochs (the first of each left out): "
        "median epoch CPU times of all the rounds and their ratio (in brackets each round's, "
        "and the ratio of the minima).",
        "",
        "| workload | logitlab | bare | logitlab / bare | target | bare / bare |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *dataset_split(report.get("dataset", {})),
    ])  # fmt: skip


def dataset_split(r: dict[str, Any]) -> list[str]:
    """The user-Dataset workload's ratio split at the minimal Lightning loop, with
    `fastpath=true` beside it (lines for workloads_section; none from an earlier report)."""
    keys = ("over_lightning", "lightning_over_bare", "fastpath_over_bare")
    if not all(key in r for key in keys):
        return []
    typical = r["epoch_cpu_median_s"]
    cells = " | ".join(f"**{r[key]:.3f}** ({by_round(r, key)})" for key in keys)
    return [
        "The user Dataset's contestants also held logitlab with `fastpath=true` and the minimal "
        "Lightning loop over the same DataLoaders (bench.py's, standardising in its steps): "
        "the share of logitlab's ratio that is Lightning's own loop, which no setting of "
        "logitlab's removes.",
        "",
        "| logitlab | fastpath=true | minimal Lightning | bare | logitlab / minimal Lightning "
        "| minimal Lightning / bare | fastpath / bare |",
        "|---|---|---|---|---|---|---|",
        f"| {typical['logitlab']:.3f} s | {typical['fastpath']:.3f} s "
        f"| {typical['lightning']:.3f} s | {typical['bare']:.3f} s | {cells} |",
        "",
    ]


CPU_KEYS = (
    "cpu_over_lightning_b256", "cpu_over_lightning_b1024", "cpu_fastpath_over_bare_b256",
    "cpu_fastpath_over_bare_b1024", "cpu_cnn_over_bare", "cpu_dataset_over_bare",
    "cpu_images_over_bare",
)  # fmt: skip
AA_KEYS = ("cpu_aa_b256", "cpu_aa_b1024", "cpu_cnn_aa", "cpu_dataset_aa", "cpu_images_aa")
WALL_KEYS = ("lightning_ratio_b256", "lightning_ratio_b1024", "ratio_b256", "ratio_b1024")


def agreement(idle: dict[str, Any], loaded: dict[str, Any]) -> str:
    """One line: how far the figures of merit moved under load, against the 3 % asked of them."""
    moved = {k: abs(loaded[k] / idle[k] - 1) for k in CPU_KEYS if k in idle and k in loaded}
    if not moved:
        return "No figure of merit in both runs."
    worst = max(moved, key=moved.__getitem__)
    verdict = "within" if moved[worst] <= 0.03 else "beyond"
    return (
        f"The {len(moved)} figures of merit moved by at most {100 * moved[worst]:.1f} % under "
        f"load (`{worst}`): {verdict} the 3 % they should agree within."
    )


def contestant_epochs(report: dict[str, Any]) -> dict[str, float]:
    """Each contestant's median epoch CPU time by turns in a report, e.g. "b256 bare"."""
    found = {}
    for size in batch_sizes(report):
        for name in (*CONTESTANTS, "bare_again"):
            if times := report[size].get(f"{name}_turns_epoch_cpu_s"):
                found[f"{size} {name}"] = statistics.median(times)
    for workload in ("cnn", "dataset", "images_turns"):
        for name, median in report.get(workload, {}).get("epoch_cpu_median_s", {}).items():
            found[f"{workload.removesuffix('_turns')} {name}"] = median
    return found


def load_section(idle: dict[str, Any], loaded: dict[str, Any], reps: int) -> str:
    """docs/benchmarks.md's section of both runs' ratios side by side."""
    before, after = contestant_epochs(idle), contestant_epochs(loaded)
    epochs = [
        f"| {key} | {before[key]:.3f} s | {after[key]:.3f} s "
        f"| {100 * (after[key] / before[key] - 1):+.1f} % |"
        for key in before
        if key in after
    ]
    rows = []
    for key in (*CPU_KEYS, *AA_KEYS, *WALL_KEYS):
        if key in idle and key in loaded:
            change = loaded[key] / idle[key] - 1
            rows.append(
                f"| `{key}` | {idle[key]:.3f} | {loaded[key]:.3f} | {100 * change:+.1f} % |"
            )
    return "\n".join(
        [
            "## Idle and under load",
            "",
            "`make bench` on an idle machine, then `python benchmarks/bench.py --under-load "
            "--parts mlp workloads images` with a CPU-bound process of its own spinning on "
            "the first core for the whole run (benchmarks/load.py). `cpu_*`: the ratio of "
            "the contestants' median epoch CPU times, run by turns (benchmarks/interleave.py) on "
            "the other core, every contestant on one intra-op thread; `cpu_*aa*`: the bare loop "
            "against itself by turns (1 would be no error); the others: the paired wall-time "
            f"ratios of the sequential runs ({reps} repetitions), which the load is expected "
            "to move.",
            "",
            "| ratio | idle | under load | change |",
            "|---|---|---|---|",
            *rows,
            "",
            agreement(idle, loaded),
            "Whether the load itself slows the contestants' core is measured apart, block by "
            "block, in the same seconds of the host (benchmarks/contention.py, the next "
            "section); the two runs are minutes apart, and each contestant's median epoch CPU "
            "time moved between them by:",
            "",
            "| contestant | idle run | loaded run | change |",
            "|---|---|---|---|",
            *epochs,
            "",
        ]
    )


def run_under_load(args: argparse.Namespace) -> None:
    """The contestants again with one core kept busy (`--parts`: which of them); both runs'
    ratios side by side."""
    from load import busy_core

    out = ROOT / "outputs" / "bench"
    path = out / "latest_loaded.json"
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    with busy_core():
        loaded.update(run_parts(args))
    path.write_text(json.dumps(loaded, indent=2) + "\n")
    idle = json.loads((out / "latest.json").read_text()) if (out / "latest.json").is_file() else {}
    text = load_section(idle, loaded, args.reps)
    import pages

    pages.section_file(ROOT / "docs", "load").write_text(text)
    if idle:
        write_docs(idle, ROOT / "docs")  # docs/benchmarks.md with this section in it
    print(text)


def main(argv: list[str] | None = None) -> None:
    """`python benchmarks/bench.py [--epochs N] [--reps N] [--batch-sizes ...] [--trainer gpu]`."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command")
    generate = sub.add_parser("data", help="write the benchmark's data (internal)")
    generate.add_argument("--out", type=Path, required=True)
    loop = sub.add_parser("loop", help="run the bare or minimal-Lightning loop once (internal)")
    loop.add_argument("--kind", choices=sorted(LOOPS), required=True)
    loop.add_argument("--data", type=Path, required=True)
    loop.add_argument("--batch-size", type=int, required=True)
    loop.add_argument("--epochs", type=int, required=True)
    loop.add_argument("--out", type=Path, required=True)
    loop.add_argument("--device", default="cpu")
    loop.add_argument("--precision", default="32-true")
    parser.add_argument(
        "--epochs", type=int, default=6, help="epochs per run, the first is warm-up"
    )
    parser.add_argument(
        "--reps", type=int, default=2, help="sequential repetitions per contestant (wall time)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="rounds by turns (new processes each) for the CPU-time figures of merit",
    )  # fmt: skip
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--trainer", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--precision", default=None, help="default 32-true (cpu), bf16-mixed (gpu)")
    parser.add_argument(
        "--parts", nargs="+", default=["mlp", "images", "workloads"],
        choices=("mlp", "images", "workloads"),
        help="which contestants run (the others' figures are kept from latest.json)",
    )  # fmt: skip
    parser.add_argument(
        "--under-load", action="store_true",
        help="the contestants of --parts with a CPU-bound process on one core (load.py): "
        "outputs/bench/latest_loaded.json, compared with latest.json in docs/benchmarks.md",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1 round by turns is needed")
    if args.command == "data":
        make_data(args.out)
        return
    if args.command == "loop":
        run = LOOPS[args.kind]
        result = run(args.data, args.batch_size, args.epochs, args.device, args.precision)
        args.out.write_text(json.dumps(result))
        return
    args.batch_sizes = args.batch_sizes or ([1024, 8192] if args.trainer == "gpu" else [256, 1024])
    args.precision = args.precision or ("bf16-mixed" if args.trainer == "gpu" else "32-true")
    if args.under_load:
        run_under_load(args)
        return
    name = "latest.json" if args.trainer == "cpu" else "latest_gpu.json"
    path = ROOT / "outputs" / "bench" / name
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update(run_parts(args))
    if "b256" not in report and "b1024" not in report and not batch_sizes(report):
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written: {path} (run --parts mlp too for docs/benchmarks.md)")
        return
    path.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    write_docs(report, ROOT / "docs")
    print(f"written: {path}, docs/benchmarks.md")


if __name__ == "__main__":
    main()
