"""A zip upload is read without trusting it: a zip bomb, a member that holds more than
it declares, a path that climbs out, too many members or something that is not a zip is
refused with a 4xx that says what was wrong, before any job or dataset exists, and the
server goes on serving. The limits are api/archives.py's (a batch: 1000 members, 256 MB
each, 2 GB in all, uncompressed)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from typing import Any

import pytest

from tests.api.conftest import PLATES, Reply, Server
from tests.api.zips import declaring, zip_bomb, zip_of

MB = 2**20
PNG_BYTES = PLATES[0].read_bytes()


def send(server: Server, archive: bytes, route: str = "/v1/predict/batch") -> Reply:
    field = "archive"
    return server.post_files(route, server.key("predict", "train"), {field: ("upload.zip", archive, "application/zip")})


def refused(server: Server, r: Reply, status: int, *words: str) -> dict[str, Any]:
    assert r.status == status, r
    body: dict[str, Any] = r.json()
    for word in words:
        assert word in body["detail"], body
    server.assert_still_serving()
    return body


def no_new_jobs_or_staging_left(server: Server, before: set[str]) -> None:
    jobs = server.work_dir / "jobs"
    assert {p.name for p in jobs.iterdir()} - {".staging"} == before
    assert not any((jobs / ".staging").iterdir()), "the staged members were removed"


def job_folders(server: Server) -> set[str]:
    return {p.name for p in (server.work_dir / "jobs").iterdir()} - {".staging"}


# --- sizes ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zip_bomb("plate.png", 300)  # 300 MB of zeros in about 1.4 MB


def test_a_zip_bomb_is_refused_by_its_declared_size_before_anything_is_extracted(jobs_server: Server, bomb: bytes):
    before = job_folders(jobs_server)
    assert len(bomb) < 2 * MB
    r = send(jobs_server, bomb)
    refused(jobs_server, r, 413, "'plate.png'", "300.0 MB uncompressed", "zip bomb", "nothing was extracted")
    no_new_jobs_or_staging_left(jobs_server, before)


def test_members_that_together_declare_more_than_the_total_are_refused(jobs_server: Server):
    names = [f"plate{i}.png" for i in range(9)]
    archive = declaring(zip_of(dict.fromkeys(names, PNG_BYTES)), dict.fromkeys(names, 250 * MB))  # 2.2 GB
    refused(jobs_server, send(jobs_server, archive), 413, "2048 MB uncompressed together", "zip bomb")


def test_a_member_holding_more_than_it_declares_is_never_read_past_its_declaration(jobs_server: Server):
    archive = declaring(zip_bomb("plate.png", 50), {"plate.png": 1000})  # says 1000 bytes, holds 50 MB
    refused(jobs_server, send(jobs_server, archive), 400, "'plate.png' is corrupt", "do not match its header")


def test_a_zip_bomb_is_refused_as_a_dataset_too(jobs_server: Server, bomb: bytes):
    r = send(jobs_server, bomb, "/v1/datasets")
    refused(jobs_server, r, 413, "'plate.png'", "zip bomb")


# --- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x.png", "plates/../../x.png", "/etc/x.png", "C:/x.png", "\\\\host\\x.png"])
def test_a_member_path_that_climbs_out_is_refused(jobs_server: Server, name: str):
    before = job_folders(jobs_server)
    archive = zip_of({"plate.png": PNG_BYTES, name: PNG_BYTES})
    refused(jobs_server, send(jobs_server, archive), 400, "climbs out of the archive", "nothing was extracted")
    no_new_jobs_or_staging_left(jobs_server, before)


def test_a_climbing_member_in_a_dataset_is_refused_and_nothing_is_kept(jobs_server: Server):
    datasets = jobs_server.work_dir / "datasets"
    before = set(datasets.glob("ds-*"))
    archive = zip_of({"images/a.png": PNG_BYTES, "masks/../../../evil.tif": b"x"})
    refused(jobs_server, send(jobs_server, archive, "/v1/datasets"), 400, "climbs out")
    assert not (jobs_server.work_dir / "evil.tif").exists()
    assert set(datasets.glob("ds-*")) == before


def test_a_member_named_twice_is_refused(jobs_server: Server):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.png", PNG_BYTES)
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("a.png", b"something else")
    refused(jobs_server, send(jobs_server, buf.getvalue()), 400, "'a.png' is in the zip twice")


# --- count and kind ---------------------------------------------------------------------------------
def test_too_many_members_are_refused_from_the_directory_record(jobs_server: Server):
    archive = zip_of({f"{i:04d}.png": b"" for i in range(1001)})
    refused(jobs_server, send(jobs_server, archive), 413, "1001 members", "at most 1000 members")


def test_a_tar_gz_is_not_a_zip(jobs_server: Server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("plate.png")
        info.size = len(PNG_BYTES)
        tar.addfile(info, io.BytesIO(PNG_BYTES))
    refused(jobs_server, send(jobs_server, buf.getvalue()), 415, "not a zip file", "send a .zip")


def test_an_image_sent_as_the_archive_is_not_a_zip(jobs_server: Server):
    refused(jobs_server, send(jobs_server, PNG_BYTES, "/v1/datasets"), 415, "not a zip file")


def test_a_cut_off_zip_is_not_a_zip(jobs_server: Server):
    archive = zip_of({"plate.png": PNG_BYTES})
    refused(jobs_server, send(jobs_server, archive[: len(archive) // 2]), 415, "not a zip file")


def test_gzip_alone_is_not_a_zip_either(jobs_server: Server):
    refused(jobs_server, send(jobs_server, gzip.compress(PNG_BYTES)), 415, "not a zip file")
