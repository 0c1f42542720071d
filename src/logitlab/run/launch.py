"""Before Hydra writes anything: check the command line, then claim the folder the run writes to.

Everything that can be refused from the command line alone is refused here, in one line, before
a folder exists: config mistakes (`config.preflight`), a resume that cannot go on (its saved
config, its overrides, its last.ckpt read with weights_only=True, its metrics.json), a folder
that holds another run, another sweep or someone's files. Then the folder is claimed
(`claim.py`): a default folder gets a fresh name, an explicit one a lock held for the run's life.
Hydra is then told the folder (`hydra.run.dir=` / `hydra.sweep.dir=`), so it cannot pick another.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from logitlab.errors import ConfigError, TrainingDiverged, first_line
from logitlab.run.layout import RunFolder
from logitlab.run.lock import LOCK, claim, fresh_folder, make_folder, release, stale_temporaries
from logitlab.run.sweep import continuable

RUN_FILES = ("job.json", "metrics.json", "summary.csv")


@dataclass
class Launch:
    """What main() hands to Hydra, and what it holds meanwhile."""

    argv: list[str]
    folder: Path | None = None  # the claimed run, resume or sweep folder
    fresh: bool = False  # created by this launch: a refusal removes it again
    kind: str = "other"  # run, resume, sweep, or other (--help, --cfg, ...)
    saved: dict = field(default_factory=dict)  # a resume's files as they were, to put back


def _value(argv: list[str], key: str) -> str | None:
    """The value of `key=...` on the command line (the last one wins, as in Hydra)."""
    found = [a.split("=", 1)[1] for a in argv if a.split("=", 1)[0].lstrip("+~") == key]
    return found[-1].strip("'\"") if found else None


def _override(key: str, folder: Path) -> str:
    text = str(folder)
    if re.fullmatch(r"[\w./~-]+", text):
        return f"{key}={text}"
    return f"{key}='" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _resolved(argv: list[str], key: str, cfg: DictConfig) -> tuple[str | None, list[str]]:
    """The folder `key=...` names with its interpolations resolved as Hydra will resolve them,
    and `argv` with that folder written out: what is claimed is where the run writes."""
    raw = _value([a for a in argv if not a.startswith("-")], key)
    if raw is None or "${" not in raw:
        return raw, argv
    scratch = copy.deepcopy(cfg)
    OmegaConf.set_struct(scratch, False)
    scratch["_claimed_"] = raw
    try:
        folder = str(scratch["_claimed_"])
    except Exception as error:
        raise ConfigError(
            f"{key}={raw} cannot be resolved before the run starts ({first_line(error)}); give "
            "the folder itself, or interpolate only keys of the config (e.g. ${task_name})"
        ) from None
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+~") != key]
    return folder, [*kept, _override(key, Path(folder))]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK)


def _give_up(folder: Path, created: bool) -> None:
    """Undo a claim: release the lock and remove the folder if this launch made it."""
    release(folder)
    if created and not _leftovers(folder):
        shutil.rmtree(folder, ignore_errors=True)


def prepare(argv: list[str], config_dir: str) -> Launch:
    """Check `argv`, claim its folder; the Launch says what Hydra runs and where."""
    from logitlab.config.compose import preflight

    argv = cross_validation(argv)
    flags = [a for a in argv if a.startswith("-")]
    # hparams_search configs set hydra.mode=MULTIRUN themselves: a sweep without -m
    searched = any(a.split("=", 1)[0] == "hparams_search" for a in argv)
    multirun = searched or any(a in ("-m", "--multirun") for a in flags)
    if flags in (["--help"], ["-h"]):
        print(help_text([a for a in argv if not a.startswith("-")], config_dir), end="")
        raise SystemExit(0)
    if any(a not in ("-m", "--multirun") for a in flags):
        return Launch(argv)  # --cfg, --info, --hydra-help, -c ...: Hydra's own answers
    overrides = [a for a in argv if not a.startswith("-")]
    cfg = preflight(overrides, config_dir)
    if cfg is None:
        return Launch(argv)
    if _value(overrides, "paths.output_dir") is not None:
        raise ConfigError(
            "paths.output_dir is the run's own folder, chosen and claimed at launch; to place a "
            "run, give hydra.run.dir=... (a sweep: hydra.sweep.dir=...)"
        )
    resume = _value(overrides, "resume")
    if resume:
        return _resume(argv, overrides, cfg, Path(resume))
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    root = Path(cfg.paths.output_root) / str(cfg.task_name)
    if multirun:
        argv = [*argv, *_job_names(overrides)]
        explicit, argv = _resolved(argv, "hydra.sweep.dir", cfg)
        if explicit is None:
            folder = fresh_folder(root / "multirun", stamp, "hydra.sweep.dir")
            claim(folder, "hydra.sweep.dir")
            return Launch([*argv, _override("hydra.sweep.dir", folder)], folder, True, "sweep")
        folder = Path(explicit)
        created = make_folder(folder, "hydra.sweep.dir")
        claim(folder, "hydra.sweep.dir")
        if _leftovers(folder) and _is_sweep(folder) and continuable(folder, overrides):
            logging.getLogger(__name__).warning(
                "continuing the sweep in %s: completed jobs are kept, the others run", folder
            )
            return Launch(argv, folder, created, "sweep", {"continued": True})
        if _leftovers(folder):
            _give_up(folder, created)
            kind = "an earlier sweep" if _is_sweep(folder) else "files"
            raise ConfigError(
                f"hydra.sweep.dir={folder} already holds {kind} "
                f"({', '.join(_leftovers(folder)[:4])}); give a new folder (or leave "
                "hydra.sweep.dir out for a fresh one; a stopped sweep goes on with its own "
                "overrides)"
            )
        return Launch(argv, folder, created, "sweep")
    explicit, argv = _resolved(argv, "hydra.run.dir", cfg)
    if explicit is None:
        folder = fresh_folder(root, stamp)
        claim(folder)
        return Launch([*argv, _override("hydra.run.dir", folder)], folder, True, "run")
    folder = Path(explicit)
    created = make_folder(folder, "hydra.run.dir")
    claim(folder)
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
    if RunFolder(folder).config.exists() and not requeued and failed_start(folder):
        record = RunFolder(folder).hydra / f"failed_start_{stamp}"
        record.mkdir(exist_ok=True)
        for saved in RunFolder(folder).hydra.glob("*.yaml"):  # kept, beside the new start's
            saved.rename(record / saved.name)
        logging.getLogger(__name__).warning(
            "%s holds a start that stopped before its first checkpoint; starting again there "
            "(its config: %s)", folder, record,
        )  # fmt: skip
        return Launch(argv, folder, created, "run")
    if RunFolder(folder).config.exists() and not requeued:
        _give_up(folder, created)
        raise ConfigError(
            f"hydra.run.dir={folder} already holds a run; continue it with resume={folder}, "
            "or give a new folder"
        )
    if _leftovers(folder) and not requeued:
        shown = ", ".join(_leftovers(folder)[:4])
        _give_up(folder, created)
        raise ConfigError(
            f"hydra.run.dir={folder} holds files that are not a logitlab run ({shown}); give "
            "an empty or new folder, so that none of them is overwritten"
        )
    if requeued:
        stale_temporaries(folder)
    return Launch(argv, folder, created, "run")


def cross_validation(argv: list[str]) -> list[str]:
    """`cv=K`: the K folds of data.folds=K as one sweep (`-m data.fold=0,...,K-1`), beside
    whatever else is swept."""
    given = _value(argv, "cv")
    if given is None:
        return argv
    if not given.isdigit() or int(given) < 2:
        raise ConfigError(f"cv={given} must be a number of folds, at least 2 (e.g. cv=5)")
    if _value(argv, "data.fold") is not None or _value(argv, "data.folds") is not None:
        raise ConfigError("cv=K sets data.folds and sweeps data.fold; give cv or those, not both")
    k = int(given)
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+~") != "cv"]
    multirun = [] if any(a in ("-m", "--multirun") for a in kept) else ["-m"]
    return [*multirun, *kept, f"data.folds={k}", "data.fold=" + ",".join(map(str, range(k)))]


def failed_start(folder: Path) -> bool:
    """Whether the run in `folder` stopped before its first checkpoint (a crash, a SIGTERM, a
    refusal in a sweep): nothing to resume, so it may start again in the same folder."""
    import json

    run = RunFolder(folder)
    if any(run.checkpoints.glob("*.ckpt")):
        return False
    try:
        status = json.loads(run.job.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None  # killed before job.json was written
    return status != "completed"


def help_text(overrides: list[str], config_dir: str) -> str:
    """`--help`: the config groups and their options, then the composed config, as Hydra's own
    help prints them. Hydra builds its group list by composing once per group (seconds); here
    the groups are read from the config folders (conf/ and any `hydra.searchpath` folder)."""
    from omegaconf import OmegaConf

    from logitlab.config.compose import compose_train

    folders = [Path(config_dir)]
    paths = _value(overrides, "hydra.searchpath")
    for entry in (paths or "").strip("[]").split(","):
        entry = entry.strip().strip("'\"")
        if entry.startswith("pkg://"):
            from importlib.util import find_spec

            package, _, sub = entry.removeprefix("pkg://").partition("/")
            spec = find_spec(package)
            for location in (spec.submodule_search_locations or []) if spec else []:
                folders.append(Path(location) / sub)
        elif entry:
            folders.append(Path(entry.removeprefix("file://")))
    groups: dict[str, set[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.yaml") if folder.is_dir() else []:
            group = path.parent.relative_to(folder).as_posix()
            if group != "." and group.split("/")[0] != "hydra":
                groups.setdefault(group, set()).add(path.stem)
    cfg = compose_train(overrides, config_dir)
    lines = [
        "logitlab-train: python -m logitlab.train [group=option ...] [key=value ...] [-m]",
        "(Hydra's own flags: --hydra-help; the config without running: --cfg job)",
        "",
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
        *(f"{group}: {', '.join(sorted(groups[group]))}" for group in sorted(groups)),
        "",
        "== Config ==",
        "Override anything in the config (foo.bar=value)",
        "",
        OmegaConf.to_yaml(cfg, resolve=False),
    ]
    return "\n".join(lines)


def _job_names(overrides: list[str]) -> list[str]:
    """Name a sweep's jobs by what is swept: the keys every job shares are left out of
    `hydra.job.override_dirname` (and so of the job's dashboard name, dashboards/naming.py)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key = "hydra.job.config.override_dirname.exclude_keys"
    if _value(overrides, key) is not None:
        return []  # the user's own choice
    parsed = OverridesParser.create().parse_overrides(overrides)
    shared = [o.key_or_group for o in parsed if not o.is_sweep_override()]
    shared = [k for k in dict.fromkeys(shared) if not k.startswith("hydra.")]
    quoted = ",".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in shared)
    return [f"{key}=[{quoted}]"]


