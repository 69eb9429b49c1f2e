"""Labelled data uploaded as a zip in the Hades layout, validated before it is kept.

The layout is the training reader's (training/hades_training/data/hades_folder.py),
flat or in splits:

  images/<stem>.png|.jpg|.jpeg|.tif|.tiff
  masks/<stem>_<class>_mask.tif        root, shoot and seed required; occluded_root optional
  landmarks/<stem>.json                optional (without it, training derives them from the masks)
  or train/, val/, test/ each holding the three folders

One folder around all of it (a zip of the folder rather than of its contents) is taken
off. Files elsewhere (a README, synth.json) are counted as ignored and not kept.

The zip passes archives.SafeZip first (size, member count, names). Then each item, one
at a time so at most one image is decoded at once: its image's header (PNG, JPEG or
TIFF, within the pipeline's pixel limit), its decode, each required mask present,
decodable and of the image's size, an optional mask likewise when present, and its
landmarks file (JSON with a `plants` list, for an image of that size) when present. A
failing item is rejected with its reason; the others are written to
<work dir>/datasets/<id>/ in the same layout, with dataset.json (who, when, counts,
rejections). Nothing usable: 422 and nothing kept. A dataset id then names the data
of a job (`dataset:<id>`), e.g. a pipeline's new data.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from hades_perception.api.archives import DATASET_LIMITS, Member, SafeZip
from hades_perception.api.errors import ApiError
from hades_perception.api.uploads import read_header
from hades_perception.inference.image_files import IMAGE_SUFFIXES

log = logging.getLogger(__name__)
REQUIRED_MASKS = ("root", "shoot", "seed")  # as the training reader requires (a test checks it agrees)
OPTIONAL_MASKS = ("occluded_root",)
SPLITS = ("train", "val", "test")
FOLDERS = ("images", "masks", "landmarks")
RECORD = "dataset.json"
ID_PATTERN = r"^ds-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
SHOWN_IGNORED = 20
_one_at_a_time = threading.Lock()  # decoding takes a core: one upload validated at once


@dataclass
class Item:
    split: str  # "" for a flat folder
    stem: str
    image: Member
    masks: dict[str, Member] = field(default_factory=dict)
    landmarks: Member | None = None

    @property
    def name(self) -> str:
        return self.image.name


@dataclass
class Layout:
    items: list[Item]
    ignored: list[str]
    orphans: list[tuple[str, str]]  # (member, reason): masks or landmarks without an image


def _strip_wrapper(names: list[str]) -> str:
    """The one folder around everything ('' when there is none)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        top = next(iter(tops))
        if top not in (*FOLDERS, *SPLITS):
            return top + "/"
    return ""


def layout(members: list[Member]) -> Layout:
    """The zip's members sorted into items by split and stem."""
    prefix = _strip_wrapper([m.name for m in members])
    files: dict[tuple[str, str], dict[str, Member]] = {}  # (split, folder) -> file name -> member
    ignored = []
    for m in members:
        parts = m.name[len(prefix) :].split("/")
        split = parts[0] if len(parts) == 3 and parts[0] in SPLITS else ""
        rest = parts[1:] if split else parts
        if len(rest) != 2 or rest[0] not in FOLDERS or rest[1].startswith("."):
            ignored.append(m.name)
            continue
        files.setdefault((split, rest[0]), {})[rest[1]] = m
    items, used = [], set()
    for (split, folder), names in sorted(files.items()):
        if folder != "images":
            continue
        for filename, member in sorted(names.items()):
            stem, suffix = os.path.splitext(filename)
            if suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(member.name)
                continue
            item = Item(split, stem, member)
            masks = files.get((split, "masks"), {})
            for cls in (*REQUIRED_MASKS, *OPTIONAL_MASKS):
                found = masks.get(f"{stem}_{cls}_mask.tif")
                if found is not None:
                    item.masks[cls] = found
                    used.add(found.name)
            item.landmarks = files.get((split, "landmarks"), {}).get(f"{stem}.json")
            if item.landmarks is not None:
                used.add(item.landmarks.name)
            items.append(item)
    orphans = [
        (m.name, "no image of this stem in images/ beside it (masks are <stem>_<class>_mask.tif)")
        for (split, folder), names in sorted(files.items())
        if folder != "images"
        for m in names.values()
        if m.name not in used
    ]
    return Layout(items, ignored, orphans)


def _decoded(data: bytes, what: str, flags: int) -> np.ndarray:
    """Header checks (format, pixel limit), then the decode; ValueError with the reason."""
    try:
        header = read_header(io.BytesIO(data))
    except ApiError as exc:
        raise ValueError(f"{what}: {exc.detail}") from exc
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None:
        raise ValueError(f"{what}: the {header.format} file cannot be decoded (truncated or corrupt)")
    return array


