"""Can a synthetic world's open-loop collision rate tell plans apart? Measured without rendering.

Simulates the scenes of a world exactly as `fastdrive synth` does (same seed, scenario and
traffic; no images), takes every 2 Hz keyframe with a full 3 s future and scores plans that see no
camera against the other agents' future boxes with the evaluation's own collision metric
(metrics.GroundTruth, boxes of agents within the annotation radius):

- `logged`: the simulated ego's own future (0 % by construction: its collisions are excluded),
- `constant_velocity`: speed and yaw rate held (what a planner that reads neither the cameras
  nor the acceleration does),
- `ctra`: the kinematic prior from the full ego status (nn/ctra.py),
- `standing`: the ego does not move.

A world where constant velocity collides about as rarely as the logged ego cannot rank planners on
collision, whatever they read; the table says how far apart they are, with 95 % intervals from a
bootstrap over scenes (bootstrap.py). Seconds per world instead of the minutes rendering takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS, EgoState
from fastdrive_ros.data.synth.annotate import ANNOTATE_RADIUS_M
from fastdrive_ros.data.synth.generate import scene_locations, scene_names
from fastdrive_ros.data.synth.scenario import build_scenario
from fastdrive_ros.data.synth.scene import SCENARIO_STREAM, WARMUP_S
from fastdrive_ros.data.synth.sim import DT, LEADS, Tracks
from fastdrive_ros.data.synth.timeline import KEYFRAME_DT, keyframe_count
from fastdrive_ros.data.synth.world import town_assets
from fastdrive_ros.eval.bootstrap import Interval, bootstrap, collision_avg
from fastdrive_ros.eval.constant_velocity import constant_velocity_plan
from fastdrive_ros.eval.geometry import agent_footprint
from fastdrive_ros.eval.metrics import GroundTruth
from fastdrive_ros.nn.ctra import ctra_plan

PLANS: tuple[str, ...] = ("logged", "constant_velocity", "ctra", "standing")
HORIZON_S = PLAN_STEPS * PLAN_DT_S


@dataclass(frozen=True)
class ConflictKeyframe:
    """One keyframe: its scene, time, what binds the ego, and each plan's (6,) collision steps."""

    scene: str
    t: float
    lead: str
    collision: dict[str, np.ndarray]


