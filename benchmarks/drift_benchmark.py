"""Drift detection as the node does it, on seeded synthetic plates: how many frames after
the plates change until the drift status leaves OK, per single-knob drift preset, and how
many false alarms over a long run of training-distribution plates.

Method: the shipped bundle's reference (`reference_stats.signals`); a DriftMonitor with
the node's defaults (window 50, judged from 20 frames), checked after every frame (the
node checks once per diagnostics period: at least as often as frames arrive at 1 Hz).
Training-distribution plates alternate the presets the model was trained on (`normal`
and `realistic`), seeds never used for training. Each drift preset starts after 50
training-distribution frames (a robot that was fine, then the plates changed).

A bundle exported before an input signal existed has no reference values for it (the
node then leaves it untested): the benchmark measures the missing input signals on the
bundle's own reference images, as export chose them (its validation items, then training
items, from `lineage.training_data`), checks that the signals the bundle does carry come
out the same, and judges with the completed reference (`reference_completed` in the
output says what was added). Export the bundle again to carry them.

Frames go through the serving pipeline (`--mode full`: every signal, as the node) or,
for long runs on 2 cores, only through the input signals (`--mode input`: no model run;
the prediction signals are then not tested). Signals are cached per plate in
`--cache` (JSON lines), so a rerun or a longer run only computes what is new.

  python benchmarks/drift_benchmark.py --out benchmarks/results/drift_cpu_2core.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception.inference.pipeline import Pipeline, as_rgb8
from hades_perception.monitoring.drift import OK, DriftMonitor, reference_of
from hades_perception.monitoring.signals import INPUT_SIGNALS, Signal, signals_for
from hades_training.data import open_dataset
from hades_training.data.io import read_rgb
from hades_training.synth.appearance import appearance_for
from hades_training.synth.generate import make_plate

REPO = Path(__file__).resolve().parents[1]
TRAINING_MIX = ("normal", "realistic")
DRIFTS = ("drift_blur", "drift_dark", "drift_noise", "drift_illumination", "drift_condensation")


class Signals:
    """Per-plate signals, computed once and cached by (preset, seed, index, mode); a
    cached plate that lacks one of `needed` (a signal added since) is computed again."""

    def __init__(self, pipe: Pipeline, cache: Path, mode: str, needed: tuple[Signal, ...] = ()) -> None:
        self.pipe, self.cache, self.mode = pipe, cache, mode
        self.needed = {s.name for s in needed}
        self.known: dict[str, dict[str, float]] = {}
        if cache.is_file():
            for line in cache.read_text().splitlines():
                row = json.loads(line)
                self.known[row["key"]] = row["signals"]
        self.seconds = 0.0

    def of(self, preset: str, seed: int, index: int) -> dict[str, float]:
        key = f"{preset}/{seed}/{index}/{self.mode}/{self.pipe.manifest.version}"
        return self._cached(key, lambda: as_rgb8(make_plate(seed, index, appearance_for(preset)).image), self.mode)

    def of_image(self, path: Path) -> dict[str, float]:
        """The input signals of an image file (a reference image of the bundle)."""
        key = f"file:{path}/input/{self.pipe.manifest.version}"
        return self._cached(key, lambda: as_rgb8(read_rgb(path)), "input", self.needed & set(INPUT_NAMES))

    def _cached(
        self, key: str, image: Callable[[], np.ndarray], mode: str, needed: set[str] | None = None
    ) -> dict[str, float]:
        if key not in self.known or not (self.needed if needed is None else needed) <= self.known[key].keys():
            t0 = time.perf_counter()
            rgb = image()
            signals = self.pipe(rgb).signals if mode == "full" else self.pipe.input_signals(rgb)
            self.seconds += time.perf_counter() - t0
            self.known[key] = signals
            with self.cache.open("a") as f:
                f.write(json.dumps({"key": key, "signals": signals}) + "\n")
        return self.known[key]


INPUT_NAMES = tuple(s.name for s in INPUT_SIGNALS)


def reference_images(raw: dict[str, Any], train_images: int = 56) -> list[Path]:
    """The images export measured the reference input signals on, in its order: the
    validation items it predicted, then up to `train_images` evenly spaced training items
    (hades_training.export.reference_signals; 56 is its REFERENCE_IMAGES)."""
    data = (raw.get("lineage") or {}).get("training_data") or {}
    paths: list[Path] = []
    val = data.get("val") or {}
    if val.get("path"):
        items = open_dataset(val["path"], val.get("split", "val"), skip_bad=True).items
        paths += [item.image for item in items[: int(val.get("items", len(items)))]]
    train = data.get("train") or {}
    if train.get("path") and val.get("split") != "train":
        items = open_dataset(train["path"], train.get("split", "train"), skip_bad=True).items
        paths += [item.image for item in items[:: max(1, len(items) // train_images)][:train_images]]
    return paths


def complete_reference(
    reference: dict[str, list[float]], raw: dict[str, Any], sig: Signals, signals: tuple[Signal, ...]
) -> dict[str, Any]:
    """Adds to `reference` the input signals it lacks, measured on the bundle's reference
    images; what was added, and how well the signals it had are reproduced."""
    missing = [s.name for s in signals if s.name in INPUT_NAMES and s.name not in reference]
    if not missing:
        return {}
    paths = reference_images(raw)
    if not paths:
        raise SystemExit(
            f"the bundle's reference lacks {missing} and its training data is not recorded: export it again"
        )
    rows = [sig.of_image(p) for p in paths]
    for name in missing:
        reference[name] = [float(f"{r[name]:.7g}") for r in rows]
    # The signals the bundle carries, measured again on the same images: they agree when
    # the images are the bundle's own and unchanged.
    agree = {
        name: round(
            sum(abs(r[name] - v) <= 1e-4 * max(1.0, abs(v)) for r, v in zip(rows, reference[name], strict=True))
            / len(rows),
            3,
        )
        for name in INPUT_NAMES
        if name not in missing and len(reference.get(name, ())) == len(rows)
    }
    print(f"reference completed with {missing} from {len(paths)} images; carried signals reproduced: {agree}")
    return {"added": missing, "images": len(paths), "carried_signals_reproduced": agree}


def training_frames(sig: Signals, n: int, seed: int) -> list[dict[str, float]]:
    return [sig.of(TRAINING_MIX[i % 2], seed, i // 2) for i in range(n)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    pipe = Pipeline.from_bundle(args.bundle, ("CPUExecutionProvider",))
    m = pipe.manifest
    reference = reference_of(m.raw)
    if not reference:
        raise SystemExit(f"{args.bundle} carries no reference signals: export it again")
    signals = INPUT_SIGNALS if args.mode == "input" else signals_for(m.outputs.classes)
    sig = Signals(pipe, args.cache, args.mode, signals)
    completed = complete_reference(reference, m.raw, sig, signals)

    def monitor() -> DriftMonitor:
        return DriftMonitor(reference, signals, window=args.window, min_frames=args.min_frames)

    out: dict[str, Any] = {
        "bundle": {"name": m.name, "version": m.version},
        "reference_frames": {k: len(v) for k, v in reference.items()},
        "reference_completed": completed,
        "mode": args.mode,
        "window": args.window,
        "min_frames": args.min_frames,
        "signals_tested": [s.name for s in signals],
    }
    # False alarms: every frame's status over a long training-distribution run.
    normal = training_frames(sig, args.normal_frames, args.seed)
    mon, alarms, worst_signals = monitor(), [], set()
    for i, frame in enumerate(normal):
        mon.add(frame)
        status = mon.status()
        if status.level > OK:
            alarms.append(i)
            worst_signals |= {r.name for r in status.results if r.drifted}
    out["training_distribution"] = {
        "frames": len(normal),
        "checks": max(0, len(normal) - args.min_frames + 1),
        "false_alarm_frames": len(alarms),
        "first_false_alarms": alarms[:10],
        "signals_in_false_alarms": sorted(worst_signals),
    }
    # Detection: 50 training-distribution frames, then a drift preset.
    warm = normal[: args.window]
    out["drift"] = {}
    for k, preset in enumerate(DRIFTS):
        mon = monitor()
        for frame in warm:
            mon.add(frame)
        detected, level, names = None, "OK", []
        for i in range(args.drift_frames):
            mon.add(sig.of(preset, args.seed + 100 + k, i))
            status = mon.status()
            if status.level > OK:
                detected, level = i + 1, status.level_name
                names = sorted(r.name for r in status.results if r.drifted)
                break
        out["drift"][preset] = {"frames_to_detection": detected, "level": level, "drifted_signals": names}
        print(f"{preset}: {'detected after ' + str(detected) + ' frames' if detected else 'NOT detected'} {names}")
    out["seconds_computing_signals"] = round(sig.seconds, 1)
    print(f"false alarms: {len(alarms)} of {out['training_distribution']['checks']} checks")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "hades-seedlings")
    ap.add_argument("--mode", choices=("full", "input"), default="full")
    ap.add_argument("--normal-frames", type=int, default=500)
    ap.add_argument("--drift-frames", type=int, default=50)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--min-frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=700, help="plates' seed (never used for training)")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "drift-benchmark-signals.jsonl")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    result = run(args)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
