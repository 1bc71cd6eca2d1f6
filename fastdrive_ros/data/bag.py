"""nuScenes (real or synthetic) -> rosbag2 folder (metadata version 8, so Humble can play it).

Per scene, in timestamp order: /tf_static once at the scene's first time (base_link -> cameras,
offered transient-local so late subscribers get it on playback); for every 12 Hz camera image
(keyframes and sweeps) its CompressedImage (JPEG bytes as stored) and CameraInfo; at every
distinct ego-pose time of those images /tf (map -> base_link) and /odom (pose in map, twist in
base_link from the CAN bus or finite differences). Scenes go one after another, ordered by start
time; they must not overlap in time (one bag per scene otherwise: `scenes=[name]`), and the gaps
between them stay (dataset time), so a player waits through them.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data import bag_messages as bm
from fastdrive_ros.data.errors import DatasetError
from fastdrive_ros.data.scene_index import CameraFrame, image_path

Storage = Literal["mcap", "sqlite3"]
STORAGES: tuple[str, ...] = ("mcap", "sqlite3")
BAG_VERSION = 8
# write order among messages with the same timestamp: transforms first, then odometry, cameras
_KIND_ORDER = {"tf_static": 0, "tf": 1, "odom": 2, "camera_info": 3, "image": 4}


@dataclass(frozen=True)
class BagSummary:
    """What `write_bag` wrote.

    Attributes:
        topics: message count per topic.
        payload_bytes: serialized message bytes; disk_bytes: size of the bag folder.
        duration_s: last minus first message time (dataset time); wall_s: time to write.
    """

    path: Path
    storage: str
    scenes: tuple[str, ...]
    topics: dict[str, int]
    messages: int
    payload_bytes: int
    disk_bytes: int
    duration_s: float
    wall_s: float


def _scene_events(name: str, frames: list[CameraFrame]) -> Iterator[tuple[int, int, str, Any]]:
    """(t_us, order, kind, payload) of one scene from its camera frames, sorted."""
    if not frames:
        raise DatasetError(f"scene {name} has no camera images (sample_data.json)")
    start = frames[0].timestamp_us
    calibrations = {}
    for frame in frames:
        calibrations.setdefault(frame.channel, frame.calibration)
    events: list[tuple[int, int, str, Any]] = [
        (start, _KIND_ORDER["tf_static"], "tf_static", [calibrations[c] for c in CAMERA_NAMES])
    ]
    poses: dict[int, Any] = {}
    for frame in frames:
        poses.setdefault(frame.timestamp_us, frame.ego_pose)
        events.append((frame.timestamp_us, _KIND_ORDER["camera_info"], "camera_info", frame))
        events.append((frame.timestamp_us, _KIND_ORDER["image"], "image", frame))
    for t, pose in poses.items():
        events.append((t, _KIND_ORDER["tf"], "tf", pose))
        events.append((t, _KIND_ORDER["odom"], "odom", (name, pose)))
    events.sort(key=lambda e: (e[0], e[1], getattr(e[3], "channel", "")))
    return iter(events)


def _open_reader(source: Any, version: str | None) -> Any:
    from fastdrive_ros.data.reader import NuScenesReader

    if isinstance(source, NuScenesReader):
        return source
    if version is None:
        raise ValueError("pass version= with a dataroot (e.g. v1.0-mini, v1.0-synth)")
    return NuScenesReader(dataroot=source, version=version, with_map=False, full_future_only=False)


def write_bag(
    source: Any,
    *,
    out: str | Path,
    version: str | None = None,
    scenes: Sequence[str] | None = None,
    storage: Storage = "mcap",
    progress: bool = True,
) -> BagSummary:
    """Write a rosbag2 folder at `out` from a NuScenesReader or a dataroot (+ version).

    `scenes` restricts to named scenes (default: all scenes of the version).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"bag folder {out} exists already; remove it or pick another --out")
    reader = _open_reader(source, version)
    names = list(scenes) if scenes else reader.all_scenes()
    unknown = [n for n in names if n not in reader.all_scenes()]
    if unknown:
        raise DatasetError(
            f"unknown scene(s) {unknown}; valid scenes: {', '.join(reader.all_scenes())}"
        )
    names.sort(key=lambda n: int(reader.scene_index(n).poses.start_us))
    _check_no_overlap(reader, names)

    typestore = bm.humble_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    counts: Counter[str] = Counter()
    payload = 0
    first_t = last_t = None
    start_wall = time.perf_counter()
    frames = {n: reader.camera_frames(n) for n in names}  # walks every sample_data chain once
    images = sum(len(f) for f in frames.values())
    for scene_frames in frames.values():  # every image name checked before a byte is written
        for frame in scene_frames:
            image_path(reader.dataroot, frame.relpath)
    bar = tqdm(total=images, desc="bag", unit="img", disable=not progress)
    writer = Writer(out, version=BAG_VERSION, storage_plugin=plugin)
    writer.open()
    try:
        connections = _connections(writer, typestore)
        for name in names:
            for t_us, _, kind, data in _scene_events(name, frames[name]):
                topic, msgtype, msg = _message(reader, kind, t_us, data)
                raw = typestore.serialize_cdr(msg, msgtype)
                writer.write(connections[topic], int(t_us) * 1000, raw)
                counts[topic] += 1
                payload += len(raw)
                first_t = t_us if first_t is None else first_t
                last_t = t_us
                if kind == "image":
                    bar.update(1)
    except BaseException:
        writer.abort()  # no half-written bag that looks complete
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        bar.close()
    writer.close()
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BagSummary(
        path=out,
        storage=storage,
        scenes=tuple(names),
        topics=dict(sorted(counts.items())),
        messages=sum(counts.values()),
        payload_bytes=payload,
        disk_bytes=disk,
        duration_s=((last_t or 0) - (first_t or 0)) * 1e-6,
        wall_s=time.perf_counter() - start_wall,
    )


