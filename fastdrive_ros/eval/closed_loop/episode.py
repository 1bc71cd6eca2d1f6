"""One closed-loop route: the world, a planner that sees six cameras, a controller, the monitor.

Each route starts with WARMUP_S of the world's own driver (so the ego has a real history and the
scenario's events are timed as in the dataset), then from t = 0 the planner drives:

    every 1/plan_hz s:  render the six cameras at the ego's actual pose and the world's time,
                        hand them with the odometry since the last plan and the route's driving
                        command to the planner;
    every tick (50 ms): the controller follows the newest plan, the car moves, the world steps
                        (other agents react to where the ego really is), the monitor checks.

Deterministic mode (default): simulated time waits while the planner runs, so results do not
depend on the machine. Realtime mode: a plan becomes active only `compute` seconds after its
frame (rounded up to ticks) and the next frame is taken when the planner is free again, so the
latency of the model costs distance on the road; the car follows the old plan meanwhile.

The planner is anything with LoopPlanner's shape: the command line hands in the node's own frame
pipeline (fastdrive_ros/closed_loop.py), tests a scripted one. eval/ does not import pipeline/
(DESIGN.md section 3), hence the protocol.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fastdrive_ros.core_types import DrivingCommand
from fastdrive_ros.data.ego_status import COMMAND_LATERAL_THRESHOLD_M
from fastdrive_ros.data.synth.live import LiveScene
from fastdrive_ros.data.synth.scene import WARMUP_S
from fastdrive_ros.data.synth.sim import DT, EgoState
from fastdrive_ros.eval.closed_loop.controller import CarState, Reference, advance, control
from fastdrive_ros.eval.closed_loop.infractions import InfractionMonitor
from fastdrive_ros.eval.closed_loop.score import OFF_ROUTE_M, RouteScore, score_route

STAMP_OFFSET_S = 1000.0  # scene time -> positive pipeline stamps
COMMAND_HORIZON_S = 3.0  # the dataset's command looks at the 3-s future position


@dataclass(frozen=True)
class Odom:
    """One odometry sample of the driven car (rear axle, world frame)."""

    stamp_ns: int
    x: float
    y: float
    yaw: float
    v: float
    yaw_rate: float


@dataclass(frozen=True)
class LoopFrame:
    """What the planner gets at a planning instant, as the node would receive it."""

    stamp_ns: int
    images: np.ndarray  # (6, H, W, 3) uint8 RGB, CAMERA_NAMES order
    odometry: tuple[Odom, ...]  # every sample since the previous frame
    command: DrivingCommand


@dataclass(frozen=True)
class LoopPlan:
    """The planner's answer: waypoints (6, 2) in the ego frame at the frame, or None (failure)."""

    waypoints: np.ndarray | None
    kept_index: np.ndarray
    total_tokens: int
    compute_s: float
    failure: str = ""


class LoopPlanner(Protocol):
    image_size: tuple[int, int]  # (H, W) the cameras are rendered at

    def start_route(self) -> None:
        """Forget everything of the previous route (ego history, frame sync)."""

    def plan(self, frame: LoopFrame) -> LoopPlan: ...


@dataclass
class PlanRecord:
    """One planning instant, for the GIF and the bird's-eye plot."""

    t: float
    pose: np.ndarray
    plan_xy: np.ndarray | None  # (7, 2) world frame, the car's position first
    kept_index: np.ndarray
    total_tokens: int
    images: np.ndarray | None  # thumbnails (6, h, w, 3) when recording
    command: str
    agents: np.ndarray | None = None  # (A, 5) x, y, yaw, half w, half l near the car (recording)


@dataclass
class RouteRun:
    """A driven route: its score and its trace."""

    score: RouteScore
    driven_xy: np.ndarray  # (T, 2) rear axle per tick
    route_xy: np.ndarray  # the route's centreline from the start, for plots
    plans: list[PlanRecord] = field(default_factory=list)
    compute_s: float = 0.0


def route_command(scene: LiveScene, car: CarState, s: float) -> DrivingCommand:
    """The driving command as the dataset derives it (lateral offset of the 3-s position).

    The 3-s position is the route's point at the distance the car covers in 3 s at its speed.
    """
    target, _ = scene.route.path.sample(s + car.v * COMMAND_HORIZON_S)
    dx, dy = target[0] - car.x, target[1] - car.y
    lateral = -math.sin(car.yaw) * dx + math.cos(car.yaw) * dy
    if lateral >= COMMAND_LATERAL_THRESHOLD_M:
        return "left"
    if lateral <= -COMMAND_LATERAL_THRESHOLD_M:
        return "right"
    return "straight"


def _odom(t: float, car: CarState) -> Odom:
    stamp = int(round((t + STAMP_OFFSET_S) * 1e9))
    return Odom(stamp, car.x, car.y, car.yaw, car.v, car.yaw_rate)


def _car(ego: EgoState, accel: float = 0.0) -> CarState:
    return CarState(ego.x, ego.y, ego.yaw, ego.v, ego.steer, accel)


