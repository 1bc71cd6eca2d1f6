"""`generate_dataset`: the synthetic world written as a nuScenes v1.0 dataset (`v1.0-synth`).

Scenes are generated independently (optionally in worker processes) from (seed, scene index) and
merged in index order, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from fastdrive_ros.data.layout import CLASS_MAP_DIR, FG_MASK_DIR, SEMANTIC_CLASSES
from fastdrive_ros.data.synth.bev import drivable_mask
from fastdrive_ros.data.synth.mapjson import write_map
from fastdrive_ros.data.synth.report import BEHAVIOURS
from fastdrive_ros.data.synth.scene import SceneJob, SceneResult, run_scene
from fastdrive_ros.data.synth.tables import (
    MAP_FILES,
    SCENE_TABLES,
    VERSION,
    static_tables,
    write_tables,
)
from fastdrive_ros.data.synth.timeline import CAMERA_OFFSET_S, KEYFRAME_DT, keyframe_count
from fastdrive_ros.data.synth.town import LOCATIONS
from fastdrive_ros.data.synth.world import town_assets

MIN_SECONDS = 3.5  # keyframes 0 .. 3.0 s: at least one keyframe with a full 3 s future
MAX_SECONDS = 600.0
MIN_SIZE = (64, 36)
MAX_SIDE = 4096
# Scene numbers the devkit's NuScenesCanBus refuses (no CAN data in real nuScenes) or warns about;
# synthetic scenes skip them so that every scene's CAN files can be read.
CAN_BLACKLIST = frozenset([*range(161, 169), *range(170, 177), *range(309, 315), 419])
OUTPUT_DIRS = (
    VERSION,
    "samples",
    "sweeps",
    FG_MASK_DIR,
    CLASS_MAP_DIR,
    "can_bus",
    "maps",
    "synth",
)


@dataclass(frozen=True)
class DatasetSummary:
    """Counts, sizes and timing of a generated dataset."""

    root: Path
    version: str
    scenes: int
    samples: int
    images: int
    annotations: int
    bytes_on_disk: int
    seconds: float
    image_size: tuple[int, int]
    locations: tuple[str, ...]
    behaviours: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def scene_names(count: int) -> list[str]:
    """`scene-0000`, `scene-0001`, ... skipping CAN_BLACKLIST numbers."""
    names, n = [], 0
    while len(names) < count:
        if n not in CAN_BLACKLIST:
            names.append(f"scene-{n:04d}")
        n += 1
    if n > 10000:
        raise ValueError(f"too many scenes ({count}): nuScenes scene names have four digits")
    return names


def scene_locations(count: int) -> list[str]:
    """The town of each of `count` scenes: one town per 25 scenes, dealt in turn."""
    n_towns = min(len(LOCATIONS), 1 + count // 25)
    return [LOCATIONS[i % n_towns] for i in range(count)]


def validate(
    *,
    scenes: int,
    seconds: float,
    seed: int,
    image_size: tuple[int, int],
    workers: int,
    town_grid: int,
) -> None:
    """Raise ValueError naming the bad argument and what would be accepted."""
    if not isinstance(scenes, int) or scenes < 1:
        raise ValueError(f"scenes must be a positive integer, got {scenes!r}")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(
            f"seconds must be in [{MIN_SECONDS}, {MAX_SECONDS}], got {seconds}: a scene needs "
            f"keyframes covering one 3 s planning future (nuScenes scenes are 20 s)"
        )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from None
    if (width, height) != tuple(image_size) or not (
        MIN_SIZE[0] <= width <= MAX_SIDE and MIN_SIZE[1] <= height <= MAX_SIDE
    ):
        raise ValueError(
            f"image size must be integers between {MIN_SIZE[0]}x{MIN_SIZE[1]} and "
            f"{MAX_SIDE}x{MAX_SIDE}, got {image_size!r} (nuScenes is 1600x900)"
        )
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(town_grid, int) or not 2 <= town_grid <= 8:
        raise ValueError(f"town_grid must be an integer in [2, 8], got {town_grid!r}")


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"output folder {out} is not empty; choose a new folder or pass overwrite=True "
                f"(--overwrite), which deletes its dataset folders first"
            )
        for name in OUTPUT_DIRS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def generate_dataset(
    out: Path,
    *,
    scenes: int,
    seconds: float,
    seed: int,
    image_size: tuple[int, int] = (1600, 900),
    sweeps: bool = True,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    town_grid: int = 5,
    brake_lights: bool = False,
    conflicts: bool = False,
) -> DatasetSummary:
    """Write a synthetic nuScenes-format dataset to `out` and summarise it.

    Args:
        out: dataset root (the devkit's dataroot).
        scenes: number of scenes.
        seconds: length of each scene (>= 3.5 s; nuScenes uses 20 s).
        seed: everything (towns, scenes, images) is a function of the seed.
        image_size: (width, height) of every camera; intrinsics scale with it.
        sweeps: also write the 12 Hz non-keyframe images (else keyframes only, 2 Hz).
        workers: processes generating scenes in parallel.
        progress: show a progress bar.
        overwrite: allow a non-empty `out` (its dataset folders are deleted first).
        town_grid: intersections per side of each synthetic town (small values for tests).
        brake_lights: vehicles light their brake lamps while slowing or standing in traffic
            (scene.brake_lamps_on), so a braking lead shows in one frame; off keeps the images
            of earlier worlds unchanged.
        conflicts: add the standing vehicles and close-following leads of scenario.py's
            `conflicts` (what open-loop collision rates need to tell plans apart); off keeps
            earlier worlds unchanged.
    """
    validate(
        scenes=scenes,
        seconds=seconds,
        seed=seed,
        image_size=image_size,
        workers=workers,
        town_grid=town_grid,
    )
    out = Path(out)
    _prepare(out, overwrite)
    start = time.perf_counter()
    names = scene_names(scenes)
    locations = scene_locations(scenes)
    jobs = [
        SceneJob(
            out,
            seed,
            i,
            name,
            locations[i],
            float(seconds),
            int(image_size[0]),
            int(image_size[1]),
            sweeps,
            town_grid,
            brake_lights,
            conflicts,
        )
        for i, name in enumerate(names)
    ]
    results: dict[int, SceneResult] = {}
    bar = _progress(progress, scenes)
    if workers == 1:
        for job in jobs:
            results[job.index] = run_scene(job)
            bar.update(1)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, scenes), initializer=_worker_init) as pool:
            for job, result in zip(jobs, pool.imap(run_scene, jobs)):
                results[job.index] = result
                bar.update(1)
    bar.close()
    t_scenes = time.perf_counter()

    used = sorted({job.location for job in jobs})
    size = 0
    for location in used:
        assets = town_assets(seed, location, town_grid)
        size += write_map(out, assets.town, seed)
        ok, buf = cv2.imencode(".png", drivable_mask(assets.ground))
        if not ok:
            raise RuntimeError(f"could not encode the map mask of {location}")
        (out / MAP_FILES[location]).write_bytes(buf.tobytes())
        size += len(buf)
    logs = {loc: [] for loc in used}
    tables: dict[str, list[dict]] = {name: [] for name in SCENE_TABLES}
    for i in sorted(results):
        for name, rows in results[i].rows.items():
            tables[name] += rows
        logs[jobs[i].location] += [r["token"] for r in results[i].rows["log"]]
    tables.update(static_tables(seed, logs))
    size += write_tables(out, tables)
    behaviours = {b: sum(r.labels.get(b, 0) for r in results.values()) for b in BEHAVIOURS}
    summary = DatasetSummary(
        root=out,
        version=VERSION,
        scenes=scenes,
        samples=len(tables["sample"]),
        images=sum(r.images for r in results.values()),
        annotations=len(tables["sample_annotation"]),
        bytes_on_disk=size + sum(r.bytes_written for r in results.values()),
        seconds=time.perf_counter() - start,
        image_size=(int(image_size[0]), int(image_size[1])),
        locations=tuple(used),
        behaviours=behaviours,
        stage_seconds={
            "scenes": t_scenes - start,
            "maps_and_tables": time.perf_counter() - t_scenes,
            **{
                k: sum(r.seconds.get(k, 0.0) for r in results.values())
                for k in ("simulate", "render", "annotate")
            },
        },
    )
    _write_info(out, summary, seed, seconds, sweeps, brake_lights, conflicts)
    return summary


def _progress(enabled: bool, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="synth scenes", unit="scene", disable=not enabled)


def _write_info(
    out: Path,
    summary: DatasetSummary,
    seed: int,
    seconds: float,
    sweeps: bool,
    brake_lights: bool,
    conflicts: bool,
) -> None:
    info = {
        "version": summary.version,
        "seed": seed,
        "scenes": summary.scenes,
        "seconds_per_scene": seconds,
        "keyframes_per_scene": keyframe_count(seconds),
        "keyframe_interval_s": KEYFRAME_DT,
        "sweeps": sweeps,
        "brake_lights": brake_lights,
        "conflicts": conflicts,
        "image_size": list(summary.image_size),
        "locations": list(summary.locations),
        "camera_offsets_s": CAMERA_OFFSET_S,
        "classes": [
            {"id": c.id, "name": c.name, "foreground": c.foreground} for c in SEMANTIC_CLASSES
        ],
        "layout": {
            "images": "samples/<CAM>/*.jpg (2 Hz keyframes), sweeps/<CAM>/*.jpg (12 Hz)",
            "fg_masks": f"{FG_MASK_DIR}/<image path>.png (255 = nuScenes-FG foreground)",
            "class_maps": f"{CLASS_MAP_DIR}/<image path>.png (class id per pixel)",
            "can_bus": "can_bus/<scene>_{pose,steeranglefeedback,vehicle_monitor,route,meta}.json",
            "maps": "maps/expansion/<location>.json (map expansion 1.3), maps/<hash>.png",
            "scene_meta": "synth/scenes/<scene>.json (events, per-keyframe behaviour labels)",
        },
        "behaviours": summary.behaviours,
        "images": summary.images,
        "annotations": summary.annotations,
        "synthetic": "procedural towns; location names are labels only, not real places",
    }
    folder = out / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
