"""What every dataset reader yields: an image, per-class masks and landmark truth.

Readers for different formats (Hades folders, RootNav RSML) produce the same
Sample, so training and evaluation never look at file formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The class order of the Hades ground truth; the model's order comes from its manifest.
HADES_CLASSES: tuple[str, ...] = ("root", "shoot", "seed", "occluded_root")

Point = tuple[float, float]


class DatasetError(ValueError):
    """A dataset item that cannot be used; the message names the file and what to do."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass
class PlantTruth:
    index: int  # 0.. left to right
    primary_root_tip: Point | None
    seed: Point | None = None
    shoot_centre: Point | None = None
    root_tips: list[Point] = field(default_factory=list)  # other (lateral) tips
    primary_root_length_px: float | None = None
    # Synthetic plates say how old a seedling was drawn ("young" or "old"): evaluation
    # reports by it, because old plants with crossing roots are where tips are lost.
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "primary_root_tip": list(self.primary_root_tip) if self.primary_root_tip else None,
            "seed": list(self.seed) if self.seed else None,
            "shoot_centre": list(self.shoot_centre) if self.shoot_centre else None,
            "root_tips": [list(p) for p in self.root_tips],
            "primary_root_length_px": self.primary_root_length_px,
            **({"stage": self.stage} if self.stage else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlantTruth:
        def pt(v: Any) -> Point | None:
            return (float(v[0]), float(v[1])) if v is not None else None

        return cls(
            index=int(d["index"]),
            primary_root_tip=pt(d.get("primary_root_tip")),
            seed=pt(d.get("seed")),
            shoot_centre=pt(d.get("shoot_centre")),
            root_tips=[(float(x), float(y)) for x, y in d.get("root_tips", [])],
            primary_root_length_px=d.get("primary_root_length_px"),
            stage=d.get("stage"),
        )


@dataclass
class PlateTruth:
    width: int
    height: int
    px_per_mm: float | None  # None: uncalibrated
    plants: list[PlantTruth]
    source: str  # "file", "derived from masks", "rsml"


@dataclass
class Sample:
    stem: str
    group: str  # experiment (or other unit) that splits keep together
    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: dict[str, np.ndarray]  # class -> (H, W) uint8 0/1, for every class in HADES_CLASSES
    annotated: tuple[str, ...]  # classes with real annotation; others are all-zero placeholders
    truth: PlateTruth
    image_path: Path
