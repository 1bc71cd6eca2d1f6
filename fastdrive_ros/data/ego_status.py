"""Ego history, CAN-like ego status and the driving command at a keyframe.

Status comes from the nuScenes CAN bus expansion when the dataroot has `can_bus/` (pose message:
vel / accel / rotation_rate in the ego frame at 50 Hz; steeranglefeedback: steering-wheel angle in
rad, left positive, at 100 Hz), else from the ego poses by finite differences (real nuScenes
without the expansion). The steering-wheel angle becomes a front-wheel angle by STEERING_RATIO
(EgoState.steering; Impromptu's prompt multiplies it back, so a CAN value reaches the model raw);
without CAN, steering comes from a kinematic bicycle model: atan(WHEELBASE * yaw_rate / speed).

The history is 7 poses at -3.0 .. 0 s; at a scene's start the poses before its first one are
extrapolated, and `observed_history_steps` says how many rows were not (the prompt of a real
checkpoint lists only those, as Impromptu's data had no keyframe before the scene).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastdrive_ros.core_types import HISTORY_STEPS, PLAN_DT_S, STEERING_RATIO, DrivingCommand
from fastdrive_ros.data.frames import Pose, PoseTrack

# Renault Zoe wheelbase, metres (kinematic bicycle model when no CAN steering exists).
WHEELBASE_M = 2.588
# Below this speed the bicycle model is ill-conditioned: steering from poses is reported as 0.
MIN_SPEED_FOR_STEERING = 1.0
# Command as UniAD/VAD derive it: lateral offset of the GT future at +3 s beyond +-2 m.
COMMAND_LATERAL_THRESHOLD_M = 2.0
# CAN samples farther than this from the asked time are not used (fall back to poses).
CAN_MAX_GAP_S = 0.1
# A history time this close before the scene's first pose still counts as observed (nuScenes
# ego poses come with every sample_data, the first keyframe's within tens of ms of the first).
HISTORY_START_TOLERANCE_S = 0.05

HISTORY_OFFSETS_S: tuple[float, ...] = tuple(
    -PLAN_DT_S * (HISTORY_STEPS - 1 - i) for i in range(HISTORY_STEPS)
)


@dataclass(frozen=True)
class EgoStatus:
    """Speed m/s, acceleration m/s^2 (along x), yaw rate rad/s (CCW), front-wheel steering rad."""

    speed: float
    acceleration: float
    yaw_rate: float
    steering: float
    source: str  # "can_bus" or "poses"


class CanBusTrack:
    """CAN bus pose and steering messages of one scene, interpolated at exact times.

    Args:
        pose_utime: (N,) microseconds of the 50 Hz pose messages.
        velocity: (N, 3) m/s in the ego frame.
        acceleration: (N, 3) m/s^2 in the ego frame.
        rotation_rate: (N, 3) rad/s in the ego frame.
        steer_utime: (M,) microseconds of steeranglefeedback (may be empty).
        steer_value: (M,) steering-wheel angle, rad, left positive.
    """

    def __init__(
        self,
        *,
        pose_utime: np.ndarray,
        velocity: np.ndarray,
        acceleration: np.ndarray,
        rotation_rate: np.ndarray,
        steer_utime: np.ndarray,
        steer_value: np.ndarray,
    ) -> None:
        self._t = np.asarray(pose_utime, dtype=np.float64)
        self._vel = np.asarray(velocity, dtype=np.float64).reshape(-1, 3)
        self._acc = np.asarray(acceleration, dtype=np.float64).reshape(-1, 3)
        self._rot = np.asarray(rotation_rate, dtype=np.float64).reshape(-1, 3)
        self._st = np.asarray(steer_utime, dtype=np.float64)
        self._sv = np.asarray(steer_value, dtype=np.float64)
        if len(self._t) == 0 or not (len(self._t) == len(self._vel) == len(self._acc)):
            raise ValueError("CAN pose messages must be non-empty with one vel/accel per utime")
        if len(self._rot) != len(self._t) or len(self._st) != len(self._sv):
            raise ValueError("CAN rotation_rate / steering arrays do not match their timestamps")
        order = np.argsort(self._t, kind="stable")
        self._t, self._vel, self._acc, self._rot = (
            self._t[order],
            self._vel[order],
            self._acc[order],
            self._rot[order],
        )
        order = np.argsort(self._st, kind="stable")
        self._st, self._sv = self._st[order], self._sv[order]

    @classmethod
    def from_messages(cls, pose: list[dict[str, Any]], steer: list[dict[str, Any]]) -> CanBusTrack:
        """Build from the devkit's `get_messages(scene, 'pose' / 'steeranglefeedback')` lists."""
        return cls(
            pose_utime=np.array([m["utime"] for m in pose], dtype=np.float64),
            velocity=np.array([m["vel"] for m in pose], dtype=np.float64),
            acceleration=np.array([m["accel"] for m in pose], dtype=np.float64),
            rotation_rate=np.array([m["rotation_rate"] for m in pose], dtype=np.float64),
            steer_utime=np.array([m["utime"] for m in steer], dtype=np.float64),
            steer_value=np.array([m["value"] for m in steer], dtype=np.float64),
        )

    @staticmethod
    def _near(times: np.ndarray, t_us: float) -> bool:
        if len(times) == 0:
            return False
        gap = CAN_MAX_GAP_S * 1e6
        return times[0] - gap <= t_us <= times[-1] + gap

    def covers(self, t_us: float) -> bool:
        """True when pose messages exist within CAN_MAX_GAP_S of t."""
        return self._near(self._t, t_us)

    def twist(self, t_us: float) -> tuple[np.ndarray, np.ndarray]:
        """(3,) linear velocity m/s and (3,) angular velocity rad/s in the ego frame at t."""
        lin = np.array([np.interp(t_us, self._t, self._vel[:, i]) for i in range(3)])
        ang = np.array([np.interp(t_us, self._t, self._rot[:, i]) for i in range(3)])
        return lin, ang

    def lateral_acceleration(self, t_us: float) -> float:
        """CAN acceleration along y (left) at t, m/s^2."""
        return float(np.interp(t_us, self._t, self._acc[:, 1]))

    def status(self, t_us: float) -> EgoStatus | None:
        """Status at t, or None when the CAN log does not cover t."""
        if not self.covers(t_us):
            return None
        lin, ang = self.twist(t_us)
        accel = float(np.interp(t_us, self._t, self._acc[:, 0]))
        steering = 0.0
        if self._near(self._st, t_us):
            steering = float(np.interp(t_us, self._st, self._sv)) / STEERING_RATIO
        return EgoStatus(float(lin[0]), accel, float(ang[2]), steering, "can_bus")


