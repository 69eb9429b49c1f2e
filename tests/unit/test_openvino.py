"""OpenVINO on x86 CPUs. Its ONNX Runtime build (onnxruntime-openvino) ships the same
`onnxruntime` module as onnxruntime, so it runs in a process of its own: setup.sh
installs it beside the venv, and a process with that folder first on PYTHONPATH runs on
it, as a robot that installed it in place of onnxruntime does (docs/engines.md).

On it the installed `hades-perception predict` serves the shipped bundle's int8 variant
under `auto`, agrees with ONNX Runtime's CPU provider on that same variant, passes the
variant's golden check, and keeps OpenVINO's compiled model in the engine cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_perception.inference.loading import load_pipeline
from tests.bundles import SHIPPED
from tests.conftest import REPO

RUNTIME = Path(os.environ.get("HADES_OPENVINO_RUNTIME", REPO / ".venv" / "openvino-runtime"))
CLI = Path(sys.executable).with_name("hades-perception")

pytestmark = pytest.mark.skipif(
    not (RUNTIME / "onnxruntime").is_dir(),
    reason=f"onnxruntime-openvino is not installed in {RUNTIME} (scripts/setup.sh installs it on x86_64)",
)


def predict(image: Path, out: Path, data: Path, *, openvino: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HADES_DATA_DIR": str(data)}
    env.pop("PYTHONPATH", None)
    if openvino:
        env["PYTHONPATH"] = str(RUNTIME)
    cmd = [str(CLI), "predict", str(image), "--model", str(SHIPPED), "--out", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same plate (the bundle's golden input, a real half-size plate) predicted by
    the installed CLI on OpenVINO and on ONNX Runtime's CPU provider."""
    work = tmp_path_factory.mktemp("openvino")
    image = work / "plate.png"
    shutil.copyfile(SHIPPED / "golden" / "input.png", image)
    found = {}
    for name, openvino in (("openvino", True), ("cpu", False)):
        done = predict(image, work / name, work / f"data-{name}", openvino=openvino)
        assert done.returncode == 0, done.stderr[-3000:]
        (work / name / "log.txt").write_text(done.stderr)
        found[name] = work / name
    found["work"] = work
    return found


def test_auto_serves_the_int8_variant_on_the_openvino_provider(runs: dict[str, Path]):
    log = (runs["openvino"] / "log.txt").read_text()
    assert "on onnxruntime:OpenVINOExecutionProvider:int8" in log
    assert "golden check failed" not in log  # it matched the variant's own golden outputs
    assert "on onnxruntime:CPUExecutionProvider:int8" in (runs["cpu"] / "log.txt").read_text()


def test_openvino_and_onnx_runtime_agree_on_the_int8_variant(runs: dict[str, Path]):
    """Both engines flag the same plants, and every tip a robot would act on (not flagged)
    lies within a pixel of the other's. A flagged plant's tip is a path's end the detector
    did not confirm, a guess that the two engines' int8 rounding may tip either way: with
    hades-seedlings 2026.12.02-111913, plant 1 of this plate (confidence 0.00 in both)
    ends 49 px apart, while the confident tips agree within 0.1 px."""
    ov = json.loads((runs["openvino"] / "plate.json").read_text())
    cpu = json.loads((runs["cpu"] / "plate.json").read_text())
    assert len(ov["plants"]) == len(cpu["plants"]) == 5
    for a, b in zip(ov["plants"], cpu["plants"], strict=True):
        assert a["low_confidence"] == b["low_confidence"], a["plant"]
        assert (a["primary_root_tip"] is None) == (b["primary_root_tip"] is None)
        if a["primary_root_tip"] is not None and not a["low_confidence"]:
            assert np.hypot(*np.subtract(a["primary_root_tip"], b["primary_root_tip"])) < 1.0
    assert any(p["primary_root_tip"] and not p["low_confidence"] for p in ov["plants"])  # something was compared
    for cls in ("root", "shoot", "seed"):
        x, y = (cv2.imread(str(runs[r] / f"plate_{cls}_mask.png"), cv2.IMREAD_GRAYSCALE) for r in ("openvino", "cpu"))
        assert x is not None and y is not None
        assert np.mean((x > 0) == (y > 0)) > 0.999, cls


def test_openvino_keeps_its_compiled_model_in_the_engine_cache_and_the_cpu_provider_writes_none(
    runs: dict[str, Path],
):
    served = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",))
    int8_sha = served.manifest.raw["files"]["model.int8.onnx"]["sha256"]
    cache = runs["work"] / "data-openvino" / "engine-cache" / int8_sha[:16]
    assert [p.name for p in cache.iterdir()] == [
        f"openvino_int8_{served.manifest.input.tile}x{served.manifest.input.tile}"
    ]
    assert any(p.is_file() and p.stat().st_size > 0 for p in cache.rglob("*"))
    assert not (runs["work"] / "data-cpu" / "engine-cache").exists()
