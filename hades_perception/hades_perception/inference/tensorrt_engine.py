"""TensorRT: building FP16 and INT8 engines from a bundle's verified ONNX, choosing the one a
bundle ships for this machine, and running it.

Engines are specific to the GPU model, the TensorRT version and the precision,
so they are keyed by all three and built on (or for) the target. A bundle lists its
engines in the manifest (`engines: {key: {file, gpu, tensorrt, precision}}`), and each
engine file is in `files`, so the cache checked its sha256 like every other file.
Everything here is optional: without `tensorrt` and a CUDA GPU the rest of the project
works and these paths are skipped with a reason.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception.contract.bundle import BundleError, Manifest, sha256_file

log = logging.getLogger(__name__)


def tensorrt_available() -> tuple[bool, str]:
    try:
        import tensorrt as trt
    except ImportError:
        return False, "the tensorrt Python package is not installed"
    except Exception as exc:  # installed, but its libraries do not load
        return False, f"tensorrt cannot be imported: {type(exc).__name__}: {exc}"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA GPU"
    except ImportError:
        pass
    except Exception as exc:  # a torch whose CUDA libraries are missing or broken (seen on Jetsons)
        return False, f"torch cannot look for a CUDA GPU: {type(exc).__name__}: {exc}"
    return True, f"TensorRT {trt.__version__}"


def gpu_name() -> str:
    """The GPU model as the driver names it: nvidia-smi first (x86 drivers), then torch
    (Jetson, where nvidia-smi may be missing). Engines are built and chosen by this
    same name, so an engine built on one kind of device is found on that kind."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # no torch, or one that cannot reach CUDA
        pass
    return "unknown-gpu"


def tensorrt_version() -> str:
    """The installed TensorRT's version, or "unknown" (ONNX Runtime's TensorRT provider
    can run with TensorRT's libraries but without its Python package)."""
    try:
        import tensorrt as trt

        return str(trt.__version__)
    except Exception:  # not installed, or its libraries do not load
        return "unknown"


def engine_key(gpu: str, trt_version: str, precision: str) -> str:
    """e.g. 'nvidia-h100-80gb-hbm3_trt10.13.3_fp16'."""
    slug = re.sub(r"[^a-z0-9.]+", "-", gpu.lower()).strip("-")
    return f"{slug}_trt{trt_version}_{precision}"


def local_engine_key(precision: str = "fp16") -> tuple[str | None, str]:
    """(the engine key of this machine, why) or (None, why not): with no TensorRT or
    no CUDA GPU there is no engine this machine could run."""
    ok, why = tensorrt_available()
    if not ok:
        return None, why
    import tensorrt as trt

    return engine_key(gpu_name(), trt.__version__, precision), why


def prebuilt_engine(bundle: Path, manifest: Manifest, key: str | None) -> Path | None:
    """The engine file `bundle` ships for `key` (this GPU model, TensorRT version and
    precision), or None when it ships none. Only a file the manifest lists under
    `files` is used: that is what was checked by sha256 (and covered by the signature)."""
    if key is None:
        return None
    entry = (manifest.raw.get("engines") or {}).get(key)
    if not entry:
        return None
    rel = str(entry.get("file", ""))
    if rel not in manifest.raw.get("files", {}):
        raise BundleError(f"engine {key}: {rel!r} is not among the files the manifest checks")
    path = Path(bundle) / rel
    if not path.is_file():
        raise BundleError(f"engine {key}: {path} is missing")
    return path


