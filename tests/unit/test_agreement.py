"""Shadow agreement between the serving and a candidate model's predictions of one
frame: mask IoU per class, primary tip distance per plant, certainty differences,
and the running tally a person reads before promoting."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from hades_perception.inference.agreement import Tally, compare
from hades_perception.inference.landmarks import PRIMARY
from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.prediction import Prediction
from tests.unit.test_model_store import SHIPPED, V1, V2, V3


@pytest.fixture(scope="module")
def pred() -> Prediction:
    """The shipped model's real prediction of its golden input (four plants with a primary tip)."""
    bgr = cv2.imread(str(SHIPPED / "golden" / "input.png"), cv2.IMREAD_COLOR)
    assert bgr is not None
    return Pipeline.from_bundle(SHIPPED, ("CPUExecutionProvider",))(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def primary_plants(p: Prediction) -> list[int]:
    return sorted(lm.plant for lm in p.landmarks if lm.kind == PRIMARY and lm.plant is not None)


def moved_tip(p: Prediction, plant: int, dx: float, dy: float) -> Prediction:
    """The same prediction with one plant's primary tip moved by (dx, dy) px."""
    landmarks = [
        dataclasses.replace(lm, x=lm.x + dx, y=lm.y + dy) if lm.kind == PRIMARY and lm.plant == plant else lm
        for lm in p.landmarks
    ]
    return dataclasses.replace(p, landmarks=landmarks)


def test_identical_predictions_agree_perfectly(pred: Prediction) -> None:
    """Same frame, same outputs: IoU 1 for every class, tip distance 0 for every plant, no certainty difference."""
    plants = primary_plants(pred)
    assert len(plants) >= 2 and pred.masks["root"].any() and pred.masks["shoot"].any()
    a = compare(pred, pred)
    assert a.classes == pred.classes
    assert a.class_iou == [1.0] * len(pred.classes)
    assert a.primary_tip_distance_px == [0.0] * len(plants) and a.mean_tip_distance_px == 0.0
    assert a.primary_tips_unmatched == 0
    assert a.class_certainty_difference == [0.0] * len(pred.classes) and a.plant_certainty_difference == 0.0


def test_a_shifted_primary_tip_gives_its_distance(pred: Prediction) -> None:
    """One plant's tip 3 px right and 4 px down: 5 px for that plant, 0 for the others."""
    plants = primary_plants(pred)
    a = compare(pred, moved_tip(pred, plants[1], 3.0, 4.0))
    assert a.primary_tip_distance_px == pytest.approx([5.0 if p == plants[1] else 0.0 for p in plants])
    assert a.mean_tip_distance_px == pytest.approx(5.0 / len(plants))
    assert a.class_iou == [1.0] * len(pred.classes)


def test_a_tip_only_one_model_found_is_counted_unmatched(pred: Prediction) -> None:
    """A plant whose primary tip the candidate misses has no distance; it is counted as unmatched."""
    plants = primary_plants(pred)
    missing = dataclasses.replace(
        pred, landmarks=[lm for lm in pred.landmarks if not (lm.kind == PRIMARY and lm.plant == plants[0])]
    )
    a = compare(pred, missing)
    assert a.primary_tips_unmatched == 1 and len(a.primary_tip_distance_px) == len(plants) - 1
    assert compare(missing, pred).primary_tips_unmatched == 1


def test_mask_iou_is_intersection_over_union_per_class(pred: Prediction) -> None:
    """A candidate root mask that keeps only the upper half of the serving one: IoU = kept / all root pixels."""
    root = pred.masks["root"]
    half = root.copy()
    half[root.shape[0] // 2 :] = False
    empty = {c: np.zeros_like(m) for c, m in pred.masks.items()}
    a = compare(pred, dataclasses.replace(pred, masks={**pred.masks, "root": half}))
    iou = dict(zip(a.classes, a.class_iou, strict=True))
    assert iou["root"] == pytest.approx(half.sum() / root.sum()) and 0 < iou["root"] < 1
    assert all(v == 1.0 for c, v in iou.items() if c != "root")
    both_empty = dataclasses.replace(pred, masks=empty)
    assert compare(both_empty, both_empty).class_iou == [1.0] * len(pred.classes)  # nothing to disagree on
    # A class the serving model found and the candidate did not: 0; one neither found: 1.
    assert compare(pred, both_empty).class_iou == [0.0 if pred.masks[c].any() else 1.0 for c in pred.classes]


def test_certainty_differences_are_candidate_minus_serving(pred: Prediction) -> None:
    """Class and plant certainty differences carry a sign: positive when the candidate is surer."""
    surer = dataclasses.replace(
        pred,
        class_confidence={**pred.class_confidence, "shoot": pred.class_confidence["shoot"] + 0.1},
        plants=[dataclasses.replace(p, confidence=p.confidence - 0.2) for p in pred.plants],
    )
    a = compare(pred, surer)
    diff = dict(zip(a.classes, a.class_certainty_difference, strict=True))
    assert diff["shoot"] == pytest.approx(0.1) and diff["root"] == 0.0
    assert a.plant_certainty_difference == pytest.approx(-0.2)


def test_a_tally_keeps_running_means_and_resets_on_a_new_version_pair(pred: Prediction) -> None:
    """Means over the frames of one (serving, candidate) pair; another pair starts from zero."""
    plants = primary_plants(pred)
    tally = Tally()
    assert tally.mean_iou() == {} and tally.mean_tip_distance_px() == 0.0
    tally.add(V1, V2, compare(pred, pred))
    tally.add(V1, V2, compare(pred, moved_tip(pred, plants[0], 6.0, 8.0)))
    assert (tally.serving, tally.candidate, tally.frames) == (V1, V2, 2)
    assert tally.mean_iou() == dict.fromkeys(pred.classes, 1.0)
    assert tally.mean_tip_distance_px() == pytest.approx(10.0 / (2 * len(plants)))
    tally.add(V1, V3, compare(pred, moved_tip(pred, plants[0], 3.0, 4.0)))
    assert (tally.candidate, tally.frames) == (V3, 1)
    assert tally.mean_tip_distance_px() == pytest.approx(5.0 / len(plants))
    tally.add(V2, V3, compare(pred, pred))  # a new serving version is a new pair too
    assert (tally.serving, tally.frames, tally.mean_tip_distance_px()) == (V2, 1, 0.0)
