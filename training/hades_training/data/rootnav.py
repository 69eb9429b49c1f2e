"""Reader for the RootNav 2.0 dataset layout (RSML + label PNG), e.g. ../shared/data/rootnav_osr.

  ROOT/<split>/<stem>.jpg + <stem>.rsml       split: train | valid (| test)
  ROOT/<split>annot/<stem>.png                 labels: 0 background, 1 lateral root,
                                               2 lateral tip disc, 3 primary root,
                                               4 primary tip disc, 5 seed disc

Masks: root = lateral and primary root labels, plus the part of each tip or seed
disc that the RSML polyline crosses (drawn at the labels' own root width), so a
tip is not a 20 px blob; seed = the seed disc. Shoot and occluded root are not
annotated in this set. Landmarks come from the RSML: the primary root's first
point is the seed, its last point the primary tip; laterals' last points are the
other tips. Photographs are uncalibrated (px_per_mm = None).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hades_training.data.io import keep_loadable, read_rgb
from hades_training.data.sample import HADES_CLASSES, DatasetError, PlantTruth, PlateTruth, Sample
from hades_training.data.splits import experiment_key

log = logging.getLogger(__name__)

ANNOT_DIRS = {"train": "trainannot", "valid": "valannot", "val": "valannot", "test": "testannot"}
ROOT_LABELS = (1, 3)
DISC_LABELS = (2, 4, 5)
SEED_LABEL = 5
ROOT_WIDTH_PX = 9  # width at which the label maps draw roots


@dataclass(frozen=True)
class RootNavItem:
    stem: str
    image: Path
    rsml: Path
    labels: Path


@dataclass(frozen=True)
class RsmlRoot:
    points: np.ndarray  # (N, 2) base -> tip
    children: tuple[RsmlRoot, ...]


def parse_rsml(path: Path) -> list[RsmlRoot]:
    """The top-level roots of every plant (primary roots) with their laterals."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(path, f"malformed RSML ({exc})") from exc

    def read_root(el: ET.Element) -> RsmlRoot:
        poly = el.find("geometry/polyline")
        if poly is None:
            raise DatasetError(path, "a <root> has no <geometry><polyline>")
        try:
            pts = np.array([[float(p.attrib["x"]), float(p.attrib["y"])] for p in poly.findall("point")])
        except (KeyError, ValueError) as exc:
            raise DatasetError(path, f"a <point> lacks a numeric x or y ({exc})") from exc
        if len(pts) < 2:
            raise DatasetError(path, "a root polyline has fewer than two points")
        return RsmlRoot(pts, tuple(read_root(c) for c in el.findall("root")))

    plants = tree.getroot().findall("scene/plant")
    if not plants:
        raise DatasetError(path, "no <scene><plant> in RSML")
    primaries = [read_root(r) for plant in plants for r in plant.findall("root")]
    if not primaries:
        raise DatasetError(path, "no <root> under <plant>")
    return primaries


def _length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def _all_roots(root: RsmlRoot) -> list[RsmlRoot]:
    out = [root]
    for c in root.children:
        out.extend(_all_roots(c))
    return out


class RootNavFolder:
    """One split of a RootNav dataset; same interface as HadesFolder."""

    def __init__(self, root: Path | str, split: str = "train", *, skip_bad: bool = False) -> None:
        self.root = Path(root)
        if split not in ANNOT_DIRS:
            raise ValueError(f"unknown RootNav split {split!r}: expected one of {sorted(ANNOT_DIRS)}")
        folder = self.root / split
        annot = self.root / ANNOT_DIRS[split]
        if not folder.is_dir():
            raise DatasetError(folder, "split folder is missing")
        self.items = [
            RootNavItem(p.stem, p, p.with_suffix(".rsml"), annot / f"{p.stem}.png")
            for p in sorted(folder.glob("*.jpg"))
        ]
        if not self.items:
            raise DatasetError(folder, "no .jpg images found")
        self.skipped: list[DatasetError] = []
        if skip_bad:
            self.items, self.skipped = keep_loadable(self.items, self._load, folder)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        return self._load(self.items[i])

    def _load(self, item: RootNavItem) -> Sample:
        image = read_rgb(item.image)
        h, w = image.shape[:2]
        if not item.rsml.is_file():
            raise DatasetError(item.rsml, "RSML file is missing")
        primaries = parse_rsml(item.rsml)
        if not item.labels.is_file():
            raise DatasetError(item.labels, "label PNG is missing")
        labels = cv2.imread(str(item.labels), cv2.IMREAD_GRAYSCALE)
        if labels is None:
            raise DatasetError(item.labels, "label PNG cannot be decoded")
        if labels.shape != (h, w):
            raise DatasetError(item.labels, f"labels are {labels.shape[1]}x{labels.shape[0]}, image is {w}x{h}")

        drawn = np.zeros((h, w), np.uint8)
        for primary in primaries:
            for r in _all_roots(primary):
                cv2.polylines(drawn, [np.round(r.points).astype(np.int32)], False, 1, ROOT_WIDTH_PX)
        root = np.isin(labels, ROOT_LABELS) | (np.isin(labels, DISC_LABELS) & (drawn > 0))
        masks = {c: np.zeros((h, w), np.uint8) for c in HADES_CLASSES}
        masks["root"] = root.astype(np.uint8)
        masks["seed"] = (labels == SEED_LABEL).astype(np.uint8)

        plants = []
        for i, primary in enumerate(sorted(primaries, key=lambda r: r.points[0, 0])):
            laterals = [r for c in primary.children for r in _all_roots(c)]
            plants.append(
                PlantTruth(
                    index=i,
                    primary_root_tip=(float(primary.points[-1, 0]), float(primary.points[-1, 1])),
                    seed=(float(primary.points[0, 0]), float(primary.points[0, 1])),
                    root_tips=[(float(r.points[-1, 0]), float(r.points[-1, 1])) for r in laterals],
                    primary_root_length_px=round(_length(primary.points), 2),
                )
            )
        truth = PlateTruth(w, h, None, plants, "rsml")
        # Stems start with a series letter (A_, B_): that is the group.
        return Sample(item.stem, experiment_key(item.stem), image, masks, ("root", "seed"), truth, item.image)
