"""Training targets at model resolution, made with the serving pipeline's own
crop, scale and coordinate code (hades_perception.inference.pipeline / geometry), so that
training and serving cannot disagree about where a pixel is."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hades_perception.inference.dish import find_dish
from hades_perception.inference.geometry import Frame, model_to_grid
from hades_perception.inference.landmarks import PRIMARY, SEED, TIP
from hades_training.data.sample import Sample


@dataclass
class Prepared:
    """One dataset item, cropped and scaled the way the pipeline will see it."""

    stem: str
    image: np.ndarray  # (h, w, 3) uint8, model resolution
    seg: np.ndarray  # (C, h, w) float32 soft targets (area fraction of each class per model px)
    heat: np.ndarray  # (K, ceil(h/s), ceil(w/s)) float32 Gaussian targets, 1 at the cell of each landmark
    annotated: np.ndarray  # (C,) bool: classes with ground truth in this item
    focus: np.ndarray  # (N, 2) int model px (y, x) of foreground, for patch sampling
    points: np.ndarray  # (M, 2) int model px (y, x) of landmarks (tips, seeds), for patch sampling
    frame: Frame
    box: tuple[int, int, int, int]
    point_kinds: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # (M,) kind of each point


def landmark_points(sample: Sample, kinds: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    """Ground-truth points per landmark kind, in image px."""
    pts: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for p in sample.truth.plants:
        if PRIMARY in pts and p.primary_root_tip:
            pts[PRIMARY].append(p.primary_root_tip)
        if TIP in pts:
            pts[TIP].extend(p.root_tips)
        if SEED in pts and p.seed:
            pts[SEED].append(p.seed)
    return pts


def crop_box(image: np.ndarray, crop: str) -> tuple[int, int, int, int]:
    h, w = image.shape[:2]
    if crop == "dish":
        dish = find_dish(image[:, :, 1])
        if dish is not None:
            return dish.x0, dish.y0, dish.x1, dish.y1
    return 0, 0, w, h


def render_heat(points: list[tuple[float, float]], shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussians (sigma in cells) at sub-cell positions; the nearest cell is set to 1."""
    heat = np.zeros(shape, np.float32)
    h, w = shape
    r = int(np.ceil(3 * sigma))
    for gx, gy in points:
        cx, cy = round(gx), round(gy)
        if not (0 <= cx < w and 0 <= cy < h):
            continue
        y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        g = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma * sigma)).astype(np.float32)
        heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], g)
        heat[cy, cx] = 1.0
    return heat


def prepare(
    sample: Sample,
    classes: tuple[str, ...],
    kinds: tuple[str, ...],
    *,
    scale: float,
    crop: str,
    stride: int,
    sigma: float,
) -> Prepared:
    box = crop_box(sample.image, crop)
    x0, y0, x1, y1 = box
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    image = cv2.resize(sample.image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    seg = np.stack(
        [
            cv2.resize(sample.masks[c][y0:y1, x0:x1].astype(np.float32), size, interpolation=cv2.INTER_AREA)
            for c in classes
        ]
    )
    frame = Frame(x0, y0, scale)
    hshape = (-(-size[1] // stride), -(-size[0] // stride))
    heat = np.zeros((len(kinds), *hshape), np.float32)
    centres: list[tuple[int, int]] = []
    kinds_of: list[int] = []
    for k, pts in enumerate(landmark_points(sample, kinds).values()):
        if pts:
            u, v = frame.to_model(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            centres += [(round(b), round(a)) for a, b in zip(u, v, strict=True)]
            kinds_of += [k] * len(pts)
            heat[k] = render_heat(
                list(zip(model_to_grid(u, stride), model_to_grid(v, stride), strict=True)), hshape, sigma
            )
    fg = np.argwhere(seg.max(axis=0) > 0.25)
    annotated = np.array([c in sample.annotated for c in classes])
    points = np.array(centres, np.int32).reshape(-1, 2)
    return Prepared(
        sample.stem, image, seg, heat, annotated, fg.astype(np.int32), points, frame, box, np.array(kinds_of, np.int32)
    )
