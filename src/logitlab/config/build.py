"""One build path for data and model, shared by train, eval, predict and resume."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from logitlab.config.instantiate import build_target, instantiate, instantiate_transforms
from logitlab.config.rules import model_class
from logitlab.errors import ConfigError


def build(
    cfg: DictConfig,
    stage: str = "fit",
    splits_file: str | None = None,
    stats_file: str | None = None,
    loss: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """The run's DataModule (set up) and its head around the network, from one config; `loss`
    (a checkpoint's) replaces the config's."""
    head = model_class(cfg)
    datamodule = build_data(cfg, head.task, stage, splits_file, stats_file)
    return datamodule, build_model(cfg, head, datamodule, loss)


def build_data(
    cfg: DictConfig,
    task: str,
    stage: str = "fit",
    splits_file: str | None = None,
    stats_file: str | None = None,
) -> Any:
    """The run's DataModule for `cfg`, loaded and validated (setup) once.

    A `data.num_classes` left null is filled in `cfg` from the data (class folders, CSV labels),
    so `${data.num_classes}` in the model and metrics configs resolves to it.
    """
    extra: dict[str, Any] = {"splits_file": splits_file} if splits_file else {}
    if stats_file:
        extra["stats_file"] = stats_file
    node = cfg.data.get("transforms")
    transforms: dict[str, Any] = (
        OmegaConf.to_container(node) if isinstance(node, DictConfig) else {}  # type: ignore[assignment]
    )
    if transforms.get("extra"):  # built here: a dtype named by its string becomes the dtype
        built = instantiate_transforms(transforms["extra"], "data.transforms.extra")
        extra["transforms"] = {**transforms, "extra": built}
    datamodule = instantiate(cfg.data, task=task, **extra)
    if stage == "fit":
        datamodule.prepare_data()
    datamodule.setup(stage)
    if cfg.data.get("num_classes") is None:
        cfg.data.num_classes = datamodule.dataset_num_classes
    return datamodule


def loss_config(cfg: DictConfig, datamodule: Any) -> dict[str, Any]:
    """The loss config as a plain dict, with the class weights the data asks for."""
    loss: dict[str, Any] = OmegaConf.to_container(cfg.loss, resolve=True)  # type: ignore[assignment]
    name = loss.get("name", cfg.loss.get("_target_"))
    for key, value in (("pos_weight", datamodule.pos_weight), ("weight", datamodule.class_weight)):
        if value is None:
            continue
        if key not in loss:
            raise ConfigError(
                f"data.balance={datamodule.balance} sets the loss's {key}, which loss={name} "
                f"does not take; use a loss with {key} or data.balance=null"
            )
        loss[key] = value
    return loss


def build_net(cfg: DictConfig, head: Any, datamodule: Any) -> Any:
    """The network of `model/net`, given the data's sample shape and the head's output width."""
    return build_target(
        cfg.model.net,
        "model.net",
        "; it takes in_shape and num_outputs from logitlab and its own arguments from the YAML",
        in_shape=list(datamodule.input_shape),
        num_outputs=head.num_outputs(datamodule.num_classes),
    )


def build_model(
    cfg: DictConfig, head: Any, datamodule: Any, loss: dict[str, Any] | None = None
) -> Any:
    """The `head` class of `cfg.model` around the network of `model/net`, with the run's loss."""
    settings: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    for key in ("_target_", "net"):
        settings.pop(key, None)
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True) if cfg.get("metrics") else {}
    if "num_classes" in settings and settings["num_classes"] != datamodule.num_classes:
        raise ConfigError(
            f"model.num_classes={settings['num_classes']} contradicts the data, which has "
            f"{datamodule.num_classes} classes (data={datamodule.source}); leave model.num_classes "
            "to follow data.num_classes"
        )
    return head(
        net=build_net(cfg, head, datamodule),
        loss=loss or loss_config(cfg, datamodule),
        metrics=metrics,
        **settings,
    )
