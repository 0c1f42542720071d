"""Rules across config groups, checked once before anything is built."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from logitlab.config import CONFIG_DIR, schemas
from logitlab.errors import ConfigError

schemas.register()


def model_class(cfg: DictConfig) -> Any:
    """The LightningModule class that `cfg.model` names."""
    from hydra.utils import get_class

    return get_class(cfg.model._target_)


# logitlab's own heads, known without importing them (and torch): config checks stay instant.
HEADS = {
    "logitlab.models.heads.MulticlassClassifier": "multiclass",
    "logitlab.models.heads.BinaryClassifier": "binary",
}
MAX_SEED = 2**32 - 1


def task_of(cfg: DictConfig) -> str:
    """The head's task (multiclass or binary); a user's own head class is imported to ask it."""
    target = str(cfg.model.get("_target_"))
    return HEADS.get(target) or model_class(cfg).task


def losses_for(task: str) -> list[str]:
    """The names of logitlab's own loss configs (conf/loss) that fit the `task` head."""
    folder = CONFIG_DIR / "loss"
    return sorted(
        path.stem
        for path in folder.glob("*.yaml")
        if OmegaConf.select(OmegaConf.load(path), "head") == task
    )


def loss_mismatch_message(loss: str, head: str | None, task: str) -> str:
    """The one line that explains why `loss` cannot train the `task` head, and what fits."""
    fits = " or ".join(f"loss={name}" for name in losses_for(task))
    if head not in ("multiclass", "binary"):
        return (
            f"loss={loss} declares no loss.head (multiclass or binary); model={task} takes {fits}"
        )
    return (
        f"loss={loss} is a {head} loss and does not fit model={task}; use {fits}, or model={head}"
    )


