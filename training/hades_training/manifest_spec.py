"""Builds manifest dictionaries (hades_perception.contract.bundle reads them) from a training config.

The input/output/calibration parts are produced here only, for the provisional
manifest used in validation during training and for the exported bundle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hades_perception.contract.bundle import SCHEMA_VERSION, Manifest
from hades_training.config import TrainConfig
from hades_training.model import HEAT_STRIDE, SIZE_DIVISOR

INPUT_TENSOR, SEG_TENSOR, HEAT_TENSOR = "image", "seg_logits", "heatmap_logits"
# ImageNet-free normalisation: plates are grey around 175 on agar.
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def manifest_dict(
    cfg: TrainConfig,
    *,
    name: str = "provisional",
    version: str = "0",
    seg_temperature: list[float] | None = None,
    mask_thresholds: list[float] | None = None,
    landmark_temperature: list[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {"model.onnx": {"sha256": "", "size": 0}},
        "input": {
            "tensor": INPUT_TENSOR,
            "layout": "NCHW",
            "dtype": "float32",
            "channels": "RGB",
            "normalisation": {"scale": 1 / 255, "mean": list(MEAN), "std": list(STD)},
            "crop": cfg.crop,
            "scale": cfg.scale,
            "tile": cfg.tile,
            "tile_overlap": cfg.tile_overlap,
            "size_divisor": SIZE_DIVISOR,
        },
        "outputs": {
            "segmentation": {
                "tensor": SEG_TENSOR,
                "classes": list(cfg.classes),
                "activation": "sigmoid",
                "multi_label": True,
                "stride": 1,
            },
            "landmarks": {
                "tensor": HEAT_TENSOR,
                "kinds": list(cfg.kinds),
                "activation": "sigmoid",
                "stride": HEAT_STRIDE,
            },
        },
        "calibration": {
            "method": "temperature scaling on the validation split",
            "seg_temperature": seg_temperature or [1.0] * len(cfg.classes),
            "landmark_temperature": landmark_temperature or [1.0] * len(cfg.kinds),
            "mask_threshold": cfg.mask_threshold,
            "mask_thresholds": mask_thresholds or [cfg.mask_threshold] * len(cfg.classes),
            "landmark_threshold": cfg.landmark_threshold,
            "low_confidence": cfg.low_confidence,
            "nms_radius_px": cfg.nms_radius_px,
            "plants": cfg.plants,
        },
    }
    d.update(extra or {})
    return d


def provisional_manifest(cfg: TrainConfig) -> Manifest:
    return Manifest.from_dict(manifest_dict(cfg))
