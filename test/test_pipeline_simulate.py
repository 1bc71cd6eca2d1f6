from __future__ import annotations

import pytest

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    jpeg_bytes,
    sample_image,
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.simulate import SyntheticRig, drive


def _pipeline(clock: ManualClock, cost_ms: float) -> FramePipeline:
    return FramePipeline(
        config=PipelineConfig(camera_timeout_ms=100.0),
        backend=FakeBackend(clock=clock, latency_ms=cost_ms),
        planner=FakePlanner(),
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
    )


@pytest.mark.parametrize("mode", ["realtime", "every_frame"])
def test_a_camera_missing_at_the_end_still_terminates(mode: str) -> None:
    clock = ManualClock()
    pipeline = _pipeline(clock, cost_ms=0.0)
    rig = SyntheticRig(camera_names=CAMERA_NAMES, jpeg=jpeg_bytes(sample_image(112, 56)))
    events = list(rig.events(start_ns=10**9, seconds=1.0))
    last_front = max(t for t, e in events if getattr(e, "channel", "") == "CAM_FRONT")
    # CAM_BACK (fires 25 ms after the front) stops before the last two frames: the last anchor
    # has no image within the 60 ms tolerance and waits out the camera timeout
    cut = last_front - 100_000_000
    events = [
        (t, e) for t, e in events if not (getattr(e, "channel", "") == "CAM_BACK" and t > cut)
    ]
    outputs = drive(pipeline, clock, events, mode=mode)
    assert outputs == 12 == pipeline.counters.get("processed")
    assert pipeline.pending() == 0
    assert pipeline.counters.get("substituted/reused") == 1


def test_every_frame_plans_every_frame_of_a_slow_model() -> None:
    clock = ManualClock()
    pipeline = _pipeline(clock, cost_ms=500.0)  # six camera periods per frame
    rig = SyntheticRig(camera_names=CAMERA_NAMES, jpeg=jpeg_bytes(sample_image(112, 56)))
    outputs = drive(pipeline, clock, rig.events(start_ns=10**9, seconds=2.0), mode="every_frame")
    assert outputs == 24 and pipeline.counters.group_total("dropped") == 0
