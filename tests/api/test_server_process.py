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
    assert "served WITHOUT checking their signatures" in log  # no trusted keys: it says so
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


def test_with_trusted_keys_it_refuses_an_unsigned_bundle(tmp_path: Path):
    """The production set-up (trusted_keys_dir set): an unsigned bundle is never served."""
    from hades_perception.contract.signing import generate_keypair

    keys = tmp_path / "trusted"
    keys.mkdir()
    generate_keypair(keys / "pipeline")
    serve = [*executable(), "serve", "--bundle", str(TINY), "--keys", str(tmp_path / "k.json")]
    r = subprocess.run(
        [*serve, "--trusted-keys-dir", str(keys), "--live-namespace", ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "bundle is not signed and this node only serves signed bundles" in r.stderr
    assert "Traceback" not in r.stderr
