"""The latest results of a running perception node, for the web app's live page.

When the ROS package is installed (hades_perception_ros: the workspace is sourced) and
the server is given a namespace (`--live-namespace`, default /hades, the launch file's:
settings.LIVE_NAMESPACE), the package's live_feed.NodeSubscriber subscribes to that
node's `plants`, `monitoring` and `shadow/agreement` topics on a thread of its own, and
this feed keeps the newest of each (agreement: how far a candidate in shadow mode agrees
with the served model, the running means a person reads before promoting).
`GET /v1/live` answers what it holds, or says plainly why there is nothing: ROS is not
present, the feed is off, or no node has published yet.

The core never speaks ROS itself: the import is lazy, so the API runs, and its tests
pass, where there is no ROS.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class LiveFeed:
    """The newest `plants`, `monitoring` and `shadow/agreement` of one node namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace.rstrip("/") if namespace.strip("/") else ""
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any] | None] = {"plants": None, "monitoring": None, "agreement": None}
        self._frames = 0
        self._subscriber: Any = None
        self.reason = ""

    def start(self) -> None:
        if not self.namespace:
            self.reason = "the live feed is off: start the server with --live-namespace NS (a node's namespace)"
            return
        try:
            from hades_perception_ros.live_feed import NodeSubscriber
        except ImportError as exc:
            self.reason = (
                f"ROS 2 is not present in this server's environment ({exc}); start the server where the "
                "workspace is sourced (source scripts/env.sh) to see a running node"
            )
            log.info("live feed: %s", self.reason)
            return
        self._subscriber = NodeSubscriber(
            self.namespace, self._keep("plants"), self._keep("monitoring"), self._keep("agreement")
        )
        log.info("live feed: listening to %s (plants, monitoring, shadow/agreement)", self.namespace)

    def _keep(self, what: str) -> Any:
        def keep(doc: dict[str, Any]) -> None:
            with self._lock:
                self._latest[what] = doc
                self._frames += what == "plants"

        return keep

    def stop(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.stop()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            latest, frames = dict(self._latest), self._frames
        running = self._subscriber is not None
        if not running:
            message = self.reason
        elif latest["plants"] is None:
            message = f"listening to {self.namespace}; no node has published plants there yet"
        else:
            message = f"{frames} frames received from {self.namespace}"
        return {"available": running, "namespace": self.namespace, "message": message, "frames": frames, **latest}
