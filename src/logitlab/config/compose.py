"""The command line composed before Hydra runs it, so a mistake costs one line: Hydra's own
multi-line errors made one, the config checks run without torch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf

from logitlab.config.rules import check_config
from logitlab.errors import ConfigError, first_line


def preflight(argv: list[str], config_dir: str) -> DictConfig | None:
    """Compose the command line once before Hydra runs it, so a mistake costs one clear line.

    Hydra's own report of an unknown option or key or a wrong type spans several lines; this
    turns it into one. A sweep (-m) is composed once per value of each swept key, so a bad value
    is refused before any job starts; Optuna's search spaces are left to the sweeper. Then the
    checks that need only the config run (check_config), without importing torch. Returns the
    composed config (the first value of each swept key), or None for Hydra's own flags.
    """
    if any(arg.startswith("-") for arg in argv):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(argv)
    except OverrideParseException as error:
        line = first_line(error)
        raise ConfigError(
            f"cannot parse an override ({line}); check its brackets and quotes"
        ) from None
    plain = [arg for arg, o in zip(argv, parsed, strict=True) if not o.is_sweep_override()]
    swept = [
        (o.get_key_element(), list(o.sweep_string_iterator()))
        for o in parsed
        if o.is_sweep_override() and o.is_discrete_sweep() and not isinstance(o.value(), Glob)
    ]  # glob(...) is expanded by Hydra, against the group's options
    first = [f"{key}={values[0]}" for key, values in swept if values]
    cfg = compose_train(plain + first, config_dir)
    variants = [
        compose_train([*plain, *first, f"{key}={value}"], config_dir)
        for key, values in swept
        for value in values[1:]
    ]
    searched = any(o.get_key_element() == "hparams_search" for o in parsed)
    if not cfg.get("resume") and not searched:
        for composed in (cfg, *variants):
            check_config(composed)
            early_data_checks(composed)
    return cfg


def early_data_checks(cfg: DictConfig) -> None:
    """The data mistakes a file's first lines show (a CSV's target column), answered before
    torch and Lightning are imported; the full checks run when the data load."""
    data: Any = cfg.get("data") or {}
    if data.get("source") == "csv" and data.get("path"):
        from pathlib import Path

        from logitlab.data.tables import check_target

        check_target(Path(str(data.path)), data.get("target"), data.get("header"))


def compose_train(argv: list[str], config_dir: str) -> DictConfig:
    """conf/train.yaml with `argv`; Hydra's multi-line errors become one ConfigError line."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            return compose("train", overrides=argv)
    except MissingConfigException as error:
        found = re.search(r"Could not find '([^']+)/([^']+)'", str(error))
        options = re.findall(r"^\t(\S+)$", str(error), flags=re.MULTILINE)
        if not found:
            raise ConfigError(first_line(error)) from None
        group, option = found.groups()
        raise ConfigError(
            f"{group}={option} is not an option of '{group}'; choose one of {', '.join(options)}"
        ) from None
    except ConfigCompositionException as error:
        cause = error.__cause__
        unknown = re.search(r"Could not override '([^']+)'", str(error))
        if unknown:
            key = unknown.group(1)
            nearest = nearest_key(key, [a for a in argv if a.split("=", 1)[0] != key], config_dir)
            spelling = f"did you mean {nearest}? " if nearest else "check the spelling, "
            raise ConfigError(
                f"{key} is not a key of the config (python -m logitlab.train --cfg job lists "
                f"them); {spelling}or add a new key with +{key}=..."
            ) from None
        if cause is not None:
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            key = next((line for line in lines if line.startswith("full_key:")), "")
            override = str(error).removeprefix("Error merging override ")
            raise ConfigError(f"{override}: {lines[0]} ({key})") from None
        raise ConfigError(" ".join(str(error).split())) from None
    except OverrideParseException as error:
        first = first_line(error)
        raise ConfigError(
            f"cannot parse an override ({first}); check its brackets and quotes"
        ) from None
    finally:
        GlobalHydra.instance().clear()


def nearest_key(key: str, others: list[str], config_dir: str) -> str | None:
    """The key of the config nearest to a misspelt one (difflib), among its siblings."""
    import difflib

    parent, _, name = key.rpartition(".")
    try:
        cfg = compose_train(others, config_dir)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except ConfigError:
        return None
    if not isinstance(node, DictConfig):
        return None
    found = difflib.get_close_matches(name, [str(k) for k in node], n=1, cutoff=0.75)
    return f"{parent}.{found[0]}".lstrip(".") if found else None


VALUE_GROUPS = ("experiment", "hparams_search", "debug")  # groups that set values of others


def changes(cfg: DictConfig) -> dict[str, Any] | None:
    """What this run's config sets beyond its groups' defaults: {"groups": {group: option}} and
    {key: value} for every value that differs from conf/train.yaml composed with those groups
    alone (an experiment's, a debug preset's and the command line's). None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    from logitlab.config import CONFIG_DIR

    if not HydraConfig.initialized():
        return None
    choices = {
        str(group): str(option)
        for group, option in HydraConfig.get().runtime.choices.items()
        if option is not None and not str(group).startswith("hydra")
    }
    groups = [f"{g}={o}" for g, o in choices.items() if g not in VALUE_GROUPS]
    searchpath = list(HydraConfig.get().searchpath or [])  # a user's own config groups
    groups += [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    try:
        if GlobalHydra.instance().is_initialized():  # inside the app
            base = dict(_leaves(compose("train", overrides=groups)))
        else:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                base = dict(_leaves(compose("train", overrides=groups)))
    except Exception:  # the console must not stop a run: the whole tree instead
        return None
    mine = dict(_leaves(cfg))
    changed: dict[str, Any] = {"groups": choices}
    for key, value in mine.items():
        if key.split(".")[0] not in ("hydra", "paths") and base.get(key, _ABSENT) != value:
            changed[key] = OmegaConf.select(cfg, key) if OmegaConf.is_config(cfg) else value
    return changed


_ABSENT = object()


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, unresolved value) of every leaf of a config; lists are leaves."""
    container = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    if isinstance(container, dict) and container:
        for key, value in container.items():
            yield from _leaves(value, f"{prefix}.{key!s}" if prefix else str(key))
    else:
        yield prefix, container
