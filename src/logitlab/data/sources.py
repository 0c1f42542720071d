"""Where the data comes from: scikit-learn's bundled and generated sets, torchvision's MNIST family,
your own .npz or .csv file. Each source returns named parts, {"all": (x, y)} or {"train": ...,
"test": ...} for datasets with an official test split, as they are on disk (validation comes
later), and the class names when the data has them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # the image files read, here and by predict

Parts = dict[str, tuple[Any, Any]]
MAX_CLASSES = 100_000  # bounds the class count before anything is allocated by it


@dataclass
class Loaded:
    """A source's parts and, when the data names its classes, those names in class-index order."""

    parts: Parts
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


def load_digits(**_: Any) -> Loaded:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 grayscale images, 10 classes."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)  # pixel values 0 (no ink) to 16
    return Loaded({"all": (images, bunch.target)}, extra={"pixel_max": 16.0})


def load_sklearn_table(name: str, **_: Any) -> Loaded:
    """One of scikit-learn's bundled real tables (no download), with its class and feature names.

    breast_cancer: 569 tumours x 30 measurements, malignant (0) or benign (1);
    wine: 178 wines x 13 chemical measurements, 3 cultivars; iris: 150 flowers x 4, 3 species.
    """
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    return Loaded(
        {"all": (bunch.data.astype(np.float32), bunch.target)},
        class_names=[str(n) for n in bunch.target_names],
        feature_names=[str(n) for n in bunch.feature_names],
    )


def load_blobs(
    num_features: int,
    num_classes: int,
    seed: int,
    n_samples: int = 3000,
    cluster_std: float = 2.0,
    **_: Any,
) -> Loaded:
    """Isotropic Gaussian blobs from scikit-learn, one blob per class, seeded."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples,
        n_features=num_features,
        centers=num_classes,
        cluster_std=cluster_std,
        random_state=seed,
    )
    return Loaded({"all": (x.astype(np.float32), y)})


def load_moons(seed: int, n_samples: int = 2000, noise: float = 0.2, **_: Any) -> Loaded:
    """Two interleaving half-circles from scikit-learn: a 2-feature binary problem, seeded."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return Loaded({"all": (x.astype(np.float32), y)})


def load_multilabel_blobs(
    num_features: int,
    num_classes: int,
    seed: int,
    n_samples: int = 3000,
    n_labels: int = 2,
    **_: Any,
) -> Loaded:
    """scikit-learn's make_multilabel_classification, seeded: word-count-like features, each
    sample carrying about `n_labels` of the `num_classes` labels (label_0, label_1, ...)."""
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(
        n_samples=n_samples,
        n_features=num_features,
        n_classes=num_classes,
        n_labels=n_labels,
        allow_unlabeled=True,
        random_state=seed,
    )
    names = [f"label_{i}" for i in range(num_classes)]
    return Loaded({"all": (x.astype(np.float32), y.astype(np.int64))}, class_names=names)


