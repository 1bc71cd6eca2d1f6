"""The pace: the one acceleration, held for 3 s, whose kinematic prior best fits the future.

The decision reader was taught the driver's decided acceleration, a choice of the moment: the
driver brakes for 1 s and rolls, or accelerates until the target speed. Held over the whole
horizon by the full-status prior it overshoots, and even the true decision label drives that
prior to only about 14 % under CTRA on the held-out worlds. The pace is the acceleration whose
full-status prior (ego_encoder.kinematic_prior) scores the evaluation's L2 Avg best against the
recorded future: a label of the future, like any trajectory target, that a reader learns from
the cameras and the full ego status (nn/decision_reader.py `read_pace`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.eval.bootstrap import l2_avg
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.train.records import KeyframeRecord

PACE_BOUNDS = (-8.0, 5.0)  # m/s^2: past what a car brakes or accelerates
# metres of L2 Avg per (m/s^2)^2 away from the measured acceleration: where the future does not
# tell accelerations apart (a car that stays stopped fits every a <= 0) the pace is the one
# closest to what the ego measures, not wherever the search happened to stop
TIE_BREAK = 1e-3


def prior_misses(
    ego: EgoState, added: float, future_xy: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """[6] metres from the recorded future to `ego`'s prior with `added` m/s^2 (NaN: invalid).

    The kinematic prior (ego_encoder.kinematic_prior) with `added` on the ego's acceleration;
    the rows are what eval/bootstrap.l2_avg reads.
    """
    plan = kinematic_prior(ego, float(added))
    miss = np.linalg.norm(plan - np.nan_to_num(np.asarray(future_xy, dtype=np.float64)), axis=-1)
    return np.where(np.asarray(valid, dtype=bool), miss, np.nan)


def pace_label(ego: EgoState, future_xy: np.ndarray, valid: np.ndarray) -> float:
    """The pace (m/s^2) of one keyframe; the measured acceleration when no step is valid."""
    ego = restrict_ego(ego, "full")
    if not np.asarray(valid, dtype=bool).any():
        return float(ego.acceleration)

    def cost(pace: float) -> float:
        miss = prior_misses(ego, pace - ego.acceleration, future_xy, valid)
        return l2_avg(miss[None]) + TIE_BREAK * (pace - ego.acceleration) ** 2

    best = minimize_scalar(cost, bounds=PACE_BOUNDS, method="bounded", options={"xatol": 1e-3})
    return float(best.x)


def pace_labels(records: Sequence[KeyframeRecord]) -> np.ndarray:
    """[S] the pace of each record."""
    return np.array([pace_label(r.ego, r.future_xy, r.future_valid) for r in records])
