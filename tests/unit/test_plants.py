"""The plant-structure step, on probability maps drawn by hand (no model): plants are
found from shoots and the roots below them, seeds optional; every primary tip lies on
its plant's root; numbering is left to right in the dish's slots; what is not a plant
(debris, condensation, a fibre far below) gives no landmark; bad input gives a result
for every expected plant with a reason, never an exception."""

from __future__ import annotations

import math
from collections.abc import Sequence, Set
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants import Evidence, Plant, Point, find_plants
from hades_perception.inference.plants.graph import _gap_end

W, H = 1400, 1000  # model px, scale 1 (one model px = one image px here)
PPM = 10.0  # px per mm
SLOTS = [300, 500, 700, 900, 1100]  # a row of five across a dish spanning x 100..1300 (0.2 of its width apart)
ROW_Y = 150


def blank() -> dict[str, np.ndarray]:
    return {k: np.zeros((H, W), np.float32) for k in ("root", "shoot", "seed")}


def shoot(maps: dict[str, np.ndarray], x: float, y: float = ROW_Y, r: int = 22) -> None:
    cv2.circle(maps["shoot"], (int(x), int(y)), r, 0.95, -1)


def root(maps: dict[str, np.ndarray], points: list[tuple[float, float]], p: float = 0.95, width: int = 3) -> None:
    pts = np.array(points, np.int32).reshape(-1, 1, 2)
    cv2.polylines(maps["root"], [pts], False, p, width)


def plant_at(maps: dict[str, np.ndarray], x: float, length: float = 500.0, drift: float = 40.0) -> tuple[float, float]:
    """A shoot at (x, ROW_Y) and a primary root from just below it, `length` px deep
    (longer along its curve: see curve_length); returns its tip."""
    shoot(maps, x)
    root(maps, curve(x, length, drift))
    return curve(x, length, drift)[-1]


def curve(x: float, length: float, drift: float) -> list[tuple[float, float]]:
    return [(x + drift * math.sin(t / 80.0), ROW_Y + 30 + t) for t in np.arange(0, length, 5.0)]


