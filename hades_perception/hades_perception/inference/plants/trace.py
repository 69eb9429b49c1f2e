"""A faint primary root tip followed in the photograph itself, past where the model's
mask and tip detector stopped (the plant step's last step).

Why: a young root's last millimetre or two is 2-3 px wide and only 5-10 grey levels
darker than the agar. At model resolution (half the image's) that is a line about one
pixel wide, which the mask and the tip detector often lose: on the `realistic` dev
plates, most near misses (the tip 1-3 mm off) were ends short of the true tip with the
detector silent there, while the photograph still shows the dark line running on to it.
This step looks at the image's own pixels, at full resolution, only for tips the
detector does not confirm, and only straight on from the root's direction. A followed
tip keeps its low confidence: the detector still does not confirm it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hades_perception.inference.plants.plant import Plant, Point
from hades_perception.inference.plants.thresholds import (
    TRACE_ANGLE,
    TRACE_CONTRAST,
    TRACE_MM,
    TRACE_NOISE,
    TRACE_ROOT_SHARE,
    TRACE_STEP_MM,
)

_SIDE_MM = (0.25, 0.35)  # where the agar beside a thin root is sampled, each side
_BACK_MM = (2.0, 0.3)  # the root's direction: from this far back along its path to this far
_AGAR_MM = (-1.0, -0.6, 0.6, 1.0)  # the agar either side of the root's end, where noise is measured
_AGAR_STEPS = 4  # ...beside the end and this many steps back
# A step's 27 tries: 9 turns (cos, sin) each started on the line and a pixel either side.
_ANGLES = np.repeat(np.radians(np.linspace(-TRACE_ANGLE, TRACE_ANGLE, 9)), 3)
_TURNS = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)
_SHIFTS = np.tile([-1.0, 0.0, 1.0], 9)


def trace_tips(grey: np.ndarray, plants: list[Plant], px_per_mm: float, low_confidence: float) -> list[Plant]:
    """`plants` with each unconfirmed primary tip (confidence under `low_confidence`)
    carried on along the dark line the root makes in `grey` (the photograph's green
    channel, full resolution), where there is one; paths, lengths and the reason follow.
    A plant whose tip the detector confirms, or whose root shows no line, is unchanged."""
    out = []
    for p in plants:
        if p.primary_root_tip is None or p.confidence >= low_confidence or len(p.primary_path) < 3:
            out.append(p)
            continue
        more = trace_tip(grey, np.asarray(p.primary_path, float), px_per_mm)
        if not more:
            out.append(p)
            continue
        added = float(np.sum(np.hypot(*np.diff(np.vstack([p.primary_path[-1:], more]), axis=0).T)))
        out.append(
            replace(
                p,
                primary_path=[*p.primary_path, *more],
                primary_root_tip=more[-1],
                primary_root_length_px=None if p.primary_root_length_px is None else p.primary_root_length_px + added,
                primary_root_length_mm=None
                if p.primary_root_length_mm is None
                else p.primary_root_length_mm + added / px_per_mm,
                total_root_length_px=p.total_root_length_px + added,
                reason=f"{p.reason}; its last {added / px_per_mm:.1f} mm followed in the image",
            )
        )
    return out


def trace_tip(grey: np.ndarray, path: np.ndarray, ppm: float) -> list[Point]:
    """Points (image px) past the end of `path` (image px, base to tip) along the line
    the root makes in `grey`: steps of TRACE_STEP_MM, each turning at most TRACE_ANGLE
    from the root's direction, while a step's contrast (agar beside it minus the line)
    stays above what the best of a step's tries reaches on the agar beside the root's
    end by TRACE_CONTRAST grey levels, TRACE_NOISE robust deviations of that and
    TRACE_ROOT_SHARE of the root's own contrast, whichever is most; at most TRACE_MM."""
    d = _heading(path, ppm)
    if d is None:
        return []
    step = TRACE_STEP_MM * ppm
    tip = path[-1].astype(float)
    normal = np.array([-d[1], d[0]])
    # The root's own contrast over its last millimetre.
    last = np.array([_back(path, b * ppm) for b in np.arange(1.0, 0.0, -TRACE_STEP_MM)] + [tip])
    root = float(np.median(_contrasts(grey, last[:-1], _units(last[1:] - last[:-1]), ppm)))
    # The agar beside the root's end, measured as a step is (the best of its tries), so that
    # noise alone does not carry the walk on: what the best try reaches on bare agar.
    beside = np.array([tip - d * k * step + normal * side * ppm for k in range(_AGAR_STEPS) for side in _AGAR_MM])
    agar = _best(grey, beside, d, ppm)[0]
    base = float(np.median(agar))
    plain = _contrasts(grey, tip + np.outer(_AGAR_MM, normal) * ppm, np.tile(d, (len(_AGAR_MM), 1)), ppm)
    depth = root - float(np.median(plain))
    need = base + max(TRACE_CONTRAST, TRACE_NOISE * _spread(agar), TRACE_ROOT_SHARE * depth)
    if not np.isfinite(need) or root < need:
        return []  # the root itself is no clearer than the agar here: nothing to follow
    pos, out = tip, []
    h, w = grey.shape
    for _ in range(round(TRACE_MM / TRACE_STEP_MM)):
        value, start, u = _best(grey, pos[None], d, ppm)
        pos = start[0] + u[0] * step
        if value[0] < need or not (0 <= pos[0] <= w - 1 and 0 <= pos[1] <= h - 1):
            break  # the line ends, or the image does
        out.append((float(pos[0]), float(pos[1])))
        d = _unit(0.7 * d + 0.3 * u[0])
    return out


