"""Zip uploads (a batch of images, a labelled dataset), read without trusting them.

A zip says how big its members are, where they go and how many there are; each of
those can lie or be hostile. Nothing here extracts: members are read one at a time,
with a cap, into bytes the caller judges, and written by the caller under names of its
own. The checks, in the order that costs least first:

1. The end-of-central-directory record (the last bytes, read by hand): a file without
   one is not a zip (415). Its member count and directory size are judged before
   zipfile parses the directory: a 2 MB body of empty entries would be 40 000 ZipInfo
   objects, a 100 MB one two million.
2. Every member's name: absolute (`/x`, `C:/x`, `\\\\x`), with a `..` part, a NUL or a
   backslash, longer than 255 characters, or twice in the archive: 400, nothing read.
3. Declared sizes: one member above `member_bytes`, or all together above
   `total_bytes`: 413 (a zip bomb: 300 MB of zeros deflate to 300 kB).
4. Reading: at most `member_bytes + 1` bytes of a member, and never more in total than
   `total_bytes`; zipfile stops at the declared size and checks the CRC there, so a
   member that holds more than it declares fails as corrupt (400) rather than growing.
Encrypted members are refused (400): nobody here has the password.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from hades_perception.api.errors import ApiError

MB = 2**20
EOCD = b"PK\x05\x06"  # end of central directory
EOCD64_LOCATOR = b"PK\x06\x07"
EOCD64 = b"PK\x06\x06"
DIRECTORY_BYTES_PER_MEMBER = 512  # header 46 + a 255-character name + extra fields, generously
MAX_NAME = 255
IGNORED_PREFIXES = ("__MACOSX/",)  # macOS resource forks beside each file


@dataclass(frozen=True)
class ZipLimits:
    members: int  # entries, folders included
    member_bytes: int  # one member, uncompressed
    total_bytes: int  # every member together, uncompressed

    def describe(self) -> str:
        return (
            f"at most {self.members} members, {self.member_bytes / MB:g} MB each and "
            f"{self.total_bytes / MB:g} MB in all, uncompressed"
        )


# A batch: images only. A Hades frame is 12.6 Mpx: under 40 MB as an 8-bit PNG, 76 MB as
# a 16-bit RGB TIFF; the largest image the pipeline takes (64 Mpx RGB) is 192 MB as TIFF.
BATCH_LIMITS = ZipLimits(members=1000, member_bytes=256 * MB, total_bytes=2048 * MB)
# A dataset: per image up to four masks and a landmarks file, plus folders.
DATASET_LIMITS = ZipLimits(members=20000, member_bytes=256 * MB, total_bytes=4096 * MB)


@dataclass(frozen=True)
class Member:
    name: str  # as in the archive: '/'-separated, relative, without '..'
    size: int  # declared uncompressed bytes (what zipfile will yield at most)
    info: zipfile.ZipInfo


def _directory(file: BinaryIO) -> tuple[int, int]:
    """(entries, central directory bytes) from the end-of-central-directory record, zip64
    included; ApiError 415 when there is none."""
    file.seek(0, 2)
    size = file.tell()
    tail_len = min(size, 22 + 65535)  # the record, after a comment of at most 64 kB
    file.seek(size - tail_len)
    tail = file.read(tail_len)
    at = tail.rfind(EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ApiError(
            415,
            "unsupported media type",
            "the archive is not a zip file (no end-of-central-directory record); send a .zip "
            "(tar, gzip and 7z are not taken)",
        )
    entries, cd_bytes = struct.unpack("<10xH L 6x", tail[at : at + 22])
    if (entries == 0xFFFF or cd_bytes == 0xFFFFFFFF) and at >= 20 and tail[at - 20 : at - 16] == EOCD64_LOCATOR:
        (offset,) = struct.unpack("<8xQ4x", tail[at - 20 : at])
        file.seek(offset)
        record = file.read(56)
        if len(record) == 56 and record[:4] == EOCD64:
            entries, cd_bytes = struct.unpack("<32xQQ8x", record)
    file.seek(0)
    return entries, cd_bytes


def check_name(name: str) -> None:
    """ApiError 400 for a member name that could land outside the folder it is meant for."""
    parts = name.replace("\\", "/").split("/")
    climbs = name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts
    if climbs:
        raise ApiError(
            400,
            "unsafe archive",
            f"member {name!r} climbs out of the archive (absolute paths and '..' are refused); nothing was "
            "extracted: zip the folder from inside it",
        )
    if "\\" in name or "\x00" in name or len(name) > MAX_NAME:
        raise ApiError(
            400,
            "unsafe archive",
            f"member {name[:80]!r}: a name with a backslash or a NUL, or longer than {MAX_NAME} characters, "
            "is refused; use '/'-separated relative names",
        )


class SafeZip:
    """A zip upload whose directory passed the checks above; members read one at a time.

    with SafeZip(upload.file, BATCH_LIMITS) as archive:
        for member in archive.members:
            data = archive.read(member)
    """

    def __init__(self, file: BinaryIO, limits: ZipLimits) -> None:
        self.limits = limits
        entries, cd_bytes = _directory(file)
        if entries > limits.members or cd_bytes > limits.members * DIRECTORY_BYTES_PER_MEMBER:
            raise ApiError(
                413,
                "archive too large",
                f"the zip has {entries} members ({cd_bytes} bytes of directory); this route takes {limits.describe()}",
            )
        try:
            self.zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as exc:
            raise ApiError(415, "unsupported media type", f"the archive is not a readable zip file ({exc})") from exc
        try:
            self.members = self._check(self.zip.infolist())
        except BaseException:
            self.zip.close()
            raise
        self._read = 0

    def _check(self, infos: list[zipfile.ZipInfo]) -> list[Member]:
        limits = self.limits
        if len(infos) > limits.members:  # the record undercounted
            raise ApiError(
                413, "archive too large", f"the zip has {len(infos)} members; this route takes {limits.describe()}"
            )
        seen: set[str] = set()
        members, total = [], 0
        for info in infos:
            check_name(info.filename)
            if info.filename in seen:
                raise ApiError(
                    400, "unsafe archive", f"member {info.filename!r} is in the zip twice; which one counts?"
                )
            seen.add(info.filename)
            if info.is_dir() or info.filename.startswith(IGNORED_PREFIXES):
                continue
            if info.flag_bits & 0x1:
                raise ApiError(400, "bad archive", f"member {info.filename!r} is encrypted; send an unencrypted zip")
            if info.file_size > limits.member_bytes:
                raise ApiError(
                    413,
                    "archive too large",
                    f"member {info.filename!r} declares {info.file_size / MB:.1f} MB uncompressed (a zip bomb?); "
                    f"this route takes {limits.describe()}; nothing was extracted",
                )
            total += info.file_size
            if total > limits.total_bytes:
                raise ApiError(
                    413,
                    "archive too large",
                    f"the members declare more than {limits.total_bytes / MB:g} MB uncompressed together "
                    f"(a zip bomb?); this route takes {limits.describe()}; nothing was extracted",
                )
            members.append(Member(info.filename, info.file_size, info))
        return members

    def read(self, member: Member) -> bytes:
        """The member's bytes, read with the caps; ApiError 413 past them, 400 when corrupt."""
        cap = min(self.limits.member_bytes, self.limits.total_bytes - self._read)
        try:
            with self.zip.open(member.info) as f:
                data = f.read(cap + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise ApiError(
                400,
                "bad archive",
                f"member {member.name!r} is corrupt: its data do not match its header ({exc}); send the zip again",
            ) from exc
        if len(data) > cap:
            raise ApiError(
                413,
                "archive too large",
                f"member {member.name!r} holds more than it declares, past {cap / MB:g} MB; refused while "
                f"reading (this route takes {self.limits.describe()})",
            )
        self._read += len(data)
        return data

    def __iter__(self) -> Iterator[tuple[Member, bytes]]:
        for member in self.members:
            yield member, self.read(member)

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
