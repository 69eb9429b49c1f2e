"""Model architecture sweep: accuracy against engine milliseconds per full frame, for
HadesNet variants (width, depthwise-separable convs, a lighter stride-1 decoder level,
and any other TrainConfig value such as `scale`). Results are written as JSON and a
Markdown table is printed; this is not a test.

    source scripts/env.sh
    python benchmarks/architecture_sweep.py --latency-only            # minutes
    python benchmarks/architecture_sweep.py                           # hours: trains every variant

Per variant:
  1. latency: the model with random weights (latency does not depend on them), exported
     to ONNX by hades_training.export.export_onnx, run by the serving Pipeline's engine
     stage (`Pipeline.infer`, what `timing_ms["engine"]` times: tiling, padding, ONNX
     Runtime CPU, blending) on one full-size 4202x3006 synthetic plate (seed 900, preset
     normal), cropped and scaled as the manifest says; median of --runs runs after one
     warm-up. Also parameters, and conv GMACs per 768x768 tile (forward hooks).
  2. accuracy (unless --latency-only): `hades-train train`, `export`, then `evaluate` on
     each --test-data set's test split, as subprocesses of the installed command.
     Resumable: a finished run (last.pt at the last epoch) is not trained again, an
     unfinished one is resumed from last.pt, a bundle newer than best.pt is not exported
     again and an evaluation whose metrics.json exists is not run again.
The JSON file is merged per variant, so variants can be run separately into one file.
The CPU is shared: the load average and the hypervisor's steal share are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_benchmark import cpu_times, make_frames, steal_share

ROOT = Path(__file__).resolve().parents[1]

#: Variant name -> TrainConfig overrides (on top of --config).
VARIANTS: dict[str, dict[str, Any]] = {
    "w16": {"width": 16},  # the current default
    "w12": {"width": 12},
    "w8": {"width": 8},
    "w16-dw": {"width": 16, "depthwise": True},
    "w16-light": {"width": 16, "light_full_res": True},
    "w24-dw": {"width": 24, "depthwise": True},
}
SEG_CLASSES = ("root", "shoot", "seed")
TILE = 768


def _value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def sets(overrides: dict[str, Any]) -> list[str]:
    """`--set KEY=VALUE` items for the overrides, as hades-train's config loader reads them."""
    return [f"{k}={_value(v)}" for k, v in overrides.items()]


def conv_gmacs(model: Any, tile: int = TILE) -> float:
    """Multiply-accumulates of the model's convolutions on one tile x tile input, in 1e9.
    Counted on a 256x256 input and scaled by area: every conv is padded to keep its
    size, so its MACs are proportional to the input area (tile a multiple of 16)."""
    import torch

    side = 256
    total = [0]

    def hook(mod: torch.nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, side, side))
    finally:
        for h in handles:
            h.remove()
    return total[0] * (tile / side) ** 2 / 1e9


def latency(
    name: str, overrides: dict[str, Any], config: str, work: Path, frame: np.ndarray, runs: int, threads: int | None
) -> dict[str, Any]:
    import torch

    from hades_perception.contract.bundle import Manifest
    from hades_perception.inference.engine import OnnxRuntimeEngine
    from hades_perception.inference.pipeline import Pipeline
    from hades_training.config import load_config
    from hades_training.export import export_onnx
    from hades_training.manifest_spec import INPUT_TENSOR, manifest_dict
    from hades_training.model import build, parameter_count

    cfg = load_config(config, sets(overrides))
    torch.manual_seed(0)
    model = build(cfg).eval()
    out = work / name / "latency"
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    t0 = time.perf_counter()
    export_onnx(model, onnx_path, torch.zeros(1, 3, 256, 256))
    export_s = time.perf_counter() - t0

    pipe = Pipeline(
        Manifest.from_dict(manifest_dict(cfg)),
        OnnxRuntimeEngine(onnx_path, INPUT_TENSOR, ("CPUExecutionProvider",), threads),
    )
    chw = pipe.prepare(frame)[3]
    pipe.infer(chw)  # warm-up
    load0, since = os.getloadavg()[0], cpu_times()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        pipe.infer(chw)
        ms.append((time.perf_counter() - t) * 1e3)
    return {
        "params": parameter_count(model),
        "gmacs_per_768_tile": round(conv_gmacs(model), 3),
        "engine_ms_full_frame": float(np.median(ms)),
        "engine_ms_runs": [round(v, 1) for v in ms],
        "model_input_shape": list(chw.shape),
        "onnx_mb": round(onnx_path.stat().st_size / 1e6, 2),
        "onnx_export_s": round(export_s, 1),
        "loadavg_1min_before": load0,
        "steal_share": steal_share(since),
    }


