"""POST /v1/datasets takes labelled data as a zip in the Hades layout and keeps only what
training can read: each item's image decodes within the pixel limit, and each mask is
there, decodes and has the image's size. Bad items are listed with the reason; when
nothing is usable the answer is 422 and nothing is kept."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from hades_perception.api import datasets
from tests.api.conftest import ROS_TEST_DATA, Server
from tests.api.test_bad_input import blank_png
from tests.api.zips import folder_files, zip_of

PLATES_DIR = ROS_TEST_DATA / "plates"  # images/, masks/, landmarks/ and synth.json; no splits
STEMS = sorted(p.stem for p in (PLATES_DIR / "images").glob("*.png"))


def upload(server: Server, files: dict[str, bytes], key: str | None = None) -> Any:
    archive = zip_of(files)
    return server.post_files(
        "/v1/datasets", key or server.key("train"), {"archive": ("data.zip", archive, "application/zip")}
    )


def tif(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".tif", np.zeros((height, width), np.uint8))
    assert ok
    return buf.tobytes()


def test_the_required_masks_are_those_the_training_reader_requires():
    hades_folder = pytest.importorskip("hades_training.data.hades_folder", reason="the training package is not here")
    assert set(datasets.REQUIRED_MASKS) == set(hades_folder.REQUIRED)
    assert set(datasets.REQUIRED_MASKS + datasets.OPTIONAL_MASKS) == set(hades_folder.HADES_CLASSES)


# --- accepted -------------------------------------------------------------------------------
def test_a_hades_folder_is_kept_with_its_items_and_listed(jobs_server: Server):
    key = jobs_server.key("train")
    r = upload(jobs_server, folder_files(PLATES_DIR, "plates/"), key)  # zipped as a folder
    assert r.status == 201, r
    record = r.json()
    assert record["items"] == 2 and record["splits"] == {"": 2} and record["rejected"] == []
    assert record["ignored_files"] == ["plates/synth.json"]
    kept = jobs_server.work_dir / "datasets" / record["dataset"]
    assert sorted(p.stem for p in (kept / "images").iterdir()) == STEMS
    assert len(list((kept / "masks").iterdir())) == 8 and len(list((kept / "landmarks").iterdir())) == 2
    listed = jobs_server.request("GET", "/v1/datasets", key).json()["datasets"]
    assert record["dataset"] in [d["dataset"] for d in listed]
    assert jobs_server.request("GET", f"/v1/datasets/{record['dataset']}", key).json() == record


def test_splits_are_kept_as_splits(jobs_server: Server):
    files = folder_files(PLATES_DIR)
    split = {("train/" if STEMS[0] in n else "val/") + n: b for n, b in files.items() if n != "synth.json"}
    r = upload(jobs_server, split)
    assert r.status == 201, r
    assert r.json()["splits"] == {"train": 1, "val": 1}


# --- rejected -------------------------------------------------------------------------------
def test_bad_items_are_rejected_with_their_reason_and_the_good_ones_kept(jobs_server: Server):
    files = folder_files(PLATES_DIR)
    bad, good = STEMS
    files[f"masks/{bad}_shoot_mask.tif"] = tif(100, 80)  # not the image's size
    files["images/cut.png"] = files[f"images/{good}.png"][:5000]
    files["images/lonely.png"] = files[f"images/{good}.png"]  # no masks at all
    files["masks/ghost_root_mask.tif"] = tif(10, 10)  # no image
    r = upload(jobs_server, files)
    assert r.status == 201, r
    record = r.json()
    assert record["items"] == 1
    reasons = {x["item"]: x["reason"] for x in record["rejected"]}
    assert reasons[f"images/{bad}.png"] == "mask shoot is 100x80 px but its image is 1050x752 px"
    assert "truncated or corrupt" in reasons["images/cut.png"]
    assert reasons["images/lonely.png"].startswith("mask masks/lonely_root_mask.tif is missing")
    assert "no image of this stem" in reasons["masks/ghost_root_mask.tif"]
    kept = jobs_server.work_dir / "datasets" / record["dataset"]
    assert [p.stem for p in (kept / "images").iterdir()] == [good]


def test_an_image_over_the_pixel_limit_is_rejected_from_its_header(jobs_server: Server):
    files = folder_files(PLATES_DIR)
    files["images/huge.png"] = blank_png(12000, 9000)
    r = upload(jobs_server, files)
    assert r.status == 201, r
    (rejection,) = r.json()["rejected"]
    assert rejection["item"] == "images/huge.png" and "12000x9000" in rejection["reason"]


def test_a_zip_with_nothing_usable_is_422_with_every_reason_and_nothing_is_kept(jobs_server: Server):
    before = set((jobs_server.work_dir / "datasets").glob("ds-*"))
    stem = STEMS[0]
    files = {f"images/{stem}.png": (PLATES_DIR / "images" / f"{stem}.png").read_bytes()}
    r = upload(jobs_server, files)
    assert r.status == 422, r
    body = r.json()
    assert body["error"] == "no usable data" and "none of the 1 items" in body["detail"]
    assert body["rejected"][0]["item"] == f"images/{stem}.png"
    assert set((jobs_server.work_dir / "datasets").glob("ds-*")) == before


def test_a_zip_without_an_images_folder_is_422_saying_what_the_layout_is(jobs_server: Server):
    r = upload(jobs_server, {"plate.png": b"x", "notes.txt": b"y"})
    assert r.status == 422 and "Hades layout" in r.json()["detail"], r


# --- who may ---------------------------------------------------------------------------------
def test_uploading_and_listing_need_the_train_scope(jobs_server: Server):
    key = jobs_server.key("read", "predict")
    assert upload(jobs_server, folder_files(PLATES_DIR), key).status == 403
    assert jobs_server.request("GET", "/v1/datasets", key).status == 403


def test_a_dataset_is_deleted_on_request(jobs_server: Server):
    key = jobs_server.key("train")
    dataset = upload(jobs_server, folder_files(PLATES_DIR), key).json()["dataset"]
    r = jobs_server.request("DELETE", f"/v1/datasets/{dataset}", key)
    assert r.status == 200 and r.json() == {"dataset": dataset, "deleted": True}
    assert jobs_server.request("GET", f"/v1/datasets/{dataset}", key).status == 404
