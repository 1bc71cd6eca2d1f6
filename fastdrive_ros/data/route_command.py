"""The driving command of a keyframe: from the route where there is one, else from the future.

Real nuScenes has no route, so the reader keeps the field's convention (UniAD/VAD): the command
is derived from the ground-truth future's lateral offset at +3 s (`ego_status.driving_command`),
which hands the planner part of the answer. The synthetic world knows the ego's route and writes
the command a navigation system would give (the movement at the next intersection, see
`synth.routes.Route.command_at`) into `DIR/synth/scenes/<scene>.json`; the reader prefers it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fastdrive_ros.core_types import DrivingCommand

COMMANDS: tuple[str, ...] = ("left", "right", "straight")


@lru_cache(maxsize=256)
def _scene_commands(meta_path: str, mtime_ns: int) -> dict[str, DrivingCommand]:
    del mtime_ns  # part of the cache key only: a regenerated scene is read again
    data = json.loads(Path(meta_path).read_text(encoding="utf-8"))
    out: dict[str, DrivingCommand] = {}
    for row in data.get("keyframes", []):
        command = row.get("command")
        if command is not None:
            if command not in COMMANDS:
                raise ValueError(f"{meta_path}: unknown driving command {command!r}")
            out[str(row["sample_token"])] = command
    return out


def route_commands(dataroot: str | Path, scene: str) -> dict[str, DrivingCommand]:
    """{sample token: route command} of one scene; empty where the dataset writes none."""
    path = Path(dataroot) / "synth" / "scenes" / f"{scene}.json"
    if not path.is_file():
        return {}
    return _scene_commands(str(path), path.stat().st_mtime_ns)
