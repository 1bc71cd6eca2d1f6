"""The node's side of the reference point: rear-axle odometry in, LiDAR-point plans out and back.

A real Impromptu-VLA checkpoint was trained on SparseDrive's data: its history and its answer are
positions of the LiDAR sensor in the current LiDAR frame (data/reference.py), about 0.94 m ahead
of the rear axle. The node's odometry is base_link (rear axle). So for such a model the history
goes in as LiDAR-point positions and the waypoints come back as rear-axle positions:

    sensor point = rear axle + R(heading) l - l,   rear axle = sensor point + l - R(heading) l

(l = (lever, 0): both frames share their axes, the nominal mount), with each row's heading
taken from the path itself (central differences, straight below 0.05 m of motion; for the
sensor path less the outward slip of a point ahead of the axle): the node has no past headings.
Exact on straight drives, within a centimetre on a 15 m circle (tested in closed form).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fastdrive_ros.core_types import EgoState, PlanOk, PlanResult

# nuScenes LIDAR_TOP: 0.943713 m ahead of the rear axle (data/reference.py, NOMINAL_LIDAR_TOP).
NOMINAL_LIDAR_LEVER_M = 0.943713
_STILL_M = 0.05


def path_headings(xy: np.ndarray) -> np.ndarray:
    """(N, 2) consecutive positions -> (N,) headings by central differences (one-sided at ends).

    A step shorter than 5 cm gives no direction: those headings copy the nearest moving one, or
    0 (straight) when the whole path stands still.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2:
        return np.zeros(len(xy))
    delta = np.gradient(xy, axis=0, edge_order=2 if len(xy) > 2 else 1)
    moving = np.linalg.norm(delta, axis=1) * 2 >= _STILL_M
    headings = np.arctan2(delta[:, 1], delta[:, 0])
    if not moving.any():
        return np.zeros(len(xy))
    index = np.flatnonzero(moving)
    nearest = index[np.abs(np.arange(len(xy))[:, None] - index[None]).argmin(axis=1)]
    return headings[nearest]


def _rotated_lever(headings: np.ndarray, lever: float) -> np.ndarray:
    return lever * np.stack([np.cos(headings), np.sin(headings)], axis=1)


def history_to_sensor(history_xy: np.ndarray, lever: float) -> np.ndarray:
    """(7, 2) rear-axle history (current ego frame, last row 0) -> the sensor point's history.

    The frame's origin moves to the current sensor point; the axes stay (nominal mount).
    """
    xy = np.asarray(history_xy, dtype=np.float64)
    headings = path_headings(xy)
    headings[-1] = 0.0  # the current ego frame's own heading
    out = xy + _rotated_lever(headings, lever) - [lever, 0.0]
    out[-1] = 0.0
    return out


def waypoints_to_rear_axle(waypoints: np.ndarray, lever: float) -> np.ndarray:
    """(6, 2) sensor-point waypoints (current sensor frame) -> rear-axle waypoints (ego frame)."""
    wp = np.asarray(waypoints, dtype=np.float64)
    path = np.vstack([np.zeros((1, 2)), wp])
    headings = path_headings(path)
    # A point ahead of the rear axle slips outward in a turn: its path leads the car's heading
    # by asin(lever x its curvature) (exact on a circle), so the car's heading is the path's
    # minus that; the rear axle (history_to_sensor's input) has no such offset.
    steps = np.linalg.norm(np.gradient(path, axis=0, edge_order=2), axis=1)
    turn = np.gradient(np.unwrap(headings), edge_order=2)
    curvature = np.where(steps > _STILL_M / 2, turn / np.maximum(steps, 1e-9), 0.0)
    headings = headings - np.arcsin(np.clip(lever * curvature, -1.0, 1.0))
    return wp + [lever, 0.0] - _rotated_lever(headings[1:], lever)


def ego_for_sensor(ego: EgoState, lever: float) -> EgoState:
    """`ego` with its history moved to the sensor point (status values stay: CAN is the car's)."""
    return replace(ego, history_xy=history_to_sensor(ego.history_xy, lever))


def plan_to_rear_axle(result: PlanResult, lever: float) -> PlanResult:
    """A PlanOk's waypoints moved back to the rear axle; failures pass through."""
    if not isinstance(result, PlanOk):
        return result
    return replace(result, waypoints=waypoints_to_rear_axle(result.waypoints, lever))
