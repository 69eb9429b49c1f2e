"""Root-tip and seed landmarks derived from masks, the way the Hades ground truth defines them.

Real Hades sets ship no tip points: a plant's root tips are the end points of its
root skeleton, and the primary root tip is the end of the longest path from the
plant's root base (../shared/HADES.md). Plants are numbered left to right by
their seeds (or, without seeds, by the top of each root system).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

from hades_training.data.sample import PlantTruth, Point

# Side branches of the skeleton shorter than this are skeletonisation spurs, not roots.
MIN_BRANCH_PX = 10.0
# A root base is the skeleton pixel nearest to the seed, if within this distance.
MAX_BASE_DISTANCE_PX = 150.0
MIN_SEED_AREA_PX = 8
PATH_SAMPLE_PX = 6

_OFFSETS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, float(np.sqrt(2))), (1, -1, float(np.sqrt(2))))


def _skeleton_graph(skel: np.ndarray) -> tuple[np.ndarray, coo_matrix]:
    """Pixels of a skeleton as graph nodes, 8-connected, edge weights in px."""
    ys, xs = np.nonzero(skel)
    index = np.full(skel.shape, -1, np.int64)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, weights = [], [], []
    h, w = skel.shape
    for dy, dx, weight in _OFFSETS:
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        nb = np.full(len(ys), -1, np.int64)
        nb[ok] = index[ny[ok], nx[ok]]
        has = nb >= 0
        if dy and dx:
            # No diagonal edge where an orthogonal two-step path exists: keeps node
            # degrees topological (an end point has one neighbour) at staircase corners.
            corner = np.zeros(len(ys), bool)
            corner[ok] = skel[ys[ok], nx[ok]] | skel[ny[ok], xs[ok]]
            has &= ~corner
        rows.append(np.nonzero(has)[0])
        cols.append(nb[has])
        weights.append(np.full(int(has.sum()), weight))
    r, c, wt = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    n = len(ys)
    graph = coo_matrix((np.concatenate([wt, wt]), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n))
    return np.stack([xs, ys], axis=1).astype(np.float64), graph


def _true_tips(coords: np.ndarray, graph: coo_matrix) -> np.ndarray:
    """End points (one neighbour) that are not short spurs off a junction."""
    csr = graph.tocsr()
    degree = np.diff(csr.indptr)
    tips = []
    for e in np.nonzero(degree == 1)[0]:
        prev, node, length = -1, int(e), 0.0
        while True:
            nbrs = csr.indices[csr.indptr[node] : csr.indptr[node + 1]]
            dists = csr.data[csr.indptr[node] : csr.indptr[node + 1]]
            nxt = [(int(n), float(d)) for n, d in zip(nbrs, dists, strict=True) if n != prev]
            if len(nxt) != 1 or length >= MIN_BRANCH_PX:
                break
            prev, node = node, nxt[0][0]
            length += nxt[0][1]
            if degree[node] >= 3:
                break
        is_spur = degree[node] >= 3 and length < MIN_BRANCH_PX
        if not is_spur:
            tips.append(int(e))
    return np.array(tips, np.int64)


def _path_length(coords: np.ndarray, predecessors: np.ndarray, end: int) -> float:
    """Length of the shortest path to `end`, measured along the path sampled every
    few pixels: summing 8-connected steps would overstate it by about 3 %."""
    path = [end]
    while predecessors[path[-1]] >= 0:
        path.append(int(predecessors[path[-1]]))
    pts = coords[path[::-1]]
    sampled = np.vstack([pts[::PATH_SAMPLE_PX], pts[-1:]])
    return float(np.linalg.norm(np.diff(sampled, axis=0), axis=1).sum())


def _seed_points(seed_mask: np.ndarray | None) -> list[Point]:
    if seed_mask is None or not seed_mask.any():
        return []
    labels, n = ndi.label(seed_mask > 0)
    areas = ndi.sum(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    centres = ndi.center_of_mass(seed_mask > 0, labels, index=np.arange(1, n + 1))
    return [(float(cx), float(cy)) for (cy, cx), a in zip(centres, areas, strict=True) if a >= MIN_SEED_AREA_PX]


def derive_plants(
    root_mask: np.ndarray,
    seed_mask: np.ndarray | None = None,
    shoot_mask: np.ndarray | None = None,
    occluded_mask: np.ndarray | None = None,
) -> list[PlantTruth]:
    """Plants left to right with primary tip, other tips, seed, shoot centre, primary length.

    Occluded root is joined to the visible root first, so a root that dips under
    the agar still reads as one root.
    """
    roots = root_mask > 0
    if occluded_mask is not None:
        roots |= occluded_mask > 0
    seeds = _seed_points(seed_mask)
    if not roots.any():
        return [PlantTruth(i, None, seed=s) for i, s in enumerate(sorted(seeds))]

    # Work on the bounding box of the roots: skeletonising 4202x3006 is needlessly slow.
    ys, xs = np.nonzero(roots)
    y0, x0 = max(0, ys.min() - 2), max(0, xs.min() - 2)
    crop = roots[y0 : ys.max() + 3, x0 : xs.max() + 3]
    coords, graph = _skeleton_graph(skeletonize(crop))
    coords += (x0, y0)
    tips = _true_tips(coords, graph)

    if seeds:
        anchors = sorted(seeds)
    else:
        # No seeds annotated: one plant per root system, anchored at its top.
        labels, n = ndi.label(roots, structure=np.ones((3, 3)))
        anchors = []
        for k in range(1, n + 1):
            py, px = np.nonzero(labels == k)
            top = int(np.argmin(py))
            anchors.append((float(px[top]), float(py[top])))
        anchors.sort()

    bases: list[int | None] = []
    for ax, ay in anchors:
        d = np.hypot(coords[:, 0] - ax, coords[:, 1] - ay)
        j = int(np.argmin(d))
        bases.append(j if d[j] <= MAX_BASE_DISTANCE_PX else None)
    valid = [b for b in bases if b is not None]
    if valid:
        dist, pred = dijkstra(graph.tocsr(), indices=valid, return_predecessors=True)
    else:
        dist, pred = np.empty((0, len(coords))), np.empty((0, len(coords)), np.int64)

    # Each tip belongs to the plant whose base reaches it by the shortest path.
    owner = np.full(len(tips), -1)
    if valid and len(tips):
        tip_d = dist[:, tips]
        reachable = np.isfinite(tip_d).any(axis=0)
        owner[reachable] = np.argmin(tip_d[:, reachable], axis=0)

    shoot_centres: list[Point] = []
    if shoot_mask is not None and shoot_mask.any():
        labels_shoot, n_shoot = ndi.label(shoot_mask > 0)
        centres = ndi.center_of_mass(shoot_mask > 0, labels_shoot, range(1, n_shoot + 1))
        shoot_centres = [(float(cx), float(cy)) for cy, cx in centres]

    plants = []
    row = 0
    for i, (anchor, base) in enumerate(zip(anchors, bases, strict=True)):
        plant = PlantTruth(i, None, seed=anchor if seeds else None)
        if shoot_centres:
            plant.shoot_centre = min(shoot_centres, key=lambda c: np.hypot(c[0] - anchor[0], c[1] - anchor[1]))
        if base is not None:
            mine = tips[owner == row]
            mine = mine[mine != base]
            if len(mine):
                lengths = dist[row, mine]
                order = np.argsort(-lengths)
                primary = int(mine[order[0]])
                plant.primary_root_tip = (float(coords[primary, 0]), float(coords[primary, 1]))
                plant.primary_root_length_px = round(_path_length(coords, pred[row], primary), 2)
                plant.root_tips = [(float(coords[t, 0]), float(coords[t, 1])) for t in mine[order[1:]]]
            row += 1
        plants.append(plant)
    return plants
