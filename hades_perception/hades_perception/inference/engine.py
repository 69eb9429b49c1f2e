"""Inference engines: something that maps an input tensor to named output tensors.

The pipeline only sees the Engine protocol, so ONNX Runtime (CPU, CUDA or
TensorRT execution provider) and a native TensorRT engine are interchangeable,
and which one runs is a fact the node reports in model_info.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

# Preference order when the caller does not say otherwise.
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class Engine(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider"

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]: ...


class OnnxRuntimeEngine:
    """An ONNX Runtime session on the most preferred execution provider present."""

    def __init__(
        self,
        model: Path | str,
        input_name: str,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int | None = None,
    ) -> None:
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
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=chosen)
        self.input_name = input_name
        self.output_names = [o.name for o in self.session.get_outputs()]
        active = self.session.get_providers()[0]
        variant = Path(model).name.removesuffix(".onnx").partition(".")[2]  # model.int8.onnx -> int8
        self.name = f"onnxruntime:{active}" + (f":{variant}" if variant else "")
        log.info("ONNX Runtime session on %s (asked for %s)", active, list(providers))

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: inputs})
        return dict(zip(self.output_names, outs, strict=True))
