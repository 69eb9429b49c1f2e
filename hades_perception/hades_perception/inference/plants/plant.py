"""What the plant step reads (`Evidence`: the model's probabilities and tip peaks)
and what it gives (`Plant`: one plant's base, primary root, tip, laterals and traits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hades_perception.inference.geometry import grid_to_cell, model_to_grid

Point = tuple[float, float]
NO_ROOT = "no root found below the plant"
UNCONFIRMED = "the tip detector does not confirm this tip"  # a reason's start: the end has no peak
NOT_FOUND = "no plant found at this position"
OFF_IMAGE = "this plant's position is outside the image (the dish runs off it)"


@dataclass
class Plant:
    """One plant of the dish, numbered left to right from 0. Positions and lengths are
    in input-image px; a plant not found keeps its index with low_confidence and a reason."""

    plant: int
    confidence: float  # that the primary root tip is right (the tip detector's, calibrated)
    low_confidence: bool
    base: Point | None = None  # where its root system starts, just below the shoot
    primary_root_tip: Point | None = None
    primary_root_length_px: float | None = None
    primary_root_length_mm: float | None = None
    total_root_length_px: float = 0.0
    lateral_root_count: int = 0
    shoot_area_px: float = 0.0
    reason: str = ""
    seed: Point | None = None
    lateral_tips: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, confidence
    primary_path: list[Point] = field(default_factory=list)  # base to tip
    lateral_paths: list[list[Point]] = field(default_factory=list)  # branch point to tip

    @property
    def has_primary_tip(self) -> bool:
        return self.primary_root_tip is not None

    def to_dict(self) -> dict[str, object]:
        def pt(p: Point | None) -> list[float] | None:
            return None if p is None else [round(float(p[0]), 2), round(float(p[1]), 2)]

        def r(v: float | None, n: int = 2) -> float | None:
            return None if v is None else round(float(v), n)

        return {
            "plant": self.plant,
            "base": pt(self.base),
            "primary_root_tip": pt(self.primary_root_tip),
            "primary_root_length_px": r(self.primary_root_length_px),
            "primary_root_length_mm": r(self.primary_root_length_mm, 3),
            "total_root_length_px": r(self.total_root_length_px),
            "lateral_root_count": int(self.lateral_root_count),
            "shoot_area_px": r(self.shoot_area_px, 1),
            "confidence": r(self.confidence, 4),
            "low_confidence": bool(self.low_confidence),
            "reason": self.reason,
        }


@dataclass
class Evidence:
    """What the model said, at model resolution over the crop (probabilities in 0-1)."""

    root: np.ndarray  # (h, w): max of root and occluded root
    root_threshold: float
    shoot: np.ndarray | None
    shoot_threshold: float
    seed: np.ndarray | None
    seed_threshold: float
    primary_heat: np.ndarray | None  # tip-detector probability on the heatmap grid
    tip_heat: np.ndarray | None
    stride: int
    # The tip detector's primary-tip peaks, model px: (x, y, probability) rows. A skeleton
    # end stops about half a root width short of the tip; a peak there is sub-pixel.
    primary_peaks: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    # Its other root-tip peaks (a lateral's tip, it judges), the same way.
    tip_peaks: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    # The heatmaps' cell shift per row and per column (pipeline.Logits.heat_shift): where
    # tiles started between cells, a cell's content lies that far below / right of it.
    heat_shift: tuple[np.ndarray, np.ndarray] | None = None

    def cell(self, p: np.ndarray) -> tuple[float, float]:
        """The heatmap cell (sub-cell u, v) whose content lies at model point p."""
        gu, gv = float(model_to_grid(p[0], self.stride)), float(model_to_grid(p[1], self.stride))
        if self.heat_shift is None:
            return gu, gv
        rows, cols = self.heat_shift
        return grid_to_cell(gu, cols), grid_to_cell(gv, rows)


@dataclass
class _Start:
    node: int  # skeleton node where the root system starts
    x: float  # base position, model px
    y: float
    shoot_area: float = 0.0  # model px
    seed: Point | None = None  # model px
    length: float = 0.0  # root length it reaches, model px


_Built = tuple[Plant, np.ndarray]  # a plant and its primary root's skeleton nodes
