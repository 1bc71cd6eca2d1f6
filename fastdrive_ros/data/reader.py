"""NuScenesReader: typed keyframe samples from a nuScenes dataroot (real or synthetic).

Conventions (see frames.py): the planning time t0 of a keyframe is its sample timestamp; the ego
frame is the ego pose interpolated at t0 (x forward, y left). History: 7 poses at -3.0 .. 0 s,
extrapolated at constant velocity before the scene's first pose. Future: 6 poses at +0.5 .. +3.0 s;
a step is valid when its time is at most FUTURE_END_TOLERANCE_S past the scene's last ego pose
(held / extrapolated that little). By default only keyframes with all 6 future steps valid are
yielded (`full_future_only=True`), so the last ~3 s of keyframes of each scene are skipped; with
False they are yielded with `future_valid` False and NaN waypoints at the missing steps. Future
boxes: every annotated instance present at each step (all categories; see agents.py).

Reference point (`reference`): "rear_axle" (default) puts history, future, boxes and map in the
nuScenes ego frame (rear axle); "lidar" in the LiDAR-sensor frame Impromptu-VLA / SparseDrive were
trained in (reference.py: LIDAR_TOP calibrated_sensor; the synthetic world's nominal mount).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES, PLAN_DT_S, PLAN_STEPS, EgoState
from fastdrive_ros.data.agents import SceneAgents
from fastdrive_ros.data.ego_status import (
    HISTORY_OFFSETS_S,
    CanBusTrack,
    EgoStatus,
    can_status_rows,
    driving_command,
    ego_history,
    observed_history_steps,
    status_from_poses,
)
from fastdrive_ros.data.errors import DatasetError
from fastdrive_ros.data.frames import Pose
from fastdrive_ros.data.layout import fg_mask_path
from fastdrive_ros.data.nusc_map import LocationMap, MapCache, require_map_file
from fastdrive_ros.data.reference import (
    IDENTITY,
    LIDAR_CHANNEL,
    NOMINAL_LIDAR_MOUNT,
    ReferencePoint,
    check_reference,
    lidar_mount,
    reference_history,
    reference_pose,
)
from fastdrive_ros.data.route_command import route_commands
from fastdrive_ros.data.scene_index import (
    CameraFrame,
    SceneIndex,
    build_scene_index,
    calibration_of,
    camera_frames,
    image_path,
)
from fastdrive_ros.data.splits import OFFICIAL_SPLITS, SPLITS, Split, split_scenes
from fastdrive_ros.data.tables import open_nuscenes
from fastdrive_ros.data.types import AgentBox, CameraImage, KeyframeSample

__all__ = ["DatasetError", "NuScenesReader"]

LOG = logging.getLogger(__name__)
FUTURE_END_TOLERANCE_S = 0.1
# How far past an instance's first/last annotation its box is held (agents.py).
BOX_TIME_TOLERANCE_S = 0.1


class NuScenesReader:
    """Keyframe samples of a nuScenes dataroot, with splits, ego status, futures and map.

    Args:
        dataroot: folder with samples/, sweeps/, maps/ and the version folder.
        version: v1.0-mini, v1.0-trainval, v1.0-synth, ... (the table folder's name).
        split: "train", "val" or "all" (see splits.py).
        with_map: attach MapGeometry (needs maps/expansion/<location>.json).
        full_future_only: skip keyframes without a full 3 s future (see the module docstring).
        mask_root: where fg_masks/ lives (default: the dataroot; `fastdrive masks --out`).
        require_masks: a missing mask is a DatasetError instead of `fg_mask=None`.
        verbose: let the devkit print its loading statistics.
    """

    def __init__(
        self,
        *,
        dataroot: str | Path,
        version: str,
        split: Split = "all",
        with_map: bool = True,
        full_future_only: bool = True,
        mask_root: str | Path | None = None,
        require_masks: bool = False,
        verbose: bool = False,
        reference: ReferencePoint = "rear_axle",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self._dataroot = Path(dataroot)
        self._version = version
        self._split = split
        self._with_map = with_map
        self._full_future_only = full_future_only
        self._mask_root = Path(mask_root) if mask_root is not None else self._dataroot
        self._require_masks = require_masks
        self._reference = check_reference(reference)
        self._mounts: dict[str, Pose] = {}
        self._nusc = open_nuscenes(self._dataroot, version, verbose=verbose)

        records = sorted(self._nusc.scene, key=lambda s: s["name"])
        if not records:
            raise DatasetError(f"{self._dataroot / version / 'scene.json'} lists no scenes")
        self._scene_records = {s["name"]: s for s in records}
        self._all_names = [s["name"] for s in records]
        self._names = split_scenes(version, self._all_names, split)
        self._indexes: dict[str, SceneIndex] = {}
        self._items: list[tuple[str, str]] = []
        for name in self._names:
            index = self.scene_index(name)
            for token, t0 in zip(index.sample_tokens, index.sample_times_us):
                if not full_future_only or bool(self._future_valid(index, int(t0)).all()):
                    self._items.append((name, token))
        self._maps = MapCache(dataroot=self._dataroot) if with_map else None
        if with_map:  # fail at open, not at the first sample of a location without a map
            for location in sorted({self.scene_index(n).location for n in self._names}):
                require_map_file(self._dataroot, location)
        self._can_api = self._open_can_bus()

    # ----------------------------------------------------------------------------- properties
    @property
    def nusc(self) -> Any:
        """The devkit's NuScenes object (tables and reverse indexes)."""
        return self._nusc

    @property
    def dataroot(self) -> Path:
        """The dataroot folder."""
        return self._dataroot

    @property
    def version(self) -> str:
        """The table folder's name, e.g. v1.0-synth."""
        return self._version

    @property
    def reference(self) -> ReferencePoint:
        """The reference point of every position: 'rear_axle' or 'lidar' (reference.py)."""
        return self._reference

    def set_reference(self, reference: ReferencePoint) -> None:
        """Change the reference point of the samples read from now on (the index stays)."""
        self._reference = check_reference(reference)
        self._mounts.clear()

    def reference_mount(self, name: str) -> Pose:
        """The reference frame in the ego frame for scene `name` (identity for the rear axle).

        "lidar": the LIDAR_TOP calibrated_sensor of the scene's first sample, else (the
        synthetic world has no LiDAR records) NOMINAL_LIDAR_TOP.
        """
        if self._reference == "rear_axle":
            return IDENTITY
        if name not in self._mounts:
            index = self.scene_index(name)
            sample = self._nusc.get("sample", index.sample_tokens[0])
            token = sample["data"].get(LIDAR_CHANNEL)
            if token is None:
                mount = NOMINAL_LIDAR_MOUNT
                LOG.info("%s has no %s: nominal LiDAR mount", name, LIDAR_CHANNEL)
            else:
                sd = self._nusc.get("sample_data", token)
                cs = self._nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
                mount = lidar_mount(cs["translation"], cs["rotation"])
            self._mounts[name] = mount
        return self._mounts[name]

    @property
    def split(self) -> str:
        """'train', 'val' or 'all'."""
        return self._split

    @property
    def has_can_bus(self) -> bool:
        """True when DIR/can_bus exists and the devkit's NuScenesCanBus opened it."""
        return self._can_api is not None

    def scenes(self) -> list[str]:
        """Scene names of this split, sorted."""
        return list(self._names)

    def all_scenes(self) -> list[str]:
        """Every scene name of the version, whatever the split."""
        return list(self._all_names)

    # ------------------------------------------------------------------------------- sequence
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[KeyframeSample]:
        for i in range(len(self._items)):
            yield self[i]

    def __getitem__(self, i: int) -> KeyframeSample:
        if not -len(self._items) <= i < len(self._items):
            raise IndexError(f"sample index {i} out of range for {len(self._items)} samples")
        name, token = self._items[i]
        return self._sample(self.scene_index(name), token)

    def samples_of_scene(self, name: str) -> list[KeyframeSample]:
        """The yielded keyframes of one scene, in time order."""
        self._check_scene(name)
        return [self[i] for i, (scene, _) in enumerate(self._items) if scene == name]

    def sample_tokens(self, name: str | None = None) -> list[str]:
        """Tokens of the yielded keyframes (of one scene, or all), in reader order."""
        if name is not None:
            self._check_scene(name)
        return [tok for scene, tok in self._items if name is None or scene == name]

    # ------------------------------------------------------------------------- scene helpers
    def _check_scene(self, name: str) -> None:
        if name not in self._scene_records:
            raise DatasetError(
                f"unknown scene {name!r} in {self._dataroot / self._version}; valid scenes: "
                f"{', '.join(self._all_names)}"
            )

    def scene_index(self, name: str) -> SceneIndex:
        """Keyframes, pose track and (lazily) agents and CAN data of a scene (any split)."""
        self._check_scene(name)
        if name not in self._indexes:
            self._indexes[name] = build_scene_index(self._nusc, self._scene_records[name])
        return self._indexes[name]

    def camera_frames(self, name: str, *, keyframes_only: bool = False) -> list[CameraFrame]:
        """All 12 Hz images of the six cameras of a scene, in time order (bags, masks)."""
        frames = camera_frames(self._nusc, self.scene_index(name))
        return [f for f in frames if f.is_key_frame] if keyframes_only else frames

    def agents(self, name: str) -> SceneAgents:
        """Annotated instance tracks of a scene."""
        index = self.scene_index(name)
        if index.agents is None:
            index.agents = SceneAgents.from_devkit(self._nusc, index.sample_tokens)
        return index.agents

    def location_map(self, location: str) -> LocationMap:
        """Merged map layers of a location (needs with_map=True)."""
        if self._maps is None:
            raise ValueError("this reader was opened with with_map=False")
        return self._maps[location]

    def can_track(self, name: str) -> CanBusTrack | None:
        """CAN bus pose/steering of a scene, or None (no can_bus/ or no data for the scene)."""
        index = self.scene_index(name)
        if not index.can_checked:
            index.can_checked = True
            if self._can_api is not None:
                try:
                    pose = self._can_api.get_messages(name, "pose", print_warnings=False)
                    try:
                        steer = self._can_api.get_messages(
                            name, "steeranglefeedback", print_warnings=False
                        )
                    except Exception:  # noqa: BLE001 - steering is optional
                        steer = []
                    index.can = CanBusTrack.from_messages(pose, steer) if pose else None
                except Exception as exc:  # the devkit raises bare Exception / asserts
                    LOG.info("no CAN bus data for %s (%s); using ego poses", name, exc)
        return index.can

    def ego_status(self, name: str, t_us: float) -> EgoStatus:
        """Status at any time of a scene: CAN bus where it covers t, else from ego poses."""
        can = self.can_track(name)
        status = can.status(t_us) if can is not None else None
        return status or status_from_poses(self.scene_index(name).poses, t_us)

    def ego_twist(self, name: str, t_us: float) -> tuple[np.ndarray, np.ndarray]:
        """(3,) linear m/s and (3,) angular rad/s velocity in the ego frame at t (odometry)."""
        can = self.can_track(name)
        if can is not None and can.covers(t_us):
            return can.twist(t_us)
        track = self.scene_index(name).poses
        pose = track.at(t_us)
        linear = pose.rotation_matrix.T @ track.velocity(t_us, 0.1)
        return linear, np.array([0.0, 0.0, track.yaw_rate(t_us, 0.1)])

    def _open_can_bus(self) -> Any:
        if not (self._dataroot / "can_bus").is_dir():
            return None
        from nuscenes.can_bus.can_bus_api import NuScenesCanBus

        can = NuScenesCanBus(dataroot=str(self._dataroot))
        if self._version not in OFFICIAL_SPLITS:
            # The devkit's blacklists name real nuScenes scenes by number; other versions reuse
            # the same names (scene-0161 ...) for unrelated scenes.
            can.can_blacklist = []
            can.route_blacklist = []
        return can

    # -------------------------------------------------------------------------------- samples
    @staticmethod
    def _future_times(t0_us: int) -> np.ndarray:
        return t0_us + np.round(np.arange(1, PLAN_STEPS + 1) * PLAN_DT_S * 1e6).astype(np.int64)

    def _future_valid(self, index: SceneIndex, t0_us: int) -> np.ndarray:
        end = index.poses.end_us + FUTURE_END_TOLERANCE_S * 1e6
        return self._future_times(t0_us) <= end

    def _camera_image(self, sample: dict, channel: str) -> CameraImage:
        if channel not in sample["data"]:
            raise DatasetError(
                f"sample {sample['token']} has no {channel} image (sample_data.json); every "
                f"keyframe needs the six cameras {CAMERA_NAMES}"
            )
        sd = self._nusc.get("sample_data", sample["data"][channel])
        path = image_path(self._dataroot, sd["filename"])
        mask = fg_mask_path(self._mask_root, sd["filename"])
        if not mask.is_file():
            if self._require_masks:
                raise DatasetError(
                    f"foreground mask {mask} is missing; build masks with `fastdrive masks "
                    f"--dataroot {self._dataroot} --version {self._version} --out DIR` and "
                    "pass mask_root=DIR"
                )
            mask = None
        return CameraImage(
            channel=channel,
            path=path,
            relpath=sd["filename"],
            timestamp_us=int(sd["timestamp"]),
            calibration=calibration_of(self._nusc, sd),
            sample_data_token=sd["token"],
            fg_mask=mask,
        )

    def _sample(self, index: SceneIndex, token: str) -> KeyframeSample:
        sample = self._nusc.get("sample", token)
        t0 = int(sample["timestamp"])
        track = index.poses
        ego_pose = track.at(t0)
        cameras = tuple(self._camera_image(sample, ch) for ch in CAMERA_NAMES)

        times = self._future_times(t0)
        valid = self._future_valid(index, t0)
        future_xy = np.full((PLAN_STEPS, 2), np.nan)
        future_yaw = np.full(PLAN_STEPS, np.nan)
        if self._reference == "rear_axle":
            current = ego_pose
            for k in np.flatnonzero(valid):
                future_xy[k] = current.to_local(track.position(float(times[k]))[None])[0, :2]
                future_yaw[k] = current.yaw_to_local(track.at(float(times[k])).yaw)
            history = ego_history(track, t0, current)
        else:
            mount = self.reference_mount(index.name)
            current = reference_pose(track, t0, mount)
            for k in np.flatnonzero(valid):
                frame = reference_pose(track, float(times[k]), mount)
                future_xy[k] = current.to_local(frame.translation[None])[0, :2]
                future_yaw[k] = current.yaw_to_local(frame.yaw)
            history = reference_history(track, t0, mount, HISTORY_OFFSETS_S)

        agents = self.agents(index.name)
        future_boxes: list[tuple[AgentBox, ...]] = []
        for t in times:
            boxes = agents.boxes_at(float(t), tolerance_s=BOX_TIME_TOLERANCE_S)
            future_boxes.append(tuple(box.in_ego(current) for box in boxes))

        status = self.ego_status(index.name, t0)
        ego = EgoState(
            history_xy=history,
            history_steps=observed_history_steps(track, t0),
            status_rows=can_status_rows(
                self.can_track(index.name), t0, observed_history_steps(track, t0)
            ),
            speed=status.speed,
            acceleration=status.acceleration,
            yaw_rate=status.yaw_rate,
            steering=status.steering,
            # the route's command where the world wrote one (synthetic); real nuScenes keeps
            # the conventional, future-derived one (route_command.py says why that leaks)
            command=route_commands(self._dataroot, index.name).get(token)
            or driving_command(future_xy, valid),
        )
        geometry = None
        if self._maps is not None:
            geometry = self._maps[index.location].near(current)
        return KeyframeSample(
            token=token,
            scene_name=index.name,
            scene_token=index.token,
            timestamp_us=t0,
            cameras=cameras,
            ego=ego,
            future_xy=future_xy,
            future_yaw=future_yaw,
            future_valid=valid,
            future_boxes=tuple(future_boxes),
            map=geometry,
            ego_translation=ego_pose.translation,
            ego_rotation=ego_pose.rotation,
        )
