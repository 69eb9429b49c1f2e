"""`hades-train monitor`: have the frames a robot saw drifted from what a model was
validated on?

The current frames' monitoring signals come from one of:
- a folder of images: the reference bundle's own serving pipeline runs on each, so the
  prediction signals are that model's;
- a folder of predict JSONs (`hades-perception predict`, `replay --predictions`): their
  "monitoring" block;
- a recorded outputs bag (`hades-perception replay --record`, or `ros2 bag record` of a
  node's topics): its `monitoring` messages (needs the ROS package, for the message
  definitions).
They are tested against the bundle's reference signals with the same test the node runs
(hades_perception.monitoring.drift), and written as DIR/drift.json (the verdict, for
machines) and DIR/drift.html (for a person). The exit code does not carry the verdict.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception.contract.bundle import open_bundle
from hades_perception.inference.image_files import IMAGE_SUFFIXES, read_image
from hades_perception.inference.pipeline import Pipeline
from hades_perception.monitoring.drift import LEVEL_NAMES, compare, reference_of, worst
from hades_perception.monitoring.signals import signals_for

log = logging.getLogger(__name__)
MIN_FRAMES = 20  # as the node's drift_min_frames


def current_signals(current: Path, bundle: Path) -> list[dict[str, float]]:
    """Per-frame signals of `current` (see the module docstring for what it may be)."""
    if not current.exists():
        raise FileNotFoundError(f"{current} does not exist")
    if _is_bag(current):
        return list(_bag_signals(current))
    if current.is_dir():
        # A predict output folder holds mask PNGs beside its JSONs: JSONs first.
        jsons = sorted(current.glob("*.json"))
        if jsons:
            return list(_json_signals(jsons))
        images = sorted(p for p in current.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            return list(_image_signals(images, bundle))
    raise ValueError(f"{current}: expected a folder of images, a folder of predict JSONs, or a rosbag2 recording")


def _is_bag(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def _image_signals(images: list[Path], bundle: Path) -> Iterator[dict[str, float]]:
    pipe = Pipeline.from_bundle(bundle, ("CPUExecutionProvider",))
    for i, path in enumerate(images):
        try:
            image = read_image(path)  # as `hades-perception predict` reads it
        except ValueError as exc:
            log.warning("%s, skipped", exc)
            continue
        yield pipe(image).signals
        if (i + 1) % 10 == 0:
            log.info("%d of %d images", i + 1, len(images))


def _json_signals(paths: list[Path]) -> Iterator[dict[str, float]]:
    for path in paths:
        try:
            block = json.loads(path.read_text()).get("monitoring")
        except (json.JSONDecodeError, AttributeError):
            block = None
        if block:
            yield {k: float(v) for k, v in block.items()}
        else:
            log.warning("%s: no monitoring block (made before monitoring existed?), skipped", path)


def _bag_signals(bag: Path) -> Iterator[dict[str, float]]:
    try:
        from hades_perception_ros.bag import read_monitoring
    except ImportError as exc:
        raise RuntimeError(
            f"reading {bag} needs the ROS package hades_perception_ros (its message definitions): {exc}; "
            "or pass a folder of predict JSONs"
        ) from exc
    yield from read_monitoring(bag)


def report(bundle: Path, frames: list[dict[str, float]]) -> dict[str, Any]:
    """The drift.json document for these frames against the bundle's reference."""
    m = open_bundle(bundle)
    reference = reference_of(m.raw)
    if not reference:
        raise ValueError(
            f"{bundle}: the bundle carries no reference signals (exported before monitoring existed); "
            "re-export it with hades-train export"
        )
    signals = signals_for(m.outputs.classes)
    current: dict[str, list[float]] = {}
    for f in frames:
        for k, v in f.items():
            current.setdefault(k, []).append(v)
    results = compare(reference, current, signals)
    top = worst(results)
    return {
        "drift_detected": any(r.drifted for r in results),
        "level": LEVEL_NAMES[top.level] if top else "OK",
        "worst_signal": top.name if top and top.drifted else None,
        "signals": [
            r.to_dict()
            | {
                "reference_median": float(np.median(reference[r.name])),
                "current_median": float(np.median(current[r.name])),
                "reference_n": len(reference[r.name]),
            }
            for r in results
        ],
        "frames": len(frames),
        # The node judges from this many frames on; fewer cannot show any but a gross drift.
        "enough_frames": len(frames) >= MIN_FRAMES,
        "model": {"name": m.name, "version": m.version},
        "test": "two-sample Kolmogorov-Smirnov per signal (Bonferroni-corrected) and a shift of the median "
        "of at least one reference spread; hades_perception.monitoring.drift",
        "_reference": reference,
        "_current": current,
    }


