"""`python -m logitlab.calibrate run_dir=DIR [ckpt=best|last|PATH] [method=auto|temperature|platt]`.

Fits a calibration of a finished run's probabilities on its validation split and measures it on
its test split (console script logitlab-calibrate):

- temperature (multiclass, Guo et al. 2017): softmax(z / T) with one T > 0 minimising the
  validation NLL; found by L-BFGS on log T in float64. Every argmax, so the accuracy, is kept.
- platt (binary): sigmoid(a * z + b), a and b minimising the validation NLL (L-BFGS, float64).

Writes <run_dir>/calibration.json atomically (method, parameters, checkpoint, and on the test
split NLL, ECE with 15 bins as the dashboards bin it, Brier score and accuracy before and
after), logs the same scalars and reliability diagrams before and after to the run's
TensorBoard folder, and predict then uses it (calibrated=true by default).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from logitlab.errors import ConfigError, user_errors

USAGE = """python -m logitlab.calibrate run_dir=DIR [ckpt=best|last|PATH] [method=auto|...]
                                   [weights=ema|raw]

Fits temperature scaling (multiclass) or Platt scaling (binary) on the run's validation split
and writes <run_dir>/calibration.json with test NLL, ECE, Brier score and accuracy before/after.
  run_dir  the run folder (outputs/<task_name>/<stamp>)
  ckpt     best (default), last, or a .ckpt path
  method   auto (default: temperature for the multiclass head, platt for the binary head),
           temperature or platt
  weights  ema (default): the checkpoint's weights (their moving average with callbacks.ema);
           raw: the raw weights saved beside them; eval and predict use the fit for these only"""

METHODS = ("auto", "temperature", "platt")
N_BINS = 15
FILE = "calibration.json"


def fit_temperature(logits: Any, targets: Any) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T): L-BFGS on log T, float64."""
    import torch
    import torch.nn.functional as F

    z, y = logits.double(), targets.long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fit_platt(logits: Any, targets: Any) -> tuple[float, float]:
    """The (a, b) minimising the mean NLL of sigmoid(a * logit + b): L-BFGS, float64."""
    import torch
    import torch.nn.functional as F

    z, y = logits.double(), targets.double()
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(params[0] * z + params[1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = params.detach().tolist()
    return float(a), float(b)


def calibrated_probs(logits: Any, calibration: dict[str, Any] | None, task: str) -> Any:
    """Class probabilities (N, C) from raw logits, through the calibration when one is given."""
    import torch

    z = logits.double()
    if task == "binary":
        if calibration:
            z = calibration["a"] * z + calibration["b"]
        p = torch.sigmoid(z)
        return torch.stack([1 - p, p], dim=1).float()
    if calibration:
        z = z / calibration["temperature"]
    return torch.softmax(z, dim=1).float()


def binned(probs: Any, task: str) -> Any:
    """What the reliability bins take: P(positive) for the binary head (against the positive
    rate: torchmetrics' BinaryCalibrationError), the (N, C) probabilities otherwise (top-class
    confidence against correctness: MulticlassCalibrationError)."""
    return probs[:, 1] if task == "binary" else probs


def scores(probs: Any, targets: Any, task: str = "multiclass") -> dict[str, float]:
    """NLL, ECE (15 bins, l1), Brier score and accuracy of (N, C) probs. The binary head's ECE
    bins P(positive), its Brier score is mean((p - y)^2) as sklearn's brier_score_loss; the
    multiclass head's ECE bins the top-class confidence, its Brier score sums over classes."""
    import torch

    from logitlab.models.metrics import ReliabilityBins

    eps = torch.finfo(torch.float64).tiny
    p = probs.double()
    y = targets.long()
    nll = -torch.log(p[torch.arange(len(y)), y].clamp_min(eps)).mean()
    if task == "binary":
        brier = ((p[:, 1] - y.double()) ** 2).mean()
    else:
        brier = ((p - torch.nn.functional.one_hot(y, p.shape[1]).double()) ** 2).sum(dim=1).mean()
    bins = ReliabilityBins(n_bins=N_BINS)
    bins.update(binned(probs.float(), task), y)
    return {
        "nll": float(nll),
        "ece": float(bins.compute()["ece"]),
        "brier": float(brier),
        "acc": float((p.argmax(dim=1) == y).double().mean()),
    }


def _logits(model: Any, datamodule: Any, split: str) -> tuple[Any, Any]:
    import torch

    chunks, labels = [], []
    with torch.inference_mode():
        for x, y in datamodule.sample_batches(split):
            chunks.append(model(x).float())
            labels.append(y)
    if not chunks or not sum(len(y) for y in labels):
        raise ConfigError(f"the run has no {split} samples to calibrate with")
    return torch.cat(chunks), torch.cat(labels)


def calibrate(
    run_dir: str, ckpt: str = "best", method: str = "auto", weights: str = "ema"
) -> dict[str, Any]:
    """Fit the calibration on the validation split, measure it on the test split, record it."""
    from logitlab.config.instantiate import quiet_lightning
    from logitlab.run.files import write_json
    from logitlab.run.restore import (
        build_from_run,
        find_checkpoint,
        load_checkpoint,
        load_run_config,
    )

    if method not in METHODS:
        raise ConfigError(f"method={method} is not known; use one of {', '.join(METHODS)}")
    quiet_lightning()
    folder, cfg = load_run_config(run_dir)
    path = find_checkpoint(folder, ckpt)
    checkpoint = load_checkpoint(path)
    datamodule, model = build_from_run(cfg, folder, checkpoint, path, weights)
    task = model.task
    chosen = {"multiclass": "temperature", "binary": "platt"}[task] if method == "auto" else method
    if (chosen, task) not in (("temperature", "multiclass"), ("platt", "binary")):
        fits = "temperature" if task == "multiclass" else "platt"
        raise ConfigError(
            f"method={chosen} does not fit the {task} head of {run_dir}; use method={fits}"
        )
    val_logits, val_y = _logits(model, datamodule, "val")
    if task == "binary" and len(val_y.unique()) < 2:
        raise ConfigError(
            f"{run_dir}: the validation split holds one class only; Platt scaling needs both"
        )
    if task == "binary":
        a, b = fit_platt(val_logits, val_y)
        calibration: dict[str, Any] = {"method": "platt", "a": a, "b": b}
    else:
        calibration = {"method": "temperature", "temperature": fit_temperature(val_logits, val_y)}
    test_logits, test_y = _logits(model, datamodule, "test")
    before = scores(calibrated_probs(test_logits, None, task), test_y, task)
    after = scores(calibrated_probs(test_logits, calibration, task), test_y, task)
    record = {**calibration, "checkpoint": str(path), "val_samples": len(val_y)}
    record["weights"] = weights
    # on the split it was fitted on, the calibration can only lower the NLL (raw is a candidate)
    record["val/nll_before"] = scores(calibrated_probs(val_logits, None, task), val_y, task)["nll"]
    record["val/nll_after"] = scores(calibrated_probs(val_logits, calibration, task), val_y, task)[
        "nll"
    ]
    for name in ("nll", "ece", "brier", "acc"):
        record[f"test/{name}_before"] = before[name]
        record[f"test/{name}_after"] = after[name]
    write_json(folder / FILE, record)
    _log_tensorboard(folder, checkpoint, record, test_logits, test_y, calibration, task)
    return record


def _log_tensorboard(
    folder: Path,
    checkpoint: dict[str, Any],
    record: dict[str, Any],
    logits: Any,
    targets: Any,
    calibration: dict[str, Any],
    task: str,
) -> None:
    """The before/after scalars and reliability diagrams in the run's TensorBoard folder."""
    from logitlab.dashboards.naming import event_folder

    events = event_folder(folder)
    if events is None:
        return
    from lightning.pytorch.loggers import TensorBoardLogger

    from logitlab.dashboards.plots import reliability, scores_markdown
    from logitlab.models.metrics import ReliabilityBins

    logger = TensorBoardLogger(str(events), name="", version="")
    step = int(checkpoint.get("epoch", 0))  # the x of the run's epoch-level charts
    scores = {k[5:]: v for k, v in record.items() if k.startswith("test/")}
    logger.experiment.add_text(
        "calibration/scores", scores_markdown(scores), step
    )  # no 1-dot charts
    for when, used in (("before", None), ("after", calibration)):
        probs = calibrated_probs(logits, used, task)
        bins = ReliabilityBins(n_bins=N_BINS)
        bins.update(binned(probs, task), targets)
        result = bins.compute()
        figure = reliability(
            (result["confidence"], result["accuracy"], result["count"]), float(result["ece"])
        )
        logger.experiment.add_figure(f"calibration/reliability_{when}", figure, step)
    logger.finalize("success")


def load_calibration(run_dir: Path) -> dict[str, Any] | None:
    """The run's calibration.json, or None; a file that cannot be read is one line."""
    import json

    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        calibration = json.loads(path.read_text())
        method = calibration["method"]
        keys = {"temperature": ("temperature",), "platt": ("a", "b")}[method]
        if not all(isinstance(calibration[k], int | float) for k in keys):
            raise ValueError(keys)
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a calibration logitlab wrote; delete it or run "
            f"python -m logitlab.calibrate run_dir={run_dir}"
        ) from None
    # a fit only shrinks or stretches the logits: a scale <= 0 would reverse every prediction
    scale = calibration["temperature"] if method == "temperature" else calibration["a"]
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(calibration.get("b", 0.0))):
        name = "temperature" if method == "temperature" else "a"
        raise ConfigError(
            f"{path} holds {name}={scale}, which no fit gives (it must be a positive finite "
            f"number); delete it or run python -m logitlab.calibrate run_dir={run_dir}"
        )
    return calibration


