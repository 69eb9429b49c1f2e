"""`hades-train monitor`: frames like a model's reference give no drift; frames of a
single-knob drift preset give drift, naming the signals; images and the predict JSONs
made from them give the same verdict; the report is a JSON for machines and an HTML
page for people, and the exit code does not carry the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.prediction_files import write_prediction
from hades_training.cli import main

W, H = 1050, 752  # a quarter of a Hades frame


@pytest.fixture(scope="module")
def bundle(monitored_bundle: Path) -> Path:
    return monitored_bundle


def plates(tmp_path_factory: pytest.TempPathFactory, difficulty: str) -> Path:
    from hades_training.synth.generate import generate

    out = tmp_path_factory.mktemp(difficulty)
    generate(out, count=20, seed=23, difficulty=difficulty, width=W, height=H)
    return out / "images"


@pytest.fixture(scope="module")
def like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plates(tmp_path_factory, "normal")


@pytest.fixture(scope="module")
def dark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plates(tmp_path_factory, "drift_dark")


def run(bundle: Path, current: Path, out: Path) -> dict:
    assert main(["monitor", "--reference", str(bundle), "--current", str(current), "--out", str(out)]) == 0
    return json.loads((out / "drift.json").read_text())


def test_plates_like_the_reference_show_no_drift(bundle: Path, like: Path, tmp_path: Path):
    doc = run(bundle, like, tmp_path)
    assert doc["drift_detected"] is False and doc["frames"] == 20, [s for s in doc["signals"] if s["drifted"]]
    assert doc["enough_frames"] is True
    assert doc["model"] == {"name": "hades-seedlings", "version": "0.0.2-test"}
    assert {"name", "statistic", "value", "threshold", "drifted"} <= set(doc["signals"][0])


def test_dark_low_contrast_plates_drift_and_the_report_names_the_signals(bundle: Path, dark: Path, tmp_path: Path):
    doc = run(bundle, dark, tmp_path)
    drifted = {s["name"] for s in doc["signals"] if s["drifted"]}
    assert doc["drift_detected"] is True and {"input.p50", "input.contrast"} <= drifted
    assert doc["worst_signal"] in drifted and doc["level"] == "ERROR"
    p50 = next(s for s in doc["signals"] if s["name"] == "input.p50")
    assert p50["current_median"] < p50["reference_median"] - 30 and p50["value"] > p50["threshold"]
    page = (tmp_path / "drift.html").read_text()
    assert "drift detected" in page and "input.p50" in page and "<svg" in page


def test_predict_jsons_give_the_verdict_their_images_give(bundle: Path, dark: Path, tmp_path: Path):
    import cv2

    pipe = Pipeline.from_bundle(bundle, ("CPUExecutionProvider",))
    jsons = tmp_path / "predictions"
    for f in sorted(dark.glob("*.png"))[:20]:
        rgb = np.ascontiguousarray(cv2.imread(str(f))[:, :, ::-1])  # type: ignore[index]
        write_prediction(jsons, f.stem, pipe(rgb))
    from_json = run(bundle, jsons, tmp_path / "from_json")
    from_images = run(bundle, dark, tmp_path / "from_images")
    pairs = list(zip(from_json["signals"], from_images["signals"], strict=True))
    assert [a["drifted"] for a, _ in pairs] == [b["drifted"] for _, b in pairs], pairs
    assert from_json["signals"][1]["value"] == pytest.approx(from_images["signals"][1]["value"])


def test_a_bundle_exported_before_monitoring_is_refused_with_the_reason(
    bundle: Path, like: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from tests.bundles import new_version

    old = new_version(tmp_path / "old", "0.0.1-old", src=bundle, reference_stats={"input": {}, "prediction": {}})
    assert main(["monitor", "--reference", str(old), "--current", str(like), "--out", str(tmp_path / "r")]) == 2
    assert "no reference signals" in caplog.text and "re-export" in caplog.text
