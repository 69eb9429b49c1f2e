"""No full-size frame is lost at the default settings: a camera that appears after the
node and sends its first 36 MB frame the moment its publisher matches is answered, in a
stock DDS set-up (no Fast DDS profile: what a robot has unless told otherwise) and with
this project's shared-memory profile. With the old default (best effort) the stock
set-up answered 0 of 3 frames and the profile lost every first frame (docs/node.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hades_perception_ros.launching import start_node, stop

pytestmark = [pytest.mark.ros, pytest.mark.slow]
CAMERA_PROCESS = Path(__file__).with_name("camera_process.py")


@pytest.mark.parametrize("setup", ["stock", "shared-memory profile"])
def test_a_new_cameras_first_full_frame_is_answered_at_the_default_qos(
    setup: str, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if setup == "stock":
        monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    elif not profile:
        pytest.skip("FASTDDS_DEFAULT_PROFILES_FILE is not set (scripts/env.sh sets the project's profile)")
    ns = f"/frames_{os.getpid()}_{setup[:5]}"
    params: dict[str, object] = {"model_bundle_path": str(bundle), "execution_providers": ["CPUExecutionProvider"]}
    node = start_node(params, tmp_path, ns, f"{ns}/camera/image_raw", log=tmp_path / "node.log")
    try:
        r = subprocess.run(
            [sys.executable, str(CAMERA_PROCESS), "--camera", f"{ns}/camera/image_raw", "--answers", f"{ns}/certainty"],
            capture_output=True,
            text=True,
            timeout=400,
        )
    finally:
        stop(node)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["answered"] == got["sent"] == [100, 101], (got, (tmp_path / "node.log").read_text()[-2000:])
