"""`python benchmarks/bench.py --parts workloads`: the workloads researchers run, each against
its bare-PyTorch equal in the same run, on the figure of merit of benchmarks/bench.py (the
median epoch CPU time of contestants run by turns, one intra-op thread each).

- cnn: logitlab's CNN (model/net=cnn: 3x3 convs of 32 and 64 channels, 2x2 max-pools, a
  128-unit head with dropout) on 6,000 shifted 28x28 digits (`data=npz`, in memory, per-channel
  standardisation), Adam 1e-3, batch 256, against the same network (logitlab.models.nets.CNN,
  plain PyTorch; Lightning is never imported) in a plain loop over the same batches.
- dataset: a user's map-style Dataset of 784-feature rows (benchmarks/rows.py) through
  `data=dataset` (a DataLoader, per-sample reads, default collate, per-feature
  standardisation) and the benchmark's MLP, against a plain DataLoader loop over it; beside
  them logitlab with `fastpath=true` and the minimal Lightning loop (bench.py's, over the same
  DataLoaders): how much of logitlab's ratio is Lightning's own loop.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import bench
import marks
import numpy as np

N_IMAGES, N_ROWS, N_VAL = 6000, 20000, 1000
BATCH = 256
WORKLOADS = ("cnn", "dataset")
# each workload's contestants beside logitlab's defaults and its bare loop (twice)
EXTRA = {"cnn": (), "dataset": ("fastpath", "lightning")}
RATIOS = {"over_bare": ("logitlab", "bare"), "aa": ("bare_again", "bare"),
          "fastpath_over_bare": ("fastpath", "bare"), "over_lightning": ("logitlab", "lightning"),
          "lightning_over_bare": ("lightning", "bare")}  # fmt: skip
CNN = {"channels": (32, 64), "hidden": 128, "dropout": 0.25}  # conf/model/net/cnn.yaml


def make_data(folder: Path) -> dict[str, Path]:
    """The CNN's images (.npz, uint8 1x28x28, a splits file) and the Dataset's rows (.npz with
    its split indices), written once."""
    from logitlab.data.synthetic import shifted_digits

    images, splits = folder / "digits28.npz", folder / "digits28_splits.npz"
    rows = folder / "rows.npz"
    if not images.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        x, y = shifted_digits(N_IMAGES + N_VAL, seed=5)
        np.savez(images, x=x[:, None], y=y)
        index = np.arange(N_IMAGES + N_VAL)
        np.savez(splits, n=np.array(len(y)), train=index[:N_IMAGES], val=index[N_IMAGES:],
                 test=index[N_IMAGES:][:100])  # fmt: skip
    if not rows.is_file():
        data, _ = bench.make_data(folder)
        with np.load(data) as npz:
            x, y = npz["x"][: N_ROWS + N_VAL], npz["y"][: N_ROWS + N_VAL]
        index = np.arange(N_ROWS + N_VAL)
        np.savez(rows, x=x, y=y, train=index[:N_ROWS], val=index[N_ROWS:],
                 test=index[N_ROWS:][:100])  # fmt: skip
    return {"images": images, "splits": splits, "rows": rows}


def overrides(workload: str, data: dict[str, Path], epochs: int, run_dir: Path) -> list[str]:
    """logitlab's command line for a workload: its data and network, everything else default."""
    common = [f"data.batch_size={BATCH}", f"trainer.max_epochs={epochs}", "test=false",
              f"hydra.run.dir={run_dir}"]  # fmt: skip
    if workload == "cnn":
        return ["data=npz", f"data.path={data['images']}", f"data.splits_file={data['splits']}",
                "model/net=cnn", *common]  # fmt: skip
    spec = "{{_target_:rows.Rows,path:{path},part:{part}}}"
    parts = {p: spec.format(path=data["rows"], part=p) for p in ("train", "val", "test")}
    return ["data=dataset", *(f"data.{p}={spec}" for p, spec in parts.items()),
            "model.net.hidden_sizes=[256,128]", "model.net.dropout=0.0", *common]  # fmt: skip


