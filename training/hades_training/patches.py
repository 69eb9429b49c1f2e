"""Random training patches with plate-appropriate augmentation.

Most of a dish is empty agar, so most patches are centred on foreground
(roots, shoots, seeds) and the rest anywhere. Augmentation follows what
changes between Hades sessions: illumination, contrast, gamma, focus, sensor
noise, and left-right mirroring. No vertical flips or large rotations: roots
grow down, and the model may rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


def sample_patch(
    rng: np.random.Generator, item: Prepared, size: int, stride: int, focus_p: float = 0.7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (size x size) patch of image, seg and heat targets (heat at size/stride).
    With probability focus_p it is centred near foreground; within that, 40 % of
    the time near a landmark (tips and seeds are few pixels among millions)."""
    h, w = item.image.shape[:2]
    if item.focus.size and rng.random() < focus_p:
        pool = item.points if item.points.size and rng.random() < 0.4 else item.focus
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
    x = (x - 128.0) * rng.uniform(*aug.contrast) + 128.0 + rng.uniform(-aug.brightness, aug.brightness)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(*aug.gamma)
    if rng.random() < aug.blur_p:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, aug.blur_sigma))
    x += rng.normal(0, rng.uniform(0, aug.noise_sigma), x.shape).astype(np.float32)
    if rng.random() < aug.flip_p:
        x, seg, heat = x[:, ::-1], seg[:, :, ::-1], heat[:, :, ::-1]
    return np.clip(x, 0, 255).astype(np.uint8), np.ascontiguousarray(seg), np.ascontiguousarray(heat)
