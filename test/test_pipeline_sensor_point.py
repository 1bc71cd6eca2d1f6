"""The node moves odometry history to the LiDAR point and LiDAR-point plans back (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from fastdrive_ros.core_types import EgoState, PlanFailure, PlanOk
from fastdrive_ros.pipeline.sensor_point import (
    NOMINAL_LIDAR_LEVER_M,
    ego_for_sensor,
    history_to_sensor,
    path_headings,
    plan_to_rear_axle,
    waypoints_to_rear_axle,
)

LEVER = NOMINAL_LIDAR_LEVER_M


def _circle_points(times: np.ndarray, radius: float, speed: float, lever: float) -> np.ndarray:
    """Positions in the frame of the point `lever` ahead of the rear axle at t = 0 (closed form).

    The rear axle drives a left circle; heading theta = speed t / radius.
    """
    theta = speed * times / radius
    rear = np.stack([radius * np.sin(theta), radius * (1 - np.cos(theta))], axis=1)
    point = rear + lever * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return point - [lever, 0.0]


@pytest.mark.parametrize("radius", [15.0, 40.0, 1e6])
def test_round_trip_matches_the_closed_form_on_a_circle(radius: float) -> None:
    speed = 6.0
    past = np.arange(-6, 1) * 0.5
    future = np.arange(1, 7) * 0.5
    rear_history = _circle_points(past, radius, speed, 0.0)
    lidar_history = _circle_points(past, radius, speed, LEVER)
    np.testing.assert_allclose(history_to_sensor(rear_history, LEVER), lidar_history, atol=0.01)
    rear_future = _circle_points(future, radius, speed, 0.0)
    lidar_future = _circle_points(future, radius, speed, LEVER)
    np.testing.assert_allclose(waypoints_to_rear_axle(lidar_future, LEVER), rear_future, atol=0.01)
    if radius < 20:  # the point matters in a turn: ~LEVER * sin(heading) sideways
        assert np.abs(lidar_future - rear_future).max() > 0.3


def test_standing_still_and_failures_pass_through() -> None:
    still = np.zeros((7, 2))
    np.testing.assert_array_equal(history_to_sensor(still, LEVER), still)
    assert np.all(path_headings(still) == 0.0)
    np.testing.assert_allclose(waypoints_to_rear_axle(np.zeros((6, 2)), LEVER), 0.0, atol=1e-12)
    failure = PlanFailure("unparseable", "no tag")
    assert plan_to_rear_axle(failure, LEVER) is failure
    ok = PlanOk(waypoints=np.column_stack([np.arange(1, 7) * 2.0, np.zeros(6)]), text="x")
    moved = plan_to_rear_axle(ok, LEVER)
    np.testing.assert_allclose(moved.waypoints, ok.waypoints, atol=1e-12)  # straight: same
    assert moved.text == "x"
    ego = EgoState(
        history_xy=still, speed=0.0, acceleration=0.0, yaw_rate=0.0, steering=0.1, history_steps=3
    )
    assert ego_for_sensor(ego, LEVER).history_steps == 3
    assert ego_for_sensor(ego, LEVER).steering == 0.1


def test_the_adapter_moves_points_only_for_checkpoints(tmp_path) -> None:
    from fastdrive_ros.nn.configs import tiny_config
    from fastdrive_ros.nn.vla import VLA
    from fastdrive_ros.pipeline.factory import VLAPlannerAdapter, sensor_lever

    bundle = VLA.build(tiny_config(cameras=1, head="text", pruner=False), seed=1)
    assert sensor_lever(bundle) is None
    bundle.config.tokenizer = {"kind": "checkpoint"}  # what load_checkpoint writes
    assert sensor_lever(bundle) == LEVER
    assert VLAPlannerAdapter(vla=bundle).lever == LEVER
