"""Clocks the pipeline reads "now" from: system time, a manual clock, a replay clock.

Camera stamps and `now` must share a time base for frame ages and timeouts: the rclpy node wraps
its node clock (sim time under `use_sim_time`), the DDS node uses system time, bag replay a
clock that follows the bag and advances with real processing time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with `now_ns()` on the same time base as the camera stamps."""

    def now_ns(self) -> int: ...


class SystemClock:
    """Wall-clock time (ns since the epoch), what live camera drivers stamp with."""

    def now_ns(self) -> int:
        return time.time_ns()


class SteadyClock:
    """Monotonic time (ns, arbitrary origin): durations that hold when ROS time stops."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that only moves when told to (tests, every-frame replay)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now

    def set(self, now_ns: int) -> None:
        with self._lock:
            self._now = int(now_ns)

    def advance(self, delta_ns: int) -> None:
        with self._lock:
            self._now += int(delta_ns)


class ReplayClock:
    """Bag time that advances with real elapsed time since the last `set` (realtime replay).

    `set(t)` pins the clock to bag time t; afterwards now = t + wall time elapsed, so a slow
    model makes simulated time pass exactly as it would in the car.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._base = int(start_ns)
        self._wall0 = time.perf_counter_ns()
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._base + (time.perf_counter_ns() - self._wall0)

    def set(self, now_ns: int) -> None:
        with self._lock:
            self._base = int(now_ns)
            self._wall0 = time.perf_counter_ns()
