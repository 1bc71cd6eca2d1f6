"""Play a rosbag2 (MCAP or SQLite3) onto the ROS 2 DDS wire at the recorded rate.

Like `ros2 bag play`, for machines without ROS: camera images and CameraInfo go out with
sensor-data QoS (as a camera driver publishes them), `/tf_static` transient local (late
subscribers still get every static transform), `/tf` and odometry reliable. Messages keep their
recorded header stamps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError

from fastdrive_ros.transport import ros_types
from fastdrive_ros.transport.dds.endpoints import RosPublisher
from fastdrive_ros.transport.dds.peer import RosDdsPeer
from fastdrive_ros.transport.dds.qos import PROFILES, QosProfile

# What `play` sends, and with which QoS (tf topics are decided by name, see _qos_for).
PLAYABLE: dict[str, str] = {
    "sensor_msgs/msg/CompressedImage": "sensor_data",
    "sensor_msgs/msg/Image": "sensor_data",
    "sensor_msgs/msg/CameraInfo": "sensor_data",
    "tf2_msgs/msg/TFMessage": "tf",
    "nav_msgs/msg/Odometry": "default",
}


@dataclass
class TopicStats:
    """What was sent on one topic."""

    topic: str
    msgtype: str
    qos: str
    messages: int = 0
    payload_bytes: int = 0


@dataclass
class PlaySummary:
    """Per-topic counts and timing of one `play` run.

    Attributes:
        topics: per topic, in bag order.
        wall_s: wall-clock time spent publishing.
        bag_s: bag time covered (sum over loops), seconds.
        max_lag_ms: worst delay of a message behind its scheduled time (the player could not keep
            up when this is large).
        loops: complete passes over the bag.
    """

    topics: list[TopicStats] = field(default_factory=list)
    wall_s: float = 0.0
    bag_s: float = 0.0
    max_lag_ms: float = 0.0
    loops: int = 0

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.topics)


def _qos_for(topic: str, msgtype: str, count: int) -> tuple[str, QosProfile]:
    if msgtype == "tf2_msgs/msg/TFMessage" and topic.rstrip("/").endswith("tf_static"):
        # Keep every static transform message for late joiners, not only the last one.
        return "tf_static", QosProfile(reliable=True, depth=max(1, count), transient_local=True)
    name = PLAYABLE[msgtype]
    return name, PROFILES[name]


def open_bag(path: Path) -> Reader:
    """An open rosbag2 Reader, or an error that says what `path` is and what play needs."""
    if not path.exists():
        raise FileNotFoundError(f"no rosbag2 at {path} (a folder with metadata.yaml)")
    try:
        reader = Reader(path)
        reader.open()
    except (FileNotFoundError, ReaderError) as exc:
        raise ValueError(
            f"{path} is not a readable rosbag2 ({exc}); pass a bag folder (metadata.yaml with "
            ".mcap or .db3 files), e.g. one written by `fastdrive bag`"
        ) from exc
    return reader


def select_connections(reader: Reader, topics: Sequence[str] | None) -> list:
    """Bag connections to play: the playable types, or exactly `topics` (which must exist)."""
    connections = list(reader.connections)
    if topics:
        wanted = {t if t.startswith("/") else f"/{t}" for t in topics}
        present = {c.topic for c in connections}
        missing = sorted(wanted - present)
        if missing:
            raise ValueError(
                f"topics not in the bag: {', '.join(missing)}; "
                f"it has: {', '.join(sorted(present))}"
            )
        chosen = [c for c in connections if c.topic in wanted]
        unplayable = sorted(
            f"{c.topic} ({c.msgtype})" for c in chosen if c.msgtype not in PLAYABLE
        )
        if unplayable:
            raise ValueError(
                f"cannot play {', '.join(unplayable)}: play sends {', '.join(sorted(PLAYABLE))}"
            )
        return chosen
    chosen = [c for c in connections if c.msgtype in PLAYABLE]
    if not chosen:
        raise ValueError(
            f"the bag has none of the types play sends ({', '.join(sorted(PLAYABLE))})"
        )
    return chosen


class BagPlayer:
    """Publishes a bag's camera, tf and odometry topics through a RosDdsPeer."""

    def __init__(
        self,
        *,
        bag: str | Path,
        peer: RosDdsPeer,
        rate: float = 1.0,
        topics: Sequence[str] | None = None,
        loop: bool = False,
    ) -> None:
        path = Path(bag)
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self._path = path
        self._peer = peer
        self._rate = float(rate)
        self._topics = tuple(topics) if topics else None
        self._loop = bool(loop)
        self._stop = threading.Event()
        self._reader = open_bag(path)
        try:
            self._connections = select_connections(self._reader, self._topics)
        except Exception:
            self._reader.close()
            raise
        self._publishers: dict[str, RosPublisher] = {}
        self.summary = PlaySummary()
        store = ros_types.typestore()
        for conn in self._connections:
            if conn.topic in self._publishers:
                raise ValueError(f"topic {conn.topic} appears twice in the bag")
            qos_name, profile = _qos_for(conn.topic, conn.msgtype, conn.msgcount)
            if conn.msgtype not in store.types:
                raise ValueError(f"{conn.topic}: unknown message type {conn.msgtype}")
            self._publishers[conn.topic] = peer.publisher(conn.topic, conn.msgtype, profile)
            self.summary.topics.append(TopicStats(conn.topic, conn.msgtype, qos_name))

    @property
    def total_messages(self) -> int:
        """Messages in one pass over the selected topics."""
        return sum(c.msgcount for c in self._connections)

    @property
    def publishers(self) -> dict[str, RosPublisher]:
        return dict(self._publishers)

    def stop(self) -> None:
        """Ask a running `run()` to return after the current message (thread-safe)."""
        self._stop.set()

    def wait_for_subscribers(self, count: int, *, timeout_s: float) -> bool:
        """Block until every topic has `count` matched subscribers; False on timeout."""
        deadline = time.monotonic() + timeout_s
        for pub in self._publishers.values():
            left = max(0.0, deadline - time.monotonic())
            if not pub.wait_for_subscribers(count, timeout_s=left):
                return False
        return True

    @staticmethod
    def _validate(conn: object, raw: bytes) -> None:
        """The bag's type must be the one we send: same type hash (if recorded), decodable."""
        store = ros_types.typestore()
        digest = getattr(conn, "digest", "") or ""
        ours = ros_types.ros_type_hash(conn.msgtype)
        if digest.startswith("RIHS01_") and digest != ours:
            raise ValueError(
                f"{conn.topic}: the bag's {conn.msgtype} has type hash {digest}, the standard "
                f"one is {ours}: a different definition, which play cannot send"
            )
        try:
            store.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:
            raise ValueError(
                f"{conn.topic}: a recorded {conn.msgtype} message does not decode with the "
                f"standard definition ({exc})"
            ) from exc

    def run(self, on_message: Callable[[str], None] | None = None) -> PlaySummary:
        """Publish at the recorded rate until the bag ends (or forever with `loop`)."""
        stats = {t.topic: t for t in self.summary.topics}
        validated: set[str] = set()
        start_wall = time.monotonic()
        while not self._stop.is_set():
            first_ts = last_ts = None
            pass_start = time.monotonic()
            for conn, ts, raw in self._reader.messages(connections=self._connections):
                if self._stop.is_set():
                    break
                if first_ts is None:
                    first_ts = ts
                last_ts = ts
                due = pass_start + (ts - first_ts) / 1e9 / self._rate
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                lag_ms = max(0.0, (time.monotonic() - due) * 1e3)
                self.summary.max_lag_ms = max(self.summary.max_lag_ms, lag_ms)
                if conn.topic not in validated:
                    self._validate(conn, raw)
                    validated.add(conn.topic)
                # As recorded, byte for byte (ros2 bag play also sends serialised messages).
                self._publishers[conn.topic].publish_cdr(raw)
                entry = stats[conn.topic]
                entry.messages += 1
                entry.payload_bytes += len(raw)
                if on_message is not None:
                    on_message(conn.topic)
            else:
                self.summary.loops += 1
            if first_ts is not None and last_ts is not None:
                self.summary.bag_s += (last_ts - first_ts) / 1e9
            if not self._loop or first_ts is None:
                break
        self.summary.wall_s = time.monotonic() - start_wall
        for pub in self._publishers.values():
            if pub.qos.reliable:
                pub.wait_for_acks(timeout_s=2.0)
        return self.summary

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> BagPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
