"""The ROS type registry outside rclpy: Humble's standard types plus ours from `msg/*.msg`.

The canonical in-memory message everywhere outside rclpy (bags, in-process replay, the DDS wire
peer) is a rosbags dataclass instance built by the Typestore returned here, so every part of the
project speaks the same objects and the same ROS 2 CDR bytes.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "fastdrive_ros"
MSG_DIR_ENV = "FASTDRIVE_MSG_DIR"

# Our message files. Keep in step with CMakeLists.txt; test/test_msgs.py checks both against msg/.
MESSAGE_NAMES: tuple[str, ...] = ("TrajectoryPoint", "Trajectory", "StageLatency", "FrameLatency")

# Distribution whose standard definitions (sensor_msgs, nav_msgs, tf2_msgs, ...) we register:
# Humble is the oldest supported one, and its definitions hash the same as Jazzy's for every type
# the node uses (test/test_msgs.py checks this).
BASE_STORE = Stores.ROS2_HUMBLE


def _candidate_msg_dirs() -> list[Path]:
    """Where msg/ may be: override, repo checkout, pip prefix, then colcon/ament prefixes."""
    found: list[Path] = []
    if os.environ.get(MSG_DIR_ENV):
        found.append(Path(os.environ[MSG_DIR_ENV]))
    found.append(Path(__file__).resolve().parents[2] / "msg")
    found.append(Path(sys.prefix) / "share" / PACKAGE / "msg")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            found.append(Path(prefix) / "share" / PACKAGE / "msg")
    return found


def msg_dir() -> Path:
    """The folder holding our `.msg` files (checkout `msg/`, or `share/fastdrive_ros/msg`)."""
    candidates = _candidate_msg_dirs()
    for candidate in candidates:
        if all((candidate / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"cannot find the fastdrive_ros message definitions ({', '.join(MESSAGE_NAMES)}.msg); "
        f"looked in: {tried}. Reinstall the package (pip install .) or set {MSG_DIR_ENV}."
    )


def full_name(name: str) -> str:
    """`pkg/Name` or `pkg/msg/Name` -> `pkg/msg/Name` (the form rosbags and rosbag2 use)."""
    parts = name.strip("/").split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise ValueError(f"not a ROS message type name: {name!r} (expected pkg/msg/Name)")
    return "/".join(parts)


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Humble's standard message types plus fastdrive_ros/msg/*, registered from the .msg text.

    Cached: every caller shares one store, so message classes compare equal across the project.
    """
    store = get_typestore(BASE_STORE)
    folder = msg_dir()
    ours: dict = {}
    for name in MESSAGE_NAMES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        ours.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    store.register(ours)
    return store


def msg_class(name: str) -> type:
    """The rosbags dataclass of a message type, e.g. `msg_class("sensor_msgs/msg/Image")`."""
    store = typestore()
    key = full_name(name)
    if key not in store.types:
        raise KeyError(f"unknown message type {key!r}: not in ROS 2 Humble nor in {PACKAGE}/msg")
    return store.types[key]


def ros_type_hash(name: str) -> str:
    """The RIHS01 type hash (REP 2011) that Jazzy and later put in DDS USER_DATA (`typehash=`)."""
    key = full_name(name)
    store = typestore()
    if key not in store.fielddefs:
        raise KeyError(f"unknown message type {key!r}: not in ROS 2 Humble nor in {PACKAGE}/msg")
    return store.hash_rihs01(key)
