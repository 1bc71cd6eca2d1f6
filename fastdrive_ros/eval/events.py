"""What the ego does in the next 3 s, per keyframe: the groups every evaluation row is broken into.

Averages over all keyframes hide the few where the cameras decide (FACTS.md: most of a drive is
steady cruising). Each keyframe gets one label, the first that applies in this order:

1. `stopped`: current speed < 0.5 m/s and the logged future never moves faster than 0.5 m/s.
2. `starting`: current speed < 2 m/s and the speed at the end of the horizon is >= 1.5 m/s above
   it (pulling away from a stop line, a light turning green, a lead moving off).
3. `braking_<cause>`: the lowest future speed is >= 1.5 m/s below the current speed (about
   -0.5 m/s^2 or harder over 3 s). The cause is what the world recorded the simulated driver was
   reacting to: the synthetic world writes, per keyframe, the binding constraint ("lead") and the
   ego's acceleration in synth/scenes/<scene>.json; of this keyframe and the six after it (same
   scene, 3 s) with a constraint other than "none", the one where the ego decelerates hardest
   names it: vehicle (also a static obstacle or yielding at a junction), red_light, pedestrian
   (also a zebra crossing) or cyclist. Without a record (real nuScenes, or the world recorded
   none) it is `braking_other`.
4. `turning`: the logged heading at the last valid future step differs from now by > 0.35 rad
   (20 degrees).
5. `steady`: everything else (cruising or following at a near-constant speed).

Future speeds come from the logged future positions (0.5 s apart, starting at the ego origin).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS

STOPPED_SPEED = 0.5  # m/s
START_FROM = 2.0  # m/s: at most this fast now ...
START_GAIN = 1.5  # m/s: ... and this much faster at the end of the horizon
BRAKE_DROP = 1.5  # m/s lost at the slowest future step
TURN_YAW = 0.35  # rad of heading change over the horizon
LOOKAHEAD_KEYFRAMES = PLAN_STEPS  # keyframes at 2 Hz covering the next 3 s

BRAKING_CAUSES: tuple[str, ...] = ("vehicle", "red_light", "pedestrian", "cyclist", "other")
EVENT_GROUPS: tuple[str, ...] = (
    "steady",
    "stopped",
    *(f"braking_{c}" for c in BRAKING_CAUSES),
    "starting",
    "turning",
)
# Groups where something the cameras can see changes the future: where the content effect and the
# oracle gap should show if the planner reads the images.
VISIBLE_EVENT_GROUPS: tuple[str, ...] = (
    "braking_vehicle",
    "braking_red_light",
    "braking_pedestrian",
    "braking_cyclist",
    "starting",
)
# The synthetic world's constraint names (data/synth/sim.py LEADS) -> braking cause.
_LEAD_CAUSE = {
    "vehicle": "vehicle",
    "static": "vehicle",
    "yield": "vehicle",
    "red_light": "red_light",
    "pedestrian": "pedestrian",
    "zebra": "pedestrian",
    "cyclist": "cyclist",
}


def future_speeds(future_xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(k,) mean speed over each 0.5 s step of the logged future (k = leading valid steps)."""
    xy = np.asarray(future_xy, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    count = int(np.argmin(valid)) if not valid.all() else len(valid)
    points = np.vstack([np.zeros((1, 2)), xy[:count]])
    return np.linalg.norm(np.diff(points, axis=0), axis=1) / PLAN_DT_S


Lead = tuple[str | None, float]  # (recorded constraint, recorded acceleration m/s^2)


def braking_cause(leads: Sequence[Lead] | None) -> str:
    """The constraint (other than "none") recorded where the ego decelerated hardest -> cause."""
    named = [(acc, lead) for lead, acc in leads or () if lead and lead != "none"]
    if not named:
        return "other"
    _, lead = min(named, key=lambda pair: pair[0])  # first of equals: min is stable
    return _LEAD_CAUSE.get(lead, "other")


def label_event(
    *,
    speed: float,
    future_xy: np.ndarray,
    future_yaw: np.ndarray,
    future_valid: np.ndarray,
    leads: Sequence[Lead] | None = None,
) -> str:
    """One EVENT_GROUPS label for a keyframe (see the module docstring for the rules)."""
    speeds = future_speeds(future_xy, future_valid)
    if speeds.size == 0:
        return "steady"  # no valid future: nothing to say (such samples score no L2 either)
    v0 = max(0.0, float(speed))
    if v0 < STOPPED_SPEED and speeds.max() < STOPPED_SPEED:
        return "stopped"
    if v0 < START_FROM and speeds[-1] >= v0 + START_GAIN:
        return "starting"
    if speeds.min() <= v0 - BRAKE_DROP:
        return f"braking_{braking_cause(leads)}"
    yaw = np.asarray(future_yaw, dtype=np.float64)[: speeds.size]
    if abs(float(np.angle(np.exp(1j * yaw[-1])))) > TURN_YAW:
        return "turning"
    return "steady"


class WorldRecords:
    """The synthetic world's per-keyframe constraint records, by sample token (empty elsewhere).

    `leads(token)`: (recorded "lead", recorded acceleration) of this keyframe and of the next ones
    of the same scene covering 3 s; None where the dataset has no such record (real nuScenes).
    """

    def __init__(self, leads_by_token: dict[str, list[Lead]]) -> None:
        self._leads = leads_by_token

    @classmethod
    def load(cls, dataroot: str | Path) -> WorldRecords:
        folder = Path(dataroot) / "synth" / "scenes"
        out: dict[str, list[Lead]] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                frames = json.loads(path.read_text(encoding="utf-8")).get("keyframes", [])
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read the world's scene record {path}: {exc}") from exc
            leads = [
                (frame.get("lead"), float(frame.get("acceleration", 0.0))) for frame in frames
            ]
            for i, frame in enumerate(frames):
                out[str(frame["sample_token"])] = leads[i : i + 1 + LOOKAHEAD_KEYFRAMES]
        return cls(out)

    def __len__(self) -> int:
        return len(self._leads)

    def leads(self, token: str) -> list[Lead] | None:
        return self._leads.get(token)