def _check_early_stop(checkpoint: dict, resumed: DictConfig, folder: Path) -> None:
    """Refuse a resume that early stopping would end at once; name the override that goes on."""
    early = (resumed.get("callbacks") or {}).get("early_stopping")
    if not early:
        return
    patience = int(early.get("patience", 0))
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if not str(key).startswith("EarlyStopping") or not isinstance(state, dict):
            continue
        stopped, wait = int(state.get("stopped_epoch", 0)), int(state.get("wait_count", 0))
        if stopped > 0 and wait >= patience:
            raise ConfigError(
                f"resume={folder}: early stopping ended this run after epoch {stopped} "
                f"({early.get('monitor')} without improvement for {wait} epochs, patience "
                f"{patience}); to train on, raise it: callbacks.early_stopping.patience="
                f"{wait + max(patience, 5)}"
            )


def _is_sweep(folder: Path) -> bool:
    return (folder / "summary.csv").exists() or any(folder.glob("*/.hydra/overrides.yaml"))


def _resume(argv: list[str], overrides: list[str], cfg: DictConfig, folder: Path) -> Launch:
    """Validate everything a resume needs before anything is written, then claim its folder."""
    import json

    from logitlab.run.resume import prepare_resume

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"resume={folder} is a file; give the run folder (outputs/...)")
    if not folder.is_dir():
        raise ConfigError(f"resume={folder} does not exist; give the folder of a training run")
    run = RunFolder(folder)
    for path in (run.log, run.job, run.metrics, run.splits, run.data, run.last, run.hydra):
        if path.is_symlink():
            raise ConfigError(
                f"resume={folder}: {path.relative_to(folder)} is a symbolic link (to "
                f"{path.readlink()}), and a resume writes only into its own folder; replace the "
                "link with the file itself"
            )
    resumed, last = prepare_resume(cfg, overrides)
    metrics = RunFolder(folder).metrics
    if metrics.is_file():
        try:
            json.loads(metrics.read_text())
        except (ValueError, OSError):
            raise ConfigError(
                f"resume={folder}: {metrics} is not readable JSON; move it aside to resume"
            ) from None
    claim(folder, "resume")
    try:
        from logitlab.run.restore import load_checkpoint

        checkpoint = load_checkpoint(last)  # weights_only=True: a bad file stops here
        _check_early_stop(checkpoint, resumed, folder)
    except ConfigError:
        release(folder)
        raise
    stale_temporaries(folder)
    job, log_file = RunFolder(folder).job, RunFolder(folder).log
    saved = {
        "job.json": job.read_bytes() if job.is_file() else None,
        "train.log": log_file.stat().st_size if log_file.is_file() else 0,
        "resumed": set(RunFolder(folder).hydra.glob("resumed_*")),
    }
    # the run's own folder; its .hydra/ stays as it was, this resume's record goes beside it
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    where = [_override("hydra.run.dir", folder), f"hydra.output_subdir=.hydra/resumed_{stamp}"]
    return Launch([*argv, *where], folder, False, "resume", saved)


