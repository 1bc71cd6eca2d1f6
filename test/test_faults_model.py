"""Bad model output or a crashing model: failures are typed, counted, ERROR after a streak."""

from __future__ import annotations

import logging

import pytest

from fastdrive_ros.core_types import CAMERA_NAMES, PlanFailure, PlanOk
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    camera_frames,
    jpeg_bytes,
    sample_image,
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import HealthLevel, OdometryIn

MS = 1_000_000
JPEG = jpeg_bytes(sample_image(112, 56))


@pytest.fixture
def rig():
    clock = ManualClock()
    backend = FakeBackend(clock=clock, latency_ms=5.0)
    planner = FakePlanner(clock=clock, latency_ms=5.0)
    pipeline = FramePipeline(
        # a generous camera period: wall-clock processing on a loaded CI machine must not WARN
        config=PipelineConfig(error_after_failures=3, stale_after_ms=1000.0, camera_period_ms=1e4),
        backend=backend,
        planner=planner,
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
    )
    state = {"t": 1000.0}

    def frame():
        state["t"] += 83.3
        t = int(state["t"] * MS)
        clock.set(max(clock.now_ns(), t))
        pipeline.on_odometry(OdometryIn(t, 4.0 * t / 1e9, 0.0, 0.0, 4.0, 0.0))
        for f in camera_frames(t, camera_names=CAMERA_NAMES, data=JPEG):
            pipeline.on_camera(f)
        return pipeline.step()

    return pipeline, backend, planner, frame, clock


FAULTS = {
    "non_finite_tokens": ("backend", "non_finite", "non_finite"),
    "backend_raises": ("backend", "raises", "no_answer"),
    "unparseable_answer": ("planner", "unparseable", "unparseable"),
    "non_finite_waypoints": ("planner", "non_finite", "non_finite"),
    "planner_raises": ("planner", "raise", "no_answer"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_a_typed_failure_then_error_then_recovery(rig, fault: str, caplog) -> None:
    pipeline, backend, planner, frame, _ = rig
    where, mode, reason = FAULTS[fault]
    assert isinstance(frame().plan, PlanOk)

    def set_fault(on: bool) -> None:
        if where == "backend":
            setattr(backend, mode, on)
        else:
            planner.answer = mode if on else "ok"

    set_fault(True)
    levels = []
    with caplog.at_level(logging.WARNING, logger="fastdrive_ros.pipeline"):
        for _ in range(3):
            out = frame()
            assert out is not None  # the node keeps publishing (a failed trajectory)
            assert isinstance(out.plan, PlanFailure) and out.plan.reason == reason
            levels.append(out.health.level)
    assert levels[:2] != [HealthLevel.ERROR] * 2 and levels[2] == HealthLevel.ERROR
    assert "3 consecutive failed frames" in pipeline.health().message
    assert pipeline.counters.get(f"failed/{reason}") == 3
    assert any("plan failed" in r.getMessage() for r in caplog.records)
    set_fault(False)
    out = frame()
    assert isinstance(out.plan, PlanOk) and out.health.level == HealthLevel.OK


def test_stale_when_nothing_is_planned(rig) -> None:
    pipeline, _, _, frame, clock = rig
    clock.advance(1500 * MS)
    report = pipeline.health()
    assert report.level == HealthLevel.STALE and "nothing planned yet" in report.message
    frame()
    assert pipeline.health().level == HealthLevel.OK
    clock.advance(2000 * MS)
    report = pipeline.health()
    assert report.level == HealthLevel.STALE and "since the last plan" in report.message


def test_warm_up_touches_no_counter(rig) -> None:
    pipeline, backend, planner, _, _ = rig
    pipeline.warm_up()
    assert backend.calls == 1 and planner.calls == 1
    assert pipeline.counters.snapshot() == {}
