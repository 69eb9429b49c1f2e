"""POST /v1/predict answers with what the serving pipeline computes, in the predict JSON,
for every image form a lab sends (PNG, JPEG, TIFF; 8/16-bit grey or RGB), with masks and
an overlay inline when asked."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from hades_perception.inference.loading import load_pipeline
from tests.api.conftest import PLATES, Server
from tests.bundles import SHIPPED

PREDICT_FIELDS = {"image", "model", "landmarks", "plants", "certainty", "calibration", "monitoring", "timing_ms"}


def png_image(b64: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a PNG"
    return image


def test_a_plate_gets_the_predict_json_naming_the_served_model(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"))
    assert r.status == 200, r
    body = r.json()
    assert set(body) == PREDICT_FIELDS
    assert body["model"]["name"] == "hades-seedlings" and body["model"]["version"]
    assert body["image"] == {"width": 1050, "height": 752}
    assert len(body["plants"]) == 5 and {"primary_root_length_px", "lateral_root_count"} <= set(body["plants"][0])
    assert {"per_class", "per_plant", "low_confidence"} <= set(body["certainty"])
    assert body["timing_ms"]["total"] > 0
    assert "pipeline;dur=" in r.headers["Server-Timing"]


def test_the_answer_is_what_the_pipeline_computes_in_process(bundle_server: Server):
    bgr = cv2.imread(str(PLATES[1]))
    assert bgr is not None
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    # What the server serves: precision auto, so the int8 variant, which passed its gate.
    expected = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), threads=1)(image).to_json()
    r = bundle_server.predict(PLATES[1].read_bytes(), bundle_server.key("predict"))
    assert r.status == 200, r
    got = r.json()
    assert got["landmarks"], "the shipped model finds tips on this plate"
    for field in ("model", "landmarks", "plants", "certainty", "calibration"):
        assert got[field] == expected[field], field


def test_masks_come_as_base64_pngs_at_image_size_when_asked(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"), "?masks=true")
    assert r.status == 200, r
    masks = r.json()["masks"]
    assert set(masks) == {"root", "shoot", "seed", "occluded_root"}
    for b64 in masks.values():
        mask = png_image(b64)
        assert mask.shape == (752, 1050) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
    assert png_image(masks["root"]).any(), "the shipped model finds roots on this plate"


def test_the_overlay_comes_as_a_base64_png_when_asked(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"), "?overlay=true")
    assert r.status == 200, r
    body = r.json()
    overlay = png_image(body["overlay"])
    assert overlay.ndim == 3 and overlay.shape[2] == 3 and overlay.shape[0] > 100
    assert "masks" not in body


def test_without_asking_there_are_neither_masks_nor_an_overlay(bundle_server: Server, plate_png: bytes):
    body = bundle_server.predict(plate_png, bundle_server.key("predict"), "?masks=false").json()
    assert "masks" not in body and "overlay" not in body


def _encoded(kind: str) -> tuple[bytes, str]:
    bgr = cv2.imread(str(PLATES[0]))
    assert bgr is not None
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    forms: dict[str, tuple[str, np.ndarray, str]] = {
        "8-bit grey PNG": (".png", grey, "image/png"),
        "16-bit RGB PNG": (".png", bgr.astype(np.uint16) * 257, "image/png"),
        "16-bit grey TIFF": (".tiff", grey.astype(np.uint16) * 257, "image/tiff"),
        "8-bit RGB TIFF": (".tiff", bgr, "image/tiff"),
        "JPEG": (".jpg", bgr, "image/jpeg"),
    }
    suffix, image, ctype = forms[kind]
    ok, buf = cv2.imencode(suffix, image)
    assert ok
    return buf.tobytes(), ctype


@pytest.mark.parametrize("kind", ["8-bit grey PNG", "16-bit RGB PNG", "16-bit grey TIFF", "8-bit RGB TIFF", "JPEG"])
def test_png_jpeg_and_tiff_of_8_or_16_bit_grey_or_rgb_are_predicted(store_server: Server, kind: str):
    data, ctype = _encoded(kind)
    r = store_server.predict(data, store_server.key("predict"), filename=f"plate.{ctype.split('/')[1]}", ctype=ctype)
    assert r.status == 200, r
    assert r.json()["image"] == {"width": 1050, "height": 752}


def test_the_part_s_declared_content_type_is_not_trusted_the_bytes_decide(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"), filename="x.bin", ctype="application/pdf")
    assert r.status == 200, r
