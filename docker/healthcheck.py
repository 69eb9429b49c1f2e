"""The containers' HEALTHCHECK: healthy when the role serves, not merely runs.

    python docker/healthcheck.py api      GET /v2/health/ready (a model is loaded and served)
    python docker/healthcheck.py node     the node's Prometheus endpoint names the model it serves
    python docker/healthcheck.py mlflow   GET /health of the tracking server

Ports come from the same files the entrypoint uses (docker/api.*.args, docker/perception.*.yaml)
unless HADES_HEALTH_PORT says otherwise. Exit 0: healthy; 1: not (with the reason on stderr).
Standard library only, loopback only.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

CONFIG = Path(os.environ.get("HADES_CONFIG_DIR", Path(__file__).resolve().parent))
PROFILE = os.environ.get("HADES_PROFILE", "production")
TIMEOUT_S = 5.0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read(1_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def configured_port(role: str) -> int:
    """The port the role listens on, from the entrypoint's own configuration files."""
    if os.environ.get("HADES_HEALTH_PORT"):
        return int(os.environ["HADES_HEALTH_PORT"])
    if role == "mlflow":
        return int(os.environ.get("MLFLOW_PORT", "5000"))
    if role == "api":
        text = (CONFIG / f"api.{PROFILE}.args").read_text()
        m = re.search(r"^--port\s+(\d+)", text, re.MULTILINE)
        return int(m.group(1)) if m else 8000
    text = (CONFIG / f"perception.{PROFILE}.yaml").read_text()
    m = re.search(r"^\s*metrics_port:\s*(\d+)", text, re.MULTILINE)
    if not m or int(m.group(1)) == 0:
        raise SystemExit(f"{CONFIG}/perception.{PROFILE}.yaml sets no metrics_port: the node cannot be probed")
    return int(m.group(1))


def check(role: str) -> str | None:
    """None when healthy, else why not."""
    port = configured_port(role)
    base = f"http://127.0.0.1:{port}"
    try:
        if role == "api":
            status, _ = _get(f"{base}/v2/health/ready")
            return None if status == 200 else f"/v2/health/ready answered {status} (no model served yet?)"
        if role == "mlflow":
            status, _ = _get(f"{base}/health")
            return None if status == 200 else f"/health answered {status}"
        status, body = _get(f"{base}/metrics")
        if status != 200:
            return f"metrics endpoint answered {status}"
        if not re.search(r"^hades_model_info\{", body, re.MULTILINE):
            return "the node serves no model yet (no hades_model_info in its metrics)"
        return None
    except OSError as exc:
        return f"{base}: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("api", "node", "mlflow"):
        print("usage: healthcheck.py api|node|mlflow", file=sys.stderr)
        return 2
    problem = check(argv[0])
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
