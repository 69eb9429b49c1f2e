"""From landmark heatmaps to landmarks per plant.

Peaks of each calibrated heatmap above the manifest's threshold become
candidate landmarks (refined to sub-cell precision). Seeds define the plants,
numbered left to right; each plant gets at most one primary root tip, chosen by
an assignment that keeps tips below and near their seed; other root tips go to
the nearest plant. No scipy here: the node stays lean, and five plants make a
brute-force assignment trivial.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

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