def _thumbs(images: np.ndarray, scale: int = 2) -> np.ndarray:
    return images[:, ::scale, ::scale].copy()


def _near_agents(scene: LiveScene, car: CarState, radius: float = 45.0) -> np.ndarray:
    a = scene.agents()
    near = a.alive & (np.hypot(*(a.xy - np.array([car.x, car.y])).T) < radius)
    return np.stack([a.xy[near, 0], a.xy[near, 1], a.yaw[near], a.half_w[near], a.half_l[near]], 1)


def drive_route(
    scene: LiveScene,
    planner: LoopPlanner | None,
    *,
    seconds: float,
    reference_m: float | None = None,
    plan_hz: float = 2.0,
    realtime: bool = False,
    record: bool = False,
) -> RouteRun:
    """Drive `scene` for `seconds` after the warm-up; planner None = the world's own driver.

    `reference_m` is the expert's progress for route completion (None: this run is the expert).
    """
    if plan_hz <= 0:
        raise ValueError(f"plan_hz must be > 0, got {plan_hz}")
    odom: list[Odom] = []
    while scene.t < -1e-9:  # warm-up: the world's driver, recorded as odometry
        odom.append(_odom(scene.t, _car(scene.ego)))
        scene.step()
    if planner is not None:
        planner.start_route()
    path = scene.route.path
    s0 = scene.ego.s
    s_now, off_route, s_frozen = s0, False, s0
    car = _car(scene.ego)
    monitor = InfractionMonitor(scene.route, DT)
    driven, accels, plans = [], [], []
    ref: Reference | None = None
    pending: tuple[float, Reference | None] | None = None
    next_plan_t, failures, kept, compute = 0.0, 0, [], 0.0
    n_ticks = int(round(seconds / DT))
    for tick in range(n_ticks):
        t = scene.t
        if planner is not None and t >= next_plan_t - 1e-9:
            images = scene.render(car.pose)
            command = route_command(scene, car, s_now)
            frame = LoopFrame(int(round((t + STAMP_OFFSET_S) * 1e9)), images, tuple(odom), command)
            odom = []
            t0 = time.perf_counter()
            result = planner.plan(frame)
            spent = time.perf_counter() - t0
            compute += spent
            delay = math.ceil(max(result.compute_s, spent) / DT - 1e-9) * DT if realtime else 0.0
            new_ref = None
            if result.waypoints is None:
                failures += 1
            else:
                new_ref = Reference.from_plan(result.waypoints, car.pose, t)
            kept.append(len(result.kept_index))
            plans.append(
                PlanRecord(
                    t,
                    car.pose,
                    None if new_ref is None else new_ref.xy,
                    np.asarray(result.kept_index),
                    result.total_tokens,
                    _thumbs(images) if record else None,
                    command,
                    _near_agents(scene, car) if record else None,
                )
            )
            pending = (t + delay, new_ref)
            next_plan_t = t + max(1.0 / plan_hz, delay)
        if pending is not None and t >= pending[0] - 1e-9:
            ref = pending[1] if pending[1] is not None else ref  # a failed plan keeps the old
            pending = None
        if planner is None:
            scene.step()
            car = _car(scene.ego, scene.scenario.world._ego_accel)
        else:
            if ref is None:  # before the first plan is active: hold speed and steering
                accel, steer = 0.0, car.steer
            else:
                accel, steer = control(car, ref, t)
            car = advance(car, accel, steer)
            scene.step(EgoState(car.x, car.y, car.yaw, car.v, car.steer, s_now))
            odom.append(_odom(scene.t, car))
        i = path.index_at(s_now)
        s_now, lateral = path.project(np.array([car.x, car.y]), i - 40, i + 80)
        if abs(lateral) > OFF_ROUTE_M:
            off_route = True
        if not off_route:
            s_frozen = s_now
        driven.append((car.x, car.y))
        accels.append(car.accel)
        monitor.update(
            scene.t,
            (car.x, car.y, car.yaw),
            car.v,
            s_now,
            scene.agents(),
            scene.light_is_red,
            scene.on_drivable,
            ttc=tick % 2 == 0,
        )
    progress = s_frozen - s0
    score = score_route(
        route=scene.index,
        events=tuple(scene.scenario.events),
        seconds=seconds,
        progress_m=progress,
        reference_m=progress if reference_m is None else reference_m,
        off_route=off_route,
        log=monitor.log,
        accel=np.asarray(accels),
        dt=DT,
        plan_failures=failures,
        plans=len(plans),
        mean_kept_tokens=float(np.mean(kept)) if kept else 0.0,
    )
    i0 = path.index_at(s0)
    i1 = path.index_at(s0 + max(progress, 0.0) + 60.0) + 1
    return RouteRun(score, np.asarray(driven), path.xy[i0:i1].copy(), plans, compute)


__all__ = ["WARMUP_S", "LoopFrame", "LoopPlan", "LoopPlanner", "Odom", "RouteRun", "drive_route"]
