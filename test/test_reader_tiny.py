"""Reader numbers on a hand-made dataset with answers known in closed form (test/nusc_tiny)."""

from __future__ import annotations

import numpy as np
import pytest
from nusc_tiny import CAR_OFFSET, write_tiny_nuscenes
from shapely.geometry import Point

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.ego_status import STEERING_RATIO, WHEELBASE_M, driving_command
from fastdrive_ros.data.reader import NuScenesReader

SPEED, HEADING = 5.0, 0.5


@pytest.fixture(scope="module")
def tiny_can(tmp_path_factory):
    return write_tiny_nuscenes(tmp_path_factory.mktemp("tiny_can"), can_bus=True)


@pytest.fixture(scope="module")
def tiny_poses(tmp_path_factory):
    return write_tiny_nuscenes(tmp_path_factory.mktemp("tiny_poses"), can_bus=False)


def test_future_and_history_follow_the_straight_drive(tiny_can):
    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny")
    assert len(reader) > 0
    expected = np.column_stack([SPEED * 0.5 * np.arange(1, 7), np.zeros(6)])
    for sample in reader:
        np.testing.assert_allclose(sample.future_xy, expected, atol=1e-6)
        np.testing.assert_allclose(sample.future_yaw, 0.0, atol=1e-9)
        assert sample.future_valid.all()
        # history before the scene start is extrapolated at constant velocity: still a line
        hist = np.column_stack([SPEED * 0.5 * np.arange(-6, 1), np.zeros(7)])
        np.testing.assert_allclose(sample.ego.history_xy, hist, atol=1e-6)
        assert [c.channel for c in sample.cameras] == list(CAMERA_NAMES)
        assert all(c.fg_mask is not None and c.path.is_file() for c in sample.cameras)
        assert sample.ego.command == "straight"


def test_history_rows_observed_count_keyframes_since_the_scene_start(tiny_can):
    """As upstream's keyframe history: k + 1 rows at the k-th keyframe, at most 7."""
    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny", with_map=False)
    samples = sorted(reader, key=lambda s: s.timestamp_us)
    first = samples[0].timestamp_us
    for sample in samples:
        k = round((sample.timestamp_us - first) / 0.5e6)
        assert sample.ego.history_steps == min(k + 1, 7), k
    assert samples[0].ego.history_steps == 1


def test_can_bus_status_and_steering_ratio(tiny_can):
    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny", with_map=False)
    assert reader.has_can_bus
    ego = reader[0].ego
    assert ego.speed == pytest.approx(SPEED)
    assert ego.acceleration == pytest.approx(0.25)
    assert ego.yaw_rate == pytest.approx(0.01)
    assert ego.steering == pytest.approx(0.32 / STEERING_RATIO)


def test_status_from_poses_without_can_bus(tiny_poses):
    reader = NuScenesReader(dataroot=tiny_poses, version="v1.0-tiny", with_map=False)
    assert not reader.has_can_bus
    ego = reader[1].ego
    assert ego.speed == pytest.approx(SPEED, rel=1e-6)
    assert ego.acceleration == pytest.approx(0.0, abs=1e-6)
    assert ego.yaw_rate == pytest.approx(0.0, abs=1e-9)
    assert ego.steering == pytest.approx(0.0, abs=1e-9)
    status = reader.ego_status("scene-0001", reader[1].timestamp_us)
    assert status.source == "poses"


def test_future_boxes_in_the_ego_frame(tiny_can):
    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny")
    sample = reader[0]
    assert len(sample.future_boxes) == 6
    for k, boxes in enumerate(sample.future_boxes, start=1):
        (box,) = boxes
        # the car keeps a fixed offset to the ego, which moves SPEED * 0.5 k metres forward
        np.testing.assert_allclose(box.center_xy, CAR_OFFSET + [SPEED * 0.5 * k, 0.0], atol=1e-6)
        assert box.yaw == pytest.approx(0.0, abs=1e-9)
        assert box.category == "vehicle.car"
        np.testing.assert_allclose(box.size_wlh, [1.9, 4.5, 1.6])