def curve_length(x: float, length: float, drift: float = 40.0) -> float:
    pts = np.array(curve(x, length, drift))
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def run(
    maps: dict[str, np.ndarray],
    n: int = 5,
    peaks: Sequence[tuple[float, ...]] | None = None,
    lateral_peaks: Sequence[tuple[float, float, float]] = (),
    grey: np.ndarray | None = None,
) -> list[Plant]:
    """The plant step on these maps; `peaks`: the tip detector's primary-tip peaks, (x, y)
    at 0.9 or (x, y, probability); `lateral_peaks`: its lateral-tip peaks, (x, y, probability);
    `grey`: the photograph's green channel."""
    rows = [(p[0], p[1], p[2] if len(p) > 2 else 0.9) for p in peaks or []]

    def grid(points: Sequence[tuple[float, ...]]) -> np.ndarray:  # a heatmap (stride 4) with these peaks
        heat = np.zeros((H // 4, W // 4), np.float32)
        for x, y, prob in points:
            heat[int(y) // 4, int(x) // 4] = prob
        return heat

    ev = Evidence(
        maps["root"], 0.5, maps["shoot"], 0.5, maps["seed"], 0.5, grid(rows), grid(lateral_peaks), 4,
        np.array(rows).reshape(-1, 3),
        np.array(lateral_peaks, float).reshape(-1, 3),
    )  # fmt: skip
    return find_plants(ev, Frame(0, 0, 1.0), n, PPM, 0.5, dish_span=(100.0, 1300.0), grey=grey)


def near(a: tuple[float, float] | None, b: tuple[float, float], px: float = 3.0) -> bool:
    return a is not None and math.dist(a, b) <= px


class TestAPlateOfFive:
    def test_each_plant_gets_its_primary_tip_and_length_numbered_left_to_right(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300 + 80 * i) for i, x in enumerate(SLOTS)]
        plants = run(maps, peaks=tips)
        assert [p.plant for p in plants] == [0, 1, 2, 3, 4]
        for p, tip, length in zip(plants, tips, [300 + 80 * i for i in range(5)], strict=True):
            assert near(p.primary_root_tip, tip), (p.plant, p.primary_root_tip, tip)
            assert p.primary_root_length_px == pytest.approx(curve_length(0, length), rel=0.04)
            assert p.primary_root_length_px is not None
            assert p.primary_root_length_mm == pytest.approx(p.primary_root_length_px / PPM)
            assert not p.low_confidence and p.reason == ""
            assert p.base is not None and p.base[1] < ROW_Y + 60  # just below the shoot
            assert p.shoot_area_px > 1000

    def test_seeds_are_optional_evidence_plants_come_from_shoots_and_roots(self):
        maps = blank()
        for x in SLOTS:
            plant_at(maps, x)
        assert not maps["seed"].any()
        assert all(p.has_primary_tip for p in run(maps))

    def test_every_primary_tip_lies_on_its_plants_root(self):
        maps = blank()
        for x in SLOTS:
            plant_at(maps, x)
        roots = cv2.dilate((maps["root"] > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for p in run(maps):
            assert p.primary_root_tip is not None
            x, y = (round(v) for v in p.primary_root_tip)
            assert roots[y, x]

    def test_without_the_tip_detectors_confirmation_a_tip_is_flagged_with_a_reason(self):
        maps = blank()
        for x in SLOTS:
            plant_at(maps, x)
        plants = run(maps, peaks=[])
        assert all(p.has_primary_tip and p.low_confidence and "tip detector" in p.reason for p in plants)


class TestWhatIsNotAPlant:
    def test_a_fibre_far_below_the_plants_gives_no_landmark(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300) for x in SLOTS]
        root(maps, [(200, 850), (1200, 900)])  # a long fibre across the bottom
        plants = run(maps, peaks=tips)
        assert all(near(p.primary_root_tip, t) for p, t in zip(plants, tips, strict=True))
        assert all(p.lateral_root_count == 0 for p in plants)

    def test_condensation_segmented_as_shoot_without_roots_is_not_a_plant(self):
        maps = blank()
        tips = [plant_at(maps, x) for x in SLOTS[:3]]
        for x in (900, 1100, 1250):
            shoot(maps, x, ROW_Y - 60, r=30)  # drops at the top of the dish
        plants = run(maps, peaks=tips)
        assert [p.has_primary_tip for p in plants] == [True, True, True, False, False]
        assert plants[3].reason == plants[4].reason == "no plant found at this position"

    def test_a_speck_on_a_root_far_below_the_row_does_not_steal_the_roots_lower_part(self):
        maps = blank()
        tips = [plant_at(maps, x, length=600) for x in SLOTS]
        shoot(maps, SLOTS[2] + 40 * math.sin(400 / 80.0), ROW_Y + 30 + 400, r=14)  # a blob on plant 2's root
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2])
        assert plants[2].primary_root_length_px == pytest.approx(600, rel=0.06)


class TestNumbering:
    def test_with_plants_missing_the_others_keep_their_slots(self):
        maps = blank()
        tips = {i: plant_at(maps, SLOTS[i]) for i in (0, 2, 4)}
        plants = run(maps, peaks=list(tips.values()))
        assert len(plants) == 5
        for i in range(5):
            if i in tips:
                assert near(plants[i].primary_root_tip, tips[i])
            else:
                assert plants[i].low_confidence and not plants[i].has_primary_tip and plants[i].reason

    def test_more_root_systems_than_plants_keeps_the_longest(self):
        maps = blank()
        xs = [180, 340, 500, 660, 820, 980, 1140]
        tips = [plant_at(maps, x, length=200 if i in (1, 5) else 500) for i, x in enumerate(xs)]
        plants = run(maps, peaks=tips)
        kept = [t for i, t in enumerate(tips) if i not in (1, 5)]
        assert [near(p.primary_root_tip, t) for p, t in zip(plants, kept, strict=True)] == [True] * 5

    def test_a_fibre_starting_in_the_row_yields_to_a_young_plant_whose_shoot_was_found(self):
        # Six root systems start in the row: five below shoots (one a young plant's short
        # root) and a longer fibre with no shoot between plants 0 and 1. The fibre is not a
        # plant, so it does not push the young plant out and the numbers do not shift.
        maps = blank()
        tips = [plant_at(maps, x, length=500 if i < 4 else 150) for i, x in enumerate(SLOTS)]
        root(maps, [(SLOTS[0] + 100, ROW_Y + 10), (SLOTS[0] + 110, ROW_Y + 120), (SLOTS[0] + 105, ROW_Y + 230)])
        plants = run(maps, peaks=tips)
        assert [near(p.primary_root_tip, t) for p, t in zip(plants, tips, strict=True)] == [True] * 5


class TestRoots:
    def test_a_faint_gap_the_probabilities_support_is_bridged_bare_agar_is_not(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[1]
        root(maps, [(x, ROW_Y + 330), (x, ROW_Y + 345)], p=0.15)  # a faint stretch
        root(maps, [(x, ROW_Y + 345), (x, ROW_Y + 600)])  # the root goes on below it
        x = SLOTS[3]
        root(maps, [(x, ROW_Y + 345), (x, ROW_Y + 600)])  # 15 px of bare agar above this piece
        x = SLOTS[4]
        root(maps, [(x + 12, ROW_Y + 335), (x + 40, ROW_Y + 600)], p=0.15)  # beside the end, across its direction
        plants = run(maps, peaks=[*tips, (SLOTS[1], ROW_Y + 600)])
        assert plants[1].primary_root_length_px == pytest.approx(570, rel=0.05)
        assert near(plants[1].primary_root_tip, (SLOTS[1], ROW_Y + 600), 4)
        assert plants[3].primary_root_length_px == pytest.approx(300, rel=0.06)
        assert plants[4].primary_root_length_px == pytest.approx(300, rel=0.06)

    def test_a_long_piece_beside_a_root_joins_it_where_a_faint_trace_crosses_the_gap_a_crumb_does_not(self):
        # On dev plates an old root's mask broke beside itself: its lower part (14-46 mm, the
        # tip included) started half a mm off it, belonging to no plant; the gap to the
        # nearest skeleton pixel was bare, to one a pixel or two farther a faint trace.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        for i, x in ((2, SLOTS[2]), (3, SLOTS[3])):
            root(maps, [(x + 1, ROW_Y + 286), (x + 6, ROW_Y + 289)], p=0.15, width=1)  # the faint trace
            bottom = ROW_Y + (560 if i == 2 else 305)  # plant 3's piece: a 1.5 mm crumb
            root(maps, [(x + 7, ROW_Y + 290), (x + 12, bottom)], width=1)
        lower = (SLOTS[2] + 12, ROW_Y + 560)
        plants = run(maps, peaks=[*tips[:2], (*lower, 0.6), *tips[3:]])
        assert near(plants[2].primary_root_tip, lower, 4), plants[2].primary_root_tip
        assert near(plants[3].primary_root_tip, tips[3], 4), plants[3].primary_root_tip
        assert all(near(p.primary_root_tip, t) for p, t in zip(plants, tips, strict=True) if p.plant not in (2, 3))

    def test_a_faint_young_tip_below_the_masks_thresholds_is_followed_to_its_end(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]
        root(maps, [(x, ROW_Y + 305), (x, ROW_Y + 325)], p=0.6)  # the root fades out...
        root(maps, [(x, ROW_Y + 327), (x + 3, ROW_Y + 350)], p=0.14, width=2)  # ...and goes on 2.3 mm, faint
        plants = run(maps, peaks=[*tips[:2], (x + 3, ROW_Y + 350), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x + 3, ROW_Y + 350), 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(320, rel=0.05)
        assert near(plants[1].primary_root_tip, tips[1])  # bare agar past a tip: no extension

    def test_a_faint_young_root_broken_into_pieces_is_followed_across_gaps_further_down(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]  # its mask ends at ROW_Y + 325; the root goes on, faint, in pieces 4 and 4.5 mm apart
        root(maps, [(x, ROW_Y + 326), (x + 4, ROW_Y + 366)], p=0.15, width=1)
        root(maps, [(x + 4, ROW_Y + 366), (x + 8, ROW_Y + 400)])
        root(maps, [(x + 8, ROW_Y + 401), (x + 13, ROW_Y + 446)], p=0.15, width=1)
        root(maps, [(x + 13, ROW_Y + 446), (x + 16, ROW_Y + 480)])
        plants = run(maps, peaks=[*tips[:2], (x + 16, ROW_Y + 480), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x + 16, ROW_Y + 480), 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(455, rel=0.05)
        assert not plants[2].low_confidence
        assert all(near(p.primary_root_tip, t) for p, t in zip(plants, tips, strict=True) if p.plant != 2)

    def test_a_piece_off_the_roots_direction_across_bare_agar_or_too_far_is_not_joined(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[0]  # a fibre 3 mm ahead, across the root's direction
        root(maps, [(x - 20, ROW_Y + 355), (x + 40, ROW_Y + 385)], p=0.15, width=1)
        root(maps, [(x - 5, ROW_Y + 355), (x + 40, ROW_Y + 385)])
        x = SLOTS[1]  # a piece straight ahead across bare agar
        root(maps, [(x, ROW_Y + 365), (x, ROW_Y + 420)])
        x = SLOTS[2]  # a piece straight ahead, but 8 mm on
        root(maps, [(x, ROW_Y + 325), (x, ROW_Y + 405)], p=0.15, width=1)
        root(maps, [(x, ROW_Y + 405), (x, ROW_Y + 460)])
        x = SLOTS[3]  # ahead and supported, but its direction turns away (debris, not the root going on)
        root(maps, [(x, ROW_Y + 326), (x, ROW_Y + 360)], p=0.15, width=1)
        root(maps, [(x, ROW_Y + 360), (x + 50, ROW_Y + 370)])
        plants = run(maps, peaks=[])  # the detector confirms no end: only the geometry and the support decide
        for p, t in zip(plants, tips, strict=True):
            assert near(p.primary_root_tip, t, 4), (p.plant, p.primary_root_tip, t)

    def test_a_neighbours_root_or_a_confirmed_end_takes_no_pieces(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS[:3]]
        x = SLOTS[3]  # plant 3's root bends under plant 2's end (1 mm of faint agar between)
        shoot(maps, x)
        root(maps, [(x, ROW_Y + 30), (x, ROW_Y + 300), (SLOTS[2] + 5, ROW_Y + 345), (SLOTS[2] + 5, ROW_Y + 500)])
        root(maps, [(SLOTS[2], ROW_Y + 326), (SLOTS[2] + 5, ROW_Y + 345)], p=0.15, width=1)
        tip3 = (SLOTS[2] + 5, ROW_Y + 500)
        tips.append(plant_at(maps, SLOTS[4], length=300, drift=0))
        x = SLOTS[4]  # a confirmed end: the piece ahead of it is not its root going on
        root(maps, [(x, ROW_Y + 326), (x, ROW_Y + 370)], p=0.15, width=1)
        root(maps, [(x, ROW_Y + 370), (x, ROW_Y + 420)])
        plants = run(maps, peaks=[tips[0], tips[1], tip3, tips[3]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert near(plants[3].primary_root_tip, tip3, 4), plants[3].primary_root_tip
        assert near(plants[4].primary_root_tip, tips[3], 4), plants[4].primary_root_tip

    @pytest.mark.parametrize(
        "top",
        [(8, 345), (9, 315)],  # 1.5 mm below its end and off to the side; right beside its end, overlapping
        ids=["below", "beside"],
    )
    def test_a_roots_lower_part_broken_off_over_bare_agar_is_its_own_where_the_detector_fires_at_its_end(self, top):
        # On a plate: a young root's mask broken for a mm or two, or its lower part starting
        # beside its upper one (the hypocotyl's offset), the detector firm at the real tip.
        # The gap has no root probability, so only the peak says the piece is this root's.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]
        tip = (x + top[0], ROW_Y + 520)
        root(maps, [(x + top[0], ROW_Y + top[1]), tip])
        plants = run(maps, peaks=[*tips[:2], tip, *tips[3:]])
        assert near(plants[2].primary_root_tip, tip, 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(490, rel=0.05)
        assert all(near(p.primary_root_tip, t) for p, t in zip(plants, tips, strict=True) if p.plant != 2)

    def test_a_broken_off_piece_too_far_below_behind_the_end_running_up_or_with_a_weak_peak_is_not_taken(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS[:4]]
        x = SLOTS[1]  # 7 mm below the root's end: debris, a fibre, not its root
        far = (x, ROW_Y + 500)
        root(maps, [(x, ROW_Y + 400), far])
        x = SLOTS[3]  # the firm peak at the top of a piece that runs down from it
        up = (x + 8, ROW_Y + 345)
        root(maps, [up, (x + 8, ROW_Y + 500)])
        x = SLOTS[4]  # a root turning right at its end; the piece 5 mm to its left, behind it
        shoot(maps, x)
        tips.append((x + 50, ROW_Y + 330))
        root(maps, [(x, ROW_Y + 30), (x, ROW_Y + 250), tips[4]])
        behind = (x, ROW_Y + 400)
        root(maps, [(x, ROW_Y + 300), behind])
        x = SLOTS[0]  # right below, but the detector only half sure at its end
        weak = (x + 8, ROW_Y + 520, 0.6)
        root(maps, [(x + 8, ROW_Y + 345), weak[:2]])
        plants = run(maps, peaks=[weak, far, tips[2], up, behind])
        for i in (0, 1, 3, 4):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip)
            assert plants[i].low_confidence

    def test_a_crisp_root_end_is_not_extended_into_the_faint_halo_past_it(self):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]
        root(maps, [(x, ROW_Y + 327), (x, ROW_Y + 350)], p=0.14, width=2)  # a halo below a sure root
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip

    def test_laterals_longer_than_a_millimetre_are_counted_spurs_are_not(self):
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x = SLOTS[0]
        root(maps, [(x, ROW_Y + 200), (x + 60, ROW_Y + 260)])  # a lateral, 8 mm
        root(maps, [(x, ROW_Y + 350), (x - 50, ROW_Y + 420)])  # another
        root(maps, [(x, ROW_Y + 120), (x + 5, ROW_Y + 124)])  # a spur, under 1 mm
        plants = run(maps, peaks=tips)
        assert plants[0].lateral_root_count == 2
        assert len(plants[0].lateral_paths) == 2 and len(plants[0].lateral_tips) == 2
        assert plants[0].total_root_length_px == pytest.approx(500 + 85 + 86, rel=0.08)
        assert near(plants[0].primary_root_tip, tips[0])


class TestDoubt:
    def test_a_confirmed_branch_tip_beside_a_root_going_straight_on_much_farther_is_not_the_primary_tip(self):
        # The detector fires at the end of a branch that turns off; the root goes straight on
        # much farther, where no peak is: the primary tip is that end, since the detector
        # mistakes laterals' tips for primary ones, and without its support the robot is told.
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x = SLOTS[2]
        branch_tip = (x + 120, ROW_Y + 330)
        root(maps, [(x, ROW_Y + 200), branch_tip])
        plants = run(maps, peaks=[*tips[:2], branch_tip, *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].lateral_root_count == 1
        assert plants[2].low_confidence and "does not confirm" in plants[2].reason
        assert plants[2].confidence < 0.5
        assert not any(p.low_confidence for i, p in enumerate(plants) if i != 2)

    def test_a_detector_peak_off_the_root_within_a_millimetre_of_its_end_is_not_the_tip(self):
        # The rim 0.9 mm from the end, beside the root's line, over bare agar: neither snapped
        # to (it is off the root) nor taken as a tip further on.
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        drop = (tips[1][0] - 7, tips[1][1] + 5)
        plants = run(maps, peaks=[tips[0], drop, *tips[2:]])
        assert near(plants[1].primary_root_tip, tips[1], 3), plants[1].primary_root_tip

    def test_a_detector_peak_just_past_the_end_straight_on_over_a_faint_trace_is_the_tip(self):
        # A young root's last millimetre is fainter than the root mask's low threshold (a trace
        # of 0.15), and the detector fires at its end, 0.7 mm on along the root: within a
        # millimetre of the end, off the mask, but where the root runs on, so it is the tip,
        # not a drop's rim beside it.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        root(maps, [(x, end), (x, end + 10)], p=0.15, width=2)
        plants = run(maps, peaks=[*tips[:2], (x, end + 7), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x, end + 7), 1), plants[2].primary_root_tip
        assert not plants[2].low_confidence

    def test_a_detector_peak_off_the_root_beside_its_end_is_not_the_tip(self):
        # A condensation drop's rim just past the end of a root fires the tip detector: the
        # tip stays where the root ends, and without the detector's support there it is flagged.
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        drop = (tips[1][0] - 9, tips[1][1] + 6)  # 1.1 mm from the end, beside the root's line
        plants = run(maps, peaks=[tips[0], drop, *tips[2:]])
        assert near(plants[1].primary_root_tip, tips[1], 4), plants[1].primary_root_tip
        assert plants[1].low_confidence and "does not confirm" in plants[1].reason


class TestWhereTheRootEnds:
    def test_an_unconfirmed_tip_goes_on_along_the_line_the_photograph_shows(self):
        # Plant 2's mask stops 2 mm short of its tip and the detector is silent there; the
        # photograph shows the root's faint line running on (step 8, plants/trace.py; its
        # own tests: test_trace.py). Without the photograph the tip is where the mask ends.
        maps = blank()
        tips = [plant_at(maps, x, length=400, drift=0) for x in SLOTS]
        x, end = tips[2]
        grey = np.full((H, W), 170.0, np.float32) + np.random.default_rng(0).normal(0, 2.5, (H, W))
        for tx, ty in tips:
            grey[int(ROW_Y + 30) : int(ty) + 1, int(tx) - 1 : int(tx) + 2] -= 16
        grey[int(end) + 1 : int(end) + 21, int(x) - 1 : int(x) + 2] -= 10  # 2 mm more, fainter
        peaks = [*tips[:2], *tips[3:]]
        without = run(maps, peaks=peaks)
        assert near(without[2].primary_root_tip, (x, end), 4)
        plants = run(maps, peaks=peaks, grey=grey)
        assert near(plants[2].primary_root_tip, (x, end + 20), 0.5 * PPM), plants[2].primary_root_tip
        assert plants[2].low_confidence
        assert [p for p in plants if p.plant != 2] == [p for p in without if p.plant != 2]  # confirmed: as they were

    def test_a_root_mask_running_on_into_a_drop_past_the_detectors_tip_ends_at_the_tip(self):
        # The mask goes on 3 mm past the tip, forking round a condensation drop; the detector
        # fires at the tip and is silent at the fork's ends: the root ends at the detector's tip,
        # and the fork is no lateral.
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x, y = tips[2]
        root(maps, [(x, y), (x, y + 8), (x - 12, y + 30)], p=0.6)
        root(maps, [(x, y + 8), (x + 12, y + 30)], p=0.6)
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(500, rel=0.03)
        assert plants[2].lateral_root_count == 0
        assert not plants[2].low_confidence

    @pytest.mark.parametrize("peak", [0.9, 0.6])
    def test_a_root_bridged_on_into_a_fibre_past_a_firm_peak_ends_at_the_peak(self, peak: float):
        # Plant 2's root ends at a firm peak; past a 1 mm gap (a faint trace: bridged) a
        # fibre runs on 6 mm straight down, the detector silent at its end. The root ends at
        # the peak, farther back than the 4 mm a peak cuts otherwise; a weaker peak (0.6)
        # does not cut so far.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        root(maps, [(x, end), (x, end + 10)], p=0.05, width=2)
        root(maps, [(x, end + 10), (x, end + 70)])
        plants = run(maps, peaks=[*tips[:2], (x, end, peak), *tips[3:]])
        want = (x, end) if peak >= 0.8 else (x, end + 70)
        assert near(plants[2].primary_root_tip, want, 4), plants[2].primary_root_tip

    def test_so_does_a_firm_peak_half_a_root_width_past_the_node_the_path_was_bridged_on_from(self):
        # As above, the peak where the real tip is: 0.4 mm past the skeleton's end there
        # (a skeleton stops about half a root width short of a tip).
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        root(maps, [(x, end + 12), (x, end + 70)])
        root(maps, [(x, end), (x, end + 12)], p=0.05, width=2)
        plants = run(maps, peaks=[*tips[:2], (x + 2, end + 4, 0.9), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x + 2, end + 4), 4), plants[2].primary_root_tip

    def test_where_the_detector_fires_at_the_roots_end_too_a_peak_before_it_cuts_nothing(self):
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x, y = tips[2]
        plants = run(maps, peaks=[*tips, (x, y - 20)])  # a second peak 2 mm up the root
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(500, rel=0.03)

    def test_a_peak_far_up_a_root_does_not_shorten_it(self):
        # A neighbour's tip touching the root 10 mm above its end (more than 4 mm): the root
        # goes on; its end, unconfirmed, is flagged.
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x, y = tips[2]
        plants = run(maps, peaks=[*tips[:2], (x, y - 100), *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].low_confidence and "does not confirm" in plants[2].reason

    def test_the_faint_tip_extension_stops_at_the_tip_the_detector_sees(self):
        # The root fades out where the detector fires; a faint halo goes on 2.3 mm past it with
        # the detector silent there: the tip is the detector's, not the halo's end.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]
        root(maps, [(x, ROW_Y + 305), (x, ROW_Y + 325)], p=0.6)
        root(maps, [(x, ROW_Y + 327), (x + 3, ROW_Y + 350)], p=0.14, width=2)
        plants = run(maps, peaks=[*tips[:2], (x, ROW_Y + 325), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x, ROW_Y + 325), 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(295, rel=0.03)
        assert not plants[2].low_confidence

    @pytest.mark.parametrize("faint", [12, 18], ids=["1.2 mm", "1.8 mm"])
    def test_a_tip_the_detector_sees_just_past_where_the_mask_stops_is_the_roots_tip(self, faint: int):
        # A young root's last 1.2-1.8 mm is too faint for the mask and the extension (a trace
        # of 0.1, not bare agar); the detector fires at its end: that is the tip, and the
        # length runs to it.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        root(maps, [(x, end), (x, end + faint)], p=0.1, width=2)
        plants = run(maps, peaks=[*tips[:2], (x, end + faint), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x, end + faint), 3), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(295 + faint, rel=0.03)
        assert not plants[2].low_confidence

    @pytest.mark.parametrize(
        ("prob", "offset", "taken"),
        [(0.9, (0, 12), True), (0.5, (0, 12), False), (0.9, (9, 9), False)],
        ids=["firm, straight on", "weak", "45 degrees off the root's direction"],
    )
    def test_where_only_the_lateral_tip_channel_fires_just_past_the_end_the_root_ends_there_flagged(
        self, prob, offset, taken
    ):
        # The primary-tip channel is silent at a root's end; 1.2 mm on, over a faint trace,
        # the lateral-tip channel fires: a root ends there, and this one is the only root
        # there (dev plates: 3 of 800 tips). The primary-tip detector did not confirm it, so
        # it stays flagged. A weak peak, or one 45 degrees off the root's line, is not taken.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        peak = (x + offset[0], end + offset[1])
        root(maps, [(x, end), peak], p=0.1, width=2)
        plants = run(maps, peaks=[*tips[:2], *tips[3:]], lateral_peaks=[(*peak, prob)])
        assert near(plants[2].primary_root_tip, peak if taken else (x, end), 4), plants[2].primary_root_tip
        assert plants[2].low_confidence and "tip detector" in plants[2].reason

    @pytest.mark.parametrize(
        ("peak", "trace"),
        [((0, 25), 0.1), ((9, 9), 0.1), ((0, 12), 0.0), ((0, 12), 0.03)],
        ids=["2.5 mm on: too far", "45 degrees off the root's direction", "bare agar between", "a faint halo only"],
    )
    def test_a_peak_past_the_end_is_not_taken_too_far_off_the_roots_line_or_without_root_evidence(self, peak, trace):
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        if trace:
            root(maps, [(x, end), (x + peak[0], end + peak[1])], p=trace, width=2)
        plants = run(maps, peaks=[*tips[:2], (x + peak[0], end + peak[1]), *tips[3:]])
        assert near(plants[2].primary_root_tip, (x, end), 4), plants[2].primary_root_tip
        assert plants[2].low_confidence

    @pytest.mark.parametrize(("strong", "trace"), [(0.9, 0.1), (0.5, 0.1), (0.9, 0.0)])
    def test_a_much_stronger_peak_further_on_over_a_faint_trace_is_the_tip_not_a_weak_one_at_the_end(
        self, strong, trace
    ):
        # The mask stops where a weak peak (0.4) marks it; 2.5 mm straight on, over a faint
        # trace, the detector fires at 0.9: the tip is there (dev plates). At 0.5, or over
        # bare agar, it is not.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, end = tips[2]
        if trace:
            root(maps, [(x, end), (x, end + 25)], p=trace, width=2)
        plants = run(maps, peaks=[*tips[:2], (x, end, 0.4), (x, end + 25, strong), *tips[3:]])
        taken = strong >= 1.5 * 0.4 and trace > 0
        assert near(plants[2].primary_root_tip, (x, end + 25) if taken else (x, end), 4), plants[2].primary_root_tip

    def test_a_peak_past_the_end_on_a_neighbours_root_is_not_taken(self):
        # Plant 3's root bends under plant 2's faint end and ends there, confirmed: plant 2
        # does not take that tip (two plants would share one), and is flagged.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in (*SLOTS[:2], SLOTS[2], SLOTS[4])]
        x, end = tips[2]
        shoot(maps, SLOTS[3])
        neighbour_tip = (x + 4, end + 12)
        root(maps, [(SLOTS[3], ROW_Y + 30), (SLOTS[3], ROW_Y + 200), (x + 30, end), neighbour_tip])
        root(maps, [(x, end), neighbour_tip], p=0.1, width=2)
        plants = run(maps, peaks=[*tips[:2], tips[3], neighbour_tip])  # plant 2's own end: no peak
        assert near(plants[3].primary_root_tip, neighbour_tip, 4), plants[3].primary_root_tip
        assert near(plants[2].primary_root_tip, (x, end), 4), plants[2].primary_root_tip
        assert plants[2].low_confidence

    def test_a_peak_straight_past_the_end_and_off_the_root_beside_a_neighbours_root_is_not_taken(self):
        # As above, within a millimetre of plant 2's faint end and off any root: a peak
        # 0.4 mm from the end of plant 3's root, which bends under plant 2, is plant 3's.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in (*SLOTS[:2], SLOTS[2], SLOTS[4])]
        x, end = tips[2]
        shoot(maps, SLOTS[3])
        root(maps, [(SLOTS[3], ROW_Y + 30), (SLOTS[3], ROW_Y + 200), (x + 40, end + 11)])
        root(maps, [(x + 40, end + 11), (x + 2, end + 11)], width=1)  # a thin last stretch
        root(maps, [(x, end), (x, end + 9)], p=0.15, width=2)
        plants = run(maps, peaks=[*tips[:2], tips[3], (x + 1, end + 7)])
        assert near(plants[2].primary_root_tip, (x, end), 3), plants[2].primary_root_tip


class TestContinuity:
    """Where a plant's root paths part, the primary root goes on in its direction: a path
    that turns off is a lateral's, wherever the tip detector fires; only a tip it confirms
    firmly keeps the primary from a longer path that turns off unconfirmed."""

    @staticmethod
    def plate_with_a_branch_turning_off_plant_2() -> tuple[dict[str, np.ndarray], list[tuple[float, float]], Point]:
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x = SLOTS[2]
        branch_tip = (x + 100, ROW_Y + 450)  # 45 degrees off at ROW_Y + 350, 14 mm: 90 % of the primary's path
        root(maps, [(x, ROW_Y + 350), branch_tip])
        return maps, tips, branch_tip

    def test_a_weakly_confirmed_path_turning_off_is_a_laterals(self):
        maps, tips, branch_tip = self.plate_with_a_branch_turning_off_plant_2()
        plants = run(maps, peaks=[*tips[:2], (*branch_tip, 0.35), *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(500, rel=0.03)
        assert plants[2].lateral_root_count == 1
        assert plants[2].low_confidence  # the detector does not confirm the tip

    def test_with_both_ends_confirmed_the_path_going_straight_on_is_the_primary(self):
        maps, tips, branch_tip = self.plate_with_a_branch_turning_off_plant_2()
        plants = run(maps, peaks=[*tips[:2], (*tips[2], 0.6), branch_tip, *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].lateral_root_count == 1

    def test_a_firmly_confirmed_path_turning_off_is_still_a_laterals_and_the_unconfirmed_tip_is_flagged(self):
        # The detector fires firmly at the branch's end and not at the root's: the root still
        # goes straight on (dev plates: the detector mistakes laterals' tips for primary ones
        # more often than a primary root turns off), and its tip is flagged.
        maps, tips, branch_tip = self.plate_with_a_branch_turning_off_plant_2()
        plants = run(maps, peaks=[*tips[:2], branch_tip, *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].lateral_root_count == 1
        assert plants[2].low_confidence and "does not confirm" in plants[2].reason

    def test_of_two_firmly_confirmed_ends_where_the_root_forks_evenly_the_longer_is_the_primary_tip(self):
        # The root forks 25 degrees either way; the detector fires firmly at both ends, more
        # strongly at the shorter one (on old plates it fires firmly at laterals' tips too):
        # the longer one, as the primary root is the longest.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, fork = SLOTS[2], ROW_Y + 300
        long_tip = (x - 200 * math.sin(math.radians(25)), fork + 200 * math.cos(math.radians(25)))
        short_tip = (x + 120 * math.sin(math.radians(25)), fork + 120 * math.cos(math.radians(25)))
        root(maps, [(x, fork), long_tip])
        root(maps, [(x, fork), short_tip])
        plants = run(maps, peaks=[*tips[:2], (*long_tip, 0.7), (*short_tip, 0.9), *tips[3:]])
        assert near(plants[2].primary_root_tip, long_tip, 4), plants[2].primary_root_tip
        assert not plants[2].low_confidence

    def test_a_firmly_confirmed_end_going_straight_on_is_the_primary_tip_though_a_branch_turning_off_is_longer(self):
        # Both ends firm; the branch turns off 40 degrees and runs on farther: the root goes
        # straight on to its own tip.
        maps = blank()
        tips = [plant_at(maps, x, length=420, drift=0) for x in SLOTS]
        x = SLOTS[2]
        branch_tip = (x + 200 * math.sin(math.radians(40)), ROW_Y + 300 + 200 * math.cos(math.radians(40)))
        root(maps, [(x, ROW_Y + 300), branch_tip])
        plants = run(maps, peaks=[*tips[:2], (*tips[2], 0.8), (*branch_tip, 0.9), *tips[3:]])
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].lateral_root_count == 1

    def test_a_much_longer_unconfirmed_path_turning_off_does_not_take_the_primary_from_its_confirmed_tip(self):
        # A faint arc (a scratch, a fibre) leaves the root 15 mm above its tip at 45 degrees and
        # runs on for 50 mm, twice the primary's length, with the detector silent at its end;
        # the root goes straight on to a tip the detector confirms: that is the primary tip,
        # flagged because a longer path ends elsewhere.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x = SLOTS[2]
        root(maps, [(x, ROW_Y + 180), (x + 350, ROW_Y + 530), (x + 360, ROW_Y + 700)], p=0.4)
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(300, rel=0.03)
        assert plants[2].low_confidence and "a longer root path ends elsewhere" in plants[2].reason


class TestCrossings:
    """Two roots that cross run straight through each other: each plant keeps its own
    root below the crossing, wherever the shortest path would turn the corner."""

    @staticmethod
    def crossing_pair(maps: dict[str, np.ndarray], spread: float) -> tuple[Point, Point]:
        """Plants 1 and 2 with roots that cross below the row, each leaving its shoot's
        line `spread` px sideways per 100 px down; returns their tips. Plant 1's path to
        the crossing is the shorter: shortest paths alone give it both lower parts."""
        a, b = SLOTS[1], SLOTS[2]
        shoot(maps, a)
        shoot(maps, b)
        mid_y = ROW_Y + 150 + 100 * (b - a) / (2 * spread)  # where the two slanted stretches meet
        tip_a = (a + spread * 5.5, ROW_Y + 700.0)
        tip_b = (b - spread * 4.0, ROW_Y + 600.0)
        root(maps, [(a, ROW_Y + 30), (a, ROW_Y + 150), (a + spread * 5.0, ROW_Y + 650), tip_a])
        root(maps, [(b, ROW_Y + 30), (b + 30, ROW_Y + 90), (b, ROW_Y + 150), (b - spread * 3.8, ROW_Y + 530), tip_b])
        assert ROW_Y + 150 < mid_y < ROW_Y + 530
        return tip_a, tip_b

    def test_neighbours_sent_down_each_others_roots_by_a_tangled_crossing_get_their_own_back(self):
        # The shipped model's probabilities and tip peaks around two old plants of a dev plate
        # (`realistic` seed 114, exp002_0009; model px, crop x 40-440, y 100-800, 8-bit): their
        # roots cross in a knot of skeleton whose straight runs are not found, and shortest
        # paths sent each down the other's root, plant 1 confidently to plant 0's firm tip.
        f = np.load(Path(__file__).parent / "data" / "crossing_dev_s114_exp002_0009.npz")
        root_t, shoot_t, seed_t = (float(v) for v in f["thresholds"])
        ev = Evidence(
            f["root"] / np.float32(255), root_t, f["shoot"] / np.float32(255), shoot_t,
            f["seed"] / np.float32(255), seed_t, f["primary_heat"].astype(np.float32),
            f["tip_heat"].astype(np.float32), int(f["stride"]), f["primary_peaks"], f["tip_peaks"],
            (f["heat_rows"], f["heat_cols"]),
        )  # fmt: skip
        ppm = float(f["px_per_mm"])
        plants = find_plants(ev, Frame(0, 0, 1.0), 2, ppm, 0.5)
        for p, truth in zip(plants, f["true_tips"], strict=True):
            assert p.primary_root_tip is not None and math.dist(p.primary_root_tip, truth) <= ppm, (p.plant, p)
        assert not plants[0].low_confidence  # the detector confirms its tip firmly

    @pytest.mark.parametrize("spread", [100.0, 45.0], ids=["at right angles", "at a shallow angle"])
    def test_each_plant_keeps_its_own_root_below_a_crossing(self, spread: float):
        maps = blank()
        tips = {i: plant_at(maps, SLOTS[i], length=300, drift=0) for i in (0, 3, 4)}
        tips[1], tips[2] = self.crossing_pair(maps, spread)
        plants = run(maps, peaks=[tips[i] for i in range(5)])
        for i in range(5):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip, tips[i])
            assert not plants[i].low_confidence, (i, plants[i].reason)
        assert plants[1].lateral_root_count == plants[2].lateral_root_count == 0

    def test_a_root_a_neighbours_lateral_touches_gets_its_tip_back_from_the_detector(self):
        # Plant 3's lateral touches plant 2's wavering root halfway down: by the shortest
        # paths plant 3 (its path there is the shorter) owns all of plant 2's root but the
        # top, which has no end left. The detector fires at plant 2's real tip, which no
        # plant took (plant 3's own root is longer), and plant 2 reaches it by going
        # straight on: that is its tip. (The existing TestContinuity cases check that a
        # firm peak at the end of a branch turning off is still not taken.)
        maps = blank()
        tips = {i: plant_at(maps, SLOTS[i], length=300, drift=0) for i in (0, 1, 4)}
        x = SLOTS[2]
        shoot(maps, x)
        wiggle = [(x + 40 * math.sin(2 * math.pi * t / 160), ROW_Y + 30 + t) for t in range(0, 321, 4)]
        root(maps, [*wiggle, (x, ROW_Y + 520)])  # a root that wavers: a long path down
        tips[2] = (x, ROW_Y + 520)
        tips[3] = plant_at(maps, SLOTS[3], length=750, drift=0)
        root(maps, [(SLOTS[3], ROW_Y + 50), (x + 2, ROW_Y + 400)])  # the lateral, its tip on plant 2's root
        plants = run(maps, peaks=[tips[i] for i in range(5)])
        for i in range(5):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip, tips[i])

    def test_a_root_a_neighbours_lateral_touches_gets_its_lower_part_back_going_straight_on_flagged(self):
        # Plant 2's root swings left, then right across the plate; plant 3's lateral
        # touches it low down, where plant 3's start is nearer by the shortest paths, so
        # plant 3 owns its lower part and plant 2's own path ends on its lateral. The
        # detector is silent at plant 2's tip: its root going straight on past the lateral
        # is still its primary, taken back, and flagged.
        maps = blank()
        tips = {i: plant_at(maps, SLOTS[i], length=300, drift=0) for i in (0, 1, 4)}
        x = SLOTS[2]
        shoot(maps, x)
        bend, low = (x - 120, ROW_Y + 200), (x + 150, ROW_Y + 450)
        tips[2] = (x + 180, ROW_Y + 560)
        root(maps, [(x, ROW_Y + 30), bend, low, tips[2]])
        root(maps, [(x - 60, ROW_Y + 115), (x - 180, ROW_Y + 150)])  # its lateral, turning off
        tips[3] = plant_at(maps, SLOTS[3], length=700, drift=0)
        root(maps, [(SLOTS[3], ROW_Y + 100), (x + 96, ROW_Y + 400)])  # the lateral that touches it
        plants = run(maps, peaks=[tips[i] for i in (0, 1, 3, 4)])
        for i in range(5):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip, tips[i])
        assert plants[2].low_confidence and plants[2].reason.startswith("the tip detector does not confirm")

    def test_laterals_leaving_on_both_sides_at_one_point_are_not_a_crossing(self):
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        x = SLOTS[2]
        root(maps, [(x, ROW_Y + 250), (x - 70, ROW_Y + 320)])
        root(maps, [(x, ROW_Y + 250), (x + 70, ROW_Y + 320)])
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip
        assert plants[2].lateral_root_count == 2


class TestTheMouldRing:
    """The ring a dish mould leaves in the lid is segmented as faint root; it is no root
    to follow, but a root crossing it keeps its path."""

    @staticmethod
    def ring(maps: dict[str, np.ndarray], centre: tuple[int, int], radius_mm: float = 15.0) -> None:
        cv2.circle(maps["root"], centre, round(radius_mm * PPM), 0.6, 2)

    def test_a_root_ending_on_the_ring_ends_there_not_round_it(self):
        # Plant 2's tip touches the top of the ring and the detector is silent there (as
        # on dev plates): its root would run on round the ring (a loop: no end at all).
        maps = blank()
        tips = [plant_at(maps, x, length=350, drift=0) for x in SLOTS]
        self.ring(maps, (SLOTS[2], round(tips[2][1]) + 150))
        plants = run(maps, peaks=[t for i, t in enumerate(tips) if i != 2])
        assert near(plants[2].primary_root_tip, tips[2], 5), plants[2].primary_root_tip
        assert plants[2].primary_root_length_px == pytest.approx(350, rel=0.05)
        assert plants[2].low_confidence
        for i in (0, 1, 3, 4):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip)

    def test_roots_crossing_the_ring_keep_their_paths_to_their_tips(self):
        maps = blank()
        tips = [plant_at(maps, x, length=500, drift=0) for x in SLOTS]
        self.ring(maps, (760, 650))  # plants 2 and 3 cross it; their tips lie inside
        plants = run(maps, peaks=tips)
        for i in range(5):
            assert near(plants[i].primary_root_tip, tips[i], 4), (i, plants[i].primary_root_tip)
            assert plants[i].primary_root_length_px == pytest.approx(500, rel=0.03), i

    def test_a_root_curving_round_is_not_a_ring(self):
        # A root that curves through 90 degrees on one radius (more than any on dev plates)
        # is followed to its tip.
        maps = blank()
        tips = [plant_at(maps, x, length=300, drift=0) for x in SLOTS]
        x, y0 = SLOTS[2], ROW_Y + 330
        arc = [(x + 120 * (1 - math.cos(t)), y0 + 120 * math.sin(t)) for t in np.linspace(0, math.pi / 2, 40)]
        root(maps, [(x, ROW_Y + 30), *arc])
        tips[2] = arc[-1]
        plants = run(maps, peaks=tips)
        assert near(plants[2].primary_root_tip, tips[2], 4), plants[2].primary_root_tip


class TestBadInput:
    @pytest.mark.parametrize("case", ["empty dish", "only agar and drops", "one plant"])
    def test_every_expected_plant_is_reported_with_a_reason(self, case: str):
        maps = blank()
        if case == "only agar and drops":
            for x in range(150, 1300, 160):
                shoot(maps, x, 80, r=25)
        if case == "one plant":
            plant_at(maps, SLOTS[2])
        plants = run(maps)
        assert [p.plant for p in plants] == [0, 1, 2, 3, 4]
        missing = [p for p in plants if not p.has_primary_tip]
        assert len(missing) == (4 if case == "one plant" else 5)
        assert all(p.low_confidence and p.reason for p in missing)

    def test_another_plant_count_from_the_manifest(self):
        maps = blank()
        for x in SLOTS:
            plant_at(maps, x)
        assert len(run(maps, n=3)) == 3
        assert len(run(maps, n=8)) == 8


class TestTheRootMask:
    def test_is_exactly_the_libraries_hysteresis_and_closing(self):
        """The plant step's root mask (OpenCV, for speed) equals what skimage's
        apply_hysteresis_threshold and scipy's 3x3 binary_closing give, on a noisy map."""
        from scipy import ndimage as ndi
        from skimage.filters import apply_hysteresis_threshold

        from hades_perception.inference.plants.graph import _root_mask
        from hades_perception.inference.plants.thresholds import ROOT_LOW

        rng = np.random.default_rng(5)
        prob = ndi.gaussian_filter(rng.random((300, 420)).astype(np.float32), 2.0)
        prob = (prob - prob.min()) / (prob.max() - prob.min())
        ev = Evidence(prob, 0.55, None, 0.5, None, 0.5, None, None, 4, np.zeros((0, 3)))
        want = apply_hysteresis_threshold(prob, min(ROOT_LOW, 0.55), 0.55)
        want = ndi.binary_closing(want, structure=np.ones((3, 3), bool)) | want
        got = _root_mask(ev)
        assert want.any() and not want.all()
        assert np.array_equal(got, want)

    def test_is_thinned_piece_by_piece_to_exactly_the_libraries_skeleton(self):
        """Thinning each 8-connected piece in its own box gives skimage's skeleton of the
        whole mask, also where pieces lie inside each other's boxes (a ring around a blob,
        roots crossing, noise)."""
        from skimage.morphology import skeletonize

        from hades_perception.inference.plants.graph import _thin

        rng = np.random.default_rng(7)
        mask = np.zeros((300, 420), np.uint8)
        cv2.circle(mask, (150, 150), 90, 1, thickness=9)  # a ring...
        cv2.circle(mask, (150, 150), 25, 1, thickness=-1)  # ...around a blob
        cv2.line(mask, (260, 20), (400, 280), 1, thickness=7)  # two roots crossing
        cv2.line(mask, (400, 20), (260, 280), 1, thickness=5)
        mask[rng.random(mask.shape) > 0.995] = 1  # specks
        mask = mask.astype(bool)
        want = skeletonize(mask)
        assert want.any() and np.array_equal(_thin(mask), want)
        assert not _thin(np.zeros((40, 60), bool)).any()

    @pytest.mark.parametrize("connectivity", [4, 8])
    def test_pieces_have_exactly_opencvs_labels_boxes_areas_and_centroids(self, connectivity):
        """The plant step's component statistics (from the foreground pixels alone, for
        speed) equal OpenCV's connectedComponentsWithStats for every piece, on sparse and
        dense masks, one pixel and none; the background keeps its area."""
        from hades_perception.inference.components import components_with_stats

        rng = np.random.default_rng(11)
        sparse = np.zeros((300, 420), np.uint8)
        for _ in range(30):
            x, y = (int(v) for v in rng.integers(0, 400, 2))
            cv2.line(sparse, (x, y % 300), (x + int(rng.integers(-90, 90)), y % 300 + 60), 1, int(rng.integers(1, 4)))
        dense = (rng.random((120, 90)) > 0.45).astype(np.uint8)
        one = np.zeros((30, 40), np.uint8)
        one[29, 39] = 1
        for mask in (sparse, dense, one, np.zeros((20, 30), np.uint8)):
            n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
            got = components_with_stats(mask, connectivity)
            assert got[0] == n and np.array_equal(got[1], labels)
            assert np.array_equal(got[2][1:], stats[1:]) and np.array_equal(got[3][1:], centroids[1:])
            assert got[2][0, cv2.CC_STAT_AREA] == stats[0, cv2.CC_STAT_AREA]
        assert components_with_stats(sparse, connectivity)[0] > 10


class TestWhereAGapIsBridged:
    """graph._gap_end: which node above a gap a root piece's top joins (PPM px per mm)."""

    @staticmethod
    def pick(d: list[float], long_piece: bool, supported: Set[int] = frozenset(), goes_on: bool = True) -> int | None:
        return _gap_end(np.array(d), long_piece, PPM, 30.0, lambda j: j in supported, lambda j: goes_on)

    def test_the_nearest_node_where_the_probabilities_support_the_gap(self):
        assert self.pick([4.0, 6.0], long_piece=False, supported={0}) == 0
        assert self.pick([12.0, 14.0], long_piece=False, supported={0}) == 0

    def test_bare_agar_is_crossed_only_by_a_long_piece_and_only_for_half_a_millimetre(self):
        assert self.pick([4.0], long_piece=True) == 0
        assert self.pick([4.0], long_piece=False) is None
        assert self.pick([6.0], long_piece=True) is None

    def test_a_long_piece_may_join_a_node_a_little_farther_whose_gap_is_supported(self):
        assert self.pick([6.0, 8.0], long_piece=True, supported={1}) == 1  # 0.2 mm farther
        assert self.pick([6.0, 8.0], long_piece=False, supported={1}) is None
        assert self.pick([6.0, 10.0], long_piece=True, supported={1}) is None  # 0.4 mm farther

    def test_over_a_millimetre_the_gap_must_go_on_in_the_roots_direction(self):
        assert self.pick([12.0], long_piece=True, supported={0}, goes_on=False) is None
        assert self.pick([8.0], long_piece=True, supported={0}, goes_on=False) == 0
