"""The simulated ego reacts to what its cameras would see: red lights, a braking lead car, a
pedestrian on a zebra, and curvature in turns."""

from __future__ import annotations

import numpy as np
import pytest

from fastdrive_ros.data.synth.agents import random_spec
from fastdrive_ros.data.synth.routes import plan_route
from fastdrive_ros.data.synth.scenario import _walker_path
from fastdrive_ros.data.synth.signals import SignalPlan
from fastdrive_ros.data.synth.sim import (
    EGO_FRONT,
    LEADS,
    Driver,
    EgoState,
    Mover,
    Walker,
    World,
)
from fastdrive_ros.data.synth.town import build_town


@pytest.fixture(scope="module")
def town():
    return build_town(np.random.default_rng(0), "boston-seaport", grid=3)


def _plan(town, red_axis: dict[int, str] | None = None) -> SignalPlan:
    """Every signal green for NS; nodes in red_axis keep that axis red all simulation long."""
    nodes = [n.id for n in town.network.nodes if n.signalised]
    plan = SignalPlan(greens=dict.fromkeys(nodes, (5.0, 60.0)), offsets=dict.fromkeys(nodes, 0.0))
    for node in nodes:
        plan.set_green_at(node, "NS", -30.0)
    for node, axis in (red_axis or {}).items():
        plan.greens[node] = (5.0, 60.0) if axis == "EW" else (60.0, 5.0)
        other = "NS" if axis == "EW" else "EW"
        plan.set_green_at(node, other, -30.0)
    return plan


def _ego_route(town, *, signalised_end: bool, first_turn=None, zebra=False):
    net = town.network
    for e in net.edges:
        for d in (1, -1):
            end = net.nodes[e.b if d > 0 else e.a]
            if end.signalised != signalised_end or e.centre.length < 80:
                continue
            if zebra and e.zebra_s is None:
                continue
            route = plan_route(
                town,
                np.random.default_rng(1),
                edge=e.id,
                direction=d,
                k=0,
                s_start=5.0,
                length=250.0,
                first_turn=first_turn,
            )
            if first_turn and (not route.turns or route.turns[0].turn != first_turn):
                continue
            return e, d, route
    raise AssertionError("no suitable edge in the test town")


def _world(town, route, plan, specs=(), movers=(), walkers=(), v0=10.0) -> World:
    xy, yaw = route.path.sample(0.0)
    return World(
        town=town,
        plan=plan,
        specs=list(specs),
        movers=list(movers),
        walkers=list(walkers),
        fixed={},
        ego_route=route,
        ego=EgoState(float(xy[0]), float(xy[1]), float(yaw), v0),
        ego_driver=Driver(),
    )


def _progress(route, ego: np.ndarray) -> np.ndarray:
    return np.array([route.path.project(p)[0] for p in ego[:, :2]])


def test_stops_at_red_light_and_goes_on_green(town) -> None:
    edge, _, route = _ego_route(town, signalised_end=True)
    stop = next(p for p in route.stops if p.kind == "light")
    plan = _plan(town, {stop.node: stop.axis})
    tracks = _world(town, route, plan).run(-2.0, 20.0)
    s = _progress(route, tracks.ego)
    v = tracks.ego[:, 3]
    assert np.max(s + EGO_FRONT) < stop.s + 0.5, "ran the red light"
    assert v[-1] < 0.3 and tracks.ego[:, 4].min() < -1.0
    assert LEADS[tracks.ego_lead[-1]] == "red_light"
    # Same place, light green: no stop.
    green = _plan(town)
    green.greens[stop.node] = (60.0, 60.0)
    tracks = _world(town, route, green).run(-2.0, 20.0)
    assert np.max(_progress(route, tracks.ego)) > stop.s + 5.0
    assert tracks.ego[:, 3].min() > 2.0


