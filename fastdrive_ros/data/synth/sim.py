"""Traffic simulation at 20 Hz.

IDM car following along routes, signals, zebra yielding, pedestrians with gap acceptance, and the
ego car as a kinematic bicycle with pure pursuit.

The ego driver reacts like a human, `reaction_s` (about 1 s) late to a surprise: when its decision
first asks for braking (below ONSET_DECEL) or, standing, for moving off, it keeps its foot where it
was for `reaction_s`, then follows its decisions closely until things have been calm for
RELAX_AFTER_S. So a light turning red, a lead car braking or a pedestrian stepping out is in the
camera images a second before it is in the ego's speed and acceleration, and the ego status cannot
already give away what the cameras are there to show. A plain 1-s delay on every decision was
tried first: IDM behind a delay oscillates (stop, creep, stop). An emergency (a decision at or
below EMERGENCY_DECEL) acts at once, as a startled driver stamps on the brake.

Every vehicle (the ego included) looks along its own route for the nearest thing in its corridor:
another vehicle, a cyclist, a pedestrian on (or about to step onto) the road, a cone, a red stop
line, a zebra with someone on it, or oncoming traffic it must yield to before turning left. So the
ego's braking, stopping, following and turning are caused by things its cameras can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastdrive_ros.data.synth.agents import AgentSpec
from fastdrive_ros.data.synth.geometry import Polyline, wrap_angle
from fastdrive_ros.data.synth.routes import Route, StopPoint
from fastdrive_ros.data.synth.signals import GREEN, RED, YELLOW, SignalPlan
from fastdrive_ros.data.synth.town import Town

DT = 0.05
WHEELBASE = 2.588  # Renault Zoe, as nuScenes' ego car
EGO_SIZE = (1.85, 4.084, 1.56)  # nuScenes ego box w, l, h
EGO_FRONT = 3.4  # rear axle (ego frame origin) to front bumper
EGO_CENTRE = 1.34  # rear axle to box centre
A_LAT = 2.0  # comfortable lateral acceleration, m/s^2
MAX_DECEL = 8.0
MAX_STEER = 0.6
MAX_STEER_RATE = 0.7  # rad/s at the wheels
EMERGENCY_DECEL = -5.0  # m/s^2: decisions at least this hard skip the reaction delay
ONSET_DECEL = -0.5  # m/s^2: a calm driver asked to brake harder than this is surprised
RELAX_AFTER_S = 2.0  # calm (decisions above -0.3 m/s^2) this long: back to relaxed driving

# Binding-constraint codes for the ego log.
LEADS = ("none", "vehicle", "cyclist", "pedestrian", "static", "red_light", "yield", "zebra")


@dataclass(frozen=True)
class Driver:
    """IDM parameters: speed factor on the limit, headway, jam gap, accel, comfort decel."""

    v_factor: float = 1.0
    headway: float = 1.4
    jam_gap: float = 2.5
    accel: float = 1.6
    decel: float = 2.5


@dataclass
class Mover:
    """A route-following vehicle or cyclist (agent index `agent`); `s` is its box centre."""

    agent: int
    route: Route
    s: float
    v: float
    driver: Driver
    lateral: float = 0.0  # rides this far left of the route (cyclists: negative)
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (t0, t1): v0 = 0
    active: bool = True
    committed: set[int] = field(default_factory=set)  # stop indices passed on yellow
    accel: float = 0.0


@dataclass
class Walker:
    """A pedestrian along `path`; crossings: (s_enter, s_exit, crossing id, kind)."""

    agent: int
    path: Polyline
    s: float
    speed: float
    crossings: list[tuple[float, float, int, str]]
    trigger_m: float | None = None  # zebra/jaywalk: wait until the ego is this close
    state: str = "walk"
    v: float = 0.0
    active: bool = True


@dataclass
class EgoState:
    x: float
    y: float
    yaw: float
    v: float
    steer: float = 0.0
    s: float = 0.0


@dataclass
class Tracks:
    """Simulated states at times t (T,).

    Attributes:
        poses: (A, T, 3) agent x, y, yaw; speed: (A, T); active: (A, T).
        ego: (T, 7) x, y, yaw, v, accel, yaw_rate, steer (front wheel, rad).
        ego_lead: (T,) index into LEADS; ego_gap: (T,) metres to that constraint (inf if none).
        ego_lead_speed: (T,) that constraint's speed along the ego's path (0 for a stop line or
            where there is none): with the gap and the ego's speed, what the driver decides on.
        ego_decided: (T,) the acceleration the ego driver decided at each step; what it applied
            (ego[:, 4]) follows it `World.reaction_s` later.
    """

    t: np.ndarray
    poses: np.ndarray
    speed: np.ndarray
    active: np.ndarray
    ego: np.ndarray
    ego_lead: np.ndarray
    ego_gap: np.ndarray
    ego_decided: np.ndarray | None = None
    ego_lead_speed: np.ndarray | None = None


def idm(v: float, v0: float, gap: float, dv: float, d: Driver) -> float:
    free = 1.0 - (v / max(v0, 0.1)) ** 4
    if not np.isfinite(gap):
        acc = d.accel * free
    else:
        s_star = d.jam_gap + max(0.0, v * d.headway + v * dv / (2 * np.sqrt(d.accel * d.decel)))
        acc = d.accel * (free - (s_star / max(gap, 0.05)) ** 2)
    return float(np.clip(acc, -MAX_DECEL, d.accel))


class World:
    """All agents of one scene and the rules that move them."""

    def __init__(
        self,
        *,
        town: Town,
        plan: SignalPlan,
        specs: list[AgentSpec],
        movers: list[Mover],
        walkers: list[Walker],
        fixed: dict[int, np.ndarray],
        ego_route: Route,
        ego: EgoState,
        ego_driver: Driver,
        reaction_s: float = 0.0,
    ) -> None:
        if not 0.0 <= reaction_s <= 3.0:
            raise ValueError(f"reaction_s must be in [0, 3] s, got {reaction_s}")
        self.town, self.plan, self.specs = town, plan, specs
        self.movers, self.walkers, self.fixed = movers, walkers, fixed
        self.ego_route, self.ego, self.ego_driver = ego_route, ego, ego_driver
        n = len(specs)
        self.half_w = np.array([s.width / 2 for s in specs] + [EGO_SIZE[0] / 2])
        self.half_l = np.array([s.length / 2 for s in specs] + [EGO_SIZE[1] / 2])
        self.kind_code = np.array([_lead_code(s.kind) for s in specs] + [1])
        self.pos = np.zeros((n + 1, 2))
        self.yaw = np.zeros(n + 1)
        self.vel = np.zeros(n + 1)
        self.alive = np.zeros(n + 1, bool)
        self.crossing_busy: set[int] = set()
        self.crossing_point = {c.id: c.polygon.mean(axis=0) for c in town.crossings}
        self._ego_accel = 0.0
        self._ego_cmd = (0.0, 0, np.inf, 0.0)
        self.reaction_s = float(reaction_s)
        self._reaction = _Reaction()
        self._profiles: dict = {}

    # ----- state ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        pos, yaw, vel, alive = self.pos, self.yaw, self.vel, self.alive
        for m in self.movers:
            x, y, heading = m.route.path.sample_one(m.s)
            if m.lateral:
                x, y = x - m.lateral * np.sin(heading), y + m.lateral * np.cos(heading)
            pos[m.agent, 0], pos[m.agent, 1] = x, y
            yaw[m.agent], vel[m.agent], alive[m.agent] = heading, m.v, m.active
        for w in self.walkers:
            x, y, heading = w.path.sample_one(w.s)
            pos[w.agent, 0], pos[w.agent, 1] = x, y
            yaw[w.agent], vel[w.agent], alive[w.agent] = heading, w.v, w.active
        for a, pose in self.fixed.items():
            self.pos[a], self.yaw[a], self.vel[a] = pose[:2], pose[2], 0.0
            self.alive[a] = True
        e = self.ego
        centre = np.array([e.x, e.y]) + EGO_CENTRE * np.array([np.cos(e.yaw), np.sin(e.yaw)])
        self.pos[-1], self.yaw[-1], self.vel[-1], self.alive[-1] = centre, e.yaw, e.v, True
        self.crossing_busy = {
            c
            for w in self.walkers
            if w.state == "cross"
            for (_, _, c, _) in w.crossings
            if _on_crossing(w, c)
        }
        self.crossing_agent = np.zeros(len(self.pos), bool)
        for w in self.walkers:
            self.crossing_agent[w.agent] = w.active and w.state == "cross"

    # ----- perception along a route -----------------------------------------------------------
    def _corridor(
        self, me: int, path: Polyline, s_front: float, half_w: float, horizon: float
    ) -> tuple[float, float, int]:
        """(gap, leader speed along the path, LEADS code) of the nearest agent in the corridor."""
        i0 = path.index_at(s_front)
        i1 = path.index_at(s_front + horizon) + 1
        if i1 - i0 < 2:
            return np.inf, 0.0, 0
        pts = path.xy[i0:i1:4]  # every 2 m; refined with the local tangent below
        me_xy = self.pos[me]
        d_me = np.abs(self.pos - me_xy).max(axis=1)
        cand = np.flatnonzero(self.alive & (d_me < horizon + 8.0))
        cand = cand[cand != me]
        best = (np.inf, 0.0, 0)
        if not len(cand):
            return best
        moving = self.crossing_agent[cand]
        if moving.any():  # pedestrians crossing: also where they will be in 1.5 s
            a = cand[moving]
            ahead = self.pos[a] + 1.5 * self.vel[a, None] * np.stack(
                [np.cos(self.yaw[a]), np.sin(self.yaw[a])], axis=1
            )
            p = np.concatenate([self.pos[cand], ahead])
            vel = np.concatenate([self.vel[cand], np.zeros(len(a))])
            who = np.concatenate([cand, a])
        else:
            p, vel, who = self.pos[cand], self.vel[cand], cand
        d2 = ((p[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        k = d2.argmin(axis=1)
        idx = i0 + 4 * k
        seg_h = path.heading[idx]
        tx, ty = np.cos(seg_h), np.sin(seg_h)
        dx, dy = p[:, 0] - path.xy[idx, 0], p[:, 1] - path.xy[idx, 1]
        along = dx * tx + dy * ty
        dist = np.abs(dx * ty - dy * tx)
        rel = wrap_angle(self.yaw[who] - seg_h)
        c, s = np.abs(np.cos(rel)), np.abs(np.sin(rel))
        lat_ext = self.half_w[who] * c + self.half_l[who] * s
        lon_ext = self.half_l[who] * c + self.half_w[who] * s
        inside = (dist < half_w + lat_ext + 0.25) & (np.abs(along) < 2.5)
        gap = path.s[idx] + along - s_front - lon_ext
        ok = inside & (gap > -1.5) & (path.s[idx] + along > s_front - 0.5)
        if not ok.any():
            return best
        j = int(np.argmin(np.where(ok, gap, np.inf)))
        return float(gap[j]), float(max(0.0, vel[j] * np.cos(rel[j]))), int(self.kind_code[who[j]])

    def _stop_constraint(
        self, route: Route, s_front: float, v: float, t: float, committed: set[int], me: int
    ) -> tuple[float, int]:
        """(gap to the binding stop line, LEADS code) for signals, zebras and left-turn yield."""
        best = (np.inf, 0)
        for i, stop in enumerate(route.stops):
            gap = stop.s - s_front
            if gap < -0.5 or gap > 80.0 or i in committed:
                continue
            code = 0
            if stop.kind == "light":
                state = self.plan.state(stop.node, stop.axis, t)
                if state == RED:
                    code = 5
                elif state == YELLOW:
                    if v * v / (2 * max(gap, 0.1)) < 4.0 and gap > 1.0:
                        code = 5
                    else:
                        committed.add(i)
                elif stop.turn == "left" and gap < 30.0 and self._oncoming(stop, t, me):
                    code = 6
            elif stop.crossing in self.crossing_busy:
                code = 7
            if code and gap < best[0]:
                best = (gap, code)
        return best

    def _oncoming(self, stop: StopPoint, t: float, me: int) -> bool:
        """True when straight/right traffic from the opposite approach is close or inside."""
        for m in self.movers:
            if not m.active or m.agent == me:
                continue
            span = m.route.turn_at(m.s)
            if span is not None and span.node == stop.node and span.turn != "left":
                other = self.town.network.connectors[span.connector]
                if self.town.network.lanes[other.from_lane].edge != stop.edge:
                    return True
            for other in m.route.stops:
                if other.kind != "light" or other.node != stop.node:
                    continue
                gap = other.s - m.s
                if (
                    0 < gap < 60.0
                    and other.edge != stop.edge
                    and other.axis == stop.axis
                    and other.turn != "left"
                    and gap / max(m.v, 1.0) < 5.0
                    and self.plan.state(other.node, other.axis, t) != RED
                ):
                    return True
        return False

    def _desired_speed(self, route: Route, s: float, d: Driver) -> float:
        """Speed limit and curve speeds ahead, reachable with comfortable braking."""
        key = (id(route), d)
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = speed_profile(route, d)
        return profile[route.path.index_at(s)]

    def _accel(
        self,
        me: int,
        route: Route,
        s_ref: float,
        front: float,
        v: float,
        t: float,
        d: Driver,
        committed: set[int],
        pauses: list[tuple[float, float]],
        half_w: float,
    ) -> tuple[float, int, float, float]:
        """(IDM acceleration, LEADS code, gap, leader speed) of one driver now."""
        s_front = s_ref + front
        horizon = min(80.0, max(30.0, v * 4.0 + 20.0))
        gap, v_lead, code = self._corridor(me, route.path, s_front, half_w, horizon)
        stop_gap, stop_code = self._stop_constraint(route, s_front, v, t, committed, me)
        if stop_gap < gap:
            gap, v_lead, code = stop_gap, 0.0, stop_code
        v0 = self._desired_speed(route, s_ref, d)
        if any(t0 <= t < t1 for t0, t1 in pauses):
            v0 = 0.1
        if s_ref > route.path.length - 25.0:
            gap, v_lead = min(gap, route.path.length - s_front), 0.0
        return idm(v, v0, gap, v - v_lead, d), code, gap, v_lead

    # ----- stepping ---------------------------------------------------------------------------
    def step(self, t: float, decide: bool = True, drive_ego: bool = True) -> tuple[int, float]:
        """Advance by DT from time t (positions must be fresh: `_refresh` first).

        Decisions (accelerations) are taken only when `decide`, else the last ones are held.
        With `drive_ego` False the ego is left where it is: someone else (closed-loop driving,
        eval/closed_loop) moves it and sets `self.ego` before the next `_refresh`.
        """
        if decide:
            for m in self.movers:
                if m.active:
                    spec = self.specs[m.agent]
                    m.accel, *_ = self._accel(
                        m.agent,
                        m.route,
                        m.s,
                        spec.length / 2,
                        m.v,
                        t,
                        m.driver,
                        m.committed,
                        m.pauses,
                        spec.width / 2,
                    )
        if decide and drive_ego:
            e = self.ego
            self._ego_cmd = self._accel(
                len(self.specs),
                self.ego_route,
                e.s,
                EGO_FRONT,
                e.v,
                t,
                self.ego_driver,
                self._ego_committed,
                [],
                EGO_SIZE[0] / 2,
            )
        a_ego, code, gap, _ = self._ego_cmd
        a_ego = self._reaction.apply(t, a_ego, self.ego.v, self.reaction_s)
        for m in self.movers:
            if m.active:
                v_new = max(0.0, m.v + m.accel * DT)
                m.s += 0.5 * (m.v + v_new) * DT
                m.v = v_new
                if m.s >= m.route.path.length - 1.0:
                    m.active = False
        for w in self.walkers:
            self._walk(w, t)
        if drive_ego:
            self._drive_ego(a_ego)
        return code, gap

    _ego_committed: set[int]

    def _walk(self, w: Walker, t: float) -> None:
        if not w.active:
            return
        nxt = next(((a, b, c, k) for a, b, c, k in w.crossings if w.s < b), None)
        w.v = w.speed
        if nxt is not None and w.state != "cross" and w.s + w.speed * DT >= nxt[0]:
            a, b, cid, kind = nxt
            if self._may_cross(w, cid, kind, t):
                w.state = "cross"
            else:
                w.state, w.v, w.s = "wait", 0.0, a
        if w.state == "cross" and nxt is not None and w.s > nxt[1]:
            w.state = "walk"
        if nxt is None and w.state == "cross":
            w.state = "walk"
        w.s += w.v * DT
        if w.s >= w.path.length:
            w.s, w.v, w.active = w.path.length, 0.0, False

    def _may_cross(self, w: Walker, cid: int, kind: str, t: float) -> bool:
        crossing = self.town.crossings[cid] if kind != "jaywalk" else None
        if w.trigger_m is not None:
            target = self.crossing_point[cid] if crossing is not None else w.path.sample(w.s)[0]
            if np.hypot(self.ego.x - target[0], self.ego.y - target[1]) > w.trigger_m:
                return False
        if crossing is not None and crossing.kind == "leg":
            node = crossing.node
            return (
                self.plan.state(node, crossing.walk_axis, t) == GREEN
                and self.plan.green_left(node, crossing.walk_axis, t) > 5.0
            )
        point = w.path.sample(w.s + 4.0)[0]
        for route, s, v, front in self._vehicles():
            i0 = route.path.index_at(s)
            i1 = route.path.index_at(s + 70.0) + 1
            d = np.hypot(*(route.path.xy[i0:i1] - point).T)
            if len(d) and d.min() < 5.0:
                dist = route.path.s[i0 + int(d.argmin())] - s - front
                if dist > -2.0 and dist - v * v / 7.0 < 5.0:
                    return False
        return True

    def _vehicles(self):
        for m in self.movers:
            if m.active:
                yield m.route, m.s, m.v, self.specs[m.agent].length / 2
        yield self.ego_route, self.ego.s, self.ego.v, EGO_FRONT

    def _drive_ego(self, accel: float) -> None:
        e = self.ego
        path = self.ego_route.path
        look = float(np.clip(3.0 + 0.7 * e.v, 4.5, 16.0))
        target, _ = path.sample(e.s + look)
        dx, dy = target[0] - e.x, target[1] - e.y
        alpha = float(wrap_angle(np.arctan2(dy, dx) - e.yaw))
        ld = max(np.hypot(dx, dy), 1.0)
        want = float(np.clip(np.arctan2(2 * WHEELBASE * np.sin(alpha), ld), -MAX_STEER, MAX_STEER))
        e.steer += float(np.clip(want - e.steer, -MAX_STEER_RATE * DT, MAX_STEER_RATE * DT))
        v_new = max(0.0, e.v + accel * DT)
        self._ego_accel = (v_new - e.v) / DT
        v_mid = 0.5 * (e.v + v_new)
        e.yaw += v_mid * np.tan(e.steer) / WHEELBASE * DT
        e.x += v_mid * np.cos(e.yaw) * DT
        e.y += v_mid * np.sin(e.yaw) * DT
        e.v = v_new
        i = path.index_at(e.s)
        e.s, _ = path.project(np.array([e.x, e.y]), i - 20, i + 60)

    # ----- run ------------------------------------------------------------------------------
    def run(self, t0: float, t1: float) -> Tracks:
        """Simulate from t0 to t1 (inclusive) and record every step."""
        self._ego_committed = set()
        self._reaction = _Reaction()
        times = np.arange(int(round((t1 - t0) / DT)) + 1) * DT + t0
        n = len(self.specs)
        poses = np.zeros((n, len(times), 3))
        speed = np.zeros((n, len(times)))
        active = np.zeros((n, len(times)), bool)
        ego = np.zeros((len(times), 7))
        lead = np.zeros(len(times), np.int8)
        gaps = np.full(len(times), np.inf)
        decided = np.zeros(len(times))
        lead_speed = np.zeros(len(times))
        for k, t in enumerate(times):
            self._refresh()
            poses[:, k, :2], poses[:, k, 2] = self.pos[:n], self.yaw[:n]
            speed[:, k], active[:, k] = self.vel[:n], self.alive[:n]
            e = self.ego
            ego[k] = [
                e.x,
                e.y,
                e.yaw,
                e.v,
                self._ego_accel,
                e.v * np.tan(e.steer) / WHEELBASE,
                e.steer,
            ]
            if k + 1 < len(times):
                lead[k], gaps[k] = self.step(float(t), decide=k % 2 == 0)
                decided[k], lead_speed[k] = self._ego_cmd[0], self._ego_cmd[3]
        lead[-1], gaps[-1], decided[-1] = lead[-2], gaps[-2], decided[-2]
        lead_speed[-1] = lead_speed[-2]
        return Tracks(times, poses, speed, active, ego, lead, gaps, decided, lead_speed)


@dataclass
class _Reaction:
    """The ego driver's reaction state (see the module docstring): relaxed, reacting, alert."""

    mode: str = "relaxed"
    until: float = -np.inf  # end of the current reaction time
    held: float = 0.0  # the acceleration kept while reacting
    calm_since: float | None = None
    applied: float = 0.0  # last applied acceleration

    def apply(self, t: float, decided: float, v: float, reaction_s: float) -> float:
        """The acceleration applied at t for the current decision."""
        self.applied = self._choose(t, decided, v, reaction_s)
        return self.applied

    def _choose(self, t: float, decided: float, v: float, reaction_s: float) -> float:
        if reaction_s <= 0.0:
            return decided
        if decided <= EMERGENCY_DECEL:
            self.mode, self.calm_since = "alert", None
            return decided
        if self.mode == "reacting":
            if t < self.until - 1e-9:
                return self.held
            self.mode, self.calm_since = "alert", None
        if self.mode == "alert":
            if decided > -0.3:
                self.calm_since = t if self.calm_since is None else self.calm_since
                if t - self.calm_since >= RELAX_AFTER_S:
                    self.mode = "relaxed"
            else:
                self.calm_since = None
            return decided
        braking = decided < ONSET_DECEL
        moving_off = v < 0.3 and decided > 0.3 and self.applied <= 0.0
        if braking or moving_off:
            self.mode, self.until = "reacting", t + reaction_s
            self.held = max(self.applied, ONSET_DECEL) if braking else 0.0
            return self.held
        return decided


def speed_profile(route: Route, d: Driver) -> list[float]:
    """Desired speed per path sample: min(limit x factor, curve speed), anticipated.

    Lowered so that every later limit is reachable with 0.4 x comfortable deceleration
    (one backward pass).
    """
    kappa = np.abs(route.path.curvature)
    lim = np.minimum(route.speed_limit * d.v_factor, np.sqrt(A_LAT / np.maximum(kappa, 1e-4)))
    out = lim.tolist()
    ds = np.diff(route.path.s).tolist()
    b2 = 2.0 * d.decel * 0.4
    for i in range(len(out) - 2, -1, -1):
        reach = (out[i + 1] ** 2 + b2 * ds[i]) ** 0.5
        if reach < out[i]:
            out[i] = reach
    return out


def _lead_code(kind: str) -> int:
    return {"cyclist": 2, "pedestrian": 3, "child": 3, "barrier": 4, "cone": 4}.get(kind, 1)


def _on_crossing(w: Walker, cid: int) -> bool:
    return any(c == cid and a - 0.5 <= w.s <= b + 0.5 for a, b, c, _ in w.crossings)
