"""The `serve` process itself: loopback by default, a clean exit on SIGTERM (what a
container runtime sends), and a clear refusal to start when nothing can be served."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.api.conftest import TINY, Server, executable


def test_it_binds_loopback_by_default_and_exits_cleanly_on_sigterm(tmp_path: Path):
    server = Server(tmp_path, "--bundle", str(TINY)).wait_ready()
    assert server.stop() == 0
    log = server.log()
    assert f"Uvicorn running on http://127.0.0.1:{server.port}" in log
    assert "no API keys in" in log  # says how to make one
    assert "Traceback" not in log


def test_it_refuses_to_start_without_a_servable_model_and_says_why(tmp_path: Path):
    r = subprocess.run(
        [*executable(), "serve", "--bundle", str(tmp_path / "missing"), "--keys", str(tmp_path / "k.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "no manifest.json" in r.stderr and "Traceback" not in r.stderr
