from __future__ import annotations

import numpy as np
import pytest

from fastdrive_ros.core_types import CAMERA_NAMES, PlanOk
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    camera_frames,
    jpeg_bytes,
    sample_image,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import HealthLevel, OdometryIn

MS = 1_000_000
JPEG = jpeg_bytes(sample_image(112, 56))


def make(clock: ManualClock, **config) -> tuple[FramePipeline, FakeBackend, FakePlanner]:
    backend = FakeBackend(clock=clock, latency_ms=config.pop("backend_ms", 10.0))
    planner = FakePlanner(clock=clock, latency_ms=config.pop("planner_ms", 5.0))
    pipeline = FramePipeline(
        # a generous camera period: wall-clock processing on a loaded CI machine must not WARN
        config=PipelineConfig(camera_period_ms=config.pop("camera_period_ms", 1e4), **config),
        backend=backend,
        planner=planner,
        clock=clock,
        image_size=(56, 112),  # the real nn.vision preprocessing, at a tiny size
    )
    return pipeline, backend, planner


def feed(pipeline: FramePipeline, clock: ManualClock, t_ms: float, **kw) -> None:
    clock.set(max(clock.now_ns(), int(t_ms * MS)))
    pipeline.on_odometry(OdometryIn(int(t_ms * MS), 6.0 * t_ms / 1e3, 0.0, 0.0, 6.0, 0.0))
    skip = kw.pop("skip", ())
    for frame in camera_frames(int(t_ms * MS), camera_names=CAMERA_NAMES, data=JPEG, **kw):
        if frame.channel not in skip:
            pipeline.on_camera(frame)


def test_one_frame_end_to_end() -> None:
    clock = ManualClock()
    pipeline, backend, planner = make(clock)
    for k in range(40):  # odometry history first (3.3 s)
        t = k * 83.0
        clock.set(int(t * MS))
        pipeline.on_odometry(OdometryIn(int(t * MS), 6.0 * t / 1e3, 0.0, 0.0, 6.0, 0.0))
    feed(pipeline, clock, 3400.0)
    out = pipeline.step()
    assert out is not None and isinstance(out.plan, PlanOk)
    assert out.stamp_ns == 3400 * MS and out.frame_id == 1
    # 6 cameras x (56/28) x (112/28) = 48 tokens, half kept
    assert out.total_tokens == 48 and out.kept_tokens == 24
    assert np.all(np.diff(out.kept_index) > 0)
    assert out.grid_thw.tolist() == [[1, 4, 8]] * 6
    for stage in ("queue", "decode", "preprocess", "encode", "prune", "prefill", "plan", "total"):
        assert stage in out.latency_ms, stage
    assert out.frame_age_ms == pytest.approx(15.0)  # the fakes charge 10 + 5 ms to the clock
    assert out.health.level == HealthLevel.OK, out.health.message
    assert out.health.values["odometry"] == "ok"
    np.testing.assert_allclose(planner.last_ego.history_xy[:, 0], np.arange(-6, 1) * 3.0)
    assert planner.last_ego.speed == pytest.approx(6.0)
    assert {c: r.state for c, r in out.cameras.items()} == dict.fromkeys(CAMERA_NAMES, "ok")
    assert out.counters["processed"] == 1 and out.counters["decoded"] == 6
    assert pipeline.step() is None  # nothing new


def test_every_frame_is_accounted_for() -> None:
    clock = ManualClock()
    pipeline, _, _ = make(clock, backend_ms=150.0, ring_size=3)
    rng = np.random.default_rng(0)
    outputs = 0
    for k in range(60):
        feed(pipeline, clock, 1000 + k * 83.3)
        if rng.random() < 0.5 and pipeline.step() is not None:
            outputs += 1
    c = pipeline.counters
    total = c.get("processed") + c.group_total("dropped") + pipeline.pending()
    assert c.get("frames/received") == 60 == total
    assert c.get("processed") == outputs
    assert c.get("dropped/superseded") > 0


@pytest.mark.parametrize("policy", ["reuse_last", "black", "skip"])
def test_missing_camera_policy(policy: str) -> None:
    clock = ManualClock()
    pipeline, _, _ = make(clock, missing_camera=policy, reuse_max_age_ms=200.0)
    feed(pipeline, clock, 1000.0)
    assert pipeline.step() is not None
    for k, t in enumerate((1083.0, 1166.0, 1250.0, 1333.0)):
        feed(pipeline, clock, t, skip=("CAM_BACK",))
        clock.advance(100 * MS)  # the camera timeout passes
        out = pipeline.step()
        if policy == "skip":
            assert out is None
            assert pipeline.counters.get("dropped/missing_camera") == k + 1
            continue
        assert out is not None
        report = out.cameras["CAM_BACK"]
        expected = "reused" if policy == "reuse_last" and t - 1000.0 <= 200.0 else "black"
        assert report.state == expected, (t, report)
        assert out.health.level == HealthLevel.WARN
        assert "CAM_BACK" in out.health.message
        assert out.counters["frames/incomplete"] == k + 1
    health = pipeline.health()
    assert "CAM_BACK" in health.message


def test_the_planner_gets_a_frame_memory_slot_at_the_frame_time() -> None:
    """Frames 0.5 s apart: the second frame's slot hands what the first one kept."""
    import torch

    clock = ManualClock()
    pipeline, _, planner = make(clock)
    for k in range(40):
        t = k * 83.0
        clock.set(int(t * MS))
        pipeline.on_odometry(OdometryIn(int(t * MS), 6.0 * t / 1e3, 0.0, 0.0, 6.0, 0.0))
    feed(pipeline, clock, 3400.0)
    assert pipeline.step() is not None
    first = planner.last_memory
    assert first is not None and first.stamp_s == pytest.approx(3.4) and first.previous is None
    first.keep(torch.tensor([1.0]))  # what a planner with a decision reader keeps
    feed(pipeline, clock, 3900.0)
    assert pipeline.step() is not None
    assert planner.last_memory.stamp_s == pytest.approx(3.9)
    assert planner.last_memory.previous.tolist() == [1.0]
