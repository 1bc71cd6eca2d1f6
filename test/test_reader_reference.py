"""The trajectories' reference point: rear axle (nuScenes ego_pose) or LiDAR (Impromptu-VLA)."""

from __future__ import annotations

import numpy as np
import pytest
from nusc_tiny import CAR_OFFSET, write_tiny_nuscenes

from fastdrive_ros.data.cameras import quaternion_to_matrix
from fastdrive_ros.data.ego_status import HISTORY_OFFSETS_S
from fastdrive_ros.data.frames import PoseTrack
from fastdrive_ros.data.reader import NuScenesReader
from fastdrive_ros.data.reference import (
    IDENTITY,
    NOMINAL_LIDAR_MOUNT,
    NOMINAL_LIDAR_TOP,
    lidar_mount,
    reference_history,
    reference_pose,
)

LEVER = 0.943713  # nuScenes LIDAR_TOP, metres ahead of the rear axle
# A LIDAR_TOP calibrated_sensor record of nuScenes v1.0-mini (yaw about -90 deg, ~1 deg tilt).
REAL_ROTATION = [
    0.7077955119163518,
    -0.006492242056004365,
    0.010646214713995808,
    -0.7063073142877817,
]


def _circle(radius: float = 20.0, speed: float = 5.0, seconds: float = 8.0) -> PoseTrack:
    """A car turning left on a circle around (0, radius), starting at the origin heading +x."""
    t = np.arange(0.0, seconds + 1e-9, 0.05)
    theta = speed * t / radius
    xyz = np.column_stack([radius * np.sin(theta), radius * (1 - np.cos(theta)), 0 * t])
    quats = np.column_stack([np.cos(theta / 2), 0 * t, 0 * t, np.sin(theta / 2)])
    return PoseTrack(timestamps_us=(t * 1e6).astype(np.int64), translations=xyz, rotations=quats)


def test_lidar_future_in_a_turn_is_offset_by_the_lever_arm_times_sin_heading() -> None:
    radius, speed = 20.0, 5.0
    track = _circle(radius, speed)
    t0 = 2e6
    theta = np.pi / 6  # 30 degrees after 2.094 s
    dt = theta * radius / speed
    rear = reference_pose(track, t0, IDENTITY)
    lidar = reference_pose(track, t0, NOMINAL_LIDAR_MOUNT)
    rear_xy = rear.to_local(reference_pose(track, t0 + dt * 1e6, IDENTITY).translation[None])
    lidar_xy = lidar.to_local(
        reference_pose(track, t0 + dt * 1e6, NOMINAL_LIDAR_MOUNT).translation[None]
    )
    # closed form: rear (R sin, R (1 - cos)); LiDAR adds a (cos - 1, sin) on the same circle
    np.testing.assert_allclose(
        rear_xy[0, :2], [radius * np.sin(theta), radius * (1 - np.cos(theta))], atol=2e-3
    )
    expected = [
        radius * np.sin(theta) + LEVER * (np.cos(theta) - 1),
        radius * (1 - np.cos(theta)) + LEVER * np.sin(theta),
    ]
    np.testing.assert_allclose(lidar_xy[0, :2], expected, atol=2e-3)
    assert lidar_xy[0, 1] - rear_xy[0, 1] == pytest.approx(LEVER * 0.5, abs=2e-3)  # 0.47 m
    # headings are the same rotation in both frames
    turn = lidar.yaw_to_local(reference_pose(track, t0 + dt * 1e6, NOMINAL_LIDAR_MOUNT).yaw)
    assert float(turn) == pytest.approx(theta, abs=1e-3)
    history = reference_history(track, t0, NOMINAL_LIDAR_MOUNT, HISTORY_OFFSETS_S)
    assert history.shape == (7, 2) and np.all(history[-1] == 0.0)
    back = -0.125  # heading change 0.5 s ago (5 m/s on a 20 m circle)
    expected_back = [
        radius * np.sin(back) + LEVER * (np.cos(back) - 1),
        radius * (1 - np.cos(back)) + LEVER * np.sin(back),
    ]
    np.testing.assert_allclose(history[-2], expected_back, atol=2e-3)


