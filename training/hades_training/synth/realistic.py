"""The `realistic` preset: what real Hades plates show that a clean synthetic plate does not.

From ../shared/HADES.md ("What real plates show that a clean synthetic plate does not"):
- condensation: round drops of many sizes, the large ones with bright rims, in a band
  across the top of the dish or over the whole plate; scratches, fibres, dust, debris
  (also far below the plants), a circular mark from the dish mould, the dish corners
  (meniscus shading and glints);
- young seedlings (300-600 px primary roots, 2-3 px tips only 5-10 grey levels darker
  than the agar, fuzzy root hairs) and old ones (many laterals, crossing neighbours);
- seeds inside the hypocotyl base or under the shoot (plants.make_realistic_seedlings);
- full 4202x3006 frames and crops of the dish, RGB with equal channels or 8-bit grey;
- 19-23 px per mm.

Distractors are drawn into two layers that never touch a mask: `dirt` (dark things
lying on the agar) and `lid` (signed: drops, scratches, the mould mark and glints,
which darken or brighten whatever lies below, plants included). Ground truth stays
exact because the masks are drawn from plant geometry only.

What one synthetic experiment (PLATES_PER_EXPERIMENT consecutive plates) shares,
as a real imaging set would: scale, crop, grey or RGB, and the seedlings' stage.
Everything else (light, drops, dirt, blur, noise) is drawn per plate, so a model
trained on the preset sees a domain-randomised range of conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from math import erf, sqrt

import cv2
import numpy as np

from hades_training.synth.appearance import Appearance
from hades_training.synth.plants import Dish, Root, Seedling, make_realistic_seedlings
from hades_training.synth.render import AA, CLASSES, HEIGHT, WIDTH, _draw_intensity_bar, _rounded_rect, _smooth_noise

SET_STREAM = 0x5E7  # keys the per-set random stream apart from the per-plate ones
DISH_MM = 120.0
SQRT2 = sqrt(2.0)
# Anti-aliased thin lines come out darker than the blurred-bar model says: measured on
# rendered young tips (plates without drops or dust), 1.3 makes the mean tip contrast as asked.
TIP_PEAK_CALIBRATION = 1.3
LOWRES = 8  # smooth fields (illumination, meniscus) are computed at 1/8 resolution


@dataclass(frozen=True)
class PlateSet:
    """What the plates of one synthetic experiment share."""

    px_per_mm: float  # at a 4202x3006 frame
    crop: bool  # images cropped to the dish (around 2600x2600) instead of the full frame
    grey: bool  # 8-bit single-channel PNG instead of RGB with equal channels
    stage: str  # "young", "old" or "mixed" (each plant its own)


def plate_set(seed: int, experiment: int) -> PlateSet:
    rng = np.random.default_rng([seed, experiment, SET_STREAM])
    return PlateSet(
        px_per_mm=float(rng.uniform(19.0, 23.0)),
        crop=bool(rng.random() < 0.5),
        grey=bool(rng.random() < 0.5),
        stage=str(rng.choice(["young", "old", "mixed"], p=[0.4, 0.25, 0.35])),
    )


@dataclass(frozen=True)
class Layout:
    """Everything about a realistic plate that is decided before drawing."""

    set: PlateSet
    look: Appearance  # this plate's conditions (domain randomised)
    drops: str  # how condensation lies: "band" across the top, "whole" plate, "light"
    dish: Dish  # in output-image pixels
    crop: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) of the frame, or None: full frame
    frame: tuple[int, int]  # camera frame (width, height)
    seedlings: list[Seedling]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image."""
        return (self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]) if self.crop else self.frame


