"""One scene's cast and events, drawn from the scene's own random stream.

The ego route, signal timing, lead vehicles, crossing pedestrians, road works, parked cars and
background traffic.

Events are placed on the ego's route on purpose (a light that turns red as the ego arrives, a
pedestrian who steps onto a zebra when the ego is 30 m away, a lead car that brakes), so that a
good share of keyframes show the ego braking, stopped, following or turning. The shares below are
set so that most scenes hold at least one event the cameras show before the ego reacts (the ego
driver reacts EGO_REACTION_S late, sim.py): a red light in 70 % of the scenes with a light ahead,
a lead vehicle in 55 % (80 % of them brake), a crossing in 85 %.

The events above rarely put an agent where a plan that does not react would be within 3 s (the
ego's IDM driver brakes early and leads pull away), so open-loop collision rates barely tell a
blind plan from the logged one. With `conflicts` (`fastdrive synth --conflicts`) a scene may also
hold a vehicle standing in the ego's lane 20-70 m ahead (waiting, unloading) that the ego stops
behind, and most braking leads start at the ego's own following distance and stop and go up to
three times; both are drawn from a stream of their own after everything else, so the rest of the
scene is exactly the one drawn without them. `fastdrive conflicts` measures what they change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.synth.agents import VEHICLES, AgentSpec, random_spec
from fastdrive_ros.data.synth.geometry import Polyline, resample
from fastdrive_ros.data.synth.roads import LANE_WIDTH
from fastdrive_ros.data.synth.routes import Blockage, Route, plan_route
from fastdrive_ros.data.synth.signals import SignalPlan, random_plan
from fastdrive_ros.data.synth.sim import EGO_FRONT, Driver, EgoState, Mover, Walker, World
from fastdrive_ros.data.synth.town import SIDEWALK, Town

WALK_OFFSET = SIDEWALK / 2 + 0.1  # pedestrians walk mid-sidewalk
EGO_REACTION_S = (0.8, 1.2)  # the ego driver's reaction delay, drawn per scene (human-like)
CLOSE_FOLLOWING_SHARE = 0.8  # of the braking leads of a conflicts world
LEAD_STOP_S = (2.0, 5.0)  # how long such a lead stands at each stop
LEAD_GO_S = (3.0, 8.0)  # and drives between stops (stop-and-go traffic)
LEAD_STOPS_MAX = 3
STOPPED_VEHICLE_SHARE = 0.7  # of the scenes of a conflicts world
STOPPED_GAP_M = (20.0, 70.0)  # bumper to bumper from the ego's start
STOPPED_FOR_S = (3.0, 10.0)  # how long it keeps standing after the ego's expected arrival
STOPPED_CLEAR_M = 15.0  # kept this far from intersections, stop lines and zebras


@dataclass
class Scenario:
    """Everything needed to simulate one scene, plus the planned events (for the description)."""

    world: World
    specs: list[AgentSpec]
    plan: SignalPlan
    events: list[str]


class _Cast:
    def __init__(self, town: Town, rng: np.random.Generator) -> None:
        self.town, self.rng = town, rng
        self.specs: list[AgentSpec] = []
        self.movers: list[Mover] = []
        self.walkers: list[Walker] = []
        self.fixed: dict[int, np.ndarray] = {}
        self.taken: list[np.ndarray] = []  # occupied points (spawn spacing)

    def add(self, kind: str) -> int:
        self.specs.append(random_spec(self.rng, kind))
        return len(self.specs) - 1

    def free(self, xy: np.ndarray, radius: float) -> bool:
        return all(np.hypot(*(xy - p)) > radius for p in self.taken)


def _driver(rng: np.random.Generator, kind: str) -> Driver:
    if kind == "cyclist":
        return Driver(float(rng.uniform(0.3, 0.45)), 1.2, 2.0, 1.0, 2.0)
    if kind in ("truck", "bus"):
        return Driver(float(rng.uniform(0.8, 0.95)), float(rng.uniform(1.6, 2.0)), 3.0, 1.0, 2.0)
    return Driver(
        float(rng.uniform(0.85, 1.1)),
        float(rng.uniform(1.1, 1.8)),
        2.5,
        float(rng.uniform(1.3, 2.0)),
        float(rng.uniform(2.0, 3.0)),
    )


def _blockage(cast: _Cast, edge: int, direction: int, k: int, s0: float, kind: str) -> Blockage:
    """Cones and barriers (road works) or parked cars filling lane k from s0."""
    e = cast.town.network.edges[edge]
    line = e.directed(direction)
    centre = -(k + 0.5) * LANE_WIDTH
    if kind == "parked":
        s = s0
        for _ in range(int(cast.rng.integers(1, 3))):
            a = cast.add("car")
            xy, heading = line.sample(s + cast.specs[a].length / 2)
            normal = np.array([-np.sin(heading), np.cos(heading)])
            cast.fixed[a] = np.array([*(xy + normal * (centre - 0.35)), heading])
            cast.taken.append(xy)
            s += cast.specs[a].length + float(cast.rng.uniform(1.0, 4.0))
        return Blockage(edge, direction, k, s0 - 2.0, s + 2.0)
    length = float(cast.rng.uniform(12.0, 22.0))
    for i, s in enumerate(np.arange(s0, s0 + 8.0, 1.6)):
        lat = centre + LANE_WIDTH / 2 * (1 - 2 * i / 5) * (1 if k == 0 else -1)
        _place(cast, "cone", line, s, lat)
    for s in np.arange(s0 + 9.0, s0 + length, 2.6):
        _place(cast, "barrier", line, s, centre, along=True)
    _place(cast, "cone", line, s0 + length + 1.0, centre)
    return Blockage(edge, direction, k, s0 - 2.0, s0 + length + 3.0)


def _place(
    cast: _Cast, kind: str, line: Polyline, s: float, lat: float, along: bool = False
) -> None:
    a = cast.add(kind)
    xy, heading = line.sample(s)
    normal = np.array([-np.sin(heading), np.cos(heading)])
    yaw = heading if along else heading + float(cast.rng.uniform(-0.3, 0.3))
    cast.fixed[a] = np.array([*(xy + normal * lat), yaw])
    cast.taken.append(xy + normal * lat)


def _walker_path(
    town: Town,
    edge: int,
    side: int,
    direction: int,
    s0: float,
    length: float,
    cross_at: float | None,
) -> tuple[Polyline, list[tuple[float, float]]]:
    """A pedestrian path along the sidewalk, optionally across the road.

    Walks on `side` of the edge in `direction`; with `cross_at` (centre arc length) it crosses
    there and comes back along the far sidewalk. Returns the path and the (s_enter, s_exit) of
    the road crossing on it.
    """
    e = town.network.edges[edge]
    hw = e.half_width
    lat = side * (hw + WALK_OFFSET)
    walk = e.centre.offset(lat)
    if cross_at is None:
        s1 = float(np.clip(s0 + direction * length, 1.0, walk.length - 1.0))
        lo, hi = sorted((s0, s1))
        part = walk.slice(lo, hi)
        return (part if direction > 0 else part.reversed()), []
    s_c = float(cross_at)
    near, _ = e.centre.sample(np.array([s_c]))
    _, h = e.centre.sample(s_c)
    normal = np.array([-np.sin(h), np.cos(h)])
    a = near[0] + normal * lat
    b = near[0] - normal * lat
    s_start = float(np.clip(s_c - direction * length, 1.0, walk.length - 1.0))
    lo, hi = sorted((s_start, s_c))
    first = walk.slice(lo, hi) if hi - lo > 1.0 else None
    first_pts = (first.xy if direction > 0 else first.xy[::-1]) if first is not None else a[None]
    other = e.centre.offset(-lat)
    s_back = float(np.clip(s_c - direction * float(length * 0.3 + 5.0), 1.0, other.length - 1))
    lo2, hi2 = sorted((s_back, s_c))
    back = other.slice(lo2, hi2) if hi2 - lo2 > 1.0 else None
    back_pts = (back.xy[::-1] if direction > 0 else back.xy) if back is not None else b[None]
    pts = resample(np.vstack([first_pts, a[None], b[None], back_pts]))
    path = Polyline(points=pts)
    s_a, _ = path.project(a)
    s_b, _ = path.project(b)
    enter = s_a + (abs(lat) - hw) - 0.2
    return path, [(enter, s_b - (abs(lat) - hw) + 0.2)]


def build_scenario(
    town: Town,
    rng: np.random.Generator,
    *,
    seconds: float,
    warmup: float,
    conflicts: bool = False,
) -> Scenario:
    """Ego route, signals and cast for one scene (see module docstring)."""
    net = town.network
    cast = _Cast(town, rng)
    events: list[str] = []
    horizon = seconds + warmup
    edges = [e for e in net.edges if e.centre.length > 70.0]
    ego_edge = edges[int(rng.integers(len(edges)))]
    direction = int(rng.choice([1, -1]))
    k = int(rng.integers(ego_edge.lanes_per_dir))
    s_start = float(rng.uniform(12.0, ego_edge.centre.length - 30.0))
    first_turn = [None, "left", "right", "straight"][int(rng.choice(4, p=[0.2, 0.3, 0.3, 0.2]))]
    length = horizon * 15.0 + 150.0
    route_seed = int(rng.integers(1 << 62))

    def ego_route(blocks: list[Blockage]) -> Route:
        return plan_route(
            town,
            np.random.default_rng(route_seed),
            edge=ego_edge.id,
            direction=direction,
            k=k,
            s_start=s_start,
            length=length,
            blockages=blocks,
            first_turn=first_turn,
        )

    route = ego_route([])
    blockages: list[Blockage] = []
    if rng.random() < 0.35:
        spans = [
            sp
            for sp in route.edges
            if net.edges[sp[2]].lanes_per_dir == 2
            and sp[1] - sp[0] > 60.0
            and sp[0] + 30.0 < horizon * 10.0
        ]
        if spans:
            s0_r, s1_r, e_id, d = spans[int(rng.integers(len(spans)))]
            e = net.edges[e_id]
            offset = (s_start if e_id == ego_edge.id and d == direction else 0.0) - s0_r
            lo = max(s0_r + 25.0, 20.0)
            hi = s1_r - 35.0
            if hi > lo:
                s_r = float(rng.uniform(lo, hi))
                kind = "parked" if rng.random() < 0.4 else "roadworks"
                k_b = 1 if kind == "parked" else int(rng.integers(2))
                blockages.append(_blockage(cast, e_id, d, k_b, s_r + offset, kind))
                events.append(
                    "parked cars blocking a lane"
                    if kind == "parked"
                    else "road works closing a lane"
                )
                del e
    route = ego_route(blockages)

    lights = [n.id for n in net.nodes if n.signalised]
    plan = random_plan(rng, lights)
    v_limit = float(route.speed_limit[0])
    v_ego = 0.0 if rng.random() < 0.12 else float(rng.uniform(0.55, 0.95) * v_limit)
    light_stops = [p for p in route.stops if p.kind == "light" and p.s > 15.0]
    if light_stops and rng.random() < 0.7:
        stop = light_stops[0]
        eta = -warmup + stop.s / max(0.8 * v_limit, 5.0)  # scene clock: the ego starts at -warmup
        if eta < seconds - 2.0:
            plan.set_yellow_at(stop.node, stop.axis, eta - float(rng.uniform(1.0, 4.5)))
            events.append("red light ahead")
    elif light_stops:
        stop = light_stops[0]
        eta = -warmup + stop.s / max(0.8 * v_limit, 5.0)
        plan.set_green_at(stop.node, stop.axis, eta - float(rng.uniform(2.0, 6.0)))

    xy0, yaw0 = route.path.sample(0.0)
    ego = EgoState(float(xy0[0]), float(xy0[1]), float(yaw0), v_ego, 0.0, 0.0)
    cast.taken.append(xy0)
    cast.taken.append(route.path.sample(EGO_FRONT)[0])

    lead: Mover | None = None
    if rng.random() < 0.55:
        gap = float(rng.uniform(12.0, 40.0))
        a = cast.add(VEHICLES[int(rng.choice(3, p=[0.8, 0.13, 0.07]))])
        d = _driver(rng, "car")
        d = Driver(float(rng.uniform(0.6, 0.9)), d.headway, d.jam_gap, d.accel, d.decel)
        pauses = []
        if rng.random() < 0.8:
            t0 = float(rng.uniform(0.0, max(0.5, seconds - 3.0)))
            pauses.append((t0, t0 + float(rng.uniform(1.5, 4.0))))
        s_lead = EGO_FRONT + gap + cast.specs[a].length / 2
        lead = Mover(a, route, s_lead, v_ego * 0.9, d, 0.0, pauses)
        cast.movers.append(lead)
        cast.taken.append(route.path.sample(s_lead)[0])
        events.append("lead vehicle" + (" braking" if pauses else ""))  # tests: exact text
    elif rng.random() < 0.3:
        a = cast.add("cyclist")
        s_c = EGO_FRONT + float(rng.uniform(15.0, 45.0))
        cast.movers.append(Mover(a, route, s_c, 4.0, _driver(rng, "cyclist"), -1.0))
        cast.taken.append(route.path.sample(s_c)[0])
        events.append("cyclist ahead")

    if rng.random() < 0.85:
        _crossing_event(cast, route, v_ego, events, horizon)

    _background_traffic(cast, route, blockages, horizon, int(rng.integers(8, 22)))
    _background_walkers(cast, route, int(rng.integers(10, 28)))
    _parked(cast, route)
    ego_driver = _driver(rng, "car")
    reaction_s = float(rng.uniform(*EGO_REACTION_S))
    if conflicts:  # last, from its own stream: the scene without it is drawn exactly as before
        conflict_rng = np.random.default_rng(int(rng.integers(1 << 62)))
        if lead is not None and lead.pauses:
            _close_following(cast, lead, ego_driver, v_ego, events, seconds, conflict_rng)
        _stopped_vehicle(cast, route, v_ego, events, warmup, conflict_rng)
    world = World(
        town=town,
        plan=plan,
        specs=cast.specs,
        movers=cast.movers,
        walkers=cast.walkers,
        fixed=cast.fixed,
        ego_route=route,
        ego=ego,
        ego_driver=ego_driver,
        reaction_s=reaction_s,
    )
    return Scenario(world, cast.specs, plan, events)


def _crossing_event(
    cast: _Cast, route: Route, v_ego: float, events: list[str], horizon: float
) -> None:
    town, rng = cast.town, cast.rng
    v_nominal = max(v_ego, 0.8 * float(route.speed_limit[0]))
    reach = max(80.0, v_nominal * horizon * 0.6)
    # Far enough that the ego is still beyond the trigger distance when the walkers are ready.
    near = v_nominal**2 / 7.0 + 25.0 + v_nominal * 3.0
    zebras = [p for p in route.stops if p.kind == "zebra" and near < p.s < reach]
    if zebras and rng.random() < 0.75:
        stop = zebras[int(rng.integers(len(zebras)))]
        crossing = town.crossings[stop.crossing]
        edge, s_c, s_r = crossing.edge, crossing.s, stop.s
        kind = "zebra"
        events.append("pedestrians at a zebra crossing")
    else:
        spans = [
            sp
            for sp in route.edges
            if sp[1] - sp[0] > 40.0 and sp[1] - 15.0 > near and sp[0] + 15.0 < reach
        ]
        if not spans:
            return
        s0_r, s1_r, edge, d = spans[int(rng.integers(len(spans)))]
        lo, hi = max(s0_r + 15.0, near), min(s1_r - 15.0, reach)
        if hi <= lo:
            return
        s_r = float(rng.uniform(lo, hi))
        xy, _ = route.path.sample(s_r)
        s_c, _ = town.network.edges[edge].centre.project(xy)
        kind = "jaywalk"
        events.append("pedestrian crossing mid-block")
    # Step out when the ego can still stop comfortably (the walkers' gap acceptance, sim.py).
    v_lim = float(route.speed_limit[route.path.index_at(s_r)])
    trigger = min(60.0, v_lim**2 / 7.0 + 5.0 + EGO_FRONT + float(rng.uniform(3.0, 15.0)))
    side = int(rng.choice([1, -1]))
    for i in range(int(rng.integers(1, 4))):
        a = cast.add("child" if rng.random() < 0.15 else "pedestrian")
        direction = int(rng.choice([1, -1]))
        path, spans = _walker_path(town, edge, side, direction, 0.0, 1.5 + 1.2 * i, s_c)
        cid = (
            -1
            if kind == "jaywalk"
            else next(c.id for c in town.crossings if c.edge == edge and abs(c.s - s_c) < 1e-6)
        )
        crossings = [(a_, b_, cid, kind) for a_, b_ in spans]
        cast.walkers.append(Walker(a, path, 0.0, float(rng.uniform(1.2, 1.6)), crossings, trigger))


def _close_following(
    cast: _Cast,
    lead: Mover,
    ego_driver: Driver,
    v_ego: float,
    events: list[str],
    seconds: float,
    rng: np.random.Generator,
) -> None:
    """The braking lead starts at the ego driver's own following distance and stops and goes.

    Drawn 12-40 m ahead, a lead that pulls away is often 30 m off when it brakes, beyond what a
    3-s plan reaches; in traffic the ego follows at its headway, and a lead's sudden stop leaves
    it one reaction time to act.
    """
    if rng.random() >= CLOSE_FOLLOWING_SHARE:
        return
    gap = ego_driver.jam_gap + ego_driver.headway * v_ego * float(rng.uniform(0.8, 1.2))
    lead.s = EGO_FRONT + max(gap, 6.0) + cast.specs[lead.agent].length / 2
    pauses, t0 = [], float(rng.uniform(0.5, 4.0))
    while t0 < seconds - 3.0 and len(pauses) < LEAD_STOPS_MAX:  # stop-and-go
        t1 = t0 + float(rng.uniform(*LEAD_STOP_S))
        pauses.append((t0, t1))
        t0 = t1 + float(rng.uniform(*LEAD_GO_S))
    lead.pauses = pauses
    cast.taken.append(lead.route.path.sample(lead.s)[0])
    events.append("lead vehicle stopping and going close ahead")


def _stopped_vehicle(
    cast: _Cast,
    route: Route,
    v_ego: float,
    events: list[str],
    warmup: float,
    rng: np.random.Generator,
) -> None:
    """A vehicle standing in the ego's lane ahead that drives off a while after the ego arrives.

    Placed on a straight stretch of the ego's route (clear of turns, stop lines and zebras, and
    of other agents' spawn points) so the ego's driver stops behind it like behind a queue.
    """
    if rng.random() >= STOPPED_VEHICLE_SHARE:
        return
    kind = VEHICLES[int(rng.choice(3, p=[0.75, 0.2, 0.05]))]
    spec = random_spec(rng, kind)
    busy = [(t.s0, t.s1) for t in route.turns] + [(p.s, p.s) for p in route.stops]
    for _ in range(20):
        gap = float(rng.uniform(*STOPPED_GAP_M))
        s = EGO_FRONT + gap + spec.length / 2
        if s + spec.length > route.path.length - 30.0:
            continue
        ends = (s - spec.length / 2 - STOPPED_CLEAR_M, s + spec.length / 2 + STOPPED_CLEAR_M)
        if any(a <= ends[1] and b >= ends[0] for a, b in busy):
            continue
        xy, _ = route.path.sample(s)
        if not cast.free(xy, 8.0):
            continue
        break
    else:
        return
    v_nominal = max(v_ego, 0.8 * float(route.speed_limit[0]), 3.0)
    arrival = -warmup + 1.3 * gap / v_nominal  # scene clock; IDM slows well before the car
    standing = (-warmup - 1.0, arrival + float(rng.uniform(*STOPPED_FOR_S)))
    cast.specs.append(spec)
    driver = _driver(rng, kind)
    cast.movers.append(Mover(len(cast.specs) - 1, route, s, 0.0, driver, 0.0, [standing]))
    cast.taken.append(xy)
    events.append(f"{kind} standing in the lane ahead")


def _near_edges(town: Town, route: Route, radius: float) -> list[int]:
    pts = route.path.xy[:: max(1, len(route.path) // 40)]
    out = []
    for e in town.network.edges:
        mid = e.centre.xy[len(e.centre) // 2]
        if np.min(np.hypot(*(pts - mid).T)) < radius:
            out.append(e.id)
    return out


def _background_traffic(
    cast: _Cast, route: Route, blockages: list[Blockage], horizon: float, count: int
) -> None:
    town, rng = cast.town, cast.rng
    net = town.network
    edges = _near_edges(town, route, 160.0)
    tries = 0
    while count > 0 and tries < count * 10:
        tries += 1
        e = net.edges[edges[int(rng.integers(len(edges)))]]
        d = int(rng.choice([1, -1]))
        k = int(rng.integers(e.lanes_per_dir))
        s = float(rng.uniform(5.0, e.centre.length - 8.0))
        if any(
            b.edge == e.id and b.direction == d and b.k == k and b.s0 - 8 < s < b.s1 + 8
            for b in blockages
        ):
            continue
        lane = net.lane(e.id, d, k)
        xy, _ = lane.centre.sample(s)
        if not cast.free(xy, 11.0):
            continue
        kind = str(rng.choice(["car", "truck", "bus", "cyclist"], p=[0.76, 0.11, 0.07, 0.06]))
        a = cast.add(kind)
        r = plan_route(
            town,
            rng,
            edge=e.id,
            direction=d,
            k=k,
            s_start=s,
            length=horizon * 14.0 + 80.0,
            blockages=blockages,
        )
        v0 = float(rng.uniform(0.0, 1.0) * r.speed_limit[0] * (0.4 if kind == "cyclist" else 1))
        cast.movers.append(
            Mover(a, r, 0.0, v0, _driver(rng, kind), -1.0 if kind == "cyclist" else 0.0)
        )
        cast.taken.append(xy)
        count -= 1


def _background_walkers(cast: _Cast, route: Route, count: int) -> None:
    town, rng = cast.town, cast.rng
    net = town.network
    edges = _near_edges(town, route, 130.0)
    for _ in range(count):
        e = net.edges[edges[int(rng.integers(len(edges)))]]
        side = int(rng.choice([1, -1]))
        direction = int(rng.choice([1, -1]))
        s0 = float(rng.uniform(3.0, e.centre.length - 3.0))
        legs = [c for c in town.crossings if c.edge == e.id]
        crossing = None
        if legs and rng.random() < 0.45:
            crossing = legs[int(rng.integers(len(legs)))]
        a = cast.add("child" if rng.random() < 0.1 else "pedestrian")
        speed = 0.0 if rng.random() < 0.15 else float(rng.uniform(1.0, 1.6))
        if crossing is None:
            path, spans = _walker_path(town, e.id, side, direction, s0, 80.0, None)
            crossings = []
        else:
            direction = 1 if crossing.s > s0 else -1
            path, spans = _walker_path(
                town, e.id, side, direction, 0.0, min(abs(crossing.s - s0), 60.0) + 1.0, crossing.s
            )
            crossings = [(p, q, crossing.id, crossing.kind) for p, q in spans]
        cast.walkers.append(Walker(a, path, 0.0, speed, crossings))


def _parked(cast: _Cast, route: Route) -> None:
    rng = cast.rng
    pts = route.path.xy[:: max(1, len(route.path) // 40)]
    for park in cast.town.carparks:
        centre = np.asarray(park.polygon.centroid.coords[0])
        if np.min(np.hypot(*(pts - centre).T)) > 150.0:
            continue
        fill = rng.uniform(0.3, 0.8)
        for x, y, yaw in park.slots:
            if rng.random() < fill:
                a = cast.add("car" if rng.random() < 0.93 else "truck")
                flip = np.pi if rng.random() < 0.3 else 0.0
                cast.fixed[a] = np.array([x, y, yaw + flip + rng.uniform(-0.05, 0.05)])
