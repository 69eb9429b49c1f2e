"""The synthetic plate generator: deterministic, in the Hades layout, and matching
the facts of ../shared/HADES.md that the rest of the project relies on."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_training.data.hades_folder import HadesFolder
from hades_training.synth.appearance import PRESETS, appearance_for
from hades_training.synth.generate import PLATES_PER_EXPERIMENT, make_plate, realistic_layout, write_plate
from hades_training.synth.realistic import Layout, plate_set
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


# --- the realistic preset: what real Hades plates show (../shared/HADES.md) ---------------

REALISTIC = PRESETS["realistic"]


def _first_realistic(seed: int, want: Callable[[Layout], bool]) -> int:
    """Index of the first realistic plate whose layout (cheap: no drawing) is as wanted."""
    return next(i for i in range(400) if want(realistic_layout(seed, i, REALISTIC)[0]))


def _grey(image: np.ndarray) -> np.ndarray:
    return (image if image.ndim == 2 else image[..., 0]).astype(np.float32)


def _plain_agar(grey: np.ndarray, block: int = 64) -> np.ndarray:
    """The agar without anything on it: the median of each 64x64 block, smoothly upsampled."""
    h, w = grey.shape
    hb, wb = h // block, w // block
    cells = grey[: hb * block, : wb * block].reshape(hb, block, wb, block).transpose(0, 2, 1, 3)
    med = np.median(cells.reshape(hb, wb, -1), axis=2).astype(np.float32)
    return cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR)


def _any_mask(masks: dict[str, np.ndarray]) -> np.ndarray:
    return ((masks["root"] | masks["shoot"] | masks["seed"] | masks["occluded_root"]) > 0).astype(np.uint8)


@pytest.fixture(scope="module")
def young_plate():
    """A full-resolution realistic plate of young seedlings, cropped to the dish, with
    condensation in a band across the top (about 1 s to draw)."""
    index = _first_realistic(0, lambda lay: lay.set.stage == "young" and lay.set.crop and lay.drops == "band")
    return make_plate(0, index, REALISTIC), realistic_layout(0, index, REALISTIC)[0]


def test_realistic_plates_are_deterministic_per_seed_and_each_draws_its_own_conditions():
    a = make_plate(5, 1, REALISTIC, width=840, height=601)
    b = make_plate(5, 1, REALISTIC, width=840, height=601)
    c = make_plate(6, 1, REALISTIC, width=840, height=601)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in CLASSES)
    assert a.landmarks == b.landmarks
    assert not np.array_equal(a.image, c.image)
    # Domain randomisation: every plate has its own light, drops, blur, noise and contrast.
    looks = [realistic_layout(5, i, REALISTIC)[0].look for i in range(12)]
    for knob in ("blur_sigma", "contrast", "noise_sigma", "vignetting", "band_strength", "condensation", "dust"):
        values = [getattr(look, knob) for look in looks]
        assert len(set(values)) == len(looks), knob
        assert max(values) > 1.3 * min(values), knob
    assert {realistic_layout(5, i, REALISTIC)[0].drops for i in range(40)} == {"band", "whole", "light"}


def test_realistic_distractors_are_drawn_but_only_plants_are_masked(young_plate):
    plate, _ = young_plate
    grey = _grey(plate.image)
    diff = grey - _plain_agar(grey)
    anym = _any_mask(plate.masks)
    # Root hairs (up to about 22 px long) and the blur halo stay within 25 px of the masks.
    plants = cv2.dilate(anym, np.ones((51, 51), np.uint8)) > 0
    x0, y0, x1, y1 = map(int, plate.landmarks["dish_px"])
    inside = np.zeros_like(plants)
    inside[y0 + 60 : y1 - 60, x0 + 60 : x1 - 60] = True  # clear of the rim and the corners
    away = inside & ~plants
    dark, bright = away & (diff < -30), away & (diff > 15)
    assert dark.sum() > 200, "dust, fibres and debris, far from every plant"
    assert bright.sum() > 2000, "bright rims of drops"
    deepest_tip = int(max(p["primary_root_tip"][1] for p in plate.landmarks["plants"]))
    assert dark[deepest_tip + 200 :].sum() > 50, "debris far below the plants"
    third = (y1 - y0) // 3
    assert bright[y0 : y0 + third].mean() > 5 * bright[y1 - third : y1].mean(), "drops in a band at the top"
    # Every masked region holds a seed: nothing but the five plants is in any mask.
    n, labels = cv2.connectedComponents(cv2.dilate(anym, np.ones((15, 15), np.uint8)))
    seeds = {int(labels[round(p["seed"][1]), round(p["seed"][0])]) for p in plate.landmarks["plants"]}
    assert seeds == set(range(1, n))


def test_young_seedlings_have_short_roots_thin_faint_tips_and_fuzzy_upper_roots(young_plate):
    plate, _ = young_plate
    grey = _grey(plate.image)
    anym = _any_mask(plate.masks)
    plants = cv2.dilate(anym, np.ones((51, 51), np.uint8)) > 0  # with their root hairs
    root = (plate.masks["root"] | plate.masks["occluded_root"]).astype(np.uint8)
    half_width = cv2.distanceTransform(root, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    contrasts: list[float] = []
    upper_fuzz: list[float] = []
    lower_fuzz: list[float] = []
    for p in plate.landmarks["plants"]:
        assert p["stage"] == "young"
        assert 300 <= p["primary_root_length_px"] <= 600
        tx, ty = p["primary_root_tip"]
        d2 = (xx - tx) ** 2 + (yy - ty) ** 2
        assert half_width[d2 <= 36].max() <= 2.3, "tip 2-3 px wide"
        agar = np.median(grey[(d2 > 64) & (d2 < 1600) & ~plants])
        contrasts.append(agar - grey[(root > 0) & (d2 <= 9)].mean())
        # Root hairs: the agar right beside the upper root is darker than beside the lower root.
        sy = p["seed"][1]
        for a, b, out in ((0.08, 0.45, upper_fuzz), (0.65, 0.9, lower_fuzz)):
            part = ((plate.masks["root"] > 0) & (yy > sy + a * (ty - sy)) & (yy < sy + b * (ty - sy))).astype(np.uint8)
            beside = (cv2.dilate(part, np.ones((25, 25), np.uint8)) > 0) & (cv2.dilate(anym, np.ones((5, 5))) == 0)
            farther = (cv2.dilate(part, np.ones((81, 81), np.uint8)) > 0) & ~plants
            out.append(np.median(grey[farther]) - np.median(grey[beside]))
    assert all(c < 15 for c in contrasts), contrasts  # 5-10 grey levels asked, plus noise
    assert np.median(contrasts) > 2, "faint, not invisible"
    assert np.mean(upper_fuzz) > np.mean(lower_fuzz) + 1.5, (upper_fuzz, lower_fuzz)


def test_seeds_hide_in_the_hypocotyl_base_or_under_the_shoot_instead_of_showing_as_blobs(young_plate):
    plate, _ = young_plate
    grey, masks = _grey(plate.image), plate.masks
    shoot_core = cv2.erode(masks["shoot"], np.ones((5, 5), np.uint8)) > 0
    hidden = [p for p in plate.landmarks["plants"] if not p["seed_visible"]]
    assert hidden
    for p in hidden:
        x, y = round(p["seed"][0]), round(p["seed"][1])
        win = np.s_[y - 40 : y + 40, x - 40 : x + 40]
        parts = cv2.connectedComponents(masks["seed"][win])[1]
        seed = parts == parts[40, 40]
        assert masks["seed"][y, x] and seed.sum() > 10, "the seed mask still marks the seed"
        assert masks["shoot"][win][seed].mean() >= 0.95, "covered by the hypocotyl or the shoot"
        around = shoot_core[win] & ~seed
        assert grey[win][seed].mean() > grey[win][around].mean() - 10, "no darker than the shoot it lies in"
    # Over many plates most seeds are hidden, both ways.
    covers = [s.seed_cover for i in range(12) for s in realistic_layout(0, i, REALISTIC)[0].seedlings]
    assert covers.count("visible") < 0.3 * len(covers) and {"hypocotyl", "shoot"} <= set(covers)


def test_old_seedlings_have_many_laterals_and_neighbours_roots_cross():
    layouts = [realistic_layout(0, i, REALISTIC)[0] for i in range(0, 96, 3)]
    old = [s for lay in layouts for s in lay.seedlings if s.stage == "old"]
    young = [s for lay in layouts for s in lay.seedlings if s.stage == "young"]
    assert old and young, "plates of both stages"
    assert np.mean([len(s.roots) - 1 for s in old]) >= 5
    assert np.mean([s.primary.length for s in old]) > 2 * np.mean([s.primary.length for s in young])
    crossing = 0
    for lay in layouts:
        w, h = lay.size
        drawn = []
        for s in lay.seedlings:
            canvas = np.zeros((h // 4, w // 4), np.uint8)
            cv2.polylines(canvas, [np.round(r.points).astype(np.int32) for r in s.roots], False, 1, 2, shift=2)
            drawn.append(canvas)
        crossing += any((a & b).any() for a, b in itertools.pairwise(drawn))
    assert crossing >= 3, "neighbours' roots cross on some plates"


def test_realistic_scale_is_19_to_23_px_per_mm_and_written_to_the_landmarks():
    ppm = [realistic_layout(0, i, REALISTIC)[0].dish.px_per_mm for i in range(0, 80, PLATES_PER_EXPERIMENT)]
    assert all(19 <= v <= 23 for v in ppm) and max(ppm) - min(ppm) > 2
    plate = make_plate(0, 0, REALISTIC, width=1050, height=752)  # a quarter-size frame: a quarter the scale
    assert 19 <= plate.landmarks["px_per_mm"] * WIDTH / 1050 <= 23
    x0, _, x1, _ = plate.landmarks["dish_px"]
    assert plate.landmarks["px_per_mm"] == pytest.approx((x1 - x0) / 120, abs=0.01)


def test_realistic_sets_come_as_full_frames_or_dish_crops_rgb_or_grey_and_the_reader_reads_them(tmp_path: Path):
    for sub in ("images", "masks", "landmarks"):
        (tmp_path / sub).mkdir()
    kinds: dict[tuple[bool, bool], int] = {}
    for e in range(40):
        s = plate_set(0, e)
        kinds.setdefault((s.crop, s.grey), e * PLATES_PER_EXPERIMENT)
    assert set(kinds) == {(False, False), (False, True), (True, False), (True, True)}
    for (crop, grey), index in kinds.items():
        plate = make_plate(0, index, REALISTIC, width=1050, height=752)
        write_plate(plate, tmp_path)
        on_disk = cv2.imread(str(tmp_path / "images" / f"{plate.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert on_disk is not None
        assert on_disk.dtype == np.uint8 and on_disk.ndim == (2 if grey else 3)
        if not grey:
            assert np.array_equal(on_disk[..., 0], on_disk[..., 1]) and np.array_equal(on_disk[..., 1], on_disk[..., 2])
        h, w = on_disk.shape[:2]
        if crop:  # the dish cut out: about 2600x2600 on a full frame
            assert 550 < w < 760 and 550 < h < 760, (w, h)
            assert plate.landmarks["realistic"]["crop_px"] is not None
        else:
            assert (w, h) == (1050, 752)
        assert (plate.landmarks["width"], plate.landmarks["height"]) == (w, h)
        x0, y0, x1, y1 = plate.landmarks["dish_px"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    reader = HadesFolder(tmp_path)
    assert len(reader) == 4
    for i in range(len(reader)):
        sample = reader[i]
        assert sample.image.ndim == 3 and sample.image.shape[2] == 3 and sample.image.dtype == np.uint8
        assert all(sample.masks[c].shape == sample.image.shape[:2] for c in CLASSES)
        assert sample.truth.source == "file" and len(sample.truth.plants) == 5
        assert sample.truth.px_per_mm is not None


def test_cli_draws_realistic_plates(tmp_path: Path):
    cmd = [sys.executable, "-m", "hades_training.cli", "synth", "--out", str(tmp_path), "--count", "2"]
    cmd += ["--seed", "4", "--width", "840", "--height", "601", "--difficulty", "realistic", "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True)
    meta = json.loads((tmp_path / "synth.json").read_text())
    assert meta["difficulty"] == "realistic" and meta["appearance"]["realistic"] is True
    assert len(HadesFolder(tmp_path)) == 2
