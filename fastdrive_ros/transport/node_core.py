"""The node's logic without a ROS flavour: topics, message <-> pipeline conversions, outputs.

The rclpy node and the DDS node are thin shells around `NodeCore`: they create one subscription
per `subscriptions()` entry and one publisher per `publications()` entry, call the entry's handler
with each received message, and publish what `outputs()` / `diagnostics()` return. Received
messages are read by field name only, so rclpy messages and rosbags dataclasses both work; a
message that cannot be converted is counted and logged, never raised into the transport.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.latency import STAGES
from fastdrive_ros.pipeline.overlay import kept_tokens_overlay
from fastdrive_ros.pipeline.types import (
    CameraFrameIn,
    CommandIn,
    HealthReport,
    OdometryIn,
    PipelineOutput,
)
from fastdrive_ros.transport import node_messages as m
from fastdrive_ros.transport.node_params import NodeParams

LOG = logging.getLogger("fastdrive_ros.node")
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
RAW_IMAGE = "sensor_msgs/msg/Image"
ODOMETRY = "nav_msgs/msg/Odometry"
STRING = "std_msgs/msg/String"
DIAGNOSTICS_TOPIC = "/diagnostics"


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> ns."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _buffer(data: Any) -> bytes | np.ndarray:
    """uint8[] as it comes: numpy (rosbags), array.array / bytes / list (rclpy).

    Buffers are wrapped, not copied (a raw 1600x900 image is 4.3 MB per camera and frame).
    """
    if isinstance(data, (bytes, np.ndarray)):
        return data
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # no buffer protocol: a list of ints
        return bytes(data)


def compressed_encoding(fmt: str) -> str:
    """CompressedImage.format ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...) -> encoding."""
    text = fmt.lower()
    if "png" in text:
        return "png"
    if "jpeg" in text or "jpg" in text:
        return "jpeg"
    return text.strip() or "unknown"


def camera_from_compressed(channel: str, msg: Any, received_ns: int) -> CameraFrameIn:
    return CameraFrameIn(
        channel=channel,
        stamp_ns=stamp_ns(msg.header.stamp),
        data=_buffer(msg.data),
        encoding=compressed_encoding(msg.format),
        received_ns=received_ns,
    )


def camera_from_image(channel: str, msg: Any, received_ns: int) -> CameraFrameIn:
    return CameraFrameIn(
        channel=channel,
        stamp_ns=stamp_ns(msg.header.stamp),
        data=_buffer(msg.data),
        encoding=str(msg.encoding).lower(),
        width=int(msg.width),
        height=int(msg.height),
        step=int(msg.step),
        received_ns=received_ns,
    )


def odometry_from_msg(msg: Any) -> OdometryIn:
    """nav_msgs/Odometry -> planar pose (yaw from the quaternion) and body-frame twist."""
    q = msg.pose.pose.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    twist = msg.twist.twist
    return OdometryIn(
        stamp_ns=stamp_ns(msg.header.stamp),
        x=float(msg.pose.pose.position.x),
        y=float(msg.pose.pose.position.y),
        yaw=yaw,
        vx=float(twist.linear.x),
        vy=float(twist.linear.y),
        yaw_rate=float(twist.angular.z),
    )


@dataclass(frozen=True)
class Subscription:
    """A topic the node reads: `handler(msg)` converts and feeds the pipeline."""

    topic: str
    msgtype: str
    qos: str
    handler: Callable[[Any], None]


@dataclass(frozen=True)
class Publication:
    """A topic the node writes; `key` names it in outputs() results."""

    key: str
    topic: str
    msgtype: str
    qos: str = "default"


class NodeCore:
    """Topics, conversions and output messages shared by every transport."""

    def __init__(
        self,
        *,
        params: NodeParams,
        pipeline: FramePipeline,
        factory: m.MsgFactory,
        node_name: str = "fastdrive",
    ) -> None:
        self.params = params
        self.pipeline = pipeline
        self.factory = factory
        self.node_name = node_name
        self._cameras = params.camera_topic_map()
        self.conversion_errors = 0

    # ---- inputs ----------------------------------------------------------------------------
    def subscriptions(self) -> list[Subscription]:
        raw = self.params.camera_transport == "raw"
        msgtype = RAW_IMAGE if raw else COMPRESSED_IMAGE
        subs = [
            Subscription(topic, msgtype, "sensor_data", self._camera_handler(name, raw))
            for name, topic in self._cameras.items()
        ]
        subs.append(Subscription(self.params.odom_topic, ODOMETRY, "sensor_data", self.on_odom))
        if self.params.command_topic:
            subs.append(
                Subscription(self.params.command_topic, STRING, "default", self.on_command)
            )
        return subs

    def _camera_handler(self, channel: str, raw: bool) -> Callable[[Any], None]:
        convert = camera_from_image if raw else camera_from_compressed

        def handle(msg: Any) -> None:
            self._guard(
                "camera " + channel,
                lambda: self.pipeline.on_camera(
                    convert(channel, msg, self.pipeline.clock.now_ns())
                ),
            )

        return handle

    def on_odom(self, msg: Any) -> None:
        self._guard("odometry", lambda: self.pipeline.on_odometry(odometry_from_msg(msg)))

    def on_command(self, msg: Any) -> None:
        def convert() -> None:
            text = str(msg.data).strip().lower()
            self.pipeline.on_command(CommandIn(self.pipeline.clock.now_ns(), text))  # type: ignore[arg-type]

        self._guard("command", convert)

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # a malformed message must never reach the transport
            self.conversion_errors += 1
            self.pipeline.counters.inc("rejected/message")
            LOG.warning("%s message could not be used: %s: %s", what, type(exc).__name__, exc)

    # ---- outputs ---------------------------------------------------------------------------
    def publications(self) -> list[Publication]:
        pubs = [
            Publication("trajectory", "~/trajectory", m.TRAJECTORY),
            Publication("path", "~/path", m.PATH),
            Publication("diagnostics", DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY),
        ]
        if self.params.publish_debug:
            pubs.append(Publication("latency", "~/debug/latency", m.FRAME_LATENCY))
            pubs.extend(
                Publication(f"debug/{stage}", f"~/debug/{stage}_ms", m.FLOAT64) for stage in STAGES
            )
        if self.params.publish_overlay:
            pubs.append(Publication("overlay", "~/debug/kept_tokens", m.IMAGE, "sensor_data"))
        return pubs

    def outputs(self, out: PipelineOutput, now_ns: int) -> list[tuple[str, Any]]:
        """(publication key, message) for one planned frame, diagnostics included."""
        f, frame_id = self.factory, self.params.frame_id
        info = self.pipeline.info
        msgs: list[tuple[str, Any]] = [
            (
                "trajectory",
                m.trajectory_msg(f, out, frame_id=frame_id, info=info, planned_at_ns=now_ns),
            ),
            ("path", m.path_msg(f, out, frame_id=frame_id)),
            self.diagnostics(out.health, now_ns),
        ]
        if self.params.publish_debug:
            msgs.append(("latency", m.latency_msg(f, out, frame_id=frame_id)))
            msgs.extend(
                (f"debug/{stage}", m.float64_msg(f, value))
                for stage, value in out.latency_ms.items()
                if stage in STAGES and math.isfinite(value)
            )
        if self.params.publish_overlay and out.images is not None:
            mosaic = kept_tokens_overlay(
                out.images,
                out.kept_index,
                out.grid_thw,
                camera_names=self.pipeline.config.camera_names,
                width=self.params.overlay_width,
            )
            msgs.append(("overlay", m.image_msg(f, mosaic, stamp_ns=out.stamp_ns, frame_id="")))
        return msgs

    def diagnostics(self, report: HealthReport, now_ns: int) -> tuple[str, Any]:
        msg = m.diagnostics_msg(
            self.factory,
            report,
            stamp_ns=now_ns,
            name=f"{self.node_name}: VLA planner",
            hardware_id=self.pipeline.info.backend,
        )
        return "diagnostics", msg
