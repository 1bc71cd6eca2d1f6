"""Drive a pipeline from a time-ordered event stream on a simulated clock (replay, load tests).

Two modes:
  realtime     events are delivered when the clock reaches their time; while the model is busy
               the clock keeps running (ReplayClock: real elapsed time; ManualClock: whatever the
               models charge it), so frames that arrive meanwhile are superseded and dropped
               exactly as in the car.
  every_frame  after each event the pipeline plans everything that is complete and the clock
               stays at event time: every synchronised frame is planned (evaluation).
Idle time is skipped (the clock jumps to the next event), so a slow model never means waiting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Union

from fastdrive_ros.pipeline.clock import ManualClock, ReplayClock
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import CameraFrameIn, CommandIn, OdometryIn, PipelineOutput

Event = Union[CameraFrameIn, OdometryIn, CommandIn]
ClockMode = Literal["realtime", "every_frame"]

# nuScenes-like firing offsets of the six cameras around the front camera (ms): they fire in
# turn as the lidar sweeps, within a few tens of ms (kept inside half a 12 Hz period here, so
# the nearest image of each camera is never ambiguous).
NUSCENES_OFFSETS_MS: dict[str, float] = {
    "CAM_FRONT": 0.0,
    "CAM_FRONT_RIGHT": 8.0,
    "CAM_BACK_RIGHT": 17.0,
    "CAM_BACK": 25.0,
    "CAM_BACK_LEFT": 33.0,
    "CAM_FRONT_LEFT": -10.0,
}


def deliver(pipeline: FramePipeline, event: Event) -> None:
    """Hand one event to the matching pipeline input."""
    if isinstance(event, CameraFrameIn):
        pipeline.on_camera(event)
    elif isinstance(event, OdometryIn):
        pipeline.on_odometry(event)
    else:
        pipeline.on_command(event)


def drive(
    pipeline: FramePipeline,
    clock: ManualClock | ReplayClock,
    events: Iterable[tuple[int, Event]],
    *,
    mode: ClockMode = "realtime",
    on_output: Callable[[PipelineOutput], None] | None = None,
    on_event: Callable[[int, Event], None] | None = None,
    poll_ms: float = 5.0,
) -> int:
    """Feed (time_ns, event) pairs in order; returns the number of outputs.

    `on_event` sees each event as it is delivered (e.g. to copy inputs to an output bag).
    """
    stream: Iterator[tuple[int, Event]] = iter(events)
    upcoming = next(stream, None)
    outputs = 0
    poll_ns = int(poll_ms * 1e6)

    def emit(out: PipelineOutput | None) -> bool:
        nonlocal outputs
        if out is None:
            return False
        outputs += 1
        if on_output is not None:
            on_output(out)
        return True

    if upcoming is not None:
        clock.set(upcoming[0])
    while True:
        now = clock.now_ns()
        while upcoming is not None and upcoming[0] <= now:
            if on_event is not None:
                on_event(*upcoming)
            deliver(pipeline, upcoming[1])
            upcoming = next(stream, None)
            if mode == "every_frame":
                while emit(pipeline.step(now)):
                    pass
                clock.set(now)
        if mode == "realtime":
            if emit(pipeline.step(now)):
                continue  # processing took time: deliver what arrived meanwhile, then plan again
        else:  # frames completed by a camera timeout, not by an arrival
            while emit(pipeline.step(now)):
                pass
            clock.set(now)
        if upcoming is None and pipeline.pending() == 0:
            return outputs
        next_time = upcoming[0] if upcoming is not None else math.inf
        target = next_time if pipeline.pending() == 0 else min(next_time, now + poll_ns)
        clock.set(max(int(target), now))


@dataclass(frozen=True)
class SyntheticRig:
    """Cameras and odometry for load tests: every camera sends the same JPEG.

    Attributes:
        camera_names: cameras (offsets from NUSCENES_OFFSETS_MS when known, else 0).
        rate_hz: camera rate.
        odom_rate_hz: odometry rate.
        speed: straight-line ego speed (m/s).
        jitter_ms: uniform stamp jitter per image (deterministic by seed).
    """

    camera_names: tuple[str, ...]
    jpeg: bytes
    rate_hz: float = 12.0
    odom_rate_hz: float = 50.0
    speed: float = 8.0
    jitter_ms: float = 3.0
    seed: int = 0
    offsets_ms: dict[str, float] = field(default_factory=lambda: dict(NUSCENES_OFFSETS_MS))

    def events(self, *, start_ns: int, seconds: float) -> Iterator[tuple[int, Event]]:
        """(time_ns, event) in time order; received_ns = time (arrival on the pipeline clock)."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        items: list[tuple[int, int, Event]] = []
        period = 1e9 / self.rate_hz
        for k in range(int(seconds * self.rate_hz)):
            base = start_ns + int(k * period)
            for c, name in enumerate(self.camera_names):
                jitter = rng.uniform(-self.jitter_ms, self.jitter_ms)
                stamp = base + int((self.offsets_ms.get(name, 0.0) + jitter) * 1e6)
                frame = CameraFrameIn(name, stamp, self.jpeg, "jpeg", received_ns=stamp)
                items.append((stamp, c, frame))
        odom_period = 1e9 / self.odom_rate_hz
        for k in range(int(seconds * self.odom_rate_hz)):
            stamp = start_ns + int(k * odom_period)
            t = (stamp - start_ns) / 1e9
            odom = OdometryIn(stamp, self.speed * t, 0.0, 0.0, self.speed, 0.0)
            items.append((stamp, -1, odom))
        items.sort(key=lambda item: (item[0], item[1]))
        return ((stamp, event) for stamp, _, event in items)
