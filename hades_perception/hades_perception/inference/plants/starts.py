"""Where plants start: a root system just below a shoot (or a seed), in the row the
plants sit in, numbered left to right in the manifest's slots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from hades_perception.inference.components import components_with_stats
from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants.graph import _top_nodes
from hades_perception.inference.plants.plant import Evidence, Point, _Start
from hades_perception.inference.plants.thresholds import (
    ATTACH_MM,
    MIN_ROOT_MM,
    MIN_SEED_MM2,
    MIN_SHOOT_MM2,
    ROW_BAND_MM,
    SLOT_SPACING,
)


@dataclass
class _Region:
    area: float  # model px
    bottom: Point  # bottom centre: where a root leaves a shoot
    centre: Point


def _regions(prob: np.ndarray | None, threshold: float, min_area: float) -> list[_Region]:
    """Regions of a probability map above threshold (4-connected), `min_area` or larger
    (model px); component statistics from the pixels above (components.py)."""
    if prob is None:
        return []
    above = prob > threshold
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    if not len(rows):
        return []
    y0, x0 = int(rows[0]), int(cols[0])  # labelled within the box around what is above
    box = above[y0 : rows[-1] + 1, x0 : cols[-1] + 1].astype(np.uint8)
    n, _, stats, centroids = components_with_stats(box, connectivity=4)
    out = []
    for k in range(1, n):
        area = float(stats[k, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        cx, cy = float(centroids[k, 0]) + x0, float(centroids[k, 1]) + y0
        bottom = float(stats[k, cv2.CC_STAT_TOP] + stats[k, cv2.CC_STAT_HEIGHT] - 1 + y0)
        out.append(_Region(area, (cx, bottom), (cx, cy)))
    return out


def _starts(ev: Evidence, graph: csr_matrix, coords: np.ndarray, shape: tuple[int, int], ppm: float) -> list[_Start]:
    """Where root systems start: per shoot region (else seed region) the nearest
    skeleton pixel within ATTACH_MM, preferring pixels below it."""
    shoots = _regions(ev.shoot, ev.shoot_threshold, MIN_SHOOT_MM2 * ppm**2)
    seeds = _regions(ev.seed, ev.seed_threshold, MIN_SEED_MM2 * ppm**2)
    reach = ATTACH_MM * ppm
    starts: list[_Start] = []
    used: set[int] = set()
    # A root starts in a piece of skeleton long enough to be a root: a speck of root
    # between shoot and root (a hypocotyl fragment) would start a plant with no root.
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    substantial = sizes[comp] >= MIN_ROOT_MM * ppm
    anchors: list[tuple[Point, float, Point | None]] = [(sh.bottom, sh.area, None) for sh in shoots]
    # Seeds count where no shoot is near them (young seedlings; seeds under a shoot are its own).
    for sd in seeds:
        if all(math.dist(sd.centre, sh.bottom) > reach for sh in shoots):
            anchors.append((sd.centre, 0.0, sd.centre))
    for (ax, ay), area, seed in anchors:
        d = np.hypot(coords[:, 0] - ax, coords[:, 1] - ay)
        d = d + np.where(coords[:, 1] < ay - reach / 4, reach, 0.0)  # roots grow down from the shoot
        d = d + np.where(substantial, 0.0, reach / 2)
        j = int(np.argmin(d)) if len(d) else -1
        if j < 0 or d[j] > reach or j in used:
            continue
        used.add(j)
        starts.append(_Start(j, float(coords[j, 0]), float(coords[j, 1]), area, seed))
    for st in starts:  # a seed near a shoot-based start is that plant's seed
        near = [sd.centre for sd in seeds if math.dist(sd.centre, (st.x, st.y)) <= reach]
        st.seed = st.seed or (min(near, key=lambda c: math.dist(c, (st.x, st.y))) if near else None)
    if not starts and len(coords):
        # No shoot and no seed found (a model without those classes, pale seedlings): each
        # root system that starts in the upper half of the dish stands for a plant.
        starts = _tops(comp, coords, lambda top: coords[top, 1] < shape[0] / 2)
    return starts


def _tops(
    comp: np.ndarray, coords: np.ndarray, keep: Callable[[int], bool], among: np.ndarray | None = None
) -> list[_Start]:
    """A start at the top node of each connected piece of skeleton (each piece with a
    node among `among`, default all) for which keep(top node) holds."""
    wanted = None if among is None else set(np.unique(comp[among]).tolist())
    out = []
    for top in _top_nodes(comp, coords, np.arange(len(comp))):
        if (wanted is None or int(comp[top]) in wanted) and keep(top):
            out.append(_Start(top, float(coords[top, 0]), float(coords[top, 1])))
    return out


def _in_row(starts: list[_Start], ppm: float, n: int) -> tuple[list[_Start], float | None]:
    """Plants sit in a row: a start far above or below the row of the largest shoots is
    a speck on a root or debris, not a plant (it would steal the lower part of a root)."""
    if not any(s.shoot_area for s in starts):
        return starts, None  # started from seeds or root tops alone: no shoots to find the row by
    biggest = sorted(starts, key=lambda s: -s.shoot_area)[: max(1, n)]
    row_y = float(np.median([s.y for s in biggest]))
    return [s for s in starts if abs(s.y - row_y) <= ROW_BAND_MM * ppm], row_y


def _rootless_starts(
    graph: csr_matrix, coords: np.ndarray, owner: np.ndarray, row_y: float, ppm: float
) -> list[_Start]:
    """Root systems no start reaches whose top lies in the row, 3 mm or longer: plants
    whose shoot was not segmented (a young or pale one), started at the root's top."""
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)

    def in_row(top: int) -> bool:
        return abs(coords[top, 1] - row_y) <= ROW_BAND_MM * ppm and sizes[comp[top]] >= 3 * MIN_ROOT_MM * ppm

    return _tops(comp, coords, in_row, among=owner < 0)


