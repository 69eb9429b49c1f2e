"""An optional Prometheus endpoint: what an operator's Prometheus scrapes from a node.

Off unless switched on (the ROS node's `metrics_port` parameter, later the HTTP API):
this module is imported only then, so prometheus_client stays an optional extra
(`pip install hades_perception[metrics]`). No rclpy, no torch: the node, replay and the
HTTP API hand in callbacks and call `observe` once per frame.

What is exposed, every series labelled `node` (the ROS node's fully qualified name, or
whatever names the process to its operator):

- `hades_frames_received_total`, `hades_frames_processed_total`,
  `hades_frames_dropped_total`, `hades_frame_errors_total`: the worker's counters
  (`serving.worker.Stats`), read from the `stats` callback when Prometheus scrapes, so
  counting costs the frame path nothing. A received frame is counted before the queue
  decides, so dropped / received is the drop ratio.
- `hades_model_info{name, version, engine} 1`: the model being served, read at scrape
  time so a model swap shows at the next scrape.
- `hades_drift_status` 0 / 1 / 2 for OK / WARN / ERROR (`monitoring.drift.LEVEL_NAMES`),
  and `hades_drift_signal_info{signal} 1` naming the worst signal while one is named.
  The signal is a series of its own rather than a label on the status, so the status
  keeps one series per node: an alert's `for:` clock does not restart when the worst
  signal changes. Without a `drift` callback (no reference signals to judge against)
  neither is exposed, and no drift alert can fire.
- `hades_stage_seconds{stage}`: a histogram of each stage's time per frame
  (preprocess, engine, postprocess, monitoring, total), fed by `observe`.

A callback that raises is logged and its series are left out of that one scrape: a
failed scrape would read as `up == 0`, and HadesNodeDown would page for a node that is
still processing frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

if TYPE_CHECKING:
    from threading import Thread
    from wsgiref.simple_server import WSGIServer

    from hades_perception.serving.worker import Stats

log = logging.getLogger(__name__)

# Mirrors monitoring.drift.LEVEL_NAMES (not imported: drift.py pulls in SciPy).
DRIFT_LEVELS: dict[str, int] = {"OK": 0, "WARN": 1, "ERROR": 2}
# Seconds. From 1 ms (a preprocess step) to 10 s (a full-size plate on a busy CPU);
# 5 s is a bucket edge so HadesSlowFrames' threshold is measured, not interpolated.
STAGE_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MODEL_FIELDS = ("name", "version", "engine")
DEFAULT_HOST = "127.0.0.1"


class _ScrapeCollector:
    """Builds the counter, model and drift families from the callbacks at each scrape."""

    def __init__(
        self,
        node: str,
        stats: Callable[[], Stats],
        drift: Callable[[], tuple[str, str]] | None,
        model: Callable[[], Mapping[str, str]],
    ) -> None:
        self.node, self.stats, self.drift, self.model = node, stats, drift, model

    def collect(self) -> Iterator[Metric]:
        yield from self._guarded("stats", self._counters)
        yield from self._guarded("model", self._model)
        if self.drift is not None:
            yield from self._guarded("drift", self._drift)

    def _guarded(self, what: str, build: Callable[[], list[Metric]]) -> list[Metric]:
        # Build the families in full before yielding any, so a failing callback leaves
        # its own series out and never half of them.
        try:
            return build()
        except Exception:
            log.warning("metrics: the %s callback failed; its series are left out of this scrape", what, exc_info=True)
            return []

    def _counters(self) -> list[Metric]:
        s = self.stats()
        families: list[Metric] = []
        for name, doc, value in (
            ("hades_frames_received", "Frames handed to the inference worker (dropped ones included).", s.received),
            ("hades_frames_processed", "Frames the pipeline finished.", s.processed),
            ("hades_frames_dropped", "Frames dropped by the queue policy because the engine was busy.", s.dropped),
            ("hades_frame_errors", "Frames whose processing raised.", s.errors),
        ):
            family = CounterMetricFamily(name, doc, labels=["node"])
            family.add_metric([self.node], value)
            families.append(family)
        return families

    def _model(self) -> list[Metric]:
        info = self.model()
        family = InfoMetricFamily("hades_model", "The model being served and the engine running it.", labels=["node"])
        family.add_metric([self.node], {k: str(info.get(k, "")) for k in MODEL_FIELDS})
        return [family]

    def _drift(self) -> list[Metric]:
        assert self.drift is not None
        level_name, signal = self.drift()
        if level_name not in DRIFT_LEVELS:
            raise ValueError(f"unknown drift level {level_name!r}; expected one of {list(DRIFT_LEVELS)}")
        doc = "Drift of recent frames against the model's reference: 0 OK, 1 WARN, 2 ERROR."
        status = GaugeMetricFamily("hades_drift_status", doc, labels=["node"])
        status.add_metric([self.node], DRIFT_LEVELS[level_name])
        families: list[Metric] = [status]
        if signal:
            worst = InfoMetricFamily("hades_drift_signal", "The signal that drifted most.", labels=["node"])
            worst.add_metric([self.node], {"signal": signal})
            families.append(worst)
        return families


class Metrics:
    """One node's Prometheus metrics, in a registry of its own.

    A registry per instance, never prometheus_client's global one: two nodes in one
    process (a test, a launch with composition) each expose only their own series and
    never clash over a metric name.
    """

    def __init__(
        self,
        node: str,
        stats: Callable[[], Stats],
        drift: Callable[[], tuple[str, str]] | None,
        model: Callable[[], Mapping[str, str]],
    ) -> None:
        """`stats`: the worker's counters (e.g. `InferenceWorker.snapshot`); `drift`: the
        latest (level name, worst signal or ""), None when drift is not judged; `model`:
        {"name", "version", "engine"} of the model being served. All are called at
        scrape time, on the HTTP server's thread, so they must be thread-safe and quick."""
        self.node = node
        self.registry = CollectorRegistry()
        self.registry.register(_ScrapeCollector(node, stats, drift, model))
        self._stages = Histogram(
            "hades_stage_seconds",
            "Time per frame in each pipeline stage.",
            labelnames=["node", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        # The labelled children by stage: `labels()` takes a lock and validates every call.
        self._children: dict[str, Histogram] = {}
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def observe(self, timing_ms: Mapping[str, float]) -> None:
        """Record one frame's stage times (milliseconds, as the pipeline reports them).
        The only per-frame call."""
        for stage, ms in timing_ms.items():
            child = self._children.get(stage)
            if child is None:
                child = self._children.setdefault(stage, self._stages.labels(self.node, stage))
            child.observe(ms / 1000.0)

    def start(self, host: str = DEFAULT_HOST, port: int = 0) -> int:
        """Serve the registry over HTTP on a daemon thread; return the bound port
        (`port` 0: any free port).

        127.0.0.1 by default: the metrics name the model and the node, and nothing of a
        robot leaves the machine unless the operator binds another address on purpose
        (or scrapes through a tunnel)."""
        if self._server is not None:
            raise RuntimeError(f"metrics endpoint already serving on port {self._server.server_port}")
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        log.info("metrics: serving Prometheus metrics of %s on http://%s:%d/metrics", self.node, host, bound)
        return bound

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) the endpoint is bound to, None when not serving."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop serving and free the port. Safe to call twice, or without `start`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        log.info("metrics: endpoint of %s closed", self.node)
