"""Seedling geometry: seeds, rosettes and root systems as polylines with widths.

Geometry is generated before anything is drawn, so ground truth (tips, lengths,
which stretch is occluded) is exact by construction rather than measured back
from pixels. Numbers follow ../shared/HADES.md: seeds in a row in the upper
quarter of the dish, 550-600 px apart, primary roots 800-1300 px long, 3-8 px
wide at the base and thinner towards the tip, laterals under 5 px.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

STEP_PX = 4.0  # spacing of polyline points along a root


@dataclass
class Root:
    """A root as a polyline from its base to its tip, with a width per point."""

    points: np.ndarray  # (N, 2) float, x right, y down
    widths: np.ndarray  # (N,) px
    primary: bool
    # Index ranges [start, stop) of points that run under the agar (occluded).
    occluded: list[tuple[int, int]] = field(default_factory=list)
    # Realistic plates only: how dark each point is drawn (1 = a normal root), root
    # hairs per px along the upper root, and, for young roots, how many grey levels
    # darker than the agar the tip is: the renderer then chooses the tip's opacity
    # and `opacity` (1 -> 0 towards the tip) only shapes the fade.
    opacity: np.ndarray | None = None
    hair_density: float = 0.0
    tip_contrast: float = 0.0

    @property
    def tip(self) -> tuple[float, float]:
        return float(self.points[-1, 0]), float(self.points[-1, 1])

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())


@dataclass
class Leaf:
    centre: tuple[float, float]
    axes: tuple[float, float]  # semi-axes, px
    angle_deg: float


@dataclass
class Seedling:
    index: int
    seed_centre: tuple[float, float]
    seed_axes: tuple[float, float]
    seed_angle_deg: float
    shoot_centre: tuple[float, float]
    leaves: list[Leaf]
    roots: list[Root]  # primary first
    # Realistic plates only: "young" or "old"; where the seed sits: "visible" (a dark
    # seed coat of its own), "hypocotyl" (inside the swollen hypocotyl base) or
    # "shoot" (under the rosette); and the hypocotyl's width and darkness.
    stage: str = ""
    seed_cover: str = "visible"
    hypocotyl_width: float = 5.0
    hypocotyl_darkness: float = 0.8

    @property
    def primary(self) -> Root:
        return self.roots[0]


@dataclass(frozen=True)
class Dish:
    """The agar area of a rounded square dish, in image pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    corner_radius: float
    diameter_mm: float = 120.0

    @property
    def px_per_mm(self) -> float:
        return (self.x1 - self.x0) / self.diameter_mm

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return self.x0 + margin <= x <= self.x1 - margin and self.y0 + margin <= y <= self.y1 - margin


def _grow(
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    length: float,
    dish: Dish,
    *,
    scale: float,
    target: float,
    pull: float,
    wave_amp: float,
    wave_len: float,
    wiggle: float,
) -> np.ndarray:
    """Trace a root: a heading that relaxes towards `target` (radians from straight
    down, positive towards +x) plus a slow wave, as roots skew and wave on agar."""
    step_px = STEP_PX * scale
    margin = 40 * scale
    n = max(2, int(length / step_px) + 1)
    pts = np.empty((n, 2))
    pts[0] = start
    phase = rng.uniform(0, 2 * np.pi)
    for k in range(1, n):
        wave = wave_amp * np.sin(2 * np.pi * k * step_px / wave_len + phase)
        angle += pull * (target + wave - angle) + wiggle * rng.standard_normal()
        step = step_px * np.array([np.sin(angle), np.cos(angle)])
        nxt = pts[k - 1] + step
        if not dish.contains(nxt[0], nxt[1], margin=margin):
            angle = -angle if not dish.x0 + margin <= nxt[0] <= dish.x1 - margin else angle
            nxt = pts[k - 1] + step_px * np.array([np.sin(angle), abs(np.cos(angle))])
            if not dish.contains(nxt[0], nxt[1], margin=margin):
                return pts[:k]
        pts[k] = nxt
    return pts


