"""Finding the agar area of the dish, for cropping and for pixel-to-mm calibration.

Everything outside the agar (black surround, rim, the intensity bar on the right
edge) is not plate and must be ignored; cropping to the agar also saves a third
of the compute on a 4202x3006 frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DISH_MM = 120.0  # agar width of the square Hades dishes
_WORK_WIDTH = 525  # detection runs on a copy about this wide


@dataclass(frozen=True)
class DishRegion:
    """Agar bounding box in image px (x1, y1 exclusive), and its px per mm."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def px_per_mm(self, dish_mm: float = DISH_MM) -> float:
        return self.width / dish_mm


def find_dish(grey: np.ndarray, *, min_fraction: float = 0.2) -> DishRegion | None:
    """The agar region of a plate image (2-D uint8), or None when there is no
    plausible dish (then callers use the whole image)."""
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"find_dish expects a 2-D grey image, got shape {grey.shape}")
    h, w = grey.shape
    f = max(1, w // _WORK_WIDTH)
    # The copy is w / (w // f) times smaller (8.004 for a 4202 px frame), not f, so boxes
    # come out up to 5 px short of the agar on the far sides. Kept on purpose: the crop is
    # part of the model's input contract (training crops with this function). Exact
    # f x f blocks (3x faster) cost the shipped model 0.010 root IoU on the `normal` test
    # split, the rim's inner edge then segmented as root (session 17); change it with a
    # retrained model, not under one.
    small = cv2.resize(grey, (w // f, h // f), interpolation=cv2.INTER_AREA)
    otsu, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    above = small[small > otsu]
    if above.size == 0:
        return None
    # Agar is far brighter than the rim and its highlight: cut at 3/4 of the agar level
    # so the rim is not counted as plate (Otsu alone lets parts of it in).
    _, bright = cv2.threshold(small, 0.75 * float(np.median(above)), 255, cv2.THRESH_BINARY)
    # Opening removes the narrow intensity bar, tick labels and specks.
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((7, 7), np.uint8))
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[k])
    if area < min_fraction * small.size or not 0.7 <= bw / max(bh, 1) <= 1.4:
        return None
    return DishRegion(x * f, y * f, min(w, (x + bw) * f), min(h, (y + bh) * f))
