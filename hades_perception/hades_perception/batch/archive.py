"""Where a batch reads plates and writes results: a local folder or a blob prefix
(`azure://container/prefix`, an https blob URL, or `file://`), through the model store's
own Blobs (models/blobs.py), so credentials and retries work as they do for the store.

An item is one image, named by its key under the input (`series74/plate_0012.png`); its
results are named by the same key with `/` turned into `__` and the suffix dropped
(`series74__plate_0012.json`), so an archive's folders never collide and a done item is
found by one lookup (resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from hades_perception.inference.image_files import IMAGE_SUFFIXES
from hades_perception.models.blobs import Blobs, open_blobs

RESULTS = "results"  # folder of per-image JSONs under the output
TRAITS_CSV = "traits.csv"
FAILURES_CSV = "failures.csv"


def result_name(key: str) -> str:
    """The result's file name for an input key: folders joined by `__`, suffix dropped."""
    path = PurePosixPath(key)
    return "__".join((*path.parent.parts, path.stem)) + ".json"


@dataclass(frozen=True)
class Archive:
    """Images under `url` (a folder or a blob prefix)."""

    url: str

    @cached_property
    def blobs(self) -> Blobs:
        """Opened once (an Azure client per archive, not per plate)."""
        return open_blobs(self.url)

    def keys(self) -> list[str]:
        """Every image under the input (sub-folders included), in a stable order."""
        if "://" not in self.url and not Path(self.url).is_dir():
            raise FileNotFoundError(f"{self.url}: no such folder (or give a blob prefix: azure://container/prefix)")
        return sorted(k for k in self.blobs.list("") if PurePosixPath(k).suffix.lower() in IMAGE_SUFFIXES)

    def read(self, key: str) -> bytes:
        data, _ = self.blobs.read(key)
        return data


@dataclass(frozen=True)
class Results:
    """The output: results/<name>.json per image, traits.csv and failures.csv beside."""

    url: str

    @cached_property
    def blobs(self) -> Blobs:
        """Opened once; a local output folder is made first."""
        if "://" not in self.url:
            Path(self.url).mkdir(parents=True, exist_ok=True)
        return open_blobs(self.url)

    def done(self) -> set[str]:
        """Result names already written (what a resumed run skips)."""
        prefix = f"{RESULTS}/"
        return {k[len(prefix) :] for k in self.blobs.list(prefix) if k.endswith(".json")}

    def write(self, name: str, data: bytes) -> None:
        self.blobs.write(name, data)

    def read(self, name: str) -> bytes:
        data, _ = self.blobs.read(name)
        return data
