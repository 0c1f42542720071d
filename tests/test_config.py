"""Every config group option composes, and cross-group rules refuse what cannot train."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from conftest import CONF, compose_train
from logitlab.config.rules import check_config, loss_fits
from logitlab.errors import ConfigError

GROUPS = [*sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"), "model/net"]
BINARY_LOSSES = ("bce", "bce_with_logits", "focal")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if (group == "loss" and option in BINARY_LOSSES) or option == "binary_extra":
        overrides.append("model=binary")
    # your own data: the file or folder it reads (checked here, read only when training)
    needs = {
        "csv": ["data.path=t.csv", "data.target=label"],
        "npz": ["data.path=t.npz"],
        "image_folder": ["data.root=images"],
        "dataset": ["data.dataset={_target_: my_data.IrisRows}"],
        "datamodule": ["data.datamodule={_target_: my_data.DigitsDataModule}"],
    }
    overrides += needs.get(option, []) if group == "data" else []
    if group == "data" and option in ("csv", "npz", "image_folder", "dataset"):
        cfg = compose_train([f"{group}={option}"], output_dir=tmp_path)
        with pytest.raises(ConfigError, match=f"data={option} needs data."):
            check_config(cfg)
    cfg = compose_train(overrides, output_dir=tmp_path)
    assert cfg.hydra.runtime.choices[group] == option
    job = {k: v for k, v in cfg.items() if k != "hydra"}
    resolved = OmegaConf.to_container(OmegaConf.create(job), resolve=True)
    assert resolved["paths"]["output_dir"] == str(tmp_path)
    assert loss_fits(resolved["loss"]["head"], get_class(resolved["model"]["_target_"]).task)
    assert resolved["model"]["net"]["_target_"].startswith("logitlab.models.nets.")
    check_config(cfg)


def test_expected_options_exist() -> None:
    assert options("model") == ["binary", "multiclass", "multilabel"]
    assert options("loss") == ["bce", "bce_with_logits", "cross_entropy", "focal", "nll"]
    assert options("model/net") == ["cnn", "linear", "mlp", "resnet"]
    assert options("metrics") == ["binary_extra", "default", "multiclass_extra"]
    assert options("optimizer") == ["adam", "adamw", "sgd"]
    assert set(options("trainer")) >= {"cpu", "gpu", "mps", "auto", "ddp", "ddp_cpu"}
    assert options("logger") == ["csv", "mlflow", "none", "tensorboard", "wandb"]
    assert options("callbacks") == ["default", "none"]
    assert options("debug") == ["fdr", "limit", "overfit", "profiler"]
    assert {"digits_multiclass", "digits_binary"} <= set(options("experiment"))


def test_model_sizes_come_from_the_data(tmp_path: Path) -> None:
    from logitlab.train import build

    cfg = compose_train(["data=blobs", "data.num_features=5", "data.num_classes=4"], tmp_path)
    datamodule, model, _ = build(cfg)
    assert datamodule.input_shape == (5,) and model.num_classes == 4
    assert model.net.layers[1].in_features == 5 and model.net.layers[-1].out_features == 4


@pytest.mark.parametrize(
    ("model", "default_loss"), [("multiclass", "cross_entropy"), ("binary", "bce_with_logits")]
)
def test_each_head_brings_its_default_loss(model: str, default_loss: str, tmp_path: Path) -> None:
    cfg = compose_train([f"model={model}"], tmp_path)
    assert cfg.loss.name == default_loss
    assert get_class(cfg.model._target_).task == model


def test_command_line_loss_beats_the_heads_default(tmp_path: Path) -> None:
    assert compose_train(["model=binary", "loss=bce"], tmp_path).loss.name == "bce"


@pytest.mark.parametrize(
    ("model", "loss", "message"),
    [
        (
            "multiclass",
            "bce_with_logits",
            "loss=bce_with_logits is a binary loss and does not fit model=multiclass; "
            "use loss=cross_entropy or loss=nll, or model=binary",
        ),
        (
            "binary",
            "nll",
            "loss=nll is a multiclass loss and does not fit model=binary; "
            "use loss=bce or loss=bce_with_logits or loss=focal, or model=multiclass",
        ),
    ],
)
def test_loss_that_does_not_fit_the_head_is_refused(
    model: str, loss: str, message: str, tmp_path: Path
) -> None:
    cfg = compose_train([f"model={model}", f"loss={loss}"], tmp_path)
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert str(error.value) == message


def test_cli_refuses_mismatch_with_one_line_before_training(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("logitlab.train", "loss=bce", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "logitlab: error: loss=bce is a binary loss and does not fit model=multiclass; "
        "use loss=cross_entropy or loss=nll, or model=binary"
    ]
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "metrics.json").exists()


def test_help_lists_the_config_groups_without_importing_torch(run_cli) -> None:
    result = run_cli("logitlab.train", "--help")
    assert result.returncode == 0
    for line in (
        "model: binary, multiclass, multilabel",
        "model/net: cnn, linear, mlp, resnet",
        "loss: bce, bce_with_logits, cross_entropy, focal, nll",
    ):
        assert line in result.stdout
    code = (
        "import sys; sys.argv = ['logitlab-train', '--help']\n"
        "import logitlab.train\n"
        "try:\n    logitlab.train.main()\nexcept SystemExit:\n    pass\n"
        "print('modules:', 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert probe.stdout.strip().splitlines()[-1] == "modules: False False"
    assert "== Config ==" in result.stdout and "\ntask_name: train\n" in result.stdout
    # a user's config folder adds its options; overrides shape the config shown
    user = run_cli(
        "logitlab.train", "--help", "hydra.searchpath=[file://tests/user_conf]", "model=binary"
    )
    assert user.returncode == 0, user.stderr
    assert "model/net: cnn, data_dependent, linear, mlp, resnet, tiny_conv" in user.stdout
    assert "_target_: logitlab.models.heads.BinaryClassifier" in user.stdout
    wrong = run_cli("logitlab.train", "--help", "model=nope")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "logitlab: error: model=nope is not an option of 'model'; choose one of binary, "
        "multiclass, multilabel"
    ]


@pytest.mark.parametrize(
    ("override", "task_name"),
    [("experiment=digits_binary", "digits_binary"), ("debug=fdr", "debug"), ("seed=1", "train")],
)
def test_experiments_name_their_run_folders(override: str, task_name: str, tmp_path: Path) -> None:
    cfg = compose_train([override], tmp_path)
    assert cfg.task_name == task_name
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
    assert f"/outputs/{task_name}/" in run_dir


def test_data_schema_defaults_are_the_datamodules_own():
    """One default per data key: the schema (what YAML files extend) says what __init__ says."""
    import dataclasses
    import inspect

    from logitlab.config.schemas import AugmentSchema, DataSchema, DatasetSchema, ImageFolderSchema
    from logitlab.data.augment import Augment
    from logitlab.data.datamodule import ClassificationDataModule

    signature = inspect.signature(ClassificationDataModule.__init__).parameters
    schemas = (DataSchema, ImageFolderSchema, DatasetSchema)
    schema = {f.name: f for s in schemas for f in dataclasses.fields(s)}
    assert set(signature) - {"self", "task"} == set(schema) - {"_target_", "_recursive_"}
    for name, field in schema.items():
        if name in ("_target_", "_recursive_", "source"):
            continue
        default = field.default_factory() if callable(field.default_factory) else field.default
        if dataclasses.is_dataclass(default):
            default = dataclasses.asdict(default)
        own = signature[name].default
        if name == "transforms":  # None: none of them, as the schema's defaults say
            assert default == {"crop_scale": None, "flip": False, "rotation": 0.0, "extra": []}
            continue
        if name == "augment":
            own = {k: p.default for k, p in inspect.signature(Augment).parameters.items()}
            assert {f.name for f in dataclasses.fields(AugmentSchema)} == set(own)
        assert default == own or (own is None and default in ({}, [])), name


def test_a_required_value_left_unset_is_one_line(make_cfg):
    from logitlab.config.rules import check_config

    cfg = make_cfg("model.net.dropout=???", "optimizer.lr=???")
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert str(error.value) == (
        "model.net.dropout is required and has no value; set it, e.g. model.net.dropout=... "
        "(also unset: optimizer.lr)"
    )
