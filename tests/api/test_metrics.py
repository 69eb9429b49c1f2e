"""With --metrics-port the API serves Prometheus metrics on its own port (127.0.0.1):
predictions asked for, made and failed, stage times, the model served and the drift
status of what it served, read at scrape time."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import TINY, Server, _serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    for server in _serve(tmp_path_factory.mktemp("metrics-server"), "--bundle", str(TINY), "--metrics-port", str(port)):
        yield server, port


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_predictions_are_counted_and_timed_and_the_model_is_named(metrics_server: tuple[Server, int], plate_png: bytes):
    server, port = metrics_server
    key = server.key("predict")
    before = scrape(port)
    assert server.predict(plate_png, key).status == 200
    assert server.predict(b"not an image", key).status == 415
    after = scrape(port)

    def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
        return sum(v for _, v in samples.get(name, []))

    assert value(after, "hades_frames_received_total") - value(before, "hades_frames_received_total") == 2
    assert value(after, "hades_frames_processed_total") - value(before, "hades_frames_processed_total") == 1
    assert value(after, "hades_frame_errors_total") - value(before, "hades_frame_errors_total") == 1
    engine = [v for labels, v in after["hades_stage_seconds_count"] if labels["stage"] == "engine"]
    assert engine and engine[0] >= 1
    info = after["hades_model_info"][0][0]
    assert info["version"] == "0.0.1-test" and info["engine"].startswith("onnxruntime")
    assert after["hades_drift_status"][0][1] == 0  # too few frames to judge: OK
    server.assert_still_serving()
