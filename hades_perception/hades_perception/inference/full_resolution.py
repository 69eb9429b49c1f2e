"""Masks and the certainty image at input resolution, made when first asked for.

A node whose consumers take landmarks, plants and certainty never needs a 12-megapixel
mask; one with a mask subscriber needs each class once. So the pipeline hands out these
lazy views, and the full-resolution work (a bilinear resize of each class's calibrated
logits to the crop, then its threshold) runs on first access and is kept.

Why logits and not thresholded masks: thresholding at model resolution and upscaling
the binary masks was measured (8 validation plates, 2026-11-29) to cost 0.07 root IoU
(0.787 -> 0.714): thin roots are 1-2 model pixels wide, and their edges sit between
pixels. Resizing probabilities instead of logits cost 0.04. Resizing all classes in one
multi-channel call was slower than one call per class (cv2, 2 cores).

A mask can also be had as mono8 (`mono8`: 0 or 255, what a ROS image carries), written
into a buffer the caller owns: the threshold is written straight into the crop, so the
node's masks message needs no bool array, no x255 pass and no copy into the message
(benchmarks/masks_benchmark.py: the images thread 118 -> 80 ms a frame, 2 cores). The
certainty image is made class by class in place, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 of the crop the model saw


class FullResolutionMasks(Mapping[str, np.ndarray]):
    """class -> (H, W) bool mask at input resolution, each made on first access."""

    def __init__(
        self,
        classes: tuple[str, ...],
        logits: np.ndarray,
        thresholds: tuple[float, ...] | list[float],
        box: Box,
        shape: tuple[int, int],
        temperatures: tuple[float, ...] | list[float] | None = None,
    ) -> None:
        """`logits`: (C, h, w), the model's; `thresholds`: per class, on the probability
        of the logit divided by its class's temperature (`temperatures`, default 1). The
        division is made per class when its mask is (a landmarks-only node never does)."""
        self._classes = tuple(classes)
        self._logits = logits
        self._temperatures = [1.0] * len(classes) if temperatures is None else list(temperatures)
        self._logit_thresholds = [float(np.log(t / (1 - t))) for t in thresholds]
        self._box, self._shape = box, shape
        self._made: dict[str, np.ndarray] = {}

    def __getitem__(self, cls: str) -> np.ndarray:
        if cls not in self._made:
            made = self.mono8(cls)
            x0, y0, x1, y1 = self._box
            crop = made[y0:y1, x0:x1]
            np.bitwise_and(crop, 1, out=crop)  # 255 -> 1 in place: a valid bool view
            self._made[cls] = made.view(bool)
        return self._made[cls]

    def mono8(self, cls: str, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8, 255 where the class is and 0 elsewhere: what a mono8 image
        carries, written into `out` when given (the ROS node hands in a message's own
        buffer, so a 12.6 MB mask is written once and never copied into the message).
        Not kept; from the bool mask when that is made already, else from the logits
        (a threshold written straight into the crop: no bool array and no x255 pass)."""
        if cls not in self._classes:
            raise KeyError(cls)
        out = np.zeros(self._shape, np.uint8) if out is None else _outside(out, self._box, 0)
        if cls in self._made:
            return as_mono8(self._made[cls], out)
        c = self._classes.index(cls)
        x0, y0, x1, y1 = self._box
        calibrated = self._logits[c] / np.float32(self._temperatures[c])
        up = cv2.resize(calibrated, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        cv2.compare(up, self._logit_thresholds[c], cv2.CMP_GT, dst=out[y0:y1, x0:x1])  # type: ignore[call-overload]
        return out

    @property
    def made(self) -> tuple[str, ...]:
        """The classes whose full-resolution mask exists so far."""
        return tuple(self._made)

    def __contains__(self, cls: object) -> bool:
        return cls in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


def certainty_image(probs: np.ndarray, box: Box, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8: per pixel how sure the least sure class is (0 = a coin toss, 255 =
    certain), from the (C, h, w) probabilities; 255 outside the crop. Written into `out`
    (H, W uint8) when given."""
    x0, y0, x1, y1 = box
    # min over classes of max(p, 1 - p), class by class in place: the same numbers as
    # np.min(np.maximum(probs, 1 - probs), axis=0) without its (C, h, w) temporaries
    # (10 against 17 ms for four classes at model size, 2 cores).
    least = np.maximum(probs[0], 1 - probs[0])
    other = np.empty_like(least)
    for p in probs[1:]:
        np.subtract(1, p, out=other)
        np.maximum(other, p, out=other)
        np.minimum(least, other, out=least)
    least -= 0.5  # then x 2 x 255, rounded: (least - 0.5) * 2 * 255, in place
    least *= 2
    least *= 255
    small = np.round(least, out=least).astype(np.uint8)
    conf = np.full(shape, 255, np.uint8) if out is None else _outside(out, box, 255)
    cv2.resize(small, (x1 - x0, y1 - y0), dst=conf[y0:y1, x0:x1], interpolation=cv2.INTER_LINEAR)
    return conf


def as_mono8(mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A bool mask as mono8 (255 where true, else 0); a uint8 image as it is. Written
    into `out` when given."""
    if mask.dtype == bool:
        return np.multiply(mask.view(np.uint8), np.uint8(255), out=out)
    if out is None:
        return mask
    np.copyto(out, mask)
    return out


def _outside(out: np.ndarray, box: Box, value: int) -> np.ndarray:
    """`out` with `value` everywhere outside the box (what the crop does not cover)."""
    x0, y0, x1, y1 = box
    out[:y0], out[y1:], out[y0:y1, :x0], out[y0:y1, x1:] = value, value, value, value
    return out
