"""Typed keyframe samples: what the nuScenes reader yields for training, evaluation and bags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.data.cameras import CameraCalibration


@dataclass(frozen=True)
class CameraImage:
    """One camera image of a sample.

    Attributes:
        path: absolute path of the JPEG.
        relpath: path relative to the dataroot (the nuScenes `filename`).
        fg_mask: absolute path of the nuScenes-FG mask PNG (see layout.py), None if there is none.
    """

    channel: str
    path: Path
    relpath: str
    timestamp_us: int
    calibration: CameraCalibration
    sample_data_token: str
    fg_mask: Path | None = None


@dataclass(frozen=True)
class AgentBox:
    """Another agent at one future step, in the ego frame of the planning time.

    Attributes:
        center_xy: (2,) metres, x forward, y left.
        size_wlh: (3,) width, length, height in metres (nuScenes order).
        yaw: heading in radians in the ego frame.
    """

    center_xy: np.ndarray
    size_wlh: np.ndarray
    yaw: float
    category: str
    instance_token: str


@dataclass(frozen=True)
class MapGeometry:
    """Map near the ego car, in the ego frame of the planning time (shapely geometries).

    Attributes:
        drivable_area: union of drivable polygons (off-road / intersection metric).
        road_boundary: boundary lines of the drivable area.
    """

    drivable_area: object  # shapely (Multi)Polygon
    road_boundary: object  # shapely (Multi)LineString


@dataclass(frozen=True)
class KeyframeSample:
    """One 2 Hz keyframe with everything planning, training and evaluation need.

    Attributes:
        cameras: six CameraImage in CAMERA_NAMES order.
        ego: ego history (7 x 0.5 s) and CAN-like status at the keyframe.
        future_xy: (6, 2) ground-truth ego positions at +0.5 .. +3.0 s, ego frame.
        future_yaw: (6,) ground-truth ego headings at those times, ego frame.
        future_valid: (6,) False where the scene ends before that step.
        future_boxes: six tuples of AgentBox, one per future step.
        ego_translation / ego_rotation: global ego pose (nuScenes ego_pose), for bags and maps.
    """

    token: str
    scene_name: str
    scene_token: str
    timestamp_us: int
    cameras: tuple[CameraImage, ...]
    ego: EgoState
    future_xy: np.ndarray
    future_yaw: np.ndarray
    future_valid: np.ndarray
    future_boxes: tuple[tuple[AgentBox, ...], ...]
    map: MapGeometry | None
    ego_translation: np.ndarray
    ego_rotation: np.ndarray
