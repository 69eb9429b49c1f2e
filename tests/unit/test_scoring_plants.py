"""Evaluation per plant (plant i against true plant i): tips and misses by the plants'
stage where the plates say it, and an interval for the tip share that resamples whole
plates, because the plants of one plate miss together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hades_perception.inference.plants import Plant
from hades_perception.inference.prediction import Prediction
from hades_training.data.sample import PlantTruth, PlateTruth, Sample
from hades_training.evaluate.scoring import Scorer, plate_interval

PPM = 20.0  # px per mm: a tip counts within 20 px


def plate(
    stem: str,
    truth: list[tuple[tuple[float, float], str | None]],
    found: list[tuple[float, float] | None],
    flagged: list[bool],
) -> tuple[Prediction, Sample]:
    """A plate whose plant i has its true tip and stage `truth[i]`, and is predicted at
    `found[i]` (None: no tip), flagged low-confidence or not."""
    plants = [
        Plant(i, 0.2 if f else 0.9, f, primary_root_tip=tip)
        for i, (tip, f) in enumerate(zip(found, flagged, strict=True))
    ]
    pred = Prediction(
        width=400,
        height=300,
        classes=("root",),
        masks={},
        confidence=np.zeros((1, 1), np.uint8),
        landmarks=[],
        class_confidence={},
        plants=plants,
        low_confidence_threshold=0.5,
        model={},
        dish=None,
        px_per_mm=PPM,
    )
    sample = Sample(
        stem=stem,
        group=stem,
        image=np.zeros((1, 1, 3), np.uint8),
        masks={},
        annotated=(),
        truth=PlateTruth(
            400, 300, PPM, [PlantTruth(i, tip, stage=stage) for i, (tip, stage) in enumerate(truth)], "file"
        ),
        image_path=Path(f"{stem}.png"),
    )
    return pred, sample


def summary(*plates: tuple[Prediction, Sample]) -> dict:
    scorer = Scorer(("root",), calibration=False, lengths=False)
    for pred, sample in plates:
        scorer.add(pred, sample)
    return scorer.summary()["plants"]


class TestByStage:
    def test_tips_and_flagged_misses_are_counted_for_each_stage_apart(self):
        young, old = ((50.0, 200.0), "young"), ((250.0, 220.0), "old")
        plants = summary(
            plate("a", [young, old], [(52.0, 201.0), (250.0, 120.0)], [False, True]),  # old: 5 mm off, flagged
            plate("b", [young, old], [(50.0, 190.0), None], [False, True]),  # old: no tip (flagged as found none)
            plate("c", [old, young], [(251.0, 221.0), (255.0, 300.0)], [False, False]),  # young: 4 mm off, not flagged
        )
        assert plants["primary_tip_right_plant_within_1mm"] == pytest.approx(3 / 6)
        assert plants["by_stage"]["young"] == {
            "plants": 3,
            "primary_tip_right_plant_within_1mm": pytest.approx(2 / 3),
            "misses": 1,
            "misses_flagged_low_confidence": 0.0,
        }
        assert plants["by_stage"]["old"] == {
            "plants": 3,
            "primary_tip_right_plant_within_1mm": pytest.approx(1 / 3),
            "misses": 2,
            "misses_flagged_low_confidence": 1.0,
        }

    def test_plates_that_give_no_stage_report_none(self):
        plants = summary(plate("a", [((50.0, 200.0), None)], [(50.0, 200.0)], [False]))
        assert "by_stage" not in plants
        assert plants["primary_tip_right_plant_within_1mm"] == 1.0


class TestPlateInterval:
    def test_plants_that_miss_together_widen_it_where_independent_ones_do_not(self):
        # The same share, 0.5, over 20 plates of 4 plants each: once with every plate all hit
        # or all missed (plants miss together), once with every plate half hit.
        together = plate_interval(
            [h for p in range(20) for h in [p % 2 == 0] * 4], [p for p in range(20) for _ in range(4)]
        )
        apart = plate_interval(
            [h for p in range(20) for h in (True, False, True, False)], [p for p in range(20) for _ in range(4)]
        )
        assert together is not None and apart is not None
        assert together[0] < 0.35 and together[1] > 0.65
        assert apart == pytest.approx([0.5, 0.5])

    def test_it_is_the_same_for_the_same_evaluation(self):
        hits = [bool(v) for v in np.random.default_rng(3).integers(0, 2, 100)]
        plates = [i // 5 for i in range(100)]
        first = plate_interval(hits, plates)
        assert first == plate_interval(hits, plates)
        assert first is not None and first[0] <= np.mean(hits) <= first[1]

    def test_one_plate_gives_no_interval(self):
        assert plate_interval([True, False, True], [0, 0, 0]) is None
        assert (
            summary(plate("a", [((50.0, 200.0), None)], [(50.0, 200.0)], [False]))[
                "primary_tip_right_plant_within_1mm_ci95"
            ]
            is None
        )
