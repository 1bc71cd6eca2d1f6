"""What the driven car did wrong, tick by tick: collisions, red lights, leaving the road, low TTC.

Pure geometry on footprints (no rendering), so every rule can be checked on hand-made cases.

Rules (written down because the score depends on them):
- collision: the ego box (nuScenes 1.85 x 4.084 m, centred 1.34 m ahead of the rear axle)
  overlaps an agent's box. Each agent counts once per route. It is the ego's fault unless the ego
  is (almost) stopped (< 0.5 m/s) or the agent's centre is behind the ego's rear axle (hit from
  behind), as NAVSIM's at-fault rule; other contacts are counted apart.
- red light: the ego's front bumper crosses a signal's stop line on its route while it is red.
- leaving the drivable area: a corner of the ego box off road, lane marking and crossings; each
  excursion is one event, and its duration is kept.
- TTC: ego and agents in front of the ego's rear axle extrapolated at constant velocity and
  heading for TTC_HORIZON_S; time-to-collision is the first overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fastdrive_ros.data.synth.live import AGENT_KINDS, AgentBoxes
from fastdrive_ros.data.synth.routes import Route
from fastdrive_ros.data.synth.sim import EGO_CENTRE, EGO_FRONT, EGO_SIZE

EGO_HALF_W, EGO_HALF_L = EGO_SIZE[0] / 2, EGO_SIZE[1] / 2
STOPPED_MPS = 0.5
TTC_HORIZON_S = 3.0
TTC_STEP_S = 0.25
TTC_THRESHOLD_S = 1.0
NEAR_M = 40.0  # agents farther than this cannot collide within the TTC horizon at town speeds


def boxes_overlap(
    centre: np.ndarray,
    yaw: float,
    half_w: float,
    half_l: float,
    centres: np.ndarray,
    yaws: np.ndarray,
    half_ws: np.ndarray,
    half_ls: np.ndarray,
) -> np.ndarray:
    """(N,) True where box i overlaps the one box (separating axis test, oriented rectangles)."""
    axes_a = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])  # (2, 2)
    axes_b = np.stack(
        [np.stack([np.cos(yaws), np.sin(yaws)], 1), np.stack([-np.sin(yaws), np.cos(yaws)], 1)],
        axis=1,
    )  # (N, 2, 2)
    d = centres - centre  # (N, 2)
    sep = np.zeros(len(centres), bool)
    ext_a = np.array([half_l, half_w])
    ext_b = np.stack([half_ls, half_ws], 1)  # (N, 2)
    for k in range(2):  # the one box's axes
        ax = axes_a[k]
        r_b = (np.abs(axes_b @ ax) * ext_b).sum(1)
        sep |= np.abs(d @ ax) > ext_a[k] + r_b
    for k in range(2):  # each other box's axes
        ax = axes_b[:, k]  # (N, 2)
        r_a = np.abs(ax @ axes_a.T) @ ext_a
        sep |= np.abs((d * ax).sum(1)) > ext_b[:, k] + r_a
    return ~sep


def ego_box(x: float, y: float, yaw: float) -> np.ndarray:
    """Centre (2,) of the ego box from the rear-axle pose."""
    return np.array([x + EGO_CENTRE * np.cos(yaw), y + EGO_CENTRE * np.sin(yaw)])


def ego_corners(x: float, y: float, yaw: float) -> np.ndarray:
    """(4, 2) corners of the ego box."""
    c = ego_box(x, y, yaw)
    fwd = np.array([np.cos(yaw), np.sin(yaw)]) * EGO_HALF_L
    left = np.array([-np.sin(yaw), np.cos(yaw)]) * EGO_HALF_W
    return np.array([c + fwd + left, c + fwd - left, c - fwd - left, c - fwd + left])


def time_to_collision(x: float, y: float, yaw: float, v: float, agents: AgentBoxes) -> float:
    """Seconds until the ego box first overlaps an agent ahead at constant velocities (inf)."""
    c = ego_box(x, y, yaw)
    heading = np.array([np.cos(yaw), np.sin(yaw)])
    rel = agents.xy - np.array([x, y])
    ahead = agents.alive & ((rel @ heading) > 0.0) & (np.hypot(*rel.T) < NEAR_M)
    idx = np.flatnonzero(ahead)
    if not len(idx):
        return float("inf")
    vel = agents.speed[idx, None] * np.stack([np.cos(agents.yaw[idx]), np.sin(agents.yaw[idx])], 1)
    for tau in np.arange(0.0, TTC_HORIZON_S + 1e-9, TTC_STEP_S):
        hit = boxes_overlap(
            c + heading * v * tau,
            yaw,
            EGO_HALF_W,
            EGO_HALF_L,
            agents.xy[idx] + vel * tau,
            agents.yaw[idx],
            agents.half_w[idx],
            agents.half_l[idx],
        )
        if hit.any():
            return float(tau)
    return float("inf")


@dataclass
class InfractionLog:
    """Counts and times of one route's infractions (see the module docstring for the rules)."""

    collisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGENT_KINDS, 0))
    collisions_not_at_fault: int = 0
    red_light_violations: int = 0
    offroad_events: int = 0
    offroad_s: float = 0.0
    ttc_below_s: float = 0.0
    min_ttc_s: float = float("inf")
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def at_fault_collisions(self) -> int:
        return int(sum(self.collisions.values()))

    @property
    def infractions(self) -> int:
        """Collisions (at fault) + red-light violations: the issue's infraction count."""
        return self.at_fault_collisions + self.red_light_violations


