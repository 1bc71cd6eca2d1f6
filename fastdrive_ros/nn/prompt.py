"""The planner's prompt (Impromptu-VLA's wording, or a compact one) and its `<PLANNING>` parser.

Impromptu-VLA (nuScenes, "x-y" mode) asks a Qwen2.5-VL chat model, with a front image or all six
cameras, to continue 7 ego-history poses (x forward, y left, 0.5 s apart, each with acceleration,
velocity and steering) and answers `<PLANNING>... [x, y]: [x1, y1], ..., [x6, y6]</PLANNING>`.
The compact style keeps the same answer format but a prompt of a few tens of tokens, so that the
visual tokens dominate the small default model's prefill.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fastdrive_ros.core_types import (
    PLAN_DT_S,
    PLAN_STEPS,
    STEERING_RATIO,
    EgoState,
    PlanFailure,
    PlanOk,
    PlanResult,
)

PromptStyle = Literal["impromptu", "compact"]
PROMPT_STYLES: tuple[str, ...] = ("impromptu", "compact")

# Qwen2.5-VL chat and vision markers (the same strings in the real and the compact tokenizer).
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"  # never used by the planner; a distinct id keeps Qwen's configs valid
PLAN_QUERY = "<plan>"  # the compact prompt's last token; the regression head reads its state
PLANNING_OPEN, PLANNING_CLOSE = "<PLANNING>", "</PLANNING>"

MAX_ABS_WAYPOINT_M = 200.0  # 3 s at any plausible speed stays far inside this
WHEELBASE_M = 2.588  # nuScenes' Renault Zoe; turns a past yaw rate into a steering estimate

_SYSTEM = "You are a helpful assistant."
_FRONT_ONLY = (
    "You are an autonomous driving agent. You have access to a front view camera image of a "
    "vehicle <image>. "
)
_SIX_VIEWS = (
    "You are an autonomous driving agent. You have access to multi-view camera images of a "
    "vehicle: (1) front view (which you should focus on with the most attention) <image>, "
    "(2) front right view <image>, (3) front left view <image>, (4) back view <image>, "
    "(5) back left view <image>, and (6) back right view <image>. "
)
_TASK = (
    "Your task is to do your best to predict future waypoints for the vehicle over the next 3 "
    "timesteps, given the vehicle's intent inferred from the images."
)
_HISTORY = (
    "Provided are the previous ego vehicle status recorded over the last {seconds} seconds (at "
    "0.5-second intervals). This includes the x and y coordinates of the ego vehicle. Positive x "
    "means forward direction while positive y means leftwards. The data is presented in the "
    "format [x, y]:"
)
_ANSWER_LEAD = (
    "Predicted future movement details for the next 3 seconds (sampled at 0.5-second "
    "intervals), including BEV location in x and y directions (in meters). Positive x means "
    "forward direction while positive y means leftwards. The output is formatted as [x, y]: "
)
# Bracketed labels that are part of the wording, not waypoints (Impromptu's parser drops them).
_LABELS = {"x, y", "displacement, theta", "dx, dy", "distance, curvature", "distance, polar angle"}
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class PromptSpec:
    """The text around the image placeholders: texts[0] <img 0> texts[1] ... <img C-1> texts[C].

    Each piece already holds Qwen's `<|vision_start|>` / `<|vision_end|>` around its images, so
    the planner only inserts the visual tokens. `query_last` says the last token is PLAN_QUERY.
    """

    texts: tuple[str, ...]
    style: PromptStyle
    query_last: bool

    @property
    def num_images(self) -> int:
        return len(self.texts) - 1


def _num(value: float, digits: int = 2) -> str:
    """Impromptu's number format: Python's float repr after rounding, never '-0.0'."""
    out = round(float(value), digits)
    return repr(0.0 if out == 0 else out)


def ego_status_rows(ego: EgoState) -> np.ndarray:
    """(7, 4) per history step [acc_x, acc_y, vel_x, steering-wheel angle rad], oldest first.

    Steering is the STEERING-WHEEL angle, as Impromptu's prompt carries CAN's raw
    `steeranglefeedback`: EgoState's front-wheel angle x STEERING_RATIO (a CAN value, divided by
    the ratio in the reader, comes back exactly). Impromptu reads every row from nuScenes' CAN
    bus at its keyframe; EgoState holds the status only for now, so past steps are estimated from
    the history (finite differences: speed, heading rate, centripetal acceleration, a
    bicycle-model front-wheel angle x STEERING_RATIO) and the last row is the measured status.
    With `ego.status_rows` (the reader's CAN rows) every row is the measured one, as upstream.
    """
    if ego.status_rows is not None:
        rows = np.array(ego.status_rows, dtype=np.float64)
        rows[:, 3] *= STEERING_RATIO
        return rows
    step = np.diff(ego.history_xy, axis=0)  # (6, 2) motion over each 0.5 s
    speed = np.linalg.norm(step, axis=1) / PLAN_DT_S
    heading = np.unwrap(np.arctan2(step[:, 1], step[:, 0]))
    moving = speed > 0.5  # below that the heading of a step is noise
    turn = np.where(moving[1:] & moving[:-1], np.diff(heading) / PLAN_DT_S, 0.0)
    vel = np.concatenate([[speed[0]], speed])  # (7,)
    yaw_rate = np.concatenate([[0.0, 0.0], turn])  # (7,)
    acc_x = np.concatenate([[0.0], np.diff(vel) / PLAN_DT_S])
    acc_y = vel * yaw_rate
    steer = np.where(vel > 0.5, np.arctan(WHEELBASE_M * yaw_rate / np.maximum(vel, 0.5)), 0.0)
    rows = np.stack([acc_x, acc_y, vel, steer * STEERING_RATIO], axis=1)
    rows[-1] = [
        ego.acceleration,
        ego.speed * ego.yaw_rate,
        ego.speed,
        ego.steering * STEERING_RATIO,
    ]
    return rows


def _impromptu_history(ego: EgoState) -> str:
    """The history sentence with the observed rows only (fewer at a scene's start, as upstream).

    `ego.history_steps` rows (the last ones) were observed; the extrapolated ones before them
    are left out and the sentence says "over the last (n - 1) x 0.5 seconds".
    """
    count = int(ego.history_steps)
    seconds = PLAN_DT_S * (count - 1)
    rows = ego_status_rows(ego)[-count:]
    items = []
    for i, ((x, y), (ax, ay, vx, steer)) in enumerate(zip(ego.history_xy[-count:], rows)):
        items.append(
            f"(t-{seconds - i * PLAN_DT_S}s) [{_num(x)}, {_num(y)}], Acceleration: X {_num(ax)}, "
            f"Y {_num(ay)} m/s^2, Velocity: X {_num(vx)}, Steering angle: {_num(steer)} "
            "(positive: left turn, negative: right turn)"
        )
    return _HISTORY.format(seconds=seconds) + ", ".join(items) + "\n"


def _fixed(value: float, digits: int) -> str:
    out = f"{float(value):.{digits}f}"
    return out[1:] if out.startswith("-") and float(out) == 0 else out


def _compact_ego(ego: EgoState) -> str:
    """~25 tokens: command, speed, acceleration, yaw rate and the pose 1 s ago.

    Short on purpose: the visual tokens must dominate the compact model's prefill (steering is
    left out: at speed the yaw rate says the same).
    """
    x1, y1 = ego.history_xy[-3]
    return (
        f" {ego.command} v{_fixed(ego.speed, 1)} a{_fixed(ego.acceleration, 1)}"
        f" w{_fixed(ego.yaw_rate, 2)} h{_fixed(x1, 1)},{_fixed(y1, 1)}"
    )


def build_prompt(
    ego: EgoState, *, num_cameras: int, style: PromptStyle, ego_text: bool = True
) -> PromptSpec:
    """The prompt pieces around `num_cameras` images (CAMERA_NAMES order) for one frame.

    `ego_text=False` (compact only): the text holds the driving command alone; the planner's
    EgoEncoder brings the rest of the status in as numbers.
    """
    if style == "impromptu":
        if not ego_text:
            raise ValueError("Impromptu's prompt carries the ego status as text")
        if num_cameras not in (1, 6):
            raise ValueError(
                f"Impromptu-VLA's prompt has a front image or six cameras, got {num_cameras}"
            )
        user = (_FRONT_ONLY if num_cameras == 1 else _SIX_VIEWS) + _TASK + _impromptu_history(ego)
        head = f"{IM_START}system\n{_SYSTEM}{IM_END}\n{IM_START}user\n"
        tail = f"{IM_END}\n{IM_START}assistant\n"
        parts = user.split("<image>")
        texts = [head + parts[0] + VISION_START]
        texts += [VISION_END + part + VISION_START for part in parts[1:-1]]
        texts.append(VISION_END + parts[-1] + tail)
        return PromptSpec(texts=tuple(texts), style=style, query_last=False)
    if style == "compact":
        if not 1 <= num_cameras <= 6:
            raise ValueError(f"the compact prompt takes 1 to 6 cameras, got {num_cameras}")
        texts = [VISION_START] + [VISION_END + VISION_START] * (num_cameras - 1)
        status = _compact_ego(ego) if ego_text else f" {ego.command}"
        texts.append(VISION_END + status + PLAN_QUERY)
        return PromptSpec(texts=tuple(texts), style=style, query_last=True)
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


def format_planning(waypoints: np.ndarray, *, style: PromptStyle = "impromptu") -> str:
    """The answer a planner is trained to give for (6, 2) waypoints (x forward, y left, m)."""
    wp = np.asarray(waypoints, dtype=np.float64)
    if wp.shape != (PLAN_STEPS, 2):
        raise ValueError(f"waypoints must be ({PLAN_STEPS}, 2), got {wp.shape}")
    points = ", ".join(f"[{_num(x)}, {_num(y)}]" for x, y in wp)
    lead = _ANSWER_LEAD if style == "impromptu" else ""
    return f"{PLANNING_OPEN}{lead}{points}{PLANNING_CLOSE}"


def _fail(reason, detail: str, text: str) -> PlanFailure:
    return PlanFailure(reason=reason, detail=detail, text=text)


def parse_planning(text: str) -> PlanResult:
    """PlanOk with (6, 2) waypoints, or a PlanFailure that says precisely what is wrong.

    Like Impromptu's evaluator: take the text between `<PLANNING>` and `</PLANNING>`, collect the
    `[a, b]` groups, drop the `[x, y]` format label. Unlike it, a truncated answer, a count other
    than 6, or a number that is not finite or beyond 200 m is a failure, never padded or zeroed.
    Never raises, whatever the string.
    """
    if not isinstance(text, str):
        return _fail("unparseable", f"answer is {type(text).__name__}, not text", repr(text))
    if not text.strip():
        return _fail("no_answer", "the planner produced no text", text)
    start = text.find(PLANNING_OPEN)
    if start < 0:
        return _fail("unparseable", f"no {PLANNING_OPEN} tag in the answer", text)
    body_start = start + len(PLANNING_OPEN)
    end = text.find(PLANNING_CLOSE, body_start)
    if end < 0:
        return _fail(
            "unparseable",
            f"no {PLANNING_CLOSE} after {PLANNING_OPEN}: the answer was cut off "
            "(raise max_new_tokens) or is malformed",
            text,
        )
    groups = [g.strip() for g in _BRACKETS.findall(text[body_start:end])]
    groups = [g for g in groups if g not in _LABELS]
    if len(groups) != PLAN_STEPS:
        return _fail(
            "wrong_count", f"expected {PLAN_STEPS} [x, y] waypoints, found {len(groups)}", text
        )
    points: list[tuple[float, float]] = []
    for i, group in enumerate(groups):
        fields = [f.strip() for f in group.split(",")]
        try:
            if len(fields) != 2:
                raise ValueError
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            return _fail("unparseable", f"waypoint {i + 1} is not two numbers: [{group}]", text)
        points.append((x, y))
    wp = np.asarray(points, dtype=np.float64)
    if not np.all(np.isfinite(wp)):
        return _fail("non_finite", f"non-finite waypoint value in {points}", text)
    worst = float(np.abs(wp).max())
    if worst > MAX_ABS_WAYPOINT_M:
        return _fail(
            "out_of_range",
            f"waypoint coordinate {worst:.1f} m exceeds {MAX_ABS_WAYPOINT_M:.0f} m",
            text,
        )
    return PlanOk(waypoints=wp, text=text)


def check_waypoints(waypoints: Sequence[Sequence[float]] | np.ndarray) -> PlanResult:
    """The same range and finiteness checks for waypoints from a regression head."""
    wp = np.asarray(waypoints, dtype=np.float64)
    if wp.shape != (PLAN_STEPS, 2):
        return PlanFailure("wrong_count", f"expected ({PLAN_STEPS}, 2) waypoints, got {wp.shape}")
    if not np.all(np.isfinite(wp)):
        return PlanFailure("non_finite", "the regression head produced a non-finite waypoint")
    worst = float(np.abs(wp).max())
    if worst > MAX_ABS_WAYPOINT_M or math.isnan(worst):
        return PlanFailure(
            "out_of_range",
            f"waypoint coordinate {worst:.1f} m exceeds {MAX_ABS_WAYPOINT_M:.0f} m",
        )
    return PlanOk(waypoints=wp)
