"""Oriented boxes for the open-loop metrics: the ego footprint along a trajectory, other agents.

All in the ego frame of the planning time (x forward, y left, metres). The ego footprint follows
the Impromptu-VLA / SparseDrive / BEV-Planner convention: a 4.084 m x 1.85 m box whose centre sits
0.5 m ahead of the trajectory point along the heading, the heading taken from the trajectory itself
(central differences, see headings_from_trajectory), so a predicted and a ground-truth trajectory
are treated alike. The trajectory point is the reader's reference point (data/reference.py): the
LiDAR sensor, as upstream, for real checkpoints (`fastdrive eval --reference auto`); the rear axle
for the compact default, whose box therefore sits 0.94 m further back than upstream's.
"""

from __future__ import annotations

import numpy as np
import shapely

EGO_LENGTH_M = 4.084
EGO_WIDTH_M = 1.85
EGO_CENTER_OFFSET_M = 0.5
# A trajectory whose last waypoint lies within this of its first is a standing car: every step
# gets the straight-ahead heading (atan2 of near-zero vectors is noise). SparseDrive /
# BEV-Planner's `get_yaw`, which Impromptu-VLA's evaluation uses.
STRAIGHT_FALLBACK_M = 0.5


def headings_from_trajectory(xy: np.ndarray) -> np.ndarray:
    """Heading of each waypoint, the paper's metric convention: (T, 2) -> (T,) radians.

    Central differences over the trajectory with the ego origin prepended (waypoint i looks
    from waypoint i-1 to waypoint i+1; the last one from i-1 to i); all zero (straight ahead)
    when the last waypoint is within STRAIGHT_FALLBACK_M of the first.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"trajectory must be (T, 2), got {xy.shape}")
    if len(xy) < 2 or np.linalg.norm(xy[-1] - xy[0]) < STRAIGHT_FALLBACK_M:
        return np.zeros(len(xy))
    points = np.vstack([np.zeros((1, 2)), xy])
    ahead = np.vstack([points[2:], points[-1:]])  # waypoint i+1; the last waypoint looks at itself
    behind = points[:-1]  # waypoint i-1; the origin for the first
    delta = ahead - behind
    return np.arctan2(delta[:, 1], delta[:, 0])


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
