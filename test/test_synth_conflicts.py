"""`fastdrive synth --conflicts`: standing vehicles and stop-and-go leads a blind plan hits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastdrive_ros.data.synth.scenario import (
    LEAD_STOPS_MAX,
    STOPPED_CLEAR_M,
    Scenario,
    build_scenario,
)
from fastdrive_ros.data.synth.scene import SCENARIO_STREAM, WARMUP_S
from fastdrive_ros.data.synth.sim import EGO_FRONT
from fastdrive_ros.data.synth.world import town_assets
from fastdrive_ros.eval.bootstrap import collision_avg
from fastdrive_ros.eval.conflicts import simulate_world

SEED, GRID, SECONDS = 5, 3, 12.0


def _scenario(index: int, conflicts: bool) -> tuple[Scenario, np.random.Generator]:
    town = town_assets(SEED, "singapore-onenorth", GRID).town
    rng = np.random.default_rng([SEED, index, SCENARIO_STREAM])
    return build_scenario(town, rng, seconds=SECONDS, warmup=WARMUP_S, conflicts=conflicts), rng


@pytest.fixture(scope="module")
def pairs() -> list[tuple[Scenario, Scenario]]:
    return [(_scenario(i, False)[0], _scenario(i, True)[0]) for i in range(8)]


def test_without_conflicts_the_scene_is_drawn_as_before_and_with_them_only_grows(pairs) -> None:
    for off, on in pairs:
        assert on.specs[: len(off.specs)] == off.specs  # the same cast, then what is added
        assert np.array_equal(on.world.ego_route.path.xy, off.world.ego_route.path.xy)
        assert on.world.ego_driver == off.world.ego_driver
        assert on.world.reaction_s == off.world.reaction_s
        assert on.events[: len(off.events)] == off.events
    # the stream after the scenario (timeline, sky) is untouched when conflicts are off
    a, b = _scenario(0, False)[1], np.random.default_rng([SEED, 0, SCENARIO_STREAM])
    build_scenario(town_assets(SEED, "singapore-onenorth", GRID).town, b, seconds=SECONDS,
                   warmup=WARMUP_S)  # fmt: skip
    assert a.integers(1 << 62) == b.integers(1 << 62)


def test_a_standing_vehicle_waits_in_the_egos_lane_clear_of_junctions(pairs) -> None:
    found = 0
    for off, on in pairs:
        added = on.world.movers[len(off.world.movers) :]
        for mover in added:
            found += 1
            route = on.world.ego_route
            assert mover.route is route and mover.v == 0.0
            (t0, t1), *_ = mover.pauses
            assert t0 < -WARMUP_S and t1 > -WARMUP_S  # standing from before the scene starts
            half = on.specs[mover.agent].length / 2
            assert mover.s - half - EGO_FRONT >= 20.0  # bumper gap from the ego's start
            busy = [(t.s0, t.s1) for t in route.turns] + [(p.s, p.s) for p in route.stops]
            lo, hi = mover.s - half - STOPPED_CLEAR_M, mover.s + half + STOPPED_CLEAR_M
            assert not any(a <= hi and b >= lo for a, b in busy)
            assert any("standing in the lane ahead" in e for e in on.events)
    assert found >= 3, "seed 5's first 8 scenes should hold standing vehicles"


def test_a_braking_lead_follows_at_the_egos_headway_and_stops_and_goes(pairs) -> None:
    moved = 0
    for off, on in pairs:
        if not any(e == "lead vehicle braking" for e in off.events):
            continue
        before, after = off.world.movers[0], on.world.movers[0]
        if before.s == after.s:
            continue  # the share of braking leads left as drawn
        moved += 1
        d = on.world.ego_driver
        gap = after.s - on.specs[after.agent].length / 2 - EGO_FRONT
        v = on.world.ego.v
        assert max(6.0, d.jam_gap + 0.8 * d.headway * v) - 1e-6 <= gap
        assert gap <= max(6.0, d.jam_gap + 1.2 * d.headway * v) + 1e-6
        assert 1 <= len(after.pauses) <= LEAD_STOPS_MAX
        ends = [t for pause in after.pauses for t in pause]
        assert ends == sorted(ends) and ends[0] < SECONDS - 3.0  # stops in order, in the scene
    assert moved >= 1


def test_a_camera_blind_plan_collides_more_often_in_a_conflicts_world() -> None:
    def cv_rate(conflicts: bool) -> tuple[float, float]:
        keyframes = simulate_world(
            seed=SEED, scenes=6, seconds=SECONDS, town_grid=GRID, conflicts=conflicts
        )
        cv = np.stack([kf.collision["constant_velocity"] for kf in keyframes])
        ctra = np.stack([kf.collision["ctra"] for kf in keyframes])
        assert all(kf.collision["logged"].sum() == 0 for kf in keyframes)
        return collision_avg(cv), collision_avg(ctra)

    plain, conflict = cv_rate(False), cv_rate(True)
    assert conflict[0] > 2 * plain[0]  # measured 2.1 % vs 0.46 % (6 scenes, 108 keyframes)
    assert conflict[0] > conflict[1]  # reading the braking (CTRA) avoids some of it


def test_the_dataset_records_that_it_holds_conflicts(tmp_path) -> None:
    from fastdrive_ros.data.synth import generate_dataset

    for conflicts in (False, True):
        root = tmp_path / f"c{int(conflicts)}"
        generate_dataset(root, scenes=1, seconds=4.0, seed=SEED, image_size=(64, 36), sweeps=False,
                         progress=False, town_grid=GRID, conflicts=conflicts)  # fmt: skip
        info = json.loads((root / "synth" / "dataset.json").read_text())
        assert info["conflicts"] is conflicts
