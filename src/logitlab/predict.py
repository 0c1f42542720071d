"""`python -m logitlab.predict run_dir=DIR [input=FILE] [output=FILE] [ckpt=best|last|PATH]`.

Writes a CSV with one row per sample: `row` (the sample's row in its dataset, or in the input),
the predicted class (`pred`, its index; `pred_name`) and the probability of every class
(`prob_<class name>`: softmax for the multiclass head, sigmoid for the binary head), and with the
run's conformal.json its prediction `set` (class names joined by `|`). Without
`input` it predicts the run's own test split (and adds the true `target`). `input` is a .npy or .csv
feature matrix in the dataset's raw units (the run's standardisation is applied to it; a CSV
with a header gives the training columns by name, its label column ignored), or, for a run on
images, an image file (.png, .jpg, .jpeg, .bmp) or a folder of them: each is read in the run's
channels (grayscale or RGB), 8- or 16-bit, resized to the run's image size, scaled to the
training data's pixel units ([0, 1]; 0..16 for digits) and normalised as the training images
were; the CSV then names each row's file.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError, user_errors
from logitlab.run.layout import RunFolder

USAGE = """python -m logitlab.predict run_dir=DIR [input=FILE] [output=FILE] [ckpt=best|last|PATH]
                          [overwrite=true] [calibrated=true|false] [weights=ema|raw]
                          [sets=true|false]
       python -m logitlab.predict model=FILE.onnx input=FILE [output=FILE]

  run_dir  the run folder (outputs/<task_name>/<stamp>)
  model    an exported model (python -m logitlab.export): onnxruntime alone, no torch;
           output defaults to predictions.csv beside the model
  input    a .npy or .csv feature matrix, or image files (a file or a folder of .png/.jpg)
           for a run on images (default: the run's test split)
  output   the CSV to write (default: <run_dir>/predictions.csv)
  ckpt     best (default), last, or a .ckpt path
  overwrite  true to replace an existing output file (never a file of the run, nor the input)
  calibrated  with the run's calibration.json (logitlab.calibrate): true (default) or false
  id_column  a column of a CSV input copied into each row (e.g. id_column=sample_id)
  weights  ema (default): the checkpoint's weights (their moving average with callbacks.ema);
           raw: the raw weights saved beside them
  sets     with the run's conformal.json (calibrate method=conformal): true (default) adds the
           `set` column, the classes of each sample's prediction set; false leaves it out"""


def check_output(destination: Path, run_dir: Path, input: str | None, overwrite: bool) -> None:
    """Refuse an output that would replace the input, a file of the run, or (without
    overwrite=true) any other existing file; the run's own predictions.csv may be replaced."""
    target = destination.resolve()
    if input and Path(input).exists() and target == Path(input).resolve():
        raise ConfigError(f"output={destination} is the input; give another output file")
    if target.is_dir():
        raise ConfigError(f"output={destination} is a folder; give a .csv file name")
    if target.exists() and not target.is_file():
        raise ConfigError(
            f"output={destination} is not a regular file (a pipe or a device), which writing "
            "would replace; give a .csv file name"
        )
    inside = target.is_relative_to(run_dir.resolve())
    if inside and target.exists() and target != RunFolder(run_dir).predictions.resolve():
        raise ConfigError(
            f"output={destination} is one of the run's own files; give another file name"
        )
    if target.exists() and not inside and not overwrite:
        raise ConfigError(
            f"output={destination} exists; give overwrite=true to replace it, or another name"
        )


def read_features(path: Path, datamodule: Any = None, id_column: str | None = None) -> np.ndarray:
    """A samples x features matrix from .npy or .csv (a header row picks the training columns)."""
    from logitlab.data.tables import read_feature_csv

    if path.is_dir():
        raise ConfigError(f"input={path} is a folder; give a .npy or .csv feature matrix")
    if not path.is_file():
        raise ConfigError(f"input={path} does not exist; give a .npy or .csv feature matrix")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise ConfigError(
                f"input={path} is not a readable .npy array (truncated, or another kind of "
                "file); save it with np.save(path, features)"
            ) from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise ConfigError(
                f"input={path} holds {array.dtype} {array.shape}; save a 2-D number matrix"
            )
        return array
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"input={path}: use a .npy or .csv file")
    names = getattr(datamodule, "feature_names", None)
    info = getattr(datamodule, "source_info", None) or {}
    return read_feature_csv(path, names, info if "target_index" in info else None, id_column)


def check_input(input: str | None) -> None:
    """A missing input, in the words its reader would use."""
    if input and not Path(input).exists():
        kind = (
            "an image file or a folder of them"
            if is_image_input(Path(input))
            else ("a .npy or .csv feature matrix")
        )
        raise ConfigError(f"input={input} does not exist; give {kind}")