def layout(
    rng: np.random.Generator,
    pset: PlateSet,
    base: Appearance,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Layout:
    """The plate's conditions, dish, crop and seedlings, drawn from `rng` (the plate's
    stream; rendering continues on it)."""
    look = plate_look(rng, base)
    drops = str(rng.choice(["band", "whole", "light"], p=[0.55, 0.25, 0.2]))
    dish, crop = realistic_dish(rng, pset, width, height)
    seedlings = make_realistic_seedlings(rng, dish, pset.stage, width / WIDTH)
    return Layout(pset, look, drops, dish, crop, (width, height), seedlings)


def plate_look(rng: np.random.Generator, base: Appearance) -> Appearance:
    """Domain randomisation: this plate's conditions, drawn around the preset's knobs."""
    return replace(
        base,
        blur_sigma=float(np.clip(base.blur_sigma * np.exp(rng.normal(0, 0.4)), 0.3, 2.5)),
        contrast=float(base.contrast * rng.uniform(0.82, 1.15)),
        brightness=float(base.brightness + rng.normal(0, 8)),
        vignetting=float(base.vignetting * rng.uniform(0.3, 2.5)),
        illumination_gradient=float(base.illumination_gradient * rng.uniform(0.0, 2.5)),
        band_strength=float(base.band_strength * rng.uniform(0.3, 2.2)),
        noise_sigma=float(base.noise_sigma * rng.uniform(0.5, 2.0)),
        condensation=float(np.clip(base.condensation * rng.uniform(0.3, 2.0), 0.0, 1.0)),
        dust=float(np.clip(base.dust * rng.uniform(0.3, 2.0), 0.0, 1.0)),
    )


def realistic_dish(
    rng: np.random.Generator, pset: PlateSet, width: int = WIDTH, height: int = HEIGHT
) -> tuple[Dish, tuple[int, int, int, int] | None]:
    """The agar area at the set's scale, and the crop box (x0, y0, x1, y1) in the
    frame when the set is cropped. The dish is returned in output-image pixels."""
    fs = width / WIDTH
    half_w = pset.px_per_mm * DISH_MM / 2 * fs
    half_h = half_w * rng.uniform(0.965, 0.985)  # the agar is a little less tall than wide
    cx = (2130 + rng.normal(0, 40)) * fs
    cy = (1490 + rng.normal(0, 20)) * height / HEIGHT
    cy = float(np.clip(cy, half_h + 45 * fs, height - half_h - 45 * fs))
    dish = Dish(cx - half_w, cy - half_h, cx + half_w, cy + half_h, rng.uniform(90, 140) * half_w / 1410)
    if not pset.crop:
        return dish, None
    m = rng.uniform(5, 110, 4) * fs  # some tools crop at the agar, others keep the rim
    x0, y0 = max(0, int(dish.x0 - m[0])), max(0, int(dish.y0 - m[1]))
    x1, y1 = min(width, int(np.ceil(dish.x1 + m[2]))), min(height, int(np.ceil(dish.y1 + m[3])))
    shifted = Dish(dish.x0 - x0, dish.y0 - y0, dish.x1 - x0, dish.y1 - y0, dish.corner_radius)
    return shifted, (x0, y0, x1, y1)


# --- plants --------------------------------------------------------------------------


def _thickness(width: float) -> int:
    """cv2 thickness for a line `width` px wide: cv2 draws thickness t >= 2 as
    2 * (t // 2) + 1 px, so even thicknesses only; 1 is a 1 px line."""
    return max(1, 2 * int(width // 2))


def _drawn_width(width: float) -> int:
    t = _thickness(width)
    return 1 if t == 1 else t + 1


def _draw_root(
    rng: np.random.Generator,
    layer: np.ndarray,
    core: np.ndarray,
    hairs: np.ndarray,
    mask: np.ndarray,
    occ_mask: np.ndarray,
    faint: np.ndarray,
    root: Root,
    k: float,
    tip_opacity: Callable[[Root], float],
) -> None:
    """Like render._draw_root, with each point's opacity and root hairs along the upper root."""
    pts = np.round(root.points * 4).astype(np.int32)
    n = len(pts)
    hidden = np.zeros(n, bool)
    for a, b in root.occluded:
        hidden[a:b] = True
    op = root.opacity if root.opacity is not None else np.ones(n)
    if root.tip_contrast > 0:
        o_tip = tip_opacity(root)
        op = o_tip + (1.0 - o_tip) * op
    for j in range(n - 1):
        w = float(root.widths[j])
        p, q = (int(pts[j, 0]), int(pts[j, 1])), (int(pts[j + 1, 0]), int(pts[j + 1, 1]))
        thick = _thickness(w)
        if hidden[j]:
            cv2.line(faint, p, q, float(op[j]), thick + 2, AA, shift=2)
            cv2.line(occ_mask, p, q, 1, thick, cv2.LINE_8, shift=2)
            continue
        cv2.line(layer, p, q, float(op[j]), thick, AA, shift=2)
        cv2.line(core, p, q, float(op[j]), _thickness(w / 2.5), AA, shift=2)
        cv2.line(mask, p, q, 1, thick, cv2.LINE_8, shift=2)
    if root.hair_density <= 0 or n < 10:
        return
    # Root hairs: fine, faint, roughly perpendicular, on the upper root (the zone behind
    # the tip is bare). They are not in the root mask: annotators mark the root body.
    zone = np.arange(int(0.04 * n), int(0.6 * n))
    zone = zone[~hidden[zone]]
    step = float(np.linalg.norm(root.points[1] - root.points[0]))
    count = rng.poisson(root.hair_density * step, len(zone))
    at = np.repeat(zone, count)
    if not len(at):
        return
    tangent = root.points[np.minimum(at + 1, n - 1)] - root.points[np.maximum(at - 1, 0)]
    heading = np.arctan2(tangent[:, 1], tangent[:, 0])
    side = rng.choice([-1.0, 1.0], len(at))
    angle = heading + side * (np.pi / 2 + rng.normal(0, 0.35, len(at)))
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    start = root.points[at] + direction * (root.widths[at, None] / 2)
    end = start + direction * (rng.uniform(5, 20, len(at)) * k)[:, None]
    value = rng.uniform(0.3, 0.8, len(at))
    s4, e4 = np.round(start * 4).astype(np.int32), np.round(end * 4).astype(np.int32)
    for a, b, v in zip(s4, e4, value, strict=True):
        cv2.line(hairs, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), float(v), 1, AA, shift=2)


def _draw_plants(
    rng: np.random.Generator,
    seedlings: list[Seedling],
    shape: tuple[int, int],
    k: float,
    tip_opacity: Callable[[Root], float],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    layers = {n: np.zeros(shape, np.float32) for n in ("root", "core", "hairs", "faint", "shoot", "seed")}
    masks = {c: np.zeros(shape, np.uint8) for c in CLASSES}

    def q(p: tuple[float, float]) -> tuple[int, int]:
        return round(p[0] * 4), round(p[1] * 4)

    for plant in seedlings:
        for root in plant.roots:
            _draw_root(
                rng,
                layers["root"],
                layers["core"],
                layers["hairs"],
                masks["root"],
                masks["occluded_root"],
                layers["faint"],
                root,
                k,
                tip_opacity,
            )
        seed_c = q(plant.seed_centre)
        sax = (round(plant.seed_axes[0] * 4), round(plant.seed_axes[1] * 4))
        hyp_w = _thickness(plant.hypocotyl_width)
        # The hypocotyl first, leaves on top of it.
        if plant.seed_cover == "visible":
            end = q((plant.seed_centre[0], plant.seed_centre[1] - plant.seed_axes[1]))
        else:
            end = seed_c
        for img, v in ((layers["shoot"], plant.hypocotyl_darkness), (masks["shoot"], 1)):
            line_type = AA if img.dtype == np.float32 else cv2.LINE_8
            cv2.line(img, q(plant.shoot_centre), end, v, hyp_w, line_type, shift=2)
            if plant.seed_cover == "hypocotyl":  # the stem widens gently and closes over the seed coat
                base_ax = (round((plant.seed_axes[0] * 1.2 + 1) * 4), round((plant.seed_axes[1] * 1.2 + 1) * 4))
                cv2.ellipse(img, seed_c, base_ax, plant.seed_angle_deg, 0, 360, v, -1, line_type, shift=2)
                top = np.array(plant.shoot_centre)
                bottom = np.array(plant.seed_centre)
                mid = top + 0.4 * (bottom - top)
                normal = np.array([1.0, 0.0])
                half_top, half_base = plant.hypocotyl_width / 2, plant.seed_axes[1] * 1.2 + 1
                cone = [mid - normal * half_top, mid + normal * half_top, bottom + normal * half_base]
                cone.append(bottom - normal * half_base)
                cv2.fillPoly(img, [np.round(np.array(cone) * 4).astype(np.int32)], v, line_type, shift=2)
        for leaf in plant.leaves:
            c, ax = q(leaf.centre), (round(leaf.axes[0] * 4), round(leaf.axes[1] * 4))
            cv2.ellipse(layers["shoot"], c, ax, leaf.angle_deg, 0, 360, 1.0, -1, AA, shift=2)
            cv2.ellipse(masks["shoot"], c, ax, leaf.angle_deg, 0, 360, 1, -1, cv2.LINE_8, shift=2)
        if plant.seed_cover == "shoot":  # the rosette's centre sits on the seed
            r = round((plant.seed_axes[0] * 1.3 + 1.5) * 4)
            cv2.circle(layers["shoot"], seed_c, r, 1.0, -1, AA, shift=2)
            cv2.circle(masks["shoot"], seed_c, r, 1, -1, cv2.LINE_8, shift=2)
        cv2.ellipse(masks["seed"], seed_c, sax, plant.seed_angle_deg, 0, 360, 1, -1, cv2.LINE_8, shift=2)
        if plant.seed_cover == "visible":
            cv2.ellipse(layers["seed"], seed_c, sax, plant.seed_angle_deg, 0, 360, 1.0, -1, AA, shift=2)
    behind = (masks["root"] > 0) & (masks["shoot"] > 0)
    masks["occluded_root"][behind] = 1
    masks["root"][behind] = 0
    return layers, masks


# --- distractors: in no mask ---------------------------------------------------------


def _drops(rng: np.random.Generator, lid: np.ndarray, dish: Dish, amount: float, k: float, mode: str) -> None:
    """Condensation on the lid: many small drops and some large round ones whose rims
    catch the light, lying as `mode` says: "band" (across the top), "whole", "light"."""
    h = dish.y1 - dish.y0
    if mode == "band":
        n_band, n_rest = rng.poisson(6000 * amount), rng.poisson(500 * amount)
        depth = rng.uniform(0.15, 0.4)
        tilt = rng.normal(0, 0.05)
        xs = rng.uniform(dish.x0, dish.x1, n_band + n_rest)
        ys = np.concatenate(
            [dish.y0 + h * depth * rng.beta(1.2, 2.2, n_band), rng.uniform(dish.y0, dish.y1, n_rest)]
        ) + tilt * (xs - (dish.x0 + dish.x1) / 2)
    else:
        n = rng.poisson((8000 if mode == "whole" else 800) * amount)
        xs, ys = rng.uniform(dish.x0, dish.x1, n), rng.uniform(dish.y0, dish.y1, n)
    n = len(xs)
    large = rng.random(n) < 0.04
    rs = (
        np.where(
            large,
            np.clip(rng.lognormal(np.log(24.0), 0.45, n), 10, 90),
            np.clip(rng.lognormal(np.log(4.0), 0.55, n), 1.2, 25),
        )
        * k
    )
    order = np.argsort(rs)  # large drops last, over the small ones
    interior = rng.uniform(-0.02, 0.015, n)
    ring = rng.uniform(0.03, 0.09, n)
    rim = rng.uniform(0.03, 0.1, n) + large * rng.uniform(0.06, 0.14, n)
    for i in order:
        c, r = (int(xs[i] * 4), int(ys[i] * 4)), float(rs[i])
        if r < 3 * k:  # tiny drops: a dot
            cv2.circle(lid, c, max(1, int(r * 4)), float(ring[i] * 0.7), -1, AA, shift=2)
            continue
        draw_drop(lid, c, r, float(interior[i]), float(ring[i]), float(rim[i]))


def draw_drop(
    lid: np.ndarray,
    centre: tuple[int, int],
    r: float,
    interior: float,
    ring: float,
    rim: float,
    ring_width: float = 0.12,
) -> None:
    """One drop on a lid layer (signed: how much light it takes away), `centre` in
    quarter px, radius `r` px: a faint lens inside (`interior`), a darker ring at 0.86 of
    the radius, `ring_width` of it wide, and a bright edge (`rim`; 0: none)."""
    cv2.circle(lid, centre, int(r * 4), interior, -1, AA, shift=2)
    cv2.circle(lid, centre, int(r * 0.86 * 4), ring, max(1, int(r * ring_width)), AA, shift=2)
    if rim:
        cv2.circle(lid, centre, int(r * 4), -rim, max(1, int(r * 0.07)), AA, shift=2)


def _scratches(rng: np.random.Generator, lid: np.ndarray, dish: Dish, amount: float, k: float) -> None:
    """Long faint scratches in the plastic, bright or dark, sometimes in parallel bundles."""
    for _ in range(int(rng.poisson(2 + 10 * amount))):
        p = rng.uniform([dish.x0, dish.y0], [dish.x1, dish.y1])
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(150, 2500) * k
        n = max(2, int(length / (10 * k)))
        turn = np.cumsum(np.full(n, rng.normal(0, 0.004)))
        steps = 10 * k * np.stack([np.cos(heading + turn), np.sin(heading + turn)], axis=1)
        line = p + np.cumsum(steps, axis=0)
        v = rng.uniform(0.02, 0.07) * (-1.0 if rng.random() < 0.6 else 1.0)
        thick = 2 if rng.random() < 0.2 else 1
        normal = np.array([-np.sin(heading), np.cos(heading)])
        for j in range(1 + int(rng.poisson(0.6))):
            off = line + normal * j * rng.uniform(3, 12) * k
            cv2.polylines(lid, [np.round(off * 4).astype(np.int32)], False, float(v), thick, AA, shift=2)


def _dirt(rng: np.random.Generator, dirt: np.ndarray, dish: Dish, amount: float, k: float) -> None:
    """Dark things on the agar: dust specks, fibres (thin curves, like roots) and
    debris, much of it far below the plants."""
    w, h = dish.x1 - dish.x0, dish.y1 - dish.y0
    n = int(rng.poisson(60 + 700 * amount))
    xs, ys = rng.uniform(dish.x0, dish.x1, n), rng.uniform(dish.y0, dish.y1, n)
    rs, vs = rng.uniform(0.5, 2.5, n) * k, rng.uniform(0.1, 0.5, n)
    for x, y, r, v in zip(xs, ys, rs, vs, strict=True):
        cv2.circle(dirt, (int(x * 4), int(y * 4)), max(1, int(r * 4)), float(v), -1, AA, shift=2)
    for _ in range(int(rng.poisson(1 + 6 * amount))):
        m = int(rng.integers(15, 120))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, m))
        steps = rng.uniform(3, 6) * k * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        p = rng.uniform([dish.x0, dish.y0], [dish.x1, dish.y1]) + np.cumsum(steps, axis=0)
        thick = max(1, round(rng.uniform(1, 2.5) * k))
        cv2.polylines(dirt, [np.round(p * 4).astype(np.int32)], False, float(rng.uniform(0.12, 0.45)), thick, AA, 2)
    for _ in range(int(rng.poisson(2 + 10 * amount))):
        below = rng.random() < 0.65
        c = np.array(
            [
                rng.uniform(dish.x0 + 0.02 * w, dish.x1 - 0.02 * w),
                dish.y0 + h * rng.uniform(0.45 if below else 0.03, 0.97),
            ]
        )
        m = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, m))
        rad = rng.uniform(3, 22) * k * rng.uniform(0.5, 1.0, m)
        poly = c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)
        cv2.fillPoly(dirt, [np.round(poly * 4).astype(np.int32)], float(rng.uniform(0.2, 0.75)), AA, shift=2)


