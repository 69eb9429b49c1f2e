"""A Prediction as files, the form every adapter writes and evaluation reads.

Per image, in one folder: <stem>.json (Prediction.to_json) and
<stem>_<class>_mask.png (uint8, 0/255, image size). `hades-perception predict` writes
it, so does `hades-perception replay --predictions` (from a running node's messages),
and `hades-train score` reads it back: scoring needs no bag reader and no ROS, and the
node's side needs no training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hades_perception.inference.dish import DishRegion
from hades_perception.inference.plants import Plant
from hades_perception.inference.prediction import Landmark, Prediction

JSON_SUFFIX = ".json"
MASK_SUFFIX = "_mask.png"


def mask_path(folder: Path, stem: str, cls: str) -> Path:
    return folder / f"{stem}_{cls}{MASK_SUFFIX}"


def write_prediction(folder: Path, stem: str, pred: Prediction) -> Path:
    """Write `pred`'s masks and JSON into `folder`; returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for cls, mask in pred.masks.items():
        cv2.imwrite(str(mask_path(folder, stem, cls)), mask.astype(np.uint8) * 255)
    path = folder / f"{stem}{JSON_SUFFIX}"
    record = pred.to_json()
    record["classes"] = list(pred.classes)
    path.write_text(json.dumps(record, indent=1))
    return path


def read_prediction(json_path: Path) -> Prediction:
    """The Prediction written by write_prediction (without the probabilities, which
    are not stored; the confidence map is rebuilt as 0 where unknown)."""
    d = json.loads(json_path.read_text())
    stem, folder = json_path.stem, json_path.parent
    classes = tuple(d.get("classes") or d["certainty"]["per_class"])
    w, h = d["image"]["width"], d["image"]["height"]
    masks = {}
    for cls in classes:
        img = cv2.imread(str(mask_path(folder, stem, cls)), cv2.IMREAD_GRAYSCALE)
        if img is None or img.shape != (h, w):
            raise ValueError(f"{mask_path(folder, stem, cls)}: missing or not {w}x{h}")
        masks[cls] = img > 0
    cert = d["certainty"]
    cal = d.get("calibration") or {}
    return Prediction(
        width=w,
        height=h,
        classes=classes,
        masks=masks,
        confidence=np.zeros((h, w), np.uint8),
        landmarks=[
            Landmark(lm["kind"], lm["plant"], lm["x"], lm["y"], lm["confidence"], lm.get("x_mm"), lm.get("y_mm"))
            for lm in d["landmarks"]
        ],
        class_confidence=dict(cert["per_class"]),
        plants=[_plant(p) for p in d.get("plants") or cert["per_plant"]],
        low_confidence_threshold=cert["low_confidence_threshold"],
        model=dict(d["model"]),
        dish=_dish(cal),
        px_per_mm=cal.get("px_per_mm"),
        timing_ms=dict(d.get("timing_ms") or {}),
    )


def _dish(calibration: dict[str, Any]) -> DishRegion | None:
    box = calibration.get("dish_px")
    if not box:
        return None
    x0, y0, x1, y1 = (int(v) for v in box)
    return DishRegion(x0, y0, x1, y1, tuple(calibration.get("dish_cut") or ()))


def read_predictions(folder: Path) -> dict[str, Prediction]:
    """Every prediction in `folder`, by image stem."""
    return {p.stem: read_prediction(p) for p in sorted(folder.glob(f"*{JSON_SUFFIX}"))}


def _plant(d: dict) -> Plant:
    """A plant from the JSON's "plants" list (or, in files from before it, "per_plant")."""

    def pt(v: list[float] | None) -> tuple[float, float] | None:
        return None if v is None else (float(v[0]), float(v[1]))

    return Plant(
        d["plant"],
        d["confidence"],
        d["low_confidence"],
        base=pt(d.get("base")),
        primary_root_tip=pt(d.get("primary_root_tip")),
        primary_root_length_px=d.get("primary_root_length_px"),
        primary_root_length_mm=d.get("primary_root_length_mm"),
        total_root_length_px=d.get("total_root_length_px") or 0.0,
        lateral_root_count=d.get("lateral_root_count") or 0,
        shoot_area_px=d.get("shoot_area_px") or 0.0,
        reason=d.get("reason") or "",
    )
