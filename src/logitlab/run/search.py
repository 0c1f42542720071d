"""Hyperparameter search: an Optuna study driven by ask/tell, each trial a Hydra job.

`hparams_search=...` selects `hydra/sweeper=optuna` (hydra_plugins/logitlab_optuna). The search
space is `hydra.sweeper.params` plus the command line's own sweeps (`loss=choice(a,b)`):
`interval(a, b)` is a float (an int when both ends are), `tag(log, interval(a, b))` on a log
scale, `choice(...)` and `range(...)` categorical. Every trial runs through the configured
launcher (local, submitit, SLURM); its job.json says how it ended, which Optuna is told:
completed (the returned metric), pruned, or failed. With `hydra.sweeper.storage` the study is
kept, and a second launch with the same study name goes on with it. With `hydra.sweeper.pruner`
each trial reports `hydra.sweeper.monitor` every epoch through optuna-integration's Lightning
callback, and the pruner stops the unpromising ones.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from hydra.core.utils import JobStatus
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from logitlab.errors import ConfigError
from logitlab.run.files import read_record
from logitlab.run.layout import RunFolder
from logitlab.run.sweep import TRIAL  # the job's trial number, set through hydra.job.env_set

log = logging.getLogger("logitlab.run.search")

ACTIVE: dict[int, optuna.trial.Trial] = {}  # the trials of this process's study, by number
NEEDS_STORAGE = (
    "hydra.sweeper.pruner: this launcher runs the trials in other processes, which reach the "
    "study only through a storage; set hydra.sweeper.storage=sqlite:///outputs/optuna.db (or "
    "hydra.sweeper.pruner=null)"
)


class Search:
    """One launch of a study: `n_trials` new trials, `n_jobs` launched at a time."""

    def __init__(self, settings: dict[str, Any], config: DictConfig, launcher: Any) -> None:
        self.settings, self.config, self.launcher = settings, config, launcher

    def run(self, arguments: list[str]) -> optuna.study.Study:
        space, texts, fixed = search_space(self.settings.get("params") or {}, arguments)
        elsewhere = not str(self.config.hydra.launcher.get("_target_")).endswith("BasicLauncher")
        if self.settings.get("pruner") and not self.settings.get("storage") and elsewhere:
            raise ConfigError(NEEDS_STORAGE)  # its jobs run in other processes
        study = self.study()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        n_trials, n_jobs = int(self.settings["n_trials"]), max(int(self.settings["n_jobs"]), 1)
        job = 0
        while job < n_trials:
            trials = [study.ask(space) for _ in range(min(n_jobs, n_trials - job))]
            ACTIVE.update({trial.number: trial for trial in trials})
            batch = [
                [*fixed, *(f"{key}={texts[key](trial.params[key])}" for key in space),
                 f"++hydra.job.env_set.{TRIAL}={trial.number}"]
                for trial in trials
            ]  # fmt: skip
            try:
                returns = self.launcher.launch(batch, initial_job_idx=job)
            except BaseException:  # stopped (SIGTERM, Ctrl+C): these trials did not finish
                for trial in trials:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            for trial, result in zip(trials, returns, strict=True):
                tell(study, trial, result)
                ACTIVE.pop(trial.number, None)
            job += len(trials)
        write_results(study, sweep_dir, space, texts)
        return study

    def study(self) -> optuna.study.Study:
        """The study named by the settings: created, or loaded when its storage has it."""
        sampler, pruner = (
            optuna_object(self.settings.get(key), key) for key in ("sampler", "pruner")
        )
        return optuna.create_study(
            study_name=self.settings.get("study_name"),
            storage=self.settings.get("storage"),
            sampler=sampler,
            pruner=pruner or optuna.pruners.NopPruner(),
            direction=direction(self.settings.get("direction")),
            load_if_exists=True,
        )


def direction(value: Any) -> optuna.study.StudyDirection:
    """hydra.sweeper.direction: maximize (the default) or minimize."""
    name = str(value or "maximize").lower()
    if name not in ("maximize", "minimize"):
        raise ConfigError(f"hydra.sweeper.direction={value} must be maximize or minimize")
    return optuna.study.StudyDirection[name.upper()]


def optuna_object(spec: Any, key: str) -> Any:
    """hydra.sweeper.sampler / pruner: an Optuna class with its arguments, or None."""
    if spec is None:
        return None
    target = str(OmegaConf.to_container(spec).get("_target_", ""))  # type: ignore[union-attr]
    if not target.startswith(f"optuna.{key}s."):
        example = "TPESampler" if key == "sampler" else "MedianPruner"
        raise ConfigError(
            f"hydra.sweeper.{key}._target_={target or '(none)'} is not an Optuna {key}; name one "
            f"of optuna.{key}s (e.g. optuna.{key}s.{example})"
        )
    return instantiate(spec)


def search_space(
    params: Any, arguments: list[str]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Optuna distributions by key, how each sampled value is written as an override, and the
    command line's plain overrides (every trial gets them)."""
    lines = [f"{key}={value}" for key, value in dict(params).items()]
    overrides = OverridesParser.create().parse_overrides([*lines, *arguments])
    space: dict[str, Any] = {}
    texts: dict[str, Any] = {}
    fixed = []
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line or f"{key}={override.get_value_element_as_str()}")
            continue
        space[key], texts[key] = distribution(override)
    return space, texts, fixed


