"""A look at a dataset: overlay pictures and the figures a person checks against
../shared/HADES.md (image size, grey levels, plant row, root lengths, tip count)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hades_perception.inference.overlay import Marker, draw_overlay, legend
from hades_training.data.sample import Sample


def markers_of(sample: Sample) -> list[Marker]:
    out = []
    for p in sample.truth.plants:
        if p.primary_root_tip:
            out.append(Marker("primary_root_tip", *p.primary_root_tip, plant=p.index))
        out += [Marker("root_tip", x, y, plant=p.index) for x, y in p.root_tips]
        if p.seed:
            out.append(Marker("seed", *p.seed, plant=p.index))
    return out


def sample_figures(sample: Sample) -> dict[str, Any]:
    grey = sample.image.mean(axis=2)
    agar = grey[(sample.masks["root"] == 0) & (grey > 100)]
    root_core = cv2.erode(sample.masks["root"], np.ones((3, 3), np.uint8)) > 0
    shoot_core = cv2.erode(sample.masks["shoot"], np.ones((5, 5), np.uint8)) > 0
    ppm = sample.truth.px_per_mm
    plants = sample.truth.plants
    lengths = [p.primary_root_length_px for p in plants if p.primary_root_length_px]
    seeds_x = sorted(p.seed[0] for p in plants if p.seed)
    return {
        "stem": sample.stem,
        "size": [sample.image.shape[1], sample.image.shape[0]],
        "px_per_mm": ppm,
        "landmarks_from": sample.truth.source,
        "plants": len(plants),
        "seed_y": [round(p.seed[1]) for p in plants if p.seed],
        "seed_spacing_px": [round(b - a) for a, b in itertools.pairwise(seeds_x)],
        "primary_root_length_px": [round(v) for v in lengths],
        "primary_root_length_mm": [round(v / ppm, 1) for v in lengths] if ppm else None,
        "primary_tip_y": [round(p.primary_root_tip[1]) for p in plants if p.primary_root_tip],
        "other_root_tips": sum(len(p.root_tips) for p in plants),
        "agar_grey_p5_p50_p95": [round(float(v)) for v in np.percentile(agar, [5, 50, 95])] if agar.size else None,
        "root_grey_p5_p50_p95": [round(float(v)) for v in np.percentile(grey[root_core], [5, 50, 95])]
        if root_core.any()
        else None,
        "shoot_grey_p5_p50_p95": [round(float(v)) for v in np.percentile(grey[shoot_core], [5, 50, 95])]
        if shoot_core.any()
        else None,
        "mask_pixels": {c: int(m.sum()) for c, m in sample.masks.items()},
    }


def write_preview(samples: list[Sample], out: Path, scale: float | None = None) -> Path:
    """Writes OUT/overlays/<stem>.png, OUT/dataset.json and OUT/dataset.md; returns the .md path."""
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    figures = []
    for s in samples:
        pic = draw_overlay(s.image, s.masks, markers_of(s), scale=scale)
        cv2.imwrite(str(out / "overlays" / f"{s.stem}.png"), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
        figures.append(sample_figures(s))
    (out / "dataset.json").write_text(json.dumps(figures, indent=1))
    lines = ["# Dataset preview", "", f"Colours: {legend(samples[0].masks) if samples else ''}", ""]
    for f in figures:
        lines += [f"## {f['stem']}", "", f"![overlay](overlays/{f['stem']}.png)", ""]
        lines += [f"- {k}: {v}" for k, v in f.items() if k != "stem"]
        lines.append("")
    md = out / "dataset.md"
    md.write_text("\n".join(lines))
    return md
