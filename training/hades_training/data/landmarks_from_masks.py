"""Root-tip and seed landmarks derived from masks, the way the Hades ground truth defines them.

Real Hades sets ship no tip points: a plant's root tips are the end points of its
root skeleton, and the primary root tip is the end of the longest path from the
plant's root base (../shared/HADES.md). The skeleton graph, the plants and their
paths come from the serving code's plant-structure step
(hades_perception.inference.plants), run on the true masks as certain probabilities
and without a tip detector: training, evaluation and serving share one definition.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage as ndi

from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants import Evidence, find_plants
from hades_training.data.sample import PlantTruth, Point

MAX_FULL_RES_PX = 2048  # wider masks are read at half resolution, as the model sees them
MIN_SEED_AREA_PX = 8


def derive_plants(
    root_mask: np.ndarray,
    seed_mask: np.ndarray | None = None,
    shoot_mask: np.ndarray | None = None,
    occluded_mask: np.ndarray | None = None,
    plants: int | None = None,
) -> list[PlantTruth]:
    """The plants the masks show, left to right, with primary tip, other tips, seed,
    shoot centre and primary root length (input px). Occluded root counts as root, so
    a root that dips under the agar still reads as one root. `plants`: how many to
    look for (default: one per seed, or five)."""
    h, w = root_mask.shape
    scale = 0.5 if max(h, w) > MAX_FULL_RES_PX else 1.0
    frame = Frame(0, 0, scale)

    def prob(mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        m = (mask > 0).astype(np.float32)
        return cv2.resize(m, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else m

    roots = (root_mask > 0) | (occluded_mask > 0 if occluded_mask is not None else False)
    seeds = _seed_points(seed_mask)
    n = plants or max(len(seeds), 5)
    root_p = prob(roots)
    assert root_p is not None
    ev = Evidence(root_p, 0.5, prob(shoot_mask), 0.5, prob(seed_mask), 0.5, None, None, 4)
    found = [p for p in find_plants(ev, frame, n, None, 0.0) if p.base is not None]
    shoots = _centres(shoot_mask)
    out = []
    for i, p in enumerate(sorted(found, key=lambda p: p.plant)):
        base = p.base
        assert base is not None
        seed = min(seeds, key=lambda s: math.dist(s, base), default=None)
        if seed is not None and math.dist(seed, base) > 150:
            seed = None
        truth = PlantTruth(i, p.primary_root_tip, seed=seed)
        truth.shoot_centre = min(shoots, key=lambda c: math.dist(c, base), default=None)
        truth.root_tips = [(x, y) for x, y, _ in p.lateral_tips]
        truth.primary_root_length_px = round(p.primary_root_length_px, 2) if p.primary_root_length_px else None
        out.append(truth)
    return out


def _seed_points(seed_mask: np.ndarray | None) -> list[Point]:
    if seed_mask is None or not seed_mask.any():
        return []
    labels, n = ndi.label(seed_mask > 0)
    areas = ndi.sum(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    centres = ndi.center_of_mass(seed_mask > 0, labels, index=np.arange(1, n + 1))
    return [(float(cx), float(cy)) for (cy, cx), a in zip(centres, areas, strict=True) if a >= MIN_SEED_AREA_PX]


def _centres(mask: np.ndarray | None) -> list[Point]:
    if mask is None or not mask.any():
        return []
    labels, n = ndi.label(mask > 0)
    return [(float(cx), float(cy)) for cy, cx in ndi.center_of_mass(mask > 0, labels, range(1, n + 1))]
