"""Constant-velocity reference planner: what a planner achieves without looking at the cameras.

From the ego status alone (speed and yaw rate at the planning time) it rolls out a constant turn
rate and velocity (CTRV) arc, or a straight line when the yaw rate is negligible. Scored with the
same metrics as the VLA, it shows how much the images help: a learned planner that does not beat
it has not learned to read the scene (lead vehicles, lights, pedestrians).
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS, EgoState

# Below this yaw rate (rad/s) the arc is indistinguishable from a line over 3 s (< 1.5 cm at
# 10 m/s) and the CTRV formula divides by ~0: drive straight.
STRAIGHT_YAW_RATE = 1e-3


def constant_velocity_plan(
    ego: EgoState, *, steps: int = PLAN_STEPS, dt: float = PLAN_DT_S
) -> np.ndarray:
    """(steps, 2) waypoints at dt, 2*dt, ... in the ego frame (x forward, y left).

    Speed is clipped at 0 (no reversing); yaw rate is counter-clockwise positive, so a positive
    yaw rate curves to the left (+y).
    """
    if steps <= 0 or dt <= 0:
        raise ValueError(f"need steps > 0 and dt > 0, got steps={steps}, dt={dt}")
    speed = max(0.0, float(ego.speed))
    omega = float(ego.yaw_rate)
    t = dt * np.arange(1, steps + 1)
    if abs(omega) < STRAIGHT_YAW_RATE:
        return np.stack([speed * t, np.zeros_like(t)], axis=1)
    radius = speed / omega
    return np.stack([radius * np.sin(omega * t), radius * (1.0 - np.cos(omega * t))], axis=1)
