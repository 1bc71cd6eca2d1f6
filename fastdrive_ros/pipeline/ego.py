"""Ego history from odometry: a bounded ring of samples -> the planner's EgoState at a frame stamp.

The history is the 7 poses at -3.0, -2.5, ..., 0 s before the frame, interpolated (linear in x, y,
shortest-arc in yaw) and expressed in the ego frame at the frame time (x forward, y left). Times
before the first sample are extrapolated backwards at the first sample's velocity (the car was
already moving when the node started), times after the last one forwards at the last sample's
velocity, at most `max_extrapolation_s`, beyond which the pose is held. Speed and yaw rate are
interpolated from the twist; acceleration is the speed change over the last 0.5 s; steering is
the kinematic bicycle estimate atan(wheelbase * yaw_rate / speed), 0 below 1 m/s where it is
ill-conditioned. `history_steps` counts the history times at or after the first sample since
the last reset (the ring may have dropped it since): Impromptu's prompt lists only those, as its
training data had no keyframe before a scene's start; the extrapolated ones stay in history_xy.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import HISTORY_STEPS, PLAN_DT_S, DrivingCommand, EgoState
from fastdrive_ros.pipeline.types import OdometryIn

_MIN_STEER_SPEED = 1.0
# A history time this close before the first sample still counts as observed (odometry and
# camera stamps of the first frame differ by tens of ms).
_HISTORY_START_TOLERANCE_NS = 50_000_000


@dataclass(frozen=True)
class EgoEstimate:
    """The EgoState for a frame and how trustworthy it is.

    Attributes:
        state: what the planner sees.
        odom_age_ms: frame stamp minus the newest odometry stamp (None without odometry).
        status: "ok", "no_odometry" (stationary history assumed) or "stale_odometry".
    """

    state: EgoState
    odom_age_ms: float | None
    status: str


class EgoHistory:
    """Thread-safe ring buffer of odometry samples (appended in stamp order)."""

    def __init__(
        self,
        *,
        capacity: int,
        wheelbase_m: float,
        max_extrapolation_s: float = 0.5,
        stale_after_s: float = 1.0,
    ) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        if wheelbase_m <= 0:
            raise ValueError(f"wheelbase_m must be > 0, got {wheelbase_m}")
        self._samples: deque[OdometryIn] = deque(maxlen=capacity)
        self._wheelbase = wheelbase_m
        self._max_extra_ns = int(max_extrapolation_s * 1e9)
        self._stale_ns = int(stale_after_s * 1e9)
        self._first_ns: int | None = None  # first sample since the last reset
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, odom: OdometryIn) -> bool:
        """Append a sample; False (ignored) for non-finite values or a stamp not after the last.

        A stamp far in the past is the caller's business (it resets on a time jump first).
        """
        values = (odom.x, odom.y, odom.yaw, odom.vx, odom.vy, odom.yaw_rate)
        if not all(math.isfinite(v) for v in values):
            return False
        with self._lock:
            if self._samples and odom.stamp_ns <= self._samples[-1].stamp_ns:
                return False
            self._samples.append(odom)
            if self._first_ns is None:
                self._first_ns = odom.stamp_ns
            return True

    def last_stamp_ns(self) -> int | None:
        with self._lock:
            return self._samples[-1].stamp_ns if self._samples else None

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self._first_ns = None

    def estimate(self, stamp_ns: int, command: DrivingCommand) -> EgoEstimate:
        """The EgoState at `stamp_ns` (see the module docstring for the rules)."""
        with self._lock:
            samples = list(self._samples)
            first_ns = self._first_ns
        if not samples:
            still = EgoState(
                history_xy=np.zeros((HISTORY_STEPS, 2)),
                speed=0.0,
                acceleration=0.0,
                yaw_rate=0.0,
                steering=0.0,
                command=command,
            )
            return EgoEstimate(still, None, "no_odometry")
        stamps = np.array([s.stamp_ns for s in samples], dtype=np.int64)
        offsets = np.arange(-(HISTORY_STEPS - 1), 1) * PLAN_DT_S
        times = stamp_ns + np.round(offsets * 1e9).astype(np.int64)
        poses = np.array([self._pose_at(samples, stamps, int(t)) for t in times])  # (7, 3)
        x0, y0, yaw0 = poses[-1]
        c, s = math.cos(yaw0), math.sin(yaw0)
        dx, dy = poses[:, 0] - x0, poses[:, 1] - y0
        history = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)
        speed = self._interp(samples, stamps, stamp_ns, "vx")
        past_speed = self._interp(samples, stamps, stamp_ns - int(PLAN_DT_S * 1e9), "vx")
        yaw_rate = self._interp(samples, stamps, stamp_ns, "yaw_rate")
        steering = (
            math.atan(self._wheelbase * yaw_rate / speed)
            if abs(speed) >= _MIN_STEER_SPEED
            else 0.0
        )
        state = EgoState(
            history_xy=history,
            speed=speed,
            acceleration=(speed - past_speed) / PLAN_DT_S if len(samples) > 1 else 0.0,
            yaw_rate=yaw_rate,
            steering=steering,
            command=command,
            history_steps=max(
                1, int(np.sum(times >= (first_ns or 0) - _HISTORY_START_TOLERANCE_NS))
            ),
        )
        age_ns = stamp_ns - int(stamps[-1])
        status = "stale_odometry" if abs(age_ns) > self._stale_ns else "ok"
        return EgoEstimate(state, age_ns / 1e6, status)

    @staticmethod
    def _interp(samples: list[OdometryIn], stamps: np.ndarray, t: int, name: str) -> float:
        values = np.array([getattr(s, name) for s in samples], dtype=np.float64)
        return float(np.interp(t, stamps, values))

    def _pose_at(self, samples: list[OdometryIn], stamps: np.ndarray, t: int) -> np.ndarray:
        """(x, y, yaw) at time t, interpolated or extrapolated at constant velocity."""
        if t <= stamps[0] or t >= stamps[-1] or len(samples) == 1:
            ref = samples[0] if t <= stamps[0] else samples[-1]
            dt_ns = t - ref.stamp_ns
            if t > stamps[-1]:
                dt_ns = min(dt_ns, self._max_extra_ns)
            dt = dt_ns / 1e9
            yaw = ref.yaw + ref.yaw_rate * dt
            mid = ref.yaw + 0.5 * ref.yaw_rate * dt
            vx, vy = ref.vx, ref.vy
            x = ref.x + (vx * math.cos(mid) - vy * math.sin(mid)) * dt
            y = ref.y + (vx * math.sin(mid) + vy * math.cos(mid)) * dt
            return np.array([x, y, yaw])
        i = int(np.searchsorted(stamps, t, side="right"))
        a, b = samples[i - 1], samples[i]
        w = (t - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
        dyaw = math.atan2(math.sin(b.yaw - a.yaw), math.cos(b.yaw - a.yaw))
        return np.array([a.x + w * (b.x - a.x), a.y + w * (b.y - a.y), a.yaw + w * dyaw])
