"""Reading images and masks with errors that name the file."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from hades_training.data.sample import DatasetError

log = logging.getLogger(__name__)
Item = TypeVar("Item")


def keep_loadable(
    items: Sequence[Item], load: Callable[[Item], Any], where: Path
) -> tuple[list[Item], list[DatasetError]]:
    """Load every item once; leave out the bad ones with a warning naming the file."""
    good, skipped = [], []
    for item in items:
        try:
            load(item)
            good.append(item)
        except DatasetError as exc:
            log.warning("skipping %s", exc)
            skipped.append(exc)
    if not good:
        raise DatasetError(where, "every item is bad (see the warnings above)")
    return good, skipped


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB. 8-bit grey (single-channel) images, as some Hades sets and the
    synthetic `realistic` preset ship them, come back with three equal channels."""
    if not path.is_file():
        raise DatasetError(path, "image file is missing")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise DatasetError(path, "image cannot be decoded (truncated or not an image); replace or remove it")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 uint8 mask; accepts 0/1 or 0/255, single- or three-channel."""
    if not path.is_file():
        raise DatasetError(path, "mask file is missing")
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DatasetError(path, "mask cannot be decoded")
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != shape:
        raise DatasetError(path, f"mask is {m.shape[1]}x{m.shape[0]} px but its image is {shape[1]}x{shape[0]} px")
    return (m > 0).astype(np.uint8)
