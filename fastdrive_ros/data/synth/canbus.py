"""The nuScenes CAN bus expansion files of one scene, from the simulated ego car.

`DIR/can_bus/<scene>_pose.json` (50 Hz: pos, orientation, vel / accel / rotation_rate in the ego
frame; accel excludes gravity), `<scene>_steeranglefeedback.json` (100 Hz: steering-wheel angle in
rad, left positive = front-wheel angle x STEERING_RATIO), `<scene>_vehicle_monitor.json` (2 Hz:
vehicle_speed km/h, yaw_rate deg/s, steering deg, throttle, brake, indicators, ...),
`<scene>_route.json` (the ego's planned route, x/y every 2 m) and `<scene>_meta.json`.
All are read by the devkit's `NuScenesCanBus.get_messages`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastdrive_ros.data.synth.routes import Route

STEERING_RATIO = 16.0  # steering wheel : front wheels (nuScenes' Renault Zoe, approx.)
WHEEL_RADIUS = 0.31


def _interp(t_src: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t, t_src, values[:, i]) for i in range(values.shape[1])], axis=1)


def _r(x: float, nd: int = 5) -> float:
    return round(float(x), nd)


def _stats(messages: list[dict]) -> dict:
    utimes = np.array([m["utime"] for m in messages], dtype=np.float64)
    span = (utimes[-1] - utimes[0]) / 1e6 if len(utimes) > 1 else 0.0
    stats = {}
    for key in messages[0]:
        if key == "utime":
            continue
        arr = np.array([m[key] for m in messages], dtype=np.float64)
        arr = arr.reshape(len(messages), -1)
        stats[key] = {
            "max": arr.max(0).round(4).tolist(),
            "mean": arr.mean(0).round(4).tolist(),
            "min": arr.min(0).round(4).tolist(),
            "std": arr.std(0).round(4).tolist(),
        }
    return {
        "message_count": len(messages),
        "message_freq": round(len(messages) / span, 3) if span > 0 else 0.0,
        "timespan": round(span, 3),
        "var_stats": stats,
    }


def write_can_bus(
    root: Path,
    scene: str,
    *,
    times: np.ndarray,
    ego: np.ndarray,
    route: Route,
    t0: float,
    t1: float,
    base_utime: int,
) -> int:
    """Write the CAN files of one scene; returns the bytes written.

    `ego` (T, 7: x, y, yaw, v, accel, yaw_rate, steer) at `times` (s, scene clock); the files
    cover [t0, t1] with utime = base_utime + t * 1e6.
    """
    folder = root / "can_bus"
    folder.mkdir(parents=True, exist_ok=True)

    def utime(t: np.ndarray) -> list[int]:
        return [int(base_utime + round(x * 1e6)) for x in t]

    t50 = np.arange(t0, t1 + 1e-9, 0.02)
    s50 = _interp(times, ego, t50)
    pose = []
    for u, (x, y, yaw, v, a, wz, _) in zip(utime(t50), s50):
        pose.append(
            {
                "utime": u,
                "pos": [_r(x, 4), _r(y, 4), 0.0],
                "orientation": [_r(np.cos(yaw / 2), 7), 0.0, 0.0, _r(np.sin(yaw / 2), 7)],
                "vel": [_r(v, 4), 0.0, 0.0],
                "accel": [_r(a, 4), _r(v * wz, 4), 0.0],
                "rotation_rate": [0.0, 0.0, _r(wz, 5)],
            }
        )
    t100 = np.arange(t0, t1 + 1e-9, 0.01)
    steer = np.interp(t100, times, ego[:, 6]) * STEERING_RATIO
    steering = [{"utime": u, "value": _r(s, 5)} for u, s in zip(utime(t100), steer)]
    t2 = np.arange(t0, t1 + 1e-9, 0.5)
    s2 = _interp(times, ego, t2)
    steer_rate = np.gradient(ego[:, 6], times) * STEERING_RATIO
    monitor = []
    for u, t, (x, y, _, v, a, wz, st) in zip(utime(t2), t2, s2):
        route_s, _ = route.path.project(np.array([x, y]))
        turn = next(
            (
                sp.turn
                for sp in route.turns
                if 0 <= sp.s0 - route_s < 30.0 or sp.s0 <= route_s <= sp.s1
            ),
            "straight",
        )
        rpm = v / (2 * np.pi * WHEEL_RADIUS) * 60.0
        monitor.append(
            {
                "utime": u,
                "available_distance": 180,
                "battery_level": 80,
                "brake": int(np.clip(-a * 18.0, 0, 126)) if a < -0.3 else 0,
                "brake_switch": 3 if a < -1.0 else (2 if a < -0.3 or v < 0.1 else 1),
                "gear_position": 7,
                "left_signal": int(turn == "left"),
                "rear_left_rpm": _r(rpm, 2),
                "rear_right_rpm": _r(rpm, 2),
                "right_signal": int(turn == "right"),
                "steering": _r(np.degrees(st * STEERING_RATIO), 1),
                "steering_speed": _r(np.degrees(np.interp(t, times, steer_rate)), 1),
                "throttle": int(np.clip(a * 250.0, 0, 1000)) if a > 0.05 else 0,
                "vehicle_speed": _r(v * 3.6, 2),
                "yaw_rate": _r(np.degrees(wz), 1),
            }
        )
    route_xy = route.path.xy[::4].round(3).tolist()
    files = {
        "pose": pose,
        "steeranglefeedback": steering,
        "vehicle_monitor": monitor,
        "route": route_xy,
    }
    files["meta"] = {
        name: _stats(files[name]) for name in ("pose", "steeranglefeedback", "vehicle_monitor")
    }
    size = 0
    for name, content in files.items():
        text = json.dumps(content, separators=(",", ":"))
        (folder / f"{scene}_{name}.json").write_text(text, encoding="utf-8")
        size += len(text)
    return size
