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


def config_tree(cfg: DictConfig, changed: dict[str, Any] | None = None) -> Any:
    """The composed config (resolved, Hydra's own node left out) as a rich Tree; with `changed`
    (config.compose.changes), the chosen groups and only the values that differ from them."""
    from rich.markup import escape
    from rich.syntax import Syntax
    from rich.tree import Tree

    if changed is not None:
        tree = Tree(
            "[bold]config[/] (what differs from the defaults; all: extras.print_config=full)"
        )
        groups = changed.pop("groups", {})
        first = [g for g in groups if g.split("/")[0] in ORDER]
        order = sorted(first, key=lambda g: ORDER.index(g.split("/")[0])) + [
            g for g in groups if g not in first
        ]
        tree.add("groups: " + " ".join(f"{group}={groups[group]}" for group in order))
        values = tree.add("set" if changed else "set: nothing (the groups' defaults)")
        for key, value in changed.items():
            values.add(escape(f"{key}: {_yaml_value(value)}"))  # [a, b] is not rich markup
        return tree
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
            tree.add(escape(f"{key}: {_yaml_value(value)}"))
    return tree


def _yaml_value(value: Any) -> str:
    """A value as YAML writes it on one line (`null`, `[64, 32]`, `0.001`)."""
    import yaml

    plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    text = yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def print_config(cfg: DictConfig, changed: dict[str, Any] | None = None) -> None:
    """Print the config tree (extras.print_config: true = what differs, full = all of it)."""
    _console().print(config_tree(cfg, changed))


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


def next_steps(run_dir: str | Path, output_root: str | Path = "outputs") -> list[str]:
    """The commands that open the run: TensorBoard on the output root it went to, eval, predict."""
    folder = shlex.quote(str(run_dir))
    run, root = Path(run_dir).resolve(), Path(output_root)
    if run.is_relative_to(Path("outputs").resolve()):  # what `make tensorboard` serves
        board = "make tensorboard"
    else:  # the output root it went to, or the run itself when it lies elsewhere
        where = root if run.is_relative_to(root.resolve()) else Path(run_dir)
        board = f"make tensorboard LOGDIR={shlex.quote(str(where))}"
    return [
        f"{board:<31} (or: tensorboard --logdir {folder})",
        f"python -m logitlab.eval run_dir={folder}",
        f"python -m logitlab.predict run_dir={folder} input=<file or folder>",
    ]


def print_results(
    metrics: dict[str, float], run_dir: str | Path, output_root: str | Path = "outputs"
) -> None:
    """The end-of-run table and the commands to go on with."""
    console = _console()
    if any(n.startswith(("test/", "val/")) for n in metrics):
        console.print(results_table(metrics, run_dir))
    console.print(f"run folder: {run_dir}", soft_wrap=True)
    steps = next_steps(run_dir, output_root)
    console.print("next:\n  " + "\n  ".join(steps), soft_wrap=True)
