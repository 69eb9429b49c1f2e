"""Plate images from files or bytes, as every entry point reads them (predict, the
batch, the monitor): 8- or 16-bit, grey or RGB, alpha dropped, in RGB order."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """RGB (or grey) array as stored: 8- or 16-bit. ValueError when it is not an image."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise ValueError(f"{name}: cannot be decoded as an image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def read_image(path: Path) -> np.ndarray:
    """The file at `path`, as decode_image reads it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from exc
    return decode_image(data, str(path))
