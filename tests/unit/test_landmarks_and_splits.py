"""Landmarks from masks on hand-drawn roots, and splits that keep experiments whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hades_training.data.landmarks_from_masks import derive_plants
from hades_training.data.splits import experiment_key, split_groups


def _draw(shape, lines, width=5):
    m = np.zeros(shape, np.uint8)
    for p, q in lines:
        cv2.line(m, p, q, 1, width)
    return m


def test_primary_tip_is_the_end_of_the_longest_path_and_laterals_are_other_tips():
    # A primary from (100, 50) down to (110, 400), a lateral from (105, 200) to (40, 260).
    root = _draw((450, 300), [((100, 50), (110, 400)), ((105, 200), (40, 260))])
    seed = np.zeros_like(root)
    cv2.circle(seed, (100, 42), 6, 1, -1)
    (plant,) = derive_plants(root, seed)
    assert plant.primary_root_tip == pytest.approx((110, 400), abs=4)
    assert len(plant.root_tips) == 1 and plant.root_tips[0] == pytest.approx((40, 260), abs=5)
    assert plant.primary_root_length_px == pytest.approx(350, rel=0.05)


def test_plants_are_numbered_left_to_right_and_short_spurs_are_not_tips():
    lines = [((300, 20), (305, 300)), ((60, 20), (55, 250)), ((58, 120), (66, 126))]  # a 10 px stub on plant 0
    root = _draw((350, 400), lines)
    seed = np.zeros_like(root)
    for x in (60, 300):
        cv2.circle(seed, (x, 14), 5, 1, -1)
    left, right = derive_plants(root, seed)
    assert left.primary_root_tip == pytest.approx((55, 250), abs=4)
    assert right.primary_root_tip == pytest.approx((305, 300), abs=4)
    assert left.root_tips == []


def test_without_seeds_each_root_system_is_a_plant_anchored_at_its_top():
    root = _draw((300, 300), [((200, 30), (210, 280)), ((50, 40), (60, 200))])
    plants = derive_plants(root)
    assert [round(p.primary_root_tip[0]) for p in plants if p.primary_root_tip] == pytest.approx([60, 210], abs=4)


def test_an_occluded_stretch_joins_the_root_it_interrupts():
    root = _draw((400, 200), [((100, 20), (100, 150)), ((100, 200), (100, 380))])
    occluded = _draw((400, 200), [((100, 150), (100, 200))])
    seed = np.zeros_like(root)
    cv2.circle(seed, (100, 12), 5, 1, -1)
    (plant,) = derive_plants(root, seed, occluded_mask=occluded)
    assert plant.primary_root_tip == pytest.approx((100, 380), abs=4)


def test_experiment_key_reads_expnn_then_date_then_first_field():
    assert experiment_key("plate_exp74_0012") == "exp74"
    assert experiment_key("030_43-19-ROOT1-2023-08-08_pvdCherry_OD001_Col0_04-Fish Eye Corrected") == "2023-08-08"
    assert experiment_key("B_osr_0091") == "B"


def test_splits_never_cut_a_group_and_approach_the_fractions():
    groups = [f"exp{i // 4}" for i in range(40)]  # ten experiments of four plates
    assignment = split_groups(groups, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=1)
    assert set(assignment) == set(groups)
    per_split = {s: sum(1 for g in groups if assignment[g] == s) for s in ("train", "val", "test")}
    assert per_split["train"] == 28 and per_split["val"] + per_split["test"] == 12
    assert assignment == split_groups(groups, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=1)
    with pytest.raises(ValueError, match="non-negative"):
        split_groups(groups, {"train": -1})