def serialize_engine(onnx_path: Path, *, tile: int, precision: str = "fp16", input_name: str = "image") -> bytes:
    """An engine for inputs up to tile x tile, built on this GPU (minutes on a Jetson).
    precision "int8" takes the bundle's QDQ int8 variant (explicit scales, no calibration
    table); layers it leaves in float run in fp16."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (1, 3, 32, 32), (1, 3, tile, tile), (1, 3, tile, tile))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    return bytes(serialized)


def write_engine(onnx_path: Path, path: Path, *, tile: int, precision: str = "fp16", input_name: str = "image") -> Path:
    """Build an engine into `path`, atomically: a build cut short leaves no half file
    that a later start would try to load. Beside it, `<path>.json` says what it was
    built from and for (engine_description), so that a later start can tell a stale
    engine from a current one."""
    log.info("building TensorRT %s engine %s from %s (minutes on a Jetson)", precision, path, onnx_path)
    data = serialize_engine(onnx_path, tile=tile, precision=precision, input_name=input_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    description = engine_description(sha256_file(onnx_path), precision, tile, gpu_name(), tensorrt_version())
    partial.replace(path)
    # After the engine: a stop between the two leaves the new engine beside the old
    # description, which a later start finds stale and rebuilds; the other order would
    # leave an old engine described as the new one.
    described = description_path(path)
    partial_description = described.with_name(described.name + ".partial")
    partial_description.write_text(json.dumps(description, indent=1))
    partial_description.replace(described)
    log.info("TensorRT engine %s (%.1f MB)", path, len(data) / 1e6)
    return path


def description_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def engine_description(source_sha256: str, precision: str, tile: int, gpu: str, trt_version: str) -> dict[str, Any]:
    """What an engine file was built from (the ONNX file's sha256) and for."""
    return {"source_sha256": source_sha256, "precision": precision, "tile": tile, "gpu": gpu, "tensorrt": trt_version}


#: An engine description's keys, as a person reads them.
DESCRIBED = {
    "source_sha256": "model file",
    "precision": "precision",
    "tile": "tile",
    "gpu": "GPU",
    "tensorrt": "TensorRT",
}


def stale_engine(engine: Path, wanted: dict[str, Any]) -> str | None:
    """Why the engine file at `engine` is not the one `wanted` (engine_description of what
    would be built now) describes, or None when it is, or when it has no description (an
    engine built by hand, e.g. with trtexec: served as it is, with a warning). Keys whose
    wanted value is "unknown" (no TensorRT here to ask) are not compared."""
    path = description_path(engine)
    if not path.is_file():
        log.warning(
            "engine_file_path %s has no %s beside it (built outside hades-perception?): served as it is; "
            "its precision and the model it was built from are not checked, only its golden outputs",
            engine,
            path.name,
        )
        return None
    try:
        built = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"its description {path.name} cannot be read ({exc})"
    differ = [k for k, v in wanted.items() if v != "unknown" and built.get(k) != v]
    if not differ:
        return None
    return "built for another " + ", ".join(
        f"{DESCRIBED.get(k, k)} ({str(built.get(k))[:16]}, not {str(wanted[k])[:16]})" for k in differ
    )


def build_engine(
    onnx_path: Path, out_dir: Path, *, tile: int, precision: str = "fp16", input_name: str = "image"
) -> tuple[str, dict[str, Any]]:
    """An engine for a bundle's engines/ folder, named by this machine's key; returns
    (key, manifest entry). `onnx_path` is model.int8.onnx for precision "int8"."""
    import tensorrt as trt

    gpu = gpu_name()
    key = engine_key(gpu, trt.__version__, precision)
    path = write_engine(onnx_path, out_dir / f"{key}.plan", tile=tile, precision=precision, input_name=input_name)
    return key, {
        "file": f"engines/{path.name}",
        "gpu": gpu,
        "tensorrt": trt.__version__,
        "precision": precision,
        "max_input": [tile, tile],
    }


class TensorRTEngine:
    """Runs a serialised engine with torch CUDA tensors as buffers (torch is only
    needed on machines that have TensorRT anyway)."""

    def __init__(self, plan: Path, input_name: str = "image", precision: str = "fp16") -> None:
        import tensorrt as trt
        import torch

        self._torch = torch
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{plan}: TensorRT cannot deserialise this engine (built for another GPU or version?)")
        self.context = self.engine.create_execution_context()
        self.input_name = input_name
        self.outputs = [
            self.engine.get_tensor_name(i)
            for i in range(self.engine.num_io_tensors)
            if self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) == trt.TensorIOMode.OUTPUT
        ]
        self.name = f"tensorrt:{Path(plan).stem}"
        self.precision = precision
        self.stream = torch.cuda.Stream()

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        # Copy in, buffers and the engine all on the engine's stream: torch's allocator
        # ties a buffer to the stream it was made on, and nothing would order a copy on
        # the default stream before the engine's run.
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(np.ascontiguousarray(inputs)).cuda(non_blocking=False)
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            outs = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                buf = torch.empty(shape, dtype=torch.float32, device="cuda")
                self.context.set_tensor_address(name, buf.data_ptr())
                outs[name] = buf
            self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outs.items()}