def _mould_mark_and_corners(rng: np.random.Generator, lid: np.ndarray, dish: Dish, k: float) -> bool:
    """The embossed ring the dish mould leaves (a dark and a bright circle side by side),
    and glints along the rounded corners of the dish. Returns whether a ring was drawn."""
    half = (dish.x1 - dish.x0) / 2
    ring = bool(rng.random() < 0.85)
    if ring:
        centre = np.array([(dish.x0 + dish.x1) / 2, (dish.y0 + dish.y1) / 2]) + rng.normal(0, 0.2 * half, 2)
        radius = rng.uniform(8, 25) * dish.px_per_mm
        t = max(1, round(rng.uniform(2, 5) * k))
        c = (int(centre[0] * 4), int(centre[1] * 4))
        cv2.circle(lid, c, int(radius * 4), float(rng.uniform(0.03, 0.08)), t, AA, shift=2)
        cv2.circle(lid, c, int((radius + t) * 4), -float(rng.uniform(0.02, 0.06)), t, AA, shift=2)
        if rng.random() < 0.4:
            cv2.circle(lid, c, int(radius * rng.uniform(0.85, 0.95) * 4), float(rng.uniform(0.02, 0.05)), t, AA, 2)
    r = dish.corner_radius
    corners = (
        (dish.x0 + r, dish.y0 + r, 180),
        (dish.x1 - r, dish.y0 + r, 270),
        (dish.x1 - r, dish.y1 - r, 0),
        (dish.x0 + r, dish.y1 - r, 90),
    )
    for x, y, a0 in corners:
        if rng.random() < 0.5:
            rr = max(2.0, r - rng.uniform(4, 25) * k)
            t = max(1, round(rng.uniform(2, 6) * k))
            ax = (int(rr * 4), int(rr * 4))
            cv2.ellipse(lid, (int(x * 4), int(y * 4)), ax, 0, a0, a0 + 90, -float(rng.uniform(0.08, 0.25)), t, AA, 2)
    return ring


