"""How far a candidate model agrees with the serving one on the same frames (shadow mode).

A person decides on promotion; these figures are what they decide on: mask IoU
per class, distance between the two models' primary root tips per plant, and
the difference in certainty. Running means over every shadowed frame are kept
so one number summarises a shift of imaging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hades_perception.inference.landmarks import PRIMARY
from hades_perception.inference.prediction import Prediction


@dataclass
class Agreement:
    classes: tuple[str, ...]
    class_iou: list[float]  # per class; 1.0 when both masks are empty
    class_certainty_difference: list[float]  # candidate minus serving
    primary_tip_distance_px: list[float]  # per plant both models found a primary tip for
    primary_tips_unmatched: int  # plants where only one of the two found a primary tip
    plant_certainty_difference: float  # mean over plants, candidate minus serving

    @property
    def mean_tip_distance_px(self) -> float:
        return float(np.mean(self.primary_tip_distance_px)) if self.primary_tip_distance_px else 0.0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def compare(serving: Prediction, candidate: Prediction) -> Agreement:
    """Agreement of two predictions of the same frame (classes in serving's order)."""
    classes = tuple(c for c in serving.classes if c in candidate.masks)
    tips_s = {lm.plant: lm for lm in serving.landmarks if lm.kind == PRIMARY and lm.plant is not None}
    tips_c = {lm.plant: lm for lm in candidate.landmarks if lm.kind == PRIMARY and lm.plant is not None}
    both = sorted(set(tips_s) & set(tips_c))
    plants_s = {p.plant: p.confidence for p in serving.plants}
    plants_c = {p.plant: p.confidence for p in candidate.plants}
    shared = set(plants_s) & set(plants_c)
    return Agreement(
        classes=classes,
        class_iou=[_iou(serving.masks[c], candidate.masks[c]) for c in classes],
        class_certainty_difference=[
            float(candidate.class_confidence.get(c, 0.0) - serving.class_confidence.get(c, 0.0)) for c in classes
        ],
        primary_tip_distance_px=[float(np.hypot(tips_s[p].x - tips_c[p].x, tips_s[p].y - tips_c[p].y)) for p in both],
        primary_tips_unmatched=len(set(tips_s) ^ set(tips_c)),
        plant_certainty_difference=float(np.mean([plants_c[p] - plants_s[p] for p in shared])) if shared else 0.0,
    )


@dataclass
class Tally:
    """Running means of agreement for one (serving, candidate) pair of versions."""

    serving: str = ""
    candidate: str = ""
    frames: int = 0
    _iou_sum: dict[str, float] = field(default_factory=dict)
    _tip_sum: float = 0.0
    _tips: int = 0

    def add(self, serving: str, candidate: str, a: Agreement) -> None:
        if (serving, candidate) != (self.serving, self.candidate):  # a new pair starts a new tally
            self.__init__(serving, candidate)  # type: ignore[misc]
        self.frames += 1
        for c, v in zip(a.classes, a.class_iou, strict=True):
            self._iou_sum[c] = self._iou_sum.get(c, 0.0) + v
        self._tip_sum += sum(a.primary_tip_distance_px)
        self._tips += len(a.primary_tip_distance_px)

    def mean_iou(self) -> dict[str, float]:
        return {c: s / self.frames for c, s in self._iou_sum.items()} if self.frames else {}

    def mean_tip_distance_px(self) -> float:
        return self._tip_sum / self._tips if self._tips else 0.0
