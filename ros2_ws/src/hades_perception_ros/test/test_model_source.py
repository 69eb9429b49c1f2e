"""What the node serves at configure when it follows no store: the bundle folder, on
the precision asked for; a variant that fails the bundle's golden check is refused
(the node then fails to configure and says why) rather than served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from hades_perception.contract.bundle import BundleError, file_entries, write_manifest
from hades_perception.serving import model_source
from hades_perception.serving.worker import InferenceWorker
from hades_perception_ros.params import PARAMS

SHIPPED = REPO / "models" / "hades-seedlings"


def params(**values: Any) -> Any:
    # A golden latency budget these tests never reach: they are about outputs, not speed.
    fixed = {"execution_providers": ["CPUExecutionProvider"], "latency_budget_ms": 600_000.0}
    table = {p.name: p.default for p in PARAMS} | fixed | values
    return table.__getitem__


def with_int8(bundle: Path, dst: Path, variant: Path) -> Path:
    """`bundle` with `variant` as its model.int8.onnx, checksums updated."""
    shutil.copytree(bundle, dst)
    shutil.copyfile(variant, dst / "model.int8.onnx")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["variants"] = {"model.int8.onnx": {"format": "test variant", "gate": {"passed": True, "reasons": []}}}
    manifest["files"] = file_entries(dst)
    write_manifest(dst, manifest)
    return dst


def test_the_bundle_folder_is_served_on_fp32_by_default(bundle: Path):
    worker: InferenceWorker[object] = InferenceWorker(lambda _f: None)
    try:
        slot, follower = model_source.start_serving(params(model_bundle_path=str(bundle)), worker)
        assert follower is None and slot.version == "0.0.1-test"
        assert slot.pipeline.engine.name == "onnxruntime:CPUExecutionProvider"
        assert [a.reason for a in slot.history()] == ["bundle"]
    finally:
        worker.close()


def test_an_int8_variant_that_fails_the_golden_check_is_refused(bundle: Path, tmp_path: Path):
    if not (SHIPPED / "model.onnx").is_file():
        pytest.skip(f"{SHIPPED}: the shipped model is not beside this package")
    # Another network as the "int8" variant: it loads, but computes other outputs.
    odd = with_int8(bundle, tmp_path / "odd", SHIPPED / "model.onnx")
    worker: InferenceWorker[object] = InferenceWorker(lambda _f: None)
    try:
        slot, _ = model_source.start_serving(params(model_bundle_path=str(odd), precision="fp32"), worker)
        assert slot.pipeline.engine.name == "onnxruntime:CPUExecutionProvider"  # fp32 serves
        # Its gate passed, so both pick it, and the golden check refuses it: asked for by name,
        # the node does not start; under auto it serves fp32 instead.
        with pytest.raises(BundleError, match="golden check failed"):
            model_source.start_serving(params(model_bundle_path=str(odd), precision="int8"), worker)
        slot, _ = model_source.start_serving(params(model_bundle_path=str(odd), precision="auto"), worker)
        assert slot.pipeline.engine.name == "onnxruntime:CPUExecutionProvider"
        same = with_int8(bundle, tmp_path / "same", bundle / "model.onnx")  # an "int8" that is the fp32 model
        slot, _ = model_source.start_serving(params(model_bundle_path=str(same), precision="int8"), worker)
        assert slot.pipeline.engine.name == "onnxruntime:CPUExecutionProvider:int8"
    finally:
        worker.close()
