"""Bad camera input: the pipeline keeps planning and says what is wrong (counters, health, log)."""

from __future__ import annotations

import logging

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
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import CameraFrameIn, HealthLevel, OdometryIn

MS = 1_000_000
GOOD = jpeg_bytes(sample_image(112, 56))
OTHER_SIZE = jpeg_bytes(sample_image(160, 90))


def make(clock: ManualClock, **config) -> FramePipeline:
    return FramePipeline(
        # a generous camera period: wall-clock processing on a loaded CI machine must not WARN
        config=PipelineConfig(
            max_image_bytes=config.pop("max_image_bytes", 200_000), camera_period_ms=1e4, **config
        ),
        backend=FakeBackend(clock=clock, latency_ms=5.0),
        planner=FakePlanner(clock=clock, latency_ms=5.0),
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
    )


def feed(pipeline: FramePipeline, clock: ManualClock, t_ms: float, bad: dict | None = None):
    """Six images at t_ms, some replaced by `bad` (channel -> CameraFrameIn kwargs)."""
    clock.set(max(clock.now_ns(), int(t_ms * MS)))
    pipeline.on_odometry(OdometryIn(int(t_ms * MS), 5.0 * t_ms / 1e3, 0.0, 0.0, 5.0, 0.0))
    for frame in camera_frames(int(t_ms * MS), camera_names=CAMERA_NAMES, data=GOOD):
        override = (bad or {}).get(frame.channel)
        if override == "drop":
            continue
        if override:
            frame = CameraFrameIn(**{**frame.__dict__, **override})
        pipeline.on_camera(frame)
    clock.advance(150 * MS)  # past the camera timeout
    return pipeline.step()


