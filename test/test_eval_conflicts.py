"""`fastdrive conflicts`: camera-blind plans scored with the evaluation's collision metric."""

from __future__ import annotations

import numpy as np
import typer
from typer.testing import CliRunner

from fastdrive_ros.data.synth.sim import LEADS, Tracks
from fastdrive_ros.eval.bootstrap import collision_avg
from fastdrive_ros.eval.cli import register
from fastdrive_ros.eval.conflicts import (
    PLANS,
    ConflictKeyframe,
    difference,
    keyframe_outcomes,
    report_markdown,
    simulate_world,
    summarise,
)
from fastdrive_ros.eval.metrics import MetricAccumulator, StepOutcome

CAR = (1.9, 4.5, 1.6)  # w, l, h
DECEL = 2.5  # m/s^2: the logged ego stops from 10 m/s within 20 m


def _tracks_behind_standing_car(car_x: float = 27.0) -> Tracks:
    """The ego at 10 m/s brakes to a stop at x = 20 m; a car stands centred at `car_x`."""
    t = np.arange(0.0, 4.0 + 1e-9, 0.05)
    stop_t = 10.0 / DECEL
    tt = np.minimum(t, stop_t)
    x = 10.0 * tt - 0.5 * DECEL * tt**2
    v = np.maximum(0.0, 10.0 - DECEL * t)
    acc = np.where(t < stop_t, -DECEL, 0.0)
    ego = np.stack([x, 0 * t, 0 * t, v, acc, 0 * t, 0 * t], axis=1)
    poses = np.zeros((1, len(t), 3))
    poses[0, :, 0] = car_x
    code = LEADS.index("vehicle")
    return Tracks(
        t, poses, np.zeros((1, len(t))), np.ones((1, len(t)), bool), ego,
        np.full(len(t), code, np.int8), np.full(len(t), car_x - x[0]),
    )  # fmt: skip


def test_constant_velocity_hits_the_standing_car_that_the_logged_ego_and_ctra_stop_for() -> None:
    kf = keyframe_outcomes(_tracks_behind_standing_car(), np.array([CAR]), "scene-a", 0.0)
    assert kf.lead == "vehicle"
    # CV reaches the car (rear at 24.75 m) with its box (front 2.54 m ahead) after 2 s
    assert kf.collision["constant_velocity"].tolist() == [0, 0, 0, 0, 1, 1]
    assert kf.collision["logged"].tolist() == [0] * 6
    assert kf.collision["ctra"].tolist() == [0] * 6  # it reads the braking
    assert kf.collision["standing"].tolist() == [0] * 6
    far = keyframe_outcomes(_tracks_behind_standing_car(60.0), np.array([CAR]), "scene-a", 0.0)
    assert far.collision["constant_velocity"].sum() == 0


def test_collision_avg_is_the_evaluations_cumulative_horizon_mean() -> None:
    steps = np.array([[0, 0, 0, 0, 1, 1], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], float)
    acc = MetricAccumulator()
    zeros = np.zeros(6)
    for row in steps:
        acc.add(StepOutcome(l2=zeros, collision=row, intersection=zeros * np.nan,
                            offroad=zeros * np.nan))  # fmt: skip
    assert np.isclose(collision_avg(steps), acc.summary().get("collision", "avg"))
    # by hand: 1 s 1/6, 2 s 1/12, 3 s 3/18 -> mean in percent
    assert np.isclose(collision_avg(steps), 100 * (1 / 6 + 1 / 12 + 3 / 18) / 3)


def _keyframes(hits: dict[str, list[int]]) -> list[ConflictKeyframe]:
    out = []
    for i, hit in enumerate(hits["constant_velocity"]):
        collision = {plan: np.zeros(6) for plan in PLANS}
        collision["constant_velocity"][5] = hit
        out.append(ConflictKeyframe(f"scene-{i % 4}", 0.5 * i, "vehicle", collision))
    return out


def test_the_report_says_whether_the_rate_tells_a_blind_plan_from_the_driven_one() -> None:
    blind = _keyframes({"constant_velocity": [1] * 4 + [0] * 12})  # one hit in every scene
    rows = {row.plan: row for row in summarise(blind, draws=200)}
    assert rows["logged"].avg.estimate == 0.0
    assert np.isclose(rows["constant_velocity"].keyframes_hit, 25.0)
    assert difference(blind, "constant_velocity", "logged", draws=200).excludes_zero
    assert "the collision rate tells" in report_markdown(blind, "x")
    calm = _keyframes({"constant_velocity": [0] * 16})
    assert not difference(calm, "constant_velocity", "logged", draws=200).excludes_zero
    assert "does not tell" in report_markdown(calm, "x")


def test_a_world_scored_without_rendering_never_counts_the_logged_ego() -> None:
    keyframes = simulate_world(seed=33, scenes=2, seconds=8.0, town_grid=3, conflicts=True)
    assert len(keyframes) == 2 * 10  # keyframes 0 .. 4.5 s have a full 3 s future
    assert all(kf.collision["logged"].sum() == 0 for kf in keyframes)
    assert {kf.scene for kf in keyframes} == {"scene-0000", "scene-0001"}


def test_cli_prints_the_table_and_refuses_a_bad_world() -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    args = ["conflicts", "--seed", "1", "--seconds", "6", "--town-grid", "3", "--no-progress"]
    result = runner.invoke(app, [*args, "--scenes", "1"])
    assert result.exit_code == 0, result.output
    assert "| constant_velocity |" in result.output and "1 scenes" in result.output
    bad = runner.invoke(app, [*args, "--scenes", "0"])
    assert bad.exit_code == 2 and "scenes must be a positive integer" in bad.output
