"""Per-scene indexes over the devkit's tables: keyframes, the ego pose track, camera frames.

Built on first use of a scene and cached by the reader; everything here walks token chains (prev /
next), never whole tables, so opening v1.0-trainval costs no more than the devkit's own load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.agents import SceneAgents
from fastdrive_ros.data.cameras import CameraCalibration
from fastdrive_ros.data.ego_status import CanBusTrack
from fastdrive_ros.data.errors import DatasetError, record_numbers
from fastdrive_ros.data.frames import Pose, PoseTrack


@dataclass(frozen=True)
class CameraFrame:
    """One 12 Hz camera image (keyframe or sweep) with the ego pose at its own timestamp."""

    channel: str
    sample_data_token: str
    timestamp_us: int
    relpath: str
    is_key_frame: bool
    calibration: CameraCalibration
    ego_pose: Pose


@dataclass
class SceneIndex:
    """What the reader needs of one scene; `agents` and `can` are filled on first use."""

    name: str
    token: str
    location: str
    sample_tokens: tuple[str, ...]
    sample_times_us: np.ndarray
    poses: PoseTrack
    agents: SceneAgents | None = None
    can: CanBusTrack | None = None
    can_checked: bool = False
    calibrations: dict[str, CameraCalibration] = field(default_factory=dict)


def calibration_of(nusc: Any, sd: dict) -> CameraCalibration:
    """CameraCalibration of a camera sample_data record (intrinsics, optical -> ego, size)."""
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    intrinsic = np.asarray(cs.get("camera_intrinsic") or [], dtype=np.float64)
    width, height = int(sd.get("width") or 0), int(sd.get("height") or 0)
    if intrinsic.shape != (3, 3) or width <= 0 or height <= 0:
        raise DatasetError(
            f"sample_data {sd['token']} ({sd.get('filename')}) is not a calibrated camera image: "
            f"camera_intrinsic {intrinsic.shape}, width x height {width}x{height}; check the "
            "calibrated_sensor.json and sample_data.json records"
        )
    return CameraCalibration(
        channel=sd["channel"],
        intrinsic=intrinsic,
        rotation=record_numbers(cs, "rotation", 4, "calibrated_sensor"),
        translation=record_numbers(cs, "translation", 3, "calibrated_sensor"),
        width=width,
        height=height,
    )


def _walk_samples(nusc: Any, scene: dict) -> list[dict]:
    samples, token, seen = [], scene["first_sample_token"], set()
    while token:
        if token in seen:
            raise DatasetError(f"sample chain of scene {scene['name']} loops at sample {token}")
        seen.add(token)
        try:
            sample = nusc.get("sample", token)
        except KeyError as exc:
            raise DatasetError(
                f"scene {scene['name']} links to sample {token} missing from sample.json"
            ) from exc
        if sample["scene_token"] != scene["token"]:
            break
        samples.append(sample)
        if token == scene["last_sample_token"]:
            break
        token = sample["next"]
    if not samples:
        raise DatasetError(f"scene {scene['name']} has no samples (scene.json / sample.json)")
    return samples


def walk_channel(nusc: Any, first_sd_token: str, scene_token: str) -> list[dict]:
    """All sample_data of one channel from `first_sd_token` onward within the scene."""
    out, token = [], first_sd_token
    while token:
        sd = nusc.get("sample_data", token)
        if nusc.get("sample", sd["sample_token"])["scene_token"] != scene_token:
            break
        out.append(sd)
        token = sd["next"]
    return out


def build_scene_index(nusc: Any, scene: dict) -> SceneIndex:
    """Keyframes and the ego pose track of one scene (poses of every channel, deduplicated)."""
    samples = _walk_samples(nusc, scene)
    first = samples[0]
    poses: dict[int, dict] = {}
    for sd_token in first["data"].values():
        for sd in walk_channel(nusc, sd_token, scene["token"]):
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            poses.setdefault(int(pose["timestamp"]), pose)
    if not poses:
        raise DatasetError(f"scene {scene['name']} has no ego poses (ego_pose.json)")
    times = np.array(sorted(poses), dtype=np.int64)
    track = PoseTrack(
        timestamps_us=times,
        translations=np.array(
            [record_numbers(poses[t], "translation", 3, "ego_pose") for t in times]
        ),
        rotations=np.array([record_numbers(poses[t], "rotation", 4, "ego_pose") for t in times]),
    )
    log = nusc.get("log", scene["log_token"])
    return SceneIndex(
        name=scene["name"],
        token=scene["token"],
        location=log["location"],
        sample_tokens=tuple(s["token"] for s in samples),
        sample_times_us=np.array([s["timestamp"] for s in samples], dtype=np.int64),
        poses=track,
    )


def camera_frames(
    nusc: Any, index: SceneIndex, *, channels: tuple[str, ...] = CAMERA_NAMES
) -> list[CameraFrame]:
    """Every camera image of the scene (sweeps and keyframes), sorted by time then channel."""
    first = nusc.get("sample", index.sample_tokens[0])
    frames = []
    for channel in channels:
        if channel not in first["data"]:
            raise DatasetError(f"scene {index.name} has no {channel} data (sample_data.json)")
        for sd in walk_channel(nusc, first["data"][channel], index.token):
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            frames.append(
                CameraFrame(
                    channel=channel,
                    sample_data_token=sd["token"],
                    timestamp_us=int(sd["timestamp"]),
                    relpath=sd["filename"],
                    is_key_frame=bool(sd["is_key_frame"]),
                    calibration=calibration_of(nusc, sd),
                    ego_pose=Pose(
                        record_numbers(pose, "translation", 3, "ego_pose"),
                        record_numbers(pose, "rotation", 4, "ego_pose"),
                    ),
                )
            )
    order = {name: i for i, name in enumerate(channels)}
    frames.sort(key=lambda f: (f.timestamp_us, order[f.channel]))
    return frames


def image_path(dataroot: str | Path, relpath: str) -> Path:
    """Absolute image path, or DatasetError naming the missing file.

    sample_data.json names files relative to the dataroot; an absolute name or one with `..`
    would make `fastdrive bag` copy any readable file (/etc/passwd) into a CompressedImage, so
    both are refused (checked on the name: a dataroot whose samples/ is a symlink still works).
    """
    rel = Path(relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DatasetError(
            f"sample_data.json names image {relpath!r} in {dataroot}: image file names must be "
            "relative to the dataroot and stay inside it (no absolute path, no '..'); fix the "
            "table or regenerate the dataset"
        )
    path = Path(dataroot) / rel
    if not path.is_file():
        raise DatasetError(
            f"image file {path} is missing (named by sample_data.json); re-extract the dataset's "
            "samples/ and sweeps/ folders or regenerate the synthetic data"
        )
    return path
