"""Python `logging` -> the ROS logger of the rclpy node (console format, log files, /rosout).

The pipeline, runtime and model code log with `logging`; under `ros2 run` / `ros2 launch` nothing
configures Python logging, so their warnings came out as bare lines and never reached /rosout.
`RosLogHandler` forwards every record to the node's rcutils logger. Python and ROS severities
share their numbers (10 DEBUG ... 50 FATAL), so the ROS log level decides what is emitted.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol


class RosLogger(Protocol):
    """What we use of rclpy's RcutilsLogger."""

    def debug(self, message: str) -> Any: ...

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...

    def fatal(self, message: str) -> Any: ...

    def get_effective_level(self) -> Any: ...


class RosLogHandler(logging.Handler):
    """Emits records through a ROS logger as "<python logger>: <message>"."""

    def __init__(self, ros_logger: RosLogger) -> None:
        super().__init__()
        self._ros = ros_logger
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            level = record.levelno
            # One call site per severity: rclpy refuses a call site whose severity changes.
            if level >= logging.CRITICAL:
                self._ros.fatal(text)
            elif level >= logging.ERROR:
                self._ros.error(text)
            elif level >= logging.WARNING:
                self._ros.warning(text)
            elif level >= logging.INFO:
                self._ros.info(text)
            else:
                self._ros.debug(text)
        except Exception:  # logging must never take the node down
            self.handleError(record)


def route_to_ros(ros_logger: RosLogger) -> RosLogHandler:
    """Send every Python log record to `ros_logger`, at its level; returns the handler.

    Other root handlers stay (test capture); nothing else configures logging under `ros2 run`.
    `unroute(handler)` undoes it.
    """
    handler = RosLogHandler(ros_logger)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(int(ros_logger.get_effective_level()) or logging.INFO)
    return handler


def unroute(handler: logging.Handler) -> None:
    """Remove a handler installed by route_to_ros (the ROS logger dies with its context)."""
    logging.getLogger().removeHandler(handler)
