"""Reader for a Hades-format dataset folder.

  DIR/images/<stem>.png (or .jpg, .tif)
  DIR/masks/<stem>_{root,shoot,seed,occluded_root}_mask.tif   0/1 or 0/255
  DIR/landmarks/<stem>.json                                   optional

The occluded_root mask is optional (absent in some NPEC sets); the others are
required. Without a landmarks file, landmarks are derived from the masks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hades_perception.inference.image_files import IMAGE_SUFFIXES
from hades_training.data.io import keep_loadable, read_mask, read_rgb
from hades_training.data.landmarks_from_masks import derive_plants
from hades_training.data.sample import HADES_CLASSES, DatasetError, PlantTruth, PlateTruth, Sample
from hades_training.data.splits import experiment_key

log = logging.getLogger(__name__)
REQUIRED = ("root", "shoot", "seed")


@dataclass(frozen=True)
class HadesItem:
    stem: str
    image: Path
    masks: dict[str, Path]
    landmarks: Path | None

    @property
    def group(self) -> str:
        return experiment_key(self.stem)


class HadesFolder:
    """Items of a Hades folder, loaded one at a time.

    With skip_bad=True every item is loaded once up front and bad ones are left
    out with a warning naming the file; otherwise the first bad item raises.
    """

    def __init__(self, root: Path | str, *, skip_bad: bool = False) -> None:
        self.root = Path(root)
        images = self.root / "images"
        if not images.is_dir():
            raise DatasetError(images, "no images/ folder: expected a Hades dataset folder (images/, masks/)")
        self.items: list[HadesItem] = []
        for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            stem = path.stem
            masks = {c: self.root / "masks" / f"{stem}_{c}_mask.tif" for c in HADES_CLASSES}
            lm = self.root / "landmarks" / f"{stem}.json"
            self.items.append(HadesItem(stem, path, masks, lm if lm.is_file() else None))
        if not self.items:
            raise DatasetError(images, f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
        self.skipped: list[DatasetError] = []
        if skip_bad:
            self.items, self.skipped = keep_loadable(self.items, self._load, self.root)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        return self._load(self.items[i])

    def _load(self, item: HadesItem) -> Sample:
        image = read_rgb(item.image)
        shape = image.shape[:2]
        masks: dict[str, np.ndarray | None] = {}
        annotated = []
        for cls, path in item.masks.items():
            if cls not in REQUIRED and not path.is_file():
                masks[cls] = None
                continue
            masks[cls] = read_mask(path, shape)
            annotated.append(cls)
        truth = self._truth(item, shape, masks)
        filled = {c: (m if m is not None else np.zeros(shape, np.uint8)) for c, m in masks.items()}
        return Sample(item.stem, item.group, image, filled, tuple(annotated), truth, item.image)

    @staticmethod
    def _truth(item: HadesItem, shape: tuple[int, int], masks: dict[str, np.ndarray | None]) -> PlateTruth:
        h, w = shape
        if item.landmarks is not None:
            try:
                d = json.loads(item.landmarks.read_text())
                plants = [PlantTruth.from_dict(p) for p in d["plants"]]
                if (d["width"], d["height"]) != (w, h):
                    raise DatasetError(item.landmarks, f"is for a {d['width']}x{d['height']} image, not {w}x{h}")
                return PlateTruth(w, h, d.get("px_per_mm"), plants, "file")
            except (ValueError, KeyError, TypeError) as exc:
                if isinstance(exc, DatasetError):
                    raise
                raise DatasetError(item.landmarks, f"malformed landmarks JSON ({exc})") from exc
        root = masks["root"]
        assert root is not None  # required class, read above
        plants = derive_plants(root, masks["seed"], masks["shoot"], masks.get("occluded_root"))
        return PlateTruth(w, h, None, plants, "derived from masks")
