"""Plain data in and out of the frame pipeline: what any transport converts its messages to/from.

Nothing here knows ROS; the transports (rclpy node, DDS node, bag replay) build these from
messages and turn `PipelineOutput` / `HealthReport` back into messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fastdrive_ros.core_types import DrivingCommand, EgoState, PlanResult

Encoding = Literal["jpeg", "png", "rgb8", "bgr8", "rgba8", "bgra8", "mono8"]
COMPRESSED_ENCODINGS: frozenset[str] = frozenset({"jpeg", "png"})
RAW_CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
ENCODINGS: frozenset[str] = COMPRESSED_ENCODINGS | frozenset(RAW_CHANNELS)


@dataclass(frozen=True)
class CameraFrameIn:
    """One camera image as it arrived, not yet decoded (decoding happens only for frames planned).

    Attributes:
        channel: camera name (CAM_FRONT, ...).
        stamp_ns: capture time from the message header (camera clock, ns).
        data: compressed bytes (jpeg/png) or the raw pixel buffer (row-major, `height` rows).
        encoding: one of ENCODINGS.
        width, height: pixel size for raw encodings (0 = unknown, for compressed images).
        received_ns: arrival time on the pipeline's clock (ns), for timeouts and frame age.
        step: bytes per row of a raw image (0 = tightly packed).
    """

    channel: str
    stamp_ns: int
    data: bytes | np.ndarray
    encoding: str
    width: int = 0
    height: int = 0
    received_ns: int = 0
    step: int = 0

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes) if isinstance(self.data, np.ndarray) else len(self.data)


@dataclass(frozen=True)
class OdometryIn:
    """One odometry sample: planar pose in a fixed frame and body-frame velocities.

    Attributes:
        stamp_ns: header time (ns).
        x, y: position in the odometry frame (metres).
        yaw: heading in the odometry frame (rad, counter-clockwise).
        vx: forward speed in the body frame (m/s).
        yaw_rate: rad/s, counter-clockwise positive.
        vy: lateral speed in the body frame (m/s).
    """

    stamp_ns: int
    x: float
    y: float
    yaw: float
    vx: float
    yaw_rate: float
    vy: float = 0.0


@dataclass(frozen=True)
class CommandIn:
    """A high-level driving command from the route (left / right / straight)."""

    stamp_ns: int
    command: DrivingCommand


class HealthLevel(enum.IntEnum):
    """Node health; the values are diagnostic_msgs/DiagnosticStatus levels (STALE = 3)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class HealthReport:
    """Health as plain data, published as one DiagnosticStatus by the transports.

    Attributes:
        level: OK / WARN / ERROR / STALE.
        message: one line saying why (the worst reasons first).
        values: key -> value strings (per-stage latency, frame age, counters, camera states).
    """

    level: HealthLevel
    message: str
    values: dict[str, str] = field(default_factory=dict)


CameraState = Literal["ok", "reused", "black", "missing"]


@dataclass(frozen=True)
class CameraSlotReport:
    """What the pipeline used for one camera of a planned frame and why.

    Attributes:
        state: "ok" (an image within the sync tolerance), "reused" (the last good image),
            "black" (a black image), "missing" (the frame was skipped because of this camera).
        offset_ms: stamp of the image used minus the anchor stamp (ms); None when none was used.
        reason: why the camera was not "ok" (e.g. "late", "decode: truncated JPEG"), else "".
    """

    state: CameraState
    offset_ms: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class PipelineOutput:
    """The result of planning one synchronised frame.

    Attributes:
        stamp_ns: camera time of the anchor (front) image the plan was made from.
        frame_id: sequence number of the planned frame (counts processed frames).
        plan: PlanOk (waypoints (6, 2), ego frame) or PlanFailure (reason, detail).
        kept_index: [K] int64 ascending indices of the tokens the encoder+pruner kept
            (camera-major); all N for an LLM-stage selector, which prunes inside the planner.
        kept_tokens: the visual tokens the planner's last layer saw (K).
        total_tokens: N, the visual tokens before pruning.
        grid_thw: [C, 3] per-camera (t, h, w) in patch units (for overlays).
        latency_ms: stage -> ms for this frame (queue, decode, preprocess, encode, prune or
            encode_prune, prefill, decode_tokens, plan, total, frame_age; see latency.STAGES).
        frame_age_ms: publish time minus stamp_ns, on the pipeline clock.
        ego: the ego state the planner saw.
        cameras: channel -> CameraSlotReport.
        health: the pipeline health right after this frame.
        counters: snapshot of the pipeline counters (name -> count).
        scores: [N] selector scores when the backend exposes them.
        images: [C, H, W, 3] uint8 RGB as decoded, when the pipeline keeps them (overlays).
    """

    stamp_ns: int
    frame_id: int
    plan: PlanResult
    kept_index: np.ndarray
    kept_tokens: int
    total_tokens: int
    grid_thw: np.ndarray
    latency_ms: dict[str, float]
    frame_age_ms: float
    ego: EgoState
    cameras: dict[str, CameraSlotReport]
    health: HealthReport
    counters: dict[str, int]
    scores: np.ndarray | None = None
    images: np.ndarray | None = None
