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
   along the gap supports it (a faint stretch, not bare agar); a long piece also across
   a hair of bare agar, or to a skeleton pixel a little farther whose gap is supported;
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
   neighbour's start reached first (a primary root crossing a neighbour's); two
   neighbours sent down each other's roots swap tips where that turns less;
7. numbering: plants left to right in the manifest's count of slots; a slot with no
   plant found keeps its index, flagged low-confidence with a reason;
8. given the photograph (its green channel, full resolution), a primary tip the
   detector does not confirm is followed on along the dark line its root makes in the
   image, straight on from the root's direction, while that line stays clearly darker
   than the agar beside it (at most 3 mm; `trace`): a young root's faint last stretch,
   which the mask and the detector lose at model resolution. The tip stays flagged.

`find_plants` below runs the steps. Modules: `plant` (what the step reads and gives),
`thresholds` (every threshold and distance), `graph` (steps 1, 2 and 4, and the paths
measured on the graph), `starts` (3 and 7), `primary` and `tip` (5), `claims` (6),
`trace` (8).
Names with a leading underscore are the package's own, not an API.

"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from hades_perception.inference.geometry import Frame
from hades_perception.inference.plants.claims import _claim_ends, _claim_peaks, _swap_crossed
from hades_perception.inference.plants.graph import (
    _bridge,
    _free_pieces,
    _mould_ring,
    _own,
    _root_mask,
    _skeleton_graph,
    _thin,
    _uncross,
)
from hades_perception.inference.plants.plant import NOT_FOUND, OFF_IMAGE, Evidence, Plant, Point, _Built, _Start
from hades_perception.inference.plants.primary import _plant
from hades_perception.inference.plants.starts import (
    _in_row,
    _numbered,
    _off,
    _plausible,
    _rootless_starts,
    _slots,
    _starts,
)
from hades_perception.inference.plants.thresholds import ATTACH_MM, NOMINAL_PX_PER_MM
from hades_perception.inference.plants.trace import trace_tips

__all__ = ["ATTACH_MM", "NOMINAL_PX_PER_MM", "Evidence", "Plant", "Point", "find_plants"]


def find_plants(
    ev: Evidence,
    frame: Frame,
    n_plants: int,
    px_per_mm: float | None,
    low_confidence: float,
    dish_span: tuple[float, float] | None = None,
    image_width: float | None = None,
    grey: np.ndarray | None = None,
) -> list[Plant]:
    """`n_plants` plants, left to right. `dish_span`: the agar's x extent in image px,
    to place plants in their slots when fewer than n_plants are found (it may reach past
    the image where the dish runs off it); `image_width`: what the image shows, to tell a
    plant whose slot is off the image from one not found; `grey`: the photograph's green
    channel (input-image px), to follow unconfirmed tips in (step 8)."""
    ppm_model = (px_per_mm or NOMINAL_PX_PER_MM) * frame.scale  # model px per mm

    roots = _root_mask(ev)
    skel = _thin(roots)
    starts: list[_Start] = []
    graph: csr_matrix | None = None
    coords = np.empty((0, 2))
    if skel.any():
        graph, coords = _skeleton_graph(skel)
        ring = _mould_ring(graph, coords, ppm_model)
        if ring.any():  # the dish mould's ring, segmented as root: not a root to follow
            skel[coords[ring, 1].astype(int), coords[ring, 0].astype(int)] = False
            skel = _thin(skel)  # a fork's pixels left where a root touched the ring: thinned to an end
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
        built = _swap_crossed(built, [s for _, s in numbered], graph, coords, owner, ppm_model, rebuild)
    found = [plant for plant, _ in built]
    if grey is not None:
        found = trace_tips(grey, found, px_per_mm or NOMINAL_PX_PER_MM, low_confidence)
    taken = {p.plant for p in found}
    slots = _slots(dish_span, n_plants) if dish_span is not None else [None] * n_plants
    missing = [
        Plant(i, 0.0, True, reason=OFF_IMAGE if _off(slots[i], image_width) else NOT_FOUND)
        for i in range(n_plants)
        if i not in taken
    ]
    return sorted(found + missing, key=lambda p: p.plant)