def _to_ego(ego_pose: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    x, y, yaw = (float(v) for v in ego_pose)
    c, s = np.cos(-yaw), np.sin(-yaw)
    rot = np.array([[c, -s], [s, c]])
    return lambda xy: (np.asarray(xy, dtype=np.float64) - [x, y]) @ rot.T


def _plans(ego: np.ndarray, logged: np.ndarray) -> dict[str, np.ndarray]:
    speed, accel, yaw_rate = (float(v) for v in ego[3:6])
    status = EgoState(
        history_xy=np.zeros((7, 2)), speed=speed, acceleration=accel, yaw_rate=yaw_rate,
        steering=float(ego[6]),
    )  # fmt: skip
    return {
        "logged": logged,
        "constant_velocity": constant_velocity_plan(status),
        "ctra": ctra_plan(status),
        "standing": np.zeros((PLAN_STEPS, 2)),
    }


def keyframe_outcomes(tracks: Tracks, sizes: np.ndarray, scene: str, t: float) -> ConflictKeyframe:
    """Score PLANS at scene time `t` (a keyframe with a full future in `tracks`)."""
    k = int(round((t - tracks.t[0]) / DT))
    every = int(round(PLAN_DT_S / DT))
    future = [k + every * j for j in range(1, PLAN_STEPS + 1)]
    if future[-1] >= len(tracks.t):
        raise ValueError(f"the tracks end before t = {t} s + {HORIZON_S} s")
    to_ego = _to_ego(tracks.ego[k, :3])
    ego_yaw = float(tracks.ego[k, 2])
    logged = to_ego(tracks.ego[future, :2])
    boxes = []
    for f in future:
        centres = to_ego(tracks.poses[:, f, :2])
        near = tracks.active[:, f] & (np.hypot(*centres.T) <= ANNOTATE_RADIUS_M)
        boxes.append(
            [
                agent_footprint(centres[a], sizes[a], float(tracks.poses[a, f, 2]) - ego_yaw)
                for a in np.flatnonzero(near)
            ]
        )
    truth = GroundTruth(
        future_xy=logged, future_valid=np.ones(PLAN_STEPS, bool), agent_boxes=boxes
    )
    collision = {
        name: truth.score(plan).collision for name, plan in _plans(tracks.ego[k], logged).items()
    }
    return ConflictKeyframe(scene, float(t), LEADS[int(tracks.ego_lead[k])], collision)


def simulate_world(
    *,
    seed: int,
    scenes: int,
    seconds: float = 20.0,
    town_grid: int = 5,
    conflicts: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[ConflictKeyframe]:
    """Every keyframe with a full 3 s future of the world `fastdrive synth` writes for these."""
    out: list[ConflictKeyframe] = []
    key_times = KEYFRAME_DT * np.arange(keyframe_count(seconds))
    key_times = key_times[key_times + HORIZON_S <= key_times[-1] + 1e-9]
    for index, (name, location) in enumerate(zip(scene_names(scenes), scene_locations(scenes))):
        assets = town_assets(seed, location, town_grid)
        rng = np.random.default_rng([seed, index, SCENARIO_STREAM])
        scenario = build_scenario(
            assets.town, rng, seconds=seconds, warmup=WARMUP_S, conflicts=conflicts
        )
        tracks = scenario.world.run(-WARMUP_S, float(key_times[-1]) + HORIZON_S + 2 * DT)
        sizes = np.array([spec.size for spec in scenario.specs]).reshape(-1, 3)
        out += [keyframe_outcomes(tracks, sizes, name, float(t)) for t in key_times]
        if progress is not None:
            progress(index + 1)
    return out


@dataclass(frozen=True)
class PlanCollisions:
    """One plan's collision Avg (%) with its scene-bootstrap interval, and the keyframe share."""

    plan: str
    avg: Interval
    keyframes_hit: float  # % of keyframes with a collision at any step


def summarise(keyframes: list[ConflictKeyframe], *, draws: int = 2000) -> list[PlanCollisions]:
    """Per plan: collision Avg with a 95 % scene-bootstrap interval (see the module docstring)."""
    if not keyframes:
        raise ValueError("no keyframe to score: the scenes are shorter than 3.5 s")
    scenes = [kf.scene for kf in keyframes]
    rows = []
    for plan in PLANS:
        steps = np.stack([kf.collision[plan] for kf in keyframes])
        interval = bootstrap(scenes, lambda w, s=steps: (collision_avg(s, w), None), draws=draws)
        rows.append(PlanCollisions(plan, interval, 100.0 * float(steps.max(axis=1).mean())))
    return rows


def difference(
    keyframes: list[ConflictKeyframe], worse: str, better: str, *, draws: int = 2000
) -> Interval:
    """Collision Avg(`worse`) - Avg(`better`) in points, paired over the same scene resamples."""
    scenes = [kf.scene for kf in keyframes]
    a = np.stack([kf.collision[worse] for kf in keyframes])
    b = np.stack([kf.collision[better] for kf in keyframes])
    return bootstrap(
        scenes, lambda w: (collision_avg(a, w) - collision_avg(b, w), None), draws=draws
    )


def report_markdown(keyframes: list[ConflictKeyframe], title: str) -> str:
    """The table `fastdrive conflicts` prints: plans, collision Avg [95 %], keyframes hit."""
    rows = summarise(keyframes)
    scenes = len({kf.scene for kf in keyframes})
    lines = [
        f"### {title}: {len(keyframes)} keyframes, {scenes} scenes",
        "",
        "| Plan | Collision Avg (%) [95 % scene bootstrap] | Keyframes with a collision (%) |",
        "|---|---|---|",
    ]
    for row in rows:
        iv = row.avg
        lines.append(
            f"| {row.plan} | {iv.estimate:.2f} [{iv.low:.2f}, {iv.high:.2f}] "
            f"| {row.keyframes_hit:.1f} |"
        )
    gap = difference(keyframes, "constant_velocity", "logged")
    verdict = "tells" if gap.excludes_zero else "does not tell"
    lines += [
        "",
        f"Constant velocity minus the logged future: {gap.estimate:+.2f} points "
        f"[{gap.low:+.2f}, {gap.high:+.2f}]: the collision rate {verdict} a plan that ignores "
        "what is ahead from the driven one on this world.",
    ]
    hits = [kf.lead for kf in keyframes if kf.collision["constant_velocity"].max() > 0]
    if hits:
        counts = {lead: hits.count(lead) for lead in sorted(set(hits))}
        lines.append(
            "Constant velocity's colliding keyframes by what binds the ego: "
            + ", ".join(f"{lead} {n}" for lead, n in counts.items())
            + "."
        )
    return "\n".join(lines)
