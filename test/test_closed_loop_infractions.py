"""Collision, red-light, drivable-area and TTC rules of the closed loop on hand-made cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fastdrive_ros.data.synth.live import AgentBoxes
from fastdrive_ros.data.synth.routes import StopPoint
from fastdrive_ros.data.synth.sim import DT, EGO_CENTRE, EGO_FRONT
from fastdrive_ros.eval.closed_loop.infractions import (
    InfractionMonitor,
    boxes_overlap,
    time_to_collision,
)
from fastdrive_ros.eval.closed_loop.score import composite_score, route_completion


def _agents(rows: list[tuple[float, float, float, float, float, float, str]]) -> AgentBoxes:
    """Rows of (x, y, yaw, half width, half length, speed, kind)."""
    a = np.array([r[:6] for r in rows], np.float64)
    return AgentBoxes(
        a[:, :2], a[:, 2], a[:, 3], a[:, 4], a[:, 5], np.ones(len(rows), bool),
        tuple(r[6] for r in rows),
    )  # fmt: skip


def test_box_overlap_separating_axes() -> None:
    centres = np.array([[3.0, 0.0], [5.0, 0.0], [2.6, 2.6], [2.5, 2.5]])
    yaws = np.array([0.0, 0.0, np.pi / 4, 0.0])
    half = np.ones(4)
    hit = boxes_overlap(np.zeros(2), 0.0, 1.0, 2.0, centres, yaws, half, half)
    # touching along x at 3 (2 + 1): overlap; 5: apart; a 45-degree diamond at (2.6, 2.6) reaches
    # 1.41 towards the corner (2, 1) (distance 1.7): apart; an axis-aligned box at (2.5, 2.5)
    # covers (1.5..3.5, 1.5..3.5), the first box ends at (2, 1): apart
    assert hit.tolist() == [True, False, False, False]
    rotated = boxes_overlap(np.zeros(2), np.pi / 2, 1.0, 2.0, centres[:1] * 0 + [[0, 2.5]],
                            yaws[:1], half[:1], half[:1])  # fmt: skip
    assert rotated.tolist() == [True]  # the first box turned to y now reaches y = 2


def _monitor(stops=()) -> InfractionMonitor:
    return InfractionMonitor(SimpleNamespace(stops=tuple(stops)), DT)


def _tick(mon: InfractionMonitor, x: float, v: float, agents: AgentBoxes, red=False, road=None):
    mon.update(
        0.0,
        (x, 0.0, 0.0),
        v,
        x,
        agents,
        lambda node, axis: red,
        road or (lambda pts: np.ones(len(pts), bool)),
    )


def test_collisions_by_kind_each_agent_once_and_fault() -> None:
    mon = _monitor()
    ahead = 2.0 + EGO_CENTRE  # just in front of the ego box centre: overlapping
    agents = _agents([
        (ahead, 0.0, 0.0, 0.3, 0.3, 0.0, "pedestrian"),
        (40.0, 0.0, 0.0, 1.0, 2.2, 5.0, "vehicle"),
        (-2.5, 0.0, 0.0, 1.0, 2.2, 5.0, "vehicle"),  # rear-ends the ego
    ])  # fmt: skip
    for _ in range(3):
        _tick(mon, 0.0, 5.0, agents)
    assert mon.log.collisions == {"vehicle": 0, "pedestrian": 1, "cyclist": 0, "static": 0}
    assert mon.log.collisions_not_at_fault == 1
    stopped = _monitor()
    _tick(stopped, 0.0, 0.0, agents)
    assert stopped.log.at_fault_collisions == 0 and stopped.log.collisions_not_at_fault == 2


def _light(s: float) -> StopPoint:
    return StopPoint(s, "light", 3, "ns", None, "straight", 7)


def test_red_light_only_when_crossing_the_line_on_red() -> None:
    nobody = _agents([(500.0, 500.0, 0.0, 1.0, 1.0, 0.0, "static")])
    line = 20.0
    for red, expected in ((True, 1), (False, 0)):
        mon = _monitor([_light(line)])
        for x in np.arange(10.0, 30.0, 0.5):  # front bumper passes the line once
            _tick(mon, x - EGO_FRONT, 8.0, nobody, red=red)
        assert mon.log.red_light_violations == expected
    waits = _monitor([_light(line)])
    for _ in range(20):  # stopped 1 m before the line on red
        _tick(waits, line - 1.0 - EGO_FRONT, 0.0, nobody, red=True)
    assert waits.log.red_light_violations == 0


def test_leaving_the_drivable_area_counts_excursions() -> None:
    nobody = _agents([(500.0, 500.0, 0.0, 1.0, 1.0, 0.0, "static")])
    mon = _monitor()
    road_until_x = 30.0  # drivable only for x < 30

    def road(pts: np.ndarray) -> np.ndarray:
        return pts[:, 0] < road_until_x

    for x in (0.0, 10.0, 28.0, 29.0, 0.0, 27.0):
        _tick(mon, x, 5.0, nobody, road=road)
    assert mon.log.offroad_events == 2
    assert np.isclose(mon.log.offroad_s, 3 * DT)


def test_time_to_collision_and_score() -> None:
    lead = _agents([(30.0, 0.0, 0.0, 1.0, 2.2, 0.0, "vehicle")])
    ttc = time_to_collision(0.0, 0.0, 0.0, 10.0, lead)
    # gap = 30 - 2.2 - (EGO_CENTRE + 2.042) = 24.4 m at 10 m/s: between 2.25 and 2.5 s
    assert 2.25 <= ttc <= 2.5
    assert time_to_collision(0.0, 0.0, 0.0, 0.0, lead) == float("inf")
    assert route_completion(45.0, 90.0) == 0.5 and route_completion(3.0, 0.2) == 1.0
    mon = _monitor()
    mon.log.collisions["pedestrian"] = 1
    mon.log.red_light_violations = 1
    assert np.isclose(composite_score(0.5, mon.log), 100 * 0.5 * 0.5 * 0.7)
