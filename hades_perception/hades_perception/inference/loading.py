"""Which engine serves a bundle on this machine, as a pipeline.

The order: an engine file the operator named (built from the bundle's ONNX first
when it does not exist yet or a rebuild is asked for, as Isaac ROS does); else the
TensorRT engine the bundle ships for this machine's GPU model, TensorRT version and
precision, if its outputs match the bundle's golden sample (export checks that
sample on ONNX Runtime only, so an FP16 engine is checked here); else ONNX Runtime
on the preferred execution providers. A prebuilt engine starts at once, where
building one takes minutes on a Jetson. No rclpy here: the node calls this for its
fallback bundle and for every store version it loads.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hades_perception.contract.bundle import BundleError, open_bundle
from hades_perception.contract.golden import check_golden
from hades_perception.inference.pipeline import DISH_MM, Pipeline
from hades_perception.inference.tensorrt_engine import TensorRTEngine, prebuilt_engine, tensorrt_available, write_engine

log = logging.getLogger(__name__)


def load_pipeline(
    bundle: Path,
    *,
    providers: tuple[str, ...],
    threads: int | None = None,
    engine_key: str | None = None,
    engine_file: Path | None = None,
    force_engine_update: bool = False,
    verified: bool = False,
    px_per_mm: float | None = None,
    dish_mm: float = DISH_MM,
    precision: str = "fp32",
) -> Pipeline:
    """A pipeline for `bundle`. Every file is checked against the manifest unless the
    caller just did (`verified`). `engine_key` is local_engine_key()'s (None without
    TensorRT); `engine_file` an explicit engine, used as it is once it exists.
    `precision` "int8" serves the bundle's int8 variant on ONNX Runtime when it ships
    one (fp32 otherwise, with a warning); the caller's golden check applies to it."""
    manifest = open_bundle(bundle, verify=not verified)
    if engine_file is not None:
        if force_engine_update or not engine_file.exists():
            ok, why = tensorrt_available()
            if not ok:
                asked = "a rebuild was asked for" if force_engine_update else "it does not exist"
                raise BundleError(f"engine_file_path {engine_file}: {asked}, and it cannot be built here: {why}")
            log.info("building TensorRT engine %s from %s/model.onnx (minutes on a Jetson)", engine_file, bundle)
            spec = manifest.input
            write_engine(bundle / "model.onnx", engine_file, tile=spec.tile, input_name=spec.tensor)
        return Pipeline(
            manifest, TensorRTEngine(engine_file, manifest.input.tensor), px_per_mm=px_per_mm, dish_mm=dish_mm
        )
    plan = prebuilt_engine(bundle, manifest, engine_key)
    if plan is not None:
        try:
            engine = TensorRTEngine(plan, manifest.input.tensor)
            pipeline = Pipeline(manifest, engine, px_per_mm=px_per_mm, dish_mm=dish_mm)
            report = check_golden(bundle, pipeline)
            if report.ok:
                return pipeline
            why = "golden check failed: " + "; ".join(report.problems)
        except Exception as exc:  # built by another TensorRT build, or no TensorRT after all
            why = f"{type(exc).__name__}: {exc}"
        log.warning(
            "%s %s: engine %s not used (%s); ONNX Runtime instead", manifest.name, manifest.version, plan.name, why
        )
    if precision != "fp32" and f"model.{precision}.onnx" not in manifest.variants:
        log.warning("%s %s ships no %s variant; serving fp32", manifest.name, manifest.version, precision)
        precision = "fp32"
    return Pipeline.from_bundle(
        bundle, providers, threads, verify=False, precision=precision, px_per_mm=px_per_mm, dish_mm=dish_mm
    )
