"""Where the data comes from: scikit-learn's bundled and generated sets, torchvision's MNIST family,
and your own .npz file. Each source returns named parts, {"all": (x, y)} or {"train": ..., "test":
...} for datasets with an official test split, as they are on disk (validation comes later).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError

Parts = dict[str, tuple[Any, Any]]

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


def load_digits(**_: Any) -> Parts:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 grayscale images, 10 classes."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return {"all": (bunch.images.astype(np.float32), bunch.target)}


def load_blobs(
    num_features: int,
    num_classes: int,
    seed: int,
    n_samples: int = 3000,
    cluster_std: float = 2.0,
    **_: Any,
) -> Parts:
    """Isotropic Gaussian blobs from scikit-learn, one blob per class, seeded."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples,
        n_features=num_features,
        centers=num_classes,
        cluster_std=cluster_std,
        random_state=seed,
    )
    return {"all": (x.astype(np.float32), y)}


def load_moons(seed: int, n_samples: int = 2000, noise: float = 0.2, **_: Any) -> Parts:
    """Two interleaving half-circles from scikit-learn: a 2-feature binary problem, seeded."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return {"all": (x.astype(np.float32), y)}


def load_npz(path: str | None = None, **_: Any) -> Parts:
    """Your own data: an .npz with arrays `x` (samples x features) and `y` (labels)."""
    if not path:
        raise ConfigError("data.source=npz needs a file: set data.source_kwargs.path=/path/to.npz")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"data.source_kwargs.path={path}: no such file; give an existing .npz")
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise ConfigError(
                    f"{path} lacks array(s) {sorted(missing)}; save it with "
                    "np.savez(path, x=features, y=labels)"
                )
            return {"all": (npz["x"], npz["y"])}
    except (ValueError, OSError, EOFError) as error:
        raise ConfigError(f"{path} is not a readable .npz file ({error}); re-save it") from None


def load_torchvision(name: str, data_dir: str, download: bool = False, **_: Any) -> Parts:
    """MNIST, FashionMNIST or KMNIST through torchvision's own classes: 28x28 uint8 images."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    raw = Path(data_dir).absolute() / cls.__name__ / "raw"
    parts: Parts = {}
    for part, train in (("train", True), ("test", False)):
        try:
            dataset = cls(root=data_dir, train=train, download=download)
        except RuntimeError as error:
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
    return parts


def _raise_corrupt(raw: Path, name: str, error: BaseException) -> None:
    """Find which IDX file torchvision could not read and name it."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    for file in MNIST_FILES:
        try:
            read_sn3_pascalvincent_tensor(str(raw / file), strict=True)
        except Exception:
            raise ConfigError(
                f"data={name}: {raw / file} is truncated or corrupt; delete it and fetch it "
                "again (data.download=true)"
            ) from None
    raise ConfigError(f"data={name}: files in {raw} could not be read ({error})") from None


SOURCES: dict[str, Callable[..., Parts]] = {
    "digits": load_digits,
    "blobs": load_blobs,
    "moons": load_moons,
    "npz": load_npz,
    **{name: partial(load_torchvision, name) for name in TORCHVISION},
}
