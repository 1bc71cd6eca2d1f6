"""Ego status as numbers: one embedding from a small MLP, and the kinematic prior of the plan.

The first compact planner read its ego status as text digits ("v8.3 a-1.2 ..."): a from-scratch
4-layer LLM needs many epochs to read numbers out of digit tokens, and an ego-only MLP beat it by
far (issue 8). Here the status goes in as numbers (features scaled to about unit range), through a
2-layer MLP, into ONE embedding added to the prompt's <plan> query token, and the waypoint head
predicts a residual over a kinematic prior computed from the same status, so that the LLM only has
to learn what the status cannot tell: what the cameras show.

Both ego-input settings (core_types.EgoInputs) are honoured: for a "minimal" EgoState the features
hold the command, the speed and the minimal flag only (history, acceleration, yaw rate and
steering are zeroed, never read), and the prior is constant velocity straight ahead; for "full"
the prior is CTRA (constant acceleration and yaw rate, speed held at 0 once stopped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS, EgoState

COMMAND_ORDER: tuple[str, ...] = ("left", "straight", "right")
# command one-hot (3), minimal flag, speed, acceleration, yaw rate, steering, history 6 x (x, y)
EGO_FEATURES = 3 + 1 + 4 + 12
_SCALE = np.array([10.0, 3.0, 0.3, 0.3], dtype=np.float64)  # speed, accel, yaw rate, steering
_HISTORY_SCALE = 30.0  # metres: 3 s at town speeds
_PRIOR_DT = 0.05  # integration step of the CTRA prior


def ego_features(ego: EgoState) -> np.ndarray:
    """(EGO_FEATURES,) float32 numbers the EgoEncoder reads; minimal inputs read no more."""
    out = np.zeros(EGO_FEATURES, dtype=np.float32)
    out[COMMAND_ORDER.index(ego.command)] = 1.0
    if ego.inputs == "minimal":
        out[3] = 1.0
        out[4] = ego.speed / _SCALE[0]
        return out
    status = np.array([ego.speed, ego.acceleration, ego.yaw_rate, ego.steering])
    out[4:8] = status / _SCALE
    out[8:] = (np.asarray(ego.history_xy)[:-1] / _HISTORY_SCALE).ravel()  # the last is (0, 0)
    return out


def kinematic_prior(ego: EgoState, added_acceleration: float = 0.0) -> np.ndarray:
    """(6, 2) waypoints at +0.5 .. +3 s from the ego status alone.

    full: CTRA (speed + acceleration x t, never below 0; heading + yaw rate x t);
    minimal: constant velocity straight ahead (the status it may read holds nothing else).
    added_acceleration (m/s^2): added to the status' own from now on, speed still held at 0
    once stopped; the decision prior (nn/decision_prior.py) drives it with what the cameras read.
    """
    times = np.arange(1, PLAN_STEPS + 1) * PLAN_DT_S
    if ego.inputs == "minimal":  # closed form: v0 t + a t^2 / 2 until the ego stops
        a = float(added_acceleration)
        moving = np.minimum(times, ego.speed / -a) if a < 0 else times
        return np.stack([ego.speed * moving + 0.5 * a * moving**2, np.zeros_like(times)], axis=1)
    steps = int(round(times[-1] / _PRIOR_DT))
    t = np.arange(steps) * _PRIOR_DT
    acceleration = ego.acceleration + float(added_acceleration)
    v = np.maximum(ego.speed + acceleration * (t + 0.5 * _PRIOR_DT), 0.0)
    heading = ego.yaw_rate * (t + 0.5 * _PRIOR_DT)
    x = np.cumsum(v * np.cos(heading)) * _PRIOR_DT
    y = np.cumsum(v * np.sin(heading)) * _PRIOR_DT
    every = int(round(PLAN_DT_S / _PRIOR_DT))
    return np.stack([x[every - 1 :: every], y[every - 1 :: every]], axis=1)


class EgoEncoder(nn.Module):
    """EgoState features -> one embedding [D] (added to the <plan> query token)."""

    def __init__(self, *, width: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(EGO_FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, width)
        )

    def forward(self, egos: Sequence[EgoState]) -> torch.Tensor:
        weight = self.mlp[0].weight
        feats = torch.as_tensor(
            np.stack([ego_features(ego) for ego in egos]), dtype=weight.dtype
        ).to(weight.device)
        return self.mlp(feats)


def prior_batch(
    egos: Sequence[EgoState],
    device: torch.device,
    added_acceleration: Sequence[float] | None = None,
) -> torch.Tensor:
    """[B, 6, 2] kinematic priors (float32) of a batch (each with its added acceleration)."""
    added = [0.0] * len(egos) if added_acceleration is None else list(added_acceleration)
    plans = np.stack([kinematic_prior(ego, a) for ego, a in zip(egos, added, strict=True)])
    return torch.as_tensor(plans, dtype=torch.float32, device=device)
