"""One plant from its start: which end is its primary tip, its primary root and
laterals, their lengths, and how certain the tip is.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.sparse import csr_matrix

from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants.graph import _end_points, _path, _polyline_length, _tree_length, _turns_less
from hades_perception.inference.plants.plant import NO_ROOT, UNCONFIRMED, Evidence, Plant, Point, _Built, _Start
from hades_perception.inference.plants.thresholds import (
    ALTERNATIVE_POWER,
    FURTHER_MM,
    FURTHER_RATIO,
    LATERAL_MIN_MM,
    OTHER_TIP_PEAK,
    TIE_HEAT,
    TIP_EVIDENCE_MM,
)
from hades_perception.inference.plants.tip import (
    _ahead,
    _cut_at_peak,
    _extend_tip,
    _heat_at,
    _heat_near,
    _join_pieces,
    _on_root,
    _peak_ahead,
    _peak_near,
)


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
    heat = np.array([_heat_near(ev, ev.primary_heat, coords[e], TIP_EVIDENCE_MM * ppm) for e in ends])
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
        plant.lateral_tips.append((x, y, _heat_near(ev, ev.tip_heat, coords[e], TIP_EVIDENCE_MM * ppm)))
    plant.lateral_root_count = len(plant.lateral_paths)
    detector = float(peak[2]) if peak is not None else _heat_at(ev, ev.primary_heat, end)
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
    straighter = _straighter_end(sure[np.argsort(-lengths[sure])], chosen, ends, coords, pred, ppm)
    chosen = chosen if straighter is None else straighter
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
        firm = [k for k in np.argsort(-lengths) if heat[k] >= low_confidence]
        straight = _straighter_end(firm, far, ends, coords, pred, ppm)
        if straight is not None:
            chosen = straight
    return chosen


def _straighter_end(
    order: Iterable[int], than: int, ends: np.ndarray, coords: np.ndarray, pred: np.ndarray, ppm: float
) -> int | None:
    """The first of `order` (indices into `ends`) whose path goes on straighter than end
    `than`'s where the two part (_turns_less), or None."""
    for k in order:
        if k != than and _turns_less(coords, pred, int(ends[k]), int(ends[than]), ppm):
            return int(k)
    return None
