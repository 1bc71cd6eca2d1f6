"""The six-camera nuScenes rig: names, intrinsics and mounting, used to render and to read data.

Values are rounded from nuScenes' published calibration (1600x900 images, one rig); mounting yaw is
the nominal one of each camera. `rig(width, height)` scales the intrinsics for smaller images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES

NUSCENES_WIDTH, NUSCENES_HEIGHT = 1600, 900

# name: (focal px, cx, cy, yaw deg, translation in the ego frame (x fwd, y left, z up) metres)
_NUSCENES_RIG: dict[str, tuple[float, float, float, float, tuple[float, float, float]]] = {
    "CAM_FRONT": (1266.4, 816.3, 491.5, 0.0, (1.70, 0.02, 1.51)),
    "CAM_FRONT_RIGHT": (1260.8, 808.0, 495.3, -55.0, (1.55, -0.49, 1.50)),
    "CAM_FRONT_LEFT": (1272.6, 826.6, 479.8, 55.0, (1.52, 0.49, 1.51)),
    "CAM_BACK": (809.2, 829.2, 481.8, 180.0, (0.03, 0.00, 1.58)),
    "CAM_BACK_LEFT": (1256.7, 817.8, 451.9, 110.0, (1.04, 0.48, 1.59)),
    "CAM_BACK_RIGHT": (1259.5, 807.3, 501.2, -110.0, (1.03, -0.48, 1.59)),
}

# Optical frame (x right, y down, z forward) -> ego frame (x forward, y left, z up) at yaw 0.
_OPTICAL_TO_EGO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraCalibration:
    """One camera as nuScenes' calibrated_sensor describes it.

    Attributes:
        channel: nuScenes channel name (CAM_FRONT, ...).
        intrinsic: (3, 3) pinhole matrix in pixels for an image of width x height.
        rotation: (4,) quaternion w, x, y, z rotating optical-frame vectors into the ego frame.
        translation: (3,) camera origin in the ego frame, metres.
    """

    channel: str
    intrinsic: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    width: int
    height: int

    @property
    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) optical -> ego rotation."""
        return quaternion_to_matrix(self.rotation)

    def ego_to_camera(self) -> np.ndarray:
        """(4, 4) transform taking ego-frame points to the optical frame."""
        rot = self.rotation_matrix
        out = np.eye(4)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ self.translation
        return out


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) w, x, y, z unit quaternion -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) w, x, y, z quaternion with w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    quat = np.array(q)
    return quat if quat[0] >= 0 else -quat


def yaw_matrix(yaw: float) -> np.ndarray:
    """(3, 3) rotation about the z axis by `yaw` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rig(
    width: int = NUSCENES_WIDTH, height: int = NUSCENES_HEIGHT
) -> tuple[CameraCalibration, ...]:
    """The six cameras in CAMERA_NAMES order, intrinsics scaled to width x height."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    sx, sy = width / NUSCENES_WIDTH, height / NUSCENES_HEIGHT
    cameras = []
    for name in CAMERA_NAMES:
        focal, cx, cy, yaw_deg, translation = _NUSCENES_RIG[name]
        intrinsic = np.array(
            [[focal * sx, 0.0, cx * sx], [0.0, focal * sy, cy * sy], [0.0, 0.0, 1.0]]
        )
        rotation = matrix_to_quaternion(yaw_matrix(np.deg2rad(yaw_deg)) @ _OPTICAL_TO_EGO)
        cameras.append(
            CameraCalibration(
                channel=name,
                intrinsic=intrinsic,
                rotation=rotation,
                translation=np.array(translation, dtype=np.float64),
                width=width,
                height=height,
            )
        )
    return tuple(cameras)
