"""Frame conversions and interpolation used by the reader, masks and bags."""

from __future__ import annotations

import numpy as np
import pytest
from shapely import affinity
from shapely.geometry import Point

from fastdrive_ros.data.agents import InstanceTrack
from fastdrive_ros.data.cameras import matrix_to_quaternion, yaw_matrix
from fastdrive_ros.data.frames import Pose, PoseTrack, ros_quaternion, slerp, wrap_angle
from fastdrive_ros.data.projection import clip_halfplane


def _q(yaw: float) -> np.ndarray:
    return matrix_to_quaternion(yaw_matrix(yaw))


def test_pose_round_trip_and_planar_affine_agree():
    pose = Pose(np.array([100.0, -50.0, 0.0]), _q(2.0))
    pts = np.array([[101.0, -49.0, 0.0], [90.0, -60.0, 0.0]])
    local = pose.to_local(pts)
    np.testing.assert_allclose(pose.to_parent(local), pts, atol=1e-12)
    # x forward: a point 1 m along the heading is (1, 0) in the ego frame
    ahead = pose.translation + [np.cos(2.0), np.sin(2.0), 0.0]
    np.testing.assert_allclose(pose.to_local(ahead[None])[0], [1.0, 0.0, 0.0], atol=1e-12)
    for p, q in zip(pts, local):
        moved = affinity.affine_transform(Point(p[:2]), pose.planar_affine())
        np.testing.assert_allclose([moved.x, moved.y], q[:2], atol=1e-9)
    assert pose.yaw == pytest.approx(2.0)
    assert pose.yaw_to_local(2.5) == pytest.approx(0.5)


def test_slerp_and_wrap():
    q = slerp(_q(0.0), _q(1.0), 0.25)
    assert Pose(np.zeros(3), q).yaw == pytest.approx(0.25)
    # shortest arc across +-pi
    q = slerp(_q(3.0), _q(-3.0), 0.5)
    assert abs(wrap_angle(Pose(np.zeros(3), q).yaw - np.pi)) < 1e-9
    assert wrap_angle(3 * np.pi) == pytest.approx(-np.pi)
    x, y, z, w = ros_quaternion(np.array([0.1, 0.2, 0.3, 0.4]))
    assert (x, y, z, w) == (0.2, 0.3, 0.4, 0.1)


def test_pose_track_interpolates_holds_and_extrapolates():
    t = np.array([0, 1_000_000, 2_000_000])
    track = PoseTrack(
        timestamps_us=t,
        translations=np.array([[0.0, 0, 0], [10.0, 0, 0], [20.0, 0, 0]]),
        rotations=np.stack([_q(0.0), _q(0.2), _q(0.4)]),
    )
    at = track.at(1_500_000)
    np.testing.assert_allclose(at.translation, [15.0, 0, 0])
    assert at.yaw == pytest.approx(0.3)
    np.testing.assert_allclose(track.at(5_000_000).translation, [20.0, 0, 0])  # held
    np.testing.assert_allclose(track.position(-1_000_000), [-10.0, 0, 0])  # extrapolated
    np.testing.assert_allclose(track.position(2_500_000), [25.0, 0, 0])
    np.testing.assert_allclose(track.velocity(1_000_000), [10.0, 0, 0])
    assert track.yaw_rate(1_000_000) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="increasing"):
        PoseTrack(timestamps_us=t[::-1], translations=np.zeros((3, 3)), rotations=np.zeros((3, 4)))


def test_instance_track_tolerance():
    track = InstanceTrack(
        instance_token="i",
        category="vehicle.car",
        times_us=[1_000_000, 0],
        centers=np.array([[10.0, 0, 0], [0.0, 0, 0]]),
        sizes_wlh=np.ones((2, 3)),
        rotations=np.stack([_q(0.0), _q(0.0)]),
        visibility=[1, 3],  # in the order of times_us: level 1 at 1.0 s, 3 at 0 s
    )
    np.testing.assert_allclose(track.at(250_000, 0.0).center, [2.5, 0, 0])
    assert track.at(250_000, 0.0).visibility == 3  # the more visible neighbour
    assert track.at(1_000_000, 0.0).visibility == 1
    np.testing.assert_allclose(track.at(1_050_000, 0.1).center, [10.0, 0, 0])
    assert track.at(1_050_000, 0.0) is None
    assert track.at(-200_000, 0.1) is None


def test_clip_halfplane():
    square = np.array([[0.0, 0], [2, 0], [2, 2], [0, 2]])
    clipped = clip_halfplane(square, np.array([1.0, 0.0]), 1.0)  # keep x >= 1
    assert sorted(map(tuple, np.round(clipped, 9))) == [(1, 0), (1, 2), (2, 0), (2, 2)]
    assert len(clip_halfplane(square, np.array([1.0, 0.0]), 5.0)) == 0
