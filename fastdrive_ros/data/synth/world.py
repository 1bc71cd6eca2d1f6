"""Per-process cache of what every scene of a town shares.

The town, its ground raster, its static quads, and the per-size camera renderers (building them
takes seconds; scenes reuse them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.cameras import rig
from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.bev import rasterise
from fastdrive_ros.data.synth.furniture import light_materials, static_faces
from fastdrive_ros.data.synth.meshes import FaceFrames, FaceSet, face_frames
from fastdrive_ros.data.synth.render import CameraRenderer, GroundMap
from fastdrive_ros.data.synth.textures import MaterialSet, build_materials
from fastdrive_ros.data.synth.town import LOCATIONS, Town, build_town


@dataclass(frozen=True)
class TownAssets:
    """A town plus its render-ready ground and static geometry.

    Attributes:
        centres: (F, 2) footprint centre of each static quad (distance culling per frame).
        cull_m: (F,) distance beyond which a quad is not drawn (buildings stay visible
            farther than small street furniture).
        light_axis: per light slot (= LightHead.id): (node, axis) for the signal state.
    """

    town: Town
    ground: GroundMap
    faces: FaceSet
    frames: FaceFrames
    centres: np.ndarray
    cull_m: np.ndarray
    light_axis: tuple[tuple[int, str], ...]


_MATERIALS: MaterialSet | None = None
_TOWNS: dict[tuple[int, str, int], TownAssets] = {}
_RIGS: dict[tuple[int, int], tuple[CameraRenderer, ...]] = {}


def materials() -> MaterialSet:
    global _MATERIALS
    if _MATERIALS is None:
        _MATERIALS = build_materials()
    return _MATERIALS


def town_assets(seed: int, location: str, grid: int) -> TownAssets:
    """The town named `location` of dataset `seed` (built once per process)."""
    key = (seed, location, grid)
    if key not in _TOWNS:
        if location not in LOCATIONS:
            raise ValueError(f"unknown location {location!r}; use one of {LOCATIONS}")
        rng = np.random.default_rng([seed, LOCATIONS.index(location), 1])
        town = build_town(rng, location, grid=grid)
        ground = rasterise(town, np.random.default_rng([seed, LOCATIONS.index(location), 2]))
        faces = static_faces(town, materials())
        frames = face_frames(faces, materials())
        centres = faces.verts[:, :, :2].mean(axis=1)
        axes = tuple((head.node, head.axis) for head in town.lights)
        cull = np.where(
            faces.cls == CLASS_ID["building"],
            230.0,
            np.where(faces.cls == CLASS_ID["traffic_light"], 160.0, 120.0),
        )
        _TOWNS[key] = TownAssets(town, ground, faces, frames, centres, cull, axes)
    return _TOWNS[key]


def renderers(width: int, height: int) -> tuple[CameraRenderer, ...]:
    """The six cameras' renderers for an image size (built once per process)."""
    if (width, height) not in _RIGS:
        _RIGS[(width, height)] = tuple(CameraRenderer(calibration=c) for c in rig(width, height))
    return _RIGS[(width, height)]


def light_material_ids() -> np.ndarray:
    return light_materials(materials())
