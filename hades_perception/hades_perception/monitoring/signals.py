"""Per-frame monitoring signals: cheap numbers about the input image and the prediction
that move when the imaging conditions or the plates drift away from what the model was
trained on (blur, contrast, illumination, noise, condensation, other seedlings).

They are computed by the pipeline for every frame (a few milliseconds on a full Hades
frame: the input statistics on a strided view at about model resolution, the prediction
ones from what decoding already has), published by the node on its `monitoring` topic,
written into predict JSON, and compared with the bundle's reference (drift.py).

Names are stable: they are Prometheus label values, JSON keys and columns of drift
reports. Class names come from the model: `area.<class>`, `certainty.<class>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

WINDOW = 512  # px (about model resolution) of the dish centre where sharpness, noise and drops are measured
# Immerkaer's fast noise estimate: this kernel cancels image structure up to second order.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
# Drops on the lid are small lenses with dark rims: pixels darker than their local background
# (the window's mean over BACKGROUND x BACKGROUND px, at about model resolution) by more than
# the noise floor are counted. The background is an area-averaged thumbnail scaled back up,
# far cheaper than a wide Gaussian.
BACKGROUND = 8
MIN_SPOT = 2.0  # grey levels: the smallest darkening counted, whatever the noise


@dataclass(frozen=True)
class Signal:
    """What a signal means, and the smallest spread its reference is taken to have (in
    its own units): a reference whose values barely vary (every dish found, one camera)
    would otherwise call the tiniest change drift."""

    name: str
    description: str
    min_spread: float


INPUT_SIGNALS: tuple[Signal, ...] = (
    Signal("input.p01", "1st percentile of grey in the dish (0-255)", 2.0),
    Signal("input.p50", "median grey in the dish (0-255)", 2.0),
    Signal("input.p99", "99th percentile of grey in the dish (0-255)", 2.0),
    Signal("input.contrast", "p99 - p01 grey levels", 2.0),
    Signal("input.sharpness", "99.9th percentile of |Laplacian| (after a 1 px blur) at the dish centre", 0.5),
    Signal("input.noise", "sensor noise sigma (Immerkaer) at the dish centre, grey levels", 0.1),
    Signal("input.texture", "band-pass variance in the top of the dish (condensation, dust)", 0.5),
    Signal(
        "input.drops",
        "fraction of the dish centre in small dark spots and rims (condensation drops): after a 1 px blur, "
        "darker than the 8 px local mean by more than the noise sigma (at least 2 grey levels)",
        0.002,
    ),
    Signal("input.clipped", "fraction of dish pixels at 0-1 or 254-255", 0.001),
    Signal("input.dish_found", "1 when the dish was found, 0 when the whole frame was used", 0.25),
    Signal("input.dish_width_px", "width of the dish crop in input px", 20.0),
)
PLANT_SIGNALS: tuple[Signal, ...] = (
    Signal("plants.found", "plants with a primary root tip", 0.25),
    Signal("plants.low_confidence", "plants flagged low-confidence", 0.25),
)


def class_signals(classes: tuple[str, ...] | list[str]) -> tuple[Signal, ...]:
    """Per-class prediction signals for a model's classes."""
    out: list[Signal] = []
    for c in classes:
        out.append(Signal(f"area.{c}", f"fraction of the dish predicted {c}", 0.0005))
        out.append(Signal(f"certainty.{c}", f"mean probability of the pixels predicted {c}", 0.005))
    return tuple(out)


def signals_for(classes: tuple[str, ...] | list[str]) -> tuple[Signal, ...]:
    """Every signal a model with these classes produces, in a fixed order."""
    return INPUT_SIGNALS + class_signals(classes) + PLANT_SIGNALS


