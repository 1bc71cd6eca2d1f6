"""nuScenes v1.0 table records: deterministic tokens and the dataset-wide tables.

Tokens are md5 hex digests of (dataset seed, table, key...), so the same seed gives the same
tokens and different seeds give different ones. Scene workers build their own rows with `token`;
the dataset-wide tables (category, attribute, visibility, sensor, map) are defined here once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastdrive_ros.core_types import CAMERA_NAMES

VERSION = "v1.0-synth"
TABLES = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
# Defined once per dataset by `static_tables`; every other table is built by the scene workers.
STATIC_TABLES = ("category", "attribute", "visibility", "sensor", "map")
SCENE_TABLES = tuple(name for name in TABLES if name not in STATIC_TABLES)

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("human.pedestrian.adult", "Adult subcategory."),
    ("human.pedestrian.child", "Child subcategory."),
    ("human.pedestrian.wheelchair", "Wheelchairs. Not rendered in the synthetic world."),
    ("human.pedestrian.stroller", "Strollers. Not rendered in the synthetic world."),
    ("human.pedestrian.personal_mobility", "Personal mobility devices. Not rendered."),
    ("human.pedestrian.police_officer", "Police officer. Not rendered."),
    ("human.pedestrian.construction_worker", "Construction worker. Not rendered."),
    ("animal", "All animals. Not rendered."),
    ("vehicle.car", "Vehicle designed primarily for personal use."),
    ("vehicle.motorcycle", "Gasoline or electric powered 2-wheeled vehicle. Not rendered."),
    ("vehicle.bicycle", "Human or electric powered 2-wheeled vehicle (with rider here)."),
    ("vehicle.bus.bendy", "Bendy bus. Not rendered."),
    ("vehicle.bus.rigid", "Rigid bus."),
    ("vehicle.truck", "Vehicles primarily designed to haul cargo."),
    ("vehicle.construction", "Construction vehicles. Not rendered."),
    ("vehicle.emergency.ambulance", "All types of ambulances. Not rendered."),
    ("vehicle.emergency.police", "All types of police vehicles. Not rendered."),
    ("vehicle.trailer", "Any vehicle trailer. Not rendered."),
    ("movable_object.barrier", "Temporary road barrier (road works)."),
    ("movable_object.trafficcone", "All types of traffic cones."),
    ("movable_object.pushable_pullable", "Carts, dollies, bins. Not rendered."),
    ("movable_object.debris", "Debris or movable object left on the road. Not rendered."),
    ("static_object.bicycle_rack", "Area for bicycle parking. Not rendered."),
)
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle, with a driver/rider in/on it, is currently stationary."),
    ("vehicle.parked", "Vehicle is stationary (usually for longer duration) with no driver."),
    ("cycle.with_rider", "There is someone on the bicycle or motorcycle."),
    ("cycle.without_rider", "There is NO rider on the bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The human is sitting or lying down."),
    ("pedestrian.standing", "The human is standing."),
    ("pedestrian.moving", "The human is moving."),
)
VISIBILITY: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)
# The devkit's BitMap('semantic_prior') looks for maps/<these names>.png; we use them too.
MAP_FILES = {
    "singapore-onenorth": "maps/53992ee3023e5494b90c316c183be829.png",
    "singapore-hollandvillage": "maps/37819e65e09e5547b8a3ceaefba56bb2.png",
    "singapore-queenstown": "maps/93406b464a165eaba6d9de76ca09f5da.png",
    "boston-seaport": "maps/36092f0b03a857c6a3403e25b4b7aab3.png",
}


def token(seed: int, *parts: Any) -> str:
    """Deterministic 32-hex-digit token."""
    text = "|".join(str(p) for p in (seed, *parts))
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def visibility_token(fraction: float) -> str:
    """NuScenes visibility bin ('1'..'4') of a visible fraction in [0, 1]."""
    if fraction > 0.8:
        return "4"
    if fraction > 0.6:
        return "3"
    if fraction > 0.4:
        return "2"
    return "1"


def static_tables(seed: int, locations: dict[str, list[str]]) -> dict[str, list[dict]]:
    """category, attribute, visibility, sensor and map tables; locations: name -> log tokens."""
    return {
        "category": [
            {"token": token(seed, "category", n), "name": n, "description": d}
            for n, d in CATEGORIES
        ],
        "attribute": [
            {"token": token(seed, "attribute", n), "name": n, "description": d}
            for n, d in ATTRIBUTES
        ],
        "visibility": [{"token": t, "level": lv, "description": d} for t, lv, d in VISIBILITY],
        "sensor": [
            {"token": token(seed, "sensor", c), "channel": c, "modality": "camera"}
            for c in CAMERA_NAMES
        ],
        "map": [
            {
                "token": token(seed, "map", loc),
                "log_tokens": logs,
                "category": "semantic_prior",
                "filename": MAP_FILES[loc],
            }
            for loc, logs in sorted(locations.items())
            if logs
        ],
    }


def write_tables(root: Path, tables: dict[str, list[dict]]) -> int:
    """Write every table as DIR/v1.0-synth/<table>.json; returns bytes written."""
    folder = root / VERSION
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for name in TABLES:
        text = json.dumps(tables[name], indent=0, separators=(",", ":"))
        (folder / f"{name}.json").write_text(text, encoding="utf-8")
        size += len(text)
    return size
