"""sensor_msgs/Image and CompressedImage payloads to NumPy, without rclpy.

The node hands these functions the message fields; they check everything a
camera driver or a bag can get wrong (encoding, step, size, truncation) and
return a view on the message buffer where the layout allows it, so a 36 MB
frame is not copied before the pipeline needs it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from hades_perception.inference.pipeline import MAX_PIXELS, InputError

# encoding -> (channels, dtype); bgr8 is reordered to RGB by the caller's pipeline step
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | bytearray | memoryview,
    is_bigendian: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """(H, W) or (H, W, 3) RGB/grey array from an Image message's fields."""
    if encoding not in ENCODINGS:
        raise InputError(f"unsupported image encoding {encoding!r}; expected one of {sorted(ENCODINGS)}")
    channels, dtype = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise InputError(f"zero-size image {width}x{height}")
    if height * width > max_pixels:
        raise InputError(f"image {width}x{height} exceeds the {max_pixels} pixel limit (max_image_pixels)")
    row = width * channels * dtype.itemsize
    if step < row:
        raise InputError(f"step {step} is smaller than a row of {width} {encoding} pixels ({row} bytes)")
    buf = np.frombuffer(data, np.uint8)
    if buf.size < step * (height - 1) + row:
        raise InputError(
            f"truncated image: {buf.size} bytes for {width}x{height} {encoding} with step {step} (need {step * height})"
        )
    # A strided view: rows `step` bytes apart, `row` bytes used; no copy.
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row), strides=(step, 1), writeable=False)
    pixels = rows.view(dtype.newbyteorder(">" if is_bigendian else "<")).reshape(height, width, channels)
    if dtype.itemsize > 1 and is_bigendian:
        pixels = pixels.astype(dtype.newbyteorder("="))
    if channels == 1:
        return pixels[:, :, 0]
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return pixels[:, :, :3]


def png_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) from a PNG header, or None when it is not a PNG."""
    head = bytes(data[:24])
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def decode_compressed(fmt: str, data: bytes | bytearray | memoryview, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB or grey array from a CompressedImage (JPEG, PNG; whatever OpenCV decodes).
    A PNG's size is checked from its header, before anything is decoded."""
    buf = np.frombuffer(data, np.uint8)
    if buf.size == 0:
        raise InputError("empty compressed image")
    size = png_size(data)
    if size and size[0] * size[1] > max_pixels:
        raise InputError(f"image {size[0]}x{size[1]} exceeds the {max_pixels} pixel limit")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"compressed image ({fmt or 'no format'}, {buf.size} bytes) cannot be decoded")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise InputError(f"image {img.shape[1]}x{img.shape[0]} exceeds the {max_pixels} pixel limit")
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def decode_message(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage as an array, read through a memoryview
    (no copy of the 36 MB payload)."""
    if hasattr(msg, "format"):  # CompressedImage
        return decode_compressed(msg.format, memoryview(msg.data), max_pixels)
    return decode_image(
        msg.encoding, msg.height, msg.width, msg.step, memoryview(msg.data), bool(msg.is_bigendian), max_pixels
    )
