"""Plant structure: from class probabilities to plants, each with its root graph,
primary root, tip, laterals and traits. Landmarks come from this structure.

Why not from seeds and heatmap peaks alone: on real Hades plates seeds are rarely
visible (they sit in the hypocotyl base or under the shoot), so plants defined by
seeds collapse and their numbering shifts, and tip peaks land on condensation and
debris far from any root (issue 11). Here a plant is a place where a root system
starts just below a shoot (or a seed); its primary root is the longest path from
that start through the root skeleton; tips are end points of that skeleton (or the
tip detector's peak at most 2 mm past one, over faint root evidence), so every
primary tip lies on its plant's root, and nothing far from a plant becomes a landmark.

Steps, at model resolution (what the probabilities come at), on the dish crop:
1. root evidence: root or occluded-root probability, hysteresis thresholded (a weak
   pixel counts when it connects to a sure one: faint tips stay attached), closed;
2. skeleton and its pixel graph (scikit-image; shortest paths with scipy's csgraph),
   without the dish mould's ring (stretches on one large circle, no root's), and with
   crossing roots run straight through each other (a junction's straight pairs of
   branches joined through, each on its own);
3. plant starts: per shoot (or seed) region the nearest skeleton pixel within reach;
   every skeleton pixel belongs to the start that reaches it by the shortest path;
4. broken roots: a piece below a plant's end point joins it when the root probability
   along the gap supports it (a faint stretch, not bare agar);
5. per plant, its primary tip:
   - the end point farthest from the start, preferring ends the tip detector (heatmap)
     confirms; of several it confirms firmly, the farthest, unless another's path goes
     on straighter where they part; not a path that turns off where the longest goes
     straight on, nor the longest, unconfirmed, where it turns off from a path going
     straight on to a firmly confirmed tip;
   - a path that runs on past a detector peak with the detector silent at its end (a
     mask running into a drop, or a bridge across bare agar into a fibre) ends at the
     peak;
   - a primary root whose end the detector does not confirm goes on into root pieces no
     plant reaches that lie ahead of it, run on in its direction and have faint root
     evidence across the gap (a faint young root the mask broke into pieces);
   - it ends at a detector peak at most 2 mm ahead along its direction over faint root
     evidence (a last stretch too faint for the mask), or up to 3 mm ahead where only a
     weaker peak marks the end, never one on another plant's root; with no primary-tip
     peak there, at a firm lateral-tip peak just ahead (the detector saw a root end and
     called it a lateral's; the tip stays flagged);
   laterals are the other branches longer than LATERAL_MIN_MM; lengths are measured
   along the paths in input-image px;
6. firm tip-detector peaks no plant took go to a plant whose own end the detector does
   not confirm, where its root reaches them going straight on (a neighbour's touching
   lateral had taken the root's lower part by the shortest paths), or where a firm one
   ends a broken-off piece of root just ahead of its end; such a plant also takes the
   end of a root its path turned off from that goes on straighter to an end a
   neighbour's start reached first (a primary root crossing a neighbour's);
7. numbering: plants left to right in the manifest's count of slots; a slot with no
   plant found keeps its index, flagged low-confidence with a reason.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import cv2
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from skimage.graph import pixel_graph
from skimage.morphology import skeletonize

from hades_perception.inference.geometry import Frame, model_to_grid

Point = tuple[float, float]

NOMINAL_PX_PER_MM = 21.0  # Hades sets measure 19-23 px/mm; used when the dish gives no scale
ROOT_LOW = 0.2  # hysteresis: a pixel this probable is root when it connects to a sure one
ATTACH_MM = 4.0  # a root starts within this of its shoot (the hypocotyl is often unsegmented)
GAP_MM = 3.0  # the longest gap in a root that is bridged
GAP_SUPPORT = 0.01  # mean root probability over a gap's unsure pixels for it to be bridged (bare agar: ~0)
MIN_ROOT_MM = 1.0  # a root system shorter than this is not a plant's
LATERAL_MIN_MM = 1.0  # a branch shorter than this is a skeleton spur or a root hair, not a lateral
TIP_EVIDENCE_MM = 1.0  # a tip-detector peak this close to an end point confirms it
EXTEND_FADING = 0.8  # a root whose last millimetre is less probable than this is fading out: follow it
EXTEND_LOW = 0.12  # root probability that carries a faint tip on past the mask's end
EXTEND_MM = 3.0  # at most this far
EXTEND_GAP_MM = 0.7  # across unsupported stretches at most this long
AHEAD_MM = 2.0  # a tip-detector peak this far past a root's end, ...
AHEAD_ANGLE = 20.0  # ...within this many degrees of its direction, ...
AHEAD_SUPPORT = 0.05  # ...with this mean root probability between (bare agar: ~0), is its tip
FURTHER_MM = 3.0  # a peak this far ahead of an end a weaker peak confirms, ...
FURTHER_RATIO = 1.5  # ...this many times as strong, is the tip: the weaker one marks where the mask stopped
CUT_PEAK = 0.5  # a tip-detector peak this strong on a path before its end, ...
CUT_RATIO = 0.5  # ...and the detector at the path's end under this share of it: the root ends at the peak
CUT_MAX_MM = 4.0  # what is cut past such a peak (the mask running on into a drop) is at most this long
CUT_BRIDGED_PEAK = 0.8  # a peak this firm on a path, with a gap bridged after it, ...
CUT_BRIDGED_GAP_MM = 0.5  # ...of this much: the root ends at the peak, however far the path runs on
TURN_MM = 1.5  # a root's direction where paths part: over this much of it before and after
CROSS_MM = 1.0  # skeleton forks this close along the root are one junction (a shallow X forks twice)
CROSS_TURN = 45.0  # degrees: two roots crossing each run on within this of their direction
CLAIM_PEAK = 0.5  # a tip-detector peak this firm that no plant took is a flagged plant's tip, ...
CLAIM_ALONG_MM = 2.0  # ...unless its path there runs along another plant's primary root for more than this, ...
CLAIM_RISE_MM = 1.0  # ...or it lies higher than the end it would replace by more than this (roots grow down)
CLAIM_DETOUR = 3.0  # a claim's path is searched up to this many times the farthest candidate's straight-line distance
TURN_MARGIN = 15.0  # degrees: a path that turns this much more than another where they part is a lateral's
JOIN_MM = 6.0  # a root piece this far beyond a primary root's unconfirmed end may continue it, ...
JOIN_ANGLE = 25.0  # ...lying within this many degrees of the root's direction over its last mm...
JOIN_TURN = 35.0  # ...and running on within this many degrees of it over its first mm...
JOIN_SUPPORT = 0.05  # ...with this mean root probability along the gap (bare agar: ~0)
JOIN_MIN_MM = 0.5  # a piece shorter than this is a speck, not a root's stretch
PIECE_PEAK = 0.8  # a peak this firm ending a root piece no start reaches, ...
PIECE_MM = 3.0  # ...where the root breaks off (its direction over this much of it), ...
PIECE_TURN = 45.0  # ...within which a broken-off piece ending in a firm peak runs on
OTHER_TIP_PEAK = 0.7  # a lateral-tip peak this firm just past an end the primary-tip detector is silent at is the tip
ALTERNATIVE_POWER = 2.0  # a tip's confidence is scaled by (its path / the plant's longest path) ** this
TIE_HEAT = 0.02  # tip-detector values this close are a tie
MIN_SHOOT_MM2 = 1.5  # cotyledons of a young seedling are about 1.5 x 1 mm
MIN_SEED_MM2 = 0.05
ROW_BAND_MM = 6.0  # plants sit in a row: a root start farther than this above or below it is not a plant's
RING_MM = (5.0, 30.0)  # radius of a dish mould's ring (synthetic plates: 8-25 mm; HADES.md)
RING_FIT = 0.8  # share of a skeleton stretch within a quarter mm of a circle for it to lie on it
RING_ARC = 110.0  # degrees of a circle stretches on it cover for it to be a ring, not a root
NO_ROOT = "no root found below the plant"
UNCONFIRMED = "the tip detector does not confirm this tip"  # a reason's start: the end has no peak
SLOT_SPACING = 0.205  # of the dish width between neighbouring plants (five in a row, ~575 px of 2800)


@dataclass
class Plant:
    """One plant of the dish, numbered left to right from 0. Positions and lengths are
    in input-image px; a plant not found keeps its index with low_confidence and a reason."""

    plant: int
    confidence: float  # that the primary root tip is right (the tip detector's, calibrated)
    low_confidence: bool
    base: Point | None = None  # where its root system starts, just below the shoot
    primary_root_tip: Point | None = None
    primary_root_length_px: float | None = None
    primary_root_length_mm: float | None = None
    total_root_length_px: float = 0.0
    lateral_root_count: int = 0
    shoot_area_px: float = 0.0
    reason: str = ""
    seed: Point | None = None
    lateral_tips: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, confidence
    primary_path: list[Point] = field(default_factory=list)  # base to tip
    lateral_paths: list[list[Point]] = field(default_factory=list)  # branch point to tip

    @property
    def has_primary_tip(self) -> bool:
        return self.primary_root_tip is not None

    def to_dict(self) -> dict[str, object]:
        def pt(p: Point | None) -> list[float] | None:
            return None if p is None else [round(float(p[0]), 2), round(float(p[1]), 2)]

        def r(v: float | None, n: int = 2) -> float | None:
            return None if v is None else round(float(v), n)

        return {
            "plant": self.plant,
            "base": pt(self.base),
            "primary_root_tip": pt(self.primary_root_tip),
            "primary_root_length_px": r(self.primary_root_length_px),
            "primary_root_length_mm": r(self.primary_root_length_mm, 3),
            "total_root_length_px": r(self.total_root_length_px),
            "lateral_root_count": int(self.lateral_root_count),
            "shoot_area_px": r(self.shoot_area_px, 1),
            "confidence": r(self.confidence, 4),
            "low_confidence": bool(self.low_confidence),
            "reason": self.reason,
        }


@dataclass
class Evidence:
    """What the model said, at model resolution over the crop (probabilities in 0-1)."""

    root: np.ndarray  # (h, w): max of root and occluded root
    root_threshold: float
    shoot: np.ndarray | None
    shoot_threshold: float
    seed: np.ndarray | None
    seed_threshold: float
    primary_heat: np.ndarray | None  # tip-detector probability on the heatmap grid
    tip_heat: np.ndarray | None
    stride: int
    # The tip detector's primary-tip peaks, model px: (x, y, probability) rows. A skeleton
    # end stops about half a root width short of the tip; a peak there is sub-pixel.
    primary_peaks: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    # Its other root-tip peaks (a lateral's tip, it judges), the same way.
    tip_peaks: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))


@dataclass
class _Start:
    node: int  # skeleton node where the root system starts
    x: float  # base position, model px
    y: float
    shoot_area: float = 0.0  # model px
    seed: Point | None = None  # model px
    length: float = 0.0  # root length it reaches, model px


_Built = tuple[Plant, np.ndarray]  # a plant and its primary root's skeleton nodes


def find_plants(
    ev: Evidence,
    frame: Frame,
    n_plants: int,
    px_per_mm: float | None,
    low_confidence: float,
    dish_span: tuple[float, float] | None = None,
) -> list[Plant]:
    """`n_plants` plants, left to right. `dish_span`: the agar's x extent in image px,
    to place plants in their slots when fewer than n_plants are found."""
    ppm_model = (px_per_mm or NOMINAL_PX_PER_MM) * frame.scale  # model px per mm

    roots = _root_mask(ev)
    skel = skeletonize(roots) if roots.any() else roots
    starts: list[_Start] = []
    graph: csr_matrix | None = None
    coords = np.empty((0, 2))
    if skel.any():
        graph, coords = _skeleton_graph(skel)
        ring = _mould_ring(graph, coords, ppm_model)
        if ring.any():  # the dish mould's ring, segmented as root: not a root to follow
            skel[coords[ring, 1].astype(int), coords[ring, 0].astype(int)] = False
            skel = skeletonize(skel)  # a fork's pixels left where a root touched the ring: thinned to an end
            graph, coords = _skeleton_graph(skel)
        starts = _starts(ev, graph, coords, skel.shape, ppm_model)
    owner = np.full(len(coords), -1)
    dist = np.full(len(coords), np.inf)
    pred = np.full(len(coords), -9999)
    if graph is not None and starts:
        starts, row_y = _in_row(starts, ppm_model, n_plants)
        graph = _uncross(graph, coords, starts, ppm_model)
        graph = _bridge(graph, coords, ev.root, ev.root_threshold, starts, ppm_model)
        dist, pred, owner = _own(graph, starts)
        if row_y is not None:  # root systems that start in the row with no shoot found above them
            more = _rootless_starts(graph, coords, owner, row_y, ppm_model)
            if more:
                starts = starts + more
                dist, pred, owner = _own(graph, starts)
        kept = _plausible(starts, ppm_model, n_plants)
        if kept and len(kept) < len(starts):  # what the dropped ones held goes to the others
            dist, pred, owner = _own(graph, kept)
        starts = kept
    free = _free_pieces(graph, owner) if graph is not None else np.empty(0, int)
    numbered = _numbered(starts, frame, n_plants, dish_span)
    built = [
        _plant(s, i, coords, graph, dist, pred, owner, ev, frame, ppm_model, px_per_mm, low_confidence, free)
        for i, s in numbered
    ]
    if graph is not None:

        def rebuild(s: _Start, i: int, g: csr_matrix, d: np.ndarray, pr: np.ndarray, ow: np.ndarray, q: int) -> _Built:
            return _plant(s, i, coords, g, d, pr, ow, ev, frame, ppm_model, px_per_mm, low_confidence, free, q)

        built = _claim_peaks(built, [s for _, s in numbered], graph, coords, owner, free, ev, frame, ppm_model, rebuild)
        built = _claim_ends(built, [s for _, s in numbered], graph, coords, owner, frame, ppm_model, rebuild)
    found = [plant for plant, _ in built]
    taken = {p.plant for p in found}
    missing = [Plant(i, 0.0, True, reason="no plant found at this position") for i in range(n_plants) if i not in taken]
    return sorted(found + missing, key=lambda p: p.plant)


# --- evidence -----------------------------------------------------------------------------
def _root_mask(ev: Evidence) -> np.ndarray:
    """Hysteresis (pixels above ROOT_LOW kept where 4-connected to a sure one), then a
    3x3 closing. OpenCV's connected components and morphology give exactly what
    skimage's apply_hysteresis_threshold and scipy's binary_closing gave, 5x faster
    (a full plate: about 25 against 130 ms on 2 cores; tests/unit/test_plants.py)."""
    low = min(ROOT_LOW, ev.root_threshold)
    n, labels = cv2.connectedComponents((ev.root > low).astype(np.uint8), connectivity=4)
    keep = np.zeros(n, bool)
    keep[labels[ev.root > ev.root_threshold]] = True
    keep[0] = False  # the background
    mask = keep[labels]
    closed = cv2.morphologyEx(
        mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return closed.astype(bool) | mask


def _skeleton_graph(skel: np.ndarray) -> tuple[csr_matrix, np.ndarray]:
    """The skeleton's 8-connected pixel graph (edge weights: step lengths) and each
    node's (x, y), model px."""
    graph, nodes = pixel_graph(skel, connectivity=2)
    ys, xs = np.unravel_index(nodes, skel.shape)
    return graph, np.stack([xs, ys], axis=1).astype(np.float64)


