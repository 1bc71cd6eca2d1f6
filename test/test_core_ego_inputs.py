"""The two ego-input settings (BEV-Planner style): full, and minimal = command + speed only."""

import numpy as np
import pytest

from fastdrive_ros.core_types import EgoState, restrict_ego


def _ego() -> EgoState:
    history = np.stack([np.linspace(-20.0, 0.0, 7), np.linspace(-3.0, 0.0, 7)], axis=1)
    return EgoState(
        history, speed=7.0, acceleration=-1.5, yaw_rate=0.2, steering=0.05, command="left"
    )


def test_full_is_the_ego_itself() -> None:
    ego = _ego()
    assert restrict_ego(ego, "full") is ego


def test_minimal_keeps_command_and_speed_only() -> None:
    minimal = restrict_ego(_ego(), "minimal")
    assert minimal.inputs == "minimal"
    assert (minimal.command, minimal.speed) == ("left", 7.0)
    assert (minimal.acceleration, minimal.yaw_rate, minimal.steering) == (0.0, 0.0, 0.0)
    # history: a straight drive at the current speed, 0.5 s apart, ending at the origin
    np.testing.assert_allclose(minimal.history_xy[:, 0], [-21.0, -17.5, -14, -10.5, -7, -3.5, 0])
    np.testing.assert_allclose(minimal.history_xy[:, 1], 0.0)


def test_minimal_cannot_be_widened_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="cannot be widened"):
        restrict_ego(restrict_ego(_ego(), "minimal"), "full")
    with pytest.raises(ValueError, match="inputs must be one of"):
        restrict_ego(_ego(), "partial")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inputs must be one of"):
        EgoState(np.zeros((7, 2)), 0.0, 0.0, 0.0, 0.0, inputs="none")  # type: ignore[arg-type]
