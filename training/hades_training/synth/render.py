"""Draws a synthetic Hades plate and its exact masks from generated geometry.

The image is built as agar brightness x illumination x (1 - darkness of what
lies on the agar), then blurred and given sensor noise like a camera would,
which keeps objects consistent under vignetting and the brighter band.
Layout follows ../shared/HADES.md: black surround, rounded square dish with a
dark rim, agar grey 160-190, roots grey 110-140 at the centre, shoots 30-60,
and the intensity bar with tick labels on the right edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from hades_training.synth.appearance import Appearance
from hades_training.synth.plants import Dish, Root, Seedling

WIDTH, HEIGHT = 4202, 3006
CLASSES = ("root", "shoot", "seed", "occluded_root")
AA = cv2.LINE_AA


def make_dish(rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT) -> Dish:
    """Agar spans about x 720-3540, y 120-2860 on a 4202x3006 image (scaled for others)."""
    sx, sy = width / WIDTH, height / HEIGHT
    cx = (2130 + rng.normal(0, 25)) * sx
    cy = (1490 + rng.normal(0, 15)) * sy
    half_w = (1410 + rng.normal(0, 12)) * sx
    half_h = (1370 + rng.normal(0, 10)) * sy
    return Dish(cx - half_w, cy - half_h, cx + half_w, cy + half_h, corner_radius=rng.uniform(90, 140) * sx)


def _rounded_rect(shape: tuple[int, int], dish: Dish, grow: float = 0.0) -> np.ndarray:
    """Filled rounded rectangle (uint8 0/1) of the agar area, grown by `grow` px."""
    mask = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = dish.x0 - grow, dish.y0 - grow, dish.x1 + grow, dish.y1 + grow
    r = max(1, int(dish.corner_radius + grow))
    cv2.rectangle(mask, (int(x0 + r), int(y0)), (int(x1 - r), int(y1)), 1, -1)
    cv2.rectangle(mask, (int(x0), int(y0 + r)), (int(x1), int(y1 - r)), 1, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(mask, (int(cx), int(cy)), r, 1, -1, AA)
    return mask


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], `cells` blobs across the short side."""
    h, w = shape
    small = rng.standard_normal((cells, max(2, int(cells * w / h)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _draw_root(
    layer: np.ndarray, core: np.ndarray, mask: np.ndarray, occ_mask: np.ndarray, faint: np.ndarray, root: Root
) -> None:
    """Segments one by one, so the width tapers; occluded stretches go to the faint
    layer (seen through agar) and to the occluded mask instead of the root mask."""
    pts = np.round(root.points * 4).astype(np.int32)  # 2 fractional bits for cv2
    hidden = np.zeros(len(pts), bool)
    for a, b in root.occluded:
        hidden[a:b] = True
    n = len(pts)
    for k in range(n - 1):
        w = float(root.widths[k])
        p, q = tuple(pts[k]), tuple(pts[k + 1])
        thick = max(1, round(w))
        # The tip is translucent: the last ~30 px fade out.
        fade = min(1.0, (n - 1 - k) * 4.0 / 30.0) * 0.5 + 0.5
        if hidden[k]:
            cv2.line(faint, p, q, 1.0, thick + 2, AA, shift=2)
            cv2.line(occ_mask, p, q, 1, thick, cv2.LINE_8, shift=2)
            continue
        cv2.line(layer, p, q, fade, thick, AA, shift=2)
        cv2.line(core, p, q, fade, max(1, round(w / 2.5)), AA, shift=2)
        cv2.line(mask, p, q, 1, thick, cv2.LINE_8, shift=2)


def render_plate(
    rng: np.random.Generator,
    dish: Dish,
    seedlings: list[Seedling],
    look: Appearance,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns the RGB image (H, W, 3) uint8 and masks per class (H, W) uint8 0/1."""
    shape = (height, width)
    s = width / WIDTH  # image px per Hades px: small plates are scaled Hades plates
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (dish.x0 + dish.x1) / 2, (dish.y0 + dish.y1) / 2
    half = (dish.x1 - dish.x0) / 2

    # --- agar and illumination -------------------------------------------------
    agar_mask = _rounded_rect(shape, dish)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * half * half)
    illum = 1.0 - look.vignetting * r2
    g_angle = rng.uniform(0, 2 * np.pi)
    illum += look.illumination_gradient * ((xx - cx) * np.cos(g_angle) + (yy - cy) * np.sin(g_angle)) / half
    b_angle = rng.uniform(-0.6, 0.6)
    b_pos = rng.uniform(-0.5, 0.5) * half
    b_width = rng.uniform(0.12, 0.3) * half
    d = (xx - cx) * np.sin(b_angle) + (yy - cy) * np.cos(b_angle) - b_pos
    illum += look.band_strength * np.exp(-0.5 * (d / b_width) ** 2)
    agar_level = rng.uniform(176, 188)
    agar = agar_level * (1.0 + 0.025 * _smooth_noise(rng, shape, 8) + 0.01 * _smooth_noise(rng, shape, 60))

    # --- things on the agar: darkness layers ------------------------------------
    root_layer = np.zeros(shape, np.float32)
    root_core = np.zeros(shape, np.float32)
    faint = np.zeros(shape, np.float32)
    shoot_layer = np.zeros(shape, np.float32)
    seed_layer = np.zeros(shape, np.float32)
    masks = {c: np.zeros(shape, np.uint8) for c in CLASSES}
    for plant in seedlings:
        for root in plant.roots:
            _draw_root(root_layer, root_core, masks["root"], masks["occluded_root"], faint, root)
        for leaf in plant.leaves:
            c = (int(leaf.centre[0] * 4), int(leaf.centre[1] * 4))
            ax = (int(leaf.axes[0] * 4), int(leaf.axes[1] * 4))
            cv2.ellipse(shoot_layer, c, ax, leaf.angle_deg, 0, 360, 1.0, -1, AA, shift=2)
            cv2.ellipse(masks["shoot"], c, ax, leaf.angle_deg, 0, 360, 1, -1, cv2.LINE_8, shift=2)
        # Hypocotyl from the rosette down to the top of the seed.
        hyp = (int(plant.shoot_centre[0] * 4), int(plant.shoot_centre[1] * 4))
        seed_c = (int(plant.seed_centre[0] * 4), int(plant.seed_centre[1] * 4))
        seed_top = (seed_c[0], int((plant.seed_centre[1] - plant.seed_axes[1]) * 4))
        cv2.line(shoot_layer, hyp, seed_top, 0.8, 5, AA, shift=2)
        cv2.line(masks["shoot"], hyp, seed_top, 1, 5, cv2.LINE_8, shift=2)
        sax = (int(plant.seed_axes[0] * 4), int(plant.seed_axes[1] * 4))
        cv2.ellipse(seed_layer, seed_c, sax, plant.seed_angle_deg, 0, 360, 1.0, -1, AA, shift=2)
        cv2.ellipse(masks["seed"], seed_c, sax, plant.seed_angle_deg, 0, 360, 1, -1, cv2.LINE_8, shift=2)
    # Roots behind a shoot are not visible: that stretch is occluded root.
    behind = (masks["root"] > 0) & (masks["shoot"] > 0)
    masks["occluded_root"][behind] = 1
    masks["root"][behind] = 0

    root_dark = rng.uniform(0.12, 0.18) * cv2.GaussianBlur(root_layer, (0, 0), 0.7)
    root_dark += rng.uniform(0.10, 0.14) * cv2.GaussianBlur(root_core, (0, 0), 0.7)
    root_dark += 0.07 * cv2.GaussianBlur(faint, (0, 0), 2.5)
    shoot_tex = 1.0 + 0.06 * _smooth_noise(rng, shape, 400)
    shoot_dark = rng.uniform(0.68, 0.80) * cv2.GaussianBlur(shoot_layer, (0, 0), 1.4) * shoot_tex
    # The seed coat lies on top: it covers what is under it and has a faint highlight.
    seed_alpha = cv2.GaussianBlur(seed_layer, (0, 0), 1.0)
    darkness = np.maximum(root_dark, shoot_dark) * (1.0 - seed_alpha) + rng.uniform(0.40, 0.50) * seed_alpha
    darkness -= 0.12 * cv2.GaussianBlur(cv2.erode(seed_layer, np.ones((5, 5), np.uint8)), (0, 0), 2.0)

    # Dust specks, fibres and scratches: dark, not plant, not in any mask.
    n_dust = int(rng.poisson(20 + 400 * look.dust))
    dust_layer = np.zeros(shape, np.float32)
    for _ in range(n_dust):
        x, y = rng.uniform(dish.x0, dish.x1), rng.uniform(dish.y0, dish.y1)
        cv2.circle(
            dust_layer,
            (int(x * 4), int(y * 4)),
            max(2, int(rng.uniform(0.8, 3.5) * 4 * s)),
            float(rng.uniform(0.15, 0.5)),
            -1,
            AA,
            shift=2,
        )
    for _ in range(int(rng.poisson(1 + 6 * look.dust))):
        p = np.array([rng.uniform(dish.x0, dish.x1), rng.uniform(dish.y0, dish.y1)])
        pts = p + np.cumsum(rng.normal(0, 6 * s, (int(rng.integers(5, 20)), 2)), axis=0)
        cv2.polylines(dust_layer, [np.round(pts * 4).astype(np.int32)], False, 0.25, 1, AA, shift=2)
    for _ in range(int(rng.poisson(2))):
        p = rng.uniform([dish.x0, dish.y0], [dish.x1, dish.y1])
        q = p + rng.normal(0, 500 * s, 2)
        cv2.line(
            dust_layer, tuple(np.round(p * 4).astype(int)), tuple(np.round(q * 4).astype(int)), 0.04, 1, AA, shift=2
        )
    darkness = np.maximum(darkness, cv2.GaussianBlur(dust_layer, (0, 0), 0.8))

    # Condensation: drops on the lid act as small lenses, bright centre and dark rim,
    # denser towards the top of the dish.
    drops: np.ndarray = np.zeros(shape, np.float32)
    n_drops = int(rng.poisson(3000 * look.condensation))
    if n_drops:
        xs = rng.uniform(dish.x0, dish.x1, n_drops)
        ys = dish.y0 + (dish.y1 - dish.y0) * rng.beta(1.0, 1.8, n_drops)
        rs = np.clip(rng.lognormal(np.log(6.0), 0.6, n_drops), 2, 40) * s
        for x, y, r in zip(xs, ys, rs, strict=True):
            c = (int(x * 4), int(y * 4))
            cv2.circle(drops, c, max(1, int(r * 4)), 0.05, max(1, int(r / 4)), AA, shift=2)
            cv2.circle(drops, c, max(1, int(r * 0.55 * 4)), -0.03, -1, AA, shift=2)
        drops = cv2.GaussianBlur(drops, (0, 0), max(0.5, 1.2 * s))

    plate = agar * illum * (1.0 - darkness - drops)

    # --- dish rim and black surround ---------------------------------------------
    inside = cv2.GaussianBlur(agar_mask.astype(np.float32), (0, 0), 1.5)
    rim_w = rng.uniform(22, 40) * s
    rim = cv2.GaussianBlur(_rounded_rect(shape, dish, grow=rim_w).astype(np.float32), (0, 0), 2.0) - inside
    rim_level = rng.uniform(45, 85) * (1.0 + 0.15 * _smooth_noise(rng, shape, 20))
    highlight = cv2.GaussianBlur(
        cv2.morphologyEx(_rounded_rect(shape, dish, grow=rim_w * 0.6), cv2.MORPH_GRADIENT, np.ones((3, 3))).astype(
            np.float32
        ),
        (0, 0),
        1.5,
    )
    surround = rng.uniform(2, 5)
    img = inside * plate + rim.clip(0, 1) * rim_level + 60 * highlight
    img += (1.0 - inside - rim.clip(0, 1)).clip(0, 1) * surround

    # --- camera ---------------------------------------------------------------------
    if look.blur_sigma * s > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), look.blur_sigma * s)
    img = (img - 128.0) * look.contrast + 128.0 + look.brightness
    img += rng.normal(0, look.noise_sigma, shape).astype(np.float32) * np.sqrt(np.clip(img, 1, 255) / 128.0)
    _draw_intensity_bar(img, rng, width, height)
    grey = np.clip(img, 0, 255)
    # Grey plate, colour camera: channels nearly equal.
    gains = 1.0 + rng.normal(0, 0.006, 3)
    rgb = np.stack([np.clip(grey * g, 0, 255) for g in gains], axis=-1).astype(np.uint8)
    return rgb, masks


def _draw_intensity_bar(img: np.ndarray, rng: np.random.Generator, width: int, height: int) -> None:
    """The narrow intensity bar with tick labels on the right edge (x > ~4120)."""
    s = width / WIDTH
    x0 = int((4124 + rng.integers(-4, 5)) * s)
    bw = max(2, int(20 * s))
    y0, y1 = int(0.08 * height), int(0.92 * height)
    ramp = np.linspace(250, 5, y1 - y0, dtype=np.float32)[:, None]
    img[y0:y1, x0 : x0 + bw] = ramp
    labels = np.zeros(img.shape, np.uint8)  # putText draws on 8-bit images only
    for level in range(0, 256, 50):
        y = int(y1 - (y1 - y0) * level / 255)
        cv2.line(labels, (x0 + bw, y), (x0 + bw + int(10 * s), y), 255, max(1, int(2 * s)))
        cv2.putText(
            labels,
            str(level),
            (x0 + bw + int(12 * s), y + int(6 * s)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6 * s,
            255,
            max(1, int(2 * s)),
            AA,
        )
    alpha = labels.astype(np.float32) / 255.0
    img *= 1.0 - alpha
    img += 200.0 * alpha