def _taper(n: int, base: float, tip: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return tip + (base - tip) * (1.0 - t) ** 0.7


def make_seedling(
    rng: np.random.Generator,
    index: int,
    seed_xy: tuple[float, float],
    dish: Dish,
    age: float,
    skew: float,
    scale: float = 1.0,
) -> Seedling:
    """One seedling. `age` in [0, 1] scales root length and branching; `skew` is the
    primary root's preferred heading (radians), large values make roots cross.
    `scale` is image pixels per Hades pixel (1 for 4202x3006 plates)."""
    sx, sy = seed_xy
    k = scale
    seed_axes = (rng.uniform(7, 10) * k, rng.uniform(5, 7) * k)
    seed_angle = rng.uniform(0, 180)

    # Rosette: the shoot sits a little above the seed; two cotyledons and a few leaves.
    shoot = (sx + rng.normal(0, 6) * k, sy - rng.uniform(40, 75) * k)
    n_leaves = int(rng.integers(2, 6))
    base_angle = rng.uniform(0, 2 * np.pi)
    extent = rng.uniform(50, 95) * k  # rosette radius, so 100-190 px across
    leaves = _rosette(rng, shoot, n_leaves, base_angle, extent)

    # Primary root from the lower edge of the seed, downwards.
    base = np.array([sx, sy + seed_axes[1]])
    length = rng.uniform(800, 1300) * (0.85 + 0.15 * age) * k
    pts = _grow_primary(rng, base, length, dish, k, skew)
    widths = _taper(len(pts), rng.uniform(5.0, 8.0) * k, rng.uniform(2.8, 3.6) * k)
    primary = Root(pts, np.maximum(widths, 1.0), primary=True)
    if rng.random() < 0.35 and len(pts) > 30:
        start = int(rng.integers(int(0.3 * len(pts)), int(0.75 * len(pts))))
        stretch = max(3, int(rng.uniform(40, 160) / STEP_PX))  # points, so 40-160 Hades px
        primary.occluded.append((start, min(len(pts) - 3, start + stretch)))
    roots = [primary]

    # Laterals branch off the upper part of the primary at 45-80 degrees, older
    # (longer) ones nearer the base, and bend down towards a gravitropic set point.
    n_lat = int(rng.poisson(1.0 + 5.0 * age))
    for _ in range(n_lat):
        grown = _lateral(rng, pts, primary.widths, dish, k, k, LATERALS)
        if grown is not None:
            roots.append(Root(*grown, primary=False))

    return Seedling(index, (sx, sy), seed_axes, seed_angle, shoot, leaves, roots)


def _rosette(
    rng: np.random.Generator, shoot: tuple[float, float], n_leaves: int, base_angle: float, extent: float
) -> list[Leaf]:
    """Leaves spread round the shoot, `extent` its radius (draws in a fixed order, so
    plates stay the same for a seed)."""
    leaves = []
    for j in range(n_leaves):
        a = base_angle + 2 * np.pi * j / n_leaves + rng.normal(0, 0.25)
        major = extent * rng.uniform(0.45, 0.6)
        minor = major * rng.uniform(0.45, 0.75)
        dist = extent - major
        centre = (shoot[0] + dist * np.cos(a), shoot[1] + dist * np.sin(a))
        leaves.append(Leaf(centre, (major, minor), float(np.degrees(a))))
    return leaves


def _grow_primary(
    rng: np.random.Generator, base: np.ndarray, length: float, dish: Dish, k: float, skew: float
) -> np.ndarray:
    """A primary root's points from `base`, downwards, wavy, towards `skew`."""
    return _grow(
        rng,
        base,
        rng.normal(0, 0.1),
        length,
        dish,
        scale=k,
        target=skew,
        pull=0.04,
        wave_amp=rng.uniform(0.04, 0.22),
        wave_len=rng.uniform(180, 420) * k,
        wiggle=0.02,
    )


@dataclass(frozen=True)
class LateralSpec:
    """How laterals branch off a primary root (angles in degrees, lengths in Hades px)."""

    along: tuple[float, float]  # where on the primary they start, as fractions of its points
    angle: tuple[float, float]  # off the parent's direction
    length: tuple[float, float]  # fraction of max_len drawn
    max_len: float
    room: float  # at most this fraction of the primary below the branch point
    min_len: float
    target: tuple[float, float]  # gravitropic set point
    wiggle: float
    min_points: int
    tip_width: tuple[float, float]


LATERALS = LateralSpec((0.12, 0.75), (45, 80), (0.25, 1.0), 420.0, 0.6, 30.0, (20, 45), 0.025, 8, (1.4, 2.0))
YOUNG_LATERALS = LateralSpec((0.1, 0.8), (40, 85), (0.2, 1.0), 120.0, 0.7, 25.0, (15, 50), 0.03, 6, (1.4, 2.2))
OLD_LATERALS = dataclasses.replace(YOUNG_LATERALS, max_len=520.0)


def _lateral(
    rng: np.random.Generator,
    pts: np.ndarray,
    widths: np.ndarray,
    dish: Dish,
    k: float,
    tip_scale: float,
    spec: LateralSpec,
) -> tuple[np.ndarray, np.ndarray] | None:
    """One lateral of a primary root (points, widths), or None when it comes out too
    short. The random draws come in one fixed order, so a seed gives the same plate."""
    n_pts = len(pts)
    lo = int(spec.along[0] * n_pts)
    j = int(rng.integers(lo, max(lo + 1, int(spec.along[1] * n_pts))))
    side = rng.choice([-1.0, 1.0])
    parent = pts[min(j + 1, n_pts - 1)] - pts[j]
    angle = float(np.arctan2(parent[0], parent[1])) + side * np.radians(rng.uniform(*spec.angle))
    room = (n_pts - j) * STEP_PX * k
    lat_len = rng.uniform(*spec.length) * min(spec.max_len * k, spec.room * room)
    if lat_len < spec.min_len * k:
        return None
    lpts = _grow(
        rng,
        pts[j].copy(),
        angle,
        lat_len,
        dish,
        scale=k,
        target=side * np.radians(rng.uniform(*spec.target)),
        pull=0.03,
        wave_amp=0.05,
        wave_len=rng.uniform(120, 300) * k,
        wiggle=spec.wiggle,
    )
    if len(lpts) < spec.min_points:
        return None
    base_w = min(float(widths[j]) * 0.6, rng.uniform(2.2, 4.0) * k)
    return lpts, np.maximum(_taper(len(lpts), base_w, rng.uniform(*spec.tip_width) * tip_scale), 1.0)


def make_seedlings(rng: np.random.Generator, dish: Dish, n: int = 5) -> list[Seedling]:
    """Five seedlings in a row in the upper quarter of the dish, left to right.
    Now and then one plant's primary root skews hard towards a neighbour so the
    two root systems cross, as on real plates."""
    width = dish.x1 - dish.x0
    scale = width / 2820  # image px per Hades px
    spacing = rng.uniform(550, 600) * scale
    row_y = dish.y0 + rng.uniform(0.11, 0.15) * (dish.y1 - dish.y0)
    centre_x = (dish.x0 + dish.x1) / 2 + rng.normal(0, 30) * scale
    age = float(rng.uniform(0.2, 1.0))
    skews = rng.normal(0, 0.08, n)
    if rng.random() < 0.5:
        crosser = int(rng.integers(0, n))
        towards = -1.0 if crosser == n - 1 else (1.0 if crosser == 0 else rng.choice([-1.0, 1.0]))
        skews[crosser] = towards * rng.uniform(0.35, 0.55)
    seedlings = []
    for i in range(n):
        x = centre_x + (i - (n - 1) / 2) * spacing + rng.normal(0, 6) * scale
        y = row_y + rng.normal(0, 25) * scale
        plant_age = float(np.clip(age + rng.normal(0, 0.12), 0.0, 1.0))
        seedlings.append(make_seedling(rng, i, (x, y), dish, plant_age, float(skews[i]), scale))
    return seedlings


# --- realistic plates ---------------------------------------------------------------
# ../shared/HADES.md, "What real plates show": young seedlings with 300-600 px primary
# roots, 2-3 px tips only 5-10 grey levels darker than the agar and fuzzy root hairs;
# older ones with many laterals and crossing neighbours; seeds inside the hypocotyl
# base or under the shoot rather than separate dark blobs.
SEED_COVER_P = {"hypocotyl": 0.5, "shoot": 0.35, "visible": 0.15}
YOUNG_TIP_CONTRAST = (5.0, 10.0)  # grey levels darker than the agar at a young root's tip


def _fading_tip(n: int, fraction: float, tip: float) -> np.ndarray:
    """Opacity 1 along the root, falling linearly to `tip` over the last `fraction`."""
    op = np.ones(n)
    m = max(2, round(fraction * n))
    op[-m:] = np.linspace(1.0, tip, m)
    return op


def make_realistic_seedling(
    rng: np.random.Generator,
    index: int,
    seed_xy: tuple[float, float],
    dish: Dish,
    stage: str,
    skew: float,
    scale: float,
    frame_scale: float,
) -> Seedling:
    """One seedling of a realistic plate. `scale` is image px per Hades px of the
    plant (it follows px/mm), `frame_scale` image px per px of a 4202x3006 frame:
    young root lengths and tip widths are given in frame pixels, as observed."""
    sx, sy = seed_xy
    k, fs = scale, frame_scale
    young = stage == "young"
    # Arabidopsis seeds are about 0.5 x 0.3 mm: 10-13 x 6-9 px.
    seed_axes = (rng.uniform(4.5, 6.5) * k, rng.uniform(3.0, 4.5) * k)
    cover = str(rng.choice(list(SEED_COVER_P), p=list(SEED_COVER_P.values())))
    # A seed inside the hypocotyl base lies along the stem, which closes over it.
    seed_angle = 90 + rng.normal(0, 12) if cover == "hypocotyl" else rng.uniform(0, 180)

    if young:  # two cotyledons, sometimes the first true leaves
        extent = rng.uniform(22, 48) * k
        n_leaves = 2 if rng.random() < 0.7 else int(rng.integers(3, 5))
        hyp_len = rng.uniform(20, 60) * k
    else:
        extent = rng.uniform(50, 95) * k
        n_leaves = int(rng.integers(3, 7))
        hyp_len = rng.uniform(40, 75) * k
    if cover == "shoot":  # the rosette sits on the seed
        hyp_len = rng.uniform(0, 0.6) * seed_axes[0]
    shoot = (sx + rng.normal(0, 3) * k, sy - hyp_len)
    base_angle = rng.uniform(0, 2 * np.pi)
    leaves = _rosette(rng, shoot, n_leaves, base_angle, extent)

    base = np.array([sx, sy + seed_axes[1]])
    if young:
        length = rng.uniform(300, 600) * fs
        base_w, tip_w = rng.uniform(3.5, 5.5) * k, rng.uniform(2.0, 3.0) * fs
    else:
        length = rng.uniform(900, 1400) * k
        base_w, tip_w = rng.uniform(5.0, 8.0) * k, rng.uniform(2.4, 3.4) * fs
    pts = _grow_primary(rng, base, length, dish, k, skew)
    widths = np.maximum(_taper(len(pts), base_w, tip_w), 1.0)
    tip_contrast = 0.0
    if young:  # a thin translucent tip, 5-10 grey levels darker than the agar
        opacity = _fading_tip(len(pts), rng.uniform(0.25, 0.4), 0.0)
        tip_contrast = rng.uniform(*YOUNG_TIP_CONTRAST)
        hairs = rng.uniform(0.3, 0.9)
    else:
        opacity = _fading_tip(len(pts), rng.uniform(0.06, 0.15), rng.uniform(0.2, 0.5))
        hairs = rng.uniform(0.0, 0.4)
    primary = Root(pts, widths, primary=True, opacity=opacity, hair_density=hairs, tip_contrast=tip_contrast)
    if rng.random() < 0.3 and len(pts) > 30:
        start = int(rng.integers(int(0.3 * len(pts)), int(0.7 * len(pts))))
        stretch = max(3, int(rng.uniform(40, 160) / STEP_PX))  # points, so 40-160 Hades px
        primary.occluded.append((start, min(len(pts) - 3, start + stretch)))
    roots = [primary]

    n_lat = int(rng.poisson(0.4)) if young else int(rng.poisson(rng.uniform(6, 13)))
    spec = YOUNG_LATERALS if young else OLD_LATERALS
    for _ in range(n_lat):
        grown = _lateral(rng, pts, widths, dish, k, fs, spec)
        if grown is not None:
            lpts, lat_w = grown
            opacity = _fading_tip(len(lpts), 0.2, rng.uniform(0.3, 0.6))
            roots.append(Root(lpts, lat_w, primary=False, opacity=opacity))

    return Seedling(
        index,
        (sx, sy),
        seed_axes,
        seed_angle,
        shoot,
        leaves,
        roots,
        stage=stage,
        seed_cover=cover,
        hypocotyl_width=rng.uniform(4.0, 7.0) * k,
        hypocotyl_darkness=rng.uniform(0.5, 0.75),
    )


def make_realistic_seedlings(
    rng: np.random.Generator, dish: Dish, stage: str, frame_scale: float, n: int = 5
) -> list[Seedling]:
    """Five seedlings in a row, all `stage` ("young" or "old") or, for "mixed", each
    its own. Old plates have neighbours' roots crossing more often than not."""
    width = dish.x1 - dish.x0
    scale = width / 2820
    spacing = rng.uniform(550, 600) * scale
    row_y = dish.y0 + rng.uniform(0.09, 0.16) * (dish.y1 - dish.y0)
    centre_x = (dish.x0 + dish.x1) / 2 + rng.normal(0, 30) * scale
    stages = [stage] * n if stage != "mixed" else [str(rng.choice(["young", "old"])) for _ in range(n)]
    skews = rng.normal(0, 0.08, n)
    n_cross = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25] if "old" in stages else [0.6, 0.35, 0.05]))
    for crosser in rng.choice(n, size=n_cross, replace=False):
        towards = -1.0 if crosser == n - 1 else (1.0 if crosser == 0 else rng.choice([-1.0, 1.0]))
        skews[crosser] = towards * rng.uniform(0.35, 0.6)
    seedlings = []
    for i in range(n):
        x = centre_x + (i - (n - 1) / 2) * spacing + rng.normal(0, 6) * scale
        y = row_y + rng.normal(0, 25) * scale
        seedlings.append(make_realistic_seedling(rng, i, (x, y), dish, stages[i], float(skews[i]), scale, frame_scale))
    return seedlings
