"""The node is a managed node. By default it configures and activates itself (the
other tests start it that way); with autostart:=false it waits, and the standard
lifecycle services drive it: configure loads the model (no topics yet), activate
starts taking frames, deactivate stops answering, cleanup frees the model, and it
can be configured and activated again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import Probe, image_msg

from hades_perception_ros.launching import NODE_NAME, start_node, stop

pytestmark = pytest.mark.ros
NS = f"/lifecycle_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"


@pytest.fixture(scope="module")
def probe(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    folder = tmp_path_factory.mktemp("node")
    params = {"model_bundle_path": str(bundle), "execution_providers": ["CPUExecutionProvider"], "autostart": False}
    proc = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    p = Probe(NS, CAMERA)
    yield p
    p.close()
    stop(proc)


def _lifecycle(probe: Probe, transition: str | None = None) -> str:
    """Trigger `transition` (configure, activate, deactivate, cleanup), then return the state's label."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    base = f"{NS}/{NODE_NAME}"
    if transition:
        change: Any = probe.node.create_client(ChangeState, f"{base}/change_state")
        assert change.wait_for_service(timeout_sec=60), "no lifecycle services: is it a managed node?"
        req = ChangeState.Request()
        req.transition.id = getattr(Transition, f"TRANSITION_{transition.upper()}")
        assert _call(change, req).success, f"{transition} failed"
    get: Any = probe.node.create_client(GetState, f"{base}/get_state")
    assert get.wait_for_service(timeout_sec=60)
    return str(_call(get, GetState.Request()).current_state.label)


def _call(client: Any, request: Any) -> Any:
    future = client.call_async(request)  # the probe's own thread spins its node
    deadline = time.monotonic() + 120
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.done(), "no answer from the lifecycle service"
    return future.result()


def _answered(probe: Probe, plate: np.ndarray, stamp: int, timeout: float) -> bool:
    probe.image_pub.publish(image_msg(plate, stamp))
    try:
        probe.wait("certainty", lambda m: m.header.stamp.sec == stamp, timeout=timeout)
        return True
    except AssertionError:
        return False


def test_with_autostart_off_the_node_waits_unconfigured_with_no_camera_subscription(probe: Probe):
    assert _lifecycle(probe) == "unconfigured"
    time.sleep(1.0)
    assert probe.image_pub.get_subscription_count() == 0


def test_configure_loads_the_model_and_activate_serves_frames(probe: Probe, plate: np.ndarray):
    assert _lifecycle(probe, "configure") == "inactive"
    assert probe.image_pub.get_subscription_count() == 0  # topics come with activate
    assert _lifecycle(probe, "activate") == "active"
    assert probe.wait("model_info", timeout=30).version == "0.0.1-test"
    probe.wait_for_subscriber()
    assert _answered(probe, plate, 7001, timeout=60)


def test_deactivate_stops_answering_and_a_second_cycle_serves_again(probe: Probe, plate: np.ndarray):
    assert _lifecycle(probe, "deactivate") == "inactive"
    time.sleep(1.0)
    assert probe.image_pub.get_subscription_count() == 0
    assert not _answered(probe, plate, 7002, timeout=3)
    assert _lifecycle(probe, "cleanup") == "unconfigured"
    assert _lifecycle(probe, "configure") == "inactive"
    assert _lifecycle(probe, "activate") == "active"
    probe.wait_for_subscriber()
    assert _answered(probe, plate, 7003, timeout=60)
