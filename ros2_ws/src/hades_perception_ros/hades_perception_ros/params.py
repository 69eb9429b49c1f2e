"""The node's parameters: the one table of names, types, defaults, ranges and descriptions.

The node declares exactly these (with descriptors, so `ros2 param describe` shows
them); config/perception.yaml holds only overrides (a test checks it names no default),
and docs/node.md's table is checked against this one. Names follow the Isaac ROS
vocabulary where one exists (engine_file_path, force_engine_update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hades_perception.inference.engine import DEFAULT_PROVIDERS, PRECISIONS
from hades_perception.inference.pipeline import MAX_PIXELS


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive, for int and float
    choices: tuple[str, ...] | None = None
    read_only: bool = True  # most take effect at start-up only


PARAMS: tuple[Param, ...] = (
    # lifecycle
    Param(
        "autostart",
        True,
        "Configure and activate at start (a managed node that serves at once); false: wait for "
        "lifecycle transitions (ros2 lifecycle set <node> configure, then activate)",
    ),
    # topics and QoS
    Param("image_topic", "image_raw", "Hades camera image topic (sensor_msgs/Image), relative to the namespace"),
    Param("compressed_topic", "", "Compressed image topic (sensor_msgs/CompressedImage); empty: not subscribed"),
    Param(
        "qos_reliability",
        "reliable",
        "Input QoS reliability. reliable: no frame lost (a best-effort reader loses 36 MB frames: "
        "docs/node.md); best_effort only for a camera that publishes best effort",
        choices=("best_effort", "reliable"),
    ),
    Param("qos_depth", 2, "Input QoS history depth (keep last); the worker behind it keeps the newest", range=(1, 100)),
    Param(
        "output_qos_reliability", "reliable", "Reliability of the output topics", choices=("best_effort", "reliable")
    ),
    # model and engine
    Param(
        "model_bundle_path",
        "models/hades-seedlings",
        "Model bundle folder (manifest.json, model.onnx); relative paths start at the working directory",
    ),
    Param(
        "execution_providers",
        list(DEFAULT_PROVIDERS),
        "ONNX Runtime execution providers by preference; unavailable ones are skipped",
    ),
    Param(
        "engine_file_path",
        "",
        "A TensorRT engine to run instead of ONNX Runtime while store_url is empty; built from the "
        "bundle's ONNX first when missing, or when its description (<file>.json) says it was built from "
        "another model file, precision, tile, GPU or TensorRT. Empty: the bundle's engine for this GPU if "
        "any, else ONNX Runtime",
    ),
    # model store and hot swap (store_url empty: serve model_bundle_path only)
    Param(
        "store_url",
        "",
        "Model store to follow: a folder, file://, azure://<container>[/<prefix>] or https://<account>"
        ".blob.core.windows.net/<container>; credentials come from the environment, never from here. "
        "Empty: serve model_bundle_path only",
    ),
    Param("model_name", "", "Model to follow in the store; empty: the name in model_bundle_path's manifest"),
    Param("channel", "production", "Store channel to follow (e.g. production, canary)"),
    Param("poll_period", 10.0, "Seconds between conditional reads of the channel pointer", range=(0.2, 3600.0)),
    Param(
        "cache_dir",
        "",
        "Local cache of store versions; empty: $HADES_DATA_DIR/model-cache or ~/.cache/hades_perception",
    ),
    Param(
        "trusted_keys_dir",
        "",
        "Folder of trusted ed25519 public keys (*.pub); set: only bundles signed by one of them are served",
    ),
    Param(
        "latency_budget_ms",
        0.0,
        "Golden-sample latency a new version must meet before it is served; 0: 10x its export latency",
        range=(0.0, 600000.0),
    ),
    Param(
        "shadow_channel",
        "",
        "Run this channel's version beside the serving one on the same frames; outputs under shadow/, "
        "agreement on shadow/agreement. Empty: no shadow",
    ),
    Param(
        "force_engine_update", False, "Rebuild engine_file_path from the bundle's ONNX at start-up, even if it exists"
    ),
    Param(
        "precision",
        "auto",
        "Model precision. auto: the bundle's int8 variant when it passed its accuracy gate at export (CPU and "
        "OpenVINO providers), fp16 on TensorRT, else fp32, and fp32 when the variant fails the golden check; "
        "int8: that variant when it passed its gate, else fp32 with a warning; fp16: TensorRT only; fp32: "
        "model.onnx. Whatever is not fp32 must pass the bundle's golden check before it is served",
        choices=PRECISIONS,
    ),
    Param(
        "engine_cache_dir",
        "",
        "Where TensorRT keeps the engines it builds (per GPU model, TensorRT version, precision and input "
        "shape) and OpenVINO its compiled models; empty: $HADES_DATA_DIR/engine-cache or "
        "~/.cache/hades_perception-engines",
    ),
    Param("intra_op_threads", 0, "ONNX Runtime threads; 0: all cores", range=(0, 256)),
    # calibration
    Param(
        "px_per_mm", 0.0, "Pixels per millimetre; 0: measure from the dish (agar width = dish_mm)", range=(0.0, 1000.0)
    ),
    Param("dish_mm", 120.0, "Agar width of the dish in mm, for dish-based calibration", range=(10.0, 500.0)),
    # queue
    Param("queue_size", 1, "Frames that may wait for the engine", range=(1, 16)),
    Param(
        "queue_policy",
        "keep_newest",
        "When the queue is full: drop the oldest waiting frame, or the new one",
        choices=("keep_newest", "keep_oldest"),
    ),
    # outputs
    Param("publish_confidence_image", True, "Publish the per-pixel confidence image"),
    Param("publish_colour_mask", True, "Publish an rgb8 overlay of all classes for viewing"),
    Param(
        "viewing_rate_hz",
        1.0,
        "Most frames per second on the viewing images (confidence, masks/<class>, masks/colour), which are "
        "made only while someone subscribes; 0: every frame. The masks topic a robot reads is not limited",
        range=(0.0, 1000.0),
    ),
    Param(
        "viewing_downsample",
        1,
        "The viewing images at 1/N of the frame's width and height: 4 makes a 4202x3006 frame's 1050x751, a "
        "sixteenth of the pixels to make and send; a class shows where any pixel of the N x N block has it, the "
        "confidence image is the block's mean. 1: full size, the masks message's own images. The masks topic a "
        "robot reads is always full size",
        range=(1, 16),
    ),
    Param("max_image_pixels", MAX_PIXELS, "Frames larger than this are refused", range=(1, 2**31 - 1)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages", range=(0.1, 60.0), read_only=False),
    # monitoring
    Param(
        "drift_window",
        50,
        "Frames whose monitoring signals are judged against the model's reference for drift (/diagnostics)",
        range=(5, 10000),
    ),
    Param("drift_min_frames", 20, "Frames needed before drift is judged at all", range=(2, 10000)),
    Param(
        "probation_frames",
        50,
        "Frames a newly swapped version is watched for: inference failures or a drift ERROR in them mark it degraded",
        range=(1, 100000),
    ),
    Param(
        "probation_max_error_rate",
        0.2,
        "Share of failed frames (inference errors, not bad input) that marks a swapped version degraded",
        range=(0.0, 1.0),
    ),
    Param(
        "fallback_on_degradation",
        False,
        "Pin the previous version by itself when a swapped version is degraded (logged; a person releases the pin "
        "or rolls the channel back); false: report it in /diagnostics only",
    ),
    Param(
        "metrics_port",
        0,
        "Port of a Prometheus endpoint (frames, drops, stage latency, model, drift); 0: off",
        range=(0, 65535),
    ),
    Param("metrics_host", "127.0.0.1", "Address the Prometheus endpoint binds to (0.0.0.0 exposes it to the network)"),
    Param(
        "tracing_endpoint",
        "",
        "OTLP/HTTP collector for a trace of each frame's stages (e.g. http://127.0.0.1:4318/v1/traces); empty: off",
    ),
)

BY_NAME = {p.name: p for p in PARAMS}


def check(values: dict[str, Any]) -> list[str]:
    """Problems with a set of parameter values (unknown names, types, ranges, choices)."""
    problems = []
    for name, value in values.items():
        p = BY_NAME.get(name)
        if p is None:
            problems.append(f"unknown parameter {name!r}")
            continue
        want = type(p.default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            problems.append(f"{name}: expected {want.__name__}, got {type(value).__name__} {value!r}")
            continue
        if p.range and not p.range[0] <= value <= p.range[1]:
            problems.append(f"{name}: {value} outside [{p.range[0]}, {p.range[1]}]")
        if p.choices and value not in p.choices:
            problems.append(f"{name}: {value!r} is not one of {list(p.choices)}")
    return problems


def declare(node: Any) -> None:
    """Declare every parameter on an rclpy node, with its descriptor; a value outside
    its choices raises ValueError (rclpy itself checks types and ranges)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    for spec in PARAMS:
        d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.choices:
            d.additional_constraints = f"one of {list(spec.choices)}"
        if spec.range and isinstance(spec.default, float):
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))
            ]
        elif spec.range and isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
        node.declare_parameter(spec.name, spec.default, d)
        value = node.get_parameter(spec.name).value
        if spec.choices and value not in spec.choices:
            raise ValueError(f"parameter {spec.name}={value!r} is not one of {list(spec.choices)}")


def reliability(name: str) -> Any:
    """rclpy's ReliabilityPolicy for a qos_reliability / output_qos_reliability value."""
    from rclpy.qos import ReliabilityPolicy

    return ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT


def markdown_table() -> str:
    """The parameter table of docs/node.md, made from PARAMS (a test keeps them equal):
    python -m hades_perception_ros.params"""
    rows = ["| parameter | default | range / choices | meaning |", "| --- | --- | --- | --- |"]
    for p in PARAMS:
        limits = f"{p.range[0]:g} .. {p.range[1]:g}" if p.range else " / ".join(p.choices or ())
        default = "`" + (str(p.default).lower() if isinstance(p.default, bool) else str(p.default)) + "`"
        rows.append(f"| `{p.name}` | {default if p.default != '' else '(empty)'} | {limits} | {p.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
