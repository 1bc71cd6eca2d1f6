"""Sustained 6 x 12 Hz input with a slow model on a simulated clock: bounded latency, queues and
memory, every dropped frame counted (no sleeping: the fakes charge their cost to the clock)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch

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
from fastdrive_ros.pipeline.types import HealthLevel

MS = 1_000_000
SECONDS = 60


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: thread hand-offs would dominate on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_slow_model_under_sustained_load(one_torch_thread) -> None:
    clock = ManualClock()
    config = PipelineConfig(ring_size=4, camera_timeout_ms=100.0)
    pipeline = FramePipeline(
        config=config,
        backend=FakeBackend(clock=clock, latency_ms=250.0),  # 3.6 camera periods per frame
        planner=FakePlanner(clock=clock, latency_ms=50.0),
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
    )
    rig = SyntheticRig(camera_names=CAMERA_NAMES, jpeg=jpeg_bytes(sample_image(112, 56)))
    ages: list[float] = []
    levels: set[HealthLevel] = set()
    max_queue = {"max": 0}
    memory: list[int] = []

    def on_output(out) -> None:
        ages.append(out.frame_age_ms)
        levels.add(out.health.level)
        max_queue["max"] = max(max_queue["max"], *pipeline.queue_lengths().values())
        if len(ages) == 40:  # warmed up: start tracing Python allocations
            tracemalloc.start()
        if len(ages) in (60, 190):
            gc.collect()
            memory.append(tracemalloc.get_traced_memory()[0])

    try:
        outputs = drive(
            pipeline,
            clock,
            rig.events(start_ns=10_000 * MS, seconds=SECONDS),
            mode="realtime",
            on_output=on_output,
        )
    finally:
        tracemalloc.stop()
    c = pipeline.counters
    received = c.get("frames/received")
    assert received == SECONDS * 12
    # every anchor image is accounted for: planned, or dropped with a reason
    assert received == c.get("processed") + c.group_total("dropped") + pipeline.pending()
    assert outputs == c.get("processed")
    assert 190 <= outputs <= 205  # one frame per 300 ms of model time over 60 s
    assert c.get("dropped/superseded") >= 480
    assert set(c.group("dropped")) == {"superseded"}
    # latency bounded: model time + at most one camera period of waiting + sync spread (the
    # last frame, planned after the input stopped, waited for up to one model time instead)
    assert max(ages[:-1]) < 300 + 83.4 + 50
    assert ages[-1] < 300 + 300 + 50
    assert min(ages) >= 300
    # bounded queues and no memory growth between plan 100 and plan 400
    assert max_queue["max"] <= max(config.ring_size, config.odom_buffer)
    assert all(
        n <= config.ring_size for k, n in pipeline.queue_lengths().items() if k != "odometry"
    )
    assert memory[1] - memory[0] < 200_000, memory
    # the slow model is visible in the health: frames are being dropped
    assert HealthLevel.WARN in levels
    assert "frames dropped since last plan" in pipeline.health().message
