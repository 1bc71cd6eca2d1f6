"""Per-reason log throttling for faults that repeat every frame.

Each reason logs once per interval, with a count of what was held back, instead of flooding the
log at the camera rate.
"""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """`warning(key, msg, *args)` logs at most once per `interval_s` for each key."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 5.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._state: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            last, held = self._state.get(key, (float("-inf"), 0))
            if now - last < self._interval:
                self._state[key] = (last, held + 1)
                return
            self._state[key] = (now, 0)
        if held:
            msg = f"{msg} (and {held} more like it in the last {self._interval:g} s)"
        self._logger.warning(msg, *args, exc_info=exc_info)
