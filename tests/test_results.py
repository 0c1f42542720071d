"""Results you can publish: stratified k-fold splits, a sweep aggregated by configuration with
Student-t intervals, paired comparisons, each figure recomputed with NumPy and SciPy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import cli, digest
from logitlab.errors import ConfigError

CV = ("data=breast_cancer", "model=binary", "data.positive_classes=[malignant]", "logger=[]")


def pool_split(make_cfg, fold: int, *extra: str) -> dict[str, np.ndarray]:
    from logitlab.config.build import build_data

    datamodule = build_data(
        make_cfg("data=breast_cancer", "data.folds=4", f"data.fold={fold}", *extra), "multiclass"
    )
    return {name: np.asarray(index) for name, index in datamodule.split_index.items()}


def test_folds_are_disjoint_stratified_and_share_the_test_split(make_cfg) -> None:
    from sklearn.datasets import load_breast_cancer

    y = load_breast_cancer().target
    folds = [pool_split(make_cfg, i) for i in range(4)]
    test = folds[0]["test"]
    assert all(np.array_equal(f["test"], test) for f in folds)  # held out once
    vals = [f["val"] for f in folds]
    pool = np.setdiff1d(np.arange(len(y)), test)
    assert np.array_equal(np.sort(np.concatenate(vals)), pool)  # the folds cover the pool, once
    for f in folds:
        assert not set(f["train"]) & set(f["val"]) and not set(f["train"]) & set(test)
        assert len(f["train"]) + len(f["val"]) == len(pool)
        share = y[f["val"]].mean()  # stratified: each fold has the pool's class balance
        assert abs(share - y[pool].mean()) < 0.02
    assert np.array_equal(pool_split(make_cfg, 2)["val"], vals[2])  # a property of the seed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=4", "data.fold=4"], "data.fold=4 must be in [0, 4) for data.folds=4"),
        (["data.folds=1"], "data.folds=1 must be at least 2"),
        (["data.folds=400"], "data.folds=400 is more than the smallest class has samples"),
    ],
)
def test_bad_folds_are_refused(make_cfg, overrides: list[str], message: str) -> None:
    from logitlab.config.build import build_data

    with pytest.raises(ConfigError) as refused:
        build_data(make_cfg("data=breast_cancer", *overrides), "multiclass")
    assert message in str(refused.value)


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`-m cv=3` x two learning rates: six jobs, one sweep."""
    sweep = tmp_path_factory.mktemp("cv") / "sweep"
    result = cli(
        "logitlab.train", "-m", "cv=3", *CV, "trainer.max_epochs=4", "optimizer.lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def job_metrics(sweep: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(optimizer.lr, data.fold) -> metrics.json, read from the job folders themselves."""
    from omegaconf import OmegaConf

    found = {}
    for job in sweep.glob("*/metrics.json"):
        overrides = dict(
            str(o).split("=", 1) for o in OmegaConf.load(job.parent / ".hydra/overrides.yaml")
        )
        found[(overrides["optimizer.lr"], overrides["data.fold"])] = json.loads(job.read_text())
    return found


@pytest.mark.slow
def test_a_cv_sweep_aggregates_to_the_job_folders_numbers(cv_sweep: Path) -> None:
    summary = list(csv.DictReader((cv_sweep / "summary.csv").open()))
    assert len(summary) == 6 and {"optimizer.lr", "data.fold"} <= set(summary[0])
    assert "paths.output_root" not in summary[0]  # where a job writes is no parameter
    rows = {r["optimizer.lr"]: r for r in csv.DictReader((cv_sweep / "aggregate.csv").open())}
    assert set(rows) == {"0.001", "0.01"} and "data.fold" not in rows["0.01"]
    jobs = job_metrics(cv_sweep)
    for lr, row in rows.items():
        values = np.array([jobs[(lr, str(f))]["test/acc"] for f in range(3)])
        assert row["n"] == "3" and row["failed"] == "0"
        half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
        assert float(row["test/acc_mean"]) == pytest.approx(values.mean(), abs=1e-6)
        assert float(row["test/acc_std"]) == pytest.approx(values.std(ddof=1), abs=1e-6)
        assert float(row["test/acc_ci_low"]) == pytest.approx(values.mean() - half, abs=1e-6)
        assert float(row["test/acc_ci_high"]) == pytest.approx(values.mean() + half, abs=1e-6)
    assert (cv_sweep / "aggregate.png").stat().st_size > 1000
    tests = {np.load(job / "splits.npz")["test"].tobytes() for job in cv_sweep.glob("[0-9]*")}
    assert len(tests) == 1  # one test split for every fold and every configuration


@pytest.mark.slow
def test_compare_a_sweep_with_the_corrected_resampled_t_test(cv_sweep: Path) -> None:
    result = cli("logitlab.compare", str(cv_sweep), "metric=val/acc_best")
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = list(csv.DictReader((cv_sweep / "compare.csv").open()))
    jobs = job_metrics(cv_sweep)
    d = np.array(
        [
            jobs[("0.001", str(f))]["val/acc_best"] - jobs[("0.01", str(f))]["val/acc_best"]
            for f in range(3)
        ]
    )
    with np.load(next(cv_sweep.glob("0/splits.npz"))) as splits:
        ratio = len(splits["val"]) / len(splits["train"])
    se = np.sqrt((1 / 3 + ratio) * d.var(ddof=1))  # Nadeau and Bengio's correction
    t = d.mean() / se
    assert row["test"] == "corrected_resampled_t" and row["n"] == "3"
    assert (row["a"], row["b"]) == ("optimizer.lr=0.001", "optimizer.lr=0.01")
    assert float(row["mean_diff"]) == pytest.approx(d.mean(), abs=1e-6)
    assert float(row["p_value"]) == pytest.approx(2 * stats.t.sf(abs(t), 2), abs=1e-6)
    assert float(row["ci_low"]) == pytest.approx(d.mean() - stats.t.ppf(0.975, 2) * se, abs=1e-6)
    assert float(row["ci_high"]) == pytest.approx(d.mean() + stats.t.ppf(0.975, 2) * se, abs=1e-6)


def test_the_plain_paired_t_test_is_scipys() -> None:
    from logitlab.results.compare import paired_t

    a = np.array([0.91, 0.93, 0.90, 0.95, 0.92])
    b = np.array([0.90, 0.90, 0.91, 0.92, 0.89])
    p, low, high = paired_t(a - b)
    reference = stats.ttest_rel(a, b)
    assert p == pytest.approx(reference.pvalue, abs=1e-9)
    interval = reference.confidence_interval(0.95)
    assert (low, high) == (
        pytest.approx(interval.low, abs=1e-9),
        pytest.approx(interval.high, abs=1e-9),
    )


@pytest.mark.slow
def test_compare_two_runs_with_mcnemar_and_a_paired_bootstrap(
    cv_sweep: Path, tmp_path: Path
) -> None:
    a, b = cv_sweep / "0", cv_sweep / "3"  # lr 1e-3 and 1e-2 on fold 0: one test split
    out = tmp_path / "two.csv"
    result = cli("logitlab.compare", f"a={a}", f"b={b}", f"output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = list(csv.DictReader(out.open()))
    right = []
    for run in (a, b):
        predicted = cli(
            "logitlab.predict", f"run_dir={run}", f"output={tmp_path / (run.name + '.csv')}"
        )
        assert predicted.returncode == 0, predicted.stderr[-2000:]
        rows = list(csv.DictReader((tmp_path / (run.name + ".csv")).open()))
        right.append(np.array([r["pred"] == r["target"] for r in rows]))
    only_a, only_b = int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum())
    expected = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert row["test"] == "mcnemar" and int(row["n"]) == len(right[0])
    assert float(row["p_value"]) == pytest.approx(expected, abs=1e-6)
    diff = right[0].mean() - right[1].mean()
    assert float(row["mean_diff"]) == pytest.approx(diff, abs=1e-6)
    assert float(row["ci_low"]) <= diff <= float(row["ci_high"])


@pytest.mark.slow
def test_compare_refusals_write_nothing(cv_sweep: Path, finished_run: Path, tmp_path: Path) -> None:
    before = digest(cv_sweep)
    cases = [
        ((str(finished_run),), f"{finished_run} is not a sweep folder"),
        ((f"a={cv_sweep / '0'}", f"b={finished_run}"), "were tested on different test splits"),
        ((str(cv_sweep), "metric=test/nope"), "metric=test/nope is not in"),
        ((), "give a sweep folder or a=RUN_DIR b=RUN_DIR"),
    ]
    for args, message in cases:
        result = cli("logitlab.compare", *args, f"output={tmp_path / 'c.csv'}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert digest(cv_sweep) == before and not (tmp_path / "c.csv").exists()


@pytest.mark.slow
def test_a_fold_ensemble_averages_the_fold_probabilities(cv_sweep: Path, tmp_path: Path) -> None:
    result = cli("logitlab.eval", f"run_dir={cv_sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    ensembles = json.loads((cv_sweep / "ensemble_metrics.json").read_text())
    assert set(ensembles) == {"optimizer.lr=0.001", "optimizer.lr=0.01"}
    folds = [cv_sweep / str(i) for i in range(3)]  # the lr=1e-3 jobs
    probs, accuracies = [], []
    for fold in folds:
        out = tmp_path / f"{fold.name}.csv"
        assert (
            cli(
                "logitlab.predict", f"run_dir={fold}", f"output={out}", "calibrated=false"
            ).returncode
            == 0
        )
        rows = list(csv.DictReader(out.open()))
        columns = [c for c in rows[0] if c.startswith("prob_")]
        probs.append(np.array([[float(r[c]) for c in columns] for r in rows]))
        targets = np.array([int(r["target"]) for r in rows])
        accuracies.append((probs[-1].argmax(axis=1) == targets).mean())
    mean = np.mean(probs, axis=0)
    ours = ensembles["optimizer.lr=0.001"]
    assert ours["members"] == 3
    assert ours["ensemble/acc"] == pytest.approx((mean.argmax(axis=1) == targets).mean(), abs=1e-6)
    assert ours["members/acc_mean"] == pytest.approx(np.mean(accuracies), abs=1e-6)
    nll = -np.log(mean[np.arange(len(targets)), targets]).mean()
    assert ours["ensemble/nll"] == pytest.approx(nll, abs=1e-4)  # the CSV keeps 6 digits
    stray = Path.cwd() / "ensemble_metrics.json"
    assert not stray.exists()
    listed = cli("logitlab.eval", "run_dir=" + ",".join(str(f) for f in folds))
    assert listed.returncode == 0 and "ensemble/acc" in listed.stdout
    shown = float(listed.stdout.split("ensemble/acc")[1].split()[0])
    assert shown == pytest.approx(ours["ensemble/acc"], abs=1e-6)  # the same three folds
    assert not stray.exists()  # a list writes nothing outside the runs (here: the cwd)


@pytest.mark.slow
def test_an_ensemble_of_a_sweep_without_folds_is_refused(
    finished_run: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    import shutil

    shutil.copytree(finished_run / ".hydra", sweep / "0" / ".hydra")
    result = cli("logitlab.eval", f"run_dir={sweep}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"logitlab: error: run_dir={sweep} is a sweep without folds; an ensemble is of a "
        "cross-validation sweep's fold models (cv=K or data.folds), or give "
        "run_dir=RUN_A,RUN_B,..."
    )
