"""What the ego did at each keyframe, and the scene description built from it.

Behaviours: stopped, braking, turning, following, cruising.

Labels are written to `DIR/synth/scenes/<scene>.json` so training and evaluation can report per
behaviour; their shares across a dataset show how much of it is more than cruising. Each label
also holds the route's driving command (`Route.command_at`), which the reader gives the planner
instead of the nuScenes convention derived from the future trajectory.
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.data.synth.routes import Route
from fastdrive_ros.data.synth.sim import EGO_FRONT, LEADS, Tracks

BEHAVIOURS = ("stopped", "braking", "turning", "following", "cruising")


def keyframe_labels(tracks: Tracks, route: Route, times: np.ndarray) -> list[dict]:
    """Per keyframe: ego status, binding constraint, the driver's decision, behaviour, route."""
    out = []
    for t in times:
        i = int(np.clip(np.searchsorted(tracks.t, t), 0, len(tracks.t) - 1))
        x, y, _, v, a, wz, steer = tracks.ego[i]
        lead = LEADS[int(tracks.ego_lead[i])]
        gap = float(tracks.ego_gap[i])
        lead_speed = None if tracks.ego_lead_speed is None else float(tracks.ego_lead_speed[i])
        decided = None if tracks.ego_decided is None else float(tracks.ego_decided[i])
        s, _ = route.path.project(np.array([x, y]))
        span = route.turn_at(s)
        upcoming = next((sp for sp in route.turns if sp.s1 >= s and sp.s0 - s < 30.0), None)
        ahead = (tracks.t >= t) & (tracks.t <= t + 3.0)
        drop = float(v - tracks.ego[ahead, 3].min()) if ahead.any() else 0.0
        if v < 0.5:
            behaviour = "stopped"
        elif a < -0.7:
            behaviour = "braking"
        elif (span is not None and span.turn != "straight") or abs(wz) > 0.12:
            behaviour = "turning"
        elif lead in ("vehicle", "cyclist") and gap < max(25.0, 2.5 * v + 10.0):
            behaviour = "following"
        else:
            behaviour = "cruising"
        out.append(
            {
                "time_s": round(float(t), 3),
                "speed": round(float(v), 3),
                "acceleration": round(float(a), 3),
                "yaw_rate": round(float(wz), 4),
                "steering": round(float(steer), 4),
                "lead": lead,
                "gap_m": round(gap, 2) if np.isfinite(gap) else None,
                # what the driver decides on (IDM: its speed, the gap, the lead's speed) and what
                # it decided; it applies the decision up to a reaction time later
                "lead_speed": (
                    round(lead_speed, 2) if lead_speed is not None and np.isfinite(gap) else None
                ),
                "decided_acceleration": round(decided, 3) if decided is not None else None,
                "behaviour": behaviour,
                "route_turn": upcoming.turn if upcoming is not None else "straight",
                "command": route.command_at(float(s) + EGO_FRONT),
                "speed_drop_next_3s": round(max(drop, 0.0), 3),
            }
        )
    return out


def describe(location: str, scenario, tracks: Tracks, labels: list[dict]) -> str:
    """One-line scene description: what happened to the ego, then the cast."""
    seen: list[str] = []
    stopped = {lb["lead"] for lb in labels if lb["behaviour"] == "stopped"}
    braking = {lb["lead"] for lb in labels if lb["behaviour"] == "braking"} - stopped
    for leads, what in ((stopped, "stops"), (braking, "brakes")):
        if "red_light" in leads:
            seen.append(f"{what} for a red light")
        if leads & {"pedestrian", "zebra"}:
            seen.append(f"{what} for crossing pedestrians")
        if "yield" in leads:
            seen.append(f"{what} to yield to oncoming traffic before turning")
        if leads & {"vehicle", "cyclist"}:
            seen.append(f"{what} behind a {'cyclist' if 'cyclist' in leads else 'vehicle'}")
    if sum(lb["behaviour"] == "following" for lb in labels) >= max(2, len(labels) // 5):
        seen.append("follows a lead vehicle")
    turns = [lb["route_turn"] for lb in labels if lb["behaviour"] == "turning"]
    for turn in ("left", "right"):
        if turn in turns:
            seen.append(f"turns {turn}")
    route = scenario.world.ego_route
    travelled = float(np.sum(tracks.ego[1:, 3] * np.diff(tracks.t)))
    if any(a < travelled for a, _ in route.lane_changes if a > 0):
        seen.append("changes lane")
    if not seen:
        seen.append("cruises")
    kinds = [s.kind for s in scenario.specs]
    counts = (
        (sum(k in ("car", "truck", "bus") for k in kinds), "vehicle"),
        (sum(k in ("pedestrian", "child") for k in kinds), "pedestrian"),
        (kinds.count("cyclist"), "cyclist"),
        (sum(k in ("barrier", "cone") for k in kinds), "road-works object"),
    )
    cast = ", ".join(f"{n} {name}{'' if n == 1 else 's'}" for n, name in counts if n)
    planned = "; ".join(scenario.events) if scenario.events else "no scripted event"
    return f"{location} (synthetic town): ego {', '.join(seen)}. Scripted: {planned}. {cast}."