def _check_no_overlap(reader: Any, names: list[str]) -> None:
    for a, b in zip(names, names[1:]):
        ia, ib = reader.scene_index(a), reader.scene_index(b)
        if ib.poses.start_us <= ia.poses.end_us:
            raise DatasetError(
                f"scenes {a} and {b} overlap in time, so one bag cannot hold both in timestamp "
                "order; write one bag per scene (--scene NAME)"
            )


def _connections(writer: Any, typestore: Any) -> dict[str, Any]:
    conns = {}
    default, latched = bm.qos(transient_local=False), bm.qos(transient_local=True)
    for channel in CAMERA_NAMES:
        for topic, msgtype in (
            (bm.image_topic(channel), bm.IMAGE_TYPE),
            (bm.camera_info_topic(channel), bm.CAMERA_INFO_TYPE),
        ):
            conns[topic] = writer.add_connection(
                topic, msgtype, typestore=typestore, offered_qos_profiles=[default]
            )
    conns["/tf_static"] = writer.add_connection(
        "/tf_static", bm.TF_TYPE, typestore=typestore, offered_qos_profiles=[latched]
    )
    conns["/tf"] = writer.add_connection(
        "/tf", bm.TF_TYPE, typestore=typestore, offered_qos_profiles=[default]
    )
    conns["/odom"] = writer.add_connection(
        "/odom", bm.ODOM_TYPE, typestore=typestore, offered_qos_profiles=[default]
    )
    return conns


def _message(reader: Any, kind: str, t_us: int, data: Any) -> tuple[str, str, Any]:
    if kind == "image":
        jpeg = image_path(reader.dataroot, data.relpath).read_bytes()
        return (
            bm.image_topic(data.channel),
            bm.IMAGE_TYPE,
            bm.compressed_image(t_us, data.channel, jpeg),
        )
    if kind == "camera_info":
        return (
            bm.camera_info_topic(data.channel),
            bm.CAMERA_INFO_TYPE,
            bm.camera_info(t_us, data.calibration),
        )
    if kind == "tf_static":
        return "/tf_static", bm.TF_TYPE, bm.camera_mounts(t_us, data)
    if kind == "tf":
        return (
            "/tf",
            bm.TF_TYPE,
            bm.tf_message([bm.transform(t_us, bm.MAP_FRAME, bm.BASE_FRAME, data)]),
        )
    name, pose = data
    linear, angular = reader.ego_twist(name, t_us)
    return "/odom", bm.ODOM_TYPE, bm.odometry(t_us, pose, linear, angular)


__all__ = ["BAG_VERSION", "STORAGES", "BagSummary", "Storage", "write_bag"]