class InfractionMonitor:
    """Updates an InfractionLog once per simulation tick of `dt` seconds."""

    def __init__(self, route: Route, dt: float) -> None:
        self.route, self.dt = route, dt
        self.log = InfractionLog()
        self._hit: set[int] = set()
        self._offroad = False
        self._front_s: float | None = None

    def update(
        self,
        t: float,
        pose: tuple[float, float, float],
        v: float,
        s_route: float,
        agents: AgentBoxes,
        is_red: Callable[[int, str], bool],
        on_drivable: Callable[[np.ndarray], np.ndarray],
        ttc: bool = True,
    ) -> None:
        """One tick: the ego at `pose` (rear axle), speed v, arc length s_route on its route."""
        x, y, yaw = pose
        log = self.log
        self._collisions(t, x, y, yaw, v, agents)
        front = s_route + EGO_FRONT
        if self._front_s is not None:
            for stop in self.route.stops:
                crossed = self._front_s < stop.s <= front
                if crossed and stop.kind == "light" and is_red(stop.node, stop.axis):
                    log.red_light_violations += 1
                    log.events.append((t, "red_light"))
        self._front_s = front
        off = not bool(on_drivable(ego_corners(x, y, yaw)).all())
        if off:
            log.offroad_s += self.dt
            if not self._offroad:
                log.offroad_events += 1
                log.events.append((t, "offroad"))
        self._offroad = off
        if ttc:
            tau = time_to_collision(x, y, yaw, v, agents)
            log.min_ttc_s = min(log.min_ttc_s, tau)
            if tau < TTC_THRESHOLD_S and v > STOPPED_MPS:
                log.ttc_below_s += self.dt

    def _collisions(
        self, t: float, x: float, y: float, yaw: float, v: float, agents: AgentBoxes
    ) -> None:
        c = ego_box(x, y, yaw)
        near = agents.alive & (np.abs(agents.xy - c).max(1) < 15.0)
        idx = np.flatnonzero(near)
        if not len(idx):
            return
        hit = boxes_overlap(
            c,
            yaw,
            EGO_HALF_W,
            EGO_HALF_L,
            agents.xy[idx],
            agents.yaw[idx],
            agents.half_w[idx],
            agents.half_l[idx],
        )
        heading = np.array([np.cos(yaw), np.sin(yaw)])
        for a in idx[hit].tolist():
            if a in self._hit:
                continue
            self._hit.add(a)
            behind = float((agents.xy[a] - np.array([x, y])) @ heading) < 0.0
            if v < STOPPED_MPS or behind:
                self.log.collisions_not_at_fault += 1
                self.log.events.append((t, "contact_not_at_fault"))
            else:
                kind = agents.kind[a]
                self.log.collisions[kind] += 1
                self.log.events.append((t, f"collision_{kind}"))