def test_follows_and_brakes_for_a_braking_lead(town) -> None:
    _, _, route = _ego_route(town, signalised_end=True)
    plan = _plan(town)
    for node in plan.greens:  # all green: only the lead car matters
        plan.greens[node] = (60.0, 60.0)
    spec = random_spec(np.random.default_rng(2), "car")
    lead = Mover(0, route, EGO_FRONT + 25.0, 9.0, Driver(0.8), 0.0, pauses=[(3.0, 8.0)])
    tracks = _world(town, route, plan, [spec], [lead], v0=9.0).run(-2.0, 14.0)
    s_ego = _progress(route, tracks.ego)
    s_lead = np.array([route.path.project(p)[0] for p in tracks.poses[0, :, :2]])
    gap = s_lead - spec.length / 2 - (s_ego + EGO_FRONT)
    assert gap.min() > 1.0, "collided with the lead car"
    braking = (tracks.t > 3.0) & (tracks.t < 10.0)
    assert tracks.ego[braking, 4].min() < -1.0
    assert tracks.ego[braking, 3].min() < 2.0
    assert "vehicle" in {LEADS[c] for c in tracks.ego_lead}


def test_yields_to_pedestrian_on_zebra(town) -> None:
    net = town.network
    edge = next(e for e in net.edges if e.zebra_s is not None)
    d = 1
    zebra_dir = edge.zebra_s
    route = plan_route(
        town,
        np.random.default_rng(1),
        edge=edge.id,
        direction=d,
        k=0,
        s_start=max(1.0, zebra_dir - 60.0),
        length=200.0,
    )
    stop = next(p for p in route.stops if p.kind == "zebra")
    plan = _plan(town)
    for node in plan.greens:
        plan.greens[node] = (60.0, 60.0)
    spec = random_spec(np.random.default_rng(3), "pedestrian")
    path, spans = _walker_path(town, edge.id, 1, 1, 0.0, 4.0, edge.zebra_s)
    enter, leave = spans[0]
    walker = Walker(
        0, path, enter - 0.5, 1.3, [(enter, leave, stop.crossing, "zebra")], trigger_m=30.0
    )
    tracks = _world(town, route, plan, [spec], walkers=[walker], v0=8.0).run(-2.0, 18.0)
    s = _progress(route, tracks.ego)
    on_road = np.array([enter <= path.project(p)[0] <= leave for p in tracks.poses[0, :, :2]])
    assert on_road.any(), "the pedestrian never crossed"
    front, rear = s + EGO_FRONT, s - 0.7
    band = (stop.s + 1.0, stop.s + 6.0)  # the zebra stripes, beyond the stop line
    overlap = (front > band[0]) & (rear < band[1])
    assert not np.any(on_road & overlap), "drove onto the zebra while someone was on it"
    assert tracks.ego[:, 3].min() < 0.5
    assert {"zebra", "pedestrian"} & {LEADS[c] for c in tracks.ego_lead}
    assert front[-1] > band[1], "never went on after the pedestrian crossed"


def test_slows_for_a_turn(town) -> None:
    _, _, route = _ego_route(town, signalised_end=True, first_turn="left")
    plan = _plan(town)
    for node in plan.greens:
        plan.greens[node] = (60.0, 60.0)
    tracks = _world(town, route, plan, v0=11.0).run(-2.0, 20.0)
    s = _progress(route, tracks.ego)
    turn = route.turns[0]
    inside = (s > turn.s0 + 2.0) & (s < turn.s1 - 2.0)
    assert inside.any(), "the ego never reached the turn"
    kappa = np.abs(
        route.path.curvature[route.path.index_at(turn.s0) : route.path.index_at(turn.s1)]
    )
    assert tracks.ego[inside, 3].max() < np.sqrt(2.0 / kappa.max()) + 1.0
    yaw = np.unwrap(tracks.ego[:, 2])
    assert abs(yaw[-1] - yaw[0]) > 1.2  # about 90 degrees left
    assert tracks.ego[inside, 5].mean() > 0.1  # yaw rate, counter-clockwise
