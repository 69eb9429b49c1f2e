"""Real `hades-perception serve` processes on 127.0.0.1 and free ports, and a small
HTTP client (http.client: what a lab script would use) to talk to them.

Servers, each started once per session and stopped at its end:
- store_server: follows channel production of a local model store that holds two
  versions of the tiny test bundle (0.0.1-test served, 0.0.2-test with a record).
- bundle_server: the shipped model from its bundle folder, no store; a 2 MB upload
  limit, CORS open to one origin, no rate limit (the property-based test uses it).
- rate_limited_server: the tiny bundle at 3 requests a minute per key.
- jobs_server: follows channel production of a store of its own holding the tiny
  bundle (so pipeline jobs have a store), no rate limit, an 8 MB upload limit; its
  work dir (jobs, datasets) is <folder>/var/api.
- drift_server: the tiny bundle, no rate limit; only test_monitoring.py predicts on it,
  so its drift window holds that module's frames and no others.
Each test makes its own keys (written to the server's keys file, which the server
re-reads), so per-key limits and revocations never leak from one test to another.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from hades_perception.api.keys import KeyFile
from hades_perception.models.store import ModelStore
from tests.azurite import free_port
from tests.bundles import NOT_ABOUT_SPEED_MS, SHIPPED, new_version
from tests.conftest import REPO

ROS_TEST_DATA = REPO / "ros2_ws" / "src" / "hades_perception_ros" / "test" / "data"
TINY = ROS_TEST_DATA / "bundle"  # hades-seedlings 0.0.1-test: a few training steps, fast
PLATES = sorted((ROS_TEST_DATA / "plates" / "images").glob("*.png"))  # 1050x752 synthetic plates
MODEL = "hades-seedlings"
ALL_SCOPES = ("read", "predict", "train", "promote")
_names = itertools.count()


def executable() -> list[str]:
    """The installed `hades-perception` beside this Python (what a user runs)."""
    script = Path(sys.executable).parent / "hades-perception"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hades_perception.cli"]


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.body[:500]!r}"


Part = tuple[str, tuple[str, bytes, str]]  # field, (filename, bytes, content type)


def multipart(files: dict[str, tuple[str, bytes, str]] | list[Part]) -> tuple[bytes, str]:
    """A multipart/form-data body: field -> (filename, bytes, content type); a list of
    (field, file) pairs repeats a field."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, (filename, data, ctype) in files.items() if isinstance(files, dict) else files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        parts.append(head.encode() + f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """A running `hades-perception serve`, its keys file and its log."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.keys = KeyFile(folder / "api-keys.json")
        self.log_path = folder / "server.log"
        cmd = [*executable(), "serve", "--port", str(self.port), "--keys", str(self.keys.path)]
        cmd += ["--providers", "CPUExecutionProvider", "--threads", "1", *args]
        env = {**os.environ, "HADES_DATA_DIR": str(folder / "var")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/v2/health/ready", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the server was not ready in {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def key(self, *scopes: str) -> str:
        """A new key with these scopes (all of them by default), under a new name."""
        return self.keys.create(f"test-{next(_names)}", scopes or ALL_SCOPES)

    # --- HTTP -----------------------------------------------------------------------------
    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        key: str | None = None,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        head = dict(headers or {})
        if key is not None:
            head["Authorization"] = f"Bearer {key}"
        if json_body is not None:
            body, head["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=head)
            r = conn.getresponse()
            return Reply(r.status, r.headers, r.read())
        finally:
            conn.close()

    def predict(
        self, data: bytes, key: str, query: str = "", filename: str = "plate.png", ctype: str = "image/png"
    ) -> Reply:
        body, content_type = multipart({"image": (filename, data, ctype)})
        return self.request("POST", f"/v1/predict{query}", key, body=body, headers={"Content-Type": content_type})

    def post_files(self, path: str, key: str, files: dict[str, tuple[str, bytes, str]] | list[Part]) -> Reply:
        body, content_type = multipart(files)
        return self.request("POST", path, key, body=body, headers={"Content-Type": content_type})

    def wait_job(self, job: str, key: str, timeout: float = 60.0) -> dict[str, Any]:
        """The job's record once it has finished (done, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.request("GET", f"/v1/jobs/{job}", key)
            assert r.status == 200, r
            doc: dict[str, Any] = r.json()
            if doc["status"] not in ("queued", "running"):
                return doc
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job} still {doc['status']} after {timeout} s: {doc}")
            time.sleep(0.1)

    @property
    def work_dir(self) -> Path:
        return self.folder / "var" / "api"

    def assert_still_serving(self) -> None:
        """A good plate is still predicted (after a request the server refused)."""
        r = self.predict(PLATES[0].read_bytes(), self.key("predict"))
        assert r.status == 200, r
        assert r.json()["image"] == {"width": 1050, "height": 752}


@pytest.fixture(scope="session")
def plate_png() -> bytes:
    return PLATES[0].read_bytes()


def _serve(folder: Path, *args: str) -> Iterator[Server]:
    server = Server(folder, *args)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def two_version_store(root: Path) -> ModelStore:
    """A local store under `root`: the tiny bundle as 0.0.1-test (on production) and
    0.0.2-test (with a pipeline record), as a retraining pipeline would leave them."""
    store = ModelStore.open(root / "store")
    store.publish(TINY)
    store.publish(new_version(root / "v2", "0.0.2-test", src=TINY))
    store.write_record(
        MODEL,
        "0.0.2-test",
        "pipeline",
        {
            "decision": "candidate",
            "production": "0.0.1-test",
            "gates": [{"gate": "root_iou", "value": 0.61, "bound": 0.5, "passed": True}],
        },
    )
    store.promote(MODEL, "0.0.1-test", "production", "first version", by="test-setup")
    shutil.rmtree(root / "v2")
    return store


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return two_version_store(tmp_path_factory.mktemp("api-store"))


@pytest.fixture(scope="session")
def store_server(tmp_path_factory: pytest.TempPathFactory, model_store: ModelStore) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("store-server")
    yield from _serve(
        folder,
        *("--store", model_store.blobs.describe(), "--model", MODEL, "--channel", "production"),
        *("--bundle", str(TINY), "--poll-period", "0.3", "--cache-dir", str(folder / "cache")),
        *("--latency-budget-ms", str(NOT_ABOUT_SPEED_MS), "--rate-limit", "600/min"),
    )


CORS_ORIGIN = "http://lab.example.org"


@pytest.fixture(scope="session")
def bundle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("bundle-server")
    yield from _serve(
        folder, "--bundle", str(SHIPPED), "--max-upload-mb", "2", "--cors-origin", CORS_ORIGIN, "--rate-limit", "off"
    )


@pytest.fixture(scope="session")
def rate_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("rate-limited"), "--bundle", str(TINY), "--rate-limit", "3/min")


@pytest.fixture(scope="session")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("jobs-server")
    store = ModelStore.open(folder / "store")
    store.publish(TINY)
    store.promote(MODEL, "0.0.1-test", "production", "first version", by="test-setup")
    yield from _serve(
        folder,
        *("--store", store.blobs.describe(), "--model", MODEL, "--channel", "production"),
        *("--bundle", str(TINY), "--poll-period", "5", "--cache-dir", str(folder / "cache")),
        *("--latency-budget-ms", str(NOT_ABOUT_SPEED_MS), "--rate-limit", "off", "--max-upload-mb", "8"),
    )


@pytest.fixture(scope="session")
def drift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("drift-server"), "--bundle", str(TINY), "--rate-limit", "off")
