"""The dashboards room: diagnostics, run names and hyperparameters, plots, the console."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`logitlab.dashboards.Diagnostics` (the name saved run configs use)."""
    if name == "Diagnostics":
        from logitlab.dashboards.diagnostics import Diagnostics

        return Diagnostics
    raise AttributeError(f"module 'logitlab.dashboards' has no attribute '{name}'")
