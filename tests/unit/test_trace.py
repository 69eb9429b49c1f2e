"""The plant step's last step (plants/trace.py): a primary tip the tip detector does not
confirm is followed on along the faint dark line its root makes in the photograph, on
noisy agar drawn here at Hades' scale (21 px per mm; young tips 3 px wide, 10 grey levels
darker than the agar, the root above them 16); nothing is followed where the agar is
bare, across the root's way, or past TRACE_MM, and a confirmed tip is left alone."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hades_perception.inference.plants import Plant
from hades_perception.inference.plants.thresholds import TRACE_MM, TRACE_STEP_MM
from hades_perception.inference.plants.trace import trace_tips

PPM = 21.0
AGAR = 170
LOW = 0.5  # the calibration's low-confidence line


def agar(seed: int = 0, shape: tuple[int, int] = (700, 500)) -> np.ndarray:
    """Agar: grey 170 with the sensor's noise (sd 2.5) and a slow shading across it."""
    rng = np.random.default_rng(seed)
    h, w = shape
    shading = np.linspace(-6, 6, w)[None, :]
    return np.clip(AGAR + shading + rng.normal(0, 2.5, (h, w)), 0, 255).astype(np.float32)


def draw(grey: np.ndarray, points: list[tuple[float, float]], darker: float, width: int = 3) -> None:
    """A root drawn `darker` grey levels below the agar along `points`."""
    mask = np.zeros(grey.shape, np.uint8)
    cv2.polylines(mask, [np.array(points, np.int32).reshape(-1, 1, 2)], False, 1, width)
    grey[mask > 0] -= darker


def line(start: tuple[float, float], angle_deg: float, mm: float) -> list[tuple[float, float]]:
    """Points every pixel from `start`, `mm` long, at `angle_deg` from straight down."""
    a = math.radians(angle_deg)
    return [(start[0] + t * math.sin(a), start[1] + t * math.cos(a)) for t in np.arange(0.0, mm * PPM + 0.5, 1.0)]


def plant(path: list[tuple[float, float]], confidence: float = 0.1) -> Plant:
    """A plant whose primary root the model found along `path` (base to tip)."""
    length = float(np.sum(np.hypot(*np.diff(np.array(path), axis=0).T)))
    return Plant(
        0,
        confidence,
        confidence < LOW,
        base=path[0],
        primary_root_tip=path[-1],
        primary_root_length_px=length,
        primary_root_length_mm=length / PPM,
        total_root_length_px=length,
        reason="the tip detector does not confirm this tip (0.10)" if confidence < LOW else "",
        primary_path=[*path[::5], path[-1]],
    )


def tip(p: Plant) -> tuple[float, float]:
    assert p.primary_root_tip is not None
    return p.primary_root_tip


def length(p: Plant) -> float:
    assert p.primary_root_length_px is not None
    return p.primary_root_length_px


def young_root(grey: np.ndarray, angle: float = 0.0, faint_mm: float = 2.0) -> tuple[list, tuple[float, float]]:
    """A root 8 mm long from (250, 40) whose last `faint_mm` only the photograph shows:
    the model's path (its first part) and the true tip."""
    found = line((250.0, 40.0), angle, 8.0 - faint_mm)
    draw(grey, found, 16)
    faint = line(found[-1], angle, faint_mm)
    draw(grey, faint, 10)
    return found, faint[-1]


class TestAFaintTipIsFollowed:
    @pytest.mark.parametrize("seed", range(5))
    def test_to_within_half_a_millimetre_of_where_the_line_ends(self, seed: int) -> None:
        grey = agar(seed)
        found, true_tip = young_root(grey)
        (p,) = trace_tips(grey, [plant(found)], PPM, LOW)
        assert math.dist(tip(p), true_tip) <= 0.5 * PPM
        assert math.dist(tip(plant(found)), true_tip) > 1.5 * PPM  # the model's end was a miss

    def test_path_lengths_and_reason_follow_and_the_tip_stays_flagged(self) -> None:
        grey = agar()
        found, _ = young_root(grey)
        before = plant(found)
        (p,) = trace_tips(grey, [before], PPM, LOW)
        added = length(p) - length(before)
        assert 1.5 * PPM <= added <= 2.5 * PPM
        assert p.primary_root_length_mm == pytest.approx(length(p) / PPM)
        assert p.total_root_length_px == pytest.approx(before.total_root_length_px + added)
        assert p.primary_path[: len(before.primary_path)] == before.primary_path
        assert p.primary_path[-1] == p.primary_root_tip
        assert p.low_confidence and p.confidence == before.confidence
        assert p.reason.startswith(before.reason) and "followed in the image" in p.reason

    @pytest.mark.parametrize("angle", [-35.0, 25.0])
    def test_a_root_growing_at_a_slant(self, angle: float) -> None:
        grey = agar(1)
        found, true_tip = young_root(grey, angle)
        (p,) = trace_tips(grey, [plant(found)], PPM, LOW)
        assert math.dist(tip(p), true_tip) <= 0.5 * PPM

    def test_a_tip_that_bends_gently(self) -> None:
        grey = agar(2)
        found = line((250.0, 40.0), 0.0, 6.0)
        draw(grey, found, 16)
        bend = line(found[-1], 10.0, 1.0)
        bend += line(bend[-1], 20.0, 1.0)[1:]
        draw(grey, bend, 10)
        (p,) = trace_tips(grey, [plant(found)], PPM, LOW)
        assert math.dist(tip(p), bend[-1]) <= 0.5 * PPM


class TestWhatIsNotFollowed:
    def test_bare_agar_past_the_end(self) -> None:
        grey = agar(3)
        found = line((250.0, 40.0), 0.0, 6.0)
        draw(grey, found, 16)
        before = plant(found)
        assert trace_tips(grey, [before], PPM, LOW) == [before]

    def test_a_root_across_the_way_just_ahead(self) -> None:
        grey = agar(4)
        found = line((250.0, 40.0), 0.0, 6.0)
        draw(grey, found, 16)
        end = found[-1]
        draw(grey, line((end[0] - 60, end[1] + 0.5 * PPM), 90.0, 6.0), 16)  # a neighbour's lateral, crosswise
        (p,) = trace_tips(grey, [plant(found)], PPM, LOW)
        assert math.dist(tip(p), end) <= 0.75 * PPM

    def test_a_tip_the_detector_confirms(self) -> None:
        grey = agar(5)
        found, _ = young_root(grey)
        sure = plant(found, confidence=0.9)
        assert trace_tips(grey, [sure], PPM, LOW) == [sure]

    def test_more_than_trace_mm(self) -> None:
        grey = agar(6, (900, 500))
        found, _ = young_root(grey, faint_mm=0.0)
        draw(grey, line(found[-1], 0.0, 10.0), 10)  # a line running on far: a fibre or a scratch
        before = plant(found)
        (p,) = trace_tips(grey, [before], PPM, LOW)
        assert length(p) - length(before) <= (TRACE_MM + TRACE_STEP_MM) * PPM

    def test_a_plant_with_no_root_or_a_stub(self) -> None:
        grey = agar(7)
        none = Plant(1, 0.0, True, reason="no root found below the plant")
        stub = plant([(250.0, 40.0), (250.0, 45.0)])
        assert trace_tips(grey, [none, stub], PPM, LOW) == [none, stub]

    def test_past_the_image_edge(self) -> None:
        grey = agar(8, (190, 500))
        found, _ = young_root(grey)  # its faint tip runs off the bottom of this image
        (p,) = trace_tips(grey, [plant(found)], PPM, LOW)
        assert found[-1][1] < tip(p)[1] <= 189  # followed to the edge
