"""The model room: the heads, the networks, the losses and the metrics."""

from typing import Any

_PUBLIC = {
    "MulticlassClassifier": "logitlab.models.heads",
    "BinaryClassifier": "logitlab.models.heads",
}


def __getattr__(name: str) -> Any:
    """`logitlab.models.MulticlassClassifier` and co., imported when first asked for."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'logitlab.models' has no attribute '{name}'")
