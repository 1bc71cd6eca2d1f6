from __future__ import annotations

import math

import numpy as np

from fastdrive_ros.pipeline.ego import EgoHistory
from fastdrive_ros.pipeline.types import OdometryIn

S = 1_000_000_000


def _history(**kw) -> EgoHistory:
    return EgoHistory(capacity=kw.pop("capacity", 512), wheelbase_m=kw.pop("wheelbase_m", 2.5))


def test_straight_drive_in_any_heading_gives_history_behind_the_car() -> None:
    ego = _history()
    heading = 2.0  # driving north-west-ish in the odometry frame
    for k in range(0, 81):  # 4 s at 20 Hz, 10 m/s
        t = k * 0.05
        x, y = 10 * t * math.cos(heading), 10 * t * math.sin(heading)
        ego.add(OdometryIn(int(t * S), x, y, heading, vx=10.0, yaw_rate=0.0))
    est = ego.estimate(int(3.5 * S), "straight")
    assert est.status == "ok" and abs(est.odom_age_ms + 500) < 1e-6
    expected = np.stack([np.arange(-6, 1) * 5.0, np.zeros(7)], axis=1)  # 0.5 s x 10 m/s
    np.testing.assert_allclose(est.state.history_xy, expected, atol=1e-6)
    assert est.state.speed == 10.0 and abs(est.state.acceleration) < 1e-9
    assert est.state.steering == 0.0


def test_left_turn_history_follows_the_circle_and_steering_is_positive() -> None:
    ego = _history(wheelbase_m=2.5)
    v, w = 8.0, 0.2  # constant left turn
    for k in range(0, 101):
        t = k * 0.05
        yaw = w * t
        x, y = v / w * math.sin(yaw), v / w * (1 - math.cos(yaw))
        ego.add(OdometryIn(int(t * S), x, y, yaw, vx=v, yaw_rate=w))
    state = ego.estimate(int(5 * S), "left").state
    assert state.command == "left"
    # on a left circle (centre at +y) the past lies behind and also to the left
    radius = v / w
    theta = w * np.arange(6, 0, -1) * 0.5
    expected = np.stack([-radius * np.sin(theta), radius * (1 - np.cos(theta))], axis=1)
    np.testing.assert_allclose(state.history_xy[:-1], expected, atol=0.05)
    np.testing.assert_allclose(np.linalg.norm(state.history_xy[-2]), v * 0.5, rtol=1e-2)
    assert abs(state.steering - math.atan(2.5 * w / v)) < 1e-9


def test_acceleration_and_backward_extrapolation_before_the_first_sample() -> None:
    ego = _history()
    for k in range(0, 21):  # only 1 s of odometry, accelerating at 2 m/s^2 from 5 m/s
        t = k * 0.05
        ego.add(OdometryIn(int(t * S), 5 * t + t * t, 0.0, 0.0, vx=5 + 2 * t, yaw_rate=0.0))
    state = ego.estimate(1 * S, "straight").state
    assert abs(state.speed - 7.0) < 1e-9 and abs(state.acceleration - 2.0) < 1e-6
    # -3 s is 3 s before the first sample: extrapolated at the first sample's speed (5 m/s)
    assert abs(state.history_xy[0, 0] - (-(6.0) - 5 * 2.0)) < 1e-6
    assert np.all(np.diff(state.history_xy[:, 0]) > 0)


def test_no_odometry_and_stale_odometry_are_reported() -> None:
    ego = _history()
    est = ego.estimate(5 * S, "straight")
    assert est.status == "no_odometry" and est.odom_age_ms is None
    assert not est.state.history_xy.any() and est.state.speed == 0.0
    ego.add(OdometryIn(0, 0.0, 0.0, 0.0, vx=3.0, yaw_rate=0.0))
    est = ego.estimate(5 * S, "straight")
    assert est.status == "stale_odometry" and est.odom_age_ms == 5000.0
    # held pose (extrapolation capped at 0.5 s): history stays finite
    assert np.all(np.isfinite(est.state.history_xy))


def test_bad_samples_are_refused_and_the_ring_is_bounded() -> None:
    ego = _history(capacity=8)
    assert not ego.add(OdometryIn(0, float("nan"), 0.0, 0.0, vx=1.0, yaw_rate=0.0))
    for k in range(20):
        assert ego.add(OdometryIn(k * S, float(k), 0.0, 0.0, vx=1.0, yaw_rate=0.0))
    assert not ego.add(OdometryIn(5 * S, 0.0, 0.0, 0.0, vx=1.0, yaw_rate=0.0))  # not after last
    assert len(ego) == 8


def test_history_steps_count_the_observed_times_since_the_first_sample() -> None:
    ego = EgoHistory(capacity=8, wheelbase_m=2.5)  # a ring shorter than the 3 s history
    for k in range(0, 21):  # 1 s of odometry at 20 Hz
        t = k * 0.05
        ego.add(OdometryIn(int(t * S), 5 * t, 0.0, 0.0, vx=5.0, yaw_rate=0.0))
    assert ego.estimate(1 * S, "straight").state.history_steps == 3  # -1.0, -0.5, 0 s
    for k in range(21, 81):  # 4 s in all: the ring dropped the first samples long ago
        t = k * 0.05
        ego.add(OdometryIn(int(t * S), 5 * t, 0.0, 0.0, vx=5.0, yaw_rate=0.0))
    assert ego.estimate(4 * S, "straight").state.history_steps == 7
    ego.reset()  # a time jump starts a new history
    ego.add(OdometryIn(10 * S, 0.0, 0.0, 0.0, vx=5.0, yaw_rate=0.0))
    assert ego.estimate(10 * S, "straight").state.history_steps == 1