BAD_IMAGES = {
    "empty": ({"data": b""}, "rejected/empty"),
    "oversized": ({"data": GOOD + b"\x00" * 300_000}, "rejected/oversized"),
    "truncated": ({"data": GOOD[: len(GOOD) // 2]}, "decode_failed/truncated"),
    "corrupt": (
        {"data": bytes(np.random.default_rng(1).integers(0, 255, 4000, np.uint8))},
        "decode_failed/corrupt",
    ),
    "resolution": ({"data": OTHER_SIZE}, "decode_failed/resolution"),
    "encoding": ({"encoding": "yuv422"}, "rejected/encoding"),
    "raw_size": (
        {"data": b"\x00" * 100, "encoding": "rgb8", "width": 112, "height": 56},
        "decode_failed/size",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_side_camera_image_is_replaced_and_reported(kind: str, caplog) -> None:
    override, counter = BAD_IMAGES[kind]
    clock = ManualClock()
    pipeline = make(clock)
    assert isinstance(feed(pipeline, clock, 1000).plan, PlanOk)
    with caplog.at_level(logging.WARNING, logger="fastdrive_ros.pipeline"):
        out = feed(pipeline, clock, 1083, {"CAM_BACK_LEFT": override})
    assert out is not None and isinstance(out.plan, PlanOk)  # still planning
    assert pipeline.counters.get(counter) == 1
    assert out.cameras["CAM_BACK_LEFT"].state == "reused"  # last good image, 83 ms old
    assert out.health.level == HealthLevel.WARN and "CAM_BACK_LEFT" in out.health.message
    # logged too, rejected or undecodable alike (issue 11: empty payloads were only counted)
    assert any("CAM_BACK_LEFT" in r.getMessage() for r in caplog.records), kind
    # the next good image clears the warning
    out = feed(pipeline, clock, 1166)
    assert out.health.level == HealthLevel.OK, out.health.message


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_front_image_drops_the_frame_only(kind: str) -> None:
    override, _ = BAD_IMAGES[kind]
    clock = ManualClock()
    # without input_width/height the front image defines the frame size, so a front image of
    # another size is only "wrong" against a configured size
    pipeline = make(clock, input_width=112, input_height=56)
    assert feed(pipeline, clock, 1000, {"CAM_FRONT": override}) is None
    assert pipeline.counters.get("dropped/bad_anchor") == 1
    out = feed(pipeline, clock, 1083)
    assert out is not None and isinstance(out.plan, PlanOk)


def test_camera_that_stops_is_reported_with_its_age_then_black() -> None:
    clock = ManualClock()
    pipeline = make(clock, reuse_max_age_ms=300.0)
    feed(pipeline, clock, 1000)
    states = []
    for k in range(1, 8):
        out = feed(pipeline, clock, 1000 + 83.3 * k, {"CAM_BACK": "drop"})
        assert out is not None and isinstance(out.plan, PlanOk)
        states.append(out.cameras["CAM_BACK"].state)
        assert "CAM_BACK" in out.health.message and "late or stopped" in out.health.message
    assert states[:3] == ["reused"] * 3 and states[-1] == "black"
    assert pipeline.counters.get("substituted/black") >= 1


def test_late_camera_is_waited_for_within_the_timeout() -> None:
    clock = ManualClock()
    pipeline = make(clock, camera_timeout_ms=100.0)
    feed(pipeline, clock, 1000)
    t = 1083 * MS
    clock.set(t)
    for frame in camera_frames(t, camera_names=CAMERA_NAMES, data=GOOD):
        if frame.channel != "CAM_BACK_RIGHT":
            pipeline.on_camera(frame)
    assert pipeline.step(t + 50 * MS) is None  # still waiting
    late = camera_frames(t, camera_names=("CAM_BACK_RIGHT",), data=GOOD, received_ns=t)[0]
    pipeline.on_camera(late)
    clock.set(t + 60 * MS)
    out = pipeline.step()
    assert out is not None and out.cameras["CAM_BACK_RIGHT"].state == "ok"
    assert out.latency_ms["queue"] == pytest.approx(60.0)


@pytest.mark.parametrize("direction", ["back", "forward"])
def test_time_jumps_reset_and_are_reported(direction: str, caplog) -> None:
    clock = ManualClock()
    pipeline = make(clock)
    for k in range(30):
        assert feed(pipeline, clock, 20_000 + 83.3 * k) is not None
    restart = 1_000 if direction == "back" else 90_000
    clock.set(restart * MS)
    with caplog.at_level(logging.WARNING, logger="fastdrive_ros.pipeline"):
        out = feed(pipeline, clock, restart)
    assert out is not None and isinstance(out.plan, PlanOk)
    assert pipeline.counters.get(f"time_jump/{direction}") == 1
    assert pipeline.counters.get(f"time_jump/odometry_{direction}") == 1
    assert f"jumped {direction}" in out.health.message
    assert any("jumped" in r.getMessage() for r in caplog.records)
    # the ego history restarted with the new timeline: one sample, no ghost of the old one
    assert out.ego.history_xy[0, 0] == pytest.approx(-15.0)  # extrapolated 3 s at 5 m/s
    out = feed(pipeline, clock, restart + 83.3)
    assert "jumped" not in out.health.message  # reported once


def test_a_time_jump_resets_the_health_state() -> None:
    """After a jump the failure streak and "since last plan" start again: a /clock that jumped
    forward with the cameras must not read STALE, a failure streak of the old timeline must not
    read ERROR on the new one."""
    clock = ManualClock()
    pipeline = make(clock, error_after_failures=3)
    pipeline.planner.answer = "unparseable"
    for k in range(4):
        feed(pipeline, clock, 20_000 + 83.3 * k)
    assert pipeline.health().level == HealthLevel.ERROR
    pipeline.planner.answer = "ok"
    restart = 90_000.0  # the clock and the cameras jump forward 70 s together
    clock.set(int(restart * MS))
    for frame in camera_frames(int(restart * MS), camera_names=("CAM_FRONT",), data=GOOD):
        pipeline.on_camera(frame)
    report = pipeline.health()
    assert report.level == HealthLevel.WARN, report.message  # the jump itself, nothing else
    assert "jumped forward" in report.message and "consecutive" not in report.message
    assert report.values["consecutive_failures"] == "0"
    assert pipeline.counters.get("time_jump/ego_reset") == 1  # odometry of the old timeline
    out = feed(pipeline, clock, restart + 83.3)
    assert out is not None and isinstance(out.plan, PlanOk)


def test_unknown_driving_command_is_ignored() -> None:
    from fastdrive_ros.pipeline.types import CommandIn

    clock = ManualClock()
    pipeline = make(clock)
    pipeline.on_command(CommandIn(0, "left"))
    pipeline.on_command(CommandIn(0, "backflip"))  # type: ignore[arg-type]
    assert pipeline.counters.get("rejected/command") == 1
    out = feed(pipeline, clock, 1000)
    assert out.ego.command == "left"
