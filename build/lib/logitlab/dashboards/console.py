"""What a run tells the terminal: its config at the start, its results and next steps at the end."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# The config groups in the order a reader scans them; the rest (paths, flags) follow.
ORDER = ("data", "model", "loss", "optimizer", "metrics", "trainer", "callbacks", "logger")


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 110, highlight=False)


def config_tree(cfg: DictConfig) -> Any:
    """The composed config (resolved, Hydra's own node left out) as a rich Tree."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("[bold]config[/]")
    job = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    keys = [k for k in ORDER if k in job] + [str(k) for k in job if k not in ORDER]
    for key in keys:
        value = job[key]
        if isinstance(value, DictConfig):
            branch = tree.add(f"[bold]{key}[/]")
            text = OmegaConf.to_yaml(value, resolve=True).rstrip()
            branch.add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
        else:
            tree.add(f"{key}: {OmegaConf.to_yaml(OmegaConf.create({key: value}), resolve=True)}"
                     .split(": ", 1)[1].strip())  # fmt: skip
    return tree


def print_config(cfg: DictConfig) -> None:
    """Print the config tree (extras.print_config)."""
    _console().print(config_tree(cfg))


def results_table(metrics: dict[str, float], run_dir: str | Path) -> Any:
    """The run's test (and best validation) metrics as a rich Table."""
    from rich.table import Table

    table = Table(title="results", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    shown = [n for n in metrics if n.startswith("test/") and "/" not in n[5:]]
    shown += [n for n in ("val/acc_best",) if n in metrics]
    for name in shown:
        table.add_row(name, f"{metrics[name]:.4f}")
    return table


def next_steps(run_dir: str | Path) -> list[str]:
    """The commands that open the run: TensorBoard, eval and predict."""
    folder = shlex.quote(str(run_dir))
    return [
        f"make tensorboard                (or: tensorboard --logdir {folder})",
        f"python -m logitlab.eval run_dir={folder}",
        f"python -m logitlab.predict run_dir={folder} input=<file or folder>",
    ]


def print_results(metrics: dict[str, float], run_dir: str | Path) -> None:
    """The end-of-run table and the commands to go on with."""
    console = _console()
    if any(n.startswith(("test/", "val/")) for n in metrics):
        console.print(results_table(metrics, run_dir))
    console.print(f"run folder: {run_dir}", soft_wrap=True)
    console.print("next:\n  " + "\n  ".join(next_steps(run_dir)), soft_wrap=True)
