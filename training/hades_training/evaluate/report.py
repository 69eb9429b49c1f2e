"""`hades-train evaluate`: score an exported bundle on a dataset split, through the
same pipeline a node serves (ONNX Runtime, calibrated), and write a report:

  OUT/metrics.json            every figure (see Scorer.summary)
  OUT/report.md               the readable version, with pictures
  OUT/reliability_pixels.png  calibration of per-pixel certainty
  OUT/reliability_tips.png    calibration of primary-tip confidence
  OUT/overlays/<stem>.png     predicted masks and landmarks; true primary tips as white rings
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from hades_perception.contract.bundle import open_bundle
from hades_perception.inference.overlay import Marker, draw_overlay, legend
from hades_perception.inference.pipeline import Pipeline
from hades_training.data import open_dataset
from hades_training.evaluate.scoring import Scorer, format_interval

log = logging.getLogger(__name__)


def evaluate(
    bundle: Path,
    data: str,
    split: str | None,
    out: Path,
    *,
    max_items: int | None = None,
    overlays: int = 6,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    precision: str = "fp32",
) -> dict[str, Any]:
    """`precision` "int8" scores the bundle's int8 variant (what nodes serve where it
    passed its gate), "fp32" model.onnx."""
    manifest = open_bundle(bundle)
    pipe = Pipeline.from_bundle(bundle, providers=providers, precision=precision)
    reader = open_dataset(data, split, skip_bad=True)
    n = len(reader) if max_items is None else min(max_items, len(reader))
    scorer = Scorer(manifest.outputs.classes)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    timings = []
    for i in tqdm(range(n), desc="evaluating", unit="img"):
        s = reader[i]
        pred = pipe(s.image)
        timings.append(pred.timing_ms)
        fig = scorer.add(pred, s)
        if i < overlays:
            markers = [
                Marker(lm.kind, lm.x, lm.y, lm.plant, lm.confidence < pred.low_confidence_threshold)
                for lm in pred.landmarks
            ]
            pic = draw_overlay(s.image, pred.masks, markers)
            scale = pic.shape[1] / s.image.shape[1]
            for p in s.truth.plants:
                if p.primary_root_tip:
                    c = (round(p.primary_root_tip[0] * scale), round(p.primary_root_tip[1] * scale))
                    cv2.circle(pic, c, 9, (255, 255, 255), 1, cv2.LINE_AA)
            cv2.imwrite(str(out / "overlays" / f"{s.stem}.png"), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
        log.debug("%s: %s", s.stem, fig)
    summary = scorer.summary()
    summary["model"] = {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
    summary["dataset"] = {
        "path": str(Path(data).resolve()),
        "split": split,
        "items": n,
        "skipped": [str(e) for e in reader.skipped],
    }
    summary["timing_ms_median"] = {k: sorted(t[k] for t in timings)[len(timings) // 2] for k in timings[0]}
    summary["engine"] = pipe.engine.name
    summary["per_image"] = scorer.images
    scorer.pixel_bins_all().plot(out / "reliability_pixels.png", "per-pixel certainty (all classes)")
    scorer.landmark_bins.plot(out / "reliability_tips.png", "primary root tip confidence")
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(render_markdown(summary, sorted((out / "overlays").glob("*.png"))))
    return summary


def _interval(ci: list[float] | None) -> str:
    text = format_interval(ci)
    return "95 % interval n/a" if text is None else f"95 % interval {text}, plates resampled"


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def render_markdown(s: dict[str, Any], pictures: list[Path]) -> str:
    tips, cal = s["primary_root_tip"], s["calibration"]
    lines = [
        f"# Evaluation of {s['model']['name']} {s['model']['version']}",
        "",
        f"Data: `{s['dataset']['path']}` split `{s['dataset']['split']}`, {s['images']} images; engine "
        f"{s['engine']}; median time per image {s['timing_ms_median']['total']:.0f} ms.",
        "",
        "## Segmentation (full resolution)",
        "",
        "| class | IoU | F1 | precision | recall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c, v in s["segmentation"].items():
        lines.append(f"| {c} | {_f(v['iou'])} | {_f(v['f1'])} | {_f(v['precision'])} | {_f(v['recall'])} |")
    pl = s.get("plants") or {}
    lines += [
        "",
        "## Primary root tips",
        "",
        f"- plants: {tips['count']}, missed: {tips['missing']}",
        f"- error median {_f(tips['median_px'], 1)} px / {_f(tips['median_mm'], 2)} mm, "
        f"95th percentile {_f(tips['p95_px'], 1)} px / {_f(tips['p95_mm'], 2)} mm",
        f"- within 1 mm: {_f(tips.get('within_1mm'))}; within {tips['radius']}: {_f(tips['within_radius'])}",
        f"- primary root length sMAPE: {_f(s['primary_root_length_smape_pct'], 1)} %",
        "",
        "## Plants (plant i against true plant i, numbered left to right)",
        "",
        f"- plants: {pl.get('plants')}; primary tip within 1 mm with the right plant number: "
        f"{_f(pl.get('primary_tip_right_plant_within_1mm'))} "
        f"({_interval(pl.get('primary_tip_right_plant_within_1mm_ci95'))})",
        f"- of the {pl.get('misses')} that are not, flagged low-confidence: "
        f"{_f(pl.get('misses_flagged_low_confidence'))}",
        *(
            f"- {stage} plants: {v['plants']}; tips {_f(v['primary_tip_right_plant_within_1mm'])}; "
            f"of the {v['misses']} misses, flagged {_f(v['misses_flagged_low_confidence'])}"
            for stage, v in (pl.get("by_stage") or {}).items()
        ),
        f"- lateral root count, mean absolute error: {_f(pl.get('lateral_count_mae'), 2)}",
        "",
        "## Landmark detection (within 1 mm, or 20 px uncalibrated)",
        "",
        "| kind | precision | recall | tp | fp | fn |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, v in s["detection"].items():
        lines.append(f"| {k} | {_f(v['precision'])} | {_f(v['recall'])} | {v['tp']} | {v['fp']} | {v['fn']} |")
    lines += [
        "",
        "## Calibration of certainty",
        "",
        f"- per-pixel expected calibration error: {_f(cal['pixel_ece'], 4)} "
        f"(per class: {', '.join(f'{c} {_f(v, 4)}' for c, v in cal['pixel_ece_per_class'].items())})",
        f"- primary tip confidence ECE: {_f(cal['primary_tip_ece'], 4)}",
        "",
        "![pixels](reliability_pixels.png) ![tips](reliability_tips.png)",
        "",
        "## Pictures",
        "",
        f"Colours: {legend(s['segmentation'])}; white ring: true primary tip; circle around a cross: low confidence.",
        "",
    ]
    lines += [f"![{p.stem}](overlays/{p.name})" for p in pictures]
    return "\n".join(lines) + "\n"


def log_evaluation(summary: dict[str, Any], out: Path, bundle: Path) -> str:
    """An MLflow run for the evaluation, linked to the training run of the bundle; its id."""
    import mlflow

    from hades_training.tracking import start_tracking

    manifest = open_bundle(bundle, verify=False)
    start_tracking("hades-perception-evaluation")
    name = f"evaluate {manifest.version} on {summary['dataset']['split'] or Path(summary['dataset']['path']).name}"
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags(
            {
                "hades.bundle_version": manifest.version,
                "hades.training_run_id": str(manifest.raw.get("lineage", {}).get("mlflow_run_id")),
            }
        )
        mlflow.log_params(
            {"data": summary["dataset"]["path"], "split": summary["dataset"]["split"], "items": summary["images"]}
        )
        flat = {f"iou_{c}": v["iou"] for c, v in summary["segmentation"].items() if v["iou"] is not None}
        for k in ("median_px", "p95_px", "within_1mm", "within_radius"):
            if summary["primary_root_tip"].get(k) is not None:
                flat[f"tip_{k}"] = summary["primary_root_tip"][k]
        if summary["calibration"]["pixel_ece"] is not None:
            flat["pixel_ece"] = summary["calibration"]["pixel_ece"]
        for k, v in (summary.get("plants") or {}).items():
            if isinstance(v, float):
                flat[f"plants_{k}"] = v
        for stage, v in ((summary.get("plants") or {}).get("by_stage") or {}).items():
            if v["primary_tip_right_plant_within_1mm"] is not None:
                flat[f"plants_{stage}_primary_tip_right_plant_within_1mm"] = v["primary_tip_right_plant_within_1mm"]
        if summary.get("primary_root_length_smape_pct") is not None:
            flat["primary_root_length_smape_pct"] = summary["primary_root_length_smape_pct"]
        mlflow.log_metrics(flat)
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        return str(run.info.run_id)
