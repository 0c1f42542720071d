"""Predict from an exported model with onnxruntime alone: no torch, no Lightning, no Hydra.

`python -m logitlab.predict model=<run>/export/model.onnx input=FILE|FOLDER [output=...]`
reads the same inputs as predict from a run (a .npy or .csv feature matrix, an image file or a
folder of them) and writes the same columns; the model (logitlab.export) holds the run's
standardisation and calibration, and its model.json the class names, input shape and units.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError, first_line


def load_exported(model: str) -> tuple[Any, dict[str, Any]]:
    """The onnxruntime session and the model.json of an exported model, or one line why not."""
    path = Path(model)
    if path.suffix != ".onnx" or not path.is_file():
        raise ConfigError(
            f"model={model} is not an .onnx file; export one with python -m logitlab.export "
            "run_dir=<run> (it writes <run>/export/model.onnx)"
        )
    try:
        info = json.loads(path.with_suffix(".json").read_text())
        shape, names = list(info["input_shape"]), list(info["class_names"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"model={model} has no readable {path.with_suffix('.json').name} beside it (what "
            "logitlab.export writes with the model); export it again"
        ) from None
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception classes are not public
        raise ConfigError(
            f"model={model} is not a readable ONNX model ({first_line(error)}); export it again"
        ) from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or list(inputs[0].shape[1:]) != shape:
        takes = " and ".join(f"[{', '.join(map(str, i.shape))}]" for i in inputs)
        raise ConfigError(
            f"model={model} takes input of shape {takes}, not [N, {', '.join(map(str, shape))}] "
            f"as its {path.with_suffix('.json').name} says; it is not the model logitlab.export "
            "wrote there"
        )
    return session, {**info, "class_names": names, "input_shape": shape}


def read_samples(path: Path, info: dict[str, Any], id_column: str | None) -> tuple[Any, list[str]]:
    """(samples (N, *input_shape) float32, file names of image inputs) of an input."""
    from logitlab.predict import is_image_input

    shape = tuple(info["input_shape"])
    if is_image_input(path):
        return read_image_samples(path, shape, info.get("pixel_max"))
    if path.suffix == ".npy":
        from logitlab.predict import read_features

        features = read_features(path)
    else:
        from logitlab.data.tables import read_feature_csv

        if path.suffix.lower() != ".csv":
            raise ConfigError(f"input={path}: use a .npy or .csv file")
        names = info.get("feature_names") or None
        features = read_feature_csv(path, names, info.get("table") or None, id_column)
    if features.dtype == np.uint8:
        features = features / 255.0  # pixels, as the training images were scaled
    features = np.asarray(features, dtype=np.float32)
    if not np.isfinite(features).all():
        row = int(np.argwhere(~np.isfinite(features))[0][0])
        raise ConfigError(f"input={path} has a value that is not a finite number (row {row})")
    if math.prod(features.shape[1:]) != math.prod(shape):
        raise ConfigError(
            f"input={path} has {math.prod(features.shape[1:])} features per sample but the model "
            f"takes {math.prod(shape)} (samples of shape {shape}); give {math.prod(shape)} columns"
        )
    return features.reshape(len(features), *shape), []


def read_image_samples(
    path: Path, shape: tuple[int, ...], pixel_max: float | None
) -> tuple[Any, list[str]]:
    """Images (N, C, H, W) as predict reads them, in the training data's pixel units; an image
    of another size is resized with PIL's bilinear filter (torch's predict: torchvision's)."""
    from PIL import Image

    from logitlab.data.pixels import read_pixels
    from logitlab.predict import image_files

    files = image_files(path, shape, pixel_max)
    channels, height, width = shape
    images = []
    for file in files:
        pixels = read_pixels(file, channels)
        image = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels
        if image.shape[1:] != (height, width):
            bilinear = Image.Resampling.BILINEAR
            resized = [Image.fromarray(c).resize((width, height), bilinear) for c in image]
            image = np.stack([np.asarray(c) for c in resized])
        images.append(image.astype(np.float32) * np.float32(pixel_max))
    return np.stack(images), [str(file) for file in files]


def predict_exported(
    model: str, input: str | None, output: str | None, overwrite: bool, id_column: str | None
) -> Path:
    """Write the predictions CSV of `input` through the exported model; returns its path."""
    from logitlab.predict import check_output, prediction_table
    from logitlab.run.files import write_text

    if not input:
        raise ConfigError("model=...: give input=FILE or FOLDER (an exported model has no data)")
    destination = Path(output) if output else Path(input).with_name("predictions.csv")
    check_output(destination, Path(model).parent, input, overwrite)
    session, info = load_exported(model)
    samples, names = read_samples(Path(input), info, id_column)
    ids = None
    if id_column is not None:
        from logitlab.data.tables import read_column

        ids = read_column(Path(input), id_column)
    name = session.get_inputs()[0].name
    probs = np.concatenate(
        [
            session.run(None, {name: chunk})[0]
            for chunk in np.array_split(samples, max(1, math.ceil(len(samples) / 4096)))
        ]
    )
    calibration = info.get("calibration")
    table = prediction_table(
        probs, None, info["class_names"], list(range(len(probs))),
        {"path": names or None, id_column or "id": ids},
        calibration if calibration not in (None, "none") else None,
    )  # fmt: skip
    return write_text(destination, table)
