"""Per-stage latency: a timer for one frame and bounded rolling p50/p95 over recent frames."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

# Stages in pipeline order; "encode_prune" replaces "encode" + "prune" for fused backends. "queue"
# is the wait from the frame's last image to the start of processing (pipeline clock), "plan" the
# whole planner call (prefill + decode_tokens + parsing), "total" decode..plan (wall clock), and
# "frame_age" the publish time minus the camera stamp (pipeline clock).
STAGES: tuple[str, ...] = (
    "queue",
    "decode",
    "preprocess",
    "encode",
    "prune",
    "encode_prune",
    "prefill",
    "decode_tokens",
    "plan",
    "total",
    "frame_age",
)


class StageTimer:
    """Wall-clock timings (ms) of the stages of one frame, measured with perf_counter."""

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body and add it to `name` (a stage may be timed in several pieces)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1e3)

    def add(self, name: str, ms: float) -> None:
        self._ms[name] = self._ms.get(name, 0.0) + float(ms)

    @property
    def ms(self) -> dict[str, float]:
        return dict(self._ms)


class RollingLatency:
    """The last `window` values of each stage; p50/p95 for diagnostics and summaries.

    Memory is bounded by window x stages whatever the run length. Thread-safe.
    """

    def __init__(self, *, window: int) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self._window = window
        self._values: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, sample: Mapping[str, float]) -> None:
        """Record one frame's stage -> ms (non-finite values are ignored)."""
        with self._lock:
            for name, value in sample.items():
                if not np.isfinite(value):
                    continue
                self._values.setdefault(name, deque(maxlen=self._window)).append(float(value))
                self._counts[name] = self._counts.get(name, 0) + 1

    def percentiles(self, q: tuple[float, ...] = (50.0, 95.0)) -> dict[str, tuple[float, ...]]:
        """The requested percentiles of each stage over the window, in STAGES order first."""
        with self._lock:
            snapshot = {name: np.asarray(vals) for name, vals in self._values.items() if vals}
        order = [s for s in STAGES if s in snapshot] + sorted(set(snapshot) - set(STAGES))
        return {name: tuple(float(v) for v in np.percentile(snapshot[name], q)) for name in order}

    def last(self, name: str) -> float | None:
        with self._lock:
            values = self._values.get(name)
            return values[-1] if values else None

    def count(self, name: str) -> int:
        """Frames that reported `name` since the start (not only in the window)."""
        with self._lock:
            return self._counts.get(name, 0)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._counts.clear()
