"""Agent kinds (nuScenes categories, sizes, classes) and their local-frame meshes.

Local frame: x forward, y left, z up, origin at the centre of the box footprint on the ground, so
an annotation box (nuScenes wlh, centre at half height) encloses the mesh exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.meshes import Prism, box_corners
from fastdrive_ros.data.synth.textures import MaterialSet

# kind -> (nuScenes category, class name)
KINDS: dict[str, tuple[str, str]] = {
    "car": ("vehicle.car", "vehicle"),
    "truck": ("vehicle.truck", "vehicle"),
    "bus": ("vehicle.bus.rigid", "vehicle"),
    "pedestrian": ("human.pedestrian.adult", "human"),
    "child": ("human.pedestrian.child", "human"),
    "cyclist": ("vehicle.bicycle", "cyclist"),
    "barrier": ("movable_object.barrier", "barrier"),
    "cone": ("movable_object.trafficcone", "traffic_cone"),
}
VEHICLES = ("car", "truck", "bus")
HUMANS = ("pedestrian", "child")
PAINTS = [
    (0.85, 0.12, 0.1),
    (0.12, 0.2, 0.6),
    (0.9, 0.9, 0.9),
    (0.15, 0.15, 0.16),
    (0.55, 0.56, 0.6),
    (0.7, 0.7, 0.74),
    (0.1, 0.35, 0.2),
    (0.85, 0.75, 0.2),
    (0.5, 0.1, 0.12),
    (0.3, 0.45, 0.7),
]


@dataclass(frozen=True)
class AgentSpec:
    """One agent: kind, nuScenes size (width, length, height), paint tint and mesh variant."""

    kind: str
    size: tuple[float, float, float]
    tint: tuple[float, float, float]
    variant: int

    @property
    def category(self) -> str:
        return KINDS[self.kind][0]

    @property
    def cls(self) -> int:
        return CLASS_ID[KINDS[self.kind][1]]

    @property
    def width(self) -> float:
        return self.size[0]

    @property
    def length(self) -> float:
        return self.size[1]


def random_spec(rng: np.random.Generator, kind: str) -> AgentSpec:
    """Plausible size and look for a kind (sizes from nuScenes' typical boxes)."""
    paint = PAINTS[int(rng.integers(len(PAINTS)))]
    if kind == "car":
        size = (rng.uniform(1.75, 2.0), rng.uniform(4.1, 4.9), rng.uniform(1.45, 1.75))
    elif kind == "truck":
        size = (rng.uniform(2.3, 2.55), rng.uniform(6.5, 9.5), rng.uniform(2.8, 3.4))
    elif kind == "bus":
        size = (2.55, rng.uniform(10.5, 12.0), rng.uniform(3.1, 3.4))
    elif kind == "pedestrian":
        size = (rng.uniform(0.55, 0.75), rng.uniform(0.5, 0.75), rng.uniform(1.6, 1.9))
    elif kind == "child":
        size = (rng.uniform(0.45, 0.55), rng.uniform(0.4, 0.5), rng.uniform(1.1, 1.35))
    elif kind == "cyclist":
        size = (0.65, rng.uniform(1.7, 1.85), rng.uniform(1.7, 1.85))
    elif kind == "barrier":
        size = (rng.uniform(0.4, 0.6), rng.uniform(1.8, 2.4), rng.uniform(0.9, 1.1))
    elif kind == "cone":
        size = (0.4, 0.4, rng.uniform(0.6, 0.8))
    else:
        raise ValueError(f"unknown agent kind {kind!r}; known: {sorted(KINDS)}")
    width, length, height = (float(v) for v in size)
    return AgentSpec(kind, (width, length, height), paint, int(rng.integers(0, 1 << 16)))


def agent_prisms(spec: AgentSpec, m: MaterialSet) -> list[Prism]:
    """Local-frame prisms of one agent."""
    w, length, h = spec.size
    cls, tint, v = spec.cls, spec.tint, spec.variant
    if spec.kind == "car":
        body = 0.55 * h
        return [
            Prism(
                box_corners(length, w),
                0.0,
                body,
                (m["car_front"], m["car_side"], m["car_back"], m["car_side"]),
                m["paint"],
                None,
                cls,
                tint,
            ),
            Prism(
                box_corners(length * 0.56, w * 0.9, -0.1 * length),
                body,
                h,
                (m["windscreen"], m["cabin_side"], m["windscreen"], m["cabin_side"]),
                m["paint"],
                None,
                cls,
                tint,
                taper=0.85,
            ),
        ]
    if spec.kind == "truck":
        cab = min(2.3, length * 0.3)
        box_len = length - cab - 0.2
        cx = -length / 2 + box_len / 2
        white = (0.95, 0.95, 0.95)
        return [
            Prism(
                box_corners(cab, w, length / 2 - cab / 2),
                0.0,
                0.8 * h,
                (m["car_front"], m["cabin_side"], m["paint"], m["cabin_side"]),
                m["paint"],
                None,
                cls,
                tint,
            ),
            Prism(
                box_corners(box_len, w * 0.9, cx),
                0.0,
                1.0,
                (m["dark_metal"], m["truck_side"], m["dark_metal"], m["truck_side"]),
                m["dark_metal"],
                None,
                cls,
            ),
            Prism(
                box_corners(box_len, w, cx),
                1.0,
                h,
                (m["paint"], m["cargo"], m["paint"], m["cargo"]),
                m["paint"],
                m["paint"],
                cls,
                white,
            ),
        ]
    if spec.kind == "bus":
        return [
            Prism(
                box_corners(length, w),
                0.0,
                h,
                (m["car_front"], m["bus_side"], m["car_back"], m["bus_side"]),
                m["paint"],
                None,
                cls,
                tint,
            )
        ]
    if spec.kind in HUMANS:
        shirt = m[f"shirt{v % 6}"]
        trousers = m[f"trousers{(v // 6) % 3}"]
        lw, ll = w * 0.55, length * 0.45
        return [
            Prism(box_corners(ll, lw), 0.0, 0.47 * h, (trousers,) * 4, trousers, None, cls),
            Prism(
                box_corners(ll * 1.15, w * 0.75),
                0.47 * h,
                0.84 * h,
                (shirt,) * 4,
                shirt,
                shirt,
                cls,
            ),
            Prism(
                box_corners(min(0.22, ll), 0.19),
                0.86 * h,
                h,
                (m["skin"],) * 4,
                m["hair"],
                m["skin"],
                cls,
            ),
        ]
    if spec.kind == "cyclist":
        shirt = m[f"shirt{v % 6}"]
        return [
            Prism(
                box_corners(length, 0.12),
                0.0,
                1.0,
                (m["dark_metal"], m["bicycle"], m["dark_metal"], m["bicycle"]),
                m["dark_metal"],
                None,
                cls,
                tint,
            ),
            Prism(
                box_corners(0.3, 0.36, -0.15),
                0.55,
                1.05,
                (m["trousers1"],) * 4,
                m["trousers1"],
                m["trousers1"],
                cls,
            ),
            Prism(box_corners(0.34, 0.44, -0.08), 1.05, h - 0.24, (shirt,) * 4, shirt, shirt, cls),
            Prism(
                box_corners(0.2, 0.18, -0.02),
                h - 0.22,
                h,
                (m["skin"],) * 4,
                m["hair"],
                m["skin"],
                cls,
            ),
        ]
    if spec.kind == "barrier":
        return [
            Prism(box_corners(length, w), 0.0, h, (m["barrier"],) * 4, m["barrier"], None, cls)
        ]
    if spec.kind == "cone":
        return [
            Prism(
                box_corners(length, w), 0.0, h, (m["cone"],) * 4, m["cone"], None, cls, taper=0.22
            )
        ]
    raise ValueError(f"unknown agent kind {spec.kind!r}")
