"""Which prebuilt TensorRT engine a bundle serves on a machine: the one whose key names
this GPU model, TensorRT version and precision, and only a file the manifest checks.
Without TensorRT (this machine) there is no key, and ONNX Runtime serves. Running a
chosen engine needs TensorRT and a CUDA GPU and is skipped otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hades_perception.bundle import MANIFEST, BundleError, file_entries, open_bundle, write_manifest
from hades_perception.golden import check_golden
from hades_perception.pipeline import Pipeline
from hades_perception.tensorrt_engine import (
    TensorRTEngine,
    build_engine,
    engine_key,
    local_engine_key,
    prebuilt_engine,
    tensorrt_available,
)
from tests.bundles import new_version

ORIN = engine_key("NVIDIA Jetson AGX Orin", "10.3.0", "fp16")
H100 = engine_key("NVIDIA H100 80GB HBM3", "10.13.3", "fp16")


def with_engines(bundle: Path, engines: dict[str, str], checked: bool = True) -> Path:
    """`bundle` shipping a (dummy) plan file per key, listed in the manifest's engines,
    and under files unless `checked` is False."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    for key, rel in engines.items():
        (bundle / rel).parent.mkdir(exist_ok=True)
        (bundle / rel).write_bytes(key.encode() * 100)
    manifest["files"] = file_entries(bundle)
    if not checked:
        for rel in engines.values():
            manifest["files"].pop(rel)
    manifest["engines"] = {key: {"file": rel, "precision": "fp16"} for key, rel in engines.items()}
    write_manifest(bundle, manifest)
    return bundle


def test_engine_keys_name_the_gpu_model_the_tensorrt_version_and_the_precision() -> None:
    assert ORIN == "nvidia-jetson-agx-orin_trt10.3.0_fp16"
    assert H100 == "nvidia-h100-80gb-hbm3_trt10.13.3_fp16"


def test_the_engine_for_this_machines_key_is_chosen_and_no_other(tmp_path: Path) -> None:
    bundle = with_engines(
        new_version(tmp_path / "v", "9.9.9"), {ORIN: f"engines/{ORIN}.plan", H100: f"engines/{H100}.plan"}
    )
    manifest = open_bundle(bundle)  # the engines are checked like every other file
    assert prebuilt_engine(bundle, manifest, ORIN) == bundle / f"engines/{ORIN}.plan"
    assert prebuilt_engine(bundle, manifest, H100) == bundle / f"engines/{H100}.plan"
    assert prebuilt_engine(bundle, manifest, engine_key("NVIDIA Jetson AGX Orin", "10.4.0", "fp16")) is None
    assert prebuilt_engine(bundle, manifest, None) is None  # no TensorRT here: ONNX Runtime serves


def test_an_engine_file_the_manifest_does_not_checksum_is_refused(tmp_path: Path) -> None:
    bundle = with_engines(new_version(tmp_path / "v", "9.9.9"), {ORIN: f"engines/{ORIN}.plan"}, checked=False)
    manifest = open_bundle(bundle)
    with pytest.raises(BundleError, match="not among the files the manifest checks"):
        prebuilt_engine(bundle, manifest, ORIN)


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT and a CUDA GPU are present here")
def test_a_machine_without_tensorrt_has_no_engine_key_and_says_why() -> None:
    key, why = local_engine_key()
    assert key is None
    assert why == tensorrt_available()[1] and why


@pytest.mark.skipif(not tensorrt_available()[0], reason=f"needs TensorRT and a CUDA GPU: {tensorrt_available()[1]}")
def test_an_engine_built_for_this_machine_is_chosen_and_passes_the_bundles_golden_check(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    bundle = new_version(tmp_path / "v", "9.9.9", src=tiny_bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    key, entry = build_engine(
        bundle / "model.onnx",
        bundle / "engines",
        tile=manifest["input"]["tile"],
        input_name=manifest["input"]["tensor"],
    )
    assert key == local_engine_key()[0]
    manifest["engines"] = {key: entry}
    manifest["files"] = file_entries(bundle)
    write_manifest(bundle, manifest)
    checked = open_bundle(bundle)
    plan = prebuilt_engine(bundle, checked, key)
    assert plan is not None
    report = check_golden(bundle, Pipeline(checked, TensorRTEngine(plan, checked.input.tensor)))
    assert report.ok, report.problems
