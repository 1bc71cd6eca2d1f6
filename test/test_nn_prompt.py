"""Impromptu-VLA's prompt and the <PLANNING> parser: accepts the real format, rejects the rest."""

from __future__ import annotations

import random
import string
import typing

import numpy as np
import pytest

from fastdrive_ros.core_types import EgoState, PlanFailure, PlanFailureReason, PlanOk
from fastdrive_ros.nn.prompt import (
    IMAGE_PAD,
    PLAN_QUERY,
    VISION_END,
    VISION_START,
    build_prompt,
    check_waypoints,
    ego_status_rows,
    format_planning,
    parse_planning,
)

REASONS = set(typing.get_args(PlanFailureReason))
GOOD = (
    "<PLANNING>Predicted future movement details for the next 3 seconds (sampled at 0.5-second "
    "intervals), including BEV location in x and y directions (in meters). Positive x means "
    "forward direction while positive y means leftwards. The output is formatted as [x, y]: "
    "[2.19, 0.04], [4.34, 0.19], [5.97, 0.43], [8.03, 0.89], [10.08, 1.56], [12.04, 2.51]"
    "</PLANNING>"
)


def _ego() -> EgoState:
    t = np.arange(-6, 1) * 0.5
    history = np.stack([5.0 * t, 0.002 * (5.0 * t) ** 2], axis=1)
    return EgoState(
        history_xy=history, speed=5.0, acceleration=-0.31, yaw_rate=0.02, steering=0.05
    )


def test_parses_impromptu_answer() -> None:
    result = parse_planning(GOOD)
    assert isinstance(result, PlanOk)
    assert result.waypoints.shape == (6, 2)
    assert result.waypoints[0].tolist() == [2.19, 0.04]
    assert result.waypoints[-1].tolist() == [12.04, 2.51]
    # the short form Impromptu's evaluator quotes, negative numbers, text around the tags
    short = (
        "Sure. <PLANNING>Trajectory points for the next 3 seconds: [-0.02, 5.22], [-0.09, 5.14], "
        "[-0.19, 5.04], [-0.31, 4.94], [-0.44, 4.76], [-0.64, 4.61]</PLANNING><|im_end|>"
    )
    assert parse_planning(short).waypoints[5].tolist() == [-0.64, 4.61]


def test_format_round_trips() -> None:
    wp = np.array([[1.234, -0.5], [2.5, 0.0], [3.75, 0.1], [5.0, 0.2], [6.25, 0.4], [7.5, -0.0]])
    for style in ("impromptu", "compact"):
        text = format_planning(wp, style=style)
        assert "-0.0" not in text
        np.testing.assert_allclose(parse_planning(text).waypoints, np.round(wp, 2))


@pytest.mark.parametrize(
    ("text", "reason", "needle"),
    [
        ("", "no_answer", "no text"),
        ("   \n", "no_answer", "no text"),
        ("[1.0, 2.0], [3.0, 4.0]", "unparseable", "no <PLANNING>"),
        (GOOD.replace("</PLANNING>", ""), "unparseable", "cut off"),
        (GOOD.replace("[12.04, 2.51]", ""), "wrong_count", "found 5"),
        (GOOD.replace("[12.04, 2.51]", "[12.04, 2.51], [13.0, 3.0]"), "wrong_count", "found 7"),
        (GOOD.replace("[5.97, 0.43]", "[5.97, nan]"), "non_finite", "non-finite"),
        (GOOD.replace("[5.97, 0.43]", "[inf, 0.43]"), "non_finite", "non-finite"),
        (GOOD.replace("[5.97, 0.43]", "[250.0, 0.43]"), "out_of_range", "200"),
        (GOOD.replace("[5.97, 0.43]", "[five, 0.43]"), "unparseable", "waypoint 3"),
        (GOOD.replace("[5.97, 0.43]", "[5.97]"), "unparseable", "waypoint 3"),
        (GOOD.replace("[5.97, 0.43]", "[5.97, 0.43, 1.0]"), "unparseable", "waypoint 3"),
    ],
)
def test_rejects_broken_answers(text: str, reason: str, needle: str) -> None:
    result = parse_planning(text)
    assert isinstance(result, PlanFailure)
    assert result.reason == reason
    assert needle in result.detail
    assert result.text == text


