"""Follow a planned trajectory: pure pursuit for steering, speed tracking for throttle and brake.

A plan is the planner's six waypoints (+0.5 .. +3.0 s, ego frame at the planning time). It is
fixed in the world when it arrives, so the car keeps following it while the next plan is computed.
The car is the world's own ego model (kinematic bicycle, nuScenes' Zoe wheelbase) with physical
limits: acceleration in [-MAX_DECEL, MAX_ACCEL], steering angle and steering rate bounded.

Speed tracking: the plan gives a position along its path for every time (linear between the
waypoints) and so a speed; the command is the acceleration that reaches the planned speed of
SPEED_HORIZON_S later within that time (feed-forward of the planned deceleration, so a plan that
stops makes the car stop where it says), plus feedback on the position error along the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS
from fastdrive_ros.data.synth.geometry import wrap_angle
from fastdrive_ros.data.synth.sim import DT, MAX_DECEL, MAX_STEER, MAX_STEER_RATE, WHEELBASE

MAX_ACCEL = 3.0  # m/s^2, a brisk small car
SPEED_HORIZON_S = 1.0  # reach the plan's speed of this much later within this time
K_POS = 0.4  # 1/s^2: position error along the plan -> acceleration
K_STOP = 1.2  # 1/s: speed -> braking when the plan says "stay stopped"
STOP_DIST_M = 0.3  # a plan shorter than this is "stay stopped"


@dataclass
class CarState:
    """Rear-axle pose (world), speed, front-wheel angle and the last commanded acceleration."""

    x: float
    y: float
    yaw: float
    v: float
    steer: float = 0.0
    accel: float = 0.0

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.x, self.y, self.yaw])

    @property
    def yaw_rate(self) -> float:
        return self.v * float(np.tan(self.steer)) / WHEELBASE


@dataclass(frozen=True)
class Reference:
    """A plan fixed in the world: points (P, 2) at times t (P,) from its start, arc lengths s."""

    xy: np.ndarray
    t: np.ndarray
    s: np.ndarray
    start_time: float

    @classmethod
    def from_plan(cls, waypoints: np.ndarray, pose: np.ndarray, start_time: float) -> Reference:
        """Waypoints (6, 2) in the ego frame of `pose` (x, y, yaw) planned at `start_time`."""
        wp = np.asarray(waypoints, np.float64).reshape(PLAN_STEPS, 2)
        local = np.vstack([[0.0, 0.0], wp])
        c, s = np.cos(pose[2]), np.sin(pose[2])
        xy = np.stack(
            [
                pose[0] + c * local[:, 0] - s * local[:, 1],
                pose[1] + s * local[:, 0] + c * local[:, 1],
            ],
            axis=1,
        )
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        times = np.arange(PLAN_STEPS + 1) * PLAN_DT_S
        return cls(xy, times, arc, float(start_time))

    def s_at(self, tau: float) -> float:
        """Planned arc length at time tau after the start (held at the end)."""
        return float(np.interp(tau, self.t, self.s))

    def speed_at(self, tau: float) -> float:
        """Planned speed at tau: piecewise linear through the segments' mean speeds."""
        mid = 0.5 * (self.t[1:] + self.t[:-1])
        seg = np.diff(self.s) / np.diff(self.t)
        return float(np.interp(tau, mid, seg))

    def project(self, xy: np.ndarray) -> tuple[float, float]:
        """(arc length of the nearest point on the path, signed lateral offset, left +)."""
        a, b = self.xy[:-1], self.xy[1:]
        d = b - a
        seg_len2 = np.maximum((d**2).sum(1), 1e-12)
        u = np.clip(((xy - a) * d).sum(1) / seg_len2, 0.0, 1.0)
        foot = a + u[:, None] * d
        dist = np.hypot(*(xy - foot).T)
        i = int(np.argmin(dist))
        cross = d[i, 0] * (xy[1] - a[i, 1]) - d[i, 1] * (xy[0] - a[i, 0])
        lateral = float(dist[i]) * (1.0 if cross >= 0 else -1.0)
        return float(self.s[i] + u[i] * np.sqrt(seg_len2[i])), lateral

    def point_at(self, s: float) -> np.ndarray:
        """Point at arc length s, extended straight beyond the last waypoint."""
        if s <= self.s[-1] or self.s[-1] < 1e-6:
            return np.array(
                [np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])]
            )
        # Beyond the end: continue along the last segment that has a direction.
        k = int(np.flatnonzero(np.diff(self.s) > 1e-6)[-1])
        d = self.xy[k + 1] - self.xy[k]
        return self.xy[-1] + d / np.hypot(*d) * (s - self.s[-1])


def lookahead(v: float) -> float:
    """Pure-pursuit look-ahead distance (m) at speed v, as the world's own driver uses."""
    return float(np.clip(3.0 + 0.7 * v, 4.5, 16.0))


def control(car: CarState, ref: Reference, now: float) -> tuple[float, float]:
    """(acceleration, wanted steering angle) to follow `ref` at world time `now` (unclipped)."""
    tau = now - ref.start_time
    s_ego, _ = ref.project(np.array([car.x, car.y]))
    if ref.s[-1] < STOP_DIST_M:
        return -K_STOP * car.v, car.steer  # stay (or come to a) stop; steering held
    v_ref = ref.speed_at(tau + SPEED_HORIZON_S)
    accel = (v_ref - car.v) / SPEED_HORIZON_S + K_POS * (ref.s_at(tau) - s_ego)
    if ref.s_at(tau + 1.0) <= s_ego + STOP_DIST_M and v_ref < 0.5:
        accel = min(accel, -K_STOP * car.v)  # the plan stops here: do not creep forward
    target = ref.point_at(s_ego + lookahead(car.v))
    dx, dy = target[0] - car.x, target[1] - car.y
    alpha = float(wrap_angle(np.arctan2(dy, dx) - car.yaw))
    ld = max(float(np.hypot(dx, dy)), 1.0)
    steer = float(np.arctan2(2.0 * WHEELBASE * np.sin(alpha), ld))
    return float(accel), steer


def advance(car: CarState, accel: float, steer: float, dt: float = DT) -> CarState:
    """Kinematic bicycle step with the physical limits (speed never negative: no reversing)."""
    a = float(np.clip(accel, -MAX_DECEL, MAX_ACCEL))
    want = float(np.clip(steer, -MAX_STEER, MAX_STEER))
    new_steer = car.steer + float(
        np.clip(want - car.steer, -MAX_STEER_RATE * dt, MAX_STEER_RATE * dt)
    )
    v_new = max(0.0, car.v + a * dt)
    v_mid = 0.5 * (car.v + v_new)
    yaw = car.yaw + v_mid * np.tan(new_steer) / WHEELBASE * dt
    x = car.x + v_mid * np.cos(yaw) * dt
    y = car.y + v_mid * np.sin(yaw) * dt
    return CarState(float(x), float(y), float(yaw), float(v_new), new_steer, (v_new - car.v) / dt)