@contextmanager
def refusal_undone(run_dir: str, launch: Launch, sweeping: bool) -> Iterator[None]:
    """A user mistake found after Hydra started (bad labels, a file that cannot be read)
    changes nothing: a run folder this launch made goes again (unless it holds a checkpoint),
    and a refused resume puts job.json and train.log back and drops its .hydra/resumed_*.
    A sweep's job keeps its record (its row in summary.csv says why it failed)."""
    folder = Path(run_dir).resolve()
    claimed = launch.folder.resolve() if launch.folder else None
    if sweeping or launch.kind not in ("run", "resume") or claimed != folder:
        yield
        return
    job, log_file = RunFolder(folder).job, RunFolder(folder).log
    saved_job, saved_log = launch.saved.get("job.json"), launch.saved.get("train.log", 0)
    hydra_dirs = launch.saved.get("resumed", set())
    try:
        yield
    except ConfigError as error:
        if isinstance(error, TrainingDiverged):
            raise
        if launch.kind == "run":
            if launch.fresh and not any(RunFolder(folder).checkpoints.glob("*.ckpt")):
                root = logging.getLogger()
                for handler in list(root.handlers):  # Hydra's train.log handler lets go of it
                    if isinstance(handler, logging.FileHandler) and Path(
                        handler.baseFilename
                    ).resolve().is_relative_to(folder):
                        root.removeHandler(handler)
                        handler.close()
                shutil.rmtree(folder, ignore_errors=True)
            raise
        for new in set(RunFolder(folder).hydra.glob("resumed_*")) - hydra_dirs:
            shutil.rmtree(new, ignore_errors=True)
        if saved_job is not None:
            job.write_bytes(saved_job)
        if log_file.is_file():
            with log_file.open("r+b") as handle:
                handle.truncate(saved_log)
        raise
