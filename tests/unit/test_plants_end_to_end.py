"""The shipped model end to end on whole plates: every expected plant is reported, with
its traits in the predict JSON and its roots in RSML that the project's RSML reader
reads back; bad input (agar only, no dish, a dish cut at the edge, a dish crop, grey
8-bit) gives a result for every plant with flags and reasons, never an exception."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_perception.cli import main as perception_cli
from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.plants.plant import OFF_IMAGE
from hades_training.data.rootnav import parse_rsml
from hades_training.synth.appearance import PRESETS
from hades_training.synth.generate import make_plate
from tests.bundles import SHIPPED

PLANT_KEYS = {
    "plant", "base", "primary_root_tip", "primary_root_length_px", "primary_root_length_mm", "total_root_length_px",
    "lateral_root_count", "shoot_area_px", "confidence", "low_confidence", "reason",
}  # fmt: skip


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_bundle(SHIPPED, ("CPUExecutionProvider",))


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return make_plate(5, 0, PRESETS["normal"]).image  # full size, seed 5


def test_a_plate_gives_five_plants_with_traits_in_the_json_and_rsml_read_back(plate: np.ndarray, tmp_path: Path):
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert (
        perception_cli(["predict", str(tmp_path / "plate.png"), "--model", str(SHIPPED), "--out", str(out), "--rsml"])
        == 0
    )
    d = json.loads((out / "plate.json").read_text())
    plants = d["plants"]
    assert [p["plant"] for p in plants] == [0, 1, 2, 3, 4] and all(set(p) == PLANT_KEYS for p in plants)
    found = [p for p in plants if p["primary_root_tip"]]
    assert len(found) >= 4
    for p in found:
        assert p["primary_root_length_px"] > 100 and p["primary_root_length_mm"] == pytest.approx(
            p["primary_root_length_px"] / d["calibration"]["px_per_mm"], rel=1e-3
        )
        tip = next(lm for lm in d["landmarks"] if lm["kind"] == "primary_root_tip" and lm["plant"] == p["plant"])
        assert [tip["x"], tip["y"]] == p["primary_root_tip"]  # the landmark is the plant's tip
    xs = [p["base"][0] for p in found]
    assert xs == sorted(xs)  # numbered left to right
    roots = parse_rsml(out / "plate.rsml")  # the project's RSML reader (training, RootNav)
    assert len(roots) == len(found)
    for r, p in zip(roots, found, strict=True):
        assert math.dist(r.points[0], p["base"]) < 1 and math.dist(r.points[-1], p["primary_root_tip"]) < 1
        length = float(np.linalg.norm(np.diff(r.points, axis=0), axis=1).sum())
        assert length == pytest.approx(p["primary_root_length_px"], rel=0.05)
        assert len(r.children) == p["lateral_root_count"]


@pytest.mark.parametrize(
    "case",
    ["agar only", "black, no dish", "dish cut at the right edge", "cropped to the dish", "grey 8-bit"],
)
def test_bad_or_unusual_input_reports_every_plant_and_never_raises(case: str, pipe: Pipeline, plate: np.ndarray):
    rng = np.random.default_rng(0)
    image = {
        "agar only": rng.normal(172, 4, (1500, 1500, 3)).clip(0, 255).astype(np.uint8),
        "black, no dish": np.zeros((800, 1000, 3), np.uint8),
        "dish cut at the right edge": plate[:, :2600],
        "cropped to the dish": plate[90:2870, 700:3580],
        "grey 8-bit": cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY),
    }[case]
    pred = pipe(image)
    assert [p.plant for p in pred.plants] == [0, 1, 2, 3, 4]
    for p in pred.plants:
        if not p.has_primary_tip:
            assert p.low_confidence and p.reason
    found = sum(p.has_primary_tip for p in pred.plants)
    if case in ("agar only", "black, no dish"):
        assert found == 0
    if case in ("cropped to the dish", "grey 8-bit"):
        assert found >= 4
    json.dumps(pred.to_json())  # the JSON form exists for every case


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_dish_cut_by_the_image_edge_keeps_its_plants_numbers_and_its_scale(side: str, pipe: Pipeline):
    # A crop that cuts the dish between two plants (a tool cropping to part of a dish, or
    # a camera off centre): the plants still in view keep their numbers, the one outside
    # is reported as outside, and px/mm comes from the agar's height (it was the visible
    # width's, 0.7 of the real one, and the numbers shifted).
    s = make_plate(5, 0, PRESETS["normal"])
    truth = sorted(s.landmarks["plants"], key=lambda p: p["index"])
    gone = 0 if side == "left" else 4
    keep = 1 if side == "left" else 3
    cut = round((truth[gone]["seed"][0] + truth[keep]["seed"][0]) / 2)
    image, dx = (s.image[:, cut:], cut) if side == "left" else (s.image[:, :cut], 0)
    pred = pipe(image)
    assert pred.dish is not None and pred.dish.cut == (side,)
    assert pred.px_per_mm == pytest.approx(s.landmarks["px_per_mm"], rel=0.03)
    assert [p.plant for p in pred.plants] == [0, 1, 2, 3, 4]
    outside = pred.plants[gone]
    assert not outside.has_primary_tip and outside.low_confidence and outside.reason == OFF_IMAGE
    ppm = s.landmarks["px_per_mm"]
    found = [p for p in pred.plants if p.primary_root_tip is not None]
    assert len(found) >= 3
    for p in found:  # each tip is its own plant's, under the plant's true number
        assert p.primary_root_tip is not None
        x, y = p.primary_root_tip[0] + dx, p.primary_root_tip[1]
        nearest = min(truth, key=lambda t: math.dist((x, y), t["primary_root_tip"]))
        assert nearest["index"] == p.plant and math.dist((x, y), nearest["primary_root_tip"]) <= ppm, p
