"""Open-loop metrics on hand-made geometry: L2, collision and its GT skip, intersection, means."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.eval.constant_velocity import constant_velocity_plan
from fastdrive_ros.eval.geometry import (
    EGO_CENTER_OFFSET_M,
    EGO_LENGTH_M,
    agent_footprint,
    ego_footprints,
    headings_from_trajectory,
)
from fastdrive_ros.eval.metrics import GroundTruth, MetricAccumulator, horizon_steps

STRAIGHT = np.stack([np.arange(1, 7) * 5.0, np.zeros(6)], axis=1)  # 10 m/s straight ahead
NO_BOXES: list[list[shapely.Polygon]] = [[] for _ in range(6)]


def truth(**kwargs) -> GroundTruth:
    args = dict(future_xy=STRAIGHT, future_valid=np.ones(6, bool), agent_boxes=NO_BOXES)
    args.update(kwargs)
    return GroundTruth(**args)


def car_at(x: float, y: float) -> shapely.Polygon:
    return agent_footprint(np.array([x, y]), np.array([1.9, 4.5, 1.6]), 0.0)


def test_trajectory_equal_to_gt_has_zero_l2() -> None:
    outcome = truth().score(STRAIGHT)
    assert np.all(outcome.l2 == 0.0)
    acc = MetricAccumulator()
    acc.add(outcome)
    summary = acc.summary()
    assert summary.get("l2", "avg") == 0.0
    assert summary.get("collision", "avg") == 0.0


def test_known_lateral_offset_gives_known_l2() -> None:
    outcome = truth().score(STRAIGHT + [0.0, 0.3])
    np.testing.assert_allclose(outcome.l2, 0.3)
    growing = STRAIGHT + np.stack([np.zeros(6), 0.1 * np.arange(1, 7)], axis=1)
    acc = MetricAccumulator()
    acc.add(truth().score(growing))
    s = acc.summary()
    # cumulative means: steps 1-2 -> 0.15, steps 1-4 -> 0.25, steps 1-6 -> 0.35; avg 0.25
    assert s.get("l2", "1s") == pytest.approx(0.15)
    assert s.get("l2", "2s") == pytest.approx(0.25)
    assert s.get("l2", "3s") == pytest.approx(0.35)
    assert s.get("l2", "avg") == pytest.approx(0.25)


def test_cumulative_averaging_over_samples_and_invalid_steps() -> None:
    acc = MetricAccumulator()
    acc.add(truth().score(STRAIGHT + [0.0, 1.0]))  # 1 m at every step
    valid = np.array([True, True, True, False, False, False])
    acc.add(truth(future_valid=valid).score(STRAIGHT + [0.0, 3.0]))  # 3 m, 3 valid steps
    s = acc.summary()
    # 1 s: pairs (1,1,3,3) -> 2.0; 2 s: (1,1,1,1,3,3,3) -> 13/7; 3 s: (6 x 1, 3 x 3) -> 15/9
    assert s.get("l2", "1s") == pytest.approx(2.0)
    assert s.get("l2", "2s") == pytest.approx(13 / 7)
    assert s.get("l2", "3s") == pytest.approx(15 / 9)
    assert s.get("l2", "avg") == pytest.approx((2.0 + 13 / 7 + 15 / 9) / 3)
    assert s.counts["l2"] == 9
    assert acc.samples == 2


def test_box_on_path_collides_and_box_beside_it_does_not() -> None:
    on_path = [[] for _ in range(6)]
    on_path[3] = [car_at(30.0, 4.0)]  # GT passes y=0 at step 4 (x=20): clear of it
    gt = truth(agent_boxes=on_path)
    planned = STRAIGHT.copy()
    planned[3] = [30.0, 4.0]  # planner drives into the car at step 4
    outcome = gt.score(planned)
    assert outcome.collision[3] == 1.0
    assert np.nansum(outcome.collision) == 1.0
    beside = gt.score(STRAIGHT)  # the car is 4 m to the left: no overlap
    assert np.all(beside.collision == 0.0)
    acc = MetricAccumulator()
    acc.add(outcome)
    s = acc.summary()
    assert s.get("collision", "1s") == 0.0
    assert s.get("collision", "2s") == pytest.approx(25.0)  # 1 of 4 steps, percent
    assert s.get("collision", "3s") == pytest.approx(100 / 6)


def test_step_where_gt_collides_counts_zero_and_stays_in_the_denominator() -> None:
    boxes = [[] for _ in range(6)]
    boxes[1] = [car_at(10.0, 0.0)]  # the logged ego overlaps it at step 2
    boxes[3] = [car_at(20.0, 0.0)]  # ... and at step 4
    boxes[5] = [car_at(30.0, 4.0)]  # beside the log at step 6
    gt = truth(agent_boxes=boxes)
    assert gt.gt_collides.tolist() == [False, True, False, True, False, False]
    planned = STRAIGHT.copy()
    planned[5] = [30.0, 4.0]  # repeats the log's hits at steps 2 and 4, adds its own at step 6
    outcome = gt.score(planned)
    np.testing.assert_array_equal(outcome.collision, [0, 0, 0, 0, 0, 1])
    acc = MetricAccumulator()
    acc.add(outcome)
    s = acc.summary()
    assert s.counts["collision"] == 6  # upstream: (box_coll & ~gt_box_coll) / total
    assert s.get("collision", "2s") == 0.0
    assert s.get("collision", "3s") == pytest.approx(100 / 6)


def test_path_crossing_boundary_intersects_and_goes_off_road() -> None:
    road = shapely.box(-10.0, -3.5, 60.0, 3.5)
    gt = truth(road_boundary=road.boundary, drivable_area=road)
    inside = gt.score(STRAIGHT)
    assert np.all(inside.intersection == 0.0) and np.all(inside.offroad == 0.0)
    veering = STRAIGHT + np.stack([np.zeros(6), 1.5 * np.arange(1, 7)], axis=1)
    outcome = gt.score(veering)
    # the footprint (half width 0.925 m) first touches y = 3.5 at step 2 (y = 3.0) and is fully
    # across it from step 4 (y = 6.0 - 0.925 - tilt > 3.5): still off-road, no longer touching
    np.testing.assert_array_equal(outcome.intersection, [0, 1, 1, 0, 0, 0])
    assert outcome.offroad[0] == 0.0 and np.all(outcome.offroad[1:] == 1.0)
    no_map = truth().score(veering)
    assert np.all(np.isnan(no_map.intersection)) and np.all(np.isnan(no_map.offroad))


def test_intersection_is_any_step_up_to_the_horizon_per_sample() -> None:
    """BEV-Planner: a sample counts at horizon t if ANY counted step up to t touches the line."""
    road = shapely.box(-10.0, -3.5, 60.0, 3.5)
    gt = truth(road_boundary=road.boundary, drivable_area=road)
    late = STRAIGHT.copy()
    late[3:, 1] = [3.2, 3.4, 3.6]  # touches y = 3.5 from step 4 (x = 20) on
    acc = MetricAccumulator()
    acc.add(gt.score(late))
    acc.add(gt.score(STRAIGHT))  # a clean sample
    s = acc.summary()
    # 1 s: neither touched (0 %); 2 s and 3 s: one of two samples (50 %); a per-step mean would
    # say 1/8 = 12.5 % at 2 s and 3/12 = 25 % at 3 s
    assert (s.get("intersection", "1s"), s.get("intersection", "2s")) == (0.0, 50.0)
    assert s.get("intersection", "3s") == 50.0
    assert s.get("intersection", "avg") == pytest.approx(100 / 3)
    assert s.counts["intersection"] == 2


def test_steps_where_the_logged_ego_touches_the_boundary_are_skipped() -> None:
    road = shapely.box(-10.0, -0.5, 60.0, 3.5)  # right boundary at y = -0.5: under the log
    gt = truth(road_boundary=road.boundary)
    assert gt.gt_crosses.all()
    outcome = gt.score(STRAIGHT)
    assert np.all(np.isnan(outcome.intersection))
    acc = MetricAccumulator()
    acc.add(outcome)
    assert acc.summary().get("intersection", "avg") is None


def test_metrics_without_map_report_none() -> None:
    acc = MetricAccumulator()
    acc.add(truth().score(STRAIGHT))
    s = acc.summary()
    assert s.get("intersection", "avg") is None and s.counts["intersection"] == 0


def test_ego_footprint_uses_heading_and_forward_offset() -> None:
    xy = np.array([[0.0, 5.0], [0.0, 10.0], [0.0, 10.0], [0.0, 15.0], [5.0, 15.0], [10.0, 15.0]])
    yaw = headings_from_trajectory(xy)
    # central differences with the origin prepended (SparseDrive / BEV-Planner get_yaw)
    np.testing.assert_allclose(yaw, [np.pi / 2] * 3 + [np.pi / 4, 0.0, 0.0])
    box = ego_footprints(xy)[0]
    centroid = np.array(box.centroid.coords[0])
    np.testing.assert_allclose(centroid, [0.0, 5.0 + EGO_CENTER_OFFSET_M], atol=1e-9)
    assert box.bounds[3] - box.bounds[1] == pytest.approx(EGO_LENGTH_M)


def test_a_standing_car_heads_straight_ahead() -> None:
    """Last waypoint within 0.5 m of the first: every heading 0 (noise-free), as upstream."""
    creeping = np.array([[0.0, 0.0], [0.1, 0.2], [0.0, 0.3], [0.2, 0.3], [0.3, 0.2], [0.4, 0.1]])
    np.testing.assert_array_equal(headings_from_trajectory(creeping), 0.0)
    moving = creeping * 2.0  # 0.82 m from first to last: headings from the path again
    assert np.any(headings_from_trajectory(moving) != 0.0)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="planned trajectory"):
        truth().score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        truth().score(np.full((6, 2), np.nan))
    with pytest.raises(ValueError, match="horizon"):
        horizon_steps(4.0)


def ego(speed: float, yaw_rate: float) -> EgoState:
    return EgoState(np.zeros((7, 2)), speed=speed, acceleration=0.0, yaw_rate=yaw_rate, steering=0)


def test_constant_velocity_straight_and_turning() -> None:
    np.testing.assert_allclose(constant_velocity_plan(ego(10.0, 0.0)), STRAIGHT)
    arc = constant_velocity_plan(ego(10.0, 0.2))
    assert np.all(arc[:, 1] > 0)  # left turn for positive yaw rate
    radius = 10.0 / 0.2
    np.testing.assert_allclose(np.hypot(arc[:, 0], arc[:, 1] - radius), radius)
    chord = 2 * radius * np.sin(0.2 * 0.5 / 2)  # equal arc steps of 0.1 rad
    np.testing.assert_allclose(np.linalg.norm(np.diff(arc, axis=0), axis=1), chord, rtol=1e-9)
    assert np.all(constant_velocity_plan(ego(-3.0, 0.0)) == 0.0)
