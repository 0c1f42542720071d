"""What a run is called on the dashboards, and which of its hyperparameters they show.

A run's name is made from its command-line overrides: a sweep job's swept values
(`optimizer.lr=0.01,loss=nll`; the keys every job shares are left out through Hydra's
`hydra.job.config.override_dirname.exclude_keys`), a single run's overrides (`defaults` when
there are none), then its tags in brackets. Paths and I/O flags never name a run.

The hyperparameters are the ones that change a result: the overridden keys first (marked for
TensorBoard's HPARAMS table, which puts and ticks them first), then the config group choices,
the network (its `_target_` included), the loss, the optimizer, the data and the trainer
settings that matter. Paths, I/O flags and interpolated copies (`model.optimizer`, `data.seed`)
are left out. No torch import: this runs before and after training alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

from logitlab.run.layout import RunFolder

# Keys that say where things are or how they are shown, never what was trained.
NOT_HYPERPARAMETERS = frozenset(
    {
        "resume", "run_name", "tags", "task_name", "train", "test", "ckpt", "extras",
        "extras.print_config", "fastpath", "compile", "lr_find", "lr_find_apply",
        "optimized_metric", "paths", "logger", "debug", "hparams_search",
        "data.root", "data.path", "data.data_dir", "data.download", "data.splits_file",
        "data.stats_file", "data.num_workers", "data.loader", "data.pin_memory",
        "data.persistent_workers", "data.eval_batch_size", "data.class_names",
        "data.stats_samples", "data.seed", "model.net.weights_path",
        "trainer.enable_progress_bar", "trainer.enable_model_summary",
        "trainer.log_every_n_steps", "trainer.default_root_dir", "trainer.profiler",
        "trainer.enable_checkpointing", "trainer.num_sanity_val_steps", "trainer.plugins",
        "trainer.enable_autolog_hparams", "trainer.model_registry",
    }
)  # fmt: skip
# The config groups whose chosen option is a column of its own.
GROUPS = (
    "experiment", "data", "model", "model/net", "loss", "optimizer", "scheduler", "trainer",
    "metrics",
)  # fmt: skip
# Trainer settings that change what is trained (the rest is how it runs or is shown).
TRAINER_KEYS = (
    "max_epochs", "max_steps", "precision", "devices", "num_nodes", "accumulate_grad_batches",
    "gradient_clip_val", "gradient_clip_algorithm", "deterministic",
)  # fmt: skip
MAX_NAME = 120
_REFERENCE = re.compile(r"^\$\{[\w.]+\}$")  # ${other.key}: a copy of another value


def hydra_record(run_dir: str | Path) -> DictConfig:
    """The run's `.hydra/hydra.yaml` (a resume's is the run's own), else the live Hydra config."""
    from hydra.core.hydra_config import HydraConfig

    path = RunFolder(run_dir).hydra / "hydra.yaml"
    if path.is_file():
        return OmegaConf.load(path).hydra
    live: Any = HydraConfig.get() if HydraConfig.initialized() else OmegaConf.create({})
    return live


def overrides_of(record: DictConfig) -> list[tuple[str, str]]:
    """(key, value) of each command-line override, in the order given; `+`/`++` dropped."""
    pairs = []
    for line in OmegaConf.select(record, "overrides.task", default=[]) or []:
        key, _, value = str(line).partition("=")
        if not key.startswith("~"):
            pairs.append((key.lstrip("+"), value))
    return pairs


def _is_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith(("~", "."))


def _named(key: str) -> bool:
    """Whether an override of `key` can name a run or be a hyperparameter."""
    dotted = key.replace("/", ".")
    parts = dotted.split(".")
    return not any(".".join(parts[: i + 1]) in NOT_HYPERPARAMETERS for i in range(len(parts)))


def _short(value: str) -> str:
    """A float as 4 significant digits (Optuna's 0.0012345678 -> 0.001235); the rest as given."""
    try:
        number = float(value)
    except ValueError:
        return value.strip("'\"")
    if re.fullmatch(r"[+-]?\d+", value) or number != number:
        return value
    return f"{number:.4g}"