# --- the plate -----------------------------------------------------------------------


def render_realistic(rng: np.random.Generator, lay: Layout) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """Grey image (H, W) uint8, masks per class, and whether a mould mark was drawn."""
    dish, seedlings, look = lay.dish, lay.seedlings, lay.look
    width, height = lay.size
    shape = (height, width)
    fs = lay.frame[0] / WIDTH
    k = (dish.x1 - dish.x0) / 2820  # plants and drops follow px/mm
    cx, cy = (dish.x0 + dish.x1) / 2, (dish.y0 + dish.y1) / 2
    half = (dish.x1 - dish.x0) / 2

    # --- agar and illumination, smooth: computed at 1/8 resolution -----------------------
    lh, lw = -(-height // LOWRES), -(-width // LOWRES)
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32) * LOWRES + (LOWRES - 1) / 2
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * half * half)
    illum = 1.0 - look.vignetting * r2
    g_angle = rng.uniform(0, 2 * np.pi)
    illum += look.illumination_gradient * ((xx - cx) * np.cos(g_angle) + (yy - cy) * np.sin(g_angle)) / half
    b_angle, b_pos, b_width = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.5) * half, rng.uniform(0.1, 0.3) * half
    d = (xx - cx) * np.sin(b_angle) + (yy - cy) * np.cos(b_angle) - b_pos
    illum += look.band_strength * np.exp(-0.5 * (d / b_width) ** 2)
    # The meniscus: agar climbs the wall, darker or brighter near the edge, most in the corners.
    small = Dish(dish.x0 / LOWRES, dish.y0 / LOWRES, dish.x1 / LOWRES, dish.y1 / LOWRES, dish.corner_radius / LOWRES)
    edge = 1.0 - cv2.GaussianBlur(_rounded_rect((lh, lw), small).astype(np.float32), (0, 0), rng.uniform(3, 7) * k)
    illum *= 1.0 - rng.uniform(-0.06, 0.14) * 2 * edge
    agar_level = rng.uniform(174, 188)
    texture = 1.0 + 0.025 * _smooth_noise(rng, (lh, lw), 8) + 0.012 * _smooth_noise(rng, (lh, lw), 60)
    base = cv2.resize(agar_level * texture * illum, (width, height), interpolation=cv2.INTER_LINEAR)

    # --- plants ---------------------------------------------------------------------------
    a, b = rng.uniform(0.12, 0.18), rng.uniform(0.10, 0.14)
    sigma = float(np.hypot(0.7, look.blur_sigma * fs))  # layer blur and camera defocus
    gain = look.contrast * (1 + look.brightness / 180)  # the camera's slope at the agar

    def tip_opacity(root: Root) -> float:
        """The opacity that leaves the tip `root.tip_contrast` grey levels below the agar
        here, given its width, the blurs and the camera (peak of a blurred bar: erf)."""
        w = float(root.widths[-1])
        peak = a * erf(_drawn_width(w) / (2 * SQRT2 * sigma)) + b * erf(_drawn_width(w / 2.5) / (2 * SQRT2 * sigma))
        x, y = root.tip
        level = float(base[min(height - 1, max(0, int(y))), min(width - 1, max(0, int(x)))])
        return float(min(1.0, root.tip_contrast / (level * gain * peak * TIP_PEAK_CALIBRATION)))

    layers, masks = _draw_plants(rng, seedlings, shape, k, tip_opacity)
    root_dark: np.ndarray = cv2.GaussianBlur(a * layers["root"] + b * layers["core"], (0, 0), 0.7)
    root_dark += rng.uniform(0.15, 0.3) * cv2.GaussianBlur(layers["hairs"], (0, 0), 0.6)
    root_dark += 0.07 * cv2.GaussianBlur(layers["faint"], (0, 0), 2.5)
    shoot_tex = 1.0 + 0.06 * _smooth_noise(rng, shape, 400)
    shoot_dark = rng.uniform(0.68, 0.80) * cv2.GaussianBlur(layers["shoot"], (0, 0), 1.4) * shoot_tex
    seed_alpha = cv2.GaussianBlur(layers["seed"], (0, 0), 1.0)
    darkness = np.maximum(root_dark, shoot_dark) * (1.0 - seed_alpha) + rng.uniform(0.40, 0.50) * seed_alpha

    # --- distractors: never in a mask -----------------------------------------------------
    dirt = np.zeros(shape, np.float32)
    _dirt(rng, dirt, dish, look.dust, k)
    darkness = np.maximum(darkness, cv2.GaussianBlur(dirt, (0, 0), 0.8))
    lid: np.ndarray = np.zeros(shape, np.float32)
    _drops(rng, lid, dish, look.condensation, k, lay.drops)
    _scratches(rng, lid, dish, look.dust, k)
    ring = _mould_mark_and_corners(rng, lid, dish, k)
    lid = cv2.GaussianBlur(lid, (0, 0), max(0.6, 1.0 * k))
    plate = base * (1.0 - darkness) * (1.0 - lid)

    # --- dish rim and black surround ------------------------------------------------------
    inside = cv2.GaussianBlur(_rounded_rect(shape, dish).astype(np.float32), (0, 0), 1.5)
    rim_w = rng.uniform(22, 40) * k
    rim = (cv2.GaussianBlur(_rounded_rect(shape, dish, grow=rim_w).astype(np.float32), (0, 0), 2.0) - inside).clip(0, 1)
    rim_level = rng.uniform(45, 85) * (1.0 + 0.15 * _smooth_noise(rng, shape, 20))
    outline = cv2.morphologyEx(_rounded_rect(shape, dish, grow=rim_w * 0.6), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    highlight = cv2.GaussianBlur(outline.astype(np.float32), (0, 0), 1.5)
    img = inside * plate + rim * rim_level + 60 * highlight
    img += (1.0 - inside - rim).clip(0, 1) * rng.uniform(2, 5)

    # --- camera ----------------------------------------------------------------------------
    if look.blur_sigma * fs > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), look.blur_sigma * fs)
    # Exposure and a gamma for contrast, so the surround stays black (grey 2-6).
    img = 180.0 * (np.clip(img, 0, None) / 180.0) ** look.contrast * (1 + look.brightness / 180)
    noise = rng.standard_normal(shape, dtype=np.float32)
    img += look.noise_sigma * noise * np.sqrt(np.clip(img, 1, 255) / 128.0)
    if lay.crop is None:  # the intensity bar is outside every crop
        _draw_intensity_bar(img, rng, width, height)
    grey = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return grey, masks, ring
