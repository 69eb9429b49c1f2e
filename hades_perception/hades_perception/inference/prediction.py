"""What the pipeline returns for one image, and its JSON form (`predict` output).

JSON (other tools read it):
  {"image": {"width", "height"}, "model": {"name", "version", "sha256"},
   "landmarks": [{"kind", "plant", "x", "y", "x_mm", "y_mm", "confidence"}],
   "plants": [{"plant", "base", "primary_root_tip", "primary_root_length_px",
               "primary_root_length_mm", "total_root_length_px", "lateral_root_count",
               "shoot_area_px", "confidence", "low_confidence", "reason"}],
   "certainty": {"per_class": {...}, "per_plant": [...], "low_confidence": [...]},
   "monitoring": {"<signal>": value, ...}, "timing_ms": {...}}
Landmark order: primary root tips by plant, then other root tips, then seeds;
x/y in input-image px; x_mm/y_mm from the agar's top-left corner, null when uncalibrated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hades_perception.inference.dish import DishRegion
from hades_perception.inference.plants import Plant


@dataclass
class Landmark:
    kind: str
    plant: int | None
    x: float
    y: float
    confidence: float
    x_mm: float | None = None
    y_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 2) -> float | None:
            return None if v is None else round(float(v), n)

        return {
            "kind": self.kind,
            "plant": self.plant,
            "x": r(self.x),
            "y": r(self.y),
            "x_mm": r(self.x_mm, 3),
            "y_mm": r(self.y_mm, 3),
            "confidence": r(self.confidence, 4),
        }


@dataclass
class Prediction:
    width: int
    height: int
    classes: tuple[str, ...]
    # class -> (H, W) bool at input resolution; the pipeline's are made on first access
    # (full_resolution.py), so a consumer that never looks at masks never pays for them.
    masks: Mapping[str, np.ndarray]
    # (H, W) uint8, 255 = certain, per pixel of the least certain class: read it as
    # `confidence_map`; the pipeline gives a function that makes it on first access
    # (called with `out=`, it writes the map into that array: `confidence_into`).
    confidence: np.ndarray | Callable[..., np.ndarray]
    landmarks: list[Landmark]
    class_confidence: dict[str, float]
    plants: list[Plant]  # every plant the dish should hold, numbered left to right
    low_confidence_threshold: float
    model: dict[str, str]
    dish: DishRegion | None
    px_per_mm: float | None
    # Calibrated class probabilities at model resolution, and how to map them back;
    # kept for evaluation (calibration) without holding full-size float maps.
    probs: np.ndarray | None = None  # (C, h, w) float32
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the region probs cover
    timing_ms: dict[str, float] = field(default_factory=dict)
    # Every heatmap peak above threshold, by kind, before the plant structure picks landmarks
    # from them: what the model computed (the golden check compares these).
    peaks: list[Landmark] = field(default_factory=list)
    # Per-frame monitoring signals (monitoring/signals.py): what drift detection reads.
    signals: dict[str, float] = field(default_factory=dict)

    @property
    def confidence_map(self) -> np.ndarray:
        made = self.confidence  # one read: another thread may assign it meanwhile
        if callable(made):
            made = made()
            self.confidence = made
        return made

    def confidence_into(self, out: np.ndarray) -> np.ndarray:
        """The confidence map written into `out` ((H, W) uint8, e.g. a message's buffer):
        made there while it is still to be made (and then not kept), else copied."""
        made = self.confidence
        if callable(made):
            return made(out=out)
        np.copyto(out, made)
        return out

    @property
    def low_confidence(self) -> list[dict[str, Any]]:
        """What a robot should skip: low-confidence plants and landmarks."""
        out: list[dict[str, Any]] = [
            {
                "plant": p.plant,
                "reason": p.reason or ("no primary root tip" if not p.has_primary_tip else "low confidence"),
                "confidence": round(p.confidence, 4),
            }
            for p in self.plants
            if p.low_confidence
        ]
        out += [
            {"landmark": i, "kind": lm.kind, "plant": lm.plant, "confidence": round(lm.confidence, 4)}
            for i, lm in enumerate(self.landmarks)
            if lm.confidence < self.low_confidence_threshold
        ]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "image": {"width": self.width, "height": self.height},
            "model": dict(self.model),
            "landmarks": [lm.to_dict() for lm in self.landmarks],
            "plants": [p.to_dict() for p in self.plants],
            "certainty": {
                "per_class": {k: round(float(v), 4) for k, v in self.class_confidence.items()},
                "per_plant": [
                    {
                        "plant": p.plant,
                        "confidence": round(float(p.confidence), 4),
                        "low_confidence": bool(p.low_confidence),
                    }
                    for p in self.plants
                ],
                "low_confidence": self.low_confidence,
                "low_confidence_threshold": float(self.low_confidence_threshold),
            },
            "calibration": {
                "px_per_mm": None if self.px_per_mm is None else round(self.px_per_mm, 4),
                "dish_px": None if self.dish is None else [self.dish.x0, self.dish.y0, self.dish.x1, self.dish.y1],
                "dish_cut": [] if self.dish is None else list(self.dish.cut),
            },
            "monitoring": {k: float(f"{v:.7g}") for k, v in self.signals.items()},
            "timing_ms": {k: round(v, 2) for k, v in self.timing_ms.items()},
        }
