"""Shifted digits: scikit-learn's 8x8 digits, upsampled to 20x20 and placed at a random shift
in a 28x28 frame with pixel noise, written as MNIST's IDX files. Where a digit sits varies, as
it does in real scans: a conv net handles it, a plain MLP finds it harder. Offline and seeded,
for the recipe experiments (experiment=shifted_digits_cnn, shifted_digits_recipe):

    python -m logitlab.data.synthetic out=DIR [n=3000] [n_test=500] [seed=0]

writes DIR/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte; then train with
paths.data_dir=DIR.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it: magic 0x0000 08 <ndim>, big-endian dims, uint8 data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def shifted_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 28, 28), labels) of shifted, noisy digits."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.target), size=n)
    small = torch.tensor(digits.images[pick], dtype=torch.float32)[:, None] / 16 * 255
    big = torch.nn.functional.interpolate(small, size=(20, 20), mode="bilinear")[:, 0].numpy()
    images = np.zeros((n, 28, 28))
    for i, (dy, dx) in enumerate(rng.integers(0, 9, size=(n, 2))):
        images[i, dy : dy + 20, dx : dx + 20] = big[i]
    images = np.clip(images + rng.normal(0, 20, size=images.shape), 0, 255)
    return images.astype(np.uint8), digits.target[pick]  # truncated, as IDX files store them


def shifted_digits_mnist(root: Path, n: int = 3000, n_test: int = 500, seed: int = 0) -> Path:
    """MNIST-format files of `shifted_digits` under root/MNIST/raw (the first n_test: t10k)."""
    images, labels = shifted_digits(n, seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(n_test, n)), ("t10k", slice(0, n_test))):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[part])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[part])
    return raw


def main(argv: list[str] | None = None) -> None:
    from logitlab.errors import ConfigError, user_errors
    from logitlab.run.arguments import parse_args

    usage = __doc__.split("\n\n")[1].strip()
    with user_errors():
        args = parse_args(
            sys.argv[1:] if argv is None else argv,
            {"out": None, "n": "3000", "n_test": "500", "seed": "0"},
            usage,
            "out",
        )
        for key in ("n", "n_test", "seed"):
            if not str(args[key]).isdigit():
                raise ConfigError(f"{key}={args[key]} must be a whole number >= 0")
        n, n_test = int(args["n"]), int(args["n_test"])
        if not 0 < n_test < n:
            raise ConfigError(f"n_test={n_test} must lie between 0 and n={n} (both excluded)")
        raw = shifted_digits_mnist(Path(args["out"]), n, n_test, int(args["seed"]))
    print(f"written: {raw}")


if __name__ == "__main__":
    main()
