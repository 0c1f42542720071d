"""The files of a run folder (README: "A run folder"), named in this one place."""

from __future__ import annotations

from pathlib import Path

LAST = "last.ckpt"


class RunFolder:
    """The paths of one run folder's files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def hydra(self) -> Path:
        """.hydra/: the config as composed, the overrides, Hydra's own record."""
        return self.root / ".hydra"

    @property
    def config(self) -> Path:
        """.hydra/config.yaml: the resolved config the run was trained with."""
        return self.hydra / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        """checkpoints/: last.ckpt and the best checkpoint."""
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        """checkpoints/last.ckpt: where resume and a SLURM requeue start from."""
        return self.checkpoints / LAST

    def requeue_point(self) -> Path | None:
        """The newest of last.ckpt and the hpc_ckpt_N.ckpt Lightning's SLURM auto-requeue saves
        at the pre-timeout signal: where a requeued job goes on (None: neither exists)."""
        saved = [p for p in (self.last, *self.root.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
        return max(saved, key=lambda p: p.stat().st_mtime_ns, default=None)

    @property
    def metrics(self) -> Path:
        """metrics.json: the final metrics, flat."""
        return self.root / "metrics.json"

    @property
    def eval_metrics(self) -> Path:
        """eval_metrics.json: what logitlab.eval measured."""
        return self.root / "eval_metrics.json"

    @property
    def splits(self) -> Path:
        """splits.npz: the split indices."""
        return self.root / "splits.npz"

    @property
    def data(self) -> Path:
        """data.json: class names, sample shape, standardisation."""
        return self.root / "data.json"

    @property
    def job(self) -> Path:
        """job.json: how the job ended, its error line, its wall time."""
        return self.root / "job.json"

    @property
    def calibration(self) -> Path:
        """calibration.json: logitlab.calibrate's fit."""
        return self.root / "calibration.json"

    @property
    def predictions(self) -> Path:
        """predictions.csv: logitlab.predict's default output."""
        return self.root / "predictions.csv"

    @property
    def log(self) -> Path:
        """train.log: the run's log."""
        return self.root / "train.log"