def calibrated_scores(
    folder: Path, model: Any, datamodule: Any, checkpoint: Path, weights: str = "ema"
) -> dict[str, float]:
    """With a calibration in the run: test ECE and NLL with it and without (eval reports both)."""
    calibration = load_calibration(folder)
    if calibration is None or calibration.get("checkpoint") != str(checkpoint):
        return {}  # none, or fitted for another checkpoint
    if calibration.get("weights", "ema") != weights:
        return {}  # fitted for the checkpoint's other weights
    logits, targets = _logits(model, datamodule, "test")
    raw = scores(calibrated_probs(logits, None, model.task), targets, model.task)
    fitted = scores(calibrated_probs(logits, calibration, model.task), targets, model.task)
    return {
        "test/ece_raw": raw["ece"],
        "test/ece_calibrated": fitted["ece"],
        "test/nll_raw": raw["nll"],
        "test/nll_calibrated": fitted["nll"],
    }


def for_checkpoint(folder: Path, checkpoint: Path, weights: str = "ema") -> dict[str, Any] | None:
    """The run's calibration for `checkpoint` and `weights` (predict); one line if it was
    fitted for another."""
    calibration = load_calibration(folder)
    fitted = Path(str((calibration or {}).get("checkpoint")))
    # the same file of the run's checkpoints/, however the run folder is spelt or moved
    if calibration is not None and fitted.parts[-2:] != checkpoint.parts[-2:]:
        raise ConfigError(
            f"{folder / FILE} was fitted for {calibration.get('checkpoint')}, not {checkpoint}; "
            "predict with that ckpt, or calibrated=false, or calibrate this checkpoint "
            f"(python -m logitlab.calibrate run_dir={folder} ckpt=...)"
        )
    fitted_weights = (calibration or {}).get("weights", "ema")
    if calibration is not None and fitted_weights != weights:
        raise ConfigError(
            f"{folder / FILE} was fitted for the {fitted_weights} weights, not weights={weights}; "
            f"predict with weights={fitted_weights}, or calibrated=false, or calibrate these "
            f"(python -m logitlab.calibrate run_dir={folder} weights={weights})"
        )
    return calibration


def main(argv: list[str] | None = None) -> None:
    """Parse key=value arguments and calibrate."""
    from logitlab.run.arguments import parse_args

    defaults = {"run_dir": None, "ckpt": "best", "method": "auto", "weights": "ema"}
    with user_errors():
        args = parse_args(sys.argv[1:] if argv is None else argv, defaults, USAGE)
        record = calibrate(args["run_dir"], args["ckpt"], args["method"], args["weights"])
    parameters = (
        f"T = {record['temperature']:.4f}"
        if record["method"] == "temperature"
        else f"a = {record['a']:.4f}, b = {record['b']:.4f}"
    )
    print(f"{record['method']} scaling: {parameters} (fitted on {record['val_samples']} val)")
    print(f"{'test':<8}{'before':>10}{'after':>10}")
    for name in ("nll", "ece", "brier", "acc"):
        before, after = record[f"test/{name}_before"], record[f"test/{name}_after"]
        print(f"{name:<8}{before:>10.4f}{after:>10.4f}")
    print(f"written to {Path(args['run_dir']) / FILE}")


if __name__ == "__main__":
    main()
