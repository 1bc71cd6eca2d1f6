"""Issue 8's world: the ego driver reacts ~1 s late (events are in the images before they are in
its speed and acceleration), and the driving command comes from the route, not the future."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_synth_behaviour import _ego_route, _plan, _progress, _world

from fastdrive_ros.data.synth.agents import random_spec
from fastdrive_ros.data.synth.routes import COMMAND_LOOKAHEAD_M
from fastdrive_ros.data.synth.sim import EGO_FRONT, ONSET_DECEL, Driver, Mover
from fastdrive_ros.data.synth.town import build_town


@pytest.fixture(scope="module")
def town():
    return build_town(np.random.default_rng(0), "boston-seaport", grid=3)


def _braking_lead(town, reaction_s: float):
    _, _, route = _ego_route(town, signalised_end=True)
    plan = _plan(town)
    for node in plan.greens:
        plan.greens[node] = (60.0, 60.0)
    spec = random_spec(np.random.default_rng(2), "car")
    lead = Mover(0, route, EGO_FRONT + 45.0, 9.0, Driver(0.8), 0.0, pauses=[(3.0, 9.0)])
    world = _world(town, route, plan, [spec], [lead], v0=9.0)
    world.reaction_s = reaction_s
    tracks = world.run(-2.0, 14.0)
    s_ego = _progress(route, tracks.ego)
    s_lead = np.array([route.path.project(p)[0] for p in tracks.poses[0, :, :2]])
    gap = s_lead - spec.length / 2 - (s_ego + EGO_FRONT)
    return tracks, gap


def _first(tracks, mask) -> float:
    after = np.flatnonzero(mask & (tracks.t > 3.0))
    assert len(after), "the ego never reacted"
    return float(tracks.t[after[0]])


def test_reaction_delay_shifts_the_braking_by_about_a_second(town) -> None:
    for reaction_s in (0.0, 1.0):
        tracks, gap = _braking_lead(town, reaction_s)
        # the lead starts stopping at t = 3 s: when does the driver decide to brake, and when
        # does its acceleration (the ego status) show it?
        t_decided = _first(tracks, tracks.ego_decided < ONSET_DECEL)
        t_applied = _first(tracks, tracks.ego[:, 4] < ONSET_DECEL)
        assert reaction_s - 0.05 <= t_applied - t_decided <= reaction_s + 0.15
        assert gap.min() > 0.5, "collided with the lead car"
        assert tracks.ego[:, 3].min() < 2.0  # it still (almost) stops behind the lead
        # once it has reacted it follows its decisions closely (no delay-driven oscillation)
        after = (tracks.t > t_applied + 0.1) & (tracks.ego[:, 3] > 0.5)
        follow = tracks.ego[after, 4] - tracks.ego_decided[np.flatnonzero(after) - 1]
        assert np.abs(follow).max() < 0.35


def test_the_world_records_what_the_driver_decided_on(town) -> None:
    from fastdrive_ros.data.synth.report import keyframe_labels
    from fastdrive_ros.data.synth.sim import LEADS

    tracks, _ = _braking_lead(town, 1.0)
    following = (tracks.ego_lead == LEADS.index("vehicle")) & np.isfinite(tracks.ego_gap)
    assert following.sum() > 20
    # the lead's speed as the driver saw it at its last decision (every other 50-ms step)
    lead_speed = tracks.speed[0]
    seen = np.abs(tracks.ego_lead_speed - lead_speed)
    earlier = np.abs(tracks.ego_lead_speed[1:] - lead_speed[:-1])
    close = np.minimum(seen[1:], earlier)[following[1:]]
    assert close[:-1].max() < 0.05  # the last step repeats the one before (no decision after it)
    _, _, route = _ego_route(town, signalised_end=True)
    times = np.array([4.0, 6.0])
    for row, t in zip(keyframe_labels(tracks, route, times), times):
        i = int(np.searchsorted(tracks.t, t))
        assert row["decided_acceleration"] == pytest.approx(tracks.ego_decided[i], abs=1e-3)
        assert row["lead"] == "vehicle" and row["lead_speed"] == pytest.approx(
            tracks.ego_lead_speed[i], abs=0.01
        )


def test_reaction_delay_is_validated(town) -> None:
    _, _, route = _ego_route(town, signalised_end=True)
    world = _world(town, route, _plan(town))
    with pytest.raises(ValueError, match="reaction_s"):
        type(world)(
            town=world.town,
            plan=world.plan,
            specs=[],
            movers=[],
            walkers=[],
            fixed={},
            ego_route=route,
            ego=world.ego,
            ego_driver=Driver(),
            reaction_s=-1.0,
        )


def test_route_command_is_the_next_intersections_turn(town) -> None:
    for turn in ("left", "right"):
        _, _, route = _ego_route(town, signalised_end=True, first_turn=turn)
        span = route.turns[0]
        assert route.command_at(span.s0 - COMMAND_LOOKAHEAD_M - 1.0) == "straight"
        assert route.command_at(span.s0 - COMMAND_LOOKAHEAD_M + 1.0) == turn
        assert route.command_at(0.5 * (span.s0 + span.s1)) == turn  # inside the intersection
        after = route.command_at(span.s1 + 0.5)
        assert after == next(
            (sp.turn for sp in route.turns[1:] if sp.s0 - span.s1 - 0.5 <= COMMAND_LOOKAHEAD_M),
            "straight",
        )


def test_reader_gives_the_route_command_not_the_future(synth_dataset) -> None:
    from fastdrive_ros.data.reader import NuScenesReader
    from fastdrive_ros.data.route_command import route_commands

    root = synth_dataset
    reader = NuScenesReader(dataroot=root, version="v1.0-synth", split="all", with_map=False)
    seen = 0
    for sample in reader:
        written = route_commands(root, sample.scene_name)
        assert sample.ego.command == written[sample.token]
        seen += 1
    assert seen
    meta = json.loads(next((root / "synth" / "scenes").glob("*.json")).read_text())
    assert all(row["command"] in ("left", "right", "straight") for row in meta["keyframes"])