def _mould_ring(graph: csr_matrix, coords: np.ndarray, ppm: float) -> np.ndarray:
    """Skeleton nodes on the ring a dish mould leaves in the lid (HADES.md), which the
    model segments as faint root: a root touching it was followed round it, far from
    its tip (dev plates, issue 11). A ring is a circle of RING_MM radius that stretches
    of skeleton between forks, each lying on it over RING_FIT of its length, cover over
    RING_ARC degrees of: no root curves round so far on one radius (on dev plates a
    root's best circle covers at most 80). Only those stretches go; the forks where
    roots cross or touch the ring stay, so a root crossing it keeps its path."""
    out = np.zeros(len(coords), bool)
    degree = np.diff(graph.indptr)
    simple = np.nonzero(degree <= 2)[0]
    if not len(simple):
        return out
    _, label = connected_components(graph[simple][:, simple], directed=False)
    order = np.argsort(label, kind="stable")
    stretches = [simple[k] for k in np.split(order, np.cumsum(np.bincount(label))[:-1])]
    stretches = [k for k in stretches if len(k) >= 0.5 * ppm]
    if not stretches:
        return out
    tolerance = max(2.0, 0.25 * ppm)
    # All stretches' nodes in one array, so each circle is tested against all of them at once.
    flat = np.concatenate(stretches)
    lengths = np.array([len(k) for k in stretches])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for seed in sorted((k for k in stretches if len(k) >= 6 * ppm), key=len, reverse=True):
        circle = _fit_circle(coords[seed])
        if circle is None:
            continue
        cx, cy, r = circle
        if not RING_MM[0] * ppm <= r <= RING_MM[1] * ppm or out[seed].any():
            continue
        near = np.abs(np.hypot(coords[flat, 0] - cx, coords[flat, 1] - cy) - r) <= tolerance
        share = np.add.reduceat(near.astype(np.float64), offsets) / lengths  # per stretch
        on = [stretches[i] for i in np.nonzero(share >= RING_FIT)[0]]
        if not on:
            continue
        members = np.concatenate(on)
        angles = np.degrees(np.arctan2(coords[members, 1] - cy, coords[members, 0] - cx)) % 360
        if 5 * len(np.unique((angles // 5).astype(int))) >= RING_ARC:
            out[members] = True
    return out


def _fit_circle(points: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares circle through points (x, y): centre and radius (Kasa's fit), or
    None when they are about straight or lie off it by over a pixel (RMS)."""
    x, y = points[:, 0], points[:, 1]
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    (p, q, c), *_ = np.linalg.lstsq(a, -(x**2 + y**2), rcond=None)
    cx, cy = -p / 2, -q / 2
    r2 = cx * cx + cy * cy - c
    if r2 <= 0:
        return None
    r = math.sqrt(r2)
    rms = float(np.sqrt(np.mean((np.hypot(x - cx, y - cy) - r) ** 2)))
    return (float(cx), float(cy), r) if rms <= 1.0 else None


@dataclass
class _Region:
    area: float  # model px
    bottom: Point  # bottom centre: where a root leaves a shoot
    centre: Point


def _regions(prob: np.ndarray | None, threshold: float, min_area: float) -> list[_Region]:
    """Regions of a probability map above threshold (4-connected), `min_area` or larger
    (model px); OpenCV's component statistics, not a pass over each region's pixels."""
    if prob is None:
        return []
    above = prob > threshold
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    if not len(rows):
        return []
    y0, x0 = int(rows[0]), int(cols[0])  # labelled within the box around what is above
    box = above[y0 : rows[-1] + 1, x0 : cols[-1] + 1].astype(np.uint8)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(box, connectivity=4)
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


def _bridge(
    graph: csr_matrix, coords: np.ndarray, root_p: np.ndarray, sure: float, starts: list[_Start], ppm: float
) -> csr_matrix:
    """Join pieces of broken roots: from the top of each piece no start reaches, an edge
    to the nearest skeleton pixel above it within GAP_MM that a start reaches, when the
    root probability along the gap supports it and, for gaps over a millimetre, the gap
    goes on in the direction the root was growing (continuity of direction: a fibre
    beside a root end is not its continuation). Pieces join top to bottom."""
    gap = GAP_MM * ppm
    extra_rows: list[int] = []
    extra_cols: list[int] = []
    extra_w: list[float] = []
    g = graph
    for _ in range(8):  # a few rounds: each may join the next piece below
        dist, pred, _ = dijkstra(g, indices=[s.node for s in starts], min_only=True, return_predecessors=True)
        reached = np.isfinite(dist)
        if reached.all():
            break
        _, comp = connected_components(g, directed=False)
        joined = False
        reached_nodes = np.nonzero(reached)[0]
        near_reached = cKDTree(coords[reached_nodes])
        for top in _top_nodes(comp, coords, np.nonzero(~reached)[0]):
            tx, ty = coords[top]
            # The nearest reached node within the gap, not below the piece's top by over a
            # quarter of it (the lowest-numbered one of equally near nodes).
            cand = np.sort(reached_nodes[near_reached.query_ball_point((tx, ty), gap + 1e-6)])
            cand = cand[coords[cand, 1] <= ty + gap / 4]
            if not len(cand):
                continue
            d = np.hypot(coords[cand, 0] - tx, coords[cand, 1] - ty)
            j = int(np.argmin(d))
            if d[j] > gap or not _supported(root_p, coords[cand[j]], coords[top], sure):
                continue
            if d[j] > ppm and not _continues(coords, pred, int(cand[j]), coords[top], int(ppm)):
                continue
            extra_rows += [int(cand[j]), int(top)]
            extra_cols += [int(top), int(cand[j])]
            extra_w += [float(d[j])] * 2
            joined = True
        if not joined:
            break
        n = g.shape[0]
        g = graph + csr_matrix((extra_w, (extra_rows, extra_cols)), shape=(n, n))
    return g


def _top_nodes(comp: np.ndarray, coords: np.ndarray, nodes: np.ndarray) -> list[int]:
    """The top node (least y; of equals, the lowest-numbered) of each connected piece
    that `nodes` (ascending) fall in, pieces in label order: one sort instead of a pass
    over every node per piece (a plate's debris makes hundreds of pieces)."""
    if not len(nodes):
        return []
    order = np.lexsort((nodes, coords[nodes, 1], comp[nodes]))
    labels = comp[nodes][order]
    first = np.concatenate([[True], labels[1:] != labels[:-1]])
    return [int(k) for k in nodes[order][first]]


def _uncross(graph: csr_matrix, coords: np.ndarray, starts: list[_Start], ppm: float) -> csr_matrix:
    """Two roots that cross run straight through each other: where skeleton junctions
    within CROSS_MM of each other (an X drawn at a shallow angle skeletonises into two
    forks) have four or more branches that pair up into straight runs (each turning
    at most CROSS_TURN degrees over TURN_MM), each run is joined through on its own.
    Shortest paths then follow each root on through the crossing, not round the corner
    onto the other: a neighbour's root, or a lateral crossing the primary, no
    longer takes the primary root's lower part (dev plates, issue 11). Spurs (branches
    that end within a third of TURN_MM) are not counted; a branch in no straight run (a
    lateral leaving there) stays with the straightest; a junction with a branch that
    forks again too soon to tell its direction is left as it is."""
    degree = np.diff(graph.indptr)
    forks = np.nonzero(degree >= 3)[0]
    if not len(forks):
        return graph
    near = dijkstra(graph, indices=forks, min_only=True, limit=CROSS_MM * ppm / 2)
    in_blob = np.isfinite(near)
    blob_nodes = np.nonzero(in_blob)[0]
    _, blob_label = connected_components(graph[blob_nodes][:, blob_nodes], directed=False)
    label = np.full(len(coords), -1)
    label[blob_nodes] = blob_label
    coo = graph.tocoo()
    leaving = in_blob[coo.row] & ~in_blob[coo.col]
    exits: dict[int, set[int]] = {}
    for inside, outside in zip(coo.row[leaving].tolist(), coo.col[leaving].tolist(), strict=True):
        exits.setdefault(int(label[inside]), set()).add(int(outside))
    start_nodes = {s.node for s in starts}
    reach = max(3, round(TURN_MM * ppm))
    detach = np.zeros(len(coords), bool)  # exits cut off their junction
    joins: list[tuple[int, int]] = []
    for c, outs in exits.items():
        if len(outs) < 4:
            continue
        members = np.nonzero(label == c)[0]
        if start_nodes.intersection(members.tolist()):
            continue
        centre = coords[members].mean(axis=0)
        found = [(o, _branch_direction(graph, coords, label, c, o, centre, reach)) for o in sorted(outs)]
        if any(d is None for _, d in found):
            continue
        branches = [(o, d) for o, d in found if isinstance(d, np.ndarray)]  # spurs stay with the junction
        if len(branches) < 4:
            continue
        # Straight runs through the junction, straightest first, each branch in one.
        turns = [(_straightness(da, db), a, b) for (a, da), (b, db) in itertools.combinations(branches, 2)]
        pairs = sorted(t for t in turns if t[0] <= CROSS_TURN)
        runs: list[tuple[int, int]] = []
        for _, a, b in pairs:
            if all(a not in r and b not in r for r in runs):
                runs.append((a, b))
        # The straightest run keeps the junction's pixels, with any branch left over (a
        # lateral leaving there); the others are cut off them and joined straight through,
        # so no pixel is left without its root.
        for a, b in runs[1:]:
            detach[[a, b]] = True
            joins.append((a, b))
    if not joins:
        return graph
    keep = ~((detach[coo.row] & in_blob[coo.col]) | (in_blob[coo.row] & detach[coo.col]))
    gaps = [float(np.hypot(*(coords[a] - coords[b]))) for a, b in joins]
    rows = np.concatenate([coo.row[keep], [a for a, _ in joins], [b for _, b in joins]])
    cols = np.concatenate([coo.col[keep], [b for _, b in joins], [a for a, _ in joins]])
    weights = np.concatenate([coo.data[keep], gaps, gaps])
    return csr_matrix((weights, (rows, cols)), shape=graph.shape)


SPUR: Final = "spur"  # what _branch_direction gives for a branch that ends within a third of its reach


def _branch_direction(
    graph: csr_matrix,
    coords: np.ndarray,
    label: np.ndarray,
    junction: int,
    first: int,
    centre: np.ndarray,
    reach: int,
) -> np.ndarray | Literal["spur"] | None:
    """Unit direction of the branch that leaves a junction at node `first`, from the
    junction's centre to `reach` nodes along it (or to where it ends or forks again, if
    that is at least a third of the way); SPUR for a branch that ends sooner (a
    skeleton's spur, a root hair), None for one that forks again sooner. `label`: each
    node's junction (-1: in none); `junction`: this one's."""
    prev, node, steps = -1, first, 0
    while steps < reach:
        around = graph.indices[graph.indptr[node] : graph.indptr[node + 1]]
        nxt = [int(n) for n in around if n != prev and label[n] < 0]
        if len(nxt) != 1:
            if not nxt and steps < reach / 3 and all(n == prev or label[n] == junction for n in around):
                return SPUR  # it ends (it does not run into another junction)
            break
        prev, node, steps = node, nxt[0], steps + 1
    if steps < reach / 3:
        return None
    d = coords[node] - centre
    norm = float(np.hypot(d[0], d[1]))
    return None if norm == 0 else d / norm


def _straightness(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees by which two branches leaving a junction in directions a and b turn from
    one straight line (0: they run straight through)."""
    return 180.0 - math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b)))))


def _continues(coords: np.ndarray, pred: np.ndarray, end: int, to: np.ndarray, back: int) -> bool:
    """Whether the step from skeleton node `end` to `to` is within 60 degrees of the
    direction the root arrives at `end` in (from `back` nodes up its path)."""
    node = end
    for _ in range(back):
        if pred[node] < 0:
            break
        node = int(pred[node])
    arrive, step = coords[end] - coords[node], to - coords[end]
    norm = float(np.linalg.norm(arrive) * np.linalg.norm(step))
    return norm == 0 or float(arrive @ step) / norm >= 0.5


def _supported(root_p: np.ndarray, a: np.ndarray, b: np.ndarray, sure: float) -> bool:
    """The gap between two root ends: its pixels that are not sure root have a mean root
    probability of GAP_SUPPORT or more (a faint stretch, not bare agar)."""
    n = max(2, int(math.dist(a, b)) + 1)
    xs = np.clip(np.round(np.linspace(a[0], b[0], n)).astype(int), 0, root_p.shape[1] - 1)
    ys = np.clip(np.round(np.linspace(a[1], b[1], n)).astype(int), 0, root_p.shape[0] - 1)
    values = root_p[ys, xs]
    gap = values[values < sure]
    return not gap.size or float(gap.mean()) >= GAP_SUPPORT


def _tree_length(dist: np.ndarray, pred: np.ndarray, mine: np.ndarray) -> float:
    """Length of the shortest-path tree over `mine` nodes: each node's edge to its predecessor."""
    idx = np.nonzero(mine & (pred >= 0))[0]
    return float((dist[idx] - dist[pred[idx]]).sum())


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


def _own(graph: csr_matrix, starts: list[_Start]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shortest-path distance and predecessor of every skeleton pixel from the start that
    reaches it first, and which start that is (-1: none); each start's root length."""
    dist, pred, sources = dijkstra(graph, indices=[s.node for s in starts], return_predecessors=True, min_only=True)
    by_node = {s.node: i for i, s in enumerate(starts)}
    owner = np.array([by_node.get(int(s), -1) for s in sources])
    for i, s in enumerate(starts):
        s.length = _tree_length(dist, pred, owner == i)
    return dist, pred, owner


def _plausible(starts: list[_Start], ppm: float, n: int) -> list[_Start]:
    """At most n starts: those with a root system; those below a shoot or at a seed
    before those found from a root's top alone, the longest first. Condensation and
    debris segmented as shoot reach no root and fall out; a fibre or scratch starting in
    the row yields to a young plant whose shoot was found, however much longer."""
    rooted = [s for s in starts if s.length >= MIN_ROOT_MM * ppm]
    return sorted(rooted, key=lambda s: (not (s.shoot_area or s.seed), -s.length))[:n]


def _numbered(
    starts: list[_Start], frame: Frame, n: int, dish_span: tuple[float, float] | None
) -> list[tuple[int, _Start]]:
    """Plant numbers left to right. With fewer than n plants found, each goes to the
    slot of a row of n across the dish whose position it is nearest, order kept."""
    starts = sorted(starts, key=lambda s: s.x)
    if len(starts) >= n or not starts:
        return list(enumerate(starts))
    xs = [float(frame.to_image(s.x, s.y)[0]) for s in starts]
    if dish_span is not None:
        x0, x1 = dish_span
    else:  # no dish: the row is centred on what was found
        x0, x1 = min(xs) - 0.3 * (max(xs) - min(xs) + 1), max(xs) + 0.3 * (max(xs) - min(xs) + 1)
    centre, spacing = (x0 + x1) / 2, SLOT_SPACING * (x1 - x0)
    slots = [centre + (i - (n - 1) / 2) * spacing for i in range(n)]
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


# --- one plant ---------------------------------------------------------------------------------
def _plant(
    s: _Start,
    index: int,
    coords: np.ndarray,
    graph: csr_matrix | None,
    dist: np.ndarray,
    pred: np.ndarray,
    owner: np.ndarray,
    ev: Evidence,
    frame: Frame,
    ppm: float,
    px_per_mm: float | None,
    low_confidence: float,
    free: np.ndarray | None = None,
    tip_node: int | None = None,
) -> _Built:
    """The plant of start `s`, numbered `index`, and its primary root's skeleton nodes
    (base to tip, before any extension). `tip_node`: its primary tip's node, chosen by
    _claim_peaks, instead of choosing among its ends here."""

    def img(p: np.ndarray | tuple[float, float]) -> Point:
        x, y = frame.to_image(p[0], p[1])
        return float(x), float(y)

    def imgs(points: np.ndarray) -> list[Point]:  # many at once: paths are thousands of pixels
        x, y = frame.to_image(points[:, 0].astype(float), points[:, 1].astype(float))
        return list(zip(np.asarray(x).tolist(), np.asarray(y).tolist(), strict=True))

    mine = owner == owner[s.node]
    ends = _end_points(graph, mine) if graph is not None else np.empty(0, int)
    ends = ends[ends != s.node]
    if tip_node is not None and tip_node not in ends:
        ends = np.append(ends, tip_node)
    plant = Plant(index, 0.0, True, base=img((s.x, s.y)), shoot_area_px=s.shoot_area / frame.scale**2)
    plant.seed = img(s.seed) if s.seed else None
    plant.total_root_length_px = _tree_length(dist, pred, mine) / frame.scale
    if not len(ends):
        plant.reason = NO_ROOT
        return plant, np.empty(0, int)
    heat = np.array([_heat_near(ev.primary_heat, coords[e], ev.stride, TIP_EVIDENCE_MM * ppm) for e in ends])
    lengths = dist[ends]
    longest = float(lengths.max())
    if tip_node is not None:  # chosen by _claim_peaks
        chosen = int(np.nonzero(ends == tip_node)[0][0])
    else:
        chosen = _choose_end(ends, heat, lengths, coords, pred, ppm, low_confidence)
    tip = int(ends[chosen])
    path = _path(pred, tip)
    on_primary = set(path.tolist())
    # A faint young tip fades below the mask's thresholds before it ends: follow the model's
    # faint evidence on along the root's direction.
    line = coords[path]
    if graph is not None and free is not None and heat[chosen] < low_confidence:
        # A faint young root breaks into pieces: pieces further down that continue it are its own.
        line = np.vstack([line, *_join_pieces(line, coords, graph, free, ev, ppm)])
    line = np.vstack([line, *_extend_tip(ev.root, line, ppm)])
    # The mask may run on past the tip (into a drop) and the extension past a tip the detector saw.
    keep = _cut_at_peak(ev, line, ppm)
    line = line[:keep]
    cut_off = set(path[keep:].tolist())  # past the tip: no lateral branches off there either
    plant.primary_path = imgs(line)
    end = line[-1]

    def neighbours(p: np.ndarray) -> bool:  # on, or right beside, another plant's root
        d = np.hypot(coords[:, 0] - p[0], coords[:, 1] - p[1])
        return bool(np.any((d <= 0.5 * ppm) & (owner >= 0) & ~mine))

    peak = _peak_near(ev.primary_peaks, end, TIP_EVIDENCE_MM * ppm)
    # A peak off the root (a drop's rim beside the tip) is not this root's tip; one straight
    # ahead of the end, with faint root between, is (the last stretch was too faint to
    # follow), unless it is on or beside another plant's root.
    off_root = (
        peak is not None
        and not _on_root(ev.root, peak)
        and not (_ahead(ev, line, peak[None, :2], TIP_EVIDENCE_MM * ppm, ppm)[0] and not neighbours(peak))
    )
    if off_root:
        peak = None
    if peak is None and not off_root:  # a faint last stretch the mask lost and the detector saw
        peak = _peak_ahead(ev, line, ppm, neighbours)
    elif peak is not None and not off_root:  # a weak peak where the mask stops, the tip further on
        further = _peak_ahead(ev, line, ppm, neighbours, FURTHER_MM)
        if further is not None and further[2] >= FURTHER_RATIO * peak[2]:
            peak = further
    if peak is not None:  # the detector's tip at the end of the skeleton: where the tip really is
        plant.primary_path.append(img(peak[:2]))
    elif not off_root:  # where the root ends, the detector's lateral-tip channel may fire instead
        other = _peak_ahead(ev, line, ppm, neighbours, peaks=ev.tip_peaks[ev.tip_peaks[:, 2] >= OTHER_TIP_PEAK])
        if other is not None:  # there it ends; the primary-tip detector, silent, leaves it flagged (below)
            plant.primary_path.append(img(other[:2]))
    plant.primary_root_tip = plant.primary_path[-1]
    plant.primary_root_length_px = _polyline_length(plant.primary_path)
    if px_per_mm:
        plant.primary_root_length_mm = plant.primary_root_length_px / px_per_mm
    for e in ends:
        if int(e) == tip:
            continue
        branch = _path(pred, int(e), stop=on_primary)
        if len(branch) < 2 or dist[e] - dist[branch[0]] < LATERAL_MIN_MM * ppm or int(branch[0]) in cut_off:
            continue
        plant.lateral_paths.append(imgs(coords[branch]))
        x, y = img(coords[e])
        plant.lateral_tips.append((x, y, _heat_near(ev.tip_heat, coords[e], ev.stride, TIP_EVIDENCE_MM * ppm)))
    plant.lateral_root_count = len(plant.lateral_paths)
    detector = float(peak[2]) if peak is not None else _heat_at(ev.primary_heat, end, ev.stride)
    # A longer path that the detector does not confirm is the other explanation: the primary
    # root may go on there (a faint tip the detector missed), and the chosen end a lateral's.
    share = min(1.0, float(dist[tip]) / longest) ** ALTERNATIVE_POWER
    plant.confidence = detector * share
    plant.low_confidence = plant.confidence < low_confidence
    if plant.low_confidence:
        plant.reason = (
            f"{UNCONFIRMED} ({detector:.2f})"
            if detector < low_confidence
            else f"a longer root path ends elsewhere ({float(dist[tip]) / longest:.0%} of its length)"
        )
    return plant, path


def _choose_end(
    ends: np.ndarray,
    heat: np.ndarray,
    lengths: np.ndarray,
    coords: np.ndarray,
    pred: np.ndarray,
    ppm: float,
    low_confidence: float,
) -> int:
    """Which of a plant's `ends` (skeleton nodes; the tip detector's `heat` near each,
    their path `lengths` from the start) is its primary tip: the index into `ends`."""
    confirmed = heat >= 0.5 * max(float(heat.max()), 1e-6)
    longest = float(lengths.max())
    # The longest path, unless a nearly as long one (>= 60 %) ends where the tip detector fires.
    pick = np.nonzero(confirmed & (lengths >= 0.6 * longest))[0]
    # Ends the detector confirms alike (its heatmap cell is coarse), or all firmly (it fires
    # firmly at old plants' laterals' tips too): the longest of them, the primary root
    # being the longest (dev plates: 1 of 800 realistic tips, unflagged before).
    sure = pick[heat[pick] >= low_confidence]
    top = sure if len(sure) > 1 else pick[heat[pick] >= heat[pick].max() - TIE_HEAT] if len(pick) else pick
    chosen = int(top[np.argmax(lengths[top])] if len(pick) and heat.max() > 0.05 else np.argmax(lengths))
    # A firmly confirmed end whose path goes on straighter where it parts from the chosen
    # one's is the primary's (dev plates: 1 of 800, unflagged before); the longest first.
    straighter = [
        k for k in sure[np.argsort(-lengths[sure])] if _turns_less(coords, pred, int(ends[k]), int(ends[chosen]), ppm)
    ]
    chosen = int(straighter[0]) if straighter else chosen
    far = int(np.argmax(lengths))
    if chosen != far and _turns_less(coords, pred, int(ends[far]), int(ends[chosen]), ppm):
        # Where the chosen path turns off and the longest goes straight on, the chosen one is
        # a lateral's (the primary root keeps its direction), however firmly the detector
        # fires there: it mistakes laterals' tips for primary ones more often than a primary
        # root turns off at a junction (dev plates: 91 -> 92 of 100 realistic, 97 -> 98
        # normal). Where the detector does not confirm the longest path's end, the tip is
        # flagged (below).
        chosen = far
    elif chosen == far and heat[far] < low_confidence:
        # The longest path, its end unconfirmed, may turn off (onto a scratch, a fibre, a
        # neighbour's root) where the primary root goes straight on to a tip the detector
        # confirms firmly: that end is the primary's, however much shorter (at least the
        # TURN_MM it takes to tell a direction). Being under 60 % of the longest path (else it
        # would have been picked above), it stays flagged: a longer path ends elsewhere.
        firm = [k for k in np.argsort(-lengths) if heat[k] >= low_confidence and k != far]
        straight = [k for k in firm if _turns_less(coords, pred, int(ends[k]), int(ends[far]), ppm)]
        if straight:
            chosen = int(straight[0])
    return chosen


def _claim_peaks(
    built: list[_Built],
    starts: list[_Start],
    graph: csr_matrix,
    coords: np.ndarray,
    owner: np.ndarray,
    free: np.ndarray,
    ev: Evidence,
    frame: Frame,
    ppm: float,
    rebuild: Callable[[_Start, int, csr_matrix, np.ndarray, np.ndarray, np.ndarray, int], _Built],
) -> list[_Built]:
    """Firm tip-detector peaks no plant took (CLAIM_PEAK, on the skeleton or within
    TIP_EVIDENCE_MM past one of its ends, farther than that from every primary tip), each
    given to a plant whose own end the detector does not confirm (or that has no root of
    its own left: NO_ROOT), when the peak (PIECE_PEAK or more) ends a free piece of root
    just below that end (_piece_below: the root's mask broken over bare agar), or when
    that plant's root reaches the peak through the graph (_goes_on):
    going on past its end, or going on straighter than its path where the two part, not
    along another plant's primary root (CLAIM_ALONG_MM), and not above the end it would
    replace (CLAIM_RISE_MM: roots grow down; without it a plant whose correct tip the
    detector missed took a peak on another root, found on the `realistic 2` test split).
    Shortest-path ownership gives a root's lower part to a neighbour whose root or
    lateral touches it, or runs a root on past its tip across a bridged gap; the
    detector, which sees the tip itself, undoes that (dev plates: 2 of 700 tips). The
    plant is rebuilt on its own shortest paths to the peak; `rebuild` is _plant with the
    plate's evidence. The paths are searched only as far as CLAIM_DETOUR times the
    farthest peak below the plant's end (not the whole plate's skeleton per flagged
    plant); the whole tree only for a plant that takes a peak."""
    peaks = ev.primary_peaks[ev.primary_peaks[:, 2] >= CLAIM_PEAK] if len(ev.primary_peaks) else ev.primary_peaks
    tips = [np.array(frame.to_model(*p.primary_root_tip), float) for p, _ in built if p.primary_root_tip is not None]
    nodes: list[int] = []  # the unclaimed peaks' skeleton nodes, strongest first
    ends = np.diff(graph.indptr) == 1  # skeleton end points
    strength: dict[int, float] = {}  # each such node's peak
    for x, y, prob in sorted(peaks.tolist(), key=lambda r: -r[2]):
        if any(math.dist((x, y), t) <= TIP_EVIDENCE_MM * ppm for t in tips):
            continue
        # On the skeleton, or past an end of it: a skeleton stops short of a tapering tip.
        d = np.hypot(coords[:, 0] - x, coords[:, 1] - y)
        d[~ends] *= TIP_EVIDENCE_MM / 0.5
        k = int(np.argmin(d)) if len(d) else -1
        if k >= 0 and d[k] <= TIP_EVIDENCE_MM * ppm:
            nodes.append(k)
            strength.setdefault(k, prob)
    out = list(built)
    for n, ((plant, path), s) in enumerate(zip(built, starts, strict=True)):
        unconfirmed = plant.reason.startswith(UNCONFIRMED) or (not len(path) and plant.reason == NO_ROOT)
        if not nodes or not unconfirmed:
            continue
        lowest = (coords[path[-1], 1] if len(path) else s.y) - CLAIM_RISE_MM * ppm
        below = [q for q in nodes if coords[q, 1] >= max(lowest, s.y)]
        if not below:
            continue
        others = {int(v) for m, (_, other) in enumerate(built) if m != n for v in other}
        far = max(math.dist(coords[s.node], coords[q]) for q in below)
        dist, pred = dijkstra(graph, indices=s.node, return_predecessors=True, limit=CLAIM_DETOUR * far + 1.0)
        for q in below:
            if not np.isfinite(dist[q]):
                if strength[q] < PIECE_PEAK:  # across a break the mask does not show: only a firm peak
                    continue
                rivals = [int(other[-1]) for m, (_, other) in enumerate(out) if m != n and len(other)]
                joined = _piece_below(graph, coords, free, q, path if len(path) else np.array([s.node]), rivals, ppm)
                if joined is None:
                    continue
                ow = owner.copy()
                ow[free == free[q]] = owner[s.node]
                tree_dist, tree_pred = dijkstra(joined, indices=s.node, return_predecessors=True)
                out[n] = rebuild(s, plant.plant, joined, tree_dist, tree_pred, ow, q)
                nodes.remove(q)
                break
            new = _path(pred, q)
            if not _goes_on(coords, new, path, _parting(new, path), others, ppm):
                continue
            ow = owner.copy()
            ow[new] = owner[s.node]
            tree_dist, tree_pred = dijkstra(graph, indices=s.node, return_predecessors=True)  # unbounded
            out[n] = rebuild(s, plant.plant, graph, tree_dist, tree_pred, ow, q)
            nodes.remove(q)
            break
    return out


def _claim_ends(
    built: list[_Built],
    starts: list[_Start],
    graph: csr_matrix,
    coords: np.ndarray,
    owner: np.ndarray,
    frame: Frame,
    ppm: float,
    rebuild: Callable[[_Start, int, csr_matrix, np.ndarray, np.ndarray, np.ndarray, int], _Built],
) -> list[_Built]:
    """A plant whose end the detector does not confirm takes the end of a root its own
    path turned off from, where that root goes on straighter (_goes_on, over TURN_MM) to
    a farther end that another plant's start reached first, and that is on no plant's
    primary root: of several, the one whose path turns least (_max_turn), then the
    longest. On old plates a primary root that crosses a neighbour's roots is handed,
    below the crossing, to the neighbour by shortest paths, and its own path ends on a
    lateral (dev plates: 4 of 900 tips). The tip stays flagged: no detector confirms it."""
    ends = np.nonzero(np.diff(graph.indptr) == 1)[0]
    out = list(built)
    for n, ((plant, path), s) in enumerate(zip(built, starts, strict=True)):
        if not len(path) or not plant.reason.startswith(UNCONFIRMED):
            continue
        mine = owner[s.node]
        taken = [
            np.array(frame.to_model(*p.primary_root_tip))
            for m, (p, _) in enumerate(out)
            if m != n and p.primary_root_tip
        ]
        others = {int(v) for m, (_, other) in enumerate(out) if m != n for v in other}
        dist, pred = dijkstra(graph, indices=s.node, return_predecessors=True)
        end = path[-1]
        far = ends[(owner[ends] != mine) & np.isfinite(dist[ends]) & (dist[ends] > dist[end])]
        far = far[coords[far, 1] >= coords[end, 1] - CLAIM_RISE_MM * ppm]  # roots grow down
        reach = max(3, round(TURN_MM * ppm))
        ranked = []
        for q in far.tolist():
            if q in others or any(math.dist(coords[q], t) <= TIP_EVIDENCE_MM * ppm for t in taken):
                continue
            new = _path(pred, q)
            split = _parting(new, path)
            if 0 < split < len(path) and _goes_on(coords, new, path, split, others, ppm, reach):
                ranked.append((_max_turn(coords, new[max(0, split - reach) :], reach), -float(dist[q]), q))
        if ranked:
            q = min(ranked)[2]
            ow = owner.copy()
            ow[_path(pred, q)] = mine
            out[n] = rebuild(s, plant.plant, graph, dist, pred, ow, q)
    return out


def _goes_on(
    coords: np.ndarray,
    new: np.ndarray,
    path: np.ndarray,
    split: int,
    others: set[int],
    ppm: float,
    min_branch: int = 3,
) -> bool:
    """Whether node path `new` (from a plant's start) is its root going on: past the end of
    its `path`, or parting from it (at index `split`, _parting) and going on straighter
    (_straighter), and not along other plants' primary roots (nodes `others`) for more
    than CLAIM_ALONG_MM."""
    if 0 < split < len(path) and not _straighter(coords, new, path, split, ppm, min_branch):
        return False
    return sum(int(v) in others for v in new[split:]) <= CLAIM_ALONG_MM * ppm


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees between vectors a and b (180 where either is zero)."""
    norm = float(np.hypot(*a) * np.hypot(*b))
    return 180.0 if norm == 0 else math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b) / norm))))


def _max_turn(coords: np.ndarray, nodes: np.ndarray, step: int) -> float:
    """The most a node path turns, in degrees, from one stretch of `step` nodes to the next."""
    pts = coords[nodes[::step]]
    if len(pts) < 3:
        return 0.0
    a, b = np.diff(pts[:-1], axis=0), np.diff(pts[1:], axis=0)
    cos = (a * b).sum(axis=1) / np.maximum(np.hypot(a[:, 0], a[:, 1]) * np.hypot(b[:, 0], b[:, 1]), 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).max())


def _piece_below(
    graph: csr_matrix, coords: np.ndarray, free: np.ndarray, q: int, path: np.ndarray, rivals: list[int], ppm: float
) -> csr_matrix | None:
    """The graph with one more edge, from the end of a plant's root (node `path`, base to
    end) to the top of the free piece (no start reaches it) that holds peak node `q`,
    where that piece is a broken-off stretch of the same root: its top within JOIN_MM of
    the end and nearer to it than to the other plants' primary ends (`rivals`); from its
    top it runs on to the peak, JOIN_MIN_MM or more, within PIECE_TURN of the root's
    direction over its last PIECE_MM (straight down for a plant without a root); and it
    lies ahead of the end, not behind it, where the gap is longer than a mm (a piece may
    start beside the end; an end often hooks, so no closer angle). None where it is not."""
    if free[q] < 0:
        return None
    end = int(path[-1])
    piece = np.nonzero(free == free[q])[0]
    gaps = np.hypot(coords[piece, 0] - coords[end, 0], coords[piece, 1] - coords[end, 1])
    top, gap = int(piece[np.argmin(gaps)]), float(gaps.min())
    if gap > JOIN_MM * ppm or math.dist(coords[q], coords[top]) < JOIN_MIN_MM * ppm:
        return None
    if any(math.dist(coords[r], coords[top]) < gap for r in rivals):
        return None
    back = coords[path[max(0, len(path) - 1 - round(PIECE_MM * ppm))]]
    way = coords[end] - back if len(path) > 1 else np.array([0.0, 1.0])
    if _angle(coords[q] - coords[top], way) > PIECE_TURN:
        return None
    if gap > ppm and _angle(coords[top] - coords[end], way) >= 90.0:  # behind the end, not ahead
        return None
    w = max(gap, 1.0)
    edge = coo_matrix(([w, w], ([end, top], [top, end])), shape=graph.shape).tocsr()
    return (graph + edge).tocsr()


def _straighter(coords: np.ndarray, a: np.ndarray, b: np.ndarray, split: int, ppm: float, min_branch: int = 3) -> bool:
    """Whether node path `a` goes on more nearly in the direction the root arrives in
    than node path `b` where they part (index `split`), by TURN_MARGIN degrees: each
    over TURN_MM, or as much of it as there is, if `min_branch` nodes or more (a root's
    overshoot past its tip is short)."""
    reach = max(3, round(TURN_MM * ppm))
    if split < 2 or len(a) - split < min_branch or len(b) - split < min_branch:
        return False
    j = split - 1
    arrive = coords[a[j]] - coords[a[max(0, j - reach)]]

    def turn(p: np.ndarray) -> float:
        out = coords[p[min(len(p) - 1, j + reach)]] - coords[p[j]]
        norm = float(np.linalg.norm(arrive) * np.linalg.norm(out))
        return 0.0 if norm == 0 else math.degrees(math.acos(max(-1.0, min(1.0, float(arrive @ out) / norm))))

    return turn(a) + TURN_MARGIN <= turn(b)


def _free_pieces(graph: csr_matrix, owner: np.ndarray) -> np.ndarray:
    """Per skeleton node, the label of its connected piece when no start reaches any of
    the piece (a root's stretch broken off below a gap, or debris), else -1."""
    _, comp = connected_components(graph, directed=False)
    owned = np.zeros(comp.max() + 1, bool) if len(comp) else np.zeros(0, bool)
    owned[comp[owner >= 0]] = True
    return np.where(owned[comp], -1, comp) if len(comp) else comp


def _join_pieces(
    line: np.ndarray, coords: np.ndarray, graph: csr_matrix, free: np.ndarray, ev: Evidence, ppm: float
) -> list[np.ndarray]:
    """Points (model px) that continue a primary root (`line`, base to end) across gaps
    longer than the tip extension bridges: a free piece of skeleton (no start reaches it)
    whose nearest node lies within JOIN_MM ahead of the end, within JOIN_ANGLE of the
    root's direction over its last mm, that runs on within JOIN_TURN of that direction
    for JOIN_MIN_MM or more, where the root probability along the gap is not bare agar
    (JOIN_SUPPORT). Pieces a start reaches are a plant's own: a neighbour's root is not taken."""
    out: list[np.ndarray] = []
    used: set[int] = set()
    pts = line
    for _ in range(6):  # piece after piece
        d = _direction(pts, ppm)
        if d is None:
            break
        end = pts[-1]
        v = coords - end
        along = v @ d
        across = np.abs(v[:, 0] * d[1] - v[:, 1] * d[0])
        near = (free >= 0) & (along > 0) & (np.hypot(v[:, 0], v[:, 1]) <= JOIN_MM * ppm)
        near &= across <= np.maximum(0.3 * ppm, along * math.tan(math.radians(JOIN_ANGLE)))
        best: tuple[float, np.ndarray, int] | None = None
        for c in np.unique(free[near]):
            if int(c) in used:
                continue
            members = np.nonzero(near & (free == c))[0]
            entry = int(members[np.argmin(np.hypot(v[members, 0], v[members, 1]))])
            gap = float(np.hypot(*v[entry]))
            if best is not None and gap >= best[0]:
                continue
            reach, pred = dijkstra(graph, indices=entry, return_predecessors=True, limit=60 * ppm)
            far = int(np.argmax(np.where(np.isfinite(reach), reach, -1.0)))
            if reach[far] < JOIN_MIN_MM * ppm:
                continue
            piece = coords[_path(pred, far)]
            ahead = piece[min(len(piece) - 1, max(2, round(ppm)))] - piece[0]
            n = float(np.hypot(*ahead))
            if n == 0 or float(ahead @ d) / n < math.cos(math.radians(JOIN_TURN)):
                continue
            if _along(ev.root, end, piece[0], ev.root_threshold) < JOIN_SUPPORT:
                continue
            best = (gap, piece, int(c))
        if best is None:
            break
        gap, piece, c = best
        used.add(c)
        k = max(2, int(gap))
        bridge = end + np.outer(np.arange(1, k) / k, piece[0] - end)
        new = np.vstack([bridge, piece])
        out.extend(new)
        pts = np.vstack([pts, new])
    return out


def _along(root_p: np.ndarray, a: np.ndarray, b: np.ndarray, sure: float) -> float:
    """Mean root probability along the gap between root ends a and b (model px): each
    point's the most of its 3 x 3 neighbourhood (a faint root a pixel off the straight
    line still counts), over the points where that is not sure root (the ends' own)."""
    n = max(2, int(math.dist(a, b)) + 1)
    h, w = root_p.shape
    xs = np.clip(np.round(np.linspace(a[0], b[0], n)).astype(int), 1, w - 2)
    ys = np.clip(np.round(np.linspace(a[1], b[1], n)).astype(int), 1, h - 2)
    near = np.max([root_p[ys + dy, xs + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    gap = near[near < sure]
    return float(gap.mean()) if gap.size else 1.0


def _direction(path: np.ndarray, ppm: float) -> np.ndarray | None:
    """Unit direction of a path over its last mm but its last few pixels (an end can hook)."""
    if len(path) < 4:
        return None
    back = path[max(0, len(path) - 1 - max(4, round(ppm))) :]
    d = back[-min(3, len(back) - 1) - 1] - back[0]
    norm = float(np.hypot(d[0], d[1]))
    return None if norm == 0 else d / norm


def _turns_less(coords: np.ndarray, pred: np.ndarray, a: int, b: int, ppm: float) -> bool:
    """Whether, where the paths to ends `a` and `b` part, a's goes on more nearly in the
    direction the root arrives in than b's does (by TURN_MARGIN degrees or more); False
    where either branch is shorter than TURN_MM (a spur at the tip: too short to tell)."""
    pa, pb = _path(pred, a), _path(pred, b)
    return _straighter(coords, pa, pb, _parting(pa, pb), ppm, min_branch=max(3, round(TURN_MM * ppm)))


def _parting(a: np.ndarray, b: np.ndarray) -> int:
    """The index where node paths `a` and `b` (from the same start) part: the length of
    their common beginning."""
    n = min(len(a), len(b))
    return int(np.argmin(a[:n] == b[:n])) if (a[:n] != b[:n]).any() else n


def _cut_at_peak(ev: Evidence, path: np.ndarray, ppm: float) -> int:
    """How many points of `path` (model px, base to tip) to keep: all, unless a strong
    tip-detector peak (CUT_PEAK) lies on the path at most CUT_MAX_MM before its end while
    the detector is nearly silent at the end: under CUT_RATIO of that peak, right under the
    end and at any peak within TIP_EVIDENCE_MM past it. Then the root ends at the (last
    such) peak: the mask ran on past the tip into a drop, or the faint-tip extension did.
    A firm peak (CUT_BRIDGED_PEAK) with a bridged gap after it (a step over
    CUT_BRIDGED_GAP_MM: the path went on across bare agar into a fibre, debris or the
    mould ring) ends the root however far the path runs on, where the end is any weaker;
    such a peak up to half a millimetre past the node the path was bridged on from counts
    as on it (dev plates: 3 and 3 of 700 tips)."""
    n = len(path)
    if n < 3 or not len(ev.primary_peaks):
        return n
    on = 0.4 * ppm  # a peak this close to the path is on it (a root is about 0.3 mm wide)
    steps = np.hypot(*np.diff(path, axis=0).T)
    to_end = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])  # along the path, model px
    gap_after = np.concatenate([np.maximum.accumulate(steps[::-1])[::-1], [0.0]])  # largest step on
    at_end = _heat_under(ev.primary_heat, path[-1], ev.stride)
    keep, strength, bridged = 0, 0.0, False
    for x, y, prob in ev.primary_peaks:
        d = np.hypot(path[:, 0] - x, path[:, 1] - y)
        k = int(np.argmin(d))
        across = prob >= CUT_BRIDGED_PEAK and gap_after[k] >= CUT_BRIDGED_GAP_MM * ppm
        # A skeleton stops about half a root width short of a tip: a peak that far past the
        # node the path was bridged on from is that node's.
        if (d[k] > on and not (across and d[k] <= 0.5 * ppm)) or to_end[k] <= on:  # past the end or at it
            if math.dist((x, y), path[-1]) <= TIP_EVIDENCE_MM * ppm:
                at_end = max(at_end, float(prob))
            continue
        if k + 1 > keep and prob >= CUT_PEAK and (to_end[k] <= CUT_MAX_MM * ppm or across):
            keep, strength, bridged = k + 1, float(prob), across
    if keep and bridged:
        return keep if at_end < strength else n
    return keep if keep and at_end < CUT_RATIO * strength else n


def _peak_near(peaks: np.ndarray, p: np.ndarray, radius: float) -> np.ndarray | None:
    """The strongest peak within `radius` of p (model px), or None."""
    if not len(peaks):
        return None
    d = np.hypot(peaks[:, 0] - p[0], peaks[:, 1] - p[1])
    near = np.nonzero(d <= radius)[0]
    return peaks[near[np.argmax(peaks[near, 2])]] if len(near) else None


def _peak_ahead(
    ev: Evidence,
    line: np.ndarray,
    ppm: float,
    taken: Callable[[np.ndarray], bool],
    reach_mm: float = AHEAD_MM,
    peaks: np.ndarray | None = None,
) -> np.ndarray | None:
    """The strongest tip-detector peak just past the end of `line` (model px, base to
    tip): at most AHEAD_MM on (just beyond TIP_EVIDENCE_MM, which confirms an end),
    within AHEAD_ANGLE of the root's direction over its last mm, with faint root
    evidence between (AHEAD_SUPPORT, not bare agar), and not on another plant's root
    (`taken`). A young root's last half millimetre can be too faint for the mask and
    the extension while the tip detector, which looks at a wider context, still finds
    its tip; the mask often stops abruptly there rather than fading (dev plates: 3 of
    the 5 peaks taken were past ends whose last millimetre was sure root). `peaks`:
    rows (x, y, probability) to look among instead of the primary-tip peaks."""
    peaks = ev.primary_peaks if peaks is None else peaks
    if not len(peaks):
        return None
    ahead = _ahead(ev, line, peaks[:, :2], reach_mm * ppm, ppm)
    for k in np.argsort(-peaks[:, 2]):
        if ahead[k] and not taken(peaks[k]):
            return peaks[k]
    return None


def _ahead(ev: Evidence, line: np.ndarray, points: np.ndarray, reach: float, ppm: float) -> np.ndarray:
    """Which `points` (model px) lie past the end of `line` (base to tip) where its root
    would run on: at most `reach` on, within AHEAD_ANGLE of its direction over its last
    mm, with faint root evidence between (AHEAD_SUPPORT, not bare agar)."""
    d = _direction(line, ppm)
    if d is None:
        return np.zeros(len(points), bool)
    end = line[-1]
    v = points - end
    along = v @ d
    across = np.abs(v[:, 0] * d[1] - v[:, 1] * d[0])
    ahead = (along > 0) & (np.hypot(v[:, 0], v[:, 1]) <= reach)
    ahead &= across <= np.maximum(0.3 * ppm, along * math.tan(math.radians(AHEAD_ANGLE)))
    for k in np.nonzero(ahead)[0]:
        ahead[k] = _along(ev.root, end, points[k], ev.root_threshold) >= AHEAD_SUPPORT
    return ahead


def _fading(root: np.ndarray, path: np.ndarray, ppm: float) -> bool:
    """Whether a root (`path`, model px, base to tip) fades out: its last millimetre's
    median root probability under EXTEND_FADING (a crisp end is where the root ends)."""
    h, w = root.shape
    last = path[-max(2, round(ppm)) :].round().astype(int)
    last_p = root[np.clip(last[:, 1], 0, h - 1), np.clip(last[:, 0], 0, w - 1)]
    return float(np.median(last_p)) < EXTEND_FADING


def _extend_tip(root: np.ndarray, path: np.ndarray, ppm: float) -> list[np.ndarray]:
    """Points (model px) beyond the end of `path` (model px, base to tip), for a root that
    fades out (its last millimetre below EXTEND_FADING), where the root
    probability, though below the mask's thresholds, stays at least EXTEND_LOW along the
    root's direction (turning at most 20 degrees a step), across gaps of at most
    EXTEND_GAP_MM; at most EXTEND_MM in all."""
    if len(path) < 3 or not _fading(root, path, ppm):
        return []  # a crisp end: the root ends where its mask does (a halo past it is no tip)
    h, w = root.shape
    # The direction over the last 2 mm but its last pixels: a skeleton's very end can hook sideways.
    back = path[max(0, len(path) - 1 - max(4, round(2 * ppm))) :]
    d = back[-min(3, len(back) - 1) - 1] - back[0]
    norm = float(np.hypot(d[0], d[1]))
    if norm == 0:
        return []
    d = d / norm
    pos, out, kept, gap = back[-1].astype(float), [], 0, 0
    for _ in range(round(EXTEND_MM * ppm)):
        best, best_v = None, -1.0
        for a in (-0.35, -0.17, 0.0, 0.17, 0.35):
            c, s = math.cos(a), math.sin(a)
            step = np.array([d[0] * c - d[1] * s, d[0] * s + d[1] * c])
            q = pos + step
            x, y = round(float(q[0])), round(float(q[1]))
            if 0 <= x < w and 0 <= y < h:
                v = float(root[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max())  # a tip 1-2 px wide
                if v > best_v:
                    best, best_v = step, v
        if best is None:
            break
        pos = pos + best
        out.append(pos.copy())
        if best_v >= EXTEND_LOW:
            d = 0.7 * d + 0.3 * best
            d = d / float(np.hypot(d[0], d[1]))
            kept, gap = len(out), 0
        else:
            gap += 1
            if gap > EXTEND_GAP_MM * ppm:
                break
    return out[:kept]


def _on_root(root: np.ndarray, p: np.ndarray, radius: int = 2) -> bool:
    """Whether model point p lies on root pixels (a faint tip counts: ROOT_LOW)."""
    x, y = round(float(p[0])), round(float(p[1]))
    h, w = root.shape
    window = root[max(0, y - radius) : min(h, y + radius + 1), max(0, x - radius) : min(w, x + radius + 1)]
    return bool(window.size and window.max() >= ROOT_LOW)


def _heat_at(heat: np.ndarray | None, p: np.ndarray, stride: int) -> float:
    """The tip detector's probability at model point p (its heatmap cell and the next ones)."""
    return _heat_near(heat, p, stride, stride)


def _heat_under(heat: np.ndarray | None, p: np.ndarray, stride: int) -> float:
    """The tip detector's probability right at model point p: the most of the (up to) four
    heatmap cells whose centres surround it."""
    if heat is None:
        return 0.0
    gu, gv = math.floor(float(model_to_grid(p[0], stride))), math.floor(float(model_to_grid(p[1], stride)))
    cells = heat[max(0, gv) : max(0, gv + 2), max(0, gu) : max(0, gu + 2)]
    return float(cells.max()) if cells.size else 0.0


def _end_points(graph: csr_matrix, mine: np.ndarray) -> np.ndarray:
    degree = np.diff(graph.indptr)
    return np.nonzero(mine & (degree == 1))[0]


def _path(pred: np.ndarray, end: int, stop: set[int] | None = None) -> np.ndarray:
    """Nodes from the start (or the first node in `stop`) to `end`."""
    out = [end]
    while pred[out[-1]] >= 0 and not (stop and out[-1] in stop):
        out.append(int(pred[out[-1]]))
    return np.array(out[::-1])


def _polyline_length(points: list[Point], step: int = 6) -> float:
    """Length along a pixel path sampled every few points: summing 8-connected steps
    overstates a smooth curve by about 3 %."""
    if len(points) < 2:
        return 0.0
    pts = np.asarray(points)
    sampled = np.vstack([pts[::step], pts[-1:]])
    return float(np.linalg.norm(np.diff(sampled, axis=0), axis=1).sum())


def _heat_near(heat: np.ndarray | None, p: np.ndarray, stride: int, radius_model_px: float) -> float:
    """The highest tip-detector probability within `radius` of model point p."""
    if heat is None:
        return 0.0
    gu, gv = float(model_to_grid(p[0], stride)), float(model_to_grid(p[1], stride))
    r = max(1, math.ceil(radius_model_px / stride))
    h, w = heat.shape
    u0, u1 = max(0, int(gu) - r), min(w, int(gu) + r + 2)
    v0, v1 = max(0, int(gv) - r), min(h, int(gv) + r + 2)
    return float(heat[v0:v1, u0:u1].max()) if u1 > u0 and v1 > v0 else 0.0
