from __future__ import annotations

import math

import pytest

from fastdrive_ros.pipeline.health import HealthInputs, assess
from fastdrive_ros.pipeline.latency import RollingLatency, StageTimer
from fastdrive_ros.pipeline.types import CameraSlotReport, HealthLevel


def inputs(**kw) -> HealthInputs:
    base = dict(
        since_plan_ms=10.0,
        has_planned=True,
        stale_after_ms=1000.0,
        consecutive_failures=0,
        error_after_failures=3,
        last_failure="",
        processing_p50_ms=40.0,
        camera_period_ms=83.3,
        cameras={"CAM_FRONT": CameraSlotReport("ok", 0.0)},
        rejects={},
        dropped_recent=0,
        odometry="ok",
        time_jump="",
        latency={"total": (40.0, 55.0)},
        last_latency={"total": 41.0},
        counters={"processed": 5},
        info={"model": "m"},
    )
    base.update(kw)
    return HealthInputs(**base)


def test_ok_and_values() -> None:
    report = assess(inputs())
    assert report.level == HealthLevel.OK and report.message == "planning normally"
    v = report.values
    assert (
        v["total_ms"] == "41.00" and v["total_ms_p50"] == "40.00" and v["total_ms_p95"] == "55.00"
    )
    assert v["processed"] == "5" and v["model"] == "m" and v["camera/CAM_FRONT"] == "ok"


@pytest.mark.parametrize(
    ("change", "level", "text"),
    [
        ({"processing_p50_ms": 120.0}, HealthLevel.WARN, "exceeds the camera period"),
        ({"dropped_recent": 2}, HealthLevel.WARN, "2 frames dropped"),
        ({"odometry": "no_odometry"}, HealthLevel.WARN, "no odometry"),
        ({"odometry": "stale_odometry"}, HealthLevel.WARN, "odometry is stale"),
        ({"rejects": {"CAM_BACK": "oversized"}}, HealthLevel.WARN, "CAM_BACK image rejected"),
        ({"time_jump": "camera time jumped back"}, HealthLevel.WARN, "jumped back"),
        (
            {"cameras": {"CAM_BACK": CameraSlotReport("black", None, "no image received")}},
            HealthLevel.WARN,
            "CAM_BACK black: no image received",
        ),
        (
            {"consecutive_failures": 3, "last_failure": "unparseable: x"},
            HealthLevel.ERROR,
            "3 consecutive failed frames (last: unparseable: x)",
        ),
        ({"since_plan_ms": 1500.0}, HealthLevel.STALE, "no frame planned for 1500 ms"),
    ],
)
def test_each_rule(change: dict, level: HealthLevel, text: str) -> None:
    report = assess(inputs(**change))
    assert report.level == level and text in report.message


def test_worst_level_wins_and_comes_first() -> None:
    report = assess(inputs(dropped_recent=1, consecutive_failures=5, since_plan_ms=5000.0))
    assert report.level == HealthLevel.STALE
    assert report.message.startswith("no frame planned")
    assert report.message.index("consecutive") < report.message.index("dropped")


def test_rolling_latency_is_bounded_and_ordered() -> None:
    rolling = RollingLatency(window=10)
    for k in range(100):
        rolling.add({"total": float(k), "decode": 1.0, "custom": 2.0, "prefill": math.nan})
    pct = rolling.percentiles()
    assert list(pct) == ["decode", "total", "custom"]  # STAGES order, then the rest
    assert pct["total"][0] == pytest.approx(94.5)  # only the last 10 values
    assert rolling.count("total") == 100 and rolling.last("total") == 99.0
    assert "prefill" not in pct


def test_stage_timer_accumulates() -> None:
    timer = StageTimer()
    with timer.stage("decode"):
        pass
    timer.add("decode", 2.0)
    assert timer.ms["decode"] >= 2.0


def test_repeated_faults_log_once_per_interval(caplog) -> None:
    import logging

    from fastdrive_ros.pipeline.log_throttle import ThrottledLog

    log = ThrottledLog(logging.getLogger("fastdrive_ros.test"), interval_s=60.0)
    with caplog.at_level(logging.WARNING, logger="fastdrive_ros.test"):
        for k in range(5):
            log.warning("decode/CAM_BACK/truncated", "bad image %d", k)
        log.warning("decode/CAM_FRONT/corrupt", "other")
    assert [r.getMessage() for r in caplog.records] == ["bad image 0", "other"]
    log._interval = 0.0  # the next one after the interval says how many were held back
    with caplog.at_level(logging.WARNING, logger="fastdrive_ros.test"):
        log.warning("decode/CAM_BACK/truncated", "bad image %d", 9)
    assert caplog.records[-1].getMessage() == "bad image 9 (and 4 more like it in the last 0 s)"
