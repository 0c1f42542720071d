"""Rules across config groups, checked once before anything is built."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from logitlab.config import CONFIG_DIR, schemas
from logitlab.data.settings import check_settings
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
    "logitlab.models.heads.MultilabelClassifier": "multilabel",
}
FAMILIES = {"multiclass": "Multiclass", "binary": "Binary", "multilabel": "Multilabel"}  # metrics
MAX_SEED = 2**32 - 1
MAX_NAME = 128  # characters of a run name (a folder's name)
# Lightning's precision names (lightning.fabric's _PRECISION_INPUT, read without importing it)
PRECISIONS = (
    "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
    "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16",
)  # fmt: skip
HALF = ("16-true", "16-mixed", "16")  # float16, which the CPU cannot train in


def task_of(cfg: DictConfig) -> str:
    """The head's task (multiclass or binary); a user's own head class is imported to ask it."""
    target = str(cfg.model.get("_target_"))
    return HEADS.get(target) or model_class(cfg).task


def loss_fits(head: Any, task: str) -> bool:
    """Whether a loss made for `head` trains the `task` head: a per-logit sigmoid loss (a binary
    one) trains every label of the multilabel head too."""
    return head == task or (task == "multilabel" and head == "binary")


def losses_for(task: str) -> list[str]:
    """The names of logitlab's own loss configs (conf/loss) that fit the `task` head."""
    folder = CONFIG_DIR / "loss"
    return sorted(
        path.stem
        for path in folder.glob("*.yaml")
        if loss_fits(OmegaConf.select(OmegaConf.load(path), "head"), task)
    )


def check_loss_fits(loss: Any, task: str, unnamed_head: str | None = None) -> None:
    """Refuse a loss config that does not train the `task` head, naming what fits; a loss that
    declares no `head` counts as `unnamed_head`."""
    head = loss.get("head", unnamed_head)
    if loss_fits(head, task):
        return
    name = loss.get("name") or loss.get("_target_")
    fits = " or ".join(f"loss={option}" for option in losses_for(task))
    if head not in ("multiclass", "binary"):
        raise ConfigError(
            f"loss={name} declares no loss.head (multiclass or binary); model={task} takes {fits}"
        )
    raise ConfigError(
        f"loss={name} is a {head} loss and does not fit model={task}; use {fits}, or model={head}"
    )


def check_missing(cfg: DictConfig) -> None:
    """Refuse a config with a required value (`???`) left unset, naming the first such key.

    Walked by hand: OmegaConf.missing_keys resolves every interpolation on its way, and the
    run folder's `${hydra:runtime.output_dir}` cannot be resolved before Hydra starts.
    """

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
    task = task_of(cfg)
    own = cfg.data.get("source") == "datamodule"  # a user's DataModule checks its own settings
    if str(cfg.data.get("_target_", "")).startswith("logitlab.data.") and not own:
        check_settings(cfg.data, task)
    check_loggers(cfg)
    check_loss_fits(cfg.loss, task)
    check_soft_targets(cfg)
    others = [family for head, family in FAMILIES.items() if head != task]
    for name, spec in (cfg.get("metrics") or {}).items():
        metric = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
        other = next((family for family in others if metric.startswith(family)), None)
        if other is not None:
            raise ConfigError(
                f"metrics.{name}: {metric} is a {other.lower()} metric and does not fit "
                f"model={task}; use metrics={task}_extra or a {task} torchmetrics class"
            )
    for rule, message in _range_rules(cfg):
        if not rule:
            raise ConfigError(message)


HARD_TARGETS = ("torch.nn.NLLLoss", "torch.nn.functional.nll_loss")  # class indices only


def check_soft_targets(cfg: DictConfig) -> None:
    """Mixup and cutmix train on soft targets: refuse a loss that takes class indices only."""
    augment = cfg.data.get("augment") or {}
    mixing = [k for k in ("mixup", "cutmix") if (augment.get(k) or 0) > 0]
    loss = cfg.get("loss") or {}
    if mixing and str(loss.get("_target_")) in HARD_TARGETS:
        raise ConfigError(
            f"data.augment.{mixing[0]}={augment.get(mixing[0])} trains on soft targets, which "
            f"loss={loss.get('name') or loss.get('_target_')} cannot take (it takes class "
            "indices); use loss=cross_entropy"
        )


