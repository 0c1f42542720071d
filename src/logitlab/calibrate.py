"""`python -m logitlab.calibrate run_dir=DIR [ckpt=best|last|PATH] [method=auto|...]`.

Fits a calibration of a finished run's probabilities on its validation split and measures it on
its test split (console script logitlab-calibrate); the fits live in logitlab.uncertainty:

- temperature (multiclass) or platt (binary): writes <run_dir>/calibration.json atomically
  (method, parameters, checkpoint, and on the test split NLL, ECE with 15 bins as the
  dashboards bin it, Brier score and accuracy before and after), logs the same scores and
  reliability diagrams before and after to the run's TensorBoard folder; predict then uses it
  (calibrated=true by default).
- conformal: split-conformal prediction sets at level 1 - alpha (score lac, aps or raps), on
  top of the run's calibration when one was fitted for the same checkpoint; writes
  <run_dir>/conformal.json (threshold, test coverage, set sizes); predict adds a `set` column
  and eval reports test/coverage and test/set_size.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from logitlab.errors import ConfigError, user_errors

USAGE = """python -m logitlab.calibrate run_dir=DIR [ckpt=best|last|PATH] [method=auto|...]
                                   [weights=ema|raw] [alpha=0.1] [score=lac|aps|raps]

Fits temperature scaling (multiclass) or Platt scaling (binary) on the run's validation split
and writes <run_dir>/calibration.json with test NLL, ECE, Brier score and accuracy before/after;
method=conformal writes <run_dir>/conformal.json: prediction sets holding the true class with
probability at least 1 - alpha.
  run_dir  the run folder (outputs/<task_name>/<stamp>)
  ckpt     best (default), last, or a .ckpt path
  method   auto (default: temperature for the multiclass head, platt for the binary head),
           temperature, platt, or conformal
  weights  ema (default): the checkpoint's weights (their moving average with callbacks.ema);
           raw: the raw weights saved beside them; eval and predict use the fit for these only
  alpha    conformal: the miscoverage, in (0, 1) (default 0.1: sets hold the class 90% of the time)
  score    conformal: lac (default; the smallest sets), aps, or raps (aps with a penalty of
           lam (0.01) per class ranked beyond k_reg (1)); aps and raps draw u from seed (0)"""

METHODS = ("auto", "temperature", "platt", "conformal")
DEFAULTS = {
    "run_dir": None,
    "ckpt": "best",
    "method": "auto",
    "weights": "ema",
    "alpha": "0.1",
    "score": "lac",
    "seed": "0",
    "lam": "0.01",
    "k_reg": "1",
}


def restored(run_dir: str, ckpt: str, weights: str) -> tuple[Path, Path, dict[str, Any], Any, Any]:
    """The run folder, checkpoint path and contents, DataModule and model of a finished run."""
    from logitlab.config.instantiate import quiet_lightning
    from logitlab.run.restore import (
        build_from_run,
        find_checkpoint,
        load_checkpoint,
        load_run_config,
    )

    quiet_lightning()
    folder, cfg = load_run_config(run_dir)
    path = find_checkpoint(folder, ckpt)
    checkpoint = load_checkpoint(path)
    datamodule, model = build_from_run(cfg, folder, checkpoint, path, weights)
    return folder, path, checkpoint, datamodule, model


def calibrate(
    run_dir: str, ckpt: str = "best", method: str = "auto", weights: str = "ema"
) -> dict[str, Any]:
    """Fit the calibration on the validation split, measure it on the test split, record it."""
    from logitlab.run.files import write_json
    from logitlab.uncertainty.calibration import (
        FILE,
        calibrated_probs,
        fit_platt,
        fit_temperature,
        scores,
        split_logits,
    )

    if method not in METHODS:
        raise ConfigError(f"method={method} is not known; use one of {', '.join(METHODS)}")
    folder, path, checkpoint, datamodule, model = restored(run_dir, ckpt, weights)
    task = model.task
    if task == "multilabel":
        if method not in ("auto", "platt"):
            raise ConfigError(
                f"method={method} does not fit the multilabel head of {run_dir}; use method=platt"
            )
        record = calibrate_labels(run_dir, path, datamodule, model, weights)
        write_json(folder / FILE, record)
        return record
    chosen = {"multiclass": "temperature", "binary": "platt"}[task] if method == "auto" else method
    if (chosen, task) not in (("temperature", "multiclass"), ("platt", "binary")):
        fits = "temperature" if task == "multiclass" else "platt"
        raise ConfigError(
            f"method={chosen} does not fit the {task} head of {run_dir}; use method={fits}"
        )
    val_logits, val_y = split_logits(model, datamodule, "val")
    if task == "binary" and len(val_y.unique()) < 2:
        raise ConfigError(
            f"{run_dir}: the validation split holds one class only; Platt scaling needs both"
        )
    if task == "binary":
        a, b = fit_platt(val_logits, val_y)
        calibration: dict[str, Any] = {"method": "platt", "a": a, "b": b}
    else:
        calibration = {"method": "temperature", "temperature": fit_temperature(val_logits, val_y)}
    test_logits, test_y = split_logits(model, datamodule, "test")
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


def calibrate_labels(run_dir: str, path: Path, datamodule: Any, model: Any, weights: str) -> dict:
    """The multilabel head: Platt scaling per label, then each label's F1-maximising threshold,
    both fitted on the validation split; scored on the test split before and after."""
    from logitlab.uncertainty.calibration import calibrated_probs, split_logits
    from logitlab.uncertainty.thresholds import f1_thresholds, fit_label_platt, label_scores

    val_logits, val_y = split_logits(model, datamodule, "val")
    calibration = fit_label_platt(val_logits, val_y, datamodule.label_names(), run_dir)
    val_probs = calibrated_probs(val_logits, calibration, "multilabel")
    calibration["thresholds"] = f1_thresholds(val_probs, val_y)
    test_logits, test_y = split_logits(model, datamodule, "test")
    before = label_scores(calibrated_probs(test_logits, None, "multilabel"), test_y, None)
    after = label_scores(
        calibrated_probs(test_logits, calibration, "multilabel"), test_y, calibration["thresholds"]
    )
    record = {**calibration, "checkpoint": str(path), "val_samples": len(val_y)}
    record["weights"] = weights
    for name in before:
        record[f"test/{name}_before"] = before[name]
        record[f"test/{name}_after"] = after[name]
    return record


def conformalize(run_dir: str, ckpt: str, weights: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Fit the conformal threshold on the validation split, measure it on the test split."""
    from logitlab.run.files import write_json
    from logitlab.uncertainty import conformal
    from logitlab.uncertainty.calibration import fitted_for, load_calibration

    conformal.check(settings["alpha"], settings["score"], settings["lam"], settings["k_reg"])
    folder, path, _, datamodule, model = restored(run_dir, ckpt, weights)
    if model.task == "multilabel":
        raise ConfigError(
            f"method=conformal makes sets of one class per sample and does not fit the "
            f"multilabel head of {run_dir}; calibrate it with method=platt (per-label thresholds)"
        )
    calibration = load_calibration(folder)
    if calibration is not None and not fitted_for(calibration, path, weights):
        calibration = None  # fitted for another checkpoint or weights: the raw probabilities
    used = conformal.calibration_parameters(calibration)
    record = {**settings, "checkpoint": str(path), "weights": weights, "calibration": used}
    val_probs, val_y = conformal.split_probs(model, datamodule, "val", used)
    u = conformal.uniforms(datamodule.sample_rows("val"), settings["seed"], "val")
    record = conformal.fit(val_probs, val_y, u, record)
    test_probs, test_y = conformal.split_probs(model, datamodule, "test", used)
    u = conformal.uniforms(datamodule.sample_rows("test"), settings["seed"], "test")
    measured = conformal.measure(conformal.prediction_sets(test_probs, record, u), test_y)
    record |= {f"test/{name}": value for name, value in measured.items()}
    write_json(folder / conformal.FILE, record)
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
    from logitlab.uncertainty.calibration import N_BINS, binned, calibrated_probs

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


