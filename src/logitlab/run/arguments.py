"""The `key=value` command lines of eval, predict and calibrate (Hydra's override style)."""

from __future__ import annotations

from typing import Any

from logitlab.errors import ConfigError


def parse_args(
    argv: list[str], allowed: dict[str, Any], usage: str, required: str | None = "run_dir"
) -> dict[str, Any]:
    """`key=value` arguments (Hydra's override style) checked against `allowed` (the defaults);
    the `required` one must be given."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage)
        raise SystemExit(0)
    values = dict(allowed)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            keys = ", ".join(f"{k}=..." for k in allowed)
            raise ConfigError(f"unknown argument '{arg}'; this command takes {keys}")
        values[key] = value
    if required and not values.get(required):
        raise ConfigError(f"{required} is required; usage: {usage.splitlines()[0]}")
    return values
