"""One image file's pixels as a NumPy array (PIL only, no torch): what training, predict and the
torch-free predictor of an exported model all read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from logitlab.errors import ConfigError, first_line


def read_pixels(path: str | Path, channels: int) -> np.ndarray:
    """(channels, H, W): 1 channel converts to grayscale, 3 to RGB. 8-bit files give uint8;
    16-bit ones (PIL mode I;16 or I) float32 in [0, 1], never clipped to 255."""
    file = str(path)  # a plain str: PIL names the file by its repr in its messages
    try:
        with Image.open(file) as image:
            if image.mode.startswith("I"):
                array = np.asarray(image, dtype=np.float32)
                if array.min() < 0 or array.max() > 65535:
                    raise ConfigError(
                        f"{file} holds pixel values outside 16 bits ({array.min():g} to "
                        f"{array.max():g}); save it as an 8- or 16-bit image"
                    )
                scaled = (array / 65535.0).astype(np.float32)[None]
                return np.repeat(scaled, channels, axis=0)  # a writable array of its own
            array = np.array(image.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(
            f"{file} is not a readable image ({first_line(error)}); replace or delete the file"
        ) from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))
