"""Pipeline outputs -> ROS messages, through a message factory, for every transport.

rclpy message classes and rosbags dataclasses have the same field names, so one builder serves
both; the factory hides the few differences (how a class is found, how uint8[] and byte fields
are given). Every message is built with all its fields, as rosbags dataclasses require.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PlanOk
from fastdrive_ros.pipeline.frame_pipeline import PipelineInfo
from fastdrive_ros.pipeline.latency import STAGES
from fastdrive_ros.pipeline.types import HealthReport, PipelineOutput

TRAJECTORY = "fastdrive_ros/msg/Trajectory"
TRAJECTORY_POINT = "fastdrive_ros/msg/TrajectoryPoint"
FRAME_LATENCY = "fastdrive_ros/msg/FrameLatency"
STAGE_LATENCY = "fastdrive_ros/msg/StageLatency"
PATH = "nav_msgs/msg/Path"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
FLOAT64 = "std_msgs/msg/Float64"
IMAGE = "sensor_msgs/msg/Image"

# PlanFailure.reason -> Trajectory.status (msg/Trajectory.msg constants)
STATUS = {
    "ok": 0,
    "unparseable": 1,
    "wrong_count": 2,
    "non_finite": 3,
    "out_of_range": 4,
    "no_answer": 5,
}
COMMANDS = {"straight": 0, "left": 1, "right": 2}
# Stages published in FrameLatency.stages: the disjoint ones, so that their sum is at most total_ms
# as the message promises. Total and frame age have their own fields; prefill and decode_tokens
# are parts of "plan" (they have their own ~/debug/*_ms topics).
LATENCY_STAGES = tuple(
    s for s in STAGES if s not in ("total", "frame_age", "prefill", "decode_tokens")
)


class MsgFactory(Protocol):
    """Builds messages of one flavour (rosbags dataclasses or rclpy classes)."""

    def new(self, msgtype: str, **fields: Any) -> Any: ...

    def uint8_array(self, data: np.ndarray) -> Any: ...

    def byte(self, value: int) -> Any: ...


class RosbagsFactory:
    """rosbags dataclasses from transport.ros_types.typestore() (bags, replay, the DDS wire)."""

    def __init__(self) -> None:
        from fastdrive_ros.transport.ros_types import typestore

        self._types = typestore().types

    def new(self, msgtype: str, **fields: Any) -> Any:
        return self._types[msgtype](**fields)

    def uint8_array(self, data: np.ndarray) -> Any:
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)

    def byte(self, value: int) -> Any:
        return int(value)


def time_msg(factory: MsgFactory, stamp_ns: int) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return factory.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header(factory: MsgFactory, stamp_ns: int, frame_id: str) -> Any:
    return factory.new("std_msgs/msg/Header", stamp=time_msg(factory, stamp_ns), frame_id=frame_id)


def pose(factory: MsgFactory, x: float, y: float, yaw: float) -> Any:
    """geometry_msgs/Pose at (x, y, 0) heading `yaw` (rotation about z)."""
    return factory.new(
        "geometry_msgs/msg/Pose",
        position=factory.new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=0.0),
        orientation=factory.new(
            "geometry_msgs/msg/Quaternion",
            x=0.0,
            y=0.0,
            z=math.sin(yaw / 2.0),
            w=math.cos(yaw / 2.0),
        ),
    )


def waypoint_kinematics(waypoints: np.ndarray, speed0: float) -> dict[str, np.ndarray]:
    """Headings, speeds, accelerations and yaw rates along (6, 2) waypoints at PLAN_DT_S.

    Heading i is the direction from point i-1 to i (the origin before the first); speed i the
    distance over the step; acceleration and yaw rate the finite differences (the first against
    the current speed and heading 0).
    """
    points = np.vstack([np.zeros((1, 2)), np.asarray(waypoints, dtype=np.float64)])
    steps = np.diff(points, axis=0)
    distance = np.linalg.norm(steps, axis=1)
    heading = np.arctan2(steps[:, 1], steps[:, 0])
    for i in range(len(heading)):  # standing still: keep the previous heading
        if distance[i] < 1e-3:
            heading[i] = heading[i - 1] if i else 0.0
    speed = distance / PLAN_DT_S
    accel = np.diff(np.concatenate([[speed0], speed])) / PLAN_DT_S
    turn = np.diff(np.concatenate([[0.0], heading]))
    yaw_rate = np.arctan2(np.sin(turn), np.cos(turn)) / PLAN_DT_S
    return {"heading": heading, "speed": speed, "accel": accel, "yaw_rate": yaw_rate}


def trajectory_msg(
    factory: MsgFactory,
    out: PipelineOutput,
    *,
    frame_id: str,
    info: PipelineInfo,
    planned_at_ns: int,
) -> Any:
    """fastdrive_ros/Trajectory: points for a PlanOk, an empty list and a status otherwise."""
    points = []
    if isinstance(out.plan, PlanOk):
        status, detail = STATUS["ok"], ""
        kin = waypoint_kinematics(out.plan.waypoints, out.ego.speed)
        for i, (x, y) in enumerate(np.asarray(out.plan.waypoints, dtype=np.float64)):
            offset_ns = round((i + 1) * PLAN_DT_S * 1e9)
            points.append(
                factory.new(
                    TRAJECTORY_POINT,
                    time_from_start=factory.new(
                        "builtin_interfaces/msg/Duration",
                        sec=offset_ns // 1_000_000_000,
                        nanosec=offset_ns % 1_000_000_000,
                    ),
                    pose=pose(factory, x, y, kin["heading"][i]),
                    longitudinal_velocity_mps=float(kin["speed"][i]),
                    lateral_velocity_mps=0.0,
                    acceleration_mps2=float(kin["accel"][i]),
                    heading_rate_rps=float(kin["yaw_rate"][i]),
                )
            )
    else:
        status, detail = STATUS.get(out.plan.reason, STATUS["no_answer"]), out.plan.detail
    return factory.new(
        TRAJECTORY,
        header=header(factory, out.stamp_ns, frame_id),
        points=points,
        status=status,
        status_detail=detail,
        command=COMMANDS.get(out.ego.command, 0),
        model_name=info.model_name,
        pruner=info.pruner,
        keep_ratio=float(info.keep_ratio),
        kept_tokens=int(out.kept_tokens),
        total_tokens=int(out.total_tokens),
        planned_at=time_msg(factory, planned_at_ns),
    )


def path_msg(factory: MsgFactory, out: PipelineOutput, *, frame_id: str) -> Any:
    """nav_msgs/Path from the ego origin through the waypoints (empty for a failed plan)."""
    poses = []
    if isinstance(out.plan, PlanOk):
        waypoints = np.asarray(out.plan.waypoints, dtype=np.float64)
        kin = waypoint_kinematics(waypoints, out.ego.speed)
        xs = np.concatenate([[0.0], waypoints[:, 0]])
        ys = np.concatenate([[0.0], waypoints[:, 1]])
        yaws = np.concatenate([[0.0], kin["heading"]])
        for i in range(len(xs)):
            stamp = out.stamp_ns + round(i * PLAN_DT_S * 1e9)
            poses.append(
                factory.new(
                    "geometry_msgs/msg/PoseStamped",
                    header=header(factory, stamp, frame_id),
                    pose=pose(factory, xs[i], ys[i], yaws[i]),
                )
            )
    return factory.new(PATH, header=header(factory, out.stamp_ns, frame_id), poses=poses)


def diagnostics_msg(
    factory: MsgFactory,
    report: HealthReport,
    *,
    stamp_ns: int,
    name: str,
    hardware_id: str,
) -> Any:
    """diagnostic_msgs/DiagnosticArray with one status: level, message, every value."""
    values = [
        factory.new("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v))
        for k, v in report.values.items()
    ]
    status = factory.new(
        "diagnostic_msgs/msg/DiagnosticStatus",
        level=factory.byte(int(report.level)),
        name=name,
        message=report.message,
        hardware_id=hardware_id,
        values=values,
    )
    return factory.new(DIAGNOSTIC_ARRAY, header=header(factory, stamp_ns, ""), status=[status])


def latency_msg(factory: MsgFactory, out: PipelineOutput, *, frame_id: str) -> Any:
    """fastdrive_ros/FrameLatency: per-stage ms, total, frame age, sync spread, drops."""
    stages = [
        factory.new(STAGE_LATENCY, stage=stage, duration_ms=float(out.latency_ms[stage]))
        for stage in LATENCY_STAGES
        if stage in out.latency_ms and math.isfinite(out.latency_ms[stage])
    ]
    offsets = [r.offset_ms for r in out.cameras.values() if r.state == "ok"]
    offsets = [o for o in offsets if o is not None]
    spread = (max(offsets) - min(offsets)) if offsets else 0.0
    counters = out.counters
    dropped = sum(v for k, v in counters.items() if k.startswith("dropped/"))
    return factory.new(
        FRAME_LATENCY,
        header=header(factory, out.stamp_ns, frame_id),
        stages=stages,
        # from the frame's last image to publication: waiting + processing
        total_ms=float(out.latency_ms.get("queue", 0.0) + out.latency_ms.get("total", 0.0)),
        frame_age_ms=float(out.frame_age_ms),
        sync_spread_ms=float(spread),
        missing_cameras=[name for name, r in out.cameras.items() if r.state != "ok"],
        frames_processed=int(counters.get("processed", 0)),
        frames_dropped=int(dropped),
        frames_incomplete=int(counters.get("frames/incomplete", 0)),
    )


def float64_msg(factory: MsgFactory, value: float) -> Any:
    return factory.new(FLOAT64, data=float(value))


def image_msg(factory: MsgFactory, rgb: np.ndarray, *, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image rgb8 from [H, W, 3] uint8."""
    height, width = rgb.shape[:2]
    return factory.new(
        IMAGE,
        header=header(factory, stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        encoding="rgb8",
        is_bigendian=0,
        step=int(width * 3),
        data=factory.uint8_array(rgb),
    )