def _best(grey: np.ndarray, positions: np.ndarray, d: np.ndarray, ppm: float) -> tuple[np.ndarray, ...]:
    """For each of `positions` (m, 2), the darkest step of TRACE_STEP_MM turning at most
    TRACE_ANGLE from `d`, also started a pixel either side (a walk that drifts one pixel
    off a line 1-2 px wide loses it): its contrast (m,), start (m, 2), direction (m, 2)."""
    n = np.array([-d[1], d[0]])
    c, s = _TURNS[:, 0], _TURNS[:, 1]
    dirs = np.stack([d[0] * c - d[1] * s, d[0] * s + d[1] * c], axis=1)
    starts = positions[:, None, :] + _SHIFTS[None, :, None] * n  # (m, tries, 2)
    m, k = len(positions), len(_SHIFTS)
    values = _contrasts(grey, starts.reshape(-1, 2), np.tile(dirs, (m, 1)), ppm).reshape(m, k)
    pick = values.argmax(axis=1)  # the first of equals: tries are ordered from one side
    rows = np.arange(m)
    return values[rows, pick], starts[rows, pick], dirs[pick]


def _contrasts(grey: np.ndarray, starts: np.ndarray, dirs: np.ndarray, ppm: float) -> np.ndarray:
    """For segments of TRACE_STEP_MM from `starts` (m, 2) along unit `dirs` (m, 2): the
    mean over each of the agar's grey level either side minus the line's (its centre
    pixel and the two beside it): a dark line 1-3 px wide gives its depth, agar about 0."""
    t = np.arange(0.0, TRACE_STEP_MM * ppm, 1.0)
    normals = np.stack([-dirs[:, 1], dirs[:, 0]], axis=1)
    centre = starts[:, None, :] + t[None, :, None] * dirs[:, None, :]  # (m, k, 2)
    h, w = grey.shape

    def at(offsets: np.ndarray) -> np.ndarray:  # (m, k) mean grey level at centre + offset * normal
        q = centre[:, :, None, :] + offsets[None, None, :, None] * normals[:, None, None, :]
        x = np.clip(np.rint(q[..., 0]).astype(int), 0, w - 1)
        y = np.clip(np.rint(q[..., 1]).astype(int), 0, h - 1)
        return grey[y, x].astype(np.float32).mean(axis=2)

    sides = np.concatenate([np.linspace(*_SIDE_MM, 3), -np.linspace(*_SIDE_MM, 3)]) * ppm
    return (at(sides) - at(np.array([-1.0, 0.0, 1.0]))).mean(axis=1)


def _heading(path: np.ndarray, ppm: float) -> np.ndarray | None:
    """The root's direction at its end, over _BACK_MM by distance along the path, not by
    point count as graph._direction (a skeleton's very end can hook; this path's points
    are far apart where it crossed a gap)."""
    v = _back(path, _BACK_MM[1] * ppm) - _back(path, _BACK_MM[0] * ppm)
    n = float(np.hypot(v[0], v[1]))
    return None if n < 0.5 * ppm else v / n


def _back(path: np.ndarray, length: float) -> np.ndarray:
    """The point `length` px back from the end along `path` (its start if shorter);
    interpolated, as a path's points can be far apart where it crossed a gap."""
    seg = np.hypot(*np.diff(path, axis=0).T)
    back = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])  # each point's distance to the end
    if length >= back[0]:
        return path[0].astype(float)
    k = int(np.nonzero(back >= length)[0][-1])  # path[k] is at least `length` back, path[k + 1] less
    t = (back[k] - length) / max(back[k] - back[k + 1], 1e-9)
    return path[k] + t * (path[k + 1] - path[k])


def _spread(v: np.ndarray) -> float:
    """A robust standard deviation (1.4826 x the median absolute deviation)."""
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 0 else v


def _units(v: np.ndarray) -> np.ndarray:
    n = np.hypot(v[:, 0], v[:, 1])[:, None]
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)
