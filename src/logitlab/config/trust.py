"""What a run folder's files may build: each `_target_` a class of the kind its place holds.

A run folder is data: a researcher downloads or receives it. Its `.hydra/config.yaml` and its
checkpoints' hyperparameters name `_target_`s that eval, predict, calibrate and resume build, so
each is checked before anything is built: the head a LightningModule, the network and the loss
a torch.nn.Module (or one of logitlab's own loss configs), the optimizer an Optimizer, and so
on; an argument nested in them a class of one of those kinds. A function or any other callable
(`os.system`, `shutil.copyfile`, `builtins.open`) is refused in one line, and so is a module
found in the run folder itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from logitlab.config import CONFIG_DIR
from logitlab.errors import ConfigError

# The kind each place holds: (what it is called, the classes it may subclass).
SLOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "model": ("a head", ("lightning.pytorch.LightningModule",)),
    "net": ("a network", ("torch.nn.Module",)),
    "loss": ("a loss criterion", ("torch.nn.Module",)),
    "optimizer": ("an optimizer", ("torch.optim.Optimizer",)),
    "scheduler": (
        "a scheduler",
        ("torch.optim.lr_scheduler.LRScheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau"),
    ),
    "metrics": ("a metric", ("torchmetrics.Metric",)),
    "data": ("a DataModule", ("lightning.pytorch.LightningDataModule",)),
    "dataset": ("a dataset", ("torch.utils.data.Dataset",)),
    "transform": ("a transform", ("torch.nn.Module", "torchvision.transforms.v2.Transform")),
    "callbacks": ("a callback", ("lightning.pytorch.Callback",)),
    "logger": ("a logger", ("lightning.pytorch.loggers.Logger",)),
    "trainer": ("the Trainer", ("lightning.pytorch.Trainer",)),
    "plugins": (
        "a Trainer plugin",
        ("lightning.pytorch.plugins.io.CheckpointIO", "lightning.pytorch.plugins.Precision"),
    ),
}
ANY_KIND = tuple(dict.fromkeys(base for _, bases in SLOTS.values() for base in bases))


def slot_of(path: str) -> str | None:
    """The place a `_target_` at `path` (e.g. `model.net`, `callbacks.resumable`) fills."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    head, rest = parts[0], parts[1:]
    if head == "model" and rest in (["net"], ["optimizer"], ["scheduler"], ["loss"]):
        return rest[0]
    if head == "data" and rest[:2] == ["transforms", "extra"] and len(rest) == 3:
        return "transform"
    if head == "data" and rest in (["dataset"], ["train"], ["val"], ["test"]):
        return "dataset"
    if head == "data" and rest == ["datamodule"]:
        return "data"
    if head in ("model", "data", "loss", "optimizer", "scheduler", "trainer") and not rest:
        return head
    if head in ("callbacks", "logger", "metrics") and len(rest) == 1:
        return head
    if head == "trainer" and rest[:1] == ["plugins"] and len(rest) == 2:
        return "plugins"
    return None  # an argument nested in another target


def targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, node) of every mapping with a `_target_` under `node`, nested ones included."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from targets(value, f"{path}.{key}".lstrip("."))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{path}[{i}]")


def check_run_targets(node: Any, source: Path, folder: Path, prefix: str = "") -> None:
    """Refuse any `_target_` under `node` (read from `source`, in run folder `folder`) that is not
    a class of the kind its place holds; `prefix` is the node's own path in the config."""
    for path, spec in targets(node, prefix):
        check_target(spec, path, source, folder)


def check_target(spec: dict[str, Any], path: str, source: Path, folder: Path) -> type:
    """The class `spec["_target_"]` names, if its place may hold it; else one line, refused."""
    target = spec.get("_target_")
    slot = slot_of(path)
    where = f"{path}._target_={target} in {source}"
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{where}: a _target_ must name a class; refused")
    if slot == "loss" and own_loss(spec):
        return object
    found = locate(target, where, folder)
    kind, bases = SLOTS[slot] if slot else ("a class logitlab builds", ANY_KIND)
    allowed = tuple(cls for cls in (base_class(b) for b in bases) if cls is not None)
    if not inspect.isclass(found) or not issubclass(found, allowed):
        what = "" if inspect.isclass(found) else f"a {type(found).__name__}, not a class, so "
        raise ConfigError(
            f"{where} is {what}not {kind} (a subclass of {' or '.join(bases)}); refused: a run "
            "folder may build only classes of the kinds logitlab builds"
        )
    return found


def own_loss(spec: dict[str, Any]) -> bool:
    """Whether `spec` is one of logitlab's own loss configs (conf/loss/<name>.yaml), unchanged
    in its `_target_` (the focal loss is a function, by torchvision's design)."""
    name = spec.get("name")
    path = CONFIG_DIR / "loss" / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        return False
    return OmegaConf.select(OmegaConf.load(path), "_target_") == spec.get("_target_")


def base_class(dotted: str) -> type | None:
    """A base class by its dotted path (None where its package is not installed)."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def locate(target: str, where: str, folder: Path) -> Any:
    """The object `target` names, imported without ever importing a module of `folder`: each
    module on the way is found (not run) and its file checked before it is imported."""
    parts = target.split(".")
    modules = 0
    for n in range(1, len(parts)):
        name = ".".join(parts[:n])
        try:
            spec = importlib.util.find_spec(name)  # imports its parents, checked already
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            break
        origins = [spec.origin or "", *(spec.submodule_search_locations or [])]
        if any(o and Path(o).resolve().is_relative_to(folder.resolve()) for o in origins):
            raise ConfigError(
                f"{where} names a module of the run folder itself ({name}); refused: a run "
                "folder's code is never imported (run from another folder, or with python -P)"
            )
        modules = n
    if modules == 0:
        raise ConfigError(
            f"{where} cannot be imported; check the name and put its module on PYTHONPATH"
        )
    obj: Any = importlib.import_module(".".join(parts[:modules]))
    try:
        for attribute in parts[modules:]:
            obj = getattr(obj, attribute)
    except AttributeError:
        raise ConfigError(
            f"{where} cannot be imported; check the name and put its module on PYTHONPATH"
        ) from None
    return obj
