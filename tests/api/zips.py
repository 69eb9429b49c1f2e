"""Zips for upload tests: honest ones (a folder, named files), a zip bomb, and zips whose
directory lies about sizes, built as an attacker would (by patching the bytes)."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

CENTRAL = b"PK\x01\x02"


def zip_of(files: dict[str, bytes]) -> bytes:
    """A zip of these members (name -> bytes), deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def folder_files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under `folder`, by its path inside it (after `prefix`)."""
    return {prefix + str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def zip_bomb(name: str, mb: int) -> bytes:
    """One member of `mb` MB of zeros: about 4.5 kB on the wire per MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, z.open(name, "w") as f:
        block = bytes(2**20)
        for _ in range(mb):
            f.write(block)
    return buf.getvalue()


def declaring(data: bytes, sizes: dict[str, int]) -> bytes:
    """`data` (a zip) with the central directory declaring other uncompressed sizes for
    these members (what zipfile believes); the members' bytes are unchanged."""
    out = bytearray(data)
    at = out.find(CENTRAL)
    while at >= 0:
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", out, at + 28)
        name = bytes(out[at + 46 : at + 46 + name_len]).decode()
        if name in sizes:
            struct.pack_into("<L", out, at + 24, sizes[name])
        at = out.find(CENTRAL, at + 46 + name_len + extra_len + comment_len)
    return bytes(out)
