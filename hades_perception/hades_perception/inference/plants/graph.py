"""The root skeleton as a graph: the root mask it is drawn from, the dish mould's
ring taken out, crossings run straight through, gaps bridged, and the paths and
directions the other steps measure on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Final, Literal

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from skimage.graph import pixel_graph
from skimage.morphology import skeletonize

from hades_perception.inference.components import components_with_stats
from hades_perception.inference.plants.plant import Evidence, Point, _Start
from hades_perception.inference.plants.thresholds import (
    CROSS_MM,
    CROSS_TURN,
    GAP_BARE_MM,
    GAP_MM,
    GAP_NEAR_MM,
    GAP_PIECE_MM,
    GAP_SUPPORT,
    RING_ARC,
    RING_FIT,
    RING_MM,
    ROOT_LOW,
    TURN_MARGIN,
    TURN_MM,
)


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


def _thin(mask: np.ndarray) -> np.ndarray:
    """skimage's skeletonize, run on each 8-connected piece's bounding box. The same
    pixels as on the whole mask (a pixel's removal depends on its 3x3 neighbourhood, which
    holds no other piece's pixels, and a piece that stops changing stays so), in less time,
    as roots fill under 2 % of the plate: 9-12 against 13-34 ms on six full test plates,
    2 cores (benchmarks/README.md, "Postprocess")."""
    n, labels, stats, _ = components_with_stats(mask.astype(np.uint8), connectivity=8)
    out = np.zeros(mask.shape, bool)
    for k in range(1, n):
        x, y, w, h = stats[k, :4]
        out[y : y + h, x : x + w] |= skeletonize(labels[y : y + h, x : x + w] == k)
    return out


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
        sizes = np.bincount(comp)
        for top in _top_nodes(comp, coords, np.nonzero(~reached)[0]):
            tx, ty = coords[top]
            # Reached nodes within the gap, not below the piece's top by over a quarter of it.
            cand = np.sort(reached_nodes[near_reached.query_ball_point((tx, ty), gap + 1e-6)])
            cand = cand[coords[cand, 1] <= ty + gap / 4]
            if not len(cand):
                continue
            d = np.hypot(coords[cand, 0] - tx, coords[cand, 1] - ty)
            long_piece = sizes[comp[top]] >= GAP_PIECE_MM * ppm
            found = _gap_end(
                d,
                long_piece,
                ppm,
                gap,
                lambda j: _supported(root_p, coords[cand[j]], coords[top], sure),  # noqa: B023 (called at once)
                lambda j: _continues(coords, pred, int(cand[j]), coords[top], int(ppm)),  # noqa: B023
            )
            if found is None:
                continue
            j = found
            extra_rows += [int(cand[j]), int(top)]
            extra_cols += [int(top), int(cand[j])]
            extra_w += [float(d[j])] * 2
            joined = True
        if not joined:
            break
        n = g.shape[0]
        g = graph + csr_matrix((extra_w, (extra_rows, extra_cols)), shape=(n, n))
    return g


def _gap_end(
    d: np.ndarray,
    long_piece: bool,
    ppm: float,
    gap: float,
    supported: Callable[[int], bool],
    continues: Callable[[int], bool],
) -> int | None:
    """Which of the reached nodes at distances `d` from a piece's top it joins, if any: the
    nearest (the lowest-numbered of equally near ones), where the gap's root probability
    supports it (`supported(j)`) and, over a mm, it goes on in the root's direction
    (`continues(j)`: a fibre beside a root's end is not its continuation).

    A long piece (GAP_PIECE_MM of skeleton or more: a stretch of root that must be some
    plant's) also joins across GAP_BARE_MM or less of bare agar, or to a node up to
    GAP_NEAR_MM farther than the nearest whose gap is supported (the nearest pixel of a
    skeleton can sit across a bare corner from the piece). On the four
    `realistic` dev splits of session 27 this gave 4 primary roots of 800 their lower parts
    back (their tips had been missed by 11-38 mm); a short piece keeps the nearest-only
    rule, as joining every crumb in an old plate's mesh of laterals led one root astray."""
    order = np.argsort(d, kind="stable")
    for j in order if long_piece else order[:1]:
        if d[j] > gap or d[j] > d[order[0]] + GAP_NEAR_MM * ppm:
            return None
        if not ((long_piece and d[j] <= GAP_BARE_MM * ppm) or supported(int(j))):
            continue
        if d[j] <= ppm or continues(int(j)):
            return int(j)
    return None


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


def _own(graph: csr_matrix, starts: list[_Start]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shortest-path distance and predecessor of every skeleton pixel from the start that
    reaches it first, and which start that is (-1: none); each start's root length."""
    dist, pred, sources = dijkstra(graph, indices=[s.node for s in starts], return_predecessors=True, min_only=True)
    by_node = {s.node: i for i, s in enumerate(starts)}
    owner = np.array([by_node.get(int(s), -1) for s in sources])
    for i, s in enumerate(starts):
        s.length = _tree_length(dist, pred, owner == i)
    return dist, pred, owner


def _free_pieces(graph: csr_matrix, owner: np.ndarray) -> np.ndarray:
    """Per skeleton node, the label of its connected piece when no start reaches any of
    the piece (a root's stretch broken off below a gap, or debris), else -1."""
    _, comp = connected_components(graph, directed=False)
    owned = np.zeros(comp.max() + 1, bool) if len(comp) else np.zeros(0, bool)
    owned[comp[owner >= 0]] = True
    return np.where(owned[comp], -1, comp) if len(comp) else comp


def _end_points(graph: csr_matrix, mine: np.ndarray) -> np.ndarray:
    degree = np.diff(graph.indptr)
    return np.nonzero(mine & (degree == 1))[0]


def _path(pred: np.ndarray, end: int, stop: set[int] | None = None) -> np.ndarray:
    """Nodes from the start (or the first node in `stop`) to `end`."""
    out = [end]
    while pred[out[-1]] >= 0 and not (stop and out[-1] in stop):
        out.append(int(pred[out[-1]]))
    return np.array(out[::-1])


def _parting(a: np.ndarray, b: np.ndarray) -> int:
    """The index where node paths `a` and `b` (from the same start) part: the length of
    their common beginning."""
    n = min(len(a), len(b))
    return int(np.argmin(a[:n] == b[:n])) if (a[:n] != b[:n]).any() else n


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


def _turns_less(coords: np.ndarray, pred: np.ndarray, a: int, b: int, ppm: float) -> bool:
    """Whether, where the paths to ends `a` and `b` part, a's goes on more nearly in the
    direction the root arrives in than b's does (by TURN_MARGIN degrees or more); False
    where either branch is shorter than TURN_MM (a spur at the tip: too short to tell)."""
    pa, pb = _path(pred, a), _path(pred, b)
    return _straighter(coords, pa, pb, _parting(pa, pb), ppm, min_branch=max(3, round(TURN_MM * ppm)))


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


def _direction(path: np.ndarray, ppm: float) -> np.ndarray | None:
    """Unit direction of a path over its last mm but its last few pixels (an end can hook)."""
    if len(path) < 4:
        return None
    back = path[max(0, len(path) - 1 - max(4, round(ppm))) :]
    d = back[-min(3, len(back) - 1) - 1] - back[0]
    norm = float(np.hypot(d[0], d[1]))
    return None if norm == 0 else d / norm


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


def _polyline_length(points: list[Point], step: int = 6) -> float:
    """Length along a pixel path sampled every few points: summing 8-connected steps
    overstates a smooth curve by about 3 %."""
    if len(points) < 2:
        return 0.0
    pts = np.asarray(points)
    sampled = np.vstack([pts[::step], pts[-1:]])
    return float(np.linalg.norm(np.diff(sampled, axis=0), axis=1).sum())
