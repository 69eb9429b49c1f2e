"""What the per-frame monitoring signals cost on full 4202x3006 Hades frames: the
pipeline's `monitoring` stage (input and prediction signals together) beside its other
stages, and each half alone, over seeded synthetic plates, in this process (no ROS: the
node runs the same pipeline call; its /diagnostics report the same stage).

  python benchmarks/signals_benchmark.py --out benchmarks/results/signals_cpu_2core.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from hades_perception.inference.pipeline import Pipeline, as_rgb8
from hades_training.synth.appearance import appearance_for
from hades_training.synth.generate import make_plate

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "hades-seedlings")
    ap.add_argument("--plates", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=20, help="timed calls of each half per plate")
    ap.add_argument("--seed", type=int, default=950)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    pipe = Pipeline.from_bundle(args.bundle, ("CPUExecutionProvider",))
    m = pipe.manifest
    stages: dict[str, list[float]] = {}
    halves: dict[str, list[float]] = {"input_signals": [], "prediction_signals": []}
    for i in range(args.plates):
        rgb = as_rgb8(make_plate(args.seed, i, appearance_for("normal")).image)
        pred = pipe(rgb)
        for k, v in pred.timing_ms.items():
            stages.setdefault(k, []).append(v)
        located = pipe.locate(rgb)  # the pipeline already located the dish for the frame
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            pipe.input_signals(rgb, located)
        t1 = time.perf_counter()
        for _ in range(args.repeats):
            pipe.prediction_signals(pred)
        t2 = time.perf_counter()
        halves["input_signals"].append((t1 - t0) / args.repeats * 1e3)
        halves["prediction_signals"].append((t2 - t1) / args.repeats * 1e3)
    result = {
        "bundle": {"name": m.name, "version": m.version},
        "frame": "4202x3006 rgb8 synthetic plates, normal preset",
        "plates": args.plates,
        "median_ms": {k: round(statistics.median(v), 2) for k, v in {**stages, **halves}.items()},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median_ms"]))


if __name__ == "__main__":
    main()