def can_status_rows(can: CanBusTrack | None, t_us: float, observed: int) -> np.ndarray | None:
    """(7, 4) CAN [acc_x, acc_y, vel_x, front-wheel steering] at the history times, or None.

    Impromptu's prompt reads the CAN status at every past keyframe. Rows before the `observed`
    ones (never listed) are zero; None when the CAN log misses an observed time (the prompt
    then estimates the past rows from the poses).
    """
    if can is None:
        return None
    rows = np.zeros((HISTORY_STEPS, 4))
    for i in range(HISTORY_STEPS - observed, HISTORY_STEPS):
        t = t_us + HISTORY_OFFSETS_S[i] * 1e6
        status = can.status(t)
        if status is None:
            return None
        rows[i] = [status.acceleration, can.lateral_acceleration(t), status.speed, status.steering]
    return rows


def status_from_poses(track: PoseTrack, t_us: float) -> EgoStatus:
    """Finite-difference status: velocity +-0.1 s, acceleration from velocities +-0.25 s."""

    def forward_speed(t: float) -> float:
        return float(track.velocity(t, 0.1) @ track.at(t).rotation_matrix[:, 0])

    speed = forward_speed(t_us)
    half = 0.25e6
    t0, t1 = max(track.start_us, t_us - half), min(track.end_us, t_us + half)
    accel = (forward_speed(t1) - forward_speed(t0)) / ((t1 - t0) * 1e-6) if t1 > t0 else 0.0
    yaw_rate = track.yaw_rate(t_us, 0.1)
    steering = 0.0
    if abs(speed) >= MIN_SPEED_FOR_STEERING:
        steering = float(np.arctan(WHEELBASE_M * yaw_rate / speed))
    return EgoStatus(speed, float(accel), float(yaw_rate), steering, "poses")


def ego_history(track: PoseTrack, t_us: float, current: Pose) -> np.ndarray:
    """(7, 2) ego positions at -3.0 .. 0 s in the current ego frame (x forward, y left).

    Times before the first pose of the scene are extrapolated at the velocity of its first 0.5 s
    (constant velocity, straight), so every keyframe has a finite history.
    """
    times = [t_us + dt * 1e6 for dt in HISTORY_OFFSETS_S]
    points = np.stack([track.position(t) for t in times])
    local = current.to_local(points)[:, :2]
    local[-1] = 0.0
    return local


def observed_history_steps(track: PoseTrack, t_us: float) -> int:
    """How many of the 7 history times (the last ones) lie within the scene's poses (>= 1).

    At the k-th keyframe of a scene (k = 0, 1, ...) this is min(k + 1, 7): the keyframes the
    upstream prompt could read a status at.
    """
    start = track.start_us - HISTORY_START_TOLERANCE_S * 1e6
    return max(1, sum(1 for dt in HISTORY_OFFSETS_S if t_us + dt * 1e6 >= start))


def driving_command(future_xy: np.ndarray, future_valid: np.ndarray) -> DrivingCommand:
    """'left' / 'right' / 'straight' from the lateral offset of the last valid future waypoint.

    Like UniAD/VAD: beyond +COMMAND_LATERAL_THRESHOLD_M (left) or below its negative (right).
    """
    valid = np.flatnonzero(np.asarray(future_valid, dtype=bool))
    if len(valid) == 0:
        return "straight"
    lateral = float(np.asarray(future_xy)[valid[-1], 1])
    if lateral >= COMMAND_LATERAL_THRESHOLD_M:
        return "left"
    if lateral <= -COMMAND_LATERAL_THRESHOLD_M:
        return "right"
    return "straight"