def check_item(archive: SafeZip, item: Item) -> dict[str, bytes]:
    """The item's files (archive name -> bytes) when every check passes; ValueError with the reason."""
    data = {item.image.name: archive.read(item.image)}
    image = _decoded(data[item.image.name], "image", cv2.IMREAD_UNCHANGED)
    h, w = image.shape[:2]
    del image
    for cls in REQUIRED_MASKS:
        if cls not in item.masks:
            folder = f"{item.split}/masks" if item.split else "masks"
            raise ValueError(f"mask {folder}/{item.stem}_{cls}_mask.tif is missing (required: {list(REQUIRED_MASKS)})")
    for cls, member in item.masks.items():
        data[member.name] = archive.read(member)
        mask = _decoded(data[member.name], f"mask {cls}", cv2.IMREAD_UNCHANGED)
        if mask.shape[:2] != (h, w):
            raise ValueError(f"mask {cls} is {mask.shape[1]}x{mask.shape[0]} px but its image is {w}x{h} px")
    if item.landmarks is not None:
        data[item.landmarks.name] = archive.read(item.landmarks)
        try:
            doc = json.loads(data[item.landmarks.name])
            plants = doc["plants"]
            size = (doc.get("width", w), doc.get("height", h))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"landmarks: not a landmarks JSON with a 'plants' list ({exc!r})") from exc
        if not isinstance(plants, list):
            raise ValueError("landmarks: 'plants' is not a list")
        if size != (w, h):
            raise ValueError(f"landmarks: for a {size[0]}x{size[1]} image, not {w}x{h}")
    return data


def new_id() -> str:
    return f"ds-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Datasets:
    """Validated uploads under `root` (<work dir>/datasets)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, dataset: str) -> Path:
        return self.root / dataset

    def add(self, file: BinaryIO, by: str) -> dict[str, Any]:
        """Validate the zip in `file` and keep what passes; the record (ApiError 4xx otherwise)."""
        with _one_at_a_time, SafeZip(file, DATASET_LIMITS) as archive:
            found = layout(archive.members)
            if not found.items:
                raise ApiError(
                    422,
                    "no usable data",
                    "the zip holds no images in images/ (or train/images/, val/images/, test/images/); expected "
                    "the Hades layout: images/, masks/<stem>_<class>_mask.tif, optional landmarks/",
                    rejected=[{"item": n, "reason": r} for n, r in found.orphans],
                )
            dataset = new_id()
            staging = self.root / ".staging" / dataset
            staging.mkdir(parents=True)
            try:
                record = self._validate(archive, found, staging, dataset, by)
                staging.rename(self.path(dataset))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        log.info("dataset %s from %s: %d items, %d rejected", dataset, by, record["items"], len(record["rejected"]))
        return record

    def _validate(self, archive: SafeZip, found: Layout, staging: Path, dataset: str, by: str) -> dict[str, Any]:
        prefix = _strip_wrapper([m.name for m in archive.members])
        rejected = [{"item": n, "reason": r} for n, r in found.orphans]
        splits: dict[str, int] = {}
        for item in found.items:
            try:
                files = check_item(archive, item)
            except ValueError as exc:
                rejected.append({"item": item.name, "reason": str(exc)})
                continue
            except ApiError as exc:
                if exc.status_code == 413:  # the archive's own limits: the whole upload is refused
                    raise
                rejected.append({"item": item.name, "reason": str(exc.detail)})
                continue
            for name, data in files.items():
                target = staging / name[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            splits[item.split] = splits.get(item.split, 0) + 1
        items = sum(splits.values())
        if not items:
            raise ApiError(
                422,
                "no usable data",
                f"none of the {len(found.items)} items passed validation; each rejection says why",
                rejected=rejected,
            )
        record = {
            "dataset": dataset,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": by,
            "items": items,
            "splits": splits,
            "rejected": rejected,
            "ignored": len(found.ignored),
            "ignored_files": found.ignored[:SHOWN_IGNORED],
        }
        (staging / RECORD).write_text(json.dumps(record, indent=1))
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """Every kept dataset's record, newest first."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob(f"*/{RECORD}"), reverse=True):
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable dataset record (%s)", path, exc)

    def record(self, dataset: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads((self.path(dataset) / RECORD).read_text())
        except (OSError, ValueError):
            return None
        return doc

    def delete(self, dataset: str) -> None:
        shutil.rmtree(self.path(dataset))
