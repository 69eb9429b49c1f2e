#!/usr/bin/env bash
# Issue 15's GPU check in one run, for a machine with an NVIDIA GPU: what ONNX Runtime and
# TensorRT offer there, then benchmarks/engine_benchmark.py's CPU, CUDA, TensorRT and
# PyTorch-reference configurations on full Hades frames, side by side (yolo_ros-style table).
# Needs onnxruntime-gpu (and tensorrt, for the TensorRT rows) importable by python3, plus
# this repository's core and training packages' dependencies; writes to $OUT.
#
#     OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh
#     OUT=/tmp/gpu-check CONFIGS="before cuda-fp32" bash benchmarks/gpu_check.sh   # a subset
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
CONFIGS=${CONFIGS:-before cpu-int8 cuda-fp32 cuda-fp32-whole trt-fp16 trt-int8 torch-cuda-fp16}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/hades_perception:$PWD/training${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/gpu.txt"
import onnxruntime as ort

print("onnxruntime", ort.__version__, ort.get_device(), ort.get_available_providers())
from hades_perception.inference.tensorrt_engine import tensorrt_available

print("native TensorRT engines:", tensorrt_available())
import torch

print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.is_available())
PY
python3 -m hades_training.cli synth --out /tmp/gpu-check-val --split val --count 8 --seed 2 >"$OUT/synth.log" 2>&1 \
  || { tail -20 "$OUT/synth.log"; exit 1; }
python3 benchmarks/engine_benchmark.py --data /tmp/gpu-check-val --split val --frames 3 --runs 10 \
  --configs $CONFIGS \
  --out "$OUT/engine_gpu.json" 2>&1 | tee "$OUT/bench.log"
