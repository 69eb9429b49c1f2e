"""Coordinates between the input image, the model input and the heatmap grid.

Training renders its targets with these functions and the pipeline decodes with
them, so a landmark drawn at image pixel (x, y) comes back at (x, y): one place
for the pixel-centre convention (pixel i covers [i - 0.5, i + 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """How a model-input image was cut from the input: crop origin and scale."""

    x0: int
    y0: int
    scale: float  # model px per image px

    def to_model(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        u = (np.asarray(x, np.float64) - self.x0 + 0.5) * self.scale - 0.5
        v = (np.asarray(y, np.float64) - self.y0 + 0.5) * self.scale - 0.5
        return u, v

    def to_image(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        x = (np.asarray(u, np.float64) + 0.5) / self.scale - 0.5 + self.x0
        y = (np.asarray(v, np.float64) + 0.5) / self.scale - 0.5 + self.y0
        return x, y


def model_to_grid(u: np.ndarray | float, stride: int) -> np.ndarray:
    """Model-input px -> heatmap cell coordinates (cell j spans model px [j*s, (j+1)*s))."""
    return (np.asarray(u, np.float64) + 0.5) / stride - 0.5


def grid_to_model(g: np.ndarray | float, stride: int) -> np.ndarray:
    return (np.asarray(g, np.float64) + 0.5) * stride - 0.5


# Tiles start where they must, not on the heatmap's cells, so a blended heatmap's cell j
# holds what lies `shift[j]` cells (0 to (stride - 1) / stride) further on: see
# pipeline.Logits.heat_shift, which gives `shift` per row and per column.


def cell_to_grid(c: float, shift: np.ndarray) -> float:
    """Where on the input's heatmap grid the content of (sub-cell) position c lies."""
    return c + float(np.interp(c, np.arange(shift.size), shift)) if shift.size else c


def grid_to_cell(g: float, shift: np.ndarray) -> float:
    """The (sub-cell) position whose content lies at grid position g: cell_to_grid's
    inverse, to within how much the shift changes over the distance it moves (with a
    64 px tile overlap, under 0.04 of a cell)."""
    return g - float(np.interp(g, np.arange(shift.size), shift)) if shift.size else g
