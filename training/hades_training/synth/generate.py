"""Writes synthetic Hades plates in the Hades dataset layout, with exact ground truth.

Layout (read by hades_training.data.hades_folder and other tools):
  DIR/images/<stem>.png                                        RGB; 8-bit grey in some `realistic` sets
  DIR/masks/<stem>_{root,shoot,seed,occluded_root}_mask.tif   uint8 0/1, image size
  DIR/landmarks/<stem>.json
  DIR/synth.json                                                how the set was made

Each plate has its own random stream derived from (seed, plate index), so a plate
is the same whatever --count is and plates can be drawn in parallel.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hades_training.synth.appearance import Appearance, appearance_for
from hades_training.synth.plants import Dish, Seedling, make_seedlings
from hades_training.synth.realistic import Layout, layout, plate_set, render_realistic
from hades_training.synth.render import CLASSES, HEIGHT, WIDTH, make_dish, render_plate

log = logging.getLogger(__name__)
GENERATOR_VERSION = "1"
PLATES_PER_EXPERIMENT = 4  # plates of one synthetic "experiment" share a split


@dataclass(frozen=True)
class Plate:
    stem: str
    image: np.ndarray  # (H, W, 3) uint8 RGB, or (H, W) uint8 grey (some `realistic` sets)
    masks: dict[str, np.ndarray]  # class -> (H, W) uint8 0/1
    landmarks: dict[str, Any]


def _xy(p: tuple[float, float] | np.ndarray) -> list[float]:
    return [round(float(p[0]), 2), round(float(p[1]), 2)]


def plate_landmarks(dish: Dish, seedlings: list[Seedling], width: int, height: int) -> dict[str, Any]:
    plants = []
    for s in seedlings:
        plants.append(
            {
                "index": s.index,
                "primary_root_tip": _xy(s.primary.tip),
                "seed": _xy(s.seed_centre),
                "shoot_centre": _xy(s.shoot_centre),
                # Tips of the other (lateral) roots; the primary tip is given above.
                "root_tips": [_xy(r.tip) for r in s.roots[1:]],
                "primary_root_length_px": round(s.primary.length, 2),
            }
        )
    return {
        "width": width,
        "height": height,
        "px_per_mm": round(dish.px_per_mm, 4),
        "dish_px": [round(dish.x0, 1), round(dish.y0, 1), round(dish.x1, 1), round(dish.y1, 1)],
        "plants": plants,
    }


def make_plate(
    seed: int, index: int, look: Appearance, prefix: str = "synth", width: int = WIDTH, height: int = HEIGHT
) -> Plate:
    """One plate, fully determined by (seed, index, look, size)."""
    if look.realistic:
        return make_realistic_plate(seed, index, look, prefix, width, height)
    rng = np.random.default_rng([seed, index])
    dish = make_dish(rng, width, height)
    seedlings = make_seedlings(rng, dish)
    image, masks = render_plate(rng, dish, seedlings, look, width, height)
    experiment = index // PLATES_PER_EXPERIMENT
    stem = f"{prefix}_s{seed}_exp{experiment:03d}_{index:04d}"
    return Plate(stem, image, masks, plate_landmarks(dish, seedlings, width, height))


def realistic_layout(
    seed: int, index: int, look: Appearance, width: int = WIDTH, height: int = HEIGHT
) -> tuple[Layout, np.random.Generator]:
    """What a `realistic` plate will show (set, conditions, dish, crop, seedlings),
    without drawing it, and the plate's random stream positioned to draw it."""
    rng = np.random.default_rng([seed, index])
    return layout(rng, plate_set(seed, index // PLATES_PER_EXPERIMENT), look, width, height), rng


def make_realistic_plate(
    seed: int, index: int, look: Appearance, prefix: str = "synth", width: int = WIDTH, height: int = HEIGHT
) -> Plate:
    """A plate of the `realistic` preset (synth/realistic.py). `width` x `height` is the
    camera frame; the image is that frame or, for cropped sets, the dish cut out of it,
    with masks and landmarks in the image's own pixels."""
    lay, rng = realistic_layout(seed, index, look, width, height)
    grey, masks, ring = render_realistic(rng, lay)
    image = grey if lay.set.grey else np.repeat(grey[:, :, None], 3, axis=2)
    out_w, out_h = lay.size
    landmarks = plate_landmarks(lay.dish, lay.seedlings, out_w, out_h)
    for entry, s in zip(landmarks["plants"], lay.seedlings, strict=True):
        entry["stage"] = s.stage
        entry["seed_visible"] = s.seed_cover == "visible"
    landmarks["realistic"] = {
        "frame": [width, height],
        "crop_px": list(lay.crop) if lay.crop else None,  # (x0, y0, x1, y1) in the frame
        "channels": 1 if lay.set.grey else 3,
        "stage": lay.set.stage,
        "condensation": lay.drops,
        "mould_mark": ring,
        "appearance": {k: round(v, 4) for k, v in lay.look.to_dict().items() if not isinstance(v, bool)},
    }
    experiment = index // PLATES_PER_EXPERIMENT
    return Plate(f"{prefix}_s{seed}_exp{experiment:03d}_{index:04d}", image, masks, landmarks)


def write_plate(plate: Plate, out: Path) -> None:
    """Files first, landmarks last: a plate with a landmarks file is complete.
    A 2-D image is written as an 8-bit grey (single-channel) PNG."""
    pixels = plate.image if plate.image.ndim == 2 else cv2.cvtColor(plate.image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(out / "images" / f"{plate.stem}.png"), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    for cls in CLASSES:
        cv2.imwrite(str(out / "masks" / f"{plate.stem}_{cls}_mask.tif"), plate.masks[cls])
    tmp = out / "landmarks" / f"{plate.stem}.json.tmp"
    tmp.write_text(json.dumps(plate.landmarks, indent=1))
    tmp.replace(out / "landmarks" / f"{plate.stem}.json")


def _make_and_write(args: tuple[int, int, Appearance, str, int, int, str]) -> str:
    seed, index, look, prefix, width, height, out = args
    plate = make_plate(seed, index, look, prefix, width, height)
    write_plate(plate, Path(out))
    return plate.stem


def generate(
    out: Path,
    count: int,
    seed: int,
    difficulty: str | float = "normal",
    split: str | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    workers: int = 1,
) -> list[str]:
    """Generate `count` plates into `out` (or `out/<split>`). Returns the stems."""
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if width < 200 or height < 200:
        raise ValueError(f"plate size must be at least 200x200 px, got {width}x{height}")
    look = appearance_for(difficulty)
    target = out / split if split else out
    for sub in ("images", "masks", "landmarks"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    prefix = f"synth_{split}" if split else "synth"
    jobs = [(seed, i, look, prefix, width, height, str(target)) for i in range(count)]
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            stems = list(pool.map(_make_and_write, jobs))
    else:
        stems = [_make_and_write(j) for j in jobs]
    elapsed = time.perf_counter() - t0
    (target / "synth.json").write_text(
        json.dumps(
            {
                "generator": "hades_training.synth",
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "count": count,
                "split": split,
                "difficulty": str(difficulty),
                "appearance": look.to_dict(),
                "width": width,
                "height": height,
                "plates_per_experiment": PLATES_PER_EXPERIMENT,
                "stems": stems,
            },
            indent=1,
        )
    )
    log.info("wrote %d plates to %s in %.1f s (%.2f s per plate)", count, target, elapsed, elapsed / count)
    return stems
