"""Project 3D boxes and ground polygons into a pinhole camera, clipped at a near plane.

Pixel convention: OpenCV's (integer coordinates are pixel centres), as nuScenes intrinsics are.
Convex shapes (boxes) are clipped edge by edge and filled as the convex hull of what remains;
ground polygons are clipped on the ground plane (to the half-plane in front of the camera and a
range), where straight edges stay straight, so their projections fill exactly.
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.data.cameras import CameraCalibration
from fastdrive_ros.data.frames import Pose

# the 12 edges of a box in the devkit's corner order
BOX_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 0),
    (4, 5), (5, 6), (6, 7), (7, 4),
    (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip


class CameraProjector:
    """One camera at one instant: ego pose (global) + calibration (optical -> ego).

    Args:
        calibration: the camera's intrinsics and mounting.
        ego_pose: the ego pose at the image's timestamp (ego -> global).
        near_m: near-plane depth in metres; geometry closer than this is clipped away.
    """

    def __init__(self, *, calibration: CameraCalibration, ego_pose: Pose, near_m: float = 0.1):
        if near_m <= 0:
            raise ValueError(f"near plane must be positive, got {near_m}")
        self.calibration = calibration
        self.ego_pose = ego_pose
        self.near_m = near_m
        self._rot = calibration.rotation_matrix  # optical -> ego
        self._trans = np.asarray(calibration.translation, dtype=np.float64)
        self._k = np.asarray(calibration.intrinsic, dtype=np.float64)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.calibration.width, self.calibration.height

    def ego_to_camera(self, points_ego: np.ndarray) -> np.ndarray:
        """(N, 3) ego-frame points -> (N, 3) optical-frame points (z = depth)."""
        return (np.asarray(points_ego, dtype=np.float64).reshape(-1, 3) - self._trans) @ self._rot

    def global_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) global points -> (N, 3) optical-frame points."""
        return self.ego_to_camera(self.ego_pose.to_local(points))

    def pixels(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) optical points with z > 0 -> (N, 2) pixel coordinates."""
        pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        uvw = pts @ self._k.T
        return uvw[:, :2] / uvw[:, 2:3]

    def box_polygon(self, corners_global: np.ndarray) -> np.ndarray | None:
        """(M, 2) pixels whose hull is the near-clipped box of (8, 3) corners; None if behind."""
        cam = self.global_to_camera(corners_global)
        front = cam[:, 2] >= self.near_m
        if not front.any():
            return None
        points = [cam[front]]
        for a, b in BOX_EDGES:
            if front[a] != front[b]:
                za, zb = cam[a, 2], cam[b, 2]
                f = (self.near_m - za) / (zb - za)
                points.append((cam[a] + f * (cam[b] - cam[a]))[None])
        return self.pixels(np.concatenate(points))

    def ground_depth_coefficients(self) -> tuple[np.ndarray, float]:
        """(a (2,), c) with depth(x, y) = a . (x, y) + c for ego-frame ground points (z = 0)."""
        axis = self._rot[:, 2]  # optical z in the ego frame
        return axis[:2].copy(), float(-axis @ self._trans)

    def visible_ground(self, max_range_m: float) -> np.ndarray | None:
        """(K, 2) ego-frame ground polygon in front of the near plane and within range."""
        a, c = self.ground_depth_coefficients()
        cx, cy = self._trans[:2]
        r = max_range_m
        square = np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
        clipped = clip_halfplane(square, a, self.near_m - c)
        return clipped if len(clipped) >= 3 else None

    def ground_to_pixels(self, points_ego_xy: np.ndarray) -> np.ndarray:
        """(N, 2) ego-frame ground points (z = 0) in front of the camera -> (N, 2) pixels."""
        pts = np.asarray(points_ego_xy, dtype=np.float64).reshape(-1, 2)
        cam = self.ego_to_camera(np.column_stack([pts, np.zeros(len(pts))]))
        cam[:, 2] = np.maximum(cam[:, 2], self.near_m)  # guard rounding at the clip edge
        return self.pixels(cam)

    def below_horizon(self) -> np.ndarray:
        """(H, W) bool: pixels whose viewing ray points below the ego's ground plane."""
        width, height = self.size
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(self._k).T
        down = rays @ self._rot[2]  # z component of each ray in the ego frame
        return down < 0.0


def clip_halfplane(polygon: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of a (N, 2) polygon where normal . p >= offset."""
    poly = np.asarray(polygon, dtype=np.float64)
    if len(poly) == 0:
        return poly
    side = poly @ normal - offset
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if side[i] >= 0:
            out.append(poly[i])
        if (side[i] >= 0) != (side[j] >= 0):
            f = side[i] / (side[i] - side[j])
            out.append(poly[i] + f * (poly[j] - poly[i]))
    return np.array(out).reshape(-1, 2)