def is_image_input(path: Path) -> bool:
    """Whether `input` names an image file or a folder (of images)."""
    from logitlab.data.sources import IMAGE_SUFFIXES

    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def image_files(path: Path, shape: tuple[int, ...], pixel_max: float | None) -> list[Path]:
    """The image files an image input names (a file, or a folder's images), for a run (or its
    exported model) that takes images in known pixel units."""
    from logitlab.data.sources import IMAGE_SUFFIXES

    if len(shape) != 3:
        raise ConfigError(
            f"input={path} is an image, but this run trains on tables of {shape[0]} features; "
            "give a .npy or .csv feature matrix"
        )
    if pixel_max is None:
        raise ConfigError(
            f"input={path} is an image, but this run's images were arrays of unknown pixel units "
            "(floats beyond [0, 1]); give them as a .npy in the training data's units"
        )
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"input={path} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"input={path} does not exist; give an image file or a folder of them")
    return files


def read_images(
    path: Path, shape: tuple[int, ...], pixel_max: float | None
) -> tuple[Any, list[str]]:
    """Images (N, C, H, W) of `shape` (C, H, W) from an image file or a folder of them, in the
    training data's pixel units: [0, 1] scaled to `pixel_max` (16 for digits)."""
    import torch
    from torchvision.transforms.v2.functional import resize, to_dtype

    from logitlab.data.images import read_image

    files = image_files(path, shape, pixel_max)
    channels, height, width = shape
    images = []
    for file in files:
        image = to_dtype(read_image(file, channels), torch.float32, scale=True)  # [0, 1]
        if tuple(image.shape[1:]) != (height, width):
            image = resize(image, [height, width], antialias=True)
        images.append(image * pixel_max)
    return torch.stack(images), [str(file) for file in files]


def predict(
    run_dir: str,
    input: str | None = None,
    output: str | None = None,
    ckpt: str = "best",
    overwrite: bool = False,
    calibrated: bool = True,
    id_column: str | None = None,
    weights: str = "ema",
    sets: bool = True,
) -> Path:
    """Write the predictions CSV and return its path."""
    import torch

    from logitlab.run.files import write_text
    from logitlab.run.restore import (
        build_from_run,
        find_checkpoint,
        load_checkpoint,
        load_run_config,
    )

    folder, cfg = load_run_config(run_dir)
    destination = Path(output) if output else RunFolder(folder).predictions
    check_output(destination, folder, input, overwrite)
    if id_column is not None and not (input and Path(input).suffix.lower() == ".csv"):
        raise ConfigError(f"id_column={id_column} names a column of a CSV input; give input=x.csv")
    path = find_checkpoint(folder, ckpt)
    datamodule, model = build_from_run(cfg, folder, load_checkpoint(path), path, weights)
    from logitlab.uncertainty import conformal
    from logitlab.uncertainty.calibration import calibrated_probs, for_checkpoint

    calibration = for_checkpoint(folder, path, weights) if calibrated else None
    conformal_fit = conformal.for_checkpoint(folder, path, weights) if sets else None
    names, ids, rows = None, None, None
    if input and is_image_input(Path(input)):
        scale = datamodule.source_info.get("pixel_max")
        images, names = read_images(Path(input), datamodule.input_shape, scale)
        batches = [(datamodule.transform(images, name=f"input={input}"), None)]
    elif input:
        if id_column is not None:
            from logitlab.data.tables import read_column

            ids = read_column(Path(input), id_column)
        features = read_features(Path(input), datamodule, id_column)
        batches = [(datamodule.transform(features, name=f"input={input}"), None)]
    else:  # the run's own test split, with its true labels (and files, for image folders)
        batches, names = datamodule.sample_batches("test"), datamodule.sample_names("test")
        rows = datamodule.sample_rows("test")
    chunks: list[Any] = []
    labels: list[Any] = []
    with torch.inference_mode():
        for x, y in batches:
            chunks += [model(chunk).float() for chunk in x.split(4096)]
            labels += [] if y is None else [y]
    logits = torch.cat(chunks)
    probs = (
        calibrated_probs(logits, calibration, model.task)
        if calibration
        else model.probabilities(logits)
    )
    set_column = None
    if conformal_fit is not None:  # on the probabilities the fit was made on, u by sample row
        split = "test" if rows is not None else "input"
        u = conformal.uniforms(rows or list(range(len(probs))), conformal_fit["seed"], split)
        fitted = conformal.probabilities(logits, conformal_fit, model.task)
        chosen = conformal.prediction_sets(fitted, conformal_fit, u)
        set_column = conformal.set_names(chosen, datamodule.label_names())
    columns = (
        torch.cat(labels) if labels else None,
        datamodule.label_names(),
        rows if rows is not None else list(range(len(probs))),
        {"path": names, id_column or "id": ids},
        (calibration["method"] if calibration else "none")
        if (calibrated and RunFolder(folder).calibration.is_file()) or not calibrated
        else None,
    )
    if model.task == "multilabel":  # each label at its threshold: calibrate's, else 0.5
        thresholds = (calibration or {}).get("thresholds") or [0.5] * probs.shape[1]
        return write_text(destination, label_table(probs, *columns, thresholds))
    return write_text(destination, prediction_table(probs, *columns, set_column))


