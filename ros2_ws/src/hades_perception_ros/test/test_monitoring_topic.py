"""Monitoring on a running node (its own process, over DDS): every frame's signals go out
on `monitoring` with the frame's header and the model version; /diagnostics carries a
drift status that stays OK on plates like the model's reference and turns to ERROR,
naming the signal, when the frames turn dark and flat; the Prometheus endpoint (when
switched on) serves the node's counters on 127.0.0.1; and each frame's stages reach an
OTLP/HTTP collector as one trace (a real exporter posting to a receiver in this test)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from harness import Probe, image_msg

from hades_perception.monitoring.signals import signals_for
from hades_perception_ros.launching import start_node, stop

pytestmark = pytest.mark.ros
NS = f"/monitoring_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
CLASSES = ("root", "shoot", "seed", "occluded_root")
WINDOW, MIN_FRAMES = 20, 10


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps every span it is sent."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[tuple[str, str, Any]] = []  # service, span name, span
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                    for ss in rs.scope_spans:
                        received.extend((service, span.name, span) for span in ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture(scope="module")
def probe(
    bundle: Path, metrics_port: int, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Probe]:
    folder = tmp_path_factory.mktemp("node")
    params: dict[str, object] = {
        "model_bundle_path": str(bundle),
        "execution_providers": ["CPUExecutionProvider"],
        "diagnostics_period": 0.3,
        "drift_window": WINDOW,
        "drift_min_frames": MIN_FRAMES,
        "metrics_port": metrics_port,
        "tracing_endpoint": collector.endpoint,
    }
    proc: subprocess.Popen[bytes] = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    p = Probe(NS, CAMERA)
    p.wait("model_info", timeout=90)
    p.wait_for_subscriber()
    yield p
    p.close()
    stop(proc)


def send(probe: Probe, frames: list[np.ndarray], first_stamp: int) -> None:
    """One frame at a time, each waited for: the node's queue keeps the newest only."""
    for i, frame in enumerate(frames):
        stamp = first_stamp + i

        def answered(m: Any, s: int = stamp) -> bool:
            return bool(m.header.stamp.sec == s)

        probe.image_pub.publish(image_msg(frame, stamp))
        probe.wait("monitoring", answered, timeout=60)


def drift_status(probe: Probe) -> tuple[int, str]:
    for arr in reversed(probe.messages("diagnostics")):
        for st in arr.status:
            if probe.ns in st.hardware_id and st.name.endswith(": drift"):
                return st.level[0], st.message
    raise AssertionError("no drift status in /diagnostics")


def test_every_frame_has_its_signals_on_the_monitoring_topic(probe: Probe, plate: np.ndarray):
    send(probe, [plate], 100)
    msg = probe.wait("monitoring", lambda m: m.header.stamp.sec == 100)
    plants = probe.wait("plants", lambda m: m.header.stamp.sec == 100)
    assert msg.model_version == plants.model_version == "0.0.1-test" and msg.model_name
    assert list(msg.names) == [s.name for s in signals_for(CLASSES)]
    values = dict(zip(msg.names, msg.values, strict=True))
    assert values["input.dish_found"] == 1.0 and 100 < values["input.p50"] < 250
    assert values["plants.found"] == sum(p.has_primary_root_tip for p in plants.plants)


def test_drift_stays_ok_on_plates_like_the_reference_and_is_an_error_on_dark_flat_ones(probe: Probe, plates_dir: Path):
    paths = sorted((plates_dir / "images").glob("*.png"))
    like = [np.ascontiguousarray(cv2.imread(str(f))[:, :, ::-1]) for f in paths]  # type: ignore[index]
    rng = np.random.default_rng(0)
    # The validation plates, each shifted by a grey level or two: frames of the reference's kind.
    frames = [
        np.clip(like[i % len(like)].astype(np.int16) + rng.integers(-2, 3), 0, 255).astype(np.uint8)
        for i in range(WINDOW)
    ]
    send(probe, frames, 200)
    probe.wait("diagnostics", timeout=5)
    time.sleep(0.7)  # a diagnostics period after the last frame
    level, message = drift_status(probe)
    assert level == 0 and "no drift" in message, message

    dark = [(f.astype(np.float32) * 0.35 + 20).astype(np.uint8) for f in frames]
    send(probe, dark, 400)
    time.sleep(0.7)
    level, message = drift_status(probe)
    assert level == 2 and "input." in message, message
    last = probe.wait("monitoring", lambda m: m.header.stamp.sec == 400 + WINDOW - 1)
    assert last.drift_level in (1, 2)  # the verdict of a period during the dark frames


def test_the_prometheus_endpoint_serves_the_nodes_counters_on_loopback(probe: Probe, metrics_port: int):
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    processed = [line for line in text.splitlines() if line.startswith("hades_frames_processed_total")]
    assert processed and float(processed[0].split()[-1]) >= 1
    assert 'version="0.0.1-test"' in text
    assert "hades_drift_status" in text


def test_each_frame_reaches_the_trace_collector_as_a_frame_span_with_its_stages(probe: Probe, collector: Collector):
    deadline = time.monotonic() + 20  # the exporter sends in batches, every few seconds
    while time.monotonic() < deadline and not any(name == "frame" for _, name, _ in collector.spans):
        time.sleep(0.2)
    frames = [span for _, name, span in collector.spans if name == "frame"]
    assert frames, "no frame span reached the collector"
    assert {svc for svc, _, _ in collector.spans} == {f"{NS}/hades_perception"}
    frame = frames[0]
    children = [span for _, _, span in collector.spans if span.parent_span_id == frame.span_id]
    names = [span.name for span in sorted(children, key=lambda c: c.start_time_unix_nano)]
    stages = ["queue", "conversion", "preprocess", "engine", "handoff", "postprocess", "monitoring", "publish"]
    assert names == stages
    assert all(frame.start_time_unix_nano <= c.start_time_unix_nano <= c.end_time_unix_nano for c in children)
    attrs = {a.key: a.value for a in frame.attributes}
    assert attrs["model.version"].string_value == "0.0.1-test"
