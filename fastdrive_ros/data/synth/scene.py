"""Generate one scene.

Simulate, render every camera image at its own time, write images, masks, class maps, CAN bus
files and the scene's table rows.

Runs in a worker process; everything it draws comes from (dataset seed, scene index), so scenes
are identical whatever the number of workers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.layout import (
    class_map_path,
    depth_map_path,
    encode_inverse_depth,
    fg_mask_path,
)
from fastdrive_ros.data.synth.agents import agent_prisms
from fastdrive_ros.data.synth.annotate import KeyframeObs, build_annotations
from fastdrive_ros.data.synth.canbus import write_can_bus
from fastdrive_ros.data.synth.encode import finish, foreground_mask, write_jpeg, write_png
from fastdrive_ros.data.synth.meshes import (
    concat_faces,
    concat_frames,
    face_frames,
    prisms_to_faces,
    take_frames,
    transform_faces,
)
from fastdrive_ros.data.synth.raster import silhouette_areas
from fastdrive_ros.data.synth.render import Shading
from fastdrive_ros.data.synth.report import BEHAVIOURS, describe, keyframe_labels
from fastdrive_ros.data.synth.scenario import build_scenario
from fastdrive_ros.data.synth.sim import DT, EGO_CENTRE
from fastdrive_ros.data.synth.tables import token
from fastdrive_ros.data.synth.textures import sky_panorama
from fastdrive_ros.data.synth.timeline import interp_mask, interp_track, make_timeline
from fastdrive_ros.data.synth.world import light_material_ids, materials, renderers, town_assets

WARMUP_S = 2.0
SCENARIO_STREAM = 11  # a scene's random stream: default_rng([seed, index, SCENARIO_STREAM])
BRAKE_DECEL = 0.7  # m/s^2: slowing harder than this (engine braking) lights the brake lamps
HOLD_SPEED = 0.5  # m/s: a car standing in traffic holds its brake (parked ones do not)
BRAKE_WINDOW_S = 0.2  # the speed change is measured over this much time before the image
BASE_UTIME = 1533000000000000  # 2018-07-31, a nuScenes-like clock


@dataclass(frozen=True)
class SceneJob:
    """One scene to generate (picklable: sent to worker processes)."""

    root: Path
    seed: int
    index: int
    name: str
    location: str
    seconds: float
    width: int
    height: int
    sweeps: bool
    town_grid: int = 5
    brake_lights: bool = False
    conflicts: bool = False


@dataclass
class SceneResult:
    """Table rows and figures of one generated scene."""

    name: str
    rows: dict[str, list[dict]]
    images: int
    bytes_written: int
    labels: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def _shading(rng: np.random.Generator, sky: np.ndarray) -> Shading:
    elev = rng.uniform(np.radians(25), np.radians(65))
    az = rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)])
    return Shading(
        sun,
        float(rng.uniform(0.55, 0.7)),
        float(rng.uniform(0.35, 0.5)),
        sky[-1].mean(axis=0).astype(np.float32),
    )


def _shade(normals: np.ndarray, tint: np.ndarray, shading: Shading) -> np.ndarray:
    light = shading.ambient + shading.diffuse * np.clip(normals @ shading.sun, 0.0, None)
    return (light[:, None] * tint).astype(np.float32)


def brake_lamps_on(
    speed: np.ndarray, speed_before: np.ndarray, window_s: float, parked: np.ndarray
) -> np.ndarray:
    """(A,) whether each agent's brake lamps are lit.

    Lit while slowing by more than BRAKE_DECEL over the window, or standing (below HOLD_SPEED)
    without being parked.
    """
    decel = (speed_before - speed) / window_s
    return ~parked & ((decel > BRAKE_DECEL) | (speed < HOLD_SPEED))


def run_scene(job: SceneJob) -> SceneResult:
    """Simulate and write one scene; returns its table rows."""
    clock = {"start": time.perf_counter()}
    assets = town_assets(job.seed, job.location, job.town_grid)
    mats = materials()
    rng = np.random.default_rng([job.seed, job.index, SCENARIO_STREAM])
    scenario = build_scenario(
        assets.town, rng, seconds=job.seconds, warmup=WARMUP_S, conflicts=job.conflicts
    )
    base = BASE_UTIME + job.index * 1_000_000_000
    timeline = make_timeline(job.seconds, base, rng, job.sweeps)
    tracks = scenario.world.run(-WARMUP_S, timeline.end + 2 * DT)
    t0 = float(tracks.t[0])
    clock["simulate"] = time.perf_counter()

    sky = sky_panorama(rng)
    shading = _shading(rng, sky)
    static_shade = _shade(assets.frames.normal, assets.faces.tint, shading)
    specs = scenario.specs
    owners = [a for a, spec in enumerate(specs) for _ in agent_prisms(spec, mats)]
    local = prisms_to_faces([p for spec in specs for p in agent_prisms(spec, mats)], owners)
    light_mats = light_material_ids()
    back_mat, braking_mat = mats["car_back"], mats["car_back_braking"]
    parked_mask = np.isin(np.arange(len(specs)), list(scenario.world.fixed))
    cams = renderers(job.width, job.height)
    ego_track = tracks.ego[:, :3]
    agent_track = np.concatenate([tracks.poses, tracks.speed[..., None]], axis=-1)
    plan = scenario.plan

    rows: dict[str, list[dict]] = {"sample": [], "sample_data": [], "ego_pose": []}
    log_token = token(job.seed, "log", job.name)
    scene_token = token(job.seed, "scene", job.name)
    logfile = f"synth-{job.seed}-{job.location}-{job.index:04d}"
    cs_tokens = [token(job.seed, "calibrated_sensor", job.name, c) for c in CAMERA_NAMES]
    rows["calibrated_sensor"] = [
        {
            "token": cs_tokens[i],
            "sensor_token": token(job.seed, "sensor", c.channel),
            "translation": [round(float(v), 4) for v in c.translation],
            "rotation": [round(float(v), 8) for v in c.rotation],
            "camera_intrinsic": np.round(c.intrinsic, 4).tolist(),
        }
        for i, c in enumerate(cam.cal for cam in cams)
    ]
    key_index = np.cumsum(timeline.keyframe) - 1
    n_key = int(timeline.keyframe.sum())
    sample_tokens = [token(job.seed, "sample", job.name, j) for j in range(n_key)]
    keyframes: list[KeyframeObs] = []
    prev_sd = [""] * len(CAMERA_NAMES)
    images, size = 0, 0
    for k, frame_t in enumerate(timeline.frame_t):
        is_key = bool(timeline.keyframe[k])
        j = int(key_index[k]) if is_key else int(key_index[k]) + 1
        ego_c = interp_track(t0, DT, ego_track, float(frame_t))
        near = np.hypot(*(assets.centres - ego_c[:2]).T) < assets.cull_m
        static = assets.faces.take(near)
        static_frames = take_frames(assets.frames, near)
        visible = np.zeros(len(specs), np.int64)
        silhouette = np.zeros(len(specs), np.int64)
        for c, cam in enumerate(cams):
            t = float(timeline.cam_t[k, c])
            ego = interp_track(t0, DT, ego_track, t)
            state = interp_track(t0, DT, agent_track, t)
            active = interp_mask(t0, DT, tracks.active, t)
            poses = np.where(active[:, None], state[:, :3], [1e6, 1e6, 0.0])
            moved = transform_faces(local, poses)
            if job.brake_lights:
                before = interp_track(t0, DT, agent_track, t - BRAKE_WINDOW_S)[:, 3]
                on = brake_lamps_on(state[:, 3], before, BRAKE_WINDOW_S, parked_mask)
                lamps = (moved.mat == back_mat) & on[moved.owner]
                moved.mat = np.where(lamps, braking_mat, moved.mat).astype(moved.mat.dtype)
            faces = concat_faces([static, moved])
            moved_frames = face_frames(moved, mats)
            frames = concat_frames([static_frames, moved_frames])
            shade = np.concatenate(
                [static_shade[near], _shade(moved_frames.normal, moved.tint, shading)]
            )
            lit = faces.light >= 0
            if lit.any():
                states = np.array([plan.state(n, ax, t) for n, ax in assets.light_axis])
                faces.mat[lit] = light_mats[states[faces.light[lit]]]
            sil: dict[int, list[np.ndarray]] | None = {} if is_key else None
            out = cam.render(
                ego_pose=ego,
                ground=assets.ground,
                sky=sky,
                shading=shading,
                faces=faces,
                frames=frames,
                shade=shade,
                materials=mats,
                silhouettes=sil,
            )
            folder = "samples" if is_key else "sweeps"
            channel = CAMERA_NAMES[c]
            utime = int(timeline.utime[k, c])
            rel = f"{folder}/{channel}/{logfile}__{channel}__{utime}.jpg"
            img_rng = np.random.default_rng([job.seed, job.index, k, c, 17])
            size += _write_image(job.root, rel, finish(out.rgb, img_rng), out.cls, out.depth)
            images += 1
            sd = token(job.seed, "sample_data", job.name, channel, k)
            rows["ego_pose"].append(
                {
                    "token": sd,
                    "timestamp": utime,
                    "rotation": [
                        round(float(np.cos(ego[2] / 2)), 8),
                        0.0,
                        0.0,
                        round(float(np.sin(ego[2] / 2)), 8),
                    ],
                    "translation": [round(float(ego[0]), 4), round(float(ego[1]), 4), 0.0],
                }
            )
            rows["sample_data"].append(
                {
                    "token": sd,
                    "sample_token": sample_tokens[j],
                    "ego_pose_token": sd,
                    "calibrated_sensor_token": cs_tokens[c],
                    "timestamp": utime,
                    "fileformat": "jpg",
                    "is_key_frame": is_key,
                    "height": job.height,
                    "width": job.width,
                    "filename": rel,
                    "prev": prev_sd[c],
                    "next": "",
                }
            )
            if prev_sd[c]:
                rows["sample_data"][-1 - len(CAMERA_NAMES)]["next"] = sd
            prev_sd[c] = sd
            if is_key:
                counts = np.bincount(out.inst.ravel(), minlength=len(specs) + 1)[1:]
                visible += counts[: len(specs)]
                for a, area in silhouette_areas(sil, job.width, job.height).items():
                    silhouette[a] += area
        if is_key:
            t_s = float(timeline.cam_t[k, 0])
            state = interp_track(t0, DT, agent_track, t_s)
            ego_s = interp_track(t0, DT, ego_track, t_s)
            centre = ego_s[:2] + EGO_CENTRE * np.array([np.cos(ego_s[2]), np.sin(ego_s[2])])
            keyframes.append(
                KeyframeObs(
                    sample_tokens[j],
                    centre,
                    state[:, :3],
                    state[:, 3],
                    interp_mask(t0, DT, tracks.active, t_s),
                    visible,
                    silhouette,
                )
            )
            rows["sample"].append(
                {
                    "token": sample_tokens[j],
                    "timestamp": int(timeline.utime[k, 0]),
                    "prev": sample_tokens[j - 1] if j > 0 else "",
                    "next": sample_tokens[j + 1] if j + 1 < n_key else "",
                    "scene_token": scene_token,
                }
            )
    clock["render"] = time.perf_counter()

    parked = set(scenario.world.fixed)
    rows["instance"], rows["sample_annotation"] = build_annotations(
        job.seed, job.name, specs, parked, keyframes
    )
    key_times = timeline.cam_t[timeline.keyframe, 0]
    labels = keyframe_labels(tracks, scenario.world.ego_route, key_times)
    description = describe(job.location, scenario, tracks, labels)
    rows["scene"] = [
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": n_key,
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": job.name,
            "description": description,
        }
    ]
    rows["log"] = [
        {
            "token": log_token,
            "logfile": logfile,
            "vehicle": "synth-zoe",
            "date_captured": "2018-08-01",
            "location": job.location,
        }
    ]
    size += write_can_bus(
        job.root,
        job.name,
        times=tracks.t,
        ego=tracks.ego,
        route=scenario.world.ego_route,
        t0=max(-WARMUP_S, t0),
        t1=timeline.end,
        base_utime=base,
    )
    size += _write_meta(job, description, scenario.events, labels, sample_tokens)
    clock["write"] = time.perf_counter()
    seconds = {
        "simulate": clock["simulate"] - clock["start"],
        "render": clock["render"] - clock["simulate"],
        "annotate": clock["write"] - clock["render"],
    }
    counts = {name: sum(1 for lb in labels if lb["behaviour"] == name) for name in BEHAVIOURS}
    return SceneResult(job.name, rows, images, size, counts, seconds)


def _write_image(root: Path, rel: str, rgb: np.ndarray, cls: np.ndarray, depth: np.ndarray) -> int:
    path = root / rel
    mask_path, class_path = fg_mask_path(root, rel), class_map_path(root, rel)
    depth_path = depth_map_path(root, rel)
    for target in (path, mask_path, class_path, depth_path):
        target.parent.mkdir(parents=True, exist_ok=True)
    size = write_jpeg(path, rgb)
    size += write_png(class_path, cls)
    size += write_png(mask_path, foreground_mask(cls))
    size += write_png(depth_path, encode_inverse_depth(depth))
    return size


def _write_meta(
    job: SceneJob,
    description: str,
    events: list[str],
    labels: list[dict],
    sample_tokens: list[str],
) -> int:
    folder = job.root / "synth" / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": job.name,
        "location": job.location,
        "seed": job.seed,
        "index": job.index,
        "description": description,
        "planned_events": events,
        "keyframes": [{"sample_token": tok, **lb} for tok, lb in zip(sample_tokens, labels)],
    }
    text = json.dumps(meta, indent=1)
    (folder / f"{job.name}.json").write_text(text, encoding="utf-8")
    return len(text)
