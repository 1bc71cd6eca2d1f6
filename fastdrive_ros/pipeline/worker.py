"""A worker thread that drives `FramePipeline.step` as images arrive (the non-timer option).

Used by the DDS node (and available to any transport without its own executor): it wakes on each
new image (or every `poll_ms`, so camera timeouts fire even when a camera stops), plans the newest
complete frame, hands the output to `on_output`, and reports health every `health_period_ms`
(also while nothing is planned, so STALE reaches the diagnostics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import HealthReport, PipelineOutput

LOG = logging.getLogger("fastdrive_ros.pipeline")


class PipelineWorker:
    """Owns one thread; `start()` / `stop()` or use as a context manager."""

    def __init__(
        self,
        *,
        pipeline: FramePipeline,
        on_output: Callable[[PipelineOutput], None],
        on_health: Callable[[HealthReport], None] | None = None,
        poll_ms: float = 10.0,
        health_period_ms: float = 1000.0,
    ) -> None:
        if poll_ms <= 0 or health_period_ms <= 0:
            raise ValueError("poll_ms and health_period_ms must be > 0")
        self._pipeline = pipeline
        self._on_output = on_output
        self._on_health = on_health
        self._poll_s = poll_ms / 1e3
        self._health_s = health_period_ms / 1e3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self) -> PipelineWorker:
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._thread = threading.Thread(target=self._run, name="fastdrive-pipeline", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> PipelineWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_health = time.monotonic()
        while not self._stop.is_set():
            self._pipeline.wait_for_input(self._poll_s)
            try:
                while (output := self._pipeline.step()) is not None:
                    self._on_output(output)
                    next_health = time.monotonic() + self._health_s
                if self._on_health is not None and time.monotonic() >= next_health:
                    self._on_health(self._pipeline.health())
                    next_health = time.monotonic() + self._health_s
            except Exception:  # a publisher failure must not kill the loop
                self.errors += 1
                LOG.exception("pipeline worker: error while publishing")
                self._stop.wait(self._poll_s)
