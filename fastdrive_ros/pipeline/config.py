"""The frame pipeline's deployment settings, validated once at construction.

Model-architecture settings (image size, camera order, token grid) come with the model folder;
these are the settings a car integrator tunes (sync, timeouts, health thresholds, limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastdrive_ros.core_types import CAMERA_NAMES, DEFAULT_MAX_NEW_TOKENS, DrivingCommand

MissingCameraPolicy = Literal["reuse_last", "black", "skip"]
MISSING_CAMERA_POLICIES: tuple[str, ...] = ("reuse_last", "black", "skip")

# nuScenes' Renault Zoe; steering is estimated from yaw rate and speed with this wheelbase.
NUSCENES_WHEELBASE_M = 2.588


@dataclass(frozen=True)
class PipelineConfig:
    """Sync, limits and health thresholds of `FramePipeline` (see pipeline/sync.py for the policy).

    Attributes:
        camera_names: cameras in the model's order; the first one anchors synchronisation.
        sync_tolerance_ms: how far another camera's stamp may be from the anchor's.
        camera_timeout_ms: how long a frame waits for a late camera before the missing-camera
            policy applies (measured on the pipeline clock from the anchor's arrival).
        missing_camera: "reuse_last" (the camera's last good image if not older than
            reuse_max_age_ms, else black), "black" or "skip" (drop the frame).
        reuse_max_age_ms: the oldest last-good image "reuse_last" may use.
        camera_period_ms: nominal camera period; processing slower than this raises WARN.
        stale_after_ms: no frame planned for this long -> STALE.
        max_image_bytes: larger images are rejected on arrival (never decoded).
        input_width, input_height: expected camera resolution (0 = accept any size, but every
            camera must then match the anchor image).
        ring_size: images kept per camera (bounded memory: older ones are dropped and counted).
        jump_back_ms: an anchor stamp this much older than the previous one means the source
            restarted (a bag loop): sync and ego history are reset; smaller steps back are dropped
            as out of order.
        jump_forward_ms: an anchor stamp this much newer than the previous one resets too.
        odom_buffer: odometry samples kept (ring buffer).
        wheelbase_m: for the steering estimate (yaw_rate * wheelbase / speed).
        error_after_failures: consecutive failed frames that raise ERROR.
        latency_window: frames in the rolling latency statistics (p50 / p95).
        default_command: driving command until a command arrives.
        max_new_tokens: planner budget for a text answer.
    """

    camera_names: tuple[str, ...] = CAMERA_NAMES
    sync_tolerance_ms: float = 60.0
    camera_timeout_ms: float = 100.0
    missing_camera: MissingCameraPolicy = "reuse_last"
    reuse_max_age_ms: float = 500.0
    camera_period_ms: float = 1000.0 / 12.0
    stale_after_ms: float = 1000.0
    max_image_bytes: int = 8 * 1024 * 1024
    input_width: int = 0
    input_height: int = 0
    ring_size: int = 4
    jump_back_ms: float = 500.0
    jump_forward_ms: float = 2000.0
    odom_buffer: int = 512
    wheelbase_m: float = NUSCENES_WHEELBASE_M
    error_after_failures: int = 3
    latency_window: int = 200
    default_command: DrivingCommand = "straight"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        names = tuple(self.camera_names)
        object.__setattr__(self, "camera_names", names)
        if not names or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"camera_names must be distinct non-empty names, got {names}")
        positive = {
            "sync_tolerance_ms": self.sync_tolerance_ms,
            "camera_period_ms": self.camera_period_ms,
            "stale_after_ms": self.stale_after_ms,
            "max_image_bytes": self.max_image_bytes,
            "ring_size": self.ring_size,
            "jump_back_ms": self.jump_back_ms,
            "jump_forward_ms": self.jump_forward_ms,
            "odom_buffer": self.odom_buffer,
            "wheelbase_m": self.wheelbase_m,
            "error_after_failures": self.error_after_failures,
            "latency_window": self.latency_window,
            "max_new_tokens": self.max_new_tokens,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name in ("camera_timeout_ms", "reuse_max_age_ms", "input_width", "input_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if (self.input_width == 0) != (self.input_height == 0):
            raise ValueError("set both input_width and input_height, or neither (0 = any size)")
        if self.missing_camera not in MISSING_CAMERA_POLICIES:
            raise ValueError(
                f"missing_camera must be one of {MISSING_CAMERA_POLICIES}, "
                f"got {self.missing_camera!r}"
            )
        if self.default_command not in ("left", "right", "straight"):
            raise ValueError(
                f"default_command must be left, right or straight: {self.default_command!r}"
            )
        if self.odom_buffer < 2:
            raise ValueError(f"odom_buffer must hold at least 2 samples, got {self.odom_buffer}")

    @property
    def anchor(self) -> str:
        """The camera that anchors a frame (the front camera)."""
        return self.camera_names[0]

    @property
    def expected_size(self) -> tuple[int, int] | None:
        """(width, height) every camera must have, or None when any (consistent) size is fine."""
        return (self.input_width, self.input_height) if self.input_width else None
