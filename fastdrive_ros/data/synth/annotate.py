"""Keyframe annotations: instance tracks, boxes, attributes, visibility and sensor point counts.

visibility: the fraction of the agent's silhouette that is visible, summed over the six cameras
of the keyframe (z-buffer pixels / unoccluded pixels), binned into nuScenes' '1'..'4'.
num_lidar_pts: expected returns of a simulated 32-beam roof lidar (1.25 deg x 0.33 deg grid,
-30..+10 deg elevation, 1.84 m high, 100 m range) on the box, times the visible fraction.
num_radar_pts: a few returns for vehicles and cyclists within 100 m that are at all visible.
An agent is annotated at a keyframe when it is within 75 m of the ego or visible in any camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.synth.agents import HUMANS, VEHICLES, AgentSpec
from fastdrive_ros.data.synth.tables import token, visibility_token

ANNOTATE_RADIUS_M = 75.0
LIDAR_Z = 1.84
LIDAR_EL = (np.radians(-30.0), np.radians(10.0))
LIDAR_DEL = np.radians(1.25)
LIDAR_DAZ = 2 * np.pi / 1084
LIDAR_RANGE = 100.0


@dataclass(frozen=True)
class KeyframeObs:
    """What is known about every agent at one keyframe (A agents).

    Attributes:
        poses: (A, 3) x, y, yaw of box centres; speed: (A,); active: (A,) bool.
        visible / silhouette: (A,) pixels over all six cameras (occluded / unoccluded).
    """

    sample_token: str
    ego_xy: np.ndarray
    poses: np.ndarray
    speed: np.ndarray
    active: np.ndarray
    visible: np.ndarray
    silhouette: np.ndarray


def lidar_points(
    spec: AgentSpec, centre: np.ndarray, yaw: float, ego_xy: np.ndarray, fraction: float
) -> int:
    w, length, h = spec.size
    rel = centre - ego_xy
    dist = float(np.hypot(*rel))
    if dist > LIDAR_RANGE or fraction <= 0.0:
        return 0
    dist = max(dist, 1.0)
    bearing = np.arctan2(rel[1], rel[0])
    c, s = abs(np.cos(yaw - bearing)), abs(np.sin(yaw - bearing))
    across = length * s + w * c  # extent seen across the line of sight
    el0 = max(np.arctan2(-LIDAR_Z, dist), LIDAR_EL[0])
    el1 = min(np.arctan2(h - LIDAR_Z, dist), LIDAR_EL[1])
    beams = max(0.0, el1 - el0) / LIDAR_DEL
    columns = 2 * np.arctan2(across / 2, dist) / LIDAR_DAZ
    return int(round(beams * columns * fraction))


def radar_points(spec: AgentSpec, dist: float, visible: bool) -> int:
    if not visible or dist > 100.0 or spec.kind not in (*VEHICLES, "cyclist"):
        return 0
    return int(min(12, max(1, round(60.0 / max(dist, 5.0)))))


def attributes(spec: AgentSpec, speed: float, parked: bool) -> list[str]:
    if spec.kind in VEHICLES:
        if parked:
            return ["vehicle.parked"]
        return ["vehicle.moving" if speed > 0.3 else "vehicle.stopped"]
    if spec.kind == "cyclist":
        return ["cycle.with_rider"]
    if spec.kind in HUMANS:
        return ["pedestrian.moving" if speed > 0.2 else "pedestrian.standing"]
    return []


def build_annotations(
    seed: int, scene: str, specs: list[AgentSpec], parked: set[int], keyframes: list[KeyframeObs]
) -> tuple[list[dict], list[dict]]:
    """(instance rows, sample_annotation rows) with prev/next chains per instance."""
    tracks: dict[int, list[dict]] = {}
    for j, obs in enumerate(keyframes):
        dist = np.hypot(*(obs.poses[:, :2] - obs.ego_xy).T)
        keep = obs.active & ((dist <= ANNOTATE_RADIUS_M) | (obs.visible > 0))
        for a in np.flatnonzero(keep):
            spec = specs[a]
            x, y, yaw = obs.poses[a]
            sil = float(obs.silhouette[a])
            fraction = float(obs.visible[a]) / sil if sil > 0 else 0.0
            fraction = min(fraction, 1.0)
            w, length, h = spec.size
            row = {
                "token": token(seed, "sample_annotation", scene, int(a), j),
                "sample_token": obs.sample_token,
                "instance_token": token(seed, "instance", scene, int(a)),
                "visibility_token": visibility_token(fraction),
                "attribute_tokens": [
                    token(seed, "attribute", n)
                    for n in attributes(spec, float(obs.speed[a]), a in parked)
                ],
                "translation": [round(float(x), 4), round(float(y), 4), round(h / 2, 4)],
                "size": [round(w, 4), round(length, 4), round(h, 4)],
                "rotation": [
                    round(float(np.cos(yaw / 2)), 7),
                    0.0,
                    0.0,
                    round(float(np.sin(yaw / 2)), 7),
                ],
                "prev": "",
                "next": "",
                "num_lidar_pts": lidar_points(
                    spec, obs.poses[a, :2], float(yaw), obs.ego_xy, fraction
                ),
                "num_radar_pts": radar_points(spec, float(dist[a]), obs.visible[a] > 0),
            }
            tracks.setdefault(int(a), []).append(row)
    instances, annotations = [], []
    for a in sorted(tracks):
        rows = tracks[a]
        for prev, nxt in zip(rows[:-1], rows[1:]):
            prev["next"], nxt["prev"] = nxt["token"], prev["token"]
        instances.append(
            {
                "token": token(seed, "instance", scene, a),
                "category_token": token(seed, "category", specs[a].category),
                "nbr_annotations": len(rows),
                "first_annotation_token": rows[0]["token"],
                "last_annotation_token": rows[-1]["token"],
            }
        )
        annotations += rows
    return instances, annotations
