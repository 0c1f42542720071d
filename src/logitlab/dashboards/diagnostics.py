"""TensorBoard views beyond loss and accuracy: calibration, mistakes, curves, hyperparameters.

`Diagnostics` (a callback) collects the probabilities of every validation and test batch into
torchmetrics objects and logs, per epoch: ECE, macro F1, per-class accuracy (multiclass) or
AUROC and average precision (binary); every `image_every_n_epochs` epochs and always at test:
the confusion matrix as a heatmap (and as a text table of counts), a reliability diagram, and
for the binary head a native TensorBoard PR curve and a ROC image. `log_run_summary` writes the
HPARAMS row (the hyperparameters that matter, overridden ones first: dashboards/naming.py) with the
final metrics, and the config and git commit to the Text tab.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    BinaryF1Score,
    BinaryROC,
    ConfusionMatrix,
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)

from logitlab.dashboards import labels, plots
from logitlab.dashboards.naming import hyperparameters
from logitlab.models.heads import chart_step
from logitlab.models.metrics import ReliabilityBins, RiskCoverage

HPARAM_METRICS = ("val/acc_best", "test/acc", "test/loss")


def tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    """The run's TensorBoard logger, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def log_to_loggers(trainer: L.Trainer, scalars: dict[str, Any]) -> None:
    """Write scalars to the run's loggers at the epoch's x (chart_step), from rank zero.

    For values that are shown but never monitored (no checkpoint or early stopping watches
    them, and they stay out of callback_metrics and metrics.json). The values must already be
    global, as torchmetrics' compute() makes them under DDP.
    """
    if not scalars or not trainer.is_global_zero:
        return
    values = {name: float(value) for name, value in scalars.items()}
    for logger in trainer.loggers:
        logger.log_metrics(values, step=chart_step(trainer))


