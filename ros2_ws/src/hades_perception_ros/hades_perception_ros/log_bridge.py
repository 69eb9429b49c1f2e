"""The core logs with `logging`; in the node its records go to the ROS logger, so the
store, the follower and the cache appear in the node's log (and /rosout) like the rest."""

from __future__ import annotations

import logging
from typing import Any


class RosLogHandler(logging.Handler):
    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {self.format(record)}"
        if record.levelno >= logging.ERROR:
            self.ros.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros.warning(text)
        elif record.levelno >= logging.INFO:
            self.ros.info(text)
        else:
            self.ros.debug(text)


def route_core_logs(ros_logger: Any, package: str = "hades_perception") -> None:
    """Send the core package's log records (INFO and up) to `ros_logger` only."""
    core = logging.getLogger(package)
    core.handlers = [RosLogHandler(ros_logger)]
    core.setLevel(logging.INFO)
    core.propagate = False
