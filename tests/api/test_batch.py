"""POST /v1/predict/batch takes several images, or one zip of them, and answers at once
with a job; the job predicts them one by one on the served pipeline, reports each image
it cannot take (the batch goes on), and keeps the predict JSONs (without masks) until
the job is pruned."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import PLATES, Reply, Server
from tests.api.zips import zip_of

PNG = "image/png"


def started(r: Reply) -> str:
    assert r.status == 202, r
    body = r.json()
    assert body["status_url"] == f"/v1/jobs/{body['job']}" and body["kind"] == "batch"
    job: str = body["job"]
    return job


def by_item(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["item"]: r for r in results}


# --- what a batch gives --------------------------------------------------------------------
def test_several_images_are_predicted_as_one_job_with_a_predict_json_each(jobs_server: Server):
    key = jobs_server.key("predict")
    files = [("images", (p.name, p.read_bytes(), PNG)) for p in PLATES]
    job = jobs_server.wait_job(started(jobs_server.post_files("/v1/predict/batch", key, files)), key)
    assert job["status"] == "done", job
    assert job["counts"] == {"images": 2, "predicted": 2, "failed": 0} and job["errors"] == []
    results = by_item(job["results"])
    assert list(results) == [p.name for p in PLATES]
    for result in results.values():
        assert result["model"]["version"] == "0.0.1-test"
        assert result["image"] == {"width": 1050, "height": 752}
        assert "masks" not in result and "overlay" not in result
        assert result["monitoring"], "the drift signals are in each result"


def test_the_batch_answers_what_single_requests_answer(jobs_server: Server):
    key = jobs_server.key("predict")
    single = jobs_server.predict(PLATES[1].read_bytes(), key).json()
    job = jobs_server.wait_job(
        started(jobs_server.post_files("/v1/predict/batch", key, [("images", ("b.png", PLATES[1].read_bytes(), PNG))])),
        key,
    )
    (result,) = job["results"]
    assert result["plants"] == single["plants"] and result["landmarks"] == single["landmarks"]


def test_a_zip_of_images_is_a_batch_whose_items_are_named_by_their_paths_in_it(jobs_server: Server):
    key = jobs_server.key("predict")
    archive = zip_of({f"plates/{p.name}": p.read_bytes() for p in PLATES} | {"plates/": b""})
    job = jobs_server.wait_job(
        started(jobs_server.post_files("/v1/predict/batch", key, {"archive": ("p.zip", archive, "application/zip")})),
        key,
    )
    assert job["status"] == "done" and job["args"] == {"images": 2, "source": "archive"}
    assert set(by_item(job["results"])) == {f"plates/{p.name}" for p in PLATES}


def test_a_bad_image_is_reported_with_its_name_and_the_others_are_still_predicted(jobs_server: Server):
    key = jobs_server.key("predict")
    good = PLATES[0].read_bytes()
    files = [
        ("images", ("notes.txt", b"plant 1: 23 mm\n", "text/plain")),
        ("images", ("good.png", good, PNG)),
        ("images", ("cut.png", good[: len(good) // 2], PNG)),
    ]
    job = jobs_server.wait_job(started(jobs_server.post_files("/v1/predict/batch", key, files)), key)
    assert job["status"] == "done"
    assert job["counts"] == {"images": 3, "predicted": 1, "failed": 2}
    errors = {e["item"]: e for e in job["errors"]}
    assert "not a PNG, JPEG or TIFF" in errors["notes.txt"]["detail"]
    assert "truncated or corrupt" in errors["cut.png"]["detail"]
    assert list(by_item(job["results"])) == ["good.png"]
    log = jobs_server.request("GET", f"/v1/jobs/{job['job']}/log?tail=3", key).json()
    assert len(log["lines"]) == 3 and log["lines"][0].startswith("notes.txt: refused (415")


def test_the_job_s_folder_keeps_the_results_and_not_the_images(jobs_server: Server):
    key = jobs_server.key("predict")
    job = jobs_server.wait_job(
        started(jobs_server.post_files("/v1/predict/batch", key, [("images", ("a.png", PLATES[0].read_bytes(), PNG))])),
        key,
    )
    folder = jobs_server.work_dir / "jobs" / job["job"]
    assert [p.name for p in (folder / "out").iterdir()] == ["0000_a.json"]
    assert not (folder / "inputs").exists()


# --- what a batch refuses at once ------------------------------------------------------------
def test_files_and_a_zip_together_are_refused(jobs_server: Server):
    png = PLATES[0].read_bytes()
    files = [("images", ("a.png", png, PNG)), ("archive", ("a.zip", zip_of({"a.png": png}), "application/zip"))]
    r = jobs_server.post_files("/v1/predict/batch", jobs_server.key("predict"), files)
    assert r.status == 422 and "not both" in r.json()["detail"], r


def test_a_batch_without_images_is_refused(jobs_server: Server):
    r = jobs_server.post_files("/v1/predict/batch", jobs_server.key("predict"), {"image": ("a.png", b"x", PNG)})
    assert r.status == 422 and "'images'" in r.json()["detail"] and "image" in r.json()["detail"], r


def test_a_batch_needs_the_predict_scope_and_so_does_reading_its_job(jobs_server: Server):
    key = jobs_server.key("predict")
    r = jobs_server.post_files("/v1/predict/batch", jobs_server.key("read", "train"), {"images": ("a.png", b"x", PNG)})
    assert r.status == 403 and "'predict'" in r.json()["detail"]
    job = started(jobs_server.post_files("/v1/predict/batch", key, {"images": ("a.png", PLATES[0].read_bytes(), PNG)}))
    r = jobs_server.request("GET", f"/v1/jobs/{job}", jobs_server.key("read", "train"))
    assert r.status == 403 and "a batch job" in r.json()["detail"], r
    assert jobs_server.wait_job(job, key)["status"] == "done"
