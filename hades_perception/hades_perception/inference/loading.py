"""Which engine serves a bundle on this machine, as a pipeline.

The order: an engine file the operator named (built from the bundle's ONNX first
when it does not exist yet or a rebuild is asked for, as Isaac ROS does); else the
TensorRT engine the bundle ships for this machine's GPU model, TensorRT version and
precision, if its outputs match the bundle's golden sample (export checks that
sample on ONNX Runtime only, so an FP16 engine is checked here); else ONNX Runtime
on the preferred execution providers. A prebuilt engine starts at once, where
building one takes minutes on a Jetson. No rclpy here: the node calls this for its
fallback bundle and for every store version it loads.

Precision: a bundle's int8 variant is served only when it passed its accuracy gate
at export (no class IoU worse by more than 0.005 and primary tips within 1 mm not
fewer, on the validation split: hades_training/export.py); `auto` takes it on the
OpenVINO and CPU providers, fp16 on TensorRT (which refuses the variant's asymmetric
uint8 activations), and fp32 on the CUDA provider, where QDQ int8 gains nothing. What is
not fp32 must match the bundle's golden outputs before it serves (serve_checked).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from hades_perception.contract.bundle import BundleError, Manifest, open_bundle
from hades_perception.contract.golden import check_golden, int8_golden_hint
from hades_perception.inference.engine import CPU, OPENVINO, PRECISIONS, TENSORRT, computes_in, first_available
from hades_perception.inference.pipeline import DISH_MM, Pipeline
from hades_perception.inference.tensorrt_engine import (
    TensorRTEngine,
    engine_description,
    gpu_name,
    prebuilt_engine,
    stale_engine,
    tensorrt_available,
    tensorrt_version,
    write_engine,
)

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
    precision: str = "auto",
    engine_cache_dir: Path | None = None,
) -> Pipeline:
    """A pipeline for `bundle`. Every file is checked against the manifest unless the
    caller just did (`verified`). `engine_key` is local_engine_key()'s (None without
    TensorRT); `engine_file` an explicit engine, used as it is once it exists.
    `precision` (PRECISIONS) is resolved by resolve_precision; the caller's golden check
    applies to whatever it serves. `engine_cache_dir`: where TensorRT keeps the engines
    it builds and OpenVINO its compiled models (None: no cache)."""
    if precision not in PRECISIONS:
        raise BundleError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    manifest = open_bundle(bundle, verify=not verified)
    if engine_file is not None:
        native = native_precisions(manifest, precision)[0]
        spec = manifest.input
        onnx = bundle / manifest.model_file(native)
        stale = None
        if engine_file.exists() and not force_engine_update:
            source = manifest.model_sha256(native)
            wanted = engine_description(source, native, spec.tile, _gpu_if_any(), tensorrt_version())
            stale = stale_engine(engine_file, wanted)
        if force_engine_update or not engine_file.exists() or stale:
            ok, why = tensorrt_available()
            if not ok:
                asked = (
                    "a rebuild was asked for"
                    if force_engine_update
                    else (f"it is stale: {stale}" if stale else "it does not exist")
                )
                raise BundleError(f"engine_file_path {engine_file}: {asked}, and it cannot be built here: {why}")
            if stale:
                log.warning("engine_file_path %s is stale (%s): rebuilding it", engine_file, stale)
            write_engine(onnx, engine_file, tile=spec.tile, precision=native, input_name=spec.tensor)
        return Pipeline(
            manifest, TensorRTEngine(engine_file, manifest.input.tensor, native), px_per_mm=px_per_mm, dish_mm=dish_mm
        )
    plan = next(
        (
            found
            for key in native_keys(manifest, precision, engine_key)
            if (found := prebuilt_engine(bundle, manifest, key)) is not None
        ),
        None,
    )
    if plan is not None:
        try:
            engine = TensorRTEngine(plan, manifest.input.tensor, plan.stem.rsplit("_", 1)[-1])
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
    provider = first_available(providers)
    chosen, why = resolve_precision(manifest, precision, provider)
    if why:
        (log.warning if precision not in ("auto", chosen) else log.info)(
            "%s %s: serving %s (%s)", manifest.name, manifest.version, chosen, why
        )
    cache = engine_cache_dir / cache_key(manifest, chosen, provider) if engine_cache_dir and provider else None
    return Pipeline.from_bundle(
        bundle,
        providers,
        threads,
        verify=False,
        precision=chosen,
        px_per_mm=px_per_mm,
        dish_mm=dish_mm,
        engine_cache_dir=cache,
    )


def _gpu_if_any() -> str:
    """The GPU's name where TensorRT is here to use it, else "unknown" (not compared)."""
    return gpu_name() if tensorrt_available()[0] else "unknown"


def default_engine_cache() -> Path:
    """$HADES_DATA_DIR/engine-cache, else ~/.cache/hades_perception-engines."""
    data = os.environ.get("HADES_DATA_DIR")
    return Path(data) / "engine-cache" if data else Path("~/.cache/hades_perception-engines").expanduser()