def test_boxes_vanish_after_the_last_annotation(tiny_can):
    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny", full_future_only=False)
    last = reader[len(reader) - 1]
    assert not last.future_valid.any()
    assert np.isnan(last.future_xy).all()
    assert all(len(boxes) == 0 for boxes in last.future_boxes)
    assert len(reader) > len(NuScenesReader(dataroot=tiny_can, version="v1.0-tiny"))


def test_map_geometry_in_the_ego_frame(tiny_can):
    sample = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny")[0]
    area = sample.map.drivable_area
    # the strip is 16 m wide, centred on the ego path, clipped to a 60 m disc around the ego
    minx, miny, maxx, maxy = area.bounds
    assert miny == pytest.approx(-8.0) and maxy == pytest.approx(8.0)
    assert minx == pytest.approx(-40.0) and maxx == pytest.approx(60.0, abs=0.1)
    assert area.contains(Point(10.0, 0.0))
    boundary = sample.map.road_boundary
    assert boundary.length > 150.0  # two long edges, plus the strip's back end
    assert boundary.distance(Point(0.0, 8.0)) < 1e-6


def test_command_threshold():
    xy = np.zeros((6, 2))
    valid = np.ones(6, bool)
    assert driving_command(xy, valid) == "straight"
    xy[-1, 1] = 2.5
    assert driving_command(xy, valid) == "left"
    xy[-1, 1] = -2.5
    assert driving_command(xy, valid) == "right"
    valid[-1] = False  # the last valid step decides
    assert driving_command(xy, valid) == "straight"


def test_steering_from_poses_uses_the_bicycle_model():
    from fastdrive_ros.data.ego_status import status_from_poses
    from fastdrive_ros.data.frames import PoseTrack

    # a circle of radius 20 m at 10 m/s: yaw rate 0.5 rad/s
    t = np.arange(0, 4_000_000, 50_000)
    yaw = 0.5 * t * 1e-6
    xy = 20.0 * np.column_stack([np.sin(yaw), 1 - np.cos(yaw)])
    quats = np.column_stack(
        [np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)]
    )
    track = PoseTrack(
        timestamps_us=t, translations=np.column_stack([xy, np.zeros(len(t))]), rotations=quats
    )
    status = status_from_poses(track, 2_000_000)
    assert status.speed == pytest.approx(10.0, rel=1e-3)
    assert status.yaw_rate == pytest.approx(0.5, rel=1e-6)
    assert status.steering == pytest.approx(np.arctan(WHEELBASE_M / 20.0), rel=1e-3)


def test_can_rows_at_every_observed_history_time_reach_the_prompt(tiny_can, tiny_poses):
    """Upstream reads CAN at each past keyframe: acceleration, velocity, raw steering."""
    from fastdrive_ros.nn.prompt import build_prompt

    reader = NuScenesReader(dataroot=tiny_can, version="v1.0-tiny", with_map=False)
    sample = sorted(reader, key=lambda s: s.timestamp_us)[2]  # 3 observed rows
    rows = sample.ego.status_rows
    assert rows is not None and sample.ego.history_steps == 3
    np.testing.assert_allclose(rows[-3:], [[0.25, 0.0, SPEED, 0.32 / STEERING_RATIO]] * 3)
    text = "".join(build_prompt(sample.ego, num_cameras=1, style="impromptu").texts)
    row = "Acceleration: X 0.25, Y 0.0 m/s^2, Velocity: X 5.0, Steering angle: 0.32 "
    assert text.count(row) == 3
    without = NuScenesReader(dataroot=tiny_poses, version="v1.0-tiny", with_map=False)
    assert without[1].ego.status_rows is None  # no CAN: estimated from the poses
