"""Closed-loop runs end to end: determinism, a tiny model through the node's pipeline, CLI errors.

Small town (grid 2), tiny images (the tiny model's 84x56), a few seconds: each test takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app
from fastdrive_ros.data.synth.live import LiveScene
from fastdrive_ros.eval.closed_loop.episode import LoopFrame, LoopPlan, drive_route
from fastdrive_ros.pipeline.fakes import shared_tiny_model

SEED, GRID, SECONDS = 5, 2, 3.0


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory.getbasetemp())


class ConstantVelocity:
    """A scripted planner: straight ahead at the current speed (sees no camera)."""

    image_size = (56, 84)

    def __init__(self) -> None:
        self.frames: list[LoopFrame] = []

    def start_route(self) -> None:
        self.frames = []

    def plan(self, frame: LoopFrame) -> LoopPlan:
        self.frames.append(frame)
        v = frame.odometry[-1].v
        wp = np.stack([0.5 * v * np.arange(1, 7), np.zeros(6)], axis=1)
        return LoopPlan(wp, np.arange(4), 36, 0.0)


def _scene(index: int = 0) -> LiveScene:
    return LiveScene(seed=SEED, index=index, seconds=SECONDS, width=84, height=56, town_grid=GRID)


def test_same_seed_same_drive_and_the_loop_feeds_the_planner() -> None:
    planner = ConstantVelocity()
    first = drive_route(_scene(), planner, seconds=SECONDS, record=True)
    frames = planner.frames
    again = drive_route(_scene(), ConstantVelocity(), seconds=SECONDS, record=True)
    assert np.array_equal(first.driven_xy, again.driven_xy)
    assert first.score == again.score
    assert len(frames) == 6 and first.score.plans == 6  # 2 Hz over 3 s
    assert frames[0].images.shape == (6, 56, 84, 3) and frames[0].images.dtype == np.uint8
    assert len(frames[0].odometry) == 40  # the 2-s warm-up at 20 Hz, then 10 per plan
    assert all(len(f.odometry) == 10 for f in frames[1:])
    stamps = [f.stamp_ns for f in frames]
    assert np.allclose(np.diff(stamps), 0.5e9)
    # the car really moved under the plan: 3 s at its start speed along x of its own frame
    assert np.hypot(*(first.driven_xy[-1] - first.driven_xy[0])) > 0.5 * first.score.seconds


def test_realtime_mode_delays_the_plan() -> None:
    class Slow(ConstantVelocity):
        def plan(self, frame: LoopFrame) -> LoopPlan:
            out = super().plan(frame)
            return LoopPlan(out.waypoints, out.kept_index, 36, compute_s=0.7)

    slow = Slow()
    drive_route(_scene(), slow, seconds=SECONDS, realtime=True)
    # the next frame is taken when the planner is free: every 0.7 s instead of 0.5 s
    assert len(slow.frames) == 5
    assert np.allclose(np.diff([f.stamp_ns for f in slow.frames]), 0.7e9)


def test_tiny_model_drives_through_the_pipeline(tiny_model, tmp_path) -> None:
    out = tmp_path / "loop"
    args = [
        "closed-loop", "--seed", str(SEED), "--routes", "1", "--seconds", str(SECONDS),
        "--town-grid", str(GRID), "--model", str(tiny_model), "--out", str(out),
        "--rows", "reconpruner:0.5,random:0.75,no_images", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    rows = {(r["pruner"], r["ratio"]): r for r in doc["rows"]}
    assert set(rows) == {("reconpruner", 0.5), ("random", 0.75), ("no_images", 1.0)}
    assert rows[("reconpruner", 0.5)]["mean_kept_tokens"] == 18  # of 36
    assert rows[("random", 0.75)]["mean_kept_tokens"] == 9
    assert rows[("no_images", 1.0)]["mean_kept_tokens"] == 0
    for r in doc["rows"]:
        assert 0.0 <= r["route_completion"] <= 1.0 and len(r["routes"]) == 1
        assert {"collisions", "red_light_violations", "score"} <= set(r)
        assert r["routes"][0]["plans"] == 6 and r["plan_failures"] == 0
    assert doc["expert"]["score"] == 100.0  # the world's own driver breaks none of the rules
    assert (out / "results.md").is_file() and (out / "closed_loop.png").is_file()
    assert (out / "gifs" / "reconpruner_0.5_route0.gif").is_file()
    again = tmp_path / "again"
    args[args.index(str(out))] = str(again)
    args[args.index("--rows") + 1] = "reconpruner:0.5"
    assert CliRunner().invoke(build_app(), [*args, "--no-gif"]).exit_code == 0
    first, second = doc["rows"][0], json.loads((again / "results.json").read_text())["rows"][0]
    for row in (first, second):
        row.pop("compute_s_per_plan")  # wall time: the one number that may differ
    assert first == second  # deterministic mode: the same drive, the same numbers


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "nopruner:0.5"], "unknown pruner 'nopruner'"),
        (["--pruners", "reconpruner", "--ratios", "1.0"], "prune ratio must be in [0, 1)"),
        (["--rows", "reconpruner:0.5", "--model", "/nonexistent/model"], "model folder not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, message) -> None:
    args = ["closed-loop", "--out", str(tmp_path / "x"), "--routes", "1", "--no-progress", *extra]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def _conflict_scene(index: int) -> LiveScene:
    return LiveScene(seed=SEED, index=index, seconds=12.0, width=84, height=56, town_grid=GRID,
                     conflicts=True)  # fmt: skip


def test_conflict_routes_are_avoidable_and_a_blind_planner_hits_them() -> None:
    """--conflicts: the world's driver stops behind every standing car; constant velocity hits."""
    expert_hits = blind_hits = standing = 0
    for index in range(3):
        first = _conflict_scene(index)
        standing += any("standing in the lane" in e for e in first.scenario.events)
        expert_hits += sum(drive_route(first, None, seconds=12.0).score.collisions.values())
        blind = drive_route(_conflict_scene(index), ConstantVelocity(), seconds=12.0)
        blind_hits += blind.score.collisions["vehicle"]
    assert standing >= 2  # seed 5's first three routes
    assert expert_hits == 0
    assert blind_hits >= 3
