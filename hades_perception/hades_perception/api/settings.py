"""The API server's settings.

Two halves:
- where the model comes from and how it runs: the node's parameter names and defaults
  (model_bundle_path, store_url, channel, ...), read through `param(name)` by
  serving/model_source.py exactly as the node's parameters are, so a bundle, a store
  channel and an engine are chosen the same way for both. The defaults are the ones in
  hades_perception_ros/params.py, which the core cannot import; a test keeps them equal.
- what the HTTP side allows: address, keys file, upload size, rate limit, CORS origins.
- where jobs and uploaded datasets live (the work dir), which other folders a job may
  read (data dirs), how many finished jobs are kept, and the drift window per served
  version (the node's drift_window and drift_min_frames, with the node's defaults).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hades_perception.api.keys import default_keys_file
from hades_perception.inference.dish import DISH_MM
from hades_perception.inference.engine import DEFAULT_PROVIDERS

# The node's parameters that model_source reads, with the node's defaults.
MODEL_DEFAULTS: dict[str, Any] = {
    "model_bundle_path": "models/hades-seedlings",
    "store_url": "",
    "model_name": "",
    "channel": "production",
    "poll_period": 10.0,
    "latency_budget_ms": 0.0,
    "cache_dir": "",
    "trusted_keys_dir": "",
    "execution_providers": list(DEFAULT_PROVIDERS),
    "intra_op_threads": 0,
    "engine_file_path": "",
    "force_engine_update": False,
    "px_per_mm": 0.0,
    "dish_mm": DISH_MM,
    "precision": "auto",
    "engine_cache_dir": "",
}
# The node's monitoring parameters the API uses, with the node's defaults (a test keeps them equal).
MONITORING_DEFAULTS: dict[str, int] = {"drift_window": 50, "drift_min_frames": 20}
DEFAULT_KEEP_JOBS = 100  # finished jobs whose folders are kept; the oldest go first
DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise
DEFAULT_PORT = 8000
# A full Hades frame is 12.6 Mpx: 36 MB as 8-bit RGB, 72 MB as an uncompressed 16-bit TIFF.
DEFAULT_MAX_UPLOAD_MB = 100.0
DEFAULT_RATE_LIMIT = "120/min"
LIVE_NAMESPACE = "/hades"  # the launch file's default namespace (hades_perception_ros)
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(text: str) -> float:
    """ "120/min" -> requests per minute; "off" or "0" -> 0 (no limit)."""
    if text.strip().lower() in ("off", "0", "none"):
        return 0.0
    m = _RATE.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"rate limit {text!r}: expected N/s, N/min or N/hour (e.g. 120/min), or off")
    return float(m.group(1)) * 60.0 / _PER[m.group(2)]


def default_work_dir() -> Path:
    """$HADES_DATA_DIR/api, else ./var/api (beside the keys file and the model store)."""
    return Path(os.environ.get("HADES_DATA_DIR", "var")) / "api"


def default_train_command() -> tuple[str, ...]:
    """The installed `hades-train` beside this Python (one environment, as scripts/setup.sh
    makes it), else the module: jobs run it as a subprocess, never import it."""
    script = Path(sys.executable).parent / "hades-train"
    return (str(script),) if script.exists() else (sys.executable, "-m", "hades_training.cli")


@dataclass
class ServeSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    keys_file: Path = field(default_factory=default_keys_file)
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    rate_per_min: float = field(default_factory=lambda: parse_rate(DEFAULT_RATE_LIMIT))  # 0: no limit
    cors_origins: tuple[str, ...] = ()  # none: no cross-origin browser access at all
    model: dict[str, Any] = field(default_factory=lambda: dict(MODEL_DEFAULTS))
    work_dir: Path = field(default_factory=default_work_dir)  # jobs/ and datasets/
    data_dirs: tuple[Path, ...] = ()  # folders a job may read besides the work dir (e.g. a gate set)
    keep_jobs: int = DEFAULT_KEEP_JOBS
    drift_window: int = MONITORING_DEFAULTS["drift_window"]
    drift_min_frames: int = MONITORING_DEFAULTS["drift_min_frames"]
    train_command: tuple[str, ...] = field(default_factory=default_train_command)
    metrics_port: int = 0  # a Prometheus endpoint (monitoring/metrics.py) on its own port; 0: off
    metrics_host: str = DEFAULT_HOST
    live_namespace: str = LIVE_NAMESPACE  # the node whose latest results the live page shows; "": off
    azure_ml: bool = False  # azure_train / azure_pipeline jobs may submit (dry runs need nothing)

    def __post_init__(self) -> None:
        unknown = set(self.model) - set(MODEL_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}; known: {sorted(MODEL_DEFAULTS)}")
        self.model = {**MODEL_DEFAULTS, **self.model}
        if self.max_upload_mb <= 0:
            raise ValueError(f"max upload {self.max_upload_mb} MB: expected more than 0")
        if self.keep_jobs < 1:
            raise ValueError(f"keep {self.keep_jobs} jobs: expected at least 1")
        if not 2 <= self.drift_min_frames <= self.drift_window:
            raise ValueError(
                f"drift window {self.drift_window}, min frames {self.drift_min_frames}: expected 2 <= min <= window"
            )
        self.work_dir = Path(self.work_dir).expanduser().resolve()
        self.data_dirs = tuple(Path(d).expanduser().resolve() for d in self.data_dirs)

    def param(self, name: str) -> Any:
        """A model setting by the node's parameter name: the `p` of serving/model_source.py."""
        return self.model[name]

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
