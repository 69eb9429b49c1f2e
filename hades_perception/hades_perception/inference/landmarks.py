"""Landmarks: heatmap peaks, and the landmarks of the plants the structure step found.

Peaks of each calibrated heatmap above the manifest's threshold are candidates
(refined to sub-cell precision). With a root class, landmarks come from the plant
structure (inference/plants/, `landmarks_of`): each plant's primary root tip and lateral tips
lie on its root, and a seed peak counts only near a plant's base. `assign_plants` is
the older way, for models without a root class: seeds define the plants and tips are
assigned to them (brute force: five plants make it trivial).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from hades_perception.inference.plants import ATTACH_MM, Plant

PRIMARY, TIP, SEED = "primary_root_tip", "root_tip", "seed"
# The kinds whose meaning this module relies on; a model must predict all three.
REQUIRED_KINDS = (PRIMARY, TIP, SEED)


@dataclass
class Peak:
    u: float  # heatmap grid coordinates (sub-cell)
    v: float
    score: float


def find_peaks(heat: np.ndarray, threshold: float, radius_cells: float, max_peaks: int = 200) -> list[Peak]:
    """Local maxima of a probability map (2-D float) above `threshold`, at least
    `radius_cells` apart, strongest first, refined by a 3x3 weighted centroid."""
    if heat.size == 0:
        return []
    r = max(1, round(radius_cells))
    dilated = cv2.dilate(heat, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    ys, xs = np.nonzero((heat >= dilated) & (heat >= threshold))
    order = np.argsort(-heat[ys, xs])[: max_peaks * 4]
    taken: list[Peak] = []
    h, w = heat.shape
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        if any((p.u - x) ** 2 + (p.v - y) ** 2 < r * r for p in taken):
            continue  # plateau or ties: keep one
        y0, y1, x0, x1 = max(0, y - 1), min(h, y + 2), max(0, x - 1), min(w, x + 2)
        win = heat[y0:y1, x0:x1].astype(np.float64)
        wts = np.clip(win - win.min(), 0, None) + 1e-9
        gy, gx = np.mgrid[y0:y1, x0:x1]
        taken.append(Peak(float((gx * wts).sum() / wts.sum()), float((gy * wts).sum() / wts.sum()), float(heat[y, x])))
        if len(taken) >= max_peaks:
            break
    return taken


@dataclass
class Located:
    kind: str
    x: float  # image px
    y: float
    confidence: float
    plant: int | None = None


def landmarks_of(plants: list[Plant], seed_peaks: list[Located], px_per_mm: float) -> list[Located]:
    """Primary root tips by plant, then lateral tips by plant, then seeds: a seed peak
    belongs to the plant whose base is nearest, within ATTACH_MM; others are dropped
    (condensation and debris far from any plant)."""
    primaries = [
        Located(PRIMARY, p.primary_root_tip[0], p.primary_root_tip[1], p.confidence, p.plant)
        for p in plants
        if p.primary_root_tip is not None
    ]
    tips = [Located(TIP, x, y, c, p.plant) for p in plants for x, y, c in p.lateral_tips]
    seeds: list[Located] = []
    reach = ATTACH_MM * px_per_mm
    for s in sorted(seed_peaks, key=lambda s: -s.confidence):
        near = [(math.dist((s.x, s.y), p.base), p.plant) for p in plants if p.base is not None]
        d, plant = min(near, default=(math.inf, -1))
        if d <= reach and plant not in {x.plant for x in seeds}:
            seeds.append(Located(SEED, s.x, s.y, s.confidence, plant))
    return primaries + tips + sorted(seeds, key=lambda s: s.plant if s.plant is not None else -1)


def assign_plants(found: list[Located], plants: int) -> list[Located]:
    """Number plants left to right by their seeds, give each at most one primary
    tip, and order the result: primary tips by plant, other tips, seeds."""
    seeds = sorted((lm for lm in found if lm.kind == SEED), key=lambda s: -s.confidence)[:plants]
    seeds.sort(key=lambda s: s.x)
    for i, s in enumerate(seeds):
        s.plant = i
    primaries = sorted((lm for lm in found if lm.kind == PRIMARY), key=lambda t: -t.confidence)
    tips = [lm for lm in found if lm.kind == TIP]

    if seeds:
        candidates = primaries[: 2 * len(seeds)]
        best = _best_assignment(candidates, seeds)
        chosen = {id(t) for t in best}
        # Unassigned primary candidates are root tips of some kind all the same.
        tips += [Located(TIP, t.x, t.y, t.confidence) for t in primaries if id(t) not in chosen]
        primaries = sorted(best, key=lambda t: t.plant if t.plant is not None else -1)
        anchors = [(s.x, s.y) for s in seeds]
    else:
        primaries = sorted(primaries[:plants], key=lambda t: t.x)
        for i, t in enumerate(primaries):
            t.plant = i
        anchors = [(t.x, t.y) for t in primaries]
    for t in tips:
        if anchors:
            t.plant = int(np.argmin([abs(t.x - ax) for ax, _ in anchors]))
    tips.sort(key=lambda t: (t.plant if t.plant is not None else -1, -t.confidence))
    return primaries + tips + seeds


def _cost(tip: Located, seed: Located) -> float:
    # Roots grow down: a tip above its seed is implausible.
    above = max(0.0, seed.y - tip.y)
    return abs(tip.x - seed.x) + 4.0 * above - 50.0 * tip.confidence


def _best_assignment(tips: list[Located], seeds: list[Located]) -> list[Located]:
    """Each seed gets at most one tip, minimising total cost (brute force: n <= 5)."""
    if not tips:
        return []
    best_cost, best_pairs = float("inf"), []
    slots = list(range(len(seeds)))
    k = min(len(tips), len(seeds))
    for chosen_tips in itertools.combinations(range(len(tips)), k):
        for perm in itertools.permutations(slots, k):
            cost = sum(_cost(tips[t], seeds[s]) for t, s in zip(chosen_tips, perm, strict=True))
            if cost < best_cost:
                best_cost, best_pairs = cost, list(zip(chosen_tips, perm, strict=True))
    out = []
    for t, s in best_pairs:
        tips[t].plant = seeds[s].plant
        out.append(tips[t])
    return out
