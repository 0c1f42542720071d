"""The dashboards room: diagnostics, run names and hyperparameters, plots, the console."""

from logitlab import lazy_attributes

# `logitlab.dashboards.Diagnostics`: the name saved run configs use
__getattr__ = lazy_attributes(__name__, {"Diagnostics": "logitlab.dashboards.diagnostics"})