def serve_checked(
    bundle: Path,
    load: Callable[[str], Pipeline],
    asked: str,
    *,
    latency_budget_ms: float | None = None,
    refuse_named: bool = True,
) -> Pipeline:
    """`load(asked)`, held to the bundle's golden outputs when it is not fp32, as every
    store version is (models/follower.py). One that fails gives way to `load("fp32")`
    with a warning under `auto`; asked for by name it raises BundleError, unless
    `refuse_named` is False (the command line, which warns and goes on in fp32)."""
    pipe = load(asked)
    if pipe.engine.precision == "fp32":
        return pipe
    report = check_golden(bundle, pipe, latency_budget_ms)
    if report.ok:
        return pipe
    why = f"{bundle} ({pipe.engine.name}): golden check failed: " + "; ".join(report.problems)
    why += int8_golden_hint(pipe.manifest, pipe.engine.precision)
    if asked != "auto" and refuse_named:
        raise BundleError(why)  # asked for by name: nothing else starts in its place
    log.warning("%s; serving fp32 instead", why)
    return load("fp32")


def load_checked(
    bundle: Path,
    providers: tuple[str, ...],
    *,
    precision: str = "auto",
    threads: int | None = None,
    px_per_mm: float | None = None,
) -> Pipeline:
    """The pipeline `hades-perception predict` and the batch run (serve_checked, going on
    in fp32 whatever was asked)."""
    from hades_perception.inference.tensorrt_engine import local_engine_key

    machine_key = local_engine_key()[0]

    def load(asked: str) -> Pipeline:
        return load_pipeline(
            bundle,
            providers=providers,
            threads=threads,
            engine_key=machine_key,
            px_per_mm=px_per_mm,
            precision=asked,
            engine_cache_dir=default_engine_cache(),
        )

    pipe = serve_checked(bundle, load, precision, refuse_named=False)
    log.info("%s %s on %s", pipe.manifest.name, pipe.manifest.version, pipe.engine.name)
    return pipe


def native_precisions(manifest: Manifest, asked: str) -> list[str]:
    """The precisions of a native TensorRT engine for `asked`, best first (int8 only
    when the bundle's int8 variant passed its gate)."""
    order = {"fp32": ["fp32"], "fp16": ["fp16"], "int8": ["int8", "fp16"], "auto": ["fp16"]}[asked]
    return [p for p in order if p != "int8" or int8_gate(manifest)[0]]


def native_keys(manifest: Manifest, asked: str, machine_key: str | None) -> list[str]:
    """The prebuilt-engine keys to look for, best first: `machine_key` is this machine's
    key (local_engine_key), whose precision suffix is swapped for each precision."""
    if machine_key is None:
        return []
    stem = machine_key.rsplit("_", 1)[0]
    return [f"{stem}_{p}" for p in native_precisions(manifest, asked)]


def int8_gate(manifest: Manifest) -> tuple[bool, str]:
    """(passed, why not) for the bundle's int8 variant, from the gate its export recorded."""
    variant = manifest.variants.get("model.int8.onnx")
    if variant is None:
        return False, "the bundle ships no int8 variant"
    gate = variant.get("gate")
    if not isinstance(gate, dict):
        return False, "its int8 variant has no accuracy gate record (exported before the gate)"
    if gate.get("passed") is not True:
        return False, "its int8 variant failed its accuracy gate: " + "; ".join(gate.get("reasons") or ["no reason"])
    return True, ""


def resolve_precision(manifest: Manifest, asked: str, provider: str | None) -> tuple[str, str]:
    """(the model precision to serve, why it is not what was asked, or "")."""
    on_tensorrt = provider == TENSORRT
    int8_ok, int8_why = int8_gate(manifest)
    if asked == "fp32":
        return "fp32", ""
    if asked == "fp16":
        served = computes_in("fp16", provider or CPU)
        return served, "" if served == "fp16" else f"fp16 applies to TensorRT only; {provider} runs fp32"
    if asked == "int8":
        return ("int8", "") if int8_ok else ("fp32", int8_why)
    # auto. Not int8 on TensorRT: the variant's activations are asymmetric uint8 (ONNX
    # Runtime's CPU kernels are fastest so), which TensorRT's parser refuses; fp16 there.
    if int8_ok and provider in (OPENVINO, CPU):
        return "int8", ""
    if on_tensorrt:
        return "fp16", ""
    return "fp32", int8_why if provider in (OPENVINO, CPU) else ""


def cache_key(manifest: Manifest, precision: str, provider: str) -> str:
    """The engine cache folder of one model on one machine: TensorRT engines are valid
    only for the GPU model, TensorRT version, precision and input shape they were built
    for, so each combination has its own folder (`<sha of the model file served>/<gpu>_trt<v>_<precision>_<tile>`):
    a re-export with the same weights but a new int8 calibration gets a new folder."""
    tile = manifest.input.tile
    if provider == TENSORRT:
        from hades_perception.inference.tensorrt_engine import engine_key, gpu_name, tensorrt_version

        machine = engine_key(gpu_name(), tensorrt_version(), precision)
    else:
        machine = f"{provider.removesuffix('ExecutionProvider').lower()}_{precision}"
    return f"{manifest.model_sha256(precision)[:16]}/{machine}_{tile}x{tile}"
