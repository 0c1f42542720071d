"""`python -m logitlab.eval run_dir=DIR [ckpt=best|last|PATH]` (console script logitlab-eval).

Rebuilds data and model from the run's own saved config and splits, tests the checkpoint,
writes <run_dir>/eval_metrics.json and a table of them to the run's TensorBoard (TEXT tab); with
the run's calibration.json and conformal.json, test ECE and NLL with and without the calibration
and the prediction sets' test/coverage and test/set_size.
"""

from __future__ import annotations

import sys
from pathlib import Path

from logitlab.errors import closed_pipe_quiet, user_errors
from logitlab.run.layout import RunFolder

USAGE = """python -m logitlab.eval run_dir=DIR [ckpt=best|last|PATH] [weights=ema|raw]

Tests a checkpoint of a finished run on that run's test split, with that run's config.
  run_dir  the run folder (outputs/<task_name>/<stamp>); a cv=K sweep folder, or RUN_A,RUN_B,...:
           the ensemble of their best checkpoints on the shared test split
  ckpt     best (default): the best val/acc checkpoint; last: last.ckpt; or a .ckpt path
  weights  ema (default): the checkpoint's weights, their moving average when the run kept one
           (callbacks.ema.decay); raw: the raw weights saved beside them"""


def evaluate(run_dir: str, ckpt: str = "best", weights: str = "ema") -> dict[str, float]:
    """Test `ckpt` of `run_dir` and record the result in the run folder."""
    import lightning as L

    from logitlab.config.instantiate import quiet_lightning
    from logitlab.run.files import write_json
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
    trainer = L.Trainer(
        accelerator=cfg.trainer.get("accelerator", "cpu"),
        devices=1,
        precision=cfg.trainer.get("precision", "32-true"),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    results = trainer.callback_metrics  # what the loggers are not given too (test/scores)
    metrics = {name: float(value) for name, value in sorted(results.items())}
    from logitlab.dashboards.naming import event_folder
    from logitlab.uncertainty import conformal
    from logitlab.uncertainty.calibration import calibrated_scores

    metrics.update(calibrated_scores(folder, model, datamodule, path, weights))
    metrics.update(conformal.eval_scores(folder, model, datamodule, path, weights))
    written = {**metrics, "checkpoint": str(path), "weights": weights}
    write_json(RunFolder(folder).eval_metrics, written)
    events = event_folder(folder)
    if events is not None:  # beside the run's own curves
        from lightning.pytorch.loggers import TensorBoardLogger

        from logitlab.dashboards.plots import scores_markdown

        logger = TensorBoardLogger(str(events), name="", version="")
        step = int(checkpoint.get("epoch", 0))  # the x of the run's epoch-level charts
        table = scores_markdown({n.removeprefix("test/"): v for n, v in metrics.items()})
        logger.experiment.add_text("eval/metrics", table, step)  # TEXT: no single-dot charts
        logger.finalize("success")
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Parse key=value arguments and evaluate."""
    from logitlab.run.arguments import parse_args

    with user_errors():
        args = parse_args(
            sys.argv[1:] if argv is None else argv,
            {"run_dir": None, "ckpt": "best", "weights": "ema"},
            USAGE,
        )
        if is_ensemble(args["run_dir"]):
            evaluate_ensemble(args["run_dir"])
            return
        metrics = evaluate(args["run_dir"], args["ckpt"], args["weights"])
    width = max(len(n) for n in metrics)
    with closed_pipe_quiet():
        for name, value in metrics.items():
            print(f"{name:<{width}}  {value:.6f}")
        print(f"written to {Path(args['run_dir']) / 'eval_metrics.json'}")


def is_ensemble(run_dir: str) -> bool:
    """Whether `run_dir` names several runs: a list of run folders, or a sweep folder."""
    folder = Path(run_dir)
    return "," in run_dir or (folder.is_dir() and any(folder.glob("*/.hydra/config.yaml")))


def evaluate_ensemble(run_dir: str) -> None:
    """Fold ensembles of a cv sweep (per configuration) or of the runs listed: printed, and for
    a sweep written to <sweep>/ensemble_metrics.json (a list has no folder of its own: nothing
    is written outside the runs)."""
    from logitlab.results.ensemble import ensemble, members
    from logitlab.run.files import write_json

    results = {name: ensemble(folders) for name, folders in members(run_dir).items()}
    listed = "," in run_dir
    written = None if listed else write_json(Path(run_dir) / "ensemble_metrics.json", results)
    with closed_pipe_quiet():
        for name, metrics in results.items():
            print(name)
            for key, value in metrics.items():
                shown = f"{value:.6f}" if isinstance(value, float) else str(value)
                print(f"  {key:<18}  {shown}")
        if written is not None:
            print(f"written to {written}")


if __name__ == "__main__":
    main()
