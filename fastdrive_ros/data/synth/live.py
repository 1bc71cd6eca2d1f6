"""One scene of the synthetic world, live: stepped tick by tick with the ego driven from outside.

Closed-loop driving (eval/closed_loop) needs what `run_scene` does offline, but interleaved with a
planner: the world advances 50 ms at a time with the ego wherever the planner's controller put it
(other agents keep their own rules and react to that ego: IDM followers brake for it, pedestrians
wait for it), and the six cameras are rendered from the ego's actual pose at the world's time.

Route `index` of seed `seed` has the cast of scene `index` of `fastdrive synth --seed seed` made
with the same `--seconds` (same random stream, same first town; datasets of 25 scenes or more
spread scenes over several towns); sky, lighting and camera noise come from streams of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.agents import HUMANS, VEHICLES, agent_prisms
from fastdrive_ros.data.synth.encode import finish
from fastdrive_ros.data.synth.meshes import (
    concat_faces,
    concat_frames,
    face_frames,
    prisms_to_faces,
    take_frames,
    transform_faces,
)
from fastdrive_ros.data.synth.render import Shading
from fastdrive_ros.data.synth.routes import Route
from fastdrive_ros.data.synth.scenario import Scenario, build_scenario
from fastdrive_ros.data.synth.scene import SCENARIO_STREAM, WARMUP_S, _shade, _shading
from fastdrive_ros.data.synth.signals import RED
from fastdrive_ros.data.synth.sim import DT, EGO_CENTRE, EGO_SIZE, WHEELBASE, EgoState
from fastdrive_ros.data.synth.textures import sky_panorama
from fastdrive_ros.data.synth.town import LOCATIONS
from fastdrive_ros.data.synth.world import light_material_ids, materials, renderers, town_assets

DRIVABLE_IDS = (CLASS_ID["road"], CLASS_ID["lane_marking"], CLASS_ID["crossing"])
AGENT_KINDS = ("vehicle", "pedestrian", "cyclist", "static")


@dataclass(frozen=True)
class AgentBoxes:
    """Every agent's footprint now (box centre, yaw, half sizes, speed) and its metric kind.

    `kind` is one of AGENT_KINDS: parked cars, cones and barriers are "static" (they never move).
    """

    xy: np.ndarray
    yaw: np.ndarray
    half_w: np.ndarray
    half_l: np.ndarray
    speed: np.ndarray
    alive: np.ndarray
    kind: tuple[str, ...]


def ego_centre(x: float, y: float, yaw: float) -> np.ndarray:
    """Centre of the ego's box from its rear-axle pose (the ego frame's origin)."""
    return np.array([x + EGO_CENTRE * np.cos(yaw), y + EGO_CENTRE * np.sin(yaw)])


class LiveScene:
    """A scenario that steps on demand and renders at any ego pose (see module docstring).

    Args:
        seed: dataset seed (town and cast); use one the model was not trained on.
        index: route (scene) number within the seed.
        seconds: driving time after the warm-up (the scenario times its events for it).
        width, height: camera image size.
        town_grid: intersections per side of the town.
        conflicts: the scenario's standing vehicles and stop-and-go leads (scenario.py).
    """

    def __init__(
        self,
        *,
        seed: int,
        index: int,
        seconds: float,
        width: int,
        height: int,
        town_grid: int = 5,
        conflicts: bool = False,
    ) -> None:
        self.seed, self.index = seed, index
        self.location = LOCATIONS[0]
        self.assets = town_assets(seed, self.location, town_grid)
        rng = np.random.default_rng([seed, index, SCENARIO_STREAM])
        self.scenario: Scenario = build_scenario(
            self.assets.town, rng, seconds=seconds, warmup=WARMUP_S, conflicts=conflicts
        )
        look = np.random.default_rng([seed, index, 23])
        self.sky = sky_panorama(look)
        self.shading: Shading = _shading(look, self.sky)
        self.width, self.height = width, height
        self.t = -WARMUP_S
        self._tick = 0
        world = self.scenario.world
        world._ego_committed = set()  # what World.run sets up before its first step
        world._refresh()
        mats = materials()
        specs = self.scenario.specs
        owners = [a for a, spec in enumerate(specs) for _ in agent_prisms(spec, mats)]
        prisms = [p for spec in specs for p in agent_prisms(spec, mats)]
        self._local = prisms_to_faces(prisms, owners)
        self._static_shade = _shade(
            self.assets.frames.normal, self.assets.faces.tint, self.shading
        )
        fixed = set(world.fixed)
        self.kinds = tuple(_kind(spec.kind, a in fixed) for a, spec in enumerate(specs))

    # ----- state ----------------------------------------------------------------------------
    @property
    def route(self) -> Route:
        return self.scenario.world.ego_route

    @property
    def ego(self) -> EgoState:
        return self.scenario.world.ego

    def step(self, ego: EgoState | None = None) -> None:
        """Advance the world by DT; with `ego`, the ego is there (else the world's driver drives).

        The ego's `s` (arc length on its route) is re-projected here, so callers only set the pose.
        """
        world = self.scenario.world
        if ego is not None:
            mine = world.ego
            mine.x, mine.y, mine.yaw, mine.v, mine.steer = ego.x, ego.y, ego.yaw, ego.v, ego.steer
            path = self.route.path
            i = path.index_at(mine.s)
            mine.s, _ = path.project(np.array([mine.x, mine.y]), i - 40, i + 80)
            world._refresh()
        # Decisions at 10 Hz, as in World.run (the simulated drivers' reaction time).
        world.step(self.t, decide=self._tick % 2 == 0, drive_ego=ego is None)
        self.t = round(self.t + DT, 9)
        self._tick += 1
        world._refresh()

    def agents(self) -> AgentBoxes:
        """Footprints of every agent now (ego excluded)."""
        w = self.scenario.world
        n = len(self.scenario.specs)
        return AgentBoxes(
            w.pos[:n].copy(),
            w.yaw[:n].copy(),
            w.half_w[:n].copy(),
            w.half_l[:n].copy(),
            w.vel[:n].copy(),
            w.alive[:n].copy(),
            self.kinds,
        )

    def light_is_red(self, node: int, axis: str) -> bool:
        return self.scenario.plan.state(node, axis, self.t) == RED

    def on_drivable(self, xy: np.ndarray) -> np.ndarray:
        """(P,) True where world points (P, 2) lie on road, lane marking or a crossing."""
        g = self.assets.ground
        col = np.floor((xy[:, 0] - g.x0) / g.res).astype(np.int64)
        row = np.floor((g.y1 - xy[:, 1]) / g.res).astype(np.int64)
        inside = (row >= 0) & (row < g.cls.shape[0]) & (col >= 0) & (col < g.cls.shape[1])
        out = np.zeros(len(xy), bool)
        out[inside] = np.isin(g.cls[row[inside], col[inside]], DRIVABLE_IDS)
        return out

    # ----- cameras --------------------------------------------------------------------------
    def render(self, pose: np.ndarray) -> np.ndarray:
        """(6, H, W, 3) uint8 RGB of the six cameras (CAMERA_NAMES order) at ego pose (x, y, yaw).

        All six see the world at `self.t` (the dataset fires them within 42 ms; at a 2 Hz plan
        rate the difference is below a tenth of a metre). Camera finishing (exposure, noise) is
        drawn per image from (seed, index, tick, camera), so re-running a route repeats it.
        """
        assets, mats, world = self.assets, materials(), self.scenario.world
        pose = np.asarray(pose, np.float64)
        near = np.hypot(*(assets.centres - pose[:2]).T) < assets.cull_m
        static = assets.faces.take(near)
        n = len(self.scenario.specs)
        poses = np.concatenate([world.pos[:n], world.yaw[:n, None]], axis=1)
        poses = np.where(world.alive[:n, None], poses, [1e6, 1e6, 0.0])
        moved = transform_faces(self._local, poses)
        faces = concat_faces([static, moved])
        moved_frames = face_frames(moved, mats)
        frames = concat_frames([take_frames(assets.frames, near), moved_frames])
        shade = np.concatenate(
            [self._static_shade[near], _shade(moved_frames.normal, moved.tint, self.shading)]
        )
        lit = faces.light >= 0
        if lit.any():
            plan = self.scenario.plan
            states = np.array([plan.state(nd, ax, self.t) for nd, ax in assets.light_axis])
            faces.mat[lit] = light_material_ids()[states[faces.light[lit]]]
        images = np.empty((6, self.height, self.width, 3), np.uint8)
        for c, cam in enumerate(renderers(self.width, self.height)):
            out = cam.render(
                ego_pose=pose,
                ground=assets.ground,
                sky=self.sky,
                shading=self.shading,
                faces=faces,
                frames=frames,
                shade=shade,
                materials=mats,
            )
            rng = np.random.default_rng([self.seed, self.index, self._tick, c, 17])
            images[c] = finish(out.rgb, rng)
        return images


def _kind(kind: str, fixed: bool) -> str:
    if fixed or kind in ("barrier", "cone"):
        return "static"
    if kind in VEHICLES:
        return "vehicle"
    if kind in HUMANS:
        return "pedestrian"
    return "cyclist"


__all__ = [
    "AGENT_KINDS",
    "DT",
    "EGO_SIZE",
    "WHEELBASE",
    "AgentBoxes",
    "LiveScene",
    "ego_centre",
]