def input_signals(rgb: np.ndarray, box: tuple[int, int, int, int], scale: float, dish_found: bool) -> dict[str, float]:
    """Grey-level statistics of the crop `box` of an RGB uint8 image, read at about the
    model's resolution (`scale`) through a strided view, so no full-size copy is made."""
    x0, y0, x1, y1 = box
    step = max(1, round(1.0 / scale)) if scale > 0 else 1
    grey = rgb[y0:y1:step, x0:x1:step, 1]  # green: the channel the dish finder reads too
    hist = cv2.calcHist([np.ascontiguousarray(grey[::2, ::2])], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / max(float(hist.sum()), 1.0)

    def pct(q: float) -> float:
        return float(np.searchsorted(cdf, q))

    h, w = grey.shape
    cy, cx, r = h // 2, w // 2, WINDOW // 2
    centre = np.ascontiguousarray(grey[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r]).astype(np.float32)
    sharpness = noise = texture = drops = 0.0
    if min(centre.shape) >= 8:
        # Edges of roots, measured after a light blur so that sensor noise does not count.
        smooth = cv2.GaussianBlur(centre, (0, 0), 1.0)
        lap = np.abs(cv2.Laplacian(smooth, cv2.CV_32F))[::2, ::2].ravel()
        sharpness = float(np.partition(lap, int(lap.size * 0.999))[int(lap.size * 0.999)])
        k = np.abs(cv2.filter2D(centre, cv2.CV_32F, _NOISE_KERNEL)[1:-1, 1:-1])
        noise = float(k.mean() * math.sqrt(math.pi / 2) / 6.0)
        drops = _dark_spots(centre, smooth, max(MIN_SPOT, noise))
    top = np.ascontiguousarray(grey[int(h * 0.03) : int(h * 0.2) : 2, int(w * 0.05) : int(w * 0.95) : 2])
    if min(top.shape) >= 8:  # condensation gathers under the top of the lid
        top32 = top.astype(np.float32)
        texture = float((cv2.GaussianBlur(top32, (0, 0), 0.7) - cv2.GaussianBlur(top32, (0, 0), 2.0)).var())
    p01, p50, p99 = pct(0.01), pct(0.5), pct(0.99)
    return {
        "input.p01": p01,
        "input.p50": p50,
        "input.p99": p99,
        "input.contrast": p99 - p01,
        "input.sharpness": sharpness,
        "input.noise": noise,
        "input.texture": texture,
        "input.drops": drops,
        "input.clipped": float((hist[:2].sum() + hist[254:].sum()) / max(float(hist.sum()), 1.0)),
        "input.dish_found": 1.0 if dish_found else 0.0,
        "input.dish_width_px": float(x1 - x0),
    }


def _dark_spots(grey: np.ndarray, smooth: np.ndarray, depth: float) -> float:
    """Fraction of `grey` (float32) where `smooth` (it, lightly blurred) lies more than
    `depth` grey levels below the local background, counted on every other pixel each way
    (drop rims are wider than that; the background is scaled up to that grid only). A 1 px
    blur leaves the noise about a quarter of its sigma, so a noise-sigma `depth` counts
    almost no noise; roots count too (as on the reference plates): the drift test sees the
    change, not the level."""
    h, w = grey.shape
    if min(h, w) < 2 * BACKGROUND:
        return 0.0
    thumb = cv2.resize(grey, (w // BACKGROUND, h // BACKGROUND), interpolation=cv2.INTER_AREA)
    sub = smooth[::2, ::2]
    background = cv2.resize(thumb, (sub.shape[1], sub.shape[0]), interpolation=cv2.INTER_LINEAR)
    return float(np.count_nonzero(sub < background - depth) / sub.size)


def prediction_signals(
    probs: np.ndarray,
    thresholds: list[float] | tuple[float, ...],
    classes: tuple[str, ...],
    class_confidence: dict[str, float],
    plants_found: int,
    plants_low_confidence: int,
) -> dict[str, float]:
    """Area per class (at model resolution, every fourth pixel each way: 0.1 % of a
    full dish is still 100 pixels counted), mean certainty per class (what decoding
    computed) and the plant counts."""
    out: dict[str, float] = {}
    sub = probs[:, ::4, ::4]
    for c, name in enumerate(classes):
        out[f"area.{name}"] = float(np.count_nonzero(sub[c] > thresholds[c]) / max(sub[c].size, 1))
        out[f"certainty.{name}"] = float(class_confidence.get(name, 0.0))
    out["plants.found"] = float(plants_found)
    out["plants.low_confidence"] = float(plants_low_confidence)
    return out