def check_missing(cfg: DictConfig) -> None:
    """Refuse a config with a required value (`???`) left unset, naming the first such key."""

    def walk(node: object, prefix: str) -> list[str]:
        items: Iterable[tuple[Any, Any]]
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            return [prefix] if node == "???" else []
        return [key for k, child in items for key in walk(child, f"{prefix}.{k}".lstrip("."))]

    plain = OmegaConf.to_container(cfg, resolve=False)  # "???" marks a missing value
    missing = sorted(key for key in walk(plain, "") if not key.startswith("hydra"))
    if missing:
        key = missing[0]
        group = key.split(".", 1)[0]
        chosen = f" ({group}={cfg[group].get('source')})" if group == "data" else ""
        raise ConfigError(
            f"{key} is required{chosen} and has no value; set it, e.g. {key}=..."
            + (f" (also unset: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )


# Your-own-data sources and the keys each needs, with an example value.
REQUIRED_DATA = {
    "csv": (("path", "mine.csv"), ("target", "label")),
    "npz": (("path", "mine.npz"),),
    "image_folder": (("root", "path/to/images"),),
}


def check_data_keys(cfg: DictConfig) -> None:
    """Refuse data=csv / npz / image_folder without the file or folder it reads."""
    data = cfg.get("data") or {}
    needed = REQUIRED_DATA.get(str(data.get("source")), ())
    unset = [(key, example) for key, example in needed if data.get(key) in (None, "")]
    if unset:
        keys = " and ".join(f"data.{key}" for key, _ in unset)
        example = " ".join(f"data.{key}={value}" for key, value in unset)
        raise ConfigError(f"data={data.get('source')} needs {keys}; e.g. {example}")


# Loggers that need an optional extra: the class, the module it needs, the extra that has it.
LOGGER_EXTRAS = {
    "lightning.pytorch.loggers.MLFlowLogger": ("mlflow", "mlflow"),
    "lightning.pytorch.loggers.WandbLogger": ("wandb", "wandb"),
}


def check_loggers(cfg: DictConfig) -> None:
    """Refuse logger=mlflow / wandb when its package is not installed, naming the extra."""
    from importlib.util import find_spec

    for name, entry in (cfg.get("logger") or {}).items():
        target = str((entry or {}).get("_target_", ""))
        module, extra = LOGGER_EXTRAS.get(target, ("", ""))
        if module and find_spec(module) is None:
            raise ConfigError(
                f"logger={name} needs the {module} package, which is not installed; "
                f"pip install -e '.[{extra}]' (or choose logger=tensorboard)"
            )


def check_config(cfg: DictConfig) -> None:
    """Refuse a composition that cannot train, with one line that names the keys and the fix."""
    check_missing(cfg)
    check_data_keys(cfg)
    check_loggers(cfg)
    task = task_of(cfg)
    if cfg.loss.get("head") != task:
        name = cfg.loss.get("name") or cfg.loss.get("_target_")
        raise ConfigError(loss_mismatch_message(name, cfg.loss.get("head"), task))
    other = {"multiclass": "Binary", "binary": "Multiclass"}[task]
    for name, spec in (cfg.get("metrics") or {}).items():
        metric = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
        if metric.startswith(other):
            raise ConfigError(
                f"metrics.{name}: {metric} is a {other.lower()} metric and does not fit "
                f"model={task}; use metrics={task}_extra or a {task} torchmetrics class"
            )
    for rule, message in _range_rules(cfg):
        if not rule:
            raise ConfigError(message)


def _range_rules(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(holds, message) for every value that has a valid range."""
    from logitlab.data.sources import MAX_CLASSES

    lr = cfg.optimizer.get("lr", 1.0)
    seed, eval_batch = cfg.get("seed", 0), cfg.data.get("eval_batch_size")
    classes, model_classes = cfg.data.get("num_classes"), cfg.model.get("num_classes")
    net = cfg.model.get("net") or {}
    hidden = list(net.get("hidden_sizes", [1]) or [])
    dropout = net.get("dropout", 0.0)
    epochs, steps = cfg.trainer.get("max_epochs", 1), cfg.trainer.get("max_steps", -1)
    name = cfg.get("run_name")
    return [
        (
            name is None
            or (str(name) not in ("", ".", "..") and not set(str(name)) & {"/", "\\", "\0"}),
            f"run_name={name} must be a plain name (no / or \\): it names the run's folder of "
            "event files, inside the run; e.g. run_name=baseline_lr3",
        ),
        (
            isinstance(lr, int | float) and lr > 0,
            f"optimizer.lr={lr} must be a positive number, e.g. optimizer.lr=1e-3",
        ),
        (
            cfg.data.batch_size > 0,
            f"data.batch_size={cfg.data.batch_size} must be positive, e.g. data.batch_size=64",
        ),
        (
            epochs is None or epochs >= 0 or (epochs == -1 and steps > 0),
            f"trainer.max_epochs={epochs} must be >= 0 (-1, unbounded, needs trainer.max_steps)",
        ),
        (
            len(hidden) > 0 and all(h > 0 for h in hidden),
            f"model.net.hidden_sizes={hidden} must list positive layer widths, e.g. [128,64]",
        ),
        (
            0 <= dropout < 1,
            f"model.net.dropout={dropout} must be in [0, 1), e.g. model.net.dropout=0.1",
        ),
        (
            isinstance(seed, int) and 0 <= seed <= MAX_SEED,
            f"seed={seed} must be an integer in [0, {MAX_SEED}], e.g. seed=42",
        ),
        (
            eval_batch is None or eval_batch > 0,
            f"data.eval_batch_size={eval_batch} must be positive (null: max(batch_size, 1024))",
        ),
        (
            classes is None or 2 <= classes <= MAX_CLASSES,
            f"data.num_classes={classes} must be in [2, {MAX_CLASSES}] (null: counted from the "
            "data)",
        ),
        (
            model_classes is None or classes is None or model_classes == classes,
            f"model.num_classes={model_classes} contradicts data.num_classes={classes}; set "
            "data.num_classes instead (the model follows it)",
        ),
    ]


def check_runtime(cfg: DictConfig) -> None:
    """What needs torch to check: the optimizer's and scheduler's classes, the accelerator."""
    from hydra.utils import get_class

    for key in ("optimizer", "model.scheduler"):
        node = OmegaConf.select(cfg, key)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        if not target:
            continue
        try:
            get_class(target)
        except Exception:
            raise ConfigError(
                f"{key}._target_={target} cannot be imported; check the name (e.g. "
                "torch.optim.AdamW) and that its module is on PYTHONPATH"
            ) from None
    accelerator = str(cfg.trainer.get("accelerator"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is visible "
                "(torch.cuda.is_available() is False); use trainer=cpu or trainer=auto"
            )
    if accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError(
                "trainer.accelerator=mps but Apple's MPS is not available here; use trainer=cpu"
            )


# Keys a resumed run may change: how long it trains and on what; not what it trains.
RESUME_SAFE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.min_epochs",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.enable_progress_bar",
    "callbacks.early_stopping.patience",
    "callbacks.checkpoint_every_n_steps",
    "fastpath",
    # the rescue of a diverged run: a lower learning rate, gradient clipping
    "optimizer.lr",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
)


def _run_dir_or(resume: str | None, default: str) -> str:
    # Only a real run folder is reused; anything else gets a fresh folder (and a clear error).
    return resume if resume and (Path(resume) / ".hydra" / "config.yaml").is_file() else default


def _hydra_subdir(resume: str | None, stamp: str) -> str:
    # A resumed run keeps the config it was started with in .hydra/ and records its own beside.
    return f".hydra/resumed_{stamp}" if resume else ".hydra"


OmegaConf.register_new_resolver("logitlab.run_dir", _run_dir_or, replace=True)
OmegaConf.register_new_resolver("logitlab.hydra_subdir", _hydra_subdir, replace=True)


def prepare_resume(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path]:
    """The saved config of run `cfg.resume` with the safe `overrides` applied, and last.ckpt."""
    run_dir = Path(cfg.resume)
    saved = run_dir / ".hydra" / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    if not saved.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no .hydra/config.yaml there; give the folder of a training run"
        )
    if not last.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no checkpoints/last.ckpt to resume from; start a new run"
        )
    resumed = cast(DictConfig, OmegaConf.load(saved))
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra."):
            continue
        if key not in RESUME_SAFE:
            raise ConfigError(
                f"resume: '{override}' would change the run being resumed; only "
                f"{', '.join(RESUME_SAFE)} may change (start a new run for anything else)"
            )
        OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), force_add=True)
    resumed.paths.output_dir = str(run_dir)
    resumed.resume = str(run_dir)
    return resumed, last


def preflight(argv: list[str], config_dir: str) -> DictConfig | None:
    """Compose the command line once before Hydra runs it, so a mistake costs one clear line.

    Hydra's own report of an unknown option or key or a wrong type spans several lines; this
    turns it into one. A sweep (-m) is composed once per value of each swept key, so a bad value
    is refused before any job starts; Optuna's search spaces are left to the sweeper. Then the
    checks that need only the config run (check_config), without importing torch. Returns the
    composed config (the first value of each swept key), or None for Hydra's own flags.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if any(arg.startswith("-") for arg in argv):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(argv)
    except OverrideParseException as error:
        line = str(error).splitlines()[0]
        raise ConfigError(
            f"cannot parse an override ({line}); check its brackets and quotes"
        ) from None
    plain = [arg for arg, o in zip(argv, parsed, strict=True) if not o.is_sweep_override()]
    swept = [
        (o.get_key_element(), list(o.sweep_string_iterator()))
        for o in parsed
        if o.is_sweep_override() and o.is_discrete_sweep()
    ]
    first = [f"{key}={values[0]}" for key, values in swept if values]
    cfg = _compose(plain + first, config_dir)
    variants = [
        _compose([*plain, *first, f"{key}={value}"], config_dir)
        for key, values in swept
        for value in values[1:]
    ]
    searched = any(o.get_key_element() == "hparams_search" for o in parsed)
    if not cfg.get("resume") and not searched:
        for composed in (cfg, *variants):
            check_config(composed)
    return cfg


def _compose(argv: list[str], config_dir: str) -> DictConfig:
    """conf/train.yaml with `argv`; Hydra's multi-line errors become one ConfigError line."""
    import re

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            return compose("train", overrides=argv)
    except MissingConfigException as error:
        found = re.search(r"Could not find '([^']+)/([^']+)'", str(error))
        options = re.findall(r"^\t(\S+)$", str(error), flags=re.MULTILINE)
        if not found:
            raise ConfigError(str(error).splitlines()[0]) from None
        group, option = found.groups()
        raise ConfigError(
            f"{group}={option} is not an option of '{group}'; choose one of {', '.join(options)}"
        ) from None
    except ConfigCompositionException as error:
        cause = error.__cause__
        unknown = re.search(r"Could not override '([^']+)'", str(error))
        if unknown:
            key = unknown.group(1)
            raise ConfigError(
                f"{key} is not a key of the config (python -m logitlab.train --cfg job lists "
                f"them); check the spelling, or add a new key with +{key}=..."
            ) from None
        if cause is not None:
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            key = next((line for line in lines if line.startswith("full_key:")), "")
            override = str(error).removeprefix("Error merging override ")
            raise ConfigError(f"{override}: {lines[0]} ({key})") from None
        raise ConfigError(" ".join(str(error).split())) from None
    except OverrideParseException as error:
        first = str(error).splitlines()[0]
        raise ConfigError(
            f"cannot parse an override ({first}); check its brackets and quotes"
        ) from None
    finally:
        GlobalHydra.instance().clear()
