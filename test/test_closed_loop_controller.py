"""The closed-loop controller follows straight and curved plans and stops where a plan stops.

A perfect planner re-plans every 0.5 s from the car's actual pose along a known reference path
(what the loop does with the VLA); stated errors after a 3-s settling time: lateral <= 0.3 m,
speed <= 0.3 m/s, and a stop within STOP_TOL_M of the planned stop point (waypoints are 0.5 s
apart and linear in between, so the last metres of a stop are only known that coarsely).
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS
from fastdrive_ros.data.synth.sim import DT, MAX_DECEL
from fastdrive_ros.eval.closed_loop.controller import (
    MAX_ACCEL,
    CarState,
    Reference,
    advance,
    control,
)

LATERAL_TOL_M = 0.3
SPEED_TOL_MPS = 0.3
STOP_TOL_M = 0.5


def _local(points: np.ndarray, car: CarState) -> np.ndarray:
    c, s = np.cos(car.yaw), np.sin(car.yaw)
    d = points - np.array([car.x, car.y])
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def _drive(car: CarState, waypoints_for, seconds: float, measure):
    """Re-plan at 2 Hz with `waypoints_for(car)` (world points), step at 20 Hz, measure."""
    ref, out = None, []
    for tick in range(int(round(seconds / DT))):
        t = tick * DT
        if tick % int(round(0.5 / DT)) == 0:
            ref = Reference.from_plan(_local(waypoints_for(car), car), car.pose, t)
        accel, steer = control(car, ref, t)
        car = advance(car, accel, steer)
        out.append(measure(t + DT, car))
    return car, out


def test_follows_a_straight_plan_from_a_lateral_offset() -> None:
    speed = 10.0

    def plan(car: CarState) -> np.ndarray:  # the line y = 0 at 10 m/s
        x = car.x + speed * PLAN_DT_S * np.arange(1, PLAN_STEPS + 1)
        return np.stack([x, np.zeros_like(x)], axis=1)

    car = CarState(0.0, 1.0, 0.0, 8.0)
    _, m = _drive(car, plan, 12.0, lambda t, c: (t, abs(c.y), abs(c.v - speed)))
    settled = np.array([(lat, dv) for t, lat, dv in m if t > 3.0])
    assert settled[:, 0].max() <= LATERAL_TOL_M
    assert settled[:, 1].max() <= SPEED_TOL_MPS
    assert m[-1][1] < 0.05  # converged onto the line


def test_follows_a_curved_plan() -> None:
    radius, speed = 30.0, 7.0  # 1.6 m/s^2 lateral: inside the steering limits

    def plan(car: CarState) -> np.ndarray:  # a left circle around (0, radius)
        phi = np.arctan2(car.y - radius, car.x) + speed * PLAN_DT_S * np.arange(1, 7) / radius
        return np.stack([radius * np.cos(phi), radius + radius * np.sin(phi)], axis=1)

    car = CarState(radius, radius, np.pi / 2, speed)  # on the circle, tangent, counter-clockwise

    def measure(t: float, c: CarState) -> tuple[float, float, float]:
        return t, abs(np.hypot(c.x, c.y - radius) - radius), abs(c.v - speed)

    end, m = _drive(car, plan, 20.0, measure)
    settled = np.array([(lat, dv) for t, lat, dv in m if t > 3.0])
    assert settled[:, 0].max() <= LATERAL_TOL_M
    assert settled[:, 1].max() <= SPEED_TOL_MPS
    turned = end.yaw - np.pi / 2  # the car's yaw is not wrapped
    assert turned > 0.9 * speed * 20.0 / radius  # it really went round (about 4.7 rad)


def test_stops_before_the_planned_stop_point() -> None:
    stop_x = 30.0

    def plan(car: CarState) -> np.ndarray:  # brake comfortably to stop_x, then stay
        gap = max(stop_x - car.x, 0.0)
        decel = min(car.v**2 / (2 * max(gap, 0.1)), MAX_DECEL)
        t = PLAN_DT_S * np.arange(1, PLAN_STEPS + 1)
        t_stop = car.v / decel if decel > 0 else 0.0
        tt = np.minimum(t, t_stop)
        x = car.x + np.minimum(car.v * tt - 0.5 * decel * tt**2, gap)
        return np.stack([x, np.zeros_like(x)], axis=1)

    car = CarState(0.0, 0.0, 0.0, 9.0)
    end, m = _drive(car, plan, 12.0, lambda t, c: (c.x, c.accel))
    xs = np.array([x for x, _ in m])
    assert end.v < 0.05
    assert abs(end.x - stop_x) <= STOP_TOL_M
    assert xs.max() <= stop_x + STOP_TOL_M


def test_physical_limits_hold() -> None:
    car = CarState(0.0, 0.0, 0.0, 5.0)
    fast = advance(car, 100.0, 5.0)
    assert fast.accel <= MAX_ACCEL + 1e-9
    assert abs(fast.steer) <= 0.7 * DT + 1e-9  # steering-rate limit from the world's car
    hard = advance(CarState(0.0, 0.0, 0.0, 0.2), -100.0, 0.0)
    assert hard.v == 0.0 and hard.accel >= -MAX_DECEL - 1e-9  # no reversing, bounded braking