def _run(cmd: list[str], log: Path) -> None:
    print("  $", shlex.join(cmd), f"> {log}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(f"exit status {r.returncode}: {shlex.join(cmd)} (log: {log})")


def _finished(last: Path, epochs: int) -> bool:
    import torch

    if not last.is_file():
        return False
    return int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1 >= epochs


def _test_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    seg = metrics.get("segmentation", {})
    return {
        **{f"iou_{c}": (seg.get(c) or {}).get("iou") for c in SEG_CLASSES},
        "tips_within_1mm": metrics.get("plants", {}).get("primary_tip_right_plant_within_1mm"),
        "primary_tip_within_1mm": metrics.get("primary_root_tip", {}).get("within_1mm"),
        "primary_root_length_smape_pct": metrics.get("primary_root_length_smape_pct"),
        "eval_engine_ms_median": metrics.get("timing_ms_median", {}).get("engine"),
        "images": metrics.get("images"),
    }


def accuracy(name: str, overrides: dict[str, Any], a: argparse.Namespace, exe: str) -> dict[str, Any]:
    from hades_training.config import load_config

    cfg = load_config(a.config, [*sets(overrides), *a.train_sets])
    run = Path(a.work) / name
    ckdir = run / "checkpoints"
    best, last, bundle = ckdir / "best.pt", ckdir / "last.pt", run / "bundle"
    log = run / "sweep.log"
    if best.is_file() and _finished(last, cfg.epochs):
        print(f"  trained already: {best}")
    else:
        cmd = [exe, "train", "--data", a.data, "--split", a.train_split, "--val-split", a.val_split]
        cmd += ["--out", str(run), "--config", a.config]
        for item in [*sets(overrides), *a.train_sets]:
            cmd += ["--set", item]
        if last.is_file():
            cmd += ["--resume", str(last)]
        t0 = time.perf_counter()
        _run(cmd, log)
        print(f"  trained in {(time.perf_counter() - t0) / 60:.1f} min")
    if (bundle / "manifest.json").is_file() and (bundle / "manifest.json").stat().st_mtime >= best.stat().st_mtime:
        print(f"  exported already: {bundle}")
    else:
        cmd = [exe, "export", "--checkpoint", str(best), "--data", a.data, "--split", a.val_split]
        _run([*cmd, "--out", str(bundle), "--force", "--no-tensorrt"], log)
    tests: dict[str, Any] = {}
    for data in a.test_data:
        report = run / f"report-{Path(data).name}"
        if not (report / "metrics.json").is_file():
            cmd = [exe, "evaluate", "--model", str(bundle), "--data", data, "--split", a.test_split]
            _run([*cmd, "--out", str(report)], log)
        tests[Path(data).name] = _test_metrics(json.loads((report / "metrics.json").read_text()))
    return {"run": str(run), "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch, "test": tests}


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def table(variants: dict[str, Any], test_names: list[str]) -> str:
    first = test_names[0] if test_names else None
    head = ["variant", "params", "GMACs/768 tile", "engine ms/frame"]
    if first:
        head.append(f"IoU root/shoot/seed ({first})")
    head += [f"tips ≤1 mm ({t})" for t in test_names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in variants.items():
        row = [name, _fmt(v.get("params"), ","), _fmt(v.get("gmacs_per_768_tile"), ".2f")]
        row.append(_fmt(v.get("engine_ms_full_frame"), ".0f"))
        test = (v.get("accuracy") or {}).get("test", {})
        if first:
            t = test.get(first, {})
            row.append("/".join(_fmt(t.get(f"iou_{c}"), ".3f") for c in SEG_CLASSES) if t else "–")
        row += [_fmt(test.get(n, {}).get("tips_within_1mm"), ".2f") for n in test_names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "architecture_sweep_cpu_2core.json"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    ap.add_argument("--config", default="training/configs/default.yaml", help="base training config (YAML)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    ap.add_argument("--steps-per-epoch", type=int, default=None, help="steps per epoch (default: the config's)")
    ap.add_argument("--data", default="var/datasets/mixed", help="training data (train and val splits)")
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--val-split", default="val")
    ap.add_argument("--test-data", nargs="+", default=["var/datasets/synth", "var/datasets/realistic"])
    ap.add_argument("--test-split", default="test")
    ap.add_argument("--experiment", default="hades-architecture-sweep", help="MLflow experiment of the training runs")
    ap.add_argument("--latency-only", action="store_true", help="measure latency only; train nothing")
    ap.add_argument("--runs", type=int, default=3, help="timed full-frame runs per variant, after one warm-up")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own)")
    ap.add_argument("--work", default="var/sweep", help="run folders: WORK/<variant>/")
    a = ap.parse_args()
    a.train_sets = [f"experiment={a.experiment}"]
    if a.epochs is not None:
        a.train_sets.append(f"epochs={a.epochs}")
    if a.steps_per_epoch is not None:
        a.train_sets.append(f"steps_per_epoch={a.steps_per_epoch}")
    exe = shutil.which("hades-train") or ""
    if not a.latency_only and not exe:
        ap.error("hades-train is not on PATH: source scripts/env.sh")

    out = Path(a.out)
    result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    result.update(
        {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": shlex.join(["python", *sys.argv]),
            "machine": {
                "cores": os.cpu_count(),
                "uname": " ".join(os.uname()),
                "python": platform.python_version(),
                "loadavg_at_start": list(os.getloadavg()),
            },
            "frame": "4202x3006 rgb8 synthetic plate (make_plate seed 900, preset normal)",
            "latency_method": "median Pipeline.infer (the engine stage) ms over --runs after 1 warm-up, random weights",
        }
    )
    variants: dict[str, Any] = result.setdefault("variants", {})
    frame = make_frames(1, seed=900)[0]
    work = Path(a.work)
    for name in a.variants:
        overrides = VARIANTS[name]
        print(f"{name}: {overrides}", flush=True)
        entry = variants.setdefault(name, {})
        entry["config_overrides"] = overrides
        entry.update(latency(name, overrides, a.config, work, frame, a.runs, a.threads))
        print(
            f"  {entry['params']:,} params, {entry['gmacs_per_768_tile']:.2f} GMACs/tile, "
            f"engine {entry['engine_ms_full_frame']:.0f} ms/frame (load {entry['loadavg_1min_before']:.1f})",
            flush=True,
        )
        if not a.latency_only:
            try:
                entry["accuracy"] = accuracy(name, overrides, a, exe)
                entry.pop("error", None)
            except RuntimeError as exc:  # one failed variant does not end the sweep
                entry["error"] = str(exc)
                print(f"  failed: {exc}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    test_names = [Path(d).name for d in a.test_data]
    print()
    print(table({n: variants[n] for n in a.variants}, test_names))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