def run_name(run_dir: str | Path, tags: Iterable[Any] = ()) -> str:
    """The run's name on the dashboards: its (swept) overrides, then its tags in brackets."""
    record = hydra_record(run_dir)
    excluded = set(
        OmegaConf.select(record, "job.config.override_dirname.exclude_keys", default=[]) or []
    )
    parts = [
        f"{key.replace('/', '.')}={_short(value)}"
        for key, value in overrides_of(record)
        if key not in excluded and _named(key) and not _is_path(value)
    ]
    name = ",".join(parts) or "defaults"
    labels = [re.sub(r"[^\w.+-]", "_", str(tag)) for tag in tags]
    if labels:
        name += "[" + ",".join(labels) + "]"
    name = re.sub(r"[^\w.,=+\-\[\]:@]", "_", name)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."


def hyperparameters(cfg: DictConfig, run_dir: str | Path) -> tuple[dict[str, Any], list[str]]:
    """The run's hyperparameters as {key: value} in display order, and the keys it compares:
    its overrides, less those every job of its sweep shares.

    Keys are written as on the command line (`optimizer.lr`, `loss`), groups with a dot
    (`model.net`: the option chosen). Values are numbers, booleans or short strings.
    """
    record = hydra_record(run_dir)
    choices = {str(k): v for k, v in (OmegaConf.select(record, "runtime.choices") or {}).items()}
    shared = set(  # a sweep's keys that every job has alike (launch.py): not what it compares
        OmegaConf.select(record, "job.config.override_dirname.exclude_keys", default=[]) or []
    )
    values: dict[str, Any] = {}
    first: list[str] = []
    for key, _ in overrides_of(record):
        if not _named(key) or key.replace("/", ".") in values:
            continue
        value = choices.get(key) if key in choices else OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str) and _is_path(value):
            continue
        values[key.replace("/", ".")] = _plain(value)
        if key not in shared:
            first.append(key.replace("/", "."))
    for group in GROUPS:  # `model/net` is written model.net: a `/` makes folders in MLflow's store
        if choices.get(group) is not None and group.replace("/", ".") not in values:
            values[group.replace("/", ".")] = choices[group]
    _walk(cfg, "model.net", values)
    _walk(cfg, "loss", values, skip=("name", "head", "input", "weight", "pos_weight"))
    _walk(cfg, "optimizer", values)
    _walk(cfg, "scheduler", values)
    _walk(cfg, "model", values, skip=("net", "optimizer", "scheduler", "num_classes", "_target_"))
    binary = OmegaConf.select(cfg, "loss.head") == "binary"
    data_skip = ("source", "_target_") if binary else ("source", "_target_", "positive_classes")
    _walk(cfg, "data", values, skip=data_skip)
    for key in TRAINER_KEYS:
        value = OmegaConf.select(cfg, f"trainer.{key}", default=None)
        if value is not None and f"trainer.{key}" not in values:
            values[f"trainer.{key}"] = _plain(value)
    values.setdefault("seed", cfg.get("seed"))
    tags = [str(t) for t in cfg.get("tags") or []]
    if tags:
        values["tags"] = ",".join(tags)
    return values, first


def _walk(cfg: DictConfig, prefix: str, values: dict[str, Any], skip: Iterable[str] = ()) -> None:
    node = OmegaConf.select(cfg, prefix, default=None)
    if not isinstance(node, DictConfig):
        return
    for key in map(str, node):
        name = f"{prefix}.{key}"
        if key in skip or name in values or not _named(name) or key in ("in_shape", "num_outputs"):
            continue
        raw = cast(dict, OmegaConf.to_container(node, resolve=False))[key]
        if isinstance(raw, str) and _REFERENCE.match(raw):
            continue  # a copy of another key's value
        value = node.get(key)
        if isinstance(value, DictConfig):
            _walk(cfg, name, values)
        elif value is not None and not (isinstance(value, str) and _is_path(value)):
            values[name] = _plain(value)


def _plain(value: Any) -> Any:
    """A value TensorBoard, MLflow and W&B all show: number, bool or string."""
    if isinstance(value, ListConfig | DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def event_folder(run_dir: str | Path) -> Path | None:
    """The folder of the run's TensorBoard event files (`<run>/tensorboard/<name>/`), if any."""
    root = Path(run_dir) / "tensorboard"
    found = sorted(root.rglob("events.out.tfevents.*")) if root.is_dir() else []
    return found[0].parent if found else None


def dashboard_name(run_dir: str | Path, tags: Iterable[Any] = ()) -> str:
    """The name a run logs under: the one it already has (a resume, a requeue), or a new one."""
    folder = event_folder(run_dir)
    if folder is not None:
        return folder.relative_to(Path(run_dir) / "tensorboard").as_posix()
    return run_name(run_dir, tags)
