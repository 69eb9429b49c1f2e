"""The node's own CPU work after the engine, apart from the engine: `Pipeline.finish`
(masks' certainty, peaks, the plant structure, landmarks; then the monitoring signals)
timed on engine outputs computed once, so the engine's run-to-run noise (10-20 ms on a
shared 2-core host) does not hide a change of a few milliseconds. Written as JSON; not a test.

    source scripts/env.sh
    python benchmarks/postprocess_benchmark.py --out benchmarks/results/postprocess_cpu_2core.json

Frames: full-size 4202x3006 synthetic plates, `--frames` of each preset (normal, realistic;
seeds 900 and 901, as node_benchmark.py's 900). Each frame's `finish` runs `--repeats`
times; the figure per frame is its median, and the JSON keeps every frame's. The
preprocess stage (`Pipeline.prepare`: RGB, dish, crop, model input) is timed the same way. `--profile`
adds the functions that took the most time (cumulative, cProfile) over one more pass.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PRESET_SEEDS = {"normal": 900, "realistic": 901}


def make_frames(n: int) -> list[tuple[str, np.ndarray]]:
    from hades_training.synth.appearance import PRESETS
    from hades_training.synth.generate import make_plate

    return [(f"{p}-{i}", make_plate(seed, i, PRESETS[p]).image) for p, seed in PRESET_SEEDS.items() for i in range(n)]


def provenance(pipe: Any, frames: int, repeats: int) -> dict[str, Any]:
    """When, from which commit, on what CPU and with which model a result was measured:
    the head of this script's and masks_benchmark.py's result files."""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "cpu": platform.processor() or platform.machine(),
        "model": f"{pipe.manifest.name} {pipe.manifest.version}",
        "frames": frames,
        "repeats": repeats,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "hades-seedlings")
    ap.add_argument("--frames", type=int, default=4, help="frames of each preset (default 4)")
    ap.add_argument("--repeats", type=int, default=5, help="finish() runs per frame (default 5)")
    ap.add_argument("--profile", type=int, default=0, help="also list the N functions with most cumulative time")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from hades_perception.inference.loading import load_pipeline

    pipe = load_pipeline(args.model, providers=("CPUExecutionProvider",))
    frames = make_frames(args.frames)
    started = [(name, pipe.start(image)) for name, image in frames]  # the engine once per frame
    pipe.finish(started[0][1])  # warm-up
    per_frame: dict[str, dict[str, Any]] = {}
    for (name, image), (_, inferred) in zip(frames, started, strict=True):
        runs = [pipe.finish(inferred).timing_ms for _ in range(args.repeats)]
        pre = []
        for _ in range(args.repeats):  # the preprocess stage alone, as `start` runs it
            t0 = time.perf_counter()
            pipe.prepare(image)
            pre.append((time.perf_counter() - t0) * 1e3)
        per_frame[name] = {
            "preprocess": float(np.median(pre)),
            "postprocess": float(np.median([r["postprocess"] for r in runs])),
            "monitoring": float(np.median([r["monitoring"] for r in runs])),
            "engine": runs[0]["engine"],
            "postprocess_runs": [r["postprocess"] for r in runs],
            "preprocess_runs": pre,
        }
    post = [f["postprocess"] for f in per_frame.values()]
    result: dict[str, Any] = {
        **provenance(pipe, len(started), args.repeats),
        "postprocess_ms_median": float(np.median(post)),
        "postprocess_ms_by_preset": {
            p: float(np.median([f["postprocess"] for n, f in per_frame.items() if n.startswith(p)]))
            for p in PRESET_SEEDS
        },
        "monitoring_ms_median": float(np.median([f["monitoring"] for f in per_frame.values()])),
        "preprocess_ms_median": float(np.median([f["preprocess"] for f in per_frame.values()])),
        "engine_ms_median": float(np.median([f["engine"] for f in per_frame.values()])),
        "per_frame": per_frame,
    }
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _, inferred in started:
            pipe.finish(inferred)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.profile)
        result["profile_cumulative"] = text.getvalue().splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"postprocess p50 {result['postprocess_ms_median']:.1f} ms ({result['postprocess_ms_by_preset']}); "
        f"monitoring {result['monitoring_ms_median']:.1f}; preprocess {result['preprocess_ms_median']:.1f}; "
        f"engine {result['engine_ms_median']:.0f} ms; -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
