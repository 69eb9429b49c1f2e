"""The golden sample: a small input and the outputs the bundle's model gave for it at
export. A node runs it after loading a new version and before serving it, so a
model that loads but computes something else (wrong engine build, corrupted
weights, wrong provider numerics) is never served.

Files in the bundle: golden/input.png, golden/expected.npz (packed masks),
golden/expected.json (landmarks, per-class confidence, export latency); for a bundle
with an int8 variant also golden/expected.int8.{npz,json}, what that variant computed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hades_perception.contract.bundle import Manifest, load_manifest
from hades_perception.inference.prediction import Prediction

TOLERANCE = {
    "mask_agreement": 0.995,  # share of pixels per class whose mask value matches
    "landmark_px": 3.0,  # matched landmark positions (or one heatmap cell, if larger: _landmark_px)
    "confidence": 0.03,  # per-class confidence and landmark confidence
    "latency_factor": 10.0,  # budget: this many times the export machine's latency, unless the node sets one
}


@dataclass
class GoldenReport:
    ok: bool
    latency_ms: float
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def expected_stem(precision: str) -> str:
    """The golden outputs a model file is held to: model.onnx's (fp32, also what TensorRT's
    fp16 must match) or its int8 variant's own, recorded at export. The variant is judged
    for accuracy by its gate (export.py); here it must compute what it computed at export,
    on whichever runtime serves it (ONNX Runtime's CPU provider, OpenVINO, TensorRT)."""
    return "expected.int8" if precision == "int8" else "expected"


def write_golden(
    bundle: Path, image_rgb: np.ndarray, pred: Prediction, latency_ms: float, precision: str = "fp32"
) -> dict[str, Any]:
    """Store the golden input and expected outputs; returns the manifest's `golden` entry
    (for `precision` "int8": the `golden.int8` entry, beside the fp32 one)."""
    g = bundle / "golden"
    g.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(g / "input.png"), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    arrays: dict[str, np.ndarray] = {c: np.packbits(m) for c, m in pred.masks.items()}
    arrays["shape"] = np.array(image_rgb.shape[:2])
    stem = expected_stem(precision)
    np.savez_compressed(g / f"{stem}.npz", **arrays)  # type: ignore[arg-type]
    (g / f"{stem}.json").write_text(
        json.dumps(
            {
                "landmarks": [lm.to_dict() for lm in pred.landmarks],
                "peaks": [lm.to_dict() for lm in pred.peaks],
                "class_confidence": pred.class_confidence,
                "latency_ms": latency_ms,
            },
            indent=1,
        )
    )
    return {
        "input": "golden/input.png",
        "expected_masks": f"golden/{stem}.npz",
        "expected": f"golden/{stem}.json",
        "tolerance": dict(TOLERANCE),
        "latency_ms_at_export": round(latency_ms, 1),
    }


def _timed(run: Any, rgb: np.ndarray) -> tuple[Prediction, float, float]:
    """A prediction, the pipeline's own time for it and how long `run` waited before
    it started (the node runs these passes between frames): that wait is not the
    model's latency."""
    t0 = time.perf_counter()
    pred: Prediction = run(rgb)
    wall = (time.perf_counter() - t0) * 1e3
    own = float(pred.timing_ms.get("total", wall))
    return pred, own, max(0.0, wall - own)


def check_golden(
    bundle: Path, run: Any, latency_budget_ms: float | None = None, precision: str | None = None
) -> GoldenReport:
    """Run `run(image) -> Prediction` on the golden input and compare with what
    was expected at export. `run` is the pipeline about to be served, or a
    function that runs it when the node has a free moment; `precision` that of the
    model file it runs (default: the pipeline's engine's, else fp32). An int8 variant
    is held to its own golden outputs when its export recorded them, else to fp32's."""
    g = bundle / "golden"
    if precision is None:
        precision = getattr(getattr(run, "engine", None), "precision", "fp32")
    stem = expected_stem(precision or "fp32")
    if not (g / f"{stem}.json").is_file():
        stem = expected_stem("fp32")
    img = cv2.imread(str(g / "input.png"), cv2.IMREAD_COLOR)
    if img is None:
        return GoldenReport(False, 0.0, ["golden/input.png cannot be read"])
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    expected = json.loads((g / f"{stem}.json").read_text())
    packed = np.load(g / f"{stem}.npz")
    shape = tuple(int(v) for v in packed["shape"])
    _, warmup, waited_first = _timed(run, rgb)  # warm-up: first runs allocate and tune
    pred, latency, waited = _timed(run, rgb)
    problems: list[str] = []
    figures: dict[str, Any] = {"mask_agreement": {}, "warmup_ms": warmup, "waited_ms": waited_first + waited}
    for cls, mask in pred.masks.items():
        if cls not in packed:
            problems.append(f"class {cls} not in the golden outputs")
            continue
        want = np.unpackbits(packed[cls])[: shape[0] * shape[1]].reshape(shape).astype(bool)
        agree = float((want == mask).mean())
        figures["mask_agreement"][cls] = agree
        if agree < TOLERANCE["mask_agreement"]:
            problems.append(f"{cls} mask agrees on {agree:.4f} of pixels, need {TOLERANCE['mask_agreement']}")
    for cls, want_c in expected["class_confidence"].items():
        got = pred.class_confidence.get(cls)
        if got is None or abs(got - want_c) > TOLERANCE["confidence"]:
            problems.append(f"{cls} confidence {got} vs expected {want_c:.4f}")
    # What the model computes: its heatmap peaks. Landmarks and plants are computed from
    # them by code (inference/plants/), whose changes are tested, not golden-checked: a bundle
    # exported before a change of that code must still pass. Bundles from before
    # "peaks" were recorded stored landmarks, each of which was a peak (kinds relabelled).
    got_lm = [(lm.kind, lm.x, lm.y) for lm in pred.peaks]
    if "peaks" in expected:
        want_lm = [(d["kind"], d["x"], d["y"]) for d in expected["peaks"]]
        same_count, any_kind = len(got_lm) == len(want_lm), False
    else:
        want_lm = [(d["kind"], d["x"], d["y"]) for d in expected["landmarks"]]
        same_count, any_kind = True, True
    unmatched, tol_px = 0, _landmark_px(bundle)
    for kind, x, y in want_lm:
        near = (np.hypot(gx - x, gy - y) <= tol_px and (any_kind or k == kind) for k, gx, gy in got_lm)
        if not any(near):
            unmatched += 1
    figures["landmarks_expected"], figures["landmarks_missing"] = len(want_lm), unmatched
    if unmatched or not same_count:
        problems.append(
            f"heatmap peaks: {len(got_lm)} found, {len(want_lm)} expected, {unmatched} not within {tol_px:g} px"
        )
    budget = latency_budget_ms or expected["latency_ms"] * TOLERANCE["latency_factor"]
    figures["latency_budget_ms"] = budget
    if latency > budget:
        problems.append(f"latency {latency:.0f} ms over the budget of {budget:.0f} ms")
    return GoldenReport(not problems, latency, problems, figures)


def _landmark_px(bundle: Path) -> float:
    """How far a golden peak may move: TOLERANCE["landmark_px"], or one heatmap cell in
    input pixels (stride / scale) where that is larger. A peak is placed within its cell
    by the centroid of its 3x3 neighbours, whose small values engines round differently:
    OpenVINO moved one firm (0.94) root-tip peak of the shipped int8 variant by 4.2 px of
    an 8 px cell, with the same value, where ONNX Runtime's CPU provider moved none. A
    wrong engine misses peaks by many cells or loses them (40 of 51 on a CPU without
    VNNI, docs/engines.md)."""
    manifest = load_manifest(bundle)
    return max(TOLERANCE["landmark_px"], manifest.outputs.landmark_stride / manifest.input.scale)


# What export writes into an int8 variant's `format` when its weights are 7-bit
# (hades_training/export.py builds the record from it; int8_golden_hint looks for it).
SEVEN_BIT_WEIGHTS = "int8 weights in 7 bits"


def int8_golden_hint(manifest: Manifest, precision: str) -> str:
    """What to tell an operator whose model of `precision` failed its golden check, when
    it is an int8 variant whose export stored 8-bit weights: those saturate on x86 CPUs
    without VNNI (root IoU 0.48 against 0.82 on such a CPU, docs/engines.md "Weights in
    7 bits"); hades-train export has stored 7-bit weights since hades-seedlings
    2026.11.30-122410. "" otherwise."""
    variant = manifest.variants.get("model.int8.onnx") or {}
    if precision != "int8" or SEVEN_BIT_WEIGHTS in str(variant.get("format", "")):
        return ""
    return (
        " (its int8 weights are 8-bit, which saturate on x86 CPUs without VNNI: "
        "export the version again with a current hades-train for 7-bit weights; docs/engines.md)"
    )
