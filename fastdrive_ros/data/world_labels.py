"""What the synthetic world's simulated driver reacted to at each keyframe, and what it decided.

The world writes, per keyframe, the binding constraint in the ego's corridor ("lead": one of
synth.sim.LEADS), the distance to it ("gap_m", None where there is none), its speed along the
ego's path ("lead_speed") and the acceleration the driver decided on ("decided_acceleration"; it
applies it up to a reaction time later) into `DIR/synth/scenes/<scene>.json`. Kind and gap are
frame-level facts the front camera can show (a red stop line 20 m ahead, a car 8 m ahead); the
decision is what they mean for the ego. Real nuScenes has no such record: the reader returns
nothing there. Worlds generated before the decision was recorded read it as NaN.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from fastdrive_ros.core_types import LEAD_KINDS

__all__ = ["LEAD_KINDS", "SceneLabel", "read_scene_labels", "read_worlds_labels"]

# The world's constraint names grouped by what the camera sees (as eval/events.py groups causes).
_KIND_OF = {
    "none": "none",
    "vehicle": "vehicle",
    "static": "vehicle",  # a cone or parked obstacle in the lane
    "yield": "vehicle",  # oncoming traffic before a left turn
    "red_light": "red_light",
    "pedestrian": "pedestrian",
    "zebra": "pedestrian",
    "cyclist": "cyclist",
}


@dataclass(frozen=True)
class SceneLabel:
    """One keyframe's binding constraint and the driver's decision.

    `kind` in LEAD_KINDS, `gap_m` (inf where none), `lead_speed` m/s (0 where none),
    `decided_acceleration` m/s^2 (NaN where the world did not record it).
    """

    kind: str
    gap_m: float
    lead_speed: float = 0.0
    decided_acceleration: float = math.nan


def read_scene_labels(dataroot: str | Path) -> dict[str, SceneLabel]:
    """{sample token: SceneLabel} of every scene the world recorded; empty for other datasets."""
    folder = Path(dataroot) / "synth" / "scenes"
    out: dict[str, SceneLabel] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            frames = json.loads(path.read_text(encoding="utf-8")).get("keyframes", [])
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the world's scene record {path}: {exc}") from exc
        for frame in frames:
            lead = frame.get("lead") or "none"
            if lead not in _KIND_OF:
                raise ValueError(
                    f"{path}: unknown constraint {lead!r} (expected one of {sorted(_KIND_OF)})"
                )
            gap = frame.get("gap_m")
            kind = _KIND_OF[lead]
            gap_m = math.inf if gap is None or kind == "none" else float(gap)
            lead_speed = frame.get("lead_speed")
            decided = frame.get("decided_acceleration")
            out[str(frame["sample_token"])] = SceneLabel(
                kind,
                gap_m,
                0.0 if lead_speed is None or math.isinf(gap_m) else float(lead_speed),
                math.nan if decided is None else float(decided),
            )
    return out


def read_worlds_labels(dataroots: list[str | Path]) -> dict[str, SceneLabel]:
    """`read_scene_labels` of several worlds in one table (e.g. stage A2's training worlds).

    Sample tokens are unique per world; one shared by two worlds means the same world was
    given twice (or two copies of it), which would weight its scenes double: that is refused.
    """
    out: dict[str, SceneLabel] = {}
    for root in dataroots:
        labels = read_scene_labels(root)
        shared = labels.keys() & out.keys()
        if shared:
            raise ValueError(
                f"{root} shares {len(shared)} sample tokens with an earlier world "
                f"(e.g. {min(shared)}): give each world once"
            )
        out.update(labels)
    return out
