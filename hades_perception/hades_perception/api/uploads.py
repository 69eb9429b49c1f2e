"""An uploaded image file -> the array the pipeline takes, refusing what it cannot take
before paying for it.

1. The header (Pillow reads only that): the format must be PNG, JPEG or TIFF, and
   width x height within the pipeline's MAX_PIXELS. A 12000x9000 PNG of 100 kB would
   take 108 MB to decode (432 MB as 16-bit RGBA); it is refused from its first bytes.
2. The decode (OpenCV, as `hades-perception predict` reads files): 8- or 16-bit grey or
   RGB (an alpha channel is dropped). A file that fails here (truncated, corrupt) is
   the client's error, not the server's.
What the client sent as the part's content type is not trusted: the bytes decide.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from hades_perception.api.errors import ApiError
from hades_perception.inference.image_files import decode_image
from hades_perception.inference.pipeline import MAX_PIXELS

FORMATS = ("PNG", "JPEG", "TIFF")


@dataclass(frozen=True)
class Header:
    format: str
    width: int
    height: int


def read_header(file: BinaryIO, max_pixels: int = MAX_PIXELS) -> Header:
    """The image's format and size from its header; ApiError 415 (not an image we take)
    or 413 (too many pixels). Leaves `file` at its start."""
    file.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            with Image.open(file, formats=FORMATS) as im:
                header = Header(str(im.format), *im.size)
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "image too large", f"{exc}; the limit is {max_pixels} pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(
            415, "unsupported media type", f"the upload is not a PNG, JPEG or TIFF image ({type(exc).__name__})"
        ) from exc
    finally:
        file.seek(0)
    if header.width * header.height > max_pixels:
        raise ApiError(
            413,
            "image too large",
            f"{header.format} image {header.width}x{header.height} ({header.width * header.height} pixels) "
            f"exceeds the {max_pixels} pixel limit; refused from its header, nothing was decoded",
        )
    return header


def decode(data: bytes, header: Header) -> np.ndarray:
    """RGB (or grey) array as stored, 8- or 16-bit (as every entry point reads images:
    inference/image_files.py); ApiError 400 when it does not decode or its size is not
    the one its header gave."""
    try:
        image = decode_image(data, f"the {header.format} file")
    except ValueError as exc:
        raise ApiError(
            400,
            "bad image",
            f"the {header.format} file ({len(data)} bytes, {header.width}x{header.height} by its header) "
            "cannot be decoded: truncated or corrupt; send the whole file",
        ) from exc
    if (image.shape[1], image.shape[0]) != (header.width, header.height):
        raise ApiError(
            400,
            "bad image",
            f"the file decodes to {image.shape[1]}x{image.shape[0]} but its header says {header.width}x{header.height}",
        )
    return image


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG of a mask (bool or uint8 grey) or a BGR picture."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for a {image.shape} {image.dtype} array")
    return buf.tobytes()
