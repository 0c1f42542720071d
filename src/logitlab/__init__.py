"""logitlab: a Lightning + Hydra research template for binary and multiclass heads."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

# Modules of the flat layout (up to 0.1.0) that saved run folders name in their `_target_`s
# (e.g. `logitlab.nets.MLP` in .hydra/config.yaml), and where they live now.
MOVED = {
    "logitlab.nets": "logitlab.models.nets",
    "logitlab.callbacks": "logitlab.run.callbacks",
    "logitlab.checkpoint_io": "logitlab.run.checkpoint_io",
    "logitlab.images": "logitlab.data.images",
    "logitlab.sweep": "logitlab.run.sweep",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module that now holds its code (the same object)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module was executed under its new name already."""


sys.meta_path.append(_MovedModules())


def lazy_attributes(package: str, homes: dict[str, str]) -> Any:
    """A package's `__getattr__` that imports each name of `homes` from its module when first
    asked for (`logitlab.models.MulticlassClassifier`), so the package imports no torch itself."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(homes[name]), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