def prediction_table(
    probs: Any,
    targets: Any,
    class_names: list[str],
    rows: list[int],
    extra: dict[str, list[str] | None],
    calibration: str | None,
    sets: list[str] | None = None,
) -> str:
    """The predictions CSV: row, [path or id], pred, pred_name, [target], prob_<class name>...,
    [calibration], [set]; `pred` and `target` are class indices, the rest names them."""
    probs = np.asarray(probs)  # a torch tensor (predict from a run) or onnxruntime's array
    preds = probs.argmax(axis=1).tolist()
    columns = [name for name, values in extra.items() if values is not None]
    header = ["row", *columns, "pred", "pred_name"]
    header += ["target"] if targets is not None else []
    header += [f"prob_{name}" for name in class_names]
    header += ["calibration"] if calibration is not None else []
    header += ["set"] if sets is not None else []
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(header)
    for i, (pred, row) in enumerate(zip(preds, probs.tolist(), strict=True)):
        cells = [str(rows[i]), *(str(extra[c][i]) for c in columns), str(pred), class_names[pred]]  # type: ignore[index]
        cells += [str(int(targets[i]))] if targets is not None else []
        cells += [f"{p:.6g}" for p in row]
        cells += [calibration] if calibration is not None else []
        cells += [sets[i]] if sets is not None else []
        writer.writerow(cells)
    return table.getvalue()


def label_table(
    probs: Any,
    targets: Any,
    label_names: list[str],
    rows: list[int],
    extra: dict[str, list[str] | None],
    calibration: str | None,
    thresholds: list[float],
) -> str:
    """The multilabel predictions CSV: row, [path or id], labels, [target], prob_<label>...,
    [calibration]; `labels` and `target` name a sample's labels, joined by `|`."""
    probs = np.asarray(probs)
    chosen = probs > np.asarray(thresholds)
    columns = [name for name, values in extra.items() if values is not None]
    header = ["row", *columns, "labels", *(["target"] if targets is not None else [])]
    header += [f"prob_{name}" for name in label_names]
    header += ["calibration"] if calibration is not None else []
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(header)

    def joined(row: Any) -> str:
        return "|".join(name for name, on in zip(label_names, row, strict=True) if on)

    for i, row in enumerate(probs.tolist()):
        cells = [str(rows[i]), *(str(extra[c][i]) for c in columns), joined(chosen[i])]  # type: ignore[index]
        cells += [joined(np.asarray(targets[i]))] if targets is not None else []
        cells += [f"{p:.6g}" for p in row]
        cells += [calibration] if calibration is not None else []
        writer.writerow(cells)
    return table.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Parse key=value arguments and predict."""
    from logitlab.run.arguments import parse_args

    defaults = {
        "run_dir": None,
        "model": None,
        "input": None,
        "output": None,
        "ckpt": "best",
        "overwrite": "false",
        "calibrated": "true",
        "id_column": None,
        "weights": "ema",
        "sets": "true",
    }
    with user_errors():
        args = parse_args(sys.argv[1:] if argv is None else argv, defaults, USAGE, None)
        for flag in ("overwrite", "calibrated", "sets"):
            if args[flag] not in ("true", "false"):
                raise ConfigError(f"{flag}={args[flag]} must be true or false")
        if bool(args["run_dir"]) == bool(args["model"]):
            raise ConfigError(
                "give run_dir=DIR (predict with the run's checkpoint) or model=FILE.onnx (an "
                f"exported model, without torch), not {'both' if args['model'] else 'neither'}; "
                f"usage: {USAGE.splitlines()[0]}"
            )
        check_input(args["input"])  # before torch is imported
        if args["model"]:
            from logitlab.shipped import predict_exported

            written = predict_exported(
                args["model"], args["input"], args["output"], args["overwrite"] == "true",
                args["id_column"],
            )  # fmt: skip
            print(f"predictions written to {written}")
            return
        written = predict(
            args["run_dir"],
            args["input"],
            args["output"],
            args["ckpt"],
            args["overwrite"] == "true",
            args["calibrated"] == "true",
            args["id_column"],
            args["weights"],
            args["sets"] == "true",
        )
    print(f"predictions written to {written}")


if __name__ == "__main__":
    main()
