"""Overlay pictures of masks and landmarks on a plate, for people to look at.

Used by the dataset preview, evaluation reports, replay reports and the demo,
so every picture of a prediction looks the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from hades_perception.inference.landmarks import PRIMARY, SEED, TIP
from hades_perception.inference.prediction import Prediction

# Colours (RGB) by class name; classes a model adds get a colour from the fallback palette.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "root": (255, 200, 0),
    "shoot": (40, 200, 60),
    "seed": (230, 60, 230),
    "occluded_root": (0, 170, 255),
}
_FALLBACK = [(255, 120, 40), (120, 255, 255), (200, 200, 80), (160, 90, 255)]
LANDMARK_STYLE: dict[str, tuple[tuple[int, int, int], int]] = {
    # kind -> (colour, marker size in px of the picture)
    PRIMARY: ((255, 30, 30), 14),
    TIP: ((255, 150, 30), 8),
    SEED: ((230, 60, 230), 10),
}


@dataclass(frozen=True)
class Marker:
    kind: str
    x: float
    y: float
    plant: int | None = None
    low_confidence: bool = False


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    return CLASS_COLOURS.get(name, _FALLBACK[index % len(_FALLBACK)])


def draw_overlay(
    image: np.ndarray,
    masks: Mapping[str, np.ndarray],
    markers: Iterable[Marker] = (),
    *,
    scale: float | None = None,
    alpha: float = 0.55,
) -> np.ndarray:
    """RGB picture at `scale` of the input: masks tinted per class (overlapping
    classes blend), landmarks as crosses (primary tips numbered by plant), and
    low-confidence landmarks drawn with a circle around them. Default scale: about
    1000 px wide."""
    h, w = image.shape[:2]
    scale = scale or min(1.0, 1000 / w)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    base = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    out = cv2.resize(base, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    for i, (name, mask) in enumerate(masks.items()):
        # Max-pool so thin roots stay visible after downscaling.
        small = (
            cv2.resize(
                cv2.dilate(
                    (mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(0, int(0.5 / scale) - 1)
                ),
                size,
                interpolation=cv2.INTER_NEAREST,
            )
            > 0
        )
        tint = np.array(class_colour(name, i), np.float32)
        out[small] = (1 - alpha) * out[small] + alpha * tint
    canvas = np.clip(out, 0, 255).astype(np.uint8)
    for m in markers:
        colour, s = LANDMARK_STYLE.get(m.kind, ((255, 255, 255), 8))
        p = (round(m.x * scale), round(m.y * scale))
        cv2.drawMarker(canvas, p, colour, cv2.MARKER_CROSS, s, 2, cv2.LINE_AA)
        if m.low_confidence:
            cv2.circle(canvas, p, s, (255, 255, 255), 1, cv2.LINE_AA)
        if m.kind == PRIMARY and m.plant is not None:
            cv2.putText(
                canvas,
                str(m.plant),
                (p[0] + s // 2 + 2, p[1] + s // 2 + 10),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                colour,
                1,
                cv2.LINE_AA,
            )
    return canvas


def prediction_picture(image: np.ndarray, pred: Prediction) -> np.ndarray:
    """BGR picture for files: masks and landmarks (low-confidence ones ringed) beside
    the certainty map. Used by `predict --overlay` and replay overlays alike."""
    markers = [
        Marker(lm.kind, lm.x, lm.y, lm.plant, lm.confidence < pred.low_confidence_threshold) for lm in pred.landmarks
    ]
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    pic = draw_overlay(rgb[:, :, :3], pred.masks, markers)
    conf = cv2.applyColorMap(
        cv2.resize(pred.confidence_map, (pic.shape[1], pic.shape[0]), interpolation=cv2.INTER_AREA),
        cv2.COLORMAP_VIRIDIS,
    )
    return np.hstack([cv2.cvtColor(pic, cv2.COLOR_RGB2BGR), conf])


def legend(class_names: Iterable[str]) -> str:
    """Text legend of the colours, for reports."""
    parts = [f"{n}: rgb{class_colour(n, i)}" for i, n in enumerate(class_names)]
    parts += [f"{k}: rgb{v[0]} cross" for k, v in LANDMARK_STYLE.items()]
    return "; ".join(parts)
