"""File helpers shared by datasets, weights, metrics and reports.

Every write goes to a temporary name in the target folder and is renamed into place,
so a failure never leaves a half-written file under the real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError, UsageError

CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_writable(folder: Path, what: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; otherwise one
    UsageError (a setting to change: exit 2) naming the folder, the reason and ``what``
    sets it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(
            f"{folder} cannot be written ({error.strerror or error}); set {what} to a "
            "writable folder"
        ) from None
    return folder


class ImageError(BenchError):
    """An image that cannot be used: unreadable, truncated, or of the wrong kind."""


#: PIL modes of one-channel images
GREY_MODES = ("L", "I", "I;16", "F", "1", "LA")


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Decode an image fully as uint8 (H, W, 3) for ``"RGB"`` or (H, W) for ``"L"``;
    ``"any"`` gives either, as the file holds it (8-bit greyscale as (H, W)).

    ``mode="RGB"`` refuses grayscale files instead of silently replicating channels;
    pass ``mode="L"`` for masks. RGBA and palette images are converted to RGB.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: truncated files fail here, not later
            if mode == "any":
                if image.mode in ("I", "I;16", "F"):
                    raise ImageError(f"{path}: {image.mode} greyscale; 8-bit images only")
                mode = "L" if image.mode in GREY_MODES else "RGB"
            if mode == "RGB" and image.mode in GREY_MODES:
                raise ImageError(f"{path}: grayscale image ({image.mode}) where RGB is expected")
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"{path}: unreadable or truncated image ({error})") from None


def write_image(path: Path, array: np.ndarray) -> None:
    """Write a uint8 (H, W[, 3]) array as PNG, atomically."""
    if array.dtype != np.uint8:
        raise TypeError(f"write_image needs uint8, got {array.dtype}")
    with atomic_write(path) as handle:
        Image.fromarray(array).save(handle, format="PNG")
