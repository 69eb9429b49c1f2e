"""Drift detection as the node does it, on seeded synthetic plates: how many frames after
the plates change until the drift status leaves OK, per single-knob drift preset, and how
many false alarms over a long run of training-distribution plates.

Method: the shipped bundle's reference (`reference_stats.signals`); a DriftMonitor with
the node's defaults (window 50, judged from 20 frames), checked after every frame (the
node checks once per diagnostics period: at least as often as frames arrive at 1 Hz).
Training-distribution plates alternate the presets the model was trained on (`normal`
and `realistic`), seeds never used for training. Each drift preset starts after 50
training-distribution frames (a robot that was fine, then the plates changed).

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
from pathlib import Path
from typing import Any

from hades_perception.inference.pipeline import Pipeline, as_rgb8
from hades_perception.monitoring.drift import OK, DriftMonitor, reference_of
from hades_perception.monitoring.signals import INPUT_SIGNALS, signals_for
from hades_training.synth.appearance import appearance_for
from hades_training.synth.generate import make_plate

REPO = Path(__file__).resolve().parents[1]
TRAINING_MIX = ("normal", "realistic")
DRIFTS = ("drift_blur", "drift_dark", "drift_noise", "drift_illumination", "drift_condensation")


class Signals:
    """Per-plate signals, computed once and cached by (preset, seed, index, mode)."""

    def __init__(self, pipe: Pipeline, cache: Path, mode: str) -> None:
        self.pipe, self.cache, self.mode = pipe, cache, mode
        self.known: dict[str, dict[str, float]] = {}
        if cache.is_file():
            for line in cache.read_text().splitlines():
                row = json.loads(line)
                self.known[row["key"]] = row["signals"]
        self.seconds = 0.0

    def of(self, preset: str, seed: int, index: int) -> dict[str, float]:
        key = f"{preset}/{seed}/{index}/{self.mode}/{self.pipe.manifest.version}"
        if key not in self.known:
            t0 = time.perf_counter()
            rgb = as_rgb8(make_plate(seed, index, appearance_for(preset)).image)
            signals = self.pipe(rgb).signals if self.mode == "full" else self.pipe.input_signals(rgb)
            self.seconds += time.perf_counter() - t0
            self.known[key] = signals
            with self.cache.open("a") as f:
                f.write(json.dumps({"key": key, "signals": signals}) + "\n")
        return self.known[key]


def training_frames(sig: Signals, n: int, seed: int) -> list[dict[str, float]]:
    return [sig.of(TRAINING_MIX[i % 2], seed, i // 2) for i in range(n)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    pipe = Pipeline.from_bundle(args.bundle, ("CPUExecutionProvider",))
    m = pipe.manifest
    reference = reference_of(m.raw)
    if not reference:
        raise SystemExit(f"{args.bundle} carries no reference signals: export it again")
    signals = INPUT_SIGNALS if args.mode == "input" else signals_for(m.outputs.classes)
    sig = Signals(pipe, args.cache, args.mode)

    def monitor() -> DriftMonitor:
        return DriftMonitor(reference, signals, window=args.window, min_frames=args.min_frames)

    out: dict[str, Any] = {
        "bundle": {"name": m.name, "version": m.version},
        "reference_frames": {k: len(v) for k, v in reference.items()},
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
