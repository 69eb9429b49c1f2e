"""Prediction files are the form every adapter writes and evaluation reads: `predict`
writes them, they read back as the same Prediction, and `hades-train score` scores
them against the dataset the images came from."""

from __future__ import annotations

import json
from pathlib import Path

from hades_perception.cli import main as perception_cli
from hades_perception.inference.prediction_files import read_prediction, read_predictions
from hades_training.cli import main as train_cli


def test_predict_writes_files_that_read_back_as_the_same_prediction(
    tiny_bundle: Path, small_dataset: Path, tmp_path: Path
):
    images = small_dataset / "val" / "images"
    assert perception_cli(["predict", str(images), "--model", str(tiny_bundle), "--out", str(tmp_path)]) == 0
    preds = read_predictions(tmp_path)
    assert set(preds) == {p.stem for p in images.glob("*.png")}
    for stem, pred in preds.items():
        written = json.loads((tmp_path / f"{stem}.json").read_text())
        again = pred.to_json()
        for key in ("image", "model", "landmarks", "calibration"):
            assert again[key] == written[key], key
        assert again["certainty"]["per_class"] == written["certainty"]["per_class"]
        assert pred.masks["root"].shape == (written["image"]["height"], written["image"]["width"])
        assert pred.classes == tuple(written["classes"])


def test_score_rates_prediction_files_against_the_ground_truth(tiny_bundle: Path, small_dataset: Path, tmp_path: Path):
    preds, scores = tmp_path / "preds", tmp_path / "scores.json"
    assert (
        perception_cli(
            ["predict", str(small_dataset / "val" / "images"), "--model", str(tiny_bundle), "--out", str(preds)]
        )
        == 0
    )
    assert (
        train_cli(["score", "--predictions", str(preds), "--truth", str(small_dataset / "val"), "--out", str(scores)])
        == 0
    )
    s = json.loads(scores.read_text())
    assert s["images"] == 2 and 0.0 <= s["segmentation"]["root"]["iou"] <= 1.0
    assert s["calibration"]["pixel_ece"] is None  # files hold masks, not probabilities


def test_score_says_so_when_no_file_matches_the_dataset(small_dataset: Path, tmp_path: Path):
    assert train_cli(["score", "--predictions", str(tmp_path), "--truth", str(small_dataset / "val")]) == 2


def test_a_mask_missing_from_the_files_is_a_clear_error(tiny_bundle: Path, small_dataset: Path, tmp_path: Path):
    import pytest

    image = sorted((small_dataset / "val" / "images").glob("*.png"))[0]
    assert perception_cli(["predict", str(image), "--model", str(tiny_bundle), "--out", str(tmp_path)]) == 0
    (tmp_path / f"{image.stem}_seed_mask.png").unlink()
    with pytest.raises(ValueError, match=r"seed_mask\.png: missing"):
        read_prediction(tmp_path / f"{image.stem}.json")


def test_a_dish_cut_by_the_image_edge_reads_back_with_the_side_it_runs_off(
    tiny_bundle: Path, small_dataset: Path, tmp_path: Path
):
    import cv2

    image = cv2.imread(str(sorted((small_dataset / "val" / "images").glob("*.png"))[0]))
    assert image is not None
    cv2.imwrite(str(tmp_path / "cut.png"), image[:, : int(0.6 * image.shape[1])])
    out = tmp_path / "out"
    assert perception_cli(["predict", str(tmp_path / "cut.png"), "--model", str(tiny_bundle), "--out", str(out)]) == 0
    written = json.loads((out / "cut.json").read_text())
    assert written["calibration"]["dish_cut"] == ["right"]
    pred = read_prediction(out / "cut.json")
    assert pred.dish is not None and pred.dish.cut == ("right",)
    assert pred.to_json()["calibration"] == written["calibration"]