def conformal_settings(args: dict[str, str]) -> dict[str, Any]:
    """alpha, score, seed, lam and k_reg as numbers, each refused in one line if it is none."""
    settings: dict[str, Any] = {"score": args["score"]}
    for key, kind in (("alpha", float), ("lam", float), ("seed", int), ("k_reg", int)):
        try:
            settings[key] = kind(args[key])
        except ValueError:
            raise ConfigError(
                f"{key}={args[key]} must be a number (e.g. {DEFAULTS[key]})"
            ) from None
    return settings


def main(argv: list[str] | None = None) -> None:
    """Parse key=value arguments and calibrate."""
    from logitlab.run.arguments import parse_args

    with user_errors():
        args = parse_args(sys.argv[1:] if argv is None else argv, DEFAULTS, USAGE)
        if args["method"] == "conformal":
            settings = conformal_settings(args)
            conformal_record = conformalize(
                args["run_dir"], args["ckpt"], args["weights"], settings
            )
        else:
            record = calibrate(args["run_dir"], args["ckpt"], args["method"], args["weights"])
    if args["method"] == "conformal":
        print_conformal(conformal_record, Path(args["run_dir"]))
        return
    if "thresholds" in record:
        parameters = f"per label, thresholds {', '.join(f'{t:.3f}' for t in record['thresholds'])}"
    elif record["method"] == "temperature":
        parameters = f"T = {record['temperature']:.4f}"
    else:
        parameters = f"a = {record['a']:.4f}, b = {record['b']:.4f}"
    print(f"{record['method']} scaling: {parameters} (fitted on {record['val_samples']} val)")
    print(f"{'test':<8}{'before':>10}{'after':>10}")
    names = [k[5:-7] for k in record if k.startswith("test/") and k.endswith("_before")]
    for name in names:
        before, after = record[f"test/{name}_before"], record[f"test/{name}_after"]
        print(f"{name:<8}{before:>10.4f}{after:>10.4f}")
    print(f"written to {Path(args['run_dir']) / 'calibration.json'}")


def print_conformal(record: dict[str, Any], run_dir: Path) -> None:
    """The conformal fit in a few lines."""
    on = (
        f"on {record['calibration']['method']}" if record["calibration"] else "on raw probabilities"
    )
    print(
        f"conformal {record['score']} sets, alpha = {record['alpha']} {on}: threshold "
        f"{record['quantile']:.4f} (fitted on {record['val_samples']} val)"
    )
    print(
        f"test coverage {record['test/coverage']:.4f}, mean set size {record['test/set_size']:.3f}"
    )
    sizes = ", ".join(f"{size}: {n}" for size, n in record["test/set_size_histogram"].items())
    print(f"set sizes (size: samples) {sizes}")
    print(f"written to {run_dir / 'conformal.json'}")


if __name__ == "__main__":
    main()