def distribution(override: Override) -> tuple[Any, Any]:
    """An Optuna distribution for one swept key, and the writer of its sampled value."""
    key = override.get_key_element()
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        assert low is not None and high is not None  # the grammar requires both ends
        log_scale = "log" in (sweep.tags or set())
        if isinstance(low, int) and isinstance(high, int):
            return optuna.distributions.IntDistribution(low, high, log=log_scale), str
        return optuna.distributions.FloatDistribution(float(low), float(high), log=log_scale), repr
    if override.is_discrete_sweep() and not isinstance(sweep, Glob):
        choices = list(override.sweep_string_iterator())
        return optuna.distributions.CategoricalDistribution(choices), str
    raise ConfigError(
        f"{key}: an Optuna search takes interval(a, b), tag(log, interval(a, b)), choice(...) or "
        f"range(...), not {(override.input_line or '=?').split('=', 1)[1]}"
    )


def tell(study: optuna.study.Study, trial: optuna.trial.Trial, result: Any) -> None:
    """Tell the study how a trial's job ended, as its job.json says."""
    folder = Path(str(result.hydra_cfg.hydra.runtime.output_dir))
    record = read_record(RunFolder(folder).job)
    status = record.get("status")
    value = result.return_value if result.status == JobStatus.COMPLETED else None
    if status == "completed" and isinstance(value, float) and math.isfinite(value):
        study.tell(trial, value)
        log.info("trial %d completed: %.6g (%s)", trial.number, value, folder)
    elif status == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        log.info("trial %d %s (%s)", trial.number, record.get("error", "pruned"), folder)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning("trial %d %s: %s (%s)", trial.number, status, record.get("error"), folder)


def write_results(
    study: optuna.study.Study, sweep_dir: Path, space: dict[str, Any], texts: dict[str, Any]
) -> None:
    """optimization_results.yaml: the study's best value and parameters (as overrides parse
    them), and how many trials ended in each state."""
    from logitlab.run.files import write_text

    states = [t.state.name.lower() for t in study.trials]
    results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name}
    results["trials"] = {state: states.count(state) for state in sorted(set(states))}
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        parser = OverridesParser.create()
        best = study.best_trial
        results["best_value"] = best.value
        results["best_trial"] = best.number
        results["best_params"] = {
            key: parser.parse_override(f"{key}={texts[key](value)}").value()
            if key in texts
            else value
            for key, value in best.params.items()
        }
        log.info("best trial %d: %.6g with %s", best.number, best.value, results["best_params"])
    else:
        log.warning("no trial of study %s completed", study.study_name)
    write_text(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(results))


def pruning_callback() -> Any:
    """The pruning callback of this job's trial (None: not a trial, or no pruner)."""
    from hydra.core.hydra_config import HydraConfig

    number = os.environ.get(TRIAL)
    if number is None or not HydraConfig.initialized():
        return None
    settings = HydraConfig.get().sweeper
    if settings.get("pruner") is None:
        return None
    from optuna_integration import PyTorchLightningPruningCallback

    trial = ACTIVE.get(int(number)) or stored_trial(settings, int(number))
    return PyTorchLightningPruningCallback(trial, monitor=str(settings.monitor))


def stored_trial(settings: Any, number: int) -> optuna.trial.Trial:
    """A trial of a study kept in storage, for a job that runs in another process."""
    if not settings.get("storage"):
        raise ConfigError(NEEDS_STORAGE)
    storage = optuna.storages.get_storage(settings.storage)
    pruner = optuna_object(settings.pruner, "pruner")  # the study's pruner is not stored
    study = optuna.load_study(study_name=settings.study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id)