def monitor(bundle: Path, current: Path, out: Path) -> dict[str, Any]:
    frames = current_signals(current, bundle)
    if not frames:
        raise ValueError(f"{current}: no frames with monitoring signals")
    doc = report(bundle, frames)
    reference, cur = doc.pop("_reference"), doc.pop("_current")
    doc["current"] = str(current)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(doc, indent=1))
    (out / "drift.html").write_text(_html(doc, reference, cur))
    return doc


def _html(doc: dict[str, Any], reference: dict[str, list[float]], current: dict[str, list[float]]) -> str:
    """One table: each signal's test, and the two distributions as box plots on one axis."""
    rows = []
    for s in doc["signals"]:
        ref, cur = np.asarray(reference[s["name"]]), np.asarray(current[s["name"]])
        colour = {"OK": "#e8f5e9", "WARN": "#fff8e1", "ERROR": "#ffebee"}[s["level"]]
        rows.append(
            f"<tr style='background:{colour}'><th scope='row'>{html.escape(s['name'])}</th>"
            f"<td>{s['level']}</td><td>{s['value']:.3f}</td><td>{s['threshold']:.3f}</td>"
            f"<td>{s['reference_median']:.4g}</td><td>{s['current_median']:.4g}</td>"
            f"<td>{s['effect']:.2f}</td><td>{_boxes(ref, cur)}</td></tr>"
        )
    verdict = "drift detected" if doc["drift_detected"] else "no drift"
    worst_signal = f"; worst signal {html.escape(doc['worst_signal'])}" if doc["worst_signal"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {html.escape(doc["model"]["name"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>
<h1>Drift report: {verdict}</h1>
<p>Model {html.escape(doc["model"]["name"])} {html.escape(doc["model"]["version"])};
{doc["frames"]} frames from {html.escape(doc["current"])}; level {doc["level"]}{worst_signal}.</p>
<p>Test: {html.escape(doc["test"])}. Box plots: reference (grey, upper) and current (blue, lower):
5th-95th percentile whiskers, quartile box, median line.</p>
<table><thead><tr><th scope="col">signal</th><th scope="col">level</th><th scope="col">KS D</th>
<th scope="col">critical D</th><th scope="col">reference median</th><th scope="col">current median</th>
<th scope="col">shift (spreads)</th><th scope="col">distributions</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></body></html>
"""


def _boxes(ref: np.ndarray, cur: np.ndarray, width: int = 240) -> str:
    lo = float(min(np.percentile(ref, 5), np.percentile(cur, 5)))
    hi = float(max(np.percentile(ref, 95), np.percentile(cur, 95)))
    span = hi - lo or 1.0

    def x(v: float) -> float:
        return 4 + (v - lo) / span * (width - 8)

    def box(values: np.ndarray, y: int, fill: str) -> str:
        p5, q1, med, q3, p95 = (float(v) for v in np.percentile(values, [5, 25, 50, 75, 95]))
        return (
            f"<line x1='{x(p5):.1f}' x2='{x(p95):.1f}' y1='{y + 5}' y2='{y + 5}' stroke='#555'/>"
            f"<rect x='{x(q1):.1f}' y='{y}' width='{max(x(q3) - x(q1), 1):.1f}' height='10' fill='{fill}'/>"
            f"<line x1='{x(med):.1f}' x2='{x(med):.1f}' y1='{y}' y2='{y + 10}' stroke='#000'/>"
        )

    return (
        f"<svg width='{width}' height='28' role='img' aria-label='reference and current distributions'>"
        f"{box(ref, 2, '#bbb')}{box(cur, 15, '#64b5f6')}</svg>"
    )


def summary_line(doc: dict[str, Any]) -> str:
    drifted = [s for s in doc["signals"] if s["drifted"]]
    if not drifted:
        few = "" if doc["enough_frames"] else f"; too few frames to judge (at least {MIN_FRAMES})"
        return f"no drift over {doc['frames']} frames ({len(doc['signals'])} signals tested){few}"
    names = ", ".join(f"{s['name']} ({s['level']})" for s in drifted)
    return f"drift over {doc['frames']} frames: {names}"
