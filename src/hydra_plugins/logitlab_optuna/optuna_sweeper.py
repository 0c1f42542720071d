"""`hydra/sweeper=optuna`: logitlab's Hydra sweeper on a current Optuna (logitlab.run.search).

Hydra imports every module under `hydra_plugins` at start, so this one stays light: the schema,
and a Sweeper that hands the search to logitlab.run.search, where optuna is imported.
"""

# No `from __future__ import annotations`: Hydra's scan runs this module before sys.modules has it,
# and the dataclass below reads its own annotations then.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class OptunaSweeperConf:
    """hydra.sweeper.*: the study (name, storage, direction), its sampler and pruner, the trials
    of this launch (n_trials, n_jobs at a time) and the search space (params)."""

    _target_: str = "hydra_plugins.logitlab_optuna.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler and pruner are built by the search, once checked
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner}; null: no pruning
    monitor: str = "val/acc"  # the per-epoch metric a pruner judges
    direction: str = "maximize"
    storage: Any = None  # null: in memory; sqlite:///outputs/optuna.db keeps the study
    study_name: Any = None
    n_trials: int = 20
    n_jobs: int = 1
    params: Any = None  # {key: "interval(a, b)" | "tag(log, interval(a, b))" | "choice(...)" ...}


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="logitlab"
)


class OptunaSweeper(Sweeper):
    """Ask Optuna for trials, launch them as Hydra jobs, tell it how each ended."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.launcher: Any = None
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from logitlab.errors import user_errors
        from logitlab.run.search import Search

        assert self.config is not None and self.launcher is not None
        with user_errors():  # a bad search space or sampler: one line, exit 2, nothing written
            return Search(self.settings, self.config, self.launcher).run(arguments)