def load_npz(path: str | None = None, **_: Any) -> Loaded:
    """Your own data: an .npz with arrays `x` (samples x features) and `y` (labels)."""
    if not path:
        raise ConfigError("data=npz needs a file: set data.path=/path/to.npz")
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"data.path={path} is a folder; give an .npz file")
    if not file.is_file():
        raise ConfigError(f"data.path={path}: no such file; give an existing .npz")
    fix = "save it with np.savez(path, x=features, y=labels)"
    try:
        npz = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise ConfigError(
            f"data.path={path} is not an .npz archive of arrays (truncated, or another kind of "
            f"file); {fix}"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ConfigError(f"data.path={path} is one .npy array, not an .npz archive; {fix}")
    with npz:
        found = list(npz.files)
        missing = sorted({"x", "y"} - set(found))
        try:
            arrays = {key: npz[key] for key in ("x", "y") if not missing}
        except ValueError:  # an object array: unpickling it could run code
            raise ConfigError(
                f"data.path={path} holds a pickled object array, which can run code (refused); "
                f"{fix}"
            ) from None
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ConfigError(
                f"data.path={path}: an array cannot be read ({first_line(error)}); {fix}"
            ) from None
    if missing:
        held = f"it holds {', '.join(found[:6])}" if found else "it holds no arrays"
        raise ConfigError(f"data.path={path} lacks array(s) {', '.join(missing)} ({held}); {fix}")
    return Loaded({"all": (arrays["x"], arrays["y"])})


def load_torchvision(name: str, data_dir: str, download: bool = False, **_: Any) -> Loaded:
    """MNIST, FashionMNIST or KMNIST through torchvision's own classes: 28x28 uint8 images."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    raw = Path(data_dir).absolute() / cls.__name__ / "raw"
    parts: Parts = {}
    for part, train in (("train", True), ("test", False)):
        try:
            dataset = cls(root=data_dir, train=train, download=download)
        except (RuntimeError, OSError) as error:
            missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
            if download and missing:
                reason = first_line(error)
                raise ConfigError(
                    f"data={name}: data.download=true could not fetch {cls.__name__} ({reason}; "
                    f"no network here?): {raw} lacks {', '.join(missing)}; copy the files there "
                    "or download where the network is"
                ) from None
            if "Dataset not found" not in str(error):
                _raise_corrupt(raw, name, error)
            raise ConfigError(
                f"data={name}: no {cls.__name__} files in {raw} (expected "
                f"{', '.join(MNIST_FILES)}); set data.download=true or copy them there"
            ) from None
        except (AssertionError, ValueError, TypeError, KeyError, IndexError) as error:
            _raise_corrupt(raw, name, error)
        if len(dataset.data) != len(dataset.targets):
            raise ConfigError(
                f"data={name}: {part} has {len(dataset.data)} images but {len(dataset.targets)} "
                f"labels in {raw}; replace the files (data.download=true)"
            )
        parts[part] = (dataset.data, dataset.targets)
    return Loaded(parts)


def _raise_corrupt(raw: Path, name: str, error: BaseException) -> None:
    """Find which IDX file torchvision could not read and name it."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    for file in MNIST_FILES:
        if not (raw / file).is_file():
            raise ConfigError(
                f"data={name}: {raw / file} does not exist; set data.download=true or copy "
                "the files there"
            ) from None
        try:
            read_sn3_pascalvincent_tensor(str(raw / file), strict=True)
        except Exception:
            raise ConfigError(
                f"data={name}: {raw / file} is truncated or corrupt; delete it and fetch it "
                "again (data.download=true)"
            ) from None
    raise ConfigError(f"data={name}: files in {raw} could not be read ({error})") from None


def load_csv(
    path: str | None = None,
    target: Any = None,
    header: bool | None = None,
    label_separator: str | None = None,
    class_names: list[str] | None = None,
    **_: Any,
) -> Loaded:
    """Your own table: a CSV of numeric feature columns and a label column (`data.target`), or
    for the multilabel head several 0/1 label columns or one column of label sets."""
    from logitlab.data.label_sets import read_multilabel_csv, targets_of
    from logitlab.data.tables import read_labelled_csv

    if not path:
        raise ConfigError("data=csv needs a file: set data.path=/path/to.csv")
    if target is None:
        raise ConfigError(
            f"data=csv: set data.target to the label column of {path}, by name or index "
            "(e.g. data.target=label or data.target=-1)"
        )
    if len(targets_of(target)) > 1 or label_separator is not None:
        table = read_multilabel_csv(Path(path), target, header, label_separator, class_names)
    else:
        table = read_labelled_csv(Path(path), target, header)
    return Loaded(
        {"all": (table.x, table.y)},
        class_names=table.class_names,
        feature_names=table.feature_names,
        extra={
            "target": table.target_name,
            "target_index": table.target_index,
            "header": table.header,
        },
    )


SOURCES: dict[str, Callable[..., Loaded]] = {
    "digits": load_digits,
    "breast_cancer": partial(load_sklearn_table, "breast_cancer"),
    "wine": partial(load_sklearn_table, "wine"),
    "iris": partial(load_sklearn_table, "iris"),
    "csv": load_csv,
    "blobs": load_blobs,
    "moons": load_moons,
    "multilabel_blobs": load_multilabel_blobs,
    "npz": load_npz,
    **{name: partial(load_torchvision, name) for name in TORCHVISION},
}
