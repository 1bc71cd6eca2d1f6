"""Plans never drive backwards (nn/forward_only.py), the VLA's and the ego MLP reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.ctra import ctra_plan
from fastdrive_ros.nn.ego_mlp import EgoMLP
from fastdrive_ros.nn.forward_only import forward_only
from fastdrive_ros.nn.vla import VLA


def _ego(speed: float, yaw_rate: float = 0.0, inputs: str = "full") -> EgoState:
    ego = EgoState(np.zeros((7, 2)), speed=speed, acceleration=0.0, yaw_rate=yaw_rate,
                   steering=0.0)  # fmt: skip
    return restrict_ego(ego, inputs)


def test_a_stopped_plan_drifting_backwards_stands_still() -> None:
    drift = np.stack([-0.04 * np.arange(1, 7), np.full(6, 0.01)], axis=1)
    assert forward_only(drift) == pytest.approx(np.zeros((6, 2)))


def test_forward_plans_pass_unchanged_turns_included() -> None:
    for ego in (_ego(8.0), _ego(6.0, yaw_rate=0.4), _ego(3.0, yaw_rate=-0.6)):
        plan = ctra_plan(ego)
        assert forward_only(plan) == pytest.approx(plan)


def test_a_plan_that_backs_up_holds_its_furthest_point_then_drives_on() -> None:
    plan = np.array([[0.5, 0.0], [1.0, 0.0], [0.7, 0.0], [0.9, 0.0], [1.4, 0.1], [2.0, 0.1]])
    out = forward_only(plan)
    assert out[:2] == pytest.approx(plan[:2])
    assert out[2] == pytest.approx([1.0, 0.0]) and out[3] == pytest.approx([1.0, 0.0])
    assert out[4:] == pytest.approx(plan[4:])  # ahead of where it stood: kept
    # a sideways step is not backwards; direction follows the last step that moved
    side = np.array([[0.0, 0.3], [0.0, 0.6], [0.0, 0.5]])
    assert forward_only(side) == pytest.approx(np.array([[0.0, 0.3], [0.0, 0.6], [0.0, 0.6]]))


def test_jitter_does_not_set_the_direction_and_bad_plans_are_left_to_the_checks() -> None:
    jitter = np.array([[-1e-4, 2e-4], [0.3, 0.0], [0.6, 0.0], [0.9, 0.0], [1.2, 0.0], [1.5, 0.0]])
    assert forward_only(jitter)[1:] == pytest.approx(jitter[1:])
    broken = np.full((6, 2), np.nan)
    assert np.isnan(forward_only(broken)).all()
    with pytest.raises(ValueError, match=r"\[T, 2\]"):
        forward_only(np.zeros(6))


def test_the_ego_mlp_reference_never_plans_backwards() -> None:
    mlp = EgoMLP("full")
    with torch.no_grad():
        mlp.net[-1].weight.zero_()
        mlp.net[-1].bias.copy_(torch.tensor([-1.0, 0.0] * 6))  # a residual straight back
    plan = mlp.plan(_ego(0.0))
    assert plan == pytest.approx(np.zeros((6, 2)))


def test_the_planner_returns_its_head_s_plan_projected_forward() -> None:
    vla = VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=3).eval()
    head = vla.planner.waypoint_head
    with torch.no_grad():  # a residual that backs a standing ego up 0.3 m a step
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.copy_(torch.tensor([-0.3, 0.02] * 6) / head.scale)
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(0))
    index = torch.arange(12)
    grid = torch.tensor([[1, 4, 6]] * 2)
    for speed in (0.0, 5.0):
        ego = _ego(speed)
        with torch.no_grad():
            raw = vla.planner.forward_regression(
                visual_tokens=[tokens], kept_index=[index], grid_thw=grid, egos=[ego]
            )[0].numpy()
        plan = vla.planner.plan(kept_tokens=tokens, kept_index=index, grid_thw=grid, ego=ego)
        assert np.asarray(plan.waypoints) == pytest.approx(forward_only(raw), abs=1e-5)
        assert np.all(np.diff(np.asarray(plan.waypoints)[:, 0], prepend=0.0) >= -1e-6)
    assert raw[-1, 0] > 10.0  # moving at 5 m/s the residual only slows the plan: kept as is
    assert np.asarray(plan.waypoints) == pytest.approx(raw, abs=1e-5)