class Diagnostics(L.Callback):
    """Calibration, per-class and curve metrics at validation and test, with images."""

    def __init__(self, image_every_n_epochs: int = 5, n_bins: int = 15) -> None:
        self.image_every_n_epochs = image_every_n_epochs
        self.n_bins = n_bins
        self.stages: dict[str, MetricCollection] = {}
        self.bins: dict[str, ReliabilityBins] = {}  # apart: its compute() returns a dict
        self.curve_data: dict[str, list[torch.Tensor]] = {}
        self.selective = RiskCoverage()  # test only: the risk-coverage curve, test/aurc
        self.label_bins: dict[str, labels.LabelBins] = {}  # multilabel: one diagram per label

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        task, n = pl_module.task, getattr(pl_module, "num_classes", 2)
        # Labels were validated once at setup and probabilities come from softmax / sigmoid:
        # no per-batch argument checks.
        for name in ("val", "test"):
            metrics: dict[str, Metric | MetricCollection]
            if task == "multilabel":
                metrics = labels.multilabel_metrics(n, self.n_bins)
                self.label_bins[name] = labels.LabelBins(n, self.n_bins, pl_module.device)
            elif task == "binary":
                metrics = {
                    "ece": BinaryCalibrationError(n_bins=self.n_bins, validate_args=False),
                    "f1": BinaryF1Score(validate_args=False),
                    "auroc": BinaryAUROC(validate_args=False),
                    "ap": BinaryAveragePrecision(validate_args=False),
                    "roc": BinaryROC(validate_args=False),
                    "confusion": ConfusionMatrix(task="binary", validate_args=False),
                }
            else:
                metrics = {
                    "ece": MulticlassCalibrationError(n, n_bins=self.n_bins, validate_args=False),
                    "f1_macro": MulticlassF1Score(n, average="macro", validate_args=False),
                    "acc_class": MulticlassAccuracy(n, average=None, validate_args=False),
                    "confusion": ConfusionMatrix(
                        task="multiclass", num_classes=n, validate_args=False
                    ),
                }
            self.stages[name] = MetricCollection(metrics, compute_groups=False).to(pl_module.device)
            self.bins[name] = ReliabilityBins(n_bins=self.n_bins).to(pl_module.device)
        self.selective = self.selective.to(pl_module.device)

    def _update(self, stage: str, pl_module: Any, logits: torch.Tensor, batch: Any) -> None:
        """Update the stage's metrics with one batch's logits and targets."""
        targets = batch[1]
        probs = pl_module.probabilities(logits.detach())
        if pl_module.task == "multilabel":  # every label decision is a yes/no of its own
            labels.update(self.stages[stage], probs, targets)
            self.bins[stage].update(probs.reshape(-1), targets.reshape(-1))
            self.label_bins[stage].update(probs, targets)
            if stage == "test":
                self.selective.update(probs.reshape(-1), targets.reshape(-1))
            return
        if stage == "test":
            self.selective.update(probs, targets)
        if pl_module.task == "binary":
            scores = probs[:, 1]
            self.curve_data.setdefault(stage, []).append(
                torch.stack([scores, targets.to(scores)], 1)
            )
            self.stages[stage].update(scores, targets)
            self.bins[stage].update(scores, targets)
            return
        # calibration needs the probabilities; the class metrics get the classes, found once
        preds = pl_module.predict_classes(logits)
        for name, metric in self.stages[stage].items(keep_base=True):
            metric.update(probs if name == "ece" else preds, targets)
        self.bins[stage].update(probs, targets)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int, dl: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self._update("val", pl_module, outputs, batch)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int, dl: int = 0
    ) -> None:
        self._update("test", pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        every = self.image_every_n_epochs
        images = every > 0 and (trainer.current_epoch + 1) % every == 0
        self._report("val", trainer, pl_module, images)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report("test", trainer, pl_module, images=True)

    def _report(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, images: bool
    ) -> None:
        values = self.stages[stage].compute()  # computes sync across DDP ranks: on every rank
        bins = self.bins[stage].compute() if images else None
        datamodule = getattr(trainer, "datamodule", None)  # set by fit/test(datamodule=...)
        names = datamodule.label_names() if datamodule else None
        scalars = {f"{stage}/ece": values["ece"]}
        if pl_module.task == "multilabel":
            scalars |= {f"{stage}/{name}": values[name] for name in labels.SCALARS}
        elif pl_module.task == "binary":
            scalars |= {
                f"{stage}/f1": values["f1"],
                f"{stage}/auroc": values["auroc"],
                f"{stage}/ap": values["ap"],
            }
        else:
            scalars[f"{stage}/f1_macro"] = values["f1_macro"]
        per_class = {
            f"{stage}/acc_class/{names[i] if names else i}": acc
            for i, acc in enumerate(values.get("acc_class", []))
        }
        logger = tensorboard(trainer)
        if stage == "test":  # once: in metrics.json, and a TEXT table rather than 1-dot charts
            selective = self.selective.compute()
            self.selective.reset()
            scalars |= per_class | {"test/aurc": selective["aurc"]}
            pl_module.log_dict(scalars, sync_dist=True, logger=False)
            if logger is not None and trainer.is_global_zero:
                scores = {k.removeprefix("test/"): float(v) for k, v in scalars.items()}
                table = plots.scores_markdown(scores)
                logger.experiment.add_text("test/scores", table, chart_step(trainer))
        else:  # every epoch: shown, never monitored, so straight to the loggers
            log_to_loggers(trainer, per_class)
            pl_module.log_dict(scalars, sync_dist=True)
        if images and logger is not None and trainer.is_global_zero:
            self._images(stage, values, bins, names, logger, chart_step(trainer), pl_module.task)
            if pl_module.task == "multilabel":
                table = labels.labels_markdown(values, names or [])
                logger.experiment.add_text(f"{stage}/labels", table, chart_step(trainer))
            if stage == "test":
                curve = (selective["coverage"], selective["risk"], float(selective["aurc"]))
                figure = plots.risk_coverage(*curve)
                logger.experiment.add_figure("test/risk_coverage", figure, chart_step(trainer))
        self.stages[stage].reset()
        self.bins[stage].reset()
        if stage in self.label_bins:
            self.label_bins[stage].reset()
        self.curve_data.pop(stage, None)

    def _images(self, stage, values, bins, names, logger, step, task) -> None:
        writer = logger.experiment
        reliability = plots.reliability(
            (bins["confidence"].cpu(), bins["accuracy"].cpu(), bins["count"].cpu()),
            float(values["ece"]),
        )
        writer.add_figure(f"{stage}/reliability", reliability, step)
        if task == "multilabel":  # no confusion matrix: a 2x2 one per label is the table
            per_label = [
                {k: v.cpu() for k, v in b.items()} for b in self.label_bins[stage].compute()
            ]
            writer.add_figure(
                f"{stage}/reliability_labels", plots.reliability_grid(per_label, names), step
            )
            return
        confusion = values["confusion"].cpu()
        labels = names or [str(i) for i in range(len(confusion))]
        figure = plots.confusion(self.stages[stage]["confusion"], confusion, labels)
        writer.add_figure(f"{stage}/confusion_matrix", figure, step)
        writer.add_text(
            f"{stage}/confusion_counts", plots.confusion_markdown(confusion, labels), step
        )
        if task == "binary":
            data = torch.cat(self.curve_data.get(stage, [torch.zeros(0, 2)])).cpu()
            writer.add_pr_curve(f"{stage}/pr_curve", data[:, 1].long(), data[:, 0], step)
            curve = tuple(part.cpu() for part in values["roc"])
            figure, _ = self.stages[stage]["roc"].plot(curve, score=True)
            writer.add_figure(f"{stage}/roc", figure, step)


def git_commit() -> str:
    """The commit of the code that ran, with a mark when the tree had local changes."""
    root = Path(__file__).resolve().parent  # git finds the checkout from inside it
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return (commit or "unknown (not a git checkout)") + (" (with local changes)" if dirty else "")


def log_run_summary(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """HPARAMS row (naming.py's hyperparameters, the final metrics) on every logger,
    and the config YAML and git commit in TensorBoard's Text tab."""

    if not trainer.is_global_zero or not trainer.loggers:
        return
    values, overridden = hyperparameters(cfg, cfg.paths.output_dir)
    for other in trainer.loggers:
        if not isinstance(other, TensorBoardLogger):
            other.log_hyperparams(values)  # MLflow params, W&B config, csv/hparams.yaml
    logger = tensorboard(trainer)
    if logger is None:
        return
    job = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    yaml = OmegaConf.to_yaml(job, resolve=True)
    logger.experiment.add_text("run/config", f"```yaml\n{yaml}\n```", 0)  # (re)opens the writer
    logger.experiment.add_text("run/git_commit", git_commit(), 0)
    final = {name: metrics[name] for name in HPARAM_METRICS if name in metrics}
    write_hparams(logger, values, final, overridden)
    logger.experiment.close()  # flushed, and its writer thread ended: the run's last write


def write_hparams(
    logger: TensorBoardLogger, values: dict[str, Any], final: dict[str, float], first: list[str]
) -> None:
    """The HPARAMS summaries, with the swept (a run's: overridden) keys marked as the ones that
    differ.

    TensorBoard orders the table's columns by that mark, then by name, and ticks the first
    five: a sweep's swept keys come first and are shown, then the metrics. The metric columns
    read the run's own val/acc_best, test/acc and test/loss scalars (their last values), so no
    copy of them is logged.
    """
    experiment, start, end = hparams(values, final)
    content = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in first
    content.content = data.SerializeToString()
    writer = logger.experiment.file_writer
    for summary in (experiment, start, end):
        writer.add_summary(summary)