def bare(workload: str, data: dict[str, Path], epochs: int) -> dict[str, Any]:
    """The workload's plain-PyTorch loop: the same network, optimizer, batches, standardisation
    and validation pass, nothing around them."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(bench.THREADS)
    if workload == "cnn":
        from logitlab.models.nets import CNN as Net  # plain torch: Lightning is not imported

        with np.load(data["images"]) as npz:
            x = torch.from_numpy(npz["x"]).float().div_(255.0)
            y = torch.from_numpy(npz["y"]).long()
        mean, std = x[:N_IMAGES].mean(), x[:N_IMAGES].std()
        x = x.sub_(mean).div_(std)
        model = Net((1, 28, 28), bench.CLASSES, **CNN)  # type: ignore[arg-type]
        train = [(x[:N_IMAGES], y[:N_IMAGES])]
        val = [(x[N_IMAGES:], y[N_IMAGES:])]
        n_train = N_IMAGES
    else:
        from torch.utils.data import DataLoader

        train_set, val_set, mean, std = rows_and_stats(data)
        model = bench._mlp()
        n_train = len(train_set)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, cpu, val_acc = [], [], 0.0
    for epoch in range(epochs):
        if epoch == 1:
            marks.count_from_here()  # counted in instructions from here (instructions.py)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        generator = torch.Generator().manual_seed(epoch)
        if workload == "cnn":
            order = torch.randperm(n_train, generator=generator)
            batches = (
                (train[0][0].index_select(0, i), train[0][1].index_select(0, i))
                for i in order.split(BATCH)
            )
            val_batches: Any = ((val[0][0][i : i + 1024], val[0][1][i : i + 1024])
                                for i in range(0, N_VAL, 1024))  # fmt: skip
        else:
            batches = DataLoader(train_set, BATCH, shuffle=True, generator=generator)
            val_batches = DataLoader(val_set, 256)  # conf/data/dataset.yaml's eval_batch_size
        for inputs, targets in batches:
            if workload == "dataset":
                inputs = (inputs - mean) / std
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct, seen = 0, 0
        with torch.no_grad():
            for inputs, targets in val_batches:
                if workload == "dataset":
                    inputs = (inputs - mean) / std
                correct += int((model(inputs).argmax(1) == targets).sum())
                seen += len(targets)
        val_acc = correct / seen
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    marks.count_to_here()
    return {"epoch_s": times, "epoch_cpu_s": cpu, "val_acc": val_acc}


def rows_and_stats(data: dict[str, Path]) -> tuple[Any, Any, Any, Any]:
    """The Dataset workload's train and val splits, and the train split's per-feature mean and
    standard deviation (a constant feature's taken as 1), as logitlab standardises."""
    from rows import Rows

    train_set, val_set = Rows(str(data["rows"]), "train"), Rows(str(data["rows"]), "val")
    mean, std = train_set.x.mean(0), train_set.x.std(0)
    std[std == 0] = 1.0
    return train_set, val_set, mean, std


def minimal_lightning(data: dict[str, Path], epochs: int) -> dict[str, Any]:
    """The Dataset workload's bare loop as bench.py's minimal Lightning loop: the same network,
    DataLoaders and standardisation in a bare LightningModule, every Trainer extra off."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    torch.set_num_threads(bench.THREADS)
    train_set, val_set, mean, std = rows_and_stats(data)

    class Minimal(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = bench._mlp()
            self.correct = torch.zeros(())

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return F.cross_entropy(self.net((batch[0] - mean) / std), batch[1])

        def on_validation_epoch_start(self) -> None:
            self.correct = torch.zeros(())

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.correct += (self.net((batch[0] - mean) / std).argmax(1) == batch[1]).sum()

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    model = Minimal()
    train = DataLoader(train_set, BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    times, cpu = bench.minimal_fit(model, train, DataLoader(val_set, 256), epochs, "cpu", "32-true")
    return {"epoch_s": times, "epoch_cpu_s": cpu, "val_acc": model.correct.item() / len(val_set)}


def contestants_of(
    workload: str, data: dict[str, Path], epochs: int, folder: Path, out: Path
) -> dict[str, Any]:
    """A round's contestants: (command, reader of its counted epochs' CPU seconds) by name."""
    contestants: dict[str, Any] = {}
    for name in ("logitlab", *[n for n in EXTRA[workload] if n == "fastpath"]):
        run_dir = folder / name
        command = [sys.executable, "-m", "logitlab.train",
                   *overrides(workload, data, epochs, run_dir),
                   *(["fastpath=true"] if name == "fastpath" else [])]  # fmt: skip
        contestants[name] = (
            command,
            lambda d=run_dir: bench.logged_epochs(d, epochs)["measured_cpu_s"],
        )
    for name in ("bare", "bare_again", *[n for n in EXTRA[workload] if n == "lightning"]):
        result = folder / f"{name}.json"
        loop = "lightning" if name == "lightning" else "bare"
        command = [sys.executable, __file__, workload, str(out / "data"), str(epochs),
                   str(result), loop]  # fmt: skip
        contestants[name] = (command, lambda r=result: json.loads(r.read_text())["epoch_cpu_s"][1:])
    return contestants


def run(
    out: Path, epochs: int, rounds: int, console: Any, names: tuple[str, ...] = WORKLOADS
) -> dict[str, Any]:
    """Each workload's contestants by turns (benchmarks/interleave.py), the bare loop twice (the
    measure's own error), over `rounds` rounds: the ratios of the median epoch CPU times (of the
    minima beside them)."""
    import interleave

    data = make_data(out / "data")
    shutil.rmtree(out / "workloads", ignore_errors=True)  # run folders of an earlier benchmark
    env = {**bench.PINNED, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    report: dict[str, Any] = {"workload_rounds": rounds, "workload_epochs": epochs}
    for workload in names:
        by_round: list[dict[str, list[float]]] = []
        for turn in range(rounds):
            folder = out / "workloads" / f"{workload}_r{turn}"
            folder.mkdir(parents=True)
            contestants = contestants_of(workload, data, epochs, folder, out)
            console.print(f"[bold]{workload}[/] by turns, round {turn + 1}/{rounds}: "
                          + ", ".join(contestants))  # fmt: skip
            by_round.append(interleave.epochs_by_turns(contestants, folder, env, bench.ROOT))
        names = set(by_round[0])
        pairs = {key: pair for key, pair in RATIOS.items() if set(pair) <= names}
        ratios = interleave.rounds_ratios(by_round, pairs)
        cpu = interleave.pooled(by_round)
        for key in pairs:
            report[f"cpu_{workload}_{key}"] = ratios[key]
        report[workload] = {
            **ratios,
            "epoch_cpu_median_s": {n: statistics.median(t) for n, t in cpu.items()},
            "epoch_cpu_min_s": {n: min(t) for n, t in cpu.items()},
            "turns_epoch_cpu_s": cpu,
        }
    return report


if __name__ == "__main__":  # internal: `workloads.py WORKLOAD DATA_DIR EPOCHS OUT.json [LOOP]`
    workload, folder, epochs, result_path = sys.argv[1:5]
    paths = make_data(Path(folder))
    if sys.argv[5:] == ["lightning"]:  # the dataset's minimal Lightning loop
        result = minimal_lightning(paths, int(epochs))
    else:
        result = bare(workload, paths, int(epochs))
    Path(result_path).write_text(json.dumps(result))
