"""Constant turn rate and acceleration (CTRA): the parameter-free kinematic prior from ego status.

It rolls the current speed, longitudinal acceleration and yaw rate forward for 3 s. FACTS.md:
on our synthetic world it beat the first shipped VLA, so a planner that does not beat it has
not learned anything the ego status does not already say. In the "minimal" ego setting
(`restrict_ego`) acceleration and yaw rate are 0 by construction, so CTRA degenerates exactly to
constant velocity in a straight line: the two reference rows are then equal, by design.

Closed form (heading psi(t) = w t, speed v(t) = v0 + a t, ego frame x forward, y left):
    x(t) = (v0 + a t) sin(w t) / w + a (cos(w t) - 1) / w^2
    y(t) = v0 / w - (v0 + a t) cos(w t) / w + a sin(w t) / w^2
and below STRAIGHT_YAW_RATE the series x = v0 t + a t^2 / 2, y = w (v0 t^2 / 2 + a t^3 / 3).
A decelerating ego stops at t = -v0 / a and stays there (no reversing); speed is clipped at 0.
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS, EgoState

STRAIGHT_YAW_RATE = 1e-3  # rad/s; the series above is then exact to < 1 mm over 3 s at 15 m/s


def ctra_positions(
    speed: float, acceleration: float, yaw_rate: float, times: np.ndarray
) -> np.ndarray:
    """(len(times), 2) positions at `times` (s, >= 0) of a CTRA motion from the origin."""
    v0 = max(0.0, float(speed))
    a, w = float(acceleration), float(yaw_rate)
    t = np.asarray(times, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("CTRA times must be >= 0")
    if a < 0:  # the ego stops, it does not reverse: freeze the motion at the stopping time
        t = np.minimum(t, v0 / -a)
    if abs(w) < STRAIGHT_YAW_RATE:
        x = v0 * t + 0.5 * a * t**2
        y = w * (0.5 * v0 * t**2 + a * t**3 / 3.0)
        return np.stack([x, y], axis=1)
    v = v0 + a * t
    s, c = np.sin(w * t), np.cos(w * t)
    x = v * s / w + a * (c - 1.0) / w**2
    y = v0 / w - v * c / w + a * s / w**2
    return np.stack([x, y], axis=1)


def ctra_plan(ego: EgoState, *, steps: int = PLAN_STEPS, dt: float = PLAN_DT_S) -> np.ndarray:
    """(steps, 2) CTRA waypoints at dt, 2 dt, ... from the ego status (what the planner reads)."""
    if steps <= 0 or dt <= 0:
        raise ValueError(f"need steps > 0 and dt > 0, got steps={steps}, dt={dt}")
    times = dt * np.arange(1, steps + 1)
    return ctra_positions(ego.speed, ego.acceleration, ego.yaw_rate, times)
