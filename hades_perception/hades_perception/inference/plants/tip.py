"""Where a primary root ends: pieces of a faint root joined on, a faint tip followed
past the mask, the tip detector's peak at or just past the end taken as the tip,
and a path cut at a peak where the mask ran on past the tip.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from hades_perception.inference.plants.graph import _along, _direction, _path
from hades_perception.inference.plants.plant import Evidence
from hades_perception.inference.plants.thresholds import (
    AHEAD_ANGLE,
    AHEAD_MM,
    AHEAD_SUPPORT,
    CUT_BRIDGED_GAP_MM,
    CUT_BRIDGED_PEAK,
    CUT_MAX_MM,
    CUT_PEAK,
    CUT_RATIO,
    EXTEND_FADING,
    EXTEND_GAP_MM,
    EXTEND_LOW,
    EXTEND_MM,
    JOIN_ANGLE,
    JOIN_MIN_MM,
    JOIN_MM,
    JOIN_SUPPORT,
    JOIN_TURN,
    ROOT_LOW,
    TIP_EVIDENCE_MM,
)


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
    at_end = _heat_under(ev, ev.primary_heat, path[-1])
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


def _heat_at(ev: Evidence, heat: np.ndarray | None, p: np.ndarray) -> float:
    """The tip detector's probability at model point p (its heatmap cell and the next ones)."""
    return _heat_near(ev, heat, p, ev.stride)


def _heat_under(ev: Evidence, heat: np.ndarray | None, p: np.ndarray) -> float:
    """The tip detector's probability right at model point p: the most of the (up to) four
    heatmap cells whose centres surround it."""
    if heat is None:
        return 0.0
    gu, gv = (math.floor(g) for g in ev.cell(p))
    cells = heat[max(0, gv) : max(0, gv + 2), max(0, gu) : max(0, gu + 2)]
    return float(cells.max()) if cells.size else 0.0


def _heat_near(ev: Evidence, heat: np.ndarray | None, p: np.ndarray, radius_model_px: float) -> float:
    """The highest tip-detector probability within `radius` of model point p."""
    if heat is None:
        return 0.0
    gu, gv = ev.cell(p)
    r = max(1, math.ceil(radius_model_px / ev.stride))
    h, w = heat.shape
    u0, u1 = max(0, int(gu) - r), min(w, int(gu) + r + 2)
    v0, v1 = max(0, int(gv) - r), min(h, int(gv) + r + 2)
    return float(heat[v0:v1, u0:u1].max()) if u1 > u0 and v1 > v0 else 0.0
