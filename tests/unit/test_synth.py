"""The synthetic plate generator: deterministic, in the Hades layout, and matching
the facts of ../shared/HADES.md that the rest of the project relies on."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_training.synth.appearance import PRESETS, appearance_for
from hades_training.synth.generate import make_plate
from hades_training.synth.render import CLASSES, HEIGHT, WIDTH


@pytest.fixture(scope="module")
def full_plate():
    """One full-size plate, the way the CLI makes it."""
    return make_plate(seed=11, index=0, look=appearance_for("normal"))


def test_same_seed_gives_identical_plates_and_different_seeds_differ():
    a = make_plate(5, 2, PRESETS["normal"], width=840, height=601)
    b = make_plate(5, 2, PRESETS["normal"], width=840, height=601)
    c = make_plate(6, 2, PRESETS["normal"], width=840, height=601)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in CLASSES)
    assert a.landmarks == b.landmarks
    assert not np.array_equal(a.image, c.image)


def test_plate_is_hades_sized_rgb_with_nearly_equal_channels(full_plate):
    img = full_plate.image
    assert img.shape == (HEIGHT, WIDTH, 3) == (3006, 4202, 3)
    assert img.dtype == np.uint8
    channel_gap = np.abs(img[..., 0].astype(int) - img[..., 2].astype(int))
    assert np.percentile(channel_gap, 99) <= 4


def test_surround_is_black_and_agar_grey_as_measured_on_hades(full_plate):
    grey = full_plate.image.mean(axis=2)
    x0, y0, x1, y1 = full_plate.landmarks["dish_px"]
    assert 680 < x0 < 760 and 3500 < x1 < 3580 and 80 < y0 < 160 and 2820 < y1 < 2900
    surround = grey[:, :400]
    assert np.percentile(surround, 95) <= 10
    agar = grey[int(y0) + 1500 : int(y1) - 200, int(x0) + 200 : int(x1) - 200]
    p5, p95 = np.percentile(agar, [5, 95])
    assert p5 >= 150 and p95 <= 200, (p5, p95)


def test_intensity_bar_sits_on_the_right_edge(full_plate):
    grey = full_plate.image.mean(axis=2)
    bar = grey[300:2700, 4110:4202]
    assert bar.max() > 200 and bar.min() < 20  # a ramp from white to black
    assert grey[300:2700, 3700:4100].max() < 30  # nothing between dish and bar


def test_five_plants_in_a_row_in_the_upper_quarter(full_plate):
    plants = full_plate.landmarks["plants"]
    assert [p["index"] for p in plants] == [0, 1, 2, 3, 4]
    xs = [p["seed"][0] for p in plants]
    assert xs == sorted(xs)
    assert all(500 <= b - a <= 650 for a, b in itertools.pairwise(xs))
    assert all(350 <= p["seed"][1] <= 650 for p in plants)
    assert 20 < full_plate.landmarks["px_per_mm"] < 26


def test_primary_roots_grow_down_from_the_seed_with_realistic_length(full_plate):
    for p in full_plate.landmarks["plants"]:
        assert 500 <= p["primary_root_length_px"] <= 1400
        assert p["primary_root_tip"][1] > p["seed"][1] + 400


def test_masks_are_binary_image_sized_and_exact_at_the_landmarks(full_plate):
    masks = full_plate.masks
    for cls in CLASSES:
        assert masks[cls].shape == (HEIGHT, WIDTH)
        assert set(np.unique(masks[cls])) <= {0, 1}
    root = masks["root"] | masks["occluded_root"]
    near = cv2.dilate(root, np.ones((7, 7), np.uint8))
    for p in full_plate.landmarks["plants"]:
        x, y = map(round, p["primary_root_tip"])
        assert near[y, x], "primary tip lies on its root"
        sx, sy = map(round, p["seed"])
        assert masks["seed"][sy, sx]


def test_grey_levels_of_roots_and_shoots_match_hades(full_plate):
    grey = full_plate.image.mean(axis=2)
    root_core = cv2.erode(full_plate.masks["root"], np.ones((3, 3), np.uint8)) > 0
    shoot_core = cv2.erode(full_plate.masks["shoot"], np.ones((5, 5), np.uint8)) > 0
    assert 100 <= np.median(grey[root_core]) <= 145
    assert 25 <= np.median(grey[shoot_core]) <= 70


def test_harder_presets_blur_and_add_noise():
    easy = make_plate(3, 0, PRESETS["easy"], width=1050, height=752).image.mean(axis=2)
    hard = make_plate(3, 0, PRESETS["hard"], width=1050, height=752).image.mean(axis=2)
    agar = np.s_[400:600, 300:700]
    assert hard[agar].std() > easy[agar].std()  # more noise and condensation
    blurred = make_plate(3, 0, PRESETS["drift_blur"], width=1050, height=752).image.mean(axis=2)
    normal = make_plate(3, 0, PRESETS["normal"], width=1050, height=752).image.mean(axis=2)
    assert cv2.Laplacian(blurred, cv2.CV_64F).var() < cv2.Laplacian(normal, cv2.CV_64F).var()


def test_difficulty_accepts_numbers_between_presets_and_rejects_nonsense():
    assert appearance_for(0.0) == PRESETS["easy"]
    assert appearance_for("1") == PRESETS["hard"]
    mid = appearance_for(0.25)
    assert PRESETS["easy"].noise_sigma < mid.noise_sigma < PRESETS["normal"].noise_sigma
    with pytest.raises(ValueError, match="unknown difficulty"):
        appearance_for("foggy")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        appearance_for(1.5)


def test_cli_writes_the_hades_layout_into_the_split_folder(tmp_path: Path):
    cmd = [
        sys.executable,
        "-m",
        "hades_training.cli",
        "synth",
        "--out",
        str(tmp_path),
        "--count",
        "2",
        "--seed",
        "3",
        "--split",
        "test",
        "--width",
        "840",
        "--height",
        "601",
        "--difficulty",
        "hard",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    split = tmp_path / "test"
    stems = sorted(p.stem for p in (split / "images").glob("*.png"))
    assert stems == ["synth_test_s3_exp000_0000", "synth_test_s3_exp000_0001"]
    for stem in stems:
        for cls in CLASSES:
            assert (split / "masks" / f"{stem}_{cls}_mask.tif").is_file()
        lm = json.loads((split / "landmarks" / f"{stem}.json").read_text())
        assert {"width", "height", "px_per_mm", "plants"} <= lm.keys()
        assert {"index", "primary_root_tip", "seed", "shoot_centre", "root_tips", "primary_root_length_px"} <= lm[
            "plants"
        ][0].keys()
    meta = json.loads((split / "synth.json").read_text())
    assert meta["seed"] == 3 and meta["split"] == "test" and meta["difficulty"] == "hard"


def test_cli_rejects_a_bad_count_clearly(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "hades_training.cli", "synth", "--out", str(tmp_path), "--count", "0"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "--count must be at least 1" in r.stderr
