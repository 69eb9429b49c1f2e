"""`hades-train card`: a model card from a bundle's manifest and a test evaluation.

Written from the numbers, never by hand, so the card cannot drift from the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import open_bundle
from hades_training.evaluate.scoring import format_interval

# What the default model must reach on synthetic test splits (issue 11: real plates),
# by preset: (measure, target, higher is better).
TARGETS: dict[str, dict[str, float]] = {
    "normal": {
        "iou_root": 0.88,
        "iou_shoot": 0.90,
        "iou_seed": 0.80,
        "tips_right_plant": 0.98,
        "smape_pct": 5.0,
        "misses_flagged": 0.90,
        "pixel_ece": 0.02,
    },
    "realistic": {"tips_right_plant": 0.95, "smape_pct": 8.0, "misses_flagged": 0.90, "pixel_ece": 0.02},
}
LOWER_IS_BETTER = {"smape_pct", "pixel_ece"}
MEASURES = (  # key, label, how to read it from evaluate's metrics.json
    ("iou_root", "root IoU", lambda t: t["segmentation"].get("root", {}).get("iou")),
    ("iou_shoot", "shoot IoU", lambda t: t["segmentation"].get("shoot", {}).get("iou")),
    ("iou_seed", "seed IoU", lambda t: t["segmentation"].get("seed", {}).get("iou")),
    ("iou_occluded", "occluded_root IoU", lambda t: t["segmentation"].get("occluded_root", {}).get("iou")),
    (
        "tips_right_plant",
        "primary tips within 1 mm, right plant number",
        lambda t: (t.get("plants") or {}).get("primary_tip_right_plant_within_1mm"),
    ),
    (
        "tips_interval",
        "the same, 95 % interval (plates resampled)",
        lambda t: format_interval((t.get("plants") or {}).get("primary_tip_right_plant_within_1mm_ci95")),
    ),
    ("tips_young", "the same, young plants", lambda t: _by_stage(t, "young")),
    ("tips_old", "the same, old plants", lambda t: _by_stage(t, "old")),
    ("tip_median_mm", "primary tip median error (mm)", lambda t: t["primary_root_tip"].get("median_mm")),
    ("smape_pct", "primary root length sMAPE (%)", lambda t: t.get("primary_root_length_smape_pct")),
    (
        "misses_flagged",
        "misses flagged low-confidence",
        lambda t: (t.get("plants") or {}).get("misses_flagged_low_confidence"),
    ),
    ("lateral_mae", "lateral count MAE", lambda t: (t.get("plants") or {}).get("lateral_count_mae")),
    ("pixel_ece", "per-pixel ECE", lambda t: t["calibration"].get("pixel_ece")),
    ("tip_ece", "primary tip confidence ECE", lambda t: t["calibration"].get("primary_tip_ece")),
)


def _by_stage(t: dict[str, Any], stage: str) -> str | None:
    """Tips of one stage's plants, with how many there were: where an old-heavy split
    loses its tips (synthetic plates say each plant's stage; others give n/a)."""
    v = ((t.get("plants") or {}).get("by_stage") or {}).get(stage)
    if not v or v["primary_tip_right_plant_within_1mm"] is None:
        return None
    return f"{v['primary_tip_right_plant_within_1mm']:.3f} of {v['plants']}"


def _f(v: Any, d: int = 3) -> str:
    return "n/a" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def _verdict(key: str, value: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if value is None:
        return "n/a"
    met = value <= target if key in LOWER_IS_BETTER else value >= target
    return "met" if met else "**not met**"


def _epoch(index: Any) -> str:
    """Checkpoints count epochs from 0; people from 1."""
    return str(index + 1) if isinstance(index, int) else "?"


def _score(lineage: dict[str, Any]) -> str:
    """Whether the exported weights are the run's best by validation score or, say, its last
    epoch's; bundles exported before this was recorded say neither."""
    score, best = lineage.get("checkpoint_val_score"), lineage.get("run_best_val_score")
    if not isinstance(score, float) or not isinstance(best, float):
        return ""
    if score >= best:
        return f" (the run's best validation score, {score:.3f})"
    return f" (validation score {score:.3f}; an earlier epoch's was the run's best, {best:.3f})"


def _split(t: dict[str, Any]) -> str:
    d = t.get("dataset", {})
    return f"{t['images']} plates, `{Path(d.get('path', '?')).name}/{d.get('split')}`"


def _fine_tuned_from(init: dict[str, Any] | None) -> list[str]:
    """The card's line for a model fine-tuned from another run's weights (train --init),
    back to the run that started from random weights."""
    lines: list[str] = []
    while init:
        train = (init.get("dataset") or {}).get("train", {})
        cfg = init.get("config") or {}
        lines.append(
            f"{'- fine-tuned' if not lines else '  - which was fine-tuned'} from the weights of `{init.get('path')}` "
            f"(sha256 `{str(init.get('sha256', ''))[:16]}...`, MLflow run `{init.get('mlflow_run_id')}`, "
            f"epoch {_epoch(init.get('epoch'))} of {cfg.get('epochs', '?')} on {train.get('items', '?')} plates of "
            f"`{train.get('path', '?')}`)"
        )
        init = init.get("init_from")
    return lines


def render_card(manifest: dict[str, Any], tests: dict[str, dict[str, Any]]) -> str:
    """The card: what the model is, its data and config from its lineage, and a table of
    test figures per preset (`tests`: preset name -> evaluate's metrics.json) against
    the targets of that preset."""
    lin = manifest.get("lineage", {})
    cfg = lin.get("config", {})
    data = lin.get("training_data") or {}
    header = "| measure | " + " | ".join(f"{name} ({_split(t)})" for name, t in tests.items()) + " | targets |"
    rows = [header, "| --- |" + " --- |" * (len(tests) + 1)]
    for key, label, read in MEASURES:
        cells, targets = [], []
        for name, t in tests.items():
            v: Any = read(t)  # a number, or a ready string (an interval, a stage's share of its plants)
            target = TARGETS.get(name.split()[0], {}).get(key)  # "realistic 2": a second realistic split
            verdict = _verdict(key, v, target)
            if key == "misses_flagged" and v is None and (t.get("plants") or {}).get("misses") == 0:
                cells.append("no misses" + (" (met)" if target is not None else ""))  # nothing left to flag
            else:
                cells.append(
                    _f(v, 4 if key.endswith("ece") else (1 if key == "smape_pct" else 3))
                    + (f" ({verdict})" if verdict else "")
                )
            if target is not None:
                targets.append(f"{name} {'<=' if key in LOWER_IS_BETTER else '>='} {target:g}")
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {', '.join(targets)} |")
    timing = next(iter(tests.values())).get("timing_ms_median", {})
    lines = [
        f"# Model card: {manifest['name']} {manifest['version']}",
        "",
        "Written by `hades-train card` from the bundle's manifest and test evaluations; not edited by hand.",
        "",
        "## What it is",
        "",
        "A small U-Net (plain PyTorch, exported to ONNX) that takes a Hades Petri-dish photograph and returns "
        "multi-label masks (" + ", ".join(manifest["outputs"]["segmentation"]["classes"]) + "), landmark "
        "heatmaps (" + ", ".join(manifest["outputs"]["landmarks"]["kinds"]) + ") and calibrated certainty; "
        'the plant-structure step (docs/node.md, "Plants") turns them into five plants with their primary '
        f"root tips and traits. It works on the dish crop at scale {manifest['input']['scale']} in tiles of "
        f"{manifest['input']['tile']} px.",
        "",
        "## Intended use",
        "",
        "Locating Arabidopsis seedlings' roots, shoots, seeds and root tips on NPEC Hades plates (4202x3006, "
        "five plants per dish) for a robot that acts on them, skipping plants flagged low-confidence "
        f"(threshold {manifest['calibration']['low_confidence']}).",
        "",
        "## Training data and config",
        "",
        f"- training: {data.get('train', {}).get('items', '?')} plates of `{data.get('train', {}).get('path', '?')}` "
        f"(sha256 `{str(data.get('train', {}).get('sha256', ''))[:16]}...`); validation "
        f"{data.get('val', {}).get('items', '?')} plates",
        f"- config: patch {cfg.get('patch')}, batch {cfg.get('batch')}, {cfg.get('epochs')} epochs x "
        f"{cfg.get('steps_per_epoch')} steps, lr {cfg.get('lr')} ({cfg.get('lr_schedule')}), width "
        f"{cfg.get('width')}; weights after epoch {_epoch(lin.get('checkpoint_epoch'))}{_score(lin)}",
        *_fine_tuned_from(lin.get("init_from")),
        f"- code commit `{lin.get('code_commit')}`, MLflow run `{lin.get('mlflow_run_id')}`",
        "- drift reference: "
        + ", ".join(
            f"{k} {len(v)} frames"
            for k, v in list((manifest.get("reference_stats") or {}).get("signals", {}).items())[:1]
        )
        + " (input signals; prediction signals from the validation plates)",
        "",
        "## Test results (synthetic plates from seeds never used in training)",
        "",
        *rows,
        "",
        f"Engine {next(iter(tests.values())).get('engine')}: median {_f(timing.get('total'), 0)} ms per plate on "
        f"the evaluating machine (engine {_f(timing.get('engine'), 0)}, plant structure and the rest "
        f"{_f(timing.get('postprocess'), 0)}, monitoring signals {_f(timing.get('monitoring'), 1)}). Validation "
        "figures are in `manifest.json`; per-image figures in the metrics files.",
        *_int8_lines(manifest),
        "",
        "## Limits",
        "",
        "- Trained and tested on synthetic plates only. Real Hades images differ in texture, seedling shapes and "
        "artefacts; expect lower accuracy until it is fine-tuned on annotated real plates "
        "(`hades-train train --data REAL_PLATES --init BUNDLE --set lr=0.001 --set epochs=12`: the bundle carries "
        "its training weights).",
        "- Plants come from shoots and the roots below them, numbered in the dish's slots: a missing plant keeps its "
        "number. Roots crossing between neighbours are split by shortest path from each plant's start, which can "
        "give a lateral or the lower part of a root to the wrong plant; such tips are often, not always, flagged.",
        "- Faint young roots still break into pieces on `realistic` plates and the seed class is weak there "
        "(seeds hidden under shoots).",
        "- Certainty is calibrated on synthetic validation plates; recalibrate (export) on real validation data.",
        "",
        "## Reproduce",
        "",
        "`scripts/train_default_model.sh` (synthetic data, training, export, test evaluations, this card).",
    ]
    return "\n".join(lines) + "\n"


def _int8_lines(manifest: dict[str, Any]) -> list[str]:
    """What the int8 variant costs and whether nodes serve it (its export gate)."""
    variant = (manifest.get("variants") or {}).get("model.int8.onnx")
    if not variant:
        return []
    gate = variant.get("gate") or {}
    change = ", ".join(f"{c} {d:+.4f}" for c, d in (variant.get("iou_change") or {}).items())
    if gate.get("passed"):
        verdict = "passed its accuracy gate, so nodes serve it by default on the CPU and OpenVINO providers"
    elif gate:
        verdict = "failed its accuracy gate (" + "; ".join(gate.get("reasons") or []) + "): never served"
    else:
        verdict = "has no gate record: never served"
    return [
        "",
        f"The int8 variant (`model.int8.onnx`) {verdict} (docs/engines.md). Its IoU change on the validation "
        f"split: {change}; primary tips within 1 mm {_f(gate.get('tips_within_1mm'))} against fp32's "
        f"{_f(gate.get('tips_within_1mm_fp32'))}.",
    ]


def write_card(bundle: Path, reports: dict[str, Path], out: Path) -> Path:
    """`reports`: preset name -> evaluate's metrics.json."""
    manifest = open_bundle(bundle).raw
    tests = {name: json.loads(Path(r).read_text()) for name, r in reports.items()}
    out.write_text(render_card(manifest, tests))
    return out
