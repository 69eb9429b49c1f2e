"""Training configuration: plain values, a YAML file over the defaults, then
`--set key=value` overrides from the command line (nanoGPT style)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hades_perception.landmarks import REQUIRED_KINDS
from hades_training.data.sample import HADES_CLASSES


@dataclass
class TrainConfig:
    # data
    classes: tuple[str, ...] = HADES_CLASSES
    kinds: tuple[str, ...] = REQUIRED_KINDS
    crop: str = "dish"  # "dish" or "none" (RootNav photographs have no dish)
    scale: float = 0.5  # model px per image px
    # model
    width: int = 16
    # targets
    heat_sigma: float = 1.5  # heatmap cells
    # optimisation
    patch: int = 256
    batch: int = 8
    epochs: int = 12
    steps_per_epoch: int = 100
    lr: float = 2e-3
    weight_decay: float = 1e-4
    heat_weight: float = 1.0
    dice_weight: float = 1.0
    focus_p: float = 0.7
    seed: int = 0
    amp: str = "auto"  # auto: bf16/fp16 on CUDA, off on CPU
    # serving (written to the manifest at export)
    tile: int = 768
    tile_overlap: int = 64
    mask_threshold: float = 0.5
    landmark_threshold: float = 0.3
    low_confidence: float = 0.5
    nms_radius_px: float = 24.0
    plants: int = 5
    # bookkeeping
    experiment: str = "hades-perception"
    val_max_items: int = 8  # full-plate validation each epoch on at most this many items
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        problems = []
        if not 0 < self.scale <= 1:
            problems.append(f"scale must be in (0, 1], got {self.scale}")
        if self.patch % 16 or self.patch < 32:
            problems.append(f"patch must be a multiple of 16 and at least 32, got {self.patch}")
        if self.tile % 16 or self.tile < self.patch:
            problems.append(f"tile must be a multiple of 16 and at least the patch size, got {self.tile}")
        if not 0 <= self.tile_overlap < self.tile // 2:
            problems.append(f"tile_overlap must be in [0, tile/2), got {self.tile_overlap}")
        for name in ("batch", "epochs", "steps_per_epoch", "width", "plants"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        for name in ("mask_threshold", "landmark_threshold", "low_confidence", "focus_p"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.crop not in ("dish", "none"):
            problems.append(f"crop must be 'dish' or 'none', got {self.crop!r}")
        if self.amp not in ("auto", "off", "fp16", "bf16"):
            problems.append(f"amp must be auto, off, fp16 or bf16, got {self.amp!r}")
        if problems:
            raise ValueError("impossible training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"], d["kinds"] = list(self.classes), list(self.kinds)
        return d


def load_config(path: Path | str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    values: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        values.update(loaded)
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
    for key in ("classes", "kinds"):
        if key in values:
            values[key] = tuple(values[key])
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg
