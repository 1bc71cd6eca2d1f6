"""A hand-made, analytically known nuScenes-format dataset for reader/bag tests (not collected).

One scene: the ego drives straight at `speed` m/s along heading `heading` (rad); one car drives
alongside; six cameras at 12 Hz (2 Hz keyframes); a rectangular drivable area along the road.
Everything the reader derives (futures, boxes, map) has a closed form, so tests can check numbers
exactly, and individual files can be broken on purpose to test errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.cameras import matrix_to_quaternion, rig, yaw_matrix
from fastdrive_ros.data.layout import fg_mask_path

T0_US = 1_600_000_000_000_000
FRAME_US = 83_333  # ~12 Hz
CAMERA_OFFSET_US = 8_000  # each camera fires a little after the previous one
CAR_OFFSET = np.array([12.0, -3.5])  # the other car, in the ego frame at every time


def _dump(path: Path, records: object) -> None:
    path.write_text(json.dumps(records), encoding="utf-8")


def ego_position(t_us: int, *, speed: float, heading: float) -> np.ndarray:
    dt = (t_us - T0_US) * 1e-6
    start = np.array([400.0, 900.0])
    return start + speed * dt * np.array([np.cos(heading), np.sin(heading)])


def write_tiny_nuscenes(
    root: Path,
    *,
    version: str = "v1.0-tiny",
    seconds: float = 6.0,
    speed: float = 5.0,
    heading: float = 0.5,
    image_size: tuple[int, int] = (32, 18),
    location: str = "boston-seaport",
    can_bus: bool = False,
    masks: bool = True,
    scene_names: tuple[str, ...] = ("scene-0001",),
    lidar_mount: tuple[list[float], list[float]] | None = None,
) -> Path:
    """`lidar_mount` = (translation, rotation wxyz): a LIDAR_TOP keyframe record per sample."""
    root.mkdir(parents=True, exist_ok=True)
    tables = root / version
    tables.mkdir(exist_ok=True)
    width, height = image_size
    rotation = matrix_to_quaternion(yaw_matrix(heading)).tolist()
    n_frames = int(round(seconds * 1e6 / FRAME_US)) + 1

    sensors, calibs = [], []
    for i, cam in enumerate(rig(width, height)):
        sensors.append({"token": f"sensor-{i}", "channel": cam.channel, "modality": "camera"})
        calibs.append(
            {
                "token": f"calib-{i}",
                "sensor_token": f"sensor-{i}",
                "translation": cam.translation.tolist(),
                "rotation": cam.rotation.tolist(),
                "camera_intrinsic": cam.intrinsic.tolist(),
            }
        )
    if lidar_mount is not None:
        sensors.append({"token": "sensor-lidar", "channel": "LIDAR_TOP", "modality": "lidar"})
        calibs.append(
            {
                "token": "calib-lidar",
                "sensor_token": "sensor-lidar",
                "translation": list(lidar_mount[0]),
                "rotation": list(lidar_mount[1]),
                "camera_intrinsic": [],
            }
        )
    category = [{"token": "cat-car", "name": "vehicle.car", "description": ""}]
    attribute = [{"token": "attr-moving", "name": "vehicle.moving", "description": ""}]
    visibility = [{"token": "4", "level": "v80-100", "description": ""}]
    log = [
        {"token": "log-0", "location": location, "logfile": "", "vehicle": "", "date_captured": ""}
    ]
    map_png = root / "maps" / "tiny.png"
    map_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(map_png), np.zeros((4, 4), np.uint8))
    maps = [
        {
            "token": "map-0",
            "log_tokens": ["log-0"],
            "category": "semantic_prior",
            "filename": "maps/tiny.png",
        }
    ]

    scenes, samples, sample_data, ego_poses, anns, instances = [], [], [], [], [], []
    jpeg = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))[1].tobytes()
    mask_png = cv2.imencode(".png", np.zeros((height, width), np.uint8))[1].tobytes()
    for s_i, scene_name in enumerate(scene_names):
        base = T0_US + s_i * 100_000_000
        key_frames = list(range(0, n_frames, 6))
        sample_tokens = [f"s{s_i}-sample-{k}" for k in range(len(key_frames))]
        for k, frame in enumerate(key_frames):
            samples.append(
                {
                    "token": sample_tokens[k],
                    "timestamp": base + frame * FRAME_US,
                    "scene_token": f"scene-{s_i}",
                    "prev": sample_tokens[k - 1] if k > 0 else "",
                    "next": sample_tokens[k + 1] if k + 1 < len(key_frames) else "",
                }
            )
        inst = f"s{s_i}-inst-0"
        instances.append(
            {
                "token": inst,
                "category_token": "cat-car",
                "nbr_annotations": len(key_frames),
                "first_annotation_token": f"s{s_i}-ann-0",
                "last_annotation_token": f"s{s_i}-ann-{len(key_frames) - 1}",
            }
        )
        for k, sample in enumerate(samples[-len(key_frames) :]):
            ego_xy = ego_position(
                sample["timestamp"] - s_i * 100_000_000, speed=speed, heading=heading
            )
            c, s = np.cos(heading), np.sin(heading)
            car_xy = ego_xy + np.array([[c, -s], [s, c]]) @ CAR_OFFSET
            anns.append(
                {
                    "token": f"s{s_i}-ann-{k}",
                    "sample_token": sample["token"],
                    "instance_token": inst,
                    "visibility_token": "4",
                    "attribute_tokens": ["attr-moving"],
                    "translation": [float(car_xy[0]), float(car_xy[1]), 0.8],
                    "size": [1.9, 4.5, 1.6],
                    "rotation": rotation,
                    "prev": f"s{s_i}-ann-{k - 1}" if k > 0 else "",
                    "next": f"s{s_i}-ann-{k + 1}" if k + 1 < len(key_frames) else "",
                    "num_lidar_pts": 10,
                    "num_radar_pts": 0,
                }
            )
        if lidar_mount is not None:
            for k, sample in enumerate(samples[-len(key_frames) :]):
                t = sample["timestamp"]
                xy = ego_position(t - s_i * 100_000_000, speed=speed, heading=heading)
                token = f"s{s_i}-sd-lidar-{k}"
                ego_poses.append(
                    {
                        "token": f"pose-{token}",
                        "timestamp": t,
                        "translation": [float(xy[0]), float(xy[1]), 0.0],
                        "rotation": rotation,
                    }
                )
                sample_data.append(
                    {
                        "token": token,
                        "sample_token": sample["token"],
                        "ego_pose_token": f"pose-{token}",
                        "calibrated_sensor_token": "calib-lidar",
                        "timestamp": t,
                        "fileformat": "pcd",
                        "is_key_frame": True,
                        "height": 0,
                        "width": 0,
                        "filename": f"samples/LIDAR_TOP/{token}.pcd.bin",
                        "prev": f"s{s_i}-sd-lidar-{k - 1}" if k > 0 else "",
                        "next": f"s{s_i}-sd-lidar-{k + 1}" if k + 1 < len(key_frames) else "",
                    }
                )
        for c_i, channel in enumerate(CAMERA_NAMES):
            folder_k = root / "samples" / channel
            folder_s = root / "sweeps" / channel
            folder_k.mkdir(parents=True, exist_ok=True)
            folder_s.mkdir(parents=True, exist_ok=True)
            tokens = [f"s{s_i}-sd-{channel}-{f}" for f in range(n_frames)]
            for f in range(n_frames):
                t = base + f * FRAME_US + c_i * CAMERA_OFFSET_US
                key = f % 6 == 0
                kind = "samples" if key else "sweeps"
                rel = f"{kind}/{channel}/s{s_i}_{channel}_{t}.jpg"
                (root / rel).write_bytes(jpeg)
                if masks:
                    mp = fg_mask_path(root, rel)
                    mp.parent.mkdir(parents=True, exist_ok=True)
                    mp.write_bytes(mask_png)
                xy = ego_position(t - s_i * 100_000_000, speed=speed, heading=heading)
                ego_poses.append(
                    {
                        "token": f"pose-{tokens[f]}",
                        "timestamp": t,
                        "translation": [float(xy[0]), float(xy[1]), 0.0],
                        "rotation": rotation,
                    }
                )
                sample_data.append(
                    {
                        "token": tokens[f],
                        "sample_token": sample_tokens[min(len(key_frames) - 1, (f + 5) // 6)],
                        "ego_pose_token": f"pose-{tokens[f]}",
                        "calibrated_sensor_token": f"calib-{c_i}",
                        "timestamp": t,
                        "fileformat": "jpg",
                        "is_key_frame": key,
                        "height": height,
                        "width": width,
                        "filename": rel,
                        "prev": tokens[f - 1] if f > 0 else "",
                        "next": tokens[f + 1] if f + 1 < n_frames else "",
                    }
                )
        scenes.append(
            {
                "token": f"scene-{s_i}",
                "name": scene_name,
                "description": "tiny straight drive",
                "log_token": "log-0",
                "nbr_samples": len(key_frames),
                "first_sample_token": sample_tokens[0],
                "last_sample_token": sample_tokens[-1],
            }
        )
        if can_bus:
            can = root / "can_bus"
            can.mkdir(exist_ok=True)
            pose_msgs = [
                {
                    "utime": base + int(i * 20_000),
                    "pos": [0, 0, 0],
                    "orientation": rotation,
                    "vel": [speed, 0.0, 0.0],
                    "accel": [0.25, 0.0, 9.81],
                    "rotation_rate": [0.0, 0.0, 0.01],
                }
                for i in range(int(seconds * 50) + 1)
            ]
            steer = [
                {"utime": base + int(i * 10_000), "value": 0.32}
                for i in range(int(seconds * 100) + 1)
            ]
            _dump(can / f"{scene_name}_pose.json", pose_msgs)
            _dump(can / f"{scene_name}_steeranglefeedback.json", steer)

    for name, records in {
        "category": category,
        "attribute": attribute,
        "visibility": visibility,
        "instance": instances,
        "sensor": sensors,
        "calibrated_sensor": calibs,
        "ego_pose": ego_poses,
        "log": log,
        "scene": scenes,
        "sample": samples,
        "sample_data": sample_data,
        "sample_annotation": anns,
        "map": maps,
    }.items():
        _dump(tables / f"{name}.json", records)
    _write_map(root, location, speed=speed, heading=heading, seconds=seconds)
    return root


def _write_map(root: Path, location: str, *, speed: float, heading: float, seconds: float) -> None:
    """A drivable strip 8 m either side of the ego's path, 40 m beyond both ends."""
    start = ego_position(T0_US, speed=speed, heading=heading)
    forward = np.array([np.cos(heading), np.sin(heading)])
    left = np.array([-forward[1], forward[0]])
    a, b = start - 40.0 * forward, start + (speed * seconds + 40.0) * forward
    corners = [a - 8 * left, b - 8 * left, b + 8 * left, a + 8 * left]
    nodes = [{"token": f"n{i}", "x": float(p[0]), "y": float(p[1])} for i, p in enumerate(corners)]
    # a crossing 20 m ahead of the start, across the strip
    c0, c1 = start + 20 * forward, start + 24 * forward
    cross = [c0 - 8 * left, c1 - 8 * left, c1 + 8 * left, c0 + 8 * left]
    nodes += [{"token": f"c{i}", "x": float(p[0]), "y": float(p[1])} for i, p in enumerate(cross)]
    polygon = [
        {"token": "poly-road", "exterior_node_tokens": [f"n{i}" for i in range(4)], "holes": []},
        {"token": "poly-cross", "exterior_node_tokens": [f"c{i}" for i in range(4)], "holes": []},
    ]
    doc = {
        "version": "1.3",
        "canvas_edge": [3000.0, 3000.0],
        "node": nodes,
        "line": [],
        "polygon": polygon,
        "drivable_area": [{"token": "da-0", "polygon_tokens": ["poly-road"]}],
        "road_segment": [],
        "road_block": [],
        "lane": [],
        "ped_crossing": [{"token": "pc-0", "polygon_token": "poly-cross"}],
        "walkway": [],
        "stop_line": [],
        "carpark_area": [],
        "road_divider": [],
        "lane_divider": [],
        "traffic_light": [],
        "lane_connector": [],
        "arcline_path_3": {},
        "connectivity": {},
    }
    path = root / "maps" / "expansion" / f"{location}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _dump(path, doc)


def top_rows_segmenter():
    """A Segmenter factory for `--segmenter nusc_tiny:top_rows_segmenter`: the top 5 rows, p=1."""

    def segment(image: np.ndarray) -> np.ndarray:
        prob = np.zeros(image.shape[:2])
        prob[:5] = 1.0
        return prob

    return segment
