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
# The agar's height over its width on Hades images: 2740 x 2820 px on a measured frame
# (../shared/HADES.md); the synthetic plates draw 0.965-0.985.
AGAR_ASPECT = 0.97
_WORK_WIDTH = 525  # detection runs on a copy about this wide
SIDES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class DishRegion:
    """Agar bounding box in image px (x1, y1 exclusive) as far as the image shows it, and
    the sides (`SIDES`) where the agar runs off the image: a frame or crop that cuts the
    dish. Where one side of the width is cut and the height is whole, the agar's whole
    width follows from its height, for calibration and for the plants' slots."""

    x0: int
    y0: int
    x1: int
    y1: int
    cut: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def span_x(self) -> tuple[float, float]:
        """The whole agar's x extent in image px: the box's, or where exactly one of its
        left and right sides is cut and neither top nor bottom is, the uncut side and the
        width the height gives (AGAR_ASPECT), at least the width seen. A crop at the agar
        on every side tells nothing: the box is taken as whole, as before."""
        across = "top" in self.cut or "bottom" in self.cut
        return _extent(self.x0, self.x1, "left" in self.cut, "right" in self.cut, across, self.height / AGAR_ASPECT)

    @property
    def span_y(self) -> tuple[float, float]:
        """The whole agar's y extent in image px, as `span_x` with the roles swapped."""
        across = "left" in self.cut or "right" in self.cut
        return _extent(self.y0, self.y1, "top" in self.cut, "bottom" in self.cut, across, self.width * AGAR_ASPECT)

    def px_per_mm(self, dish_mm: float = DISH_MM) -> float:
        x0, x1 = self.span_x
        return (x1 - x0) / dish_mm


def _extent(lo: int, hi: int, cut_lo: bool, cut_hi: bool, across_cut: bool, whole: float) -> tuple[float, float]:
    """One axis's whole extent: lo..hi, or where exactly one end is cut and the other
    axis is whole (not `across_cut`), the uncut end and `whole` (at least hi - lo)."""
    if cut_lo == cut_hi or across_cut:
        return float(lo), float(hi)
    length = max(float(hi - lo), whole)
    return (hi - length, float(hi)) if cut_lo else (float(lo), lo + length)


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
    # retrained model, not under one. `_halved` is the one exception taken under the shipped
    # model, as it moved 3 boxes of 528 by one work-copy pixel (see there).
    small = cv2.resize(_halved(grey, f), (w // f, h // f), interpolation=cv2.INTER_AREA)
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
    sh, sw = small.shape
    touches = (x == 0, y == 0, x + bw == sw, y + bh == sh)  # the agar runs off the image there
    cut = tuple(side for side, t in zip(SIDES, touches, strict=True) if t)
    # About square, judged on the whole agar: a dish cut by the image's edge is narrower.
    (sx0, sx1), (sy0, sy1) = (seen := DishRegion(x, y, x + bw, y + bh, cut)).span_x, seen.span_y
    if area < min_fraction * small.size or not 0.7 <= (sx1 - sx0) / max(sy1 - sy0, 1) <= 1.4:
        return None
    return DishRegion(x * f, y * f, min(w, (x + bw) * f), min(h, (y + bh) * f), cut)


def _halved(grey: np.ndarray, f: int) -> np.ndarray:
    """The image averaged over 2x2 blocks where both sides are even and the work copy is
    at least 2x smaller (else the image itself). OpenCV's area resize with a factor that is
    not whole, as the work copy's is, is several times slower per pixel than with an exact
    2: halving first and then taking the copy from the half image took 8-11 ms against
    14-24 ms on a 4202x3006 frame (2 cores; the green channel of an RGB frame is a strided
    view, the slower case). The work copy then differs from the direct one by rounding
    only. On 528 distinct synthetic plates of both presets (full frames and crops; 384 of
    them even-sized, so halved) 3 boxes moved by one work-copy pixel on one side (5-8 px),
    and the evaluations of the shipped model on six dev splits, which hold all three, gave
    the same figures as before to the last printed digit (session 25). A test compares both
    routes on plates it draws (tests/unit/test_pipeline.py)."""
    h, w = grey.shape
    if f < 2 or h % 2 or w % 2:
        return grey
    return cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
