"""Roots given back after shortest paths gave them to the wrong plant: unclaimed
firm tip peaks and the ends of roots a flagged plant turned off from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants.graph import _angle, _max_turn, _parting, _path, _straighter
from hades_perception.inference.plants.plant import NO_ROOT, UNCONFIRMED, Evidence, _Built, _Start
from hades_perception.inference.plants.thresholds import (
    CLAIM_ALONG_MM,
    CLAIM_DETOUR,
    CLAIM_PEAK,
    CLAIM_RISE_MM,
    JOIN_MIN_MM,
    JOIN_MM,
    PIECE_MM,
    PIECE_PEAK,
    PIECE_TURN,
    SWAP_DETOUR,
    SWAP_MEET_MM,
    SWAP_TURN,
    TIP_EVIDENCE_MM,
    TURN_MM,
)


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


def _swap_crossed(
    built: list[_Built],
    starts: list[_Start],
    graph: csr_matrix,
    coords: np.ndarray,
    owner: np.ndarray,
    ppm: float,
    rebuild: Callable[[_Start, int, csr_matrix, np.ndarray, np.ndarray, np.ndarray, int], _Built],
) -> list[_Built]:
    """Two neighbours whose primary roots cross, each given the other's lower part: their
    tips are swapped where each start reaches the other's tip, at least one of the two is
    flagged, and the swapped paths turn less, together, by SWAP_TURN degrees or more (the
    most each turns from a stretch of TURN_MM to the next, from just before where it parts
    from the current path). Roots keep their direction through a crossing. On an old
    plate the crossing's skeleton can be too tangled for the straight runs (_uncross) to be
    found; shortest paths then send each plant down the other's root, one of them
    confidently to the other's firmly confirmed tip (dev plates: seed 114, exp002_0009,
    kept as a test fixture). Both are rebuilt on their own shortest paths to their new tips."""
    out = list(built)
    reach = max(3, round(TURN_MM * ppm))
    for i in range(len(out) - 1):
        (a, path_a), (b, path_b) = out[i], out[i + 1]
        if len(path_a) < 2 * reach or len(path_b) < 2 * reach or not (a.low_confidence or b.low_confidence):
            continue
        meet = SWAP_MEET_MM * ppm
        if cKDTree(coords[path_a]).query(coords[path_b], distance_upper_bound=meet)[0].min() > meet:
            continue  # the two paths do not meet: no crossing (most pairs stop here, before any search)
        if _max_turn(coords, path_a, reach) + _max_turn(coords, path_b, reach) < SWAP_TURN:
            continue  # nothing a swap could straighten
        # Both trees in one search, only as far as a path that crosses over could reach.
        longest = max(_length(coords, path_a), _length(coords, path_b))
        dist, pred = dijkstra(
            graph, indices=[starts[i].node, starts[i + 1].node], return_predecessors=True, limit=SWAP_DETOUR * longest
        )
        (dist_a, dist_b), (pred_a, pred_b) = dist, pred
        tip_a, tip_b = int(path_a[-1]), int(path_b[-1])
        if not (np.isfinite(dist_a[tip_b]) and np.isfinite(dist_b[tip_a])):
            continue
        new_a, new_b = _path(pred_a, tip_b), _path(pred_b, tip_a)

        def turning(new: np.ndarray, old: np.ndarray) -> tuple[float, float]:
            first = max(0, _parting(new, old) - reach)
            return _max_turn(coords, new[first:], reach), _max_turn(coords, old[first:], reach)

        (a_new, a_old), (b_new, b_old) = turning(new_a, path_a), turning(new_b, path_b)
        if a_new + b_new + SWAP_TURN > a_old + b_old:
            continue
        ow = owner.copy()
        ow[new_a], ow[new_b] = owner[starts[i].node], owner[starts[i + 1].node]
        out[i] = rebuild(starts[i], a.plant, graph, dist_a, pred_a, ow, tip_b)
        out[i + 1] = rebuild(starts[i + 1], b.plant, graph, dist_b, pred_b, ow, tip_a)
    return out


def _length(coords: np.ndarray, nodes: np.ndarray) -> float:
    """Length of a node path, model px."""
    return float(np.hypot(*np.diff(coords[nodes], axis=0).T).sum())


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
