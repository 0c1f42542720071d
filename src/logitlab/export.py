"""`python -m logitlab.export run_dir=DIR [format=onnx|torchscript] [ckpt=best|last|PATH]`
(console script logitlab-export).

Writes the run's network with its standardisation and, when the run was calibrated for that
checkpoint, its calibration (temperature, or Platt) folded in: the exported model maps raw
inputs (the units predict takes) to class probabilities, for any batch size. Beside it,
`<name>.json` records what a predictor needs without torch: class names, input shape, head,
the training columns and pixel units, the calibration, the opset and torch versions.
`python -m logitlab.predict model=<run>/export/model.onnx input=...` runs it with onnxruntime.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

from logitlab.errors import ConfigError, first_line, user_errors

USAGE = """python -m logitlab.export run_dir=DIR [format=onnx|torchscript] [ckpt=best|last|PATH]

Writes <run_dir>/export/model.onnx (or model.pt) and model.json: the network with the run's
standardisation and calibration folded in, raw inputs to probabilities, any batch size.
  run_dir  the run folder (outputs/<task_name>/<stamp>)
  format   onnx (default; needs pip install -e '.[export]') or torchscript
  ckpt     best (default), last, or a .ckpt path"""
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
OPSET = 18


def shipped_module(model: Any, stats: Any, calibration: dict[str, Any] | None, task: str) -> Any:
    """The network between the run's standardisation and its probabilities (calibrated)."""
    import torch
    from torch import nn

    from logitlab.uncertainty.calibration import calibrated_probs

    fitted = {k: float(v) for k, v in (calibration or {}).items() if k in ("temperature", "a", "b")}

    class Shipped(nn.Module):
        """Raw inputs (N, ...) to class probabilities (N, C), through predict's own
        calibrated_probs: one definition of the calibration, traced into the graph."""

        def __init__(self) -> None:
            super().__init__()
            self.net = model.net  # the head's network alone: a LightningModule does not trace
            self.mean = nn.Buffer(stats.mean.clone() if stats else torch.zeros(1))
            self.std = nn.Buffer(stats.std.clone() if stats else torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.net((x - self.mean) / self.std)
            if task == "binary":  # one logit per sample, as the binary head's forward
                logits = logits.squeeze(-1)
            return calibrated_probs(logits, fitted or None, task)

    return Shipped().eval()


def export(run_dir: str, format: str = "onnx", ckpt: str = "best") -> Path:
    """Export the run's network; returns the written model's path."""
    import torch

    from logitlab.run.files import atomic_path, write_json
    from logitlab.run.restore import (
        build_from_run,
        find_checkpoint,
        load_checkpoint,
        load_run_config,
    )
    from logitlab.uncertainty.calibration import for_checkpoint

    if format not in FORMATS:
        raise ConfigError(f"format={format} is not one of {', '.join(FORMATS)}")
    folder, cfg = load_run_config(run_dir)
    path = find_checkpoint(folder, ckpt)
    datamodule, model = build_from_run(cfg, folder, load_checkpoint(path), path)
    if model.task == "multilabel":  # the shipped predictor writes one class per sample
        raise ConfigError(
            f"{run_dir} trains the multilabel head, which export does not ship yet; predict with "
            f"python -m logitlab.predict run_dir={run_dir}"
        )
    calibration = for_checkpoint(folder, path)
    module = shipped_module(model.eval(), datamodule.stats, calibration, model.task)
    example = torch.zeros(2, *datamodule.input_shape)
    target = folder / "export" / FORMATS[format]
    target.parent.mkdir(exist_ok=True)
    with atomic_path(target) as partial, torch.inference_mode(False), torch.no_grad():
        if format == "onnx":
            onnx_export(module, example, partial)
        else:
            torch.jit.save(torch.jit.trace(module, example), str(partial))
    source = datamodule.source_info
    write_json(
        target.with_suffix(".json"),
        {
            "format": format,
            "model": target.name,
            "head": model.task,
            "class_names": datamodule.label_names(),
            "input_shape": list(datamodule.input_shape),
            "feature_names": list(datamodule.feature_names or []),
            "pixel_max": source.get("pixel_max"),
            "table": {k: source[k] for k in ("header", "target_index") if k in source},
            "calibration": (calibration or {}).get("method", "none"),
            "checkpoint": str(path.relative_to(folder))
            if path.is_relative_to(folder)
            else str(path),
            "opset": OPSET if format == "onnx" else None,
            "torch": torch.__version__,
        },
    )
    return target


def onnx_export(module: Any, example: Any, path: Path) -> None:
    """torch.onnx.export (the dynamo exporter) with a dynamic batch size; a layer it cannot
    export is named in one line."""
    import torch

    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise ConfigError(
            "format=onnx needs the onnx, onnxscript and onnxruntime packages; pip install -e "
            "'.[export]' (or format=torchscript)"
        ) from None
    batch = torch.export.Dim("batch", min=1)
    try:
        with silenced_stderr():  # a failing export dumps its graphs there: the line below says it
            program = torch.onnx.export(
                module, (example,), dynamo=True, opset_version=OPSET, verbose=False,
                dynamic_shapes={"x": {0: batch}}, input_names=["x"], output_names=["probs"],
            )  # fmt: skip
    except Exception as error:  # the exporter's report is pages long: its root cause, placed
        root: BaseException = error
        while root.__cause__ is not None:
            root = root.__cause__
        raise ConfigError(
            f"format=onnx: torch.onnx.export cannot export this network{where(module, root)}: "
            f"{first_line(root)}; change that line, or try format=torchscript"
        ) from None
    assert program is not None  # dynamo=True returns the program
    program.save(str(path))


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """sys.stderr and file descriptor 2 to /dev/null for the block (what torch's loggers and
    C++ write to), wherever sys.stderr points."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        with open(os.devnull, "w") as null, redirect_stderr(null):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def where(module: Any, cause: BaseException) -> str:
    """` at <layer> (<class>, <file>:<line>)` for the source line a torch.export error names."""
    import inspect
    import re

    found = re.search(r"\(([^()\s]+\.py):(\d+) in \w+\)", str(cause))
    if not found:
        return ""
    file, line = found.groups()
    for name, layer in module.named_modules():
        source = inspect.getsourcefile(type(layer)) or ""
        if name and source.endswith(file):
            kind = f"{type(layer).__module__}.{type(layer).__qualname__}"
            return f" at layer {name.removeprefix('net.') or 'net'} ({kind}, {file}:{line})"
    return f" at {file}:{line}"


def main(argv: list[str] | None = None) -> None:
    """Parse key=value arguments and export."""
    from logitlab.run.arguments import parse_args

    with user_errors():
        args = parse_args(
            sys.argv[1:] if argv is None else argv,
            {"run_dir": None, "format": "onnx", "ckpt": "best"},
            USAGE,
        )
        written = export(args["run_dir"], args["format"], args["ckpt"])
    print(f"exported to {written} (and {written.with_suffix('.json').name} beside it)")


if __name__ == "__main__":
    main()
