"""Engine time per full Hades frame on this machine's CPUs, side by side in one run, with
the accuracy each configuration keeps (issue 15: "engine per full frame on 2 cores <= 40 %
of today's ONNX Runtime fp32 at equal accuracy").

Configurations (each in a process of its own, so that ONNX Runtime's CPU build and
OpenVINO's build, which both ship the `onnxruntime` module, never share one):

  before         ONNX Runtime CPU provider, fp32 (what was served until now)
  cpu-int8       ONNX Runtime CPU provider, the int8 variant (what `auto` serves without OpenVINO)
  ov-fp32        OpenVINO provider, fp32              (needs onnxruntime-openvino: setup.sh)
  ov-int8        OpenVINO provider, the int8 variant  (what `auto` serves on an x86 robot)
  ov-int8-whole  ov-int8 on one 1440 px tile: the whole dish at once (faster, less accurate)

On a machine with an NVIDIA GPU and onnxruntime-gpu (on PYTHONPATH, which these keep):

  cuda-fp32        ONNX Runtime CUDA provider, fp32, the bundle's 768 px tiles
  cuda-fp32-whole  the same on one 1440 px tile (a GPU is faster on one large call)
  trt-fp16         ONNX Runtime TensorRT provider, model.onnx built with FP16
  trt-int8         ONNX Runtime TensorRT provider, the bundle's QDQ int8 variant
  torch-cuda-fp16  reference only, not a product engine: the bundle's weights.pt in PyTorch
                   on the GPU in fp16 (what the network costs on this GPU without TensorRT)

A configuration whose provider ONNX Runtime cannot start (no TensorRT libraries, say) is
reported as skipped with ONNX Runtime's own reason, never timed on the provider it fell
back to.

Per configuration: the engine stage (`timing_ms["engine"]`: tiling, ONNX Runtime, blending)
on full 4202x3006 synthetic plates (seed 900), median of --runs after a warm-up; the whole
pipeline's time too; and root/shoot/seed IoU and primary tips within 1 mm of the right
plant on the validation plates the int8 gate is judged on (--data, --split).

    source scripts/env.sh
    python benchmarks/engine_benchmark.py --out benchmarks/results/engine_cpu_2core.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPENVINO_RUNTIME = Path(os.environ.get("HADES_OPENVINO_RUNTIME", ROOT / ".venv" / "openvino-runtime"))
CONFIGS: dict[str, dict[str, Any]] = {
    "before": {"provider": "CPUExecutionProvider", "precision": "fp32"},
    "cpu-int8": {"provider": "CPUExecutionProvider", "precision": "int8"},
    "ov-fp32": {"provider": "OpenVINOExecutionProvider", "precision": "fp32", "openvino": True},
    "ov-int8": {"provider": "OpenVINOExecutionProvider", "precision": "int8", "openvino": True},
    "ov-int8-whole": {"provider": "OpenVINOExecutionProvider", "precision": "int8", "openvino": True, "tile": 1440},
    "cuda-fp32": {"provider": "CUDAExecutionProvider", "precision": "fp32", "gpu": True},
    "cuda-fp32-whole": {"provider": "CUDAExecutionProvider", "precision": "fp32", "gpu": True, "tile": 1440},
    "trt-fp16": {"provider": "TensorrtExecutionProvider", "precision": "fp16", "gpu": True},
    "trt-int8": {"provider": "TensorrtExecutionProvider", "precision": "int8", "gpu": True},
    "torch-cuda-fp16": {"provider": "torch", "precision": "fp16", "gpu": True, "torch": True},
}
CPU_CONFIGS = [n for n, c in CONFIGS.items() if not c.get("gpu")]


def torch_reference(bundle: Path) -> Any:
    """The bundle's weights.pt on a CUDA GPU in PyTorch, fp16 autocast, channels-last: the
    network's cost on that GPU without TensorRT. A benchmark reference, not a product engine."""
    import torch

    from hades_training.export import load_checkpoint
    from hades_training.manifest_spec import HEAT_TENSOR, SEG_TENSOR
    from hades_training.torch_engine import TorchEngine

    model, _, _ = load_checkpoint(bundle / "weights.pt")
    model = model.float().cuda().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return TorchEngine(model, torch.device("cuda"), SEG_TENSOR, HEAT_TENSOR, autocast=torch.float16)


