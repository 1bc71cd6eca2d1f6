"""Oriented boxes for the open-loop metrics: the ego footprint along a trajectory, other agents.

All in the ego frame of the planning time (x forward, y left, metres). The ego footprint follows
the Impromptu-VLA / UniAD convention: a 4.084 m x 1.85 m box whose centre sits 0.5 m ahead of the
ego origin (rear axle) along the heading, the heading taken from the trajectory itself (direction
of successive waypoints), so a predicted and a ground-truth trajectory are treated alike.
"""

from __future__ import annotations

import numpy as np
import shapely

EGO_LENGTH_M = 4.084
EGO_WIDTH_M = 1.85
EGO_CENTER_OFFSET_M = 0.5
# Below this step length (metres) the heading of the previous step is kept: a stopped car has no
# direction of travel, and atan2 of a near-zero vector is noise.
MIN_HEADING_STEP_M = 0.05


def headings_from_trajectory(
    xy: np.ndarray, *, min_step: float = MIN_HEADING_STEP_M
) -> np.ndarray:
    """Heading of each waypoint from the direction of travel: (T, 2) -> (T,) radians.

    Step i uses the vector from waypoint i-1 (the ego origin for i = 0) to waypoint i; when that
    vector is shorter than `min_step` the previous heading is kept (the ego starts at heading 0).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"trajectory must be (T, 2), got {xy.shape}")
    previous = np.vstack([np.zeros((1, 2)), xy[:-1]])
    delta = xy - previous
    yaw = np.zeros(len(xy))
    current = 0.0
    for i, (dx, dy) in enumerate(delta):
        if np.hypot(dx, dy) >= min_step:
            current = float(np.arctan2(dy, dx))
        yaw[i] = current
    return yaw


def box_corners(center_xy: np.ndarray, length: float, width: float, yaw: float) -> np.ndarray:
    """(4, 2) corners of a box `length` along `yaw` and `width` across it, counter-clockwise."""
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * [
        length / 2,
        width / 2,
    ]
    rot = np.array([[c, -s], [s, c]])
    return half @ rot.T + np.asarray(center_xy, dtype=np.float64)


def oriented_box(
    center_xy: np.ndarray, length: float, width: float, yaw: float
) -> shapely.Polygon:
    """Shapely polygon of an oriented box (see box_corners)."""
    return shapely.Polygon(box_corners(center_xy, length, width, yaw))


def ego_footprints(xy: np.ndarray) -> list[shapely.Polygon]:
    """The ego box at every waypoint of a (T, 2) trajectory, heading from the trajectory."""
    xy = np.asarray(xy, dtype=np.float64)
    yaws = headings_from_trajectory(xy)
    polygons = []
    for point, yaw in zip(xy, yaws):
        center = point + EGO_CENTER_OFFSET_M * np.array([np.cos(yaw), np.sin(yaw)])
        polygons.append(oriented_box(center, EGO_LENGTH_M, EGO_WIDTH_M, float(yaw)))
    return polygons


def agent_footprint(center_xy: np.ndarray, size_wlh: np.ndarray, yaw: float) -> shapely.Polygon:
    """Footprint of another agent from nuScenes' (width, length, height) size."""
    width, length = float(size_wlh[0]), float(size_wlh[1])
    return oriented_box(np.asarray(center_xy, dtype=np.float64)[:2], length, width, float(yaw))
