"""Inference engines: something that maps an input tensor to named output tensors.

The pipeline only sees the Engine protocol, so ONNX Runtime (on the TensorRT, CUDA,
OpenVINO or CPU execution provider) and a native TensorRT engine are interchangeable,
and which one runs is a fact the node reports in model_info.

Each execution provider gets the options that make it fast and restartable: TensorRT
builds its engine once per GPU model, TensorRT version, precision and input shape and
keeps it in a cache folder keyed by all four (a build takes minutes on a Jetson, and
an engine built for one of them is wrong for another); OpenVINO keeps its compiled
model in the same cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

TENSORRT, CUDA, OPENVINO, CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
# Preference order when the caller does not say otherwise: GPUs first, then OpenVINO
# (only present when onnxruntime-openvino is installed in place of onnxruntime: 2.3x
# faster than the CPU provider on the int8 model on x86, docs/engines.md), then CPU.
DEFAULT_PROVIDERS = (TENSORRT, CUDA, OPENVINO, CPU)
# What the `precision` setting may ask for: auto picks per provider (first_choice).
PRECISIONS = ("auto", "fp32", "fp16", "int8")


class Engine(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider", "onnxruntime:OpenVINOExecutionProvider:int8"
    precision: str  # what it computes in: fp32, fp16 or int8

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]: ...


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def first_available(providers: Sequence[str]) -> str | None:
    """The execution provider ONNX Runtime will use for a preference list, if any."""
    have = available_providers()
    return next((p for p in providers if p in have), None)


def computes_in(precision: str, provider: str) -> str:
    """What a model precision computes in on a provider: fp16 is a TensorRT build flag on
    model.onnx, so on any other provider that file computes in fp32."""
    return "fp32" if precision == "fp16" and provider != TENSORRT else precision


def provider_options(
    provider: str, *, precision: str, threads: int | None, cache_dir: Path | None, tile: int, input_name: str
) -> dict[str, str]:
    """The options `provider` runs with. `precision` is the model's (fp32, fp16, int8):
    fp16 is a TensorRT build flag on model.onnx, int8 the bundle's QDQ int8 variant."""
    if provider == TENSORRT:
        shape = f"{input_name}:1x3x{tile}x{tile}"
        opts = {
            "trt_fp16_enable": str(precision in ("fp16", "int8")),  # int8: layers left in float run fp16
            "trt_int8_enable": str(precision == "int8"),  # explicit QDQ scales: no calibration table
            "trt_profile_min_shapes": f"{input_name}:1x3x32x32",
            "trt_profile_opt_shapes": shape,
            "trt_profile_max_shapes": shape,
        }
        if cache_dir is not None:
            opts |= {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(cache_dir),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(cache_dir),
            }
        return opts
    if provider == OPENVINO:
        opts = {"device_type": "CPU"}
        if threads:
            opts["num_of_threads"] = str(threads)
        if cache_dir is not None:
            opts["cache_dir"] = str(cache_dir)
        return opts
    return {}


class OnnxRuntimeEngine:
    """An ONNX Runtime session on the most preferred execution provider present."""

    def __init__(
        self,
        model: Path | str,
        input_name: str,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int | None = None,
        *,
        precision: str = "fp32",
        cache_dir: Path | None = None,
        tile: int = 768,
        warm_up: bool | None = None,
    ) -> None:
        """`warm_up`: run one blank tile before serving; by default on the GPU providers
        (CUDA, TensorRT), where the first run of a shape is slow (warm_up below)."""
        import onnxruntime as ort

        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available]
        if not chosen:
            raise RuntimeError(f"none of the execution providers {list(providers)} is available (have {available})")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        if chosen[0] == TENSORRT and cache_dir is not None and not any(cache_dir.glob("*.engine")):
            log.info(
                "building a TensorRT engine for %s (%s, %dx%d) into %s: minutes on a Jetson, once per GPU, "
                "TensorRT version, precision and input shape",
                Path(model).name,
                precision,
                tile,
                tile,
                cache_dir,
            )
        if cache_dir is not None and chosen[0] in (TENSORRT, OPENVINO):
            cache_dir.mkdir(parents=True, exist_ok=True)
        with_options = [
            (
                p,
                provider_options(
                    p, precision=precision, threads=threads, cache_dir=cache_dir, tile=tile, input_name=input_name
                ),
            )
            for p in chosen
        ]
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=with_options)
        self.input_name = input_name
        self.output_names = [o.name for o in self.session.get_outputs()]
        active = self.session.get_providers()[0]
        if active != chosen[0]:  # listed, but its libraries did not load (seen: TensorRT's on a CUDA machine)
            log.warning("ONNX Runtime could not start %s (its reason is above); running on %s", chosen[0], active)
        self.provider = active
        self.precision = computes_in(precision, active)
        self.name = f"onnxruntime:{active}" + (f":{self.precision}" if self.precision != "fp32" else "")
        log.info("ONNX Runtime session on %s in %s (asked for %s)", active, self.precision, list(providers))
        on_gpu = active in (CUDA, TENSORRT)
        if on_gpu if warm_up is None else warm_up:
            self.warm_up(tile)

    def warm_up(self, tile: int) -> float:
        """Run one blank tile; returns its ms. On the CUDA provider cuDNN chooses its
        convolution algorithms on the first run of each input shape: a full frame's first
        engine stage took 434 ms on an H200, the next ones 48-51 ms. TensorRT may build its
        engine then. Done at load, before serving, so no frame (and no hot swap) pays it,
        for the bundle's full tile: the shape of every tile of a dish at least a tile wide
        and high (a smaller dish's tiles have their own shapes, and search on first use)."""
        dims = self.session.get_inputs()[0].shape
        channels = dims[1] if len(dims) == 4 and isinstance(dims[1], int) else 3
        t0 = time.perf_counter()
        self.run(np.zeros((1, channels, tile, tile), np.float32))
        ms = (time.perf_counter() - t0) * 1e3
        log.info("%s warmed up on a blank %d px tile in %.0f ms", self.name, tile, ms)
        return ms

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: inputs})
        return dict(zip(self.output_names, outs, strict=True))
