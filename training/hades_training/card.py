"""`hades-train card`: a model card from a bundle's manifest and a test evaluation.

Written from the numbers, never by hand, so the card cannot drift from the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import open_bundle

TARGETS = {  # from the training issue: what the default model must reach on a synthetic test split
    "iou_root": 0.80,
    "iou_shoot": 0.85,
    "iou_seed": 0.70,
    "tip_within_1mm": 0.95,
    "tip_median_px": 8.0,
    "pixel_ece": 0.03,
}


def _f(v: Any, d: int = 3) -> str:
    return "n/a" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def _ok(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= target if higher else value <= target) else "**not met**"


def render_card(manifest: dict[str, Any], test: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    seg, tips, cal = test["segmentation"], test["primary_root_tip"], test["calibration"]
    lin = manifest.get("lineage", {})
    cfg = lin.get("config", {})
    train_data = (lin.get("training_data") or {}).get("train", {})
    val = manifest.get("metrics", {})
    rows = [
        ("root IoU", seg.get("root", {}).get("iou"), TARGETS["iou_root"], True),
        ("shoot IoU", seg.get("shoot", {}).get("iou"), TARGETS["iou_shoot"], True),
        ("seed IoU", seg.get("seed", {}).get("iou"), TARGETS["iou_seed"], True),
        ("primary tips within 1 mm", tips.get("within_1mm"), TARGETS["tip_within_1mm"], True),
        ("primary tip median error (px)", tips.get("median_px"), TARGETS["tip_median_px"], False),
        ("per-pixel ECE", cal.get("pixel_ece"), TARGETS["pixel_ece"], False),
    ]
    lines = [
        f"# Model card: {manifest['name']} {manifest['version']}",
        "",
        "## What it is",
        "",
        "A small U-Net (plain PyTorch, exported to ONNX) that takes a Hades Petri-dish photograph and returns "
        "multi-label masks (" + ", ".join(manifest["outputs"]["segmentation"]["classes"]) + "), landmark "
        "heatmaps (" + ", ".join(manifest["outputs"]["landmarks"]["kinds"]) + ") and calibrated certainty. "
        f"It works on the dish crop at scale {manifest['input']['scale']} in tiles of "
        f"{manifest['input']['tile']} px.",
        "",
        "## Intended use",
        "",
        "Locating Arabidopsis seedlings' roots, shoots, seeds and root tips on NPEC Hades plates (4202x3006, "
        "five plants per dish) for a robot that acts on them, skipping plants flagged low-confidence "
        f"(threshold {manifest['calibration']['low_confidence']}).",
        "",
        "## Training data",
        "",
        f"- {train_data.get('items', '?')} synthetic Hades plates (`hades-train synth`, seed 1), validation "
        f"{(lin.get('training_data') or {}).get('val', {}).get('items', '?')} plates (seed 2); sha256 "
        f"`{str(train_data.get('sha256', ''))[:16]}...`",
        f"- config: patch {cfg.get('patch')}, batch {cfg.get('batch')}, {cfg.get('epochs')} epochs x "
        f"{cfg.get('steps_per_epoch')} steps, lr {cfg.get('lr')}, width {cfg.get('width')}",
        f"- code commit `{lin.get('code_commit')}`, MLflow run `{lin.get('mlflow_run_id')}`",
        "",
        f"## Test results ({test['images']} synthetic plates, seed 3, never used in training)",
        "",
        "| measure | value | target | |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {n} | {_f(v, 4 if t < 0.1 else 3)} | {t} | {_ok(v, t, hi)} |" for n, v, t, hi in rows]
    lines += [
        "",
        f"- occluded_root IoU {_f(seg.get('occluded_root', {}).get('iou'))} (reported, no target)",
        f"- primary tip error: median {_f(tips.get('median_mm'), 2)} mm, 95th percentile "
        f"{_f(tips.get('p95_px'), 1)} px / {_f(tips.get('p95_mm'), 2)} mm (a missed tip counts as infinitely far, "
        f"so n/a when 5 % or more are missed); missed {tips.get('missing')} of {tips.get('count')}",
        f"- primary root length sMAPE {_f(test.get('primary_root_length_smape_pct'), 1)} %",
        f"- primary tips within 1 mm with the right plant number "
        f"{_f((test.get('plants') or {}).get('primary_tip_right_plant_within_1mm'))}; of the plants that are not, "
        f"flagged low-confidence {_f((test.get('plants') or {}).get('misses_flagged_low_confidence'))}; lateral "
        f"count error {_f((test.get('plants') or {}).get('lateral_count_mae'), 2)}",
        f"- primary tip confidence ECE {_f(cal.get('primary_tip_ece'), 4)}",
        f"- engine {test.get('engine')}, median {_f(test.get('timing_ms_median', {}).get('total'), 0)} ms per "
        "plate on the evaluating machine",
        "",
        f"Validation figures (the manifest's metrics, {val.get('dataset', {}).get('items', '?')} plates) are in "
        "`manifest.json`.",
        "",
    ]
    for title, body in (extra or {}).items():
        lines += [f"## {title}", "", body, ""]
    lines += [
        "## Limits",
        "",
        "- Trained on synthetic plates only. Real Hades images differ in texture, seedling shapes and artefacts; "
        "expect lower accuracy until it is fine-tuned on annotated real plates (`hades-train train --data` on a "
        "Hades folder).",
        "- Roots crossing between neighbouring plants can swap tip ownership; plants are numbered by seeds left "
        "to right and a missing seed shifts the numbering.",
        "- Certainty is calibrated on synthetic validation plates; recalibrate (export) on real validation data.",
        "",
        "## Reproduce",
        "",
        "`scripts/train_default_model.sh` (synthetic data, training, export, test evaluation, this card).",
    ]
    return "\n".join(lines) + "\n"


def write_card(bundle: Path, report: Path, out: Path, extra: dict[str, Any] | None = None) -> Path:
    manifest = open_bundle(bundle).raw
    test = json.loads(Path(report).read_text())
    out.write_text(render_card(manifest, test, extra))
    return out
