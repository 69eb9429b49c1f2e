"""A swapped version on probation (a node in its own process, following a folder store):
version 2.0.0 was exported against dark plates, so on this robot's ordinary plates its
drift status turns to ERROR within its first frames. The node reports it degraded in
/diagnostics and, with fallback_on_degradation on, pins the previous version by itself
and serves it again; the channel itself is left for a person to move back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from harness import Probe, image_msg

from hades_perception.inference.pipeline import Pipeline
from hades_perception.models.store import ModelStore
from hades_perception_ros.launching import start_node, stop
from tests.bundles import NOT_ABOUT_SPEED_MS, new_version

pytestmark = pytest.mark.ros
NS = f"/probation_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
MODEL = "hades-seedlings-probation"
V1, V2 = "1.0.0", "2.0.0-dark-reference"


def ordinary(plates_dir: Path) -> list[np.ndarray]:
    paths = sorted((plates_dir / "images").glob("*.png"))
    return [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in paths]  # type: ignore[index]


def dark_reference(bundle: Path, plates: list[np.ndarray]) -> dict[str, list[float]]:
    """The signals the served pipeline computes on 20 darkened, flattened copies of the
    plates: what an export on such plates would have stored as its reference."""
    pipe = Pipeline.from_bundle(bundle, ("CPUExecutionProvider",))
    out: dict[str, list[float]] = {}
    for i in range(20):
        gain = 0.3 + 0.01 * i
        dark = (plates[i % len(plates)].astype(np.float32) * gain + 15).astype(np.uint8)
        for k, v in pipe(dark).signals.items():
            out.setdefault(k, []).append(float(v))
    return out


@pytest.fixture(scope="module")
def store(bundle: Path, plates_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    work = tmp_path_factory.mktemp("versions")
    s = ModelStore.open(work / "store")
    s.publish(new_version(work / V1, V1, bundle, name=MODEL))
    stats = json.loads((bundle / "manifest.json").read_text())["reference_stats"]
    stats["signals"] = dark_reference(bundle, ordinary(plates_dir))
    s.publish(new_version(work / V2, V2, bundle, name=MODEL, reference_stats=stats))
    s.promote(MODEL, V1, "production", "first deployment", by="test")
    return s


@pytest.fixture(scope="module")
def probe(store: ModelStore, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    folder = tmp_path_factory.mktemp("node")
    params: dict[str, Any] = {
        "model_bundle_path": str(bundle),
        "execution_providers": ["CPUExecutionProvider"],
        "store_url": store.describe(),
        "model_name": MODEL,
        "channel": "production",
        "poll_period": 0.3,
        "latency_budget_ms": NOT_ABOUT_SPEED_MS,
        "cache_dir": str(folder / "cache"),
        "diagnostics_period": 0.3,
        "drift_window": 20,
        "drift_min_frames": 10,
        "probation_frames": 40,
        "fallback_on_degradation": True,
    }
    proc = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    p = Probe(NS, CAMERA)
    p.wait("model_info", lambda m: m.version == V1, timeout=120)
    p.wait_for_subscriber()
    yield p
    p.close()
    stop(proc)


def send(probe: Probe, plates: list[np.ndarray], first: int, count: int) -> str:
    """Frames one at a time, each answered; the version that answered the last."""
    version = ""
    for stamp in range(first, first + count):
        probe.image_pub.publish(image_msg(plates[stamp % len(plates)], stamp))
        msg = probe.wait("landmarks", lambda m, s=stamp: m.header.stamp.sec == s, timeout=60)  # type: ignore[misc]
        version = msg.model_version
        time.sleep(0.05)
    return version


def status(probe: Probe, suffix: str) -> tuple[int, str] | None:
    for arr in reversed(probe.messages("diagnostics")):
        for st in arr.status:
            if probe.ns in st.hardware_id and st.name.endswith(suffix):
                return st.level[0], st.message
    return None


def test_a_degraded_swap_is_reported_and_the_node_falls_back_by_itself(
    probe: Probe, store: ModelStore, plates_dir: Path
):
    plates = ordinary(plates_dir)
    assert send(probe, plates, 1, 12) == V1
    assert status(probe, ": model probation") is None
    store.promote(MODEL, V2, "production", "a new export", by="test")
    probe.wait("model_info", lambda m: m.version == V2, timeout=60)
    stamp = 100
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and status(probe, ": model probation") is None:
        send(probe, plates, stamp, 1)  # V2's drift window fills: ERROR from its 10th frame on
        stamp += 1
    got = status(probe, ": model probation")
    assert got is not None and got[0] == 2, got
    assert V2 in got[1] and "drift ERROR" in got[1] and f"falling back to {V1}" in got[1]
    info = probe.wait("model_info", lambda m: m.version == V1 and m.pinned == V1, timeout=60)
    assert info.channel == "production"
    assert send(probe, plates, 3000, 2) == V1
    pointer = store.pointer(MODEL, "production")
    assert pointer is not None and pointer[0].version == V2  # the channel is a person's to move
