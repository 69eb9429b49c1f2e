"""Random training patches with plate-appropriate augmentation.

Most of a dish is empty agar, so most patches are centred on foreground
(roots, shoots, seeds) and the rest anywhere. Augmentation follows what
changes between Hades sessions: illumination, contrast, gamma, focus, sensor
noise, and left-right mirroring. No vertical flips or large rotations: roots
grow down, and the model may rely on it.

One hard negative is drawn on purpose: a condensation drop just ahead of a root
tip (`Augment.tip_drop_p`). Its dark rim, where the root would grow on, looks
like more root: the model segmented the gap and the rim as root and the tip
detector fired at the rim, 1-2 mm past the real tip, with confidence
(docs/training.md, session 12). Drops fall there rarely in the synthetic
plates, so they are painted there in training, and the targets say what they
are: not root.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hades_training.synth.realistic import draw_drop
from hades_training.targets import Prepared


@dataclass(frozen=True)
class Augment:
    brightness: float = 25.0  # +- grey levels
    contrast: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.8, 1.25)
    blur_p: float = 0.3
    blur_sigma: float = 1.2
    noise_sigma: float = 6.0
    flip_p: float = 0.5
    tip_drop_p: float = 0.0  # chance of painting a drop just ahead of a root tip in the patch
    tip_channels: tuple[int, ...] = ()  # heat channels of root tips (where tip drops may go)
    root_channel: int = 0  # seg channel of the root class (which way a root grows at its tip)


def sample_patch(
    rng: np.random.Generator,
    item: Prepared,
    size: int,
    stride: int,
    focus_p: float = 0.7,
    balance_kinds: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (size x size) patch of image, seg and heat targets (heat at size/stride).
    With probability focus_p it is centred near foreground; within that, 40 % of
    the time near a landmark (tips and seeds are few pixels among millions).
    `balance_kinds`: that landmark is drawn kind first, then point, so each kind is
    a centre as often: an old plate has five primary tips among dozens of lateral
    tips, and drawn point by point a primary tip was one landmark patch in seven."""
    h, w = item.image.shape[:2]
    if item.focus.size and rng.random() < focus_p:
        pool = item.focus
        if item.points.size and rng.random() < 0.4:
            pool = item.points
            if balance_kinds and len(item.point_kinds) == len(pool):  # kind first, then point
                pool = pool[item.point_kinds == rng.choice(np.unique(item.point_kinds))]
        cy, cx = pool[rng.integers(len(pool))]
        y, x = int(cy) - size // 2 + int(rng.integers(-size // 4, size // 4 + 1)), int(cx) - size // 2
    else:
        y, x = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
    # Patch origins on the heatmap grid, so heat targets align exactly.
    y = int(np.clip(y, 0, max(0, h - size))) // stride * stride
    x = int(np.clip(x, 0, max(0, w - size))) // stride * stride
    img = _pad(item.image[y : y + size, x : x + size], size, size)
    seg = _pad(item.seg[:, y : y + size, x : x + size], size, size)
    hs = size // stride
    heat = _pad(item.heat[:, y // stride : y // stride + hs, x // stride : x // stride + hs], hs, hs)
    return img, seg, heat


def _pad(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Zero-pad an HWC image (uint8) or a CHW target to h x w."""
    hy, wx = (0, 1) if a.dtype == np.uint8 else (a.ndim - 2, a.ndim - 1)
    ph, pw = h - a.shape[hy], w - a.shape[wx]
    if ph <= 0 and pw <= 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[hy], pad[wx] = (0, max(0, ph)), (0, max(0, pw))
    return np.pad(a, pad)


def augment(
    rng: np.random.Generator, img: np.ndarray, seg: np.ndarray, heat: np.ndarray, aug: Augment
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x: np.ndarray = img.astype(np.float32)
    if aug.tip_drop_p and rng.random() < aug.tip_drop_p:
        x = drop_on_tip(rng, x, seg[aug.root_channel], heat, aug.tip_channels, img.shape[0] // max(1, heat.shape[1]))
    x = (x - 128.0) * rng.uniform(*aug.contrast) + 128.0 + rng.uniform(-aug.brightness, aug.brightness)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(*aug.gamma)
    if rng.random() < aug.blur_p:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, aug.blur_sigma))
    x += rng.normal(0, rng.uniform(0, aug.noise_sigma), x.shape).astype(np.float32)
    if rng.random() < aug.flip_p:
        x, seg, heat = x[:, ::-1], seg[:, :, ::-1], heat[:, :, ::-1]
    return np.clip(x, 0, 255).astype(np.uint8), np.ascontiguousarray(seg), np.ascontiguousarray(heat)


def drop_on_tip(
    rng: np.random.Generator, x: np.ndarray, root: np.ndarray, heat: np.ndarray, channels: tuple[int, ...], stride: int
) -> np.ndarray:
    """`x` (float HWC) with a condensation drop painted at one root tip of the patch (a
    heat target's peak cell): ahead of it, where the root would grow on (away from the
    root pixels behind the tip in `root`, the root class's target), its near edge from
    just over the tip to 1.1 mm beyond it; drawn by the synthetic plates' `draw_drop`
    (a darker ring, often a bright edge, a faint lens inside). Unchanged when the patch
    holds no tip. Targets are not touched: a drop is not root."""
    peaks = [np.argwhere(heat[c] >= 0.999) for c in channels if c < len(heat)]
    cells = np.concatenate(peaks) if peaks else np.empty((0, 2), int)
    if not len(cells):
        return x
    tip = (cells[rng.integers(len(cells))] + 0.5) * stride  # (y, x)
    ty, tx = int(tip[0]), int(tip[1])
    y0, x0 = max(0, ty - 15), max(0, tx - 15)
    behind = np.argwhere(root[y0 : ty + 16, x0 : tx + 16] > 0.5) + np.array([y0, x0])
    along = tip - behind.mean(axis=0) if len(behind) else np.zeros(2)
    heading = math.atan2(along[1], along[0]) if np.hypot(*along) >= 2 else 0.0  # else down
    heading += rng.normal(0, 0.35)
    r = float(np.clip(rng.lognormal(np.log(9.0), 0.5), 3.0, 36.0))  # model px: 0.3-3.4 mm
    d = r + rng.uniform(-0.15 * r, 12.0)  # centre to tip: the near edge over the tip to 12 px past it
    centre = (int((tip[1] + d * math.sin(heading)) * 4), int((tip[0] + d * math.cos(heading)) * 4))
    layer: np.ndarray = np.zeros(x.shape[:2], np.float32)
    interior, ring = float(rng.uniform(-0.03, 0.015)), float(rng.uniform(0.03, 0.12))
    rim = float(rng.uniform(0.03, 0.2)) if rng.random() < 0.5 else 0.0
    draw_drop(layer, centre, r, interior, ring, rim, ring_width=0.2)
    blurred = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.5, 1.2))
    return np.asarray(x * (1.0 - blurred[..., None]), np.float32)