def _plausible(starts: list[_Start], ppm: float, n: int) -> list[_Start]:
    """At most n starts: those with a root system; those below a shoot or at a seed
    before those found from a root's top alone, the longest first. Condensation and
    debris segmented as shoot reach no root and fall out; a fibre or scratch starting in
    the row yields to a young plant whose shoot was found, however much longer."""
    rooted = [s for s in starts if s.length >= MIN_ROOT_MM * ppm]
    return sorted(rooted, key=lambda s: (not (s.shoot_area or s.seed), -s.length))[:n]


def _slots(dish_span: tuple[float, float], n: int) -> list[float]:
    """The x (image px) of each of a row of n plants across a dish spanning `dish_span`."""
    x0, x1 = dish_span
    centre, spacing = (x0 + x1) / 2, SLOT_SPACING * (x1 - x0)
    return [centre + (i - (n - 1) / 2) * spacing for i in range(n)]


def _off(slot: float | None, image_width: float | None) -> bool:
    """Whether a slot's x lies off an image `image_width` px wide (unknown: no)."""
    return slot is not None and image_width is not None and not 0.0 <= slot < image_width


def _numbered(
    starts: list[_Start], frame: Frame, n: int, dish_span: tuple[float, float] | None
) -> list[tuple[int, _Start]]:
    """Plant numbers left to right. With fewer than n plants found, each goes to the
    slot of a row of n across the dish whose position it is nearest, order kept."""
    starts = sorted(starts, key=lambda s: s.x)
    if len(starts) >= n or not starts:
        return list(enumerate(starts))
    xs = [float(frame.to_image(s.x, s.y)[0]) for s in starts]
    if dish_span is None:  # no dish: the row is centred on what was found
        dish_span = min(xs) - 0.3 * (max(xs) - min(xs) + 1), max(xs) + 0.3 * (max(xs) - min(xs) + 1)
    slots = _slots(dish_span, n)
    # Order-keeping assignment of k plants to n slots, least total distance (DP).
    k = len(xs)
    best = np.full((k + 1, n + 1), np.inf)
    best[0, :] = 0.0
    for i in range(1, k + 1):
        for j in range(i, n + 1):
            best[i, j] = min(best[i, j - 1], best[i - 1, j - 1] + abs(xs[i - 1] - slots[j - 1]))
    out, j = [], n
    for i in range(k, 0, -1):
        while best[i, j] == best[i, j - 1] and j > i:
            j -= 1
        out.append((j - 1, starts[i - 1]))
        j -= 1
    return out[::-1]