def test_a_calibrated_lidar_record_turns_into_a_forward_left_frame() -> None:
    ideal = lidar_mount(NOMINAL_LIDAR_TOP.translation, NOMINAL_LIDAR_TOP.rotation)
    np.testing.assert_allclose(ideal.rotation_matrix, np.eye(3), atol=1e-12)
    real = lidar_mount([0.943713, 0.0, 1.84023], REAL_ROTATION)
    # a point 10 m ahead of the sensor along the ego's x axis: ~(10, 0) in the LiDAR frame
    ahead = real.to_local(np.array([[LEVER + 10.0, 0.0, 1.84023]]))[0]
    assert ahead[0] == pytest.approx(10.0, abs=0.01) and abs(ahead[1]) < 0.05
    # and exactly what SparseDrive computes: R_cs^T (p - t_cs), then (x, y) -> (y, -x)
    sensor = quaternion_to_matrix(np.array(REAL_ROTATION)).T @ (
        np.array([LEVER + 10.0, 0.0, 1.84023]) - np.array([0.943713, 0.0, 1.84023])
    )
    np.testing.assert_allclose(ahead[:2], [sensor[1], -sensor[0]], atol=1e-12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_nuscenes(tmp_path_factory.mktemp("tiny_ref"), can_bus=True)


@pytest.fixture(scope="module")
def tiny_lidar(tmp_path_factory):
    mount = ([0.943713, 0.0, 1.84023], REAL_ROTATION)
    return write_tiny_nuscenes(tmp_path_factory.mktemp("tiny_lidar"), lidar_mount=mount)


def test_reader_puts_boxes_map_and_futures_in_the_lidar_frame(tiny) -> None:
    rear = NuScenesReader(dataroot=tiny, version="v1.0-tiny", reference="rear_axle")
    lidar = NuScenesReader(dataroot=tiny, version="v1.0-tiny", reference="lidar")
    assert (
        lidar.reference == "lidar" and lidar.reference_mount("scene-0001") is NOMINAL_LIDAR_MOUNT
    )
    a, b = rear[2], lidar[2]
    # straight drive: the same displacements, whatever the point
    np.testing.assert_allclose(b.future_xy, a.future_xy, atol=1e-6)
    np.testing.assert_allclose(b.ego.history_xy, a.ego.history_xy, atol=1e-6)
    car_rear = a.future_boxes[0][0].center_xy
    car_lidar = b.future_boxes[0][0].center_xy
    np.testing.assert_allclose(car_rear, CAR_OFFSET + [2.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(car_lidar, car_rear - [LEVER, 0.0], atol=1e-6)  # 0.94 m closer
    # the map moves with the frame: the drivable area's nearest edge ahead shifts by the lever
    ax0 = a.map.drivable_area.bounds
    bx0 = b.map.drivable_area.bounds
    assert bx0[0] == pytest.approx(ax0[0] - LEVER, abs=1e-6)
    np.testing.assert_allclose(b.ego_translation, a.ego_translation)  # the ego pose stays
    with pytest.raises(ValueError, match="reference must be one of"):
        NuScenesReader(dataroot=tiny, version="v1.0-tiny", reference="front_bumper")


def test_reader_reads_the_lidar_top_calibrated_sensor(tiny_lidar) -> None:
    reader = NuScenesReader(
        dataroot=tiny_lidar, version="v1.0-tiny", reference="lidar", with_map=False
    )
    mount = reader.reference_mount("scene-0001")
    np.testing.assert_allclose(mount.translation, [0.943713, 0.0, 1.84023])
    expected = lidar_mount([0.943713, 0.0, 1.84023], REAL_ROTATION)
    np.testing.assert_allclose(mount.rotation, expected.rotation)
    assert not np.allclose(mount.rotation, NOMINAL_LIDAR_TOP.rotation)
    sample = reader[1]
    car = sample.future_boxes[0][0].center_xy
    # the ~1 degree tilt of the real record moves a car 12 m ahead by centimetres, not metres
    np.testing.assert_allclose(car, CAR_OFFSET + [2.5 - LEVER, 0.0], atol=0.3)
