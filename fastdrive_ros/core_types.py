"""Plain data shared by every room (numpy and the standard library only, no torch, no ROS).

These are the contracts between rooms: the data layer produces them, the models and the pipeline
consume them, the transports convert them to and from ROS messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

# nuScenes camera channels, in the order the model sees them (front camera first: it anchors sync).
CAMERA_NAMES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)

# Planning horizon: 6 waypoints at 0.5 s (3 s); ego history: 7 poses at 0.5 s (-3 s .. 0).
PLAN_STEPS = 6
PLAN_DT_S = 0.5
HISTORY_STEPS = 7
# Steering-wheel to front-wheel angle ratio of nuScenes' Renault Zoe (approximate; the value
# NeuroNCAP uses). EgoState.steering is the front-wheel angle; CAN's steeranglefeedback and
# Impromptu-VLA's prompt carry the steering-wheel angle = front-wheel angle x STEERING_RATIO.
STEERING_RATIO = 16.0

# Greedy-decoding budget for a text answer. Impromptu-VLA's full `<PLANNING>` answer is about 130
# pre-tokens under Qwen2's rules (every digit its own token) and 152 at the largest coordinates;
# 256 leaves room for words the vocabulary splits. Decoding stops at `</PLANNING>` anyway: the
# budget only bounds a runaway answer (test_nn_answer_budget.py checks it covers a full answer).
DEFAULT_MAX_NEW_TOKENS = 256

DrivingCommand = Literal["left", "right", "straight"]
# What the planner may read of the ego's own state (BEV-Planner's two settings): "full" is the
# paper's and Impromptu's protocol (history, speed, acceleration, yaw rate, steering); "minimal"
# is the driving command and the current speed only, so that the cameras must carry the rest.
EgoInputs = Literal["full", "minimal"]
EGO_INPUTS: tuple[str, ...] = ("full", "minimal")
# What binds the ego at a keyframe, grouped by what the front camera sees (the synthetic world's
# labels, data/world_labels.py; the planner's SceneReader predicts them, nn/scene_reader.py).
LEAD_KINDS: tuple[str, ...] = ("none", "vehicle", "red_light", "pedestrian", "cyclist")


@dataclass(frozen=True)
class EgoState:
    """What the planner knows about the ego car at the planning time.

    Attributes:
        history_xy: (7, 2) past positions at t = -3.0, -2.5, ..., 0.0 s in the *current* ego frame
            (x forward, y left, metres); the last row is (0, 0).
        speed: m/s along x.
        acceleration: m/s^2 along x.
        yaw_rate: rad/s, counter-clockwise positive.
        steering: rad, front-wheel steering angle, left positive.
        command: high-level driving command (derived from the route).
        inputs: which of these the planner may read ("minimal": command and speed only; the
            other fields then hold the constant-velocity values of `restrict_ego`).
        history_steps: how many of the last history rows were observed (1..7); the rows
            before them were extrapolated (the first 3 s of a scene). Impromptu-VLA's prompt
            lists only the observed ones, as its data had no keyframe before a scene's start.
        status_rows: (7, 4) measured [acc_x, acc_y, vel_x, front-wheel steering] at each
            history time (CAN bus, as Impromptu's prompt reads them at every past keyframe), or
            None: the prompt then estimates the past rows from the history.
    """

    history_xy: np.ndarray
    speed: float
    acceleration: float
    yaw_rate: float
    steering: float
    command: DrivingCommand = "straight"
    inputs: EgoInputs = "full"
    history_steps: int = HISTORY_STEPS
    status_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.inputs not in EGO_INPUTS:
            raise ValueError(f"inputs must be one of {EGO_INPUTS}, got {self.inputs!r}")
        if not 1 <= int(self.history_steps) <= HISTORY_STEPS:
            raise ValueError(
                f"history_steps must be in 1..{HISTORY_STEPS}, got {self.history_steps}"
            )
        history = np.asarray(self.history_xy, dtype=np.float64)
        if history.shape != (HISTORY_STEPS, 2):
            raise ValueError(f"history_xy must be ({HISTORY_STEPS}, 2), got {history.shape}")
        object.__setattr__(self, "history_xy", history)
        if self.status_rows is not None:
            rows = np.asarray(self.status_rows, dtype=np.float64)
            if rows.shape != (HISTORY_STEPS, 4) or not np.all(np.isfinite(rows)):
                raise ValueError(
                    f"status_rows must be finite ({HISTORY_STEPS}, 4), got {rows.shape}"
                )
            object.__setattr__(self, "status_rows", rows)
        values = (self.speed, self.acceleration, self.yaw_rate, self.steering)
        if not np.all(np.isfinite(history)) or not np.all(np.isfinite(values)):
            raise ValueError("EgoState holds a non-finite value")


def restrict_ego(ego: EgoState, inputs: EgoInputs) -> EgoState:
    """`ego` as a planner in the `inputs` setting may see it.

    "minimal" keeps the command and the current speed and replaces everything else by what a
    constant-velocity straight drive would show (history at the current speed, no acceleration,
    yaw rate or steering), flagged with `inputs="minimal"` so that planners can tell a missing
    value from a zero.
    """
    if inputs == "full":
        if ego.inputs != "full":
            raise ValueError("a minimal EgoState cannot be widened to full: its values are gone")
        return ego
    if inputs != "minimal":
        raise ValueError(f"inputs must be one of {EGO_INPUTS}, got {inputs!r}")
    seconds = np.arange(-(HISTORY_STEPS - 1), 1) * PLAN_DT_S
    history = np.stack([seconds * ego.speed, np.zeros_like(seconds)], axis=1)
    return EgoState(
        history_xy=history,
        speed=ego.speed,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
        command=ego.command,
        inputs="minimal",
    )


@dataclass(frozen=True)
class PlanOk:
    """A usable plan: (6, 2) waypoints at +0.5 .. +3.0 s in the ego frame (x forward, y left)."""

    waypoints: np.ndarray
    text: str | None = None
    generated_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


PlanFailureReason = Literal[
    "unparseable", "wrong_count", "non_finite", "out_of_range", "no_answer"
]


@dataclass(frozen=True)
class PlanFailure:
    """A planner answer that cannot be used; the node reports it instead of raising."""

    reason: PlanFailureReason
    detail: str
    text: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


PlanResult = Union[PlanOk, PlanFailure]