def test_never_raises_on_any_string() -> None:
    rng = random.Random(0)
    alphabet = string.printable + "[]<>,.-+eE∞é\x00"
    pieces = ["<PLANNING>", "</PLANNING>", "[", "]", ",", "nan", "1e309", "-", "."]
    for i in range(3000):
        if i % 3 == 0:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        elif i % 3 == 1:
            text = "".join(rng.choice(pieces + ["1.5", " "]) for _ in range(rng.randint(0, 40)))
        else:  # mutate a good answer
            chars = list(GOOD)
            for _ in range(rng.randint(1, 6)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            text = "".join(chars)
        result = parse_planning(text)
        assert isinstance(result, (PlanOk, PlanFailure))
        if isinstance(result, PlanFailure):
            assert result.reason in REASONS and result.detail
        else:
            assert result.waypoints.shape == (6, 2) and np.isfinite(result.waypoints).all()
    assert isinstance(parse_planning(None), PlanFailure)  # type: ignore[arg-type]


def test_check_waypoints() -> None:
    assert isinstance(check_waypoints(np.zeros((6, 2))), PlanOk)
    assert check_waypoints(np.full((6, 2), np.nan)).reason == "non_finite"
    assert check_waypoints(np.full((6, 2), 300.0)).reason == "out_of_range"
    assert check_waypoints(np.zeros((5, 2))).reason == "wrong_count"


@pytest.mark.parametrize("cameras", [1, 6])
def test_impromptu_prompt(cameras: int) -> None:
    spec = build_prompt(_ego(), num_cameras=cameras, style="impromptu")
    text = "<IMG>".join(spec.texts)
    assert spec.num_images == cameras and not spec.query_last
    assert text.count(VISION_START + "<IMG>" + VISION_END) == cameras
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert ("front right view" in text) == (cameras == 6)
    assert "over the last 3.0 seconds (at 0.5-second intervals)" in text
    steps = [f"(t-{t}s)" for t in ("3.0", "2.5", "2.0", "1.5", "1.0", "0.5", "0.0")]
    assert all(s in text for s in steps)
    assert "(t-3.0s) [-15.0, 0.45], Acceleration: X " in text
    assert "(t-0.0s) [0.0, 0.0], Acceleration: X -0.31, Y 0.1 m/s^2, Velocity: X 5.0" in text
    assert IMAGE_PAD not in text  # the planner inserts the visual tokens itself
    with pytest.raises(ValueError, match="front image or six"):
        build_prompt(_ego(), num_cameras=3, style="impromptu")


def test_compact_prompt() -> None:
    spec = build_prompt(_ego(), num_cameras=6, style="compact")
    assert spec.query_last and spec.texts[-1].endswith(PLAN_QUERY)
    assert spec.texts[-1] == VISION_END + " straight v5.0 a-0.3 w0.02 h-5.0,0.1" + PLAN_QUERY
    with pytest.raises(ValueError, match="style"):
        build_prompt(_ego(), num_cameras=6, style="long")  # type: ignore[arg-type]


def test_ego_status_rows_estimate_the_past() -> None:
    rows = ego_status_rows(_ego())
    assert rows.shape == (7, 4)
    np.testing.assert_allclose(rows[-1], [-0.31, 0.1, 5.0, 0.05 * 16])  # steering-wheel angle
    assert rows[1:-1, 2] == pytest.approx([5.0, 5.0, 5.0, 5.0, 5.0], abs=0.05)  # speeds
    assert np.all(rows[2:-1, 3] > 0)  # a left curve gives left steering


def test_impromptu_prompt_carries_the_raw_can_steering_wheel_angle() -> None:
    """Upstream writes CAN's steeranglefeedback (steering-wheel angle, rad) as it is."""
    from fastdrive_ros.core_types import STEERING_RATIO
    from fastdrive_ros.data.ego_status import CanBusTrack

    raw = -0.44  # rad at the steering wheel, as the CAN log has it (2 digits: the prompt's)
    can = CanBusTrack(
        pose_utime=np.array([0.0, 1e6]),
        velocity=np.array([[5.0, 0, 0], [5.0, 0, 0]]),
        acceleration=np.zeros((2, 3)),
        rotation_rate=np.zeros((2, 3)),
        steer_utime=np.array([0.0, 1e6]),
        steer_value=np.array([raw, raw]),
    )
    status = can.status(0.5e6)
    assert status.steering == pytest.approx(raw / STEERING_RATIO)  # EgoState: front wheels
    t = np.arange(-6, 1) * 0.5
    ego = EgoState(
        history_xy=np.stack([5.0 * t, 0 * t], axis=1),
        speed=status.speed,
        acceleration=status.acceleration,
        yaw_rate=status.yaw_rate,
        steering=status.steering,
    )
    text = "".join(build_prompt(ego, num_cameras=1, style="impromptu").texts)
    assert "(t-0.0s) [0.0, 0.0], Acceleration: X 0.0, Y 0.0 m/s^2, Velocity: X 5.0, " in text
    assert f"Steering angle: {raw} (positive: left turn" in text.split("(t-0.0s)")[1]
    # the past rows are in the same unit: a bicycle-model estimate x STEERING_RATIO
    curve = EgoState(
        history_xy=np.stack([5.0 * t, 0.02 * (5.0 * t) ** 2], axis=1),
        speed=5.0,
        acceleration=0.0,
        yaw_rate=0.2,  # y = 0.02 x^2: curvature 0.04, yaw rate 5 x 0.04
        steering=float(np.arctan(2.588 * 0.2 / 5.0)),
    )
    rows = ego_status_rows(curve)
    assert rows[-1, 3] == pytest.approx(16 * np.arctan(2.588 * 0.2 / 5.0))
    assert 0.5 < rows[-2, 3] / rows[-1, 3] < 2.0  # past rows estimated at the same scale


@pytest.mark.parametrize("observed", [1, 3, 7])
def test_impromptu_history_is_shortened_at_a_scenes_start(observed: int) -> None:
    t = np.arange(-6, 1) * 0.5
    ego = EgoState(
        history_xy=np.stack([5.0 * t, 0 * t], axis=1),
        speed=5.0,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
        history_steps=observed,
    )
    text = "".join(build_prompt(ego, num_cameras=1, style="impromptu").texts)
    seconds = 0.5 * (observed - 1)
    assert f"over the last {seconds} seconds (at 0.5-second intervals)" in text
    assert text.count("Acceleration: X") == observed
    assert f"(t-{seconds}s) [{-5.0 * seconds if seconds else 0.0}, 0.0]" in text
    assert f"(t-{seconds + 0.5}s)" not in text  # the extrapolated rows are left out
    compact = "".join(build_prompt(ego, num_cameras=1, style="compact").texts)
    assert "h-5.0,0.0" in compact  # the compact prompt keeps its fixed shape
    with pytest.raises(ValueError, match="history_steps"):
        EgoState(
            history_xy=ego.history_xy,
            speed=0,
            acceleration=0,
            yaw_rate=0,
            steering=0,
            history_steps=0,
        )