def measure(name: str, model: Path, frames: int, runs: int, data: str, split: str) -> dict[str, Any]:
    """One configuration, in this process (the worker side)."""
    import onnxruntime as ort

    from hades_perception.contract.bundle import open_bundle
    from hades_perception.inference.engine import OnnxRuntimeEngine
    from hades_perception.inference.pipeline import Pipeline
    from hades_perception.inference.tensorrt_engine import gpu_name
    from hades_training.data import open_dataset
    from hades_training.evaluate.scoring import Scorer
    from hades_training.synth.appearance import PRESETS
    from hades_training.synth.generate import make_plate

    cfg = CONFIGS[name]
    manifest = open_bundle(model)
    if "tile" in cfg:
        manifest = dataclasses.replace(manifest, input=dataclasses.replace(manifest.input, tile=cfg["tile"]))
    precision = cfg["precision"]
    engine: Any
    if cfg.get("torch"):
        engine = torch_reference(model)
    else:
        if cfg.get("gpu") and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, where that is how they came
        trt_cache = Path(os.environ.get("HADES_TRT_CACHE", "/tmp/hades-trt-cache"))
        engine = OnnxRuntimeEngine(
            model / manifest.model_file(precision),
            manifest.input.tensor,
            (cfg["provider"], "CPUExecutionProvider"),
            precision=precision,
            tile=manifest.input.tile,
            cache_dir=trt_cache if "Tensorrt" in cfg["provider"] else None,
        )
        if engine.provider != cfg["provider"]:
            return {"skipped": f"asked for {cfg['provider']}, ONNX Runtime started {engine.provider}"}
    run_ms: list[float] = []  # the engine's own calls (ONNX Runtime or torch, copies included)
    run = engine.run

    def timed_run(inputs: np.ndarray) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = run(inputs)
        run_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    engine.run = timed_run
    pipe = Pipeline(manifest, engine)
    plates = [make_plate(900, i, PRESETS["normal"]).image for i in range(frames)]
    pipe(plates[0])  # warm-up: first runs allocate and compile
    engine_ms, total_ms, stages, calls_ms, calls = [], [], [], [], 0
    for i in range(runs):
        run_ms.clear()
        t = pipe(plates[i % frames]).timing_ms
        calls_ms.append(sum(run_ms))
        calls = len(run_ms)
        engine_ms.append(t["engine"])
        total_ms.append(t["total"])
        stages.append(t)
    reader = open_dataset(data, split)
    scorer = Scorer(manifest.outputs.classes, calibration=False, lengths=False)
    for i in range(len(reader)):
        s = reader[i]
        scorer.add(pipe(s.image), s)
    q = scorer.summary()
    return {
        "engine": engine.name,
        "onnxruntime": ort.__version__,
        "gpu": gpu_name() if cfg.get("gpu") else None,
        "tile": manifest.input.tile,
        "engine_ms_median": float(np.median(engine_ms)),
        "engine_ms": [round(v, 1) for v in engine_ms],
        "pipeline_ms_median": float(np.median(total_ms)),
        "engine_calls_ms_median": round(float(np.median(calls_ms)), 1),
        "engine_calls_per_frame": calls,
        "stages_ms_median": {k: round(float(np.median([t[k] for t in stages])), 1) for k in stages[0]},
        "accuracy": {
            "items": len(reader),
            **{f"iou_{c}": q["segmentation"][c]["iou"] for c in ("root", "shoot", "seed")},
            "tips_within_1mm_right_plant": q["plants"]["primary_tip_right_plant_within_1mm"],
        },
    }


INT8_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_features() -> dict[str, Any]:
    """The CPU's model and the int8 instruction sets int8 speed (and, before 7-bit
    weights, int8 accuracy: docs/engines.md) depends on; from /proc/cpuinfo (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu": platform.processor() or "unknown"}
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    return {"cpu": model, "int8_features": [f for f in INT8_FEATURES if f in flags]}


def run_worker(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run `name` in a process of its own, on OpenVINO's runtime where it asks for it."""
    env = dict(os.environ)
    if not CONFIGS[name].get("gpu"):  # GPU configurations find onnxruntime-gpu where PYTHONPATH says
        paths = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
        keep = [p for p in paths if not (Path(p) / "onnxruntime").is_dir()]  # the base runtime's, not another
        if keep:
            env["PYTHONPATH"] = os.pathsep.join(keep)
    if CONFIGS[name].get("openvino"):
        if not (OPENVINO_RUNTIME / "onnxruntime").is_dir():
            return {"skipped": f"onnxruntime-openvino not installed in {OPENVINO_RUNTIME} (scripts/setup.sh)"}
        env["PYTHONPATH"] = str(OPENVINO_RUNTIME)
    cmd = [sys.executable, __file__, "--worker", name, "--model", str(args.model), "--frames", str(args.frames)]
    cmd += ["--runs", str(args.runs), "--data", args.data, "--split", args.split]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    if "skipped" in result:  # ONNX Runtime's own words on why the provider did not start
        result["stderr"] = done.stderr[-1500:]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "hades-seedlings")
    ap.add_argument("--configs", nargs="+", default=CPU_CONFIGS, choices=list(CONFIGS))
    ap.add_argument("--frames", type=int, default=3, help="distinct full frames")
    ap.add_argument("--runs", type=int, default=6, help="timed runs per configuration, after one warm-up")
    ap.add_argument("--data", default=str(ROOT / "var" / "datasets" / "mixed"), help="accuracy: dataset")
    ap.add_argument("--split", default="val", help="accuracy: its split (the int8 gate's)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "engine_cpu_2core.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.model, args.frames, args.runs, args.data, args.split)))
        return 0
    results: dict[str, Any] = {}
    for name in args.configs:
        t0 = time.perf_counter()
        results[name] = run_worker(name, args)
        print(f"{name}: {json.dumps(results[name])[:300]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    base = results.get("before", {}).get("engine_ms_median")
    for r in results.values():
        if base and "engine_ms_median" in r:
            r["engine_vs_before"] = r["engine_ms_median"] / base
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "uname": " ".join(platform.uname()), **cpu_features()},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": str(args.model),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("| configuration | engine | engine ms / frame | vs before | IoU root / shoot / seed | tips <= 1 mm |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        if "engine_ms_median" not in r:
            print(f"| {name} | {r.get('skipped') or 'error'} | | | | |")
            continue
        a = r["accuracy"]
        ious = " / ".join(f"{a[f'iou_{c}']:.3f}" for c in ("root", "shoot", "seed"))
        print(
            f"| {name} | {r['engine']} (tile {r['tile']}) | {r['engine_ms_median']:.0f} | "
            f"{r.get('engine_vs_before', float('nan')):.2f} | {ious} | {a['tips_within_1mm_right_plant']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
