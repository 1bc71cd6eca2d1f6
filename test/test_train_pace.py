"""The pace: the acceleration held for 3 s whose full-status prior best fits the future."""

from __future__ import annotations

import numpy as np
import pytest
from train_tiny import imageless_record

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.eval.bootstrap import l2_avg
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.train.pace import pace_label, pace_labels

T = np.arange(1, 7) * 0.5
VALID = np.ones(6, dtype=bool)


def _ego(speed: float, acceleration: float = 0.0, yaw_rate: float = 0.0) -> EgoState:
    return EgoState(np.zeros((7, 2)), speed=speed, acceleration=acceleration,
                    yaw_rate=yaw_rate, steering=0.0)  # fmt: skip


def _miss(ego: EgoState, pace: float, future: np.ndarray) -> float:
    plan = kinematic_prior(ego, pace - ego.acceleration)
    return l2_avg(np.linalg.norm(plan - future, axis=-1)[None])


@pytest.mark.parametrize(
    ("speed", "measured", "held", "yaw_rate"),
    [(10.0, 0.0, -1.5, 0.0), (4.0, 0.5, 1.2, 0.1), (12.0, -2.0, 0.3, -0.05)],
)
def test_a_future_that_holds_one_acceleration_has_it_as_its_pace(
    speed: float, measured: float, held: float, yaw_rate: float
) -> None:
    ego = _ego(speed, measured, yaw_rate)
    future = kinematic_prior(ego, held - measured)
    assert pace_label(ego, future, VALID) == pytest.approx(held, abs=0.01)


def test_a_brief_brake_is_paced_by_what_fits_the_horizon_not_by_the_brake() -> None:
    # the driver brakes at 3 m/s^2 for 1 s, then holds 7 m/s: the decision of the moment is -3
    ego = _ego(10.0)
    speed = np.where(T <= 1.0, 10.0 - 3.0 * T, 7.0)
    x = np.cumsum(np.r_[0.0, (speed[:-1] + speed[1:]) / 2] * 0.5) + (10.0 + speed[0]) / 2 * 0.5
    future = np.stack([x, 0 * x], axis=1)
    pace = pace_label(ego, future, VALID)
    assert -3.0 < pace < 0.0
    assert _miss(ego, pace, future) < min(_miss(ego, -3.0, future), _miss(ego, 0.0, future))


def test_a_car_that_stays_stopped_keeps_its_measured_acceleration() -> None:
    # every pace <= 0 leaves a stopped car where it is: the tie-break picks the measured one
    for measured in (0.0, -0.6):
        assert pace_label(_ego(0.0, measured), np.zeros((6, 2)), VALID) == pytest.approx(
            measured, abs=0.01
        )


def test_only_valid_steps_count_and_none_means_the_measured_acceleration() -> None:
    ego = _ego(8.0, 0.4)
    future = kinematic_prior(ego, -1.4)  # holds -1 m/s^2
    valid = np.array([True, True, True, True, False, False])
    spoiled = future.copy()
    spoiled[4:] = [[100.0, 50.0], [np.nan, np.nan]]  # what an invalid step holds does not matter
    assert pace_label(ego, spoiled, valid) == pytest.approx(-1.0, abs=0.01)
    assert pace_label(ego, spoiled, np.zeros(6, dtype=bool)) == 0.4


def test_pace_labels_label_every_record() -> None:
    egos = [_ego(9.0, 0.0), _ego(5.0, 1.0)]
    futures = [kinematic_prior(egos[0], -2.0), kinematic_prior(egos[1], 0.0)]
    records = [imageless_record(f"k{i}", "s", e, f) for i, (e, f) in enumerate(zip(egos, futures))]
    assert pace_labels(records) == pytest.approx([-2.0, 1.0], abs=0.01)