def _range_rules(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(holds, message) for every value that has a valid range."""
    lr = cfg.optimizer.get("lr", 1.0)
    seed = cfg.get("seed", 0)
    classes, model_classes = cfg.data.get("num_classes"), cfg.model.get("num_classes")
    net = cfg.model.get("net") or {}
    hidden = list(net.get("hidden_sizes", [1]) or [])
    dropout = net.get("dropout", 0.0)
    epochs, steps = cfg.trainer.get("max_epochs", 1), cfg.trainer.get("max_steps", -1)
    name, task = cfg.get("run_name"), cfg.get("task_name", "train")
    trainer, optimizer, loss = cfg.trainer, cfg.optimizer, cfg.get("loss") or {}
    devices, precision = trainer.get("devices", 1), trainer.get("precision")
    accumulate, every = (
        trainer.get("accumulate_grad_batches", 1),
        trainer.get("check_val_every_n_epoch", 1),
    )
    decay, betas = optimizer.get("weight_decay", 0.0), list(optimizer.get("betas") or [])
    smoothing = loss.get("label_smoothing", 0.0)
    schedule = cfg.model.get("scheduler") or {}
    interval = schedule.get("interval", SCHEDULE_KEYS["interval"])
    frequency = schedule.get("frequency", SCHEDULE_KEYS["frequency"])
    warmup = schedule.get("warmup_epochs", 0.0)
    ema = (cfg.get("callbacks") or {}).get("ema") or {}
    ema_decay, every_ema = ema.get("decay"), ema.get("update_every_n_steps", 1)
    return [
        (
            ema_decay is None or (isinstance(ema_decay, int | float) and 0 < ema_decay < 1),
            f"callbacks.ema.decay={ema_decay} must be in (0, 1), e.g. 0.999 (null: no EMA)",
        ),
        (
            isinstance(every_ema, int) and every_ema >= 1,
            f"callbacks.ema.update_every_n_steps={every_ema} must be >= 1",
        ),
        (
            str(interval) in ("step", "epoch"),
            f"scheduler.interval={interval} must be step or epoch (when the schedule is stepped)",
        ),
        (
            isinstance(frequency, int) and frequency >= 1,
            f"scheduler.frequency={frequency} must be >= 1 (step every N steps or epochs)",
        ),
        (
            isinstance(warmup, int | float) and warmup >= 0,
            f"scheduler.warmup_epochs={warmup} must be >= 0 (0: no warmup)",
        ),
        (
            name is None
            or (str(name) not in ("", ".", "..") and not set(str(name)) & {"/", "\\", "\0"}),
            f"run_name={name} must be a plain name (no / or \\): it names the run's folder of "
            "event files, inside the run; e.g. run_name=baseline_lr3",
        ),
        (
            str(task) not in ("", ".", "..") and not set(str(task)) & {"/", "\\", "\0"},
            f"task_name={task} must be a plain name (no / or \\): it names the folder of its "
            "runs under paths.output_root; e.g. task_name=digits_baseline",
        ),
        (
            name is None or len(str(name)) <= MAX_NAME,
            f"run_name is {len(str(name))} characters; it names a folder: keep it to {MAX_NAME}",
        ),
        (
            devices == "auto"
            or (isinstance(devices, int) and (devices > 0 or devices == -1))
            or (OmegaConf.is_list(devices) and len(devices) > 0),
            f"trainer.devices={devices} must be a positive count, -1 (all), auto, or a list of "
            "device indices, e.g. trainer.devices=1",
        ),
        (
            precision is None or str(precision) in PRECISIONS,
            f"trainer.precision={precision} is not a precision Lightning knows; use one of "
            f"{', '.join(p for p in PRECISIONS if '-' in p)}",
        ),
        (
            not (str(trainer.get("accelerator")) == "cpu" and str(precision) in HALF),
            f"trainer.precision={precision} on the CPU: float16 underflows there and the loss "
            "turns NaN; use trainer.precision=32-true or bf16-mixed (float16 is for GPUs)",
        ),
        (
            isinstance(accumulate, int) and accumulate >= 1,
            f"trainer.accumulate_grad_batches={accumulate} must be >= 1 (1: no accumulation)",
        ),
        (
            every is None or (isinstance(every, int) and every >= 1),
            f"trainer.check_val_every_n_epoch={every} must be >= 1 (or null, with "
            "trainer.val_check_interval)",
        ),
        (
            isinstance(decay, int | float) and decay >= 0,
            f"optimizer.weight_decay={decay} must be >= 0, e.g. optimizer.weight_decay=1e-4",
        ),
        (
            not betas or (len(betas) == 2 and all(0 <= b < 1 for b in betas)),
            f"optimizer.betas={betas} must be two numbers in [0, 1), e.g. [0.9,0.999]",
        ),
        (
            smoothing is None or 0 <= smoothing <= 1,
            f"loss.label_smoothing={smoothing} must be in [0, 1], e.g. loss.label_smoothing=0.1",
        ),
        (
            isinstance(lr, int | float) and lr > 0,
            f"optimizer.lr={lr} must be a positive number, e.g. optimizer.lr=1e-3",
        ),
        (
            epochs is None or epochs >= 0 or (epochs == -1 and steps > 0),
            f"trainer.max_epochs={epochs} must be >= 0 (-1, unbounded, needs trainer.max_steps)",
        ),
        (
            epochs != 0 or not cfg.get("train", True) or cfg.get("resume") is not None,
            "trainer.max_epochs=0 trains nothing, and the test would measure untrained weights; "
            "train with trainer.max_epochs>=1, or test without training: train=false",
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
            model_classes is None or classes is None or model_classes == classes,
            f"model.num_classes={model_classes} contradicts data.num_classes={classes}; set "
            "data.num_classes instead (the model follows it)",
        ),
    ]


# Lightning's own keys of a scheduler node, with their defaults (models/schedules.py)
SCHEDULE_KEYS = {"interval": "epoch", "frequency": 1, "monitor": "val/loss"}

# Nodes whose keys are their target's arguments, and the arguments logitlab gives itself.
ARGUMENTS = {
    "optimizer": ("params",),
    # the optimizer, lengths from the Trainer, Lightning's keys (models/schedules.py)
    "model.scheduler": ("optimizer", "total_steps", "steps_per_epoch", *SCHEDULE_KEYS),
    "model.net": ("in_shape", "num_outputs"),
    "loss": ("name", "head", "input", "weight", "pos_weight"),
}


def check_arguments(node: DictConfig, key: str, given: tuple[str, ...]) -> None:
    """Refuse a key (a typo, or a `+key`) that `node`'s target does not take as an argument."""
    import inspect

    from hydra.utils import get_object

    target = node.get("_target_")
    try:
        parameters = inspect.signature(get_object(target)).parameters
    except (TypeError, ValueError, ImportError, AttributeError):
        return  # no signature to check against (or reported where it is imported)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for name in map(str, node):
        if name.startswith("_") or name in parameters or name in given:
            continue
        takes = ", ".join(p for p in parameters if p not in ("self", *given))
        raise ConfigError(
            f"{key}.{name} is not an argument of {target} (it takes {takes}); check the "
            "spelling, or remove the key"
        )


def inside_run(cfg: DictConfig) -> None:
    """Refuse a checkpoint folder or the Trainer's root outside the run's own folder: every
    write of a run stays in the folder its launch claimed."""
    run = Path(cfg.paths.output_dir).resolve()
    places = {"trainer.default_root_dir": cfg.trainer.get("default_root_dir")}
    for name, entry in (cfg.get("callbacks") or {}).items():
        if isinstance(entry, DictConfig) and entry.get("dirpath") is not None:
            places[f"callbacks.{name}.dirpath"] = entry.get("dirpath")
    for key, place in places.items():
        if place is not None and not Path(str(place)).resolve().is_relative_to(run):
            raise ConfigError(
                f"{key}={place} lies outside the run's folder {run}; a run writes only into "
                "its own folder (leave the key to its default)"
            )


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
    inside_run(cfg)
    for key, given in ARGUMENTS.items():
        node = OmegaConf.select(cfg, key)
        if isinstance(node, DictConfig) and node.get("_target_"):
            check_arguments(node, key, given)
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
