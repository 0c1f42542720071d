"""The data room: the DataModule and its parts (sources, tables, image folders, splits, loaders)."""

from typing import Any

_PUBLIC = {
    "ClassificationDataModule": "logitlab.data.datamodule",
    "ImageFolderDataModule": "logitlab.data.images",
}


def __getattr__(name: str) -> Any:
    """`logitlab.data.ClassificationDataModule` and co., imported when first asked for."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'logitlab.data' has no attribute '{name}'")
