"""The model bundle: a folder of files plus manifest.json, the one contract that
training and the node share. Everything a consumer needs to run a model (class
names, input scale, normalisation, calibration, thresholds) is read from here,
never from constants elsewhere.

Layout:
  manifest.json            this schema (models/manifest.schema.json documents it)
  manifest.json.sig        optional detached ed25519 signature of manifest.json
  model.onnx
  engines/<key>.plan       optional TensorRT engines, keyed by GPU, TensorRT version, precision
  golden/...               a small input and its expected outputs, for validation at swap time
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


class BundleError(ValueError):
    """A bundle that must not be served; the message says which file and why."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    tensor: str
    channels: str  # "RGB"
    mean: tuple[float, ...]  # per channel, on 0-1 values
    std: tuple[float, ...]
    crop: str  # "dish": crop to the detected dish first; "none": the whole image
    scale: float  # model input px per image px
    tile: int  # tile side in model-input px; larger images are tiled
    tile_overlap: int
    divisor: int  # model input height and width must be multiples of this

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        norm = d["normalisation"]
        return cls(
            tensor=d["tensor"],
            channels=d.get("channels", "RGB"),
            mean=tuple(norm["mean"]),
            std=tuple(norm["std"]),
            crop=d.get("crop", "dish"),
            scale=float(d["scale"]),
            tile=int(d["tile"]),
            tile_overlap=int(d["tile_overlap"]),
            divisor=int(d["size_divisor"]),
        )


@dataclass(frozen=True)
class OutputSpec:
    seg_tensor: str
    classes: tuple[str, ...]
    landmark_tensor: str
    landmark_kinds: tuple[str, ...]
    landmark_stride: int  # heatmap px per model-input px is 1/stride


@dataclass(frozen=True)
class Calibration:
    """Temperatures turn logits into calibrated probabilities; thresholds turn
    probabilities into decisions. Fitted on the validation split at export."""

    seg_temperature: tuple[float, ...]  # per class
    landmark_temperature: tuple[float, ...]  # per landmark kind
    mask_threshold: float
    mask_thresholds: tuple[float, ...]  # per class, chosen on the validation split
    landmark_threshold: float  # minimum calibrated heatmap peak to report a landmark
    low_confidence: float  # below this a landmark or plant is flagged
    nms_radius_px: float  # in image px: peaks closer than this are one landmark
    plants: int  # plants per dish


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    name: str
    version: str
    input: InputSpec
    outputs: OutputSpec
    calibration: Calibration

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        """Other model files the bundle ships (e.g. "model.int8.onnx"), with their accuracy cost."""
        return dict(self.raw.get("variants") or {})

    def model_file(self, precision: str = "fp32") -> str:
        """The ONNX file for a precision: model.onnx (fp32, and fp16, which is a TensorRT
        build flag on it) or model.<precision>.onnx when the bundle ships that variant.
        Raises BundleError when it does not."""
        if precision in ("fp32", "fp16"):
            return "model.onnx"
        name = f"model.{precision}.onnx"
        if name not in self.variants:
            raise BundleError(f"{self.name} {self.version} ships no {precision} variant ({name})")
        return name

    @property
    def sha256(self) -> str:
        """Checksum of the ONNX model file: what model_info reports."""
        return self.model_sha256()

    def model_sha256(self, precision: str = "fp32") -> str:
        """Checksum of the ONNX file a precision runs (model_file)."""
        return str(self.raw["files"][self.model_file(precision)]["sha256"])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        try:
            if d.get("schema_version") != SCHEMA_VERSION:
                raise BundleError(f"manifest schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}")
            seg, lm = d["outputs"]["segmentation"], d["outputs"]["landmarks"]
            cal = d["calibration"]
            outputs = OutputSpec(
                seg["tensor"], tuple(seg["classes"]), lm["tensor"], tuple(lm["kinds"]), int(lm["stride"])
            )
            calibration = Calibration(
                seg_temperature=tuple(float(t) for t in cal["seg_temperature"]),
                landmark_temperature=tuple(float(t) for t in cal["landmark_temperature"]),
                mask_threshold=float(cal["mask_threshold"]),
                mask_thresholds=tuple(
                    float(t) for t in cal.get("mask_thresholds") or [cal["mask_threshold"]] * len(outputs.classes)
                ),
                landmark_threshold=float(cal["landmark_threshold"]),
                low_confidence=float(cal["low_confidence"]),
                nms_radius_px=float(cal["nms_radius_px"]),
                plants=int(cal.get("plants", 5)),
            )
            if len(calibration.seg_temperature) != len(outputs.classes):
                raise BundleError("calibration.seg_temperature needs one value per class")
            if len(calibration.mask_thresholds) != len(outputs.classes):
                raise BundleError("calibration.mask_thresholds needs one value per class")
            if len(calibration.landmark_temperature) != len(outputs.landmark_kinds):
                raise BundleError("calibration.landmark_temperature needs one value per landmark kind")
            return cls(d, str(d["name"]), str(d["version"]), InputSpec.from_dict(d["input"]), outputs, calibration)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"malformed manifest: {exc!r}") from exc


def load_manifest(bundle: Path) -> Manifest:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest.json; is {bundle} a model bundle folder?")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from exc
    return Manifest.from_dict(data)


def verify_files(bundle: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists with its size and sha256."""
    files = manifest.raw.get("files") or {}
    if "model.onnx" not in files:
        raise BundleError(f"{bundle}: manifest lists no model.onnx")
    for rel, meta in files.items():
        path = Path(bundle) / rel
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != int(meta["size"]):
            raise BundleError(f"{path}: size {path.stat().st_size} bytes, manifest says {meta['size']}")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise BundleError(f"{path}: sha256 {digest[:12]}... does not match the manifest ({meta['sha256'][:12]}...)")


def open_bundle(bundle: Path | str, *, verify: bool = True) -> Manifest:
    """The manifest of a bundle folder, after checking every file against it."""
    manifest = load_manifest(Path(bundle))
    if verify:
        verify_files(Path(bundle), manifest)
    return manifest


def file_entries(bundle: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in a bundle folder except the manifest and its signature."""
    out = {}
    for path in sorted(Path(bundle).rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if path.is_file() and rel not in (MANIFEST, MANIFEST + ".sig"):
            out[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return out


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json last and atomically: a bundle with a manifest is complete."""
    Manifest.from_dict(manifest)  # refuse to write what could not be read back
    tmp = Path(bundle) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False))
    os.replace(tmp, Path(bundle) / MANIFEST)
