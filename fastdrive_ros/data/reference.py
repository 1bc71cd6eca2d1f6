"""The reference point of trajectories: the rear axle (nuScenes ego_pose) or the LiDAR sensor.

Impromptu-VLA's nuScenes data comes from SparseDrive's converter: every ground-truth waypoint is
the global pose of the LIDAR_TOP sensor at that time (ego_pose composed with the sensor's
calibrated_sensor record), expressed in the LiDAR frame at the planning time; Impromptu turns
the LiDAR's axes (x right, y forward) into x forward, y left. The ego box of the collision metric
sits 0.5 m ahead of that point. A model trained on those waypoints plans LiDAR positions: scored
against rear-axle ground truth, its waypoints differ by the lever arm (0.94 m) rotated by the
heading change, about 0.47 m sideways in a 30-degree turn.

"lidar" frame (this module): origin at the LiDAR sensor, axes = the sensor's rotation turned by
+90 degrees about its z axis, so x points forward and y left as in the ego frame (for the ideal
mount, yaw -90 degrees, the axes are exactly the ego's). Positions, headings, agent boxes and the
map all go through one `Pose` per time (`reference_pose`), so every consumer of a Pose (to_local,
yaw_to_local, AgentBox.in_ego, LocationMap.near) works unchanged.

Real nuScenes: the LIDAR_TOP calibrated_sensor of the scene's samples. The synthetic world has no
LiDAR records: NOMINAL_LIDAR_TOP (nuScenes' LIDAR_TOP translation, ideal -90-degree yaw) stands in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fastdrive_ros.data.frames import Pose, PoseTrack

ReferencePoint = Literal["rear_axle", "lidar"]
REFERENCE_POINTS: tuple[str, ...] = ("rear_axle", "lidar")
LIDAR_CHANNEL = "LIDAR_TOP"

# nuScenes LIDAR_TOP mounting as a calibrated_sensor record (translation, metres in the ego
# frame); the rotation is yaw -90 degrees: the sensor's x axis points right, y forward.
_HALF = float(np.sqrt(0.5))
NOMINAL_LIDAR_TOP = Pose(
    translation=np.array([0.943713, 0.0, 1.84023]),
    rotation=np.array([_HALF, 0.0, 0.0, -_HALF]),
)
# +90 degrees about z: from the LiDAR's axes (x right, y forward) to x forward, y left.
_LIDAR_TO_FORWARD_LEFT = np.array([_HALF, 0.0, 0.0, _HALF])
IDENTITY = Pose(translation=np.zeros(3), rotation=np.array([1.0, 0.0, 0.0, 0.0]))


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (4,) w, x, y, z quaternions (apply b, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def compose(parent: Pose, child: Pose) -> Pose:
    """The pose of `child` (given in `parent`'s frame) in `parent`'s parent frame."""
    translation = parent.rotation_matrix @ np.asarray(child.translation) + parent.translation
    rotation = quaternion_multiply(parent.rotation, child.rotation)
    return Pose(translation, rotation / np.linalg.norm(rotation))


def lidar_mount(translation: np.ndarray, rotation: np.ndarray) -> Pose:
    """The lidar reference frame in the ego frame, from a LIDAR_TOP calibrated_sensor record."""
    turned = quaternion_multiply(np.asarray(rotation, dtype=np.float64), _LIDAR_TO_FORWARD_LEFT)
    return Pose(np.asarray(translation, dtype=np.float64), turned / np.linalg.norm(turned))


NOMINAL_LIDAR_MOUNT = lidar_mount(NOMINAL_LIDAR_TOP.translation, NOMINAL_LIDAR_TOP.rotation)


def reference_pose(track: PoseTrack, t_us: float, mount: Pose) -> Pose:
    """The reference frame at t: the ego pose composed with `mount`.

    Outside the track the position is extrapolated as PoseTrack.position does (the rotation is
    held), so history before a scene's first pose stays a constant-velocity line.
    """
    ego = track.at(t_us)
    ego = Pose(track.position(t_us), ego.rotation)
    return compose(ego, mount)


def reference_history(
    track: PoseTrack, t_us: float, mount: Pose, offsets_s: tuple[float, ...]
) -> np.ndarray:
    """(len(offsets), 2) reference-point positions at t + offsets in the frame at t."""
    current = reference_pose(track, t_us, mount)
    points = np.stack(
        [reference_pose(track, t_us + dt * 1e6, mount).translation for dt in offsets_s]
    )
    local = current.to_local(points)[:, :2]
    local[np.isclose(offsets_s, 0.0)] = 0.0
    return local


def check_reference(reference: str) -> ReferencePoint:
    if reference not in REFERENCE_POINTS:
        raise ValueError(f"reference must be one of {REFERENCE_POINTS}, got {reference!r}")
    return reference  # type: ignore[return-value]
