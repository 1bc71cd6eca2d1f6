"""Everything that stands up from the ground, as textured planar quads (prisms and frusta).

A prism is a convex 4-corner footprint extruded from z0 to z1 (optionally tapered): four sides,
a top and, when raised off the ground, a bottom. Quads are stored in flat arrays so culling and
transforms run vectorised; vertices are ordered v0 top-left, v1 top-right, v2 bottom-right,
v3 bottom-left as seen from outside, so s = v0->v1 and t = v0->v3 give texture coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.synth.textures import TILE, MaterialSet


@dataclass(frozen=True)
class Prism:
    """One extruded footprint.

    Attributes:
        corners: (4, 2) footprint, counter-clockwise seen from above (local or world frame).
        z0, z1: bottom and top height, metres.
        sides: four material ids for the sides corners[i] -> corners[i+1].
        top / bottom: materials of the top and bottom faces (None = no such face: hidden ones).
        cls: semantic class id (layout.SEMANTIC_CLASSES) of every face.
        tint: (3,) RGB multiplier.
        taper: top footprint scale about the footprint centre (1 = prism).
        light: traffic-light slot whose state picks the material of side 0, or -1.
    """

    corners: np.ndarray
    z0: float
    z1: float
    sides: tuple[int, int, int, int]
    top: int | None
    bottom: int | None
    cls: int
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    taper: float = 1.0
    light: int = -1


@dataclass
class FaceSet:
    """Quads in flat arrays.

    Attributes:
        verts: (F, 4, 3) metres.
        mat: (F,) material ids; cls: (F,) class ids; tint: (F, 3) float32.
        owner: (F,) index of the agent a face belongs to (-1 = static world).
        light: (F,) traffic-light slot driving the material (-1 = none).
    """

    verts: np.ndarray
    mat: np.ndarray
    cls: np.ndarray
    tint: np.ndarray
    owner: np.ndarray
    light: np.ndarray

    def __len__(self) -> int:
        return len(self.mat)

    @staticmethod
    def empty() -> FaceSet:
        return FaceSet(
            np.zeros((0, 4, 3)),
            np.zeros(0, np.int32),
            np.zeros(0, np.uint8),
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
        )

    def take(self, index: np.ndarray) -> FaceSet:
        return FaceSet(
            self.verts[index],
            self.mat[index],
            self.cls[index],
            self.tint[index],
            self.owner[index],
            self.light[index],
        )


def concat_faces(sets: Sequence[FaceSet]) -> FaceSet:
    sets = [s for s in sets if len(s)]
    if not sets:
        return FaceSet.empty()
    return FaceSet(
        np.concatenate([s.verts for s in sets]),
        np.concatenate([s.mat for s in sets]),
        np.concatenate([s.cls for s in sets]),
        np.concatenate([s.tint for s in sets]),
        np.concatenate([s.owner for s in sets]),
        np.concatenate([s.light for s in sets]),
    )


def prisms_to_faces(prisms: Sequence[Prism], owner: Sequence[int] | int = -1) -> FaceSet:
    """Quads of the given prisms; `owner` per prism (or one value for all)."""
    owners = [owner] * len(prisms) if isinstance(owner, int) else list(owner)
    verts, mats, classes, tints, own, lights = [], [], [], [], [], []
    for prism, who in zip(prisms, owners):
        c = np.asarray(prism.corners, dtype=np.float64)
        centre = c.mean(axis=0)
        top = centre + (c - centre) * prism.taper
        z0, z1 = prism.z0, prism.z1
        for i in range(4):
            j = (i + 1) % 4
            verts.append([[*top[i], z1], [*top[j], z1], [*c[j], z0], [*c[i], z0]])
            mats.append(prism.sides[i])
            lights.append(prism.light if i == 0 else -1)
        n = 4
        if prism.top is not None:
            verts.append([[*top[0], z1], [*top[3], z1], [*top[2], z1], [*top[1], z1]])
            mats.append(prism.top)
            lights.append(-1)
            n += 1
        if prism.bottom is not None:
            verts.append([[*c[0], z0], [*c[1], z0], [*c[2], z0], [*c[3], z0]])
            mats.append(prism.bottom)
            lights.append(-1)
            n += 1
        classes += [prism.cls] * n
        tints += [prism.tint] * n
        own += [who] * n
    if not verts:
        return FaceSet.empty()
    return FaceSet(
        np.array(verts, np.float64),
        np.array(mats, np.int32),
        np.array(classes, np.uint8),
        np.array(tints, np.float32),
        np.array(own, np.int32),
        np.array(lights, np.int32),
    )


@dataclass(frozen=True)
class FaceFrames:
    """Per-face plane frames for rasterising: origin v0, unit axes, outward normal, tex scale.

    Attributes:
        origin, e_s, e_t, normal: (F, 3).
        scale: (F, 2) texture pixels per metre along s and t.
    """

    origin: np.ndarray
    e_s: np.ndarray
    e_t: np.ndarray
    normal: np.ndarray
    scale: np.ndarray


def face_frames(faces: FaceSet, materials: MaterialSet) -> FaceFrames:
    v = faces.verts
    a, b = v[:, 1] - v[:, 0], v[:, 3] - v[:, 0]
    width = np.linalg.norm(a, axis=1)
    height = np.linalg.norm(b, axis=1)
    e_s = a / np.maximum(width, 1e-9)[:, None]
    e_t = b / np.maximum(height, 1e-9)[:, None]
    normal = np.cross(e_t, e_s)
    normal /= np.maximum(np.linalg.norm(normal, axis=1), 1e-9)[:, None]
    tile_m = materials.tile_m[faces.mat]
    fit = tile_m[:, 0] <= 0
    scale = np.where(
        fit[:, None],
        TILE / np.maximum(np.stack([width, height], axis=1), 1e-6),
        TILE / np.maximum(tile_m, 1e-6),
    )
    return FaceFrames(v[:, 0].copy(), e_s, e_t, normal, scale.astype(np.float64))


def take_frames(frames: FaceFrames, index: np.ndarray) -> FaceFrames:
    return FaceFrames(
        frames.origin[index],
        frames.e_s[index],
        frames.e_t[index],
        frames.normal[index],
        frames.scale[index],
    )


def concat_frames(parts: Sequence[FaceFrames]) -> FaceFrames:
    return FaceFrames(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("origin", "e_s", "e_t", "normal", "scale")
        )
    )


def transform_faces(local: FaceSet, poses: np.ndarray) -> FaceSet:
    """World quads of agent-local quads; poses: (A, 3) x, y, yaw per owner index."""
    if not len(local):
        return local
    p = poses[local.owner]
    c, s = np.cos(p[:, 2])[:, None], np.sin(p[:, 2])[:, None]
    v = local.verts
    out = np.empty_like(v)
    out[..., 0] = c * v[..., 0] - s * v[..., 1] + p[:, 0:1]
    out[..., 1] = s * v[..., 0] + c * v[..., 1] + p[:, 1:2]
    out[..., 2] = v[..., 2]
    return FaceSet(out, local.mat, local.cls, local.tint, local.owner, local.light)


def box_corners(length: float, width: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    """(4, 2) counter-clockwise corners of an axis-aligned rectangle; side 0 faces +x."""
    hl, hw = length / 2, width / 2
    return np.array(
        [[cx + hl, cy - hw], [cx + hl, cy + hw], [cx - hl, cy + hw], [cx - hl, cy - hw]]
    )


def place(corners: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """Local footprint corners moved to a world pose."""
    c, s = np.cos(yaw), np.sin(yaw)
    return corners @ np.array([[c, s], [-s, c]]) + np.array([x, y])
