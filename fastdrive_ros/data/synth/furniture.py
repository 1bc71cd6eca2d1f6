"""Quads of everything static in a town: buildings, trees, bushes, lamps, signs, traffic lights.

Poles are class `pole` (background); sign plates `traffic_sign` and signal heads `traffic_light`
(foreground in nuScenes-FG). The front face of each signal head takes its material from the head's
light slot (= LightHead.id) at render time, so its lit lamp follows the signal plan.
"""

from __future__ import annotations

import numpy as np

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.meshes import FaceSet, Prism, box_corners, place, prisms_to_faces
from fastdrive_ros.data.synth.textures import MaterialSet
from fastdrive_ros.data.synth.town import LightHead, Prop, Sign, Town


def _building(p: Prop, m: MaterialSet) -> list[Prism]:
    length, width, height = p.size
    foot = place(box_corners(length, width), *p.center, p.yaw)
    wall = m[f"facade{p.variant}"]
    tone = 0.85 + 0.05 * (p.variant % 4)
    return [
        Prism(
            foot,
            0.0,
            height,
            (wall,) * 4,
            m["roof"],
            None,
            CLASS_ID["building"],
            (tone, tone, tone),
        )
    ]


def _tree(p: Prop, m: MaterialSet) -> list[Prism]:
    crown, _, height = p.size
    x, y = p.center
    trunk_h = height * 0.38
    leaves = m[f"foliage{p.variant}"]
    veg = CLASS_ID["vegetation"]
    return [
        Prism(
            place(box_corners(0.32, 0.32), x, y, p.yaw),
            0.0,
            trunk_h + 0.4,
            (m["bark"],) * 4,
            None,
            None,
            veg,
        ),
        Prism(
            place(box_corners(crown, crown), x, y, p.yaw),
            trunk_h,
            height,
            (leaves,) * 4,
            leaves,
            leaves,
            veg,
            taper=0.3 + 0.1 * p.variant,
        ),
    ]


def _bush(p: Prop, m: MaterialSet) -> list[Prism]:
    length, width, height = p.size
    return [
        Prism(
            place(box_corners(length, width), *p.center, p.yaw),
            0.0,
            height,
            (m["bush"],) * 4,
            m["bush"],
            None,
            CLASS_ID["vegetation"],
            taper=0.8,
        )
    ]


def _lamp(p: Prop, m: MaterialSet) -> list[Prism]:
    x, y = p.center
    pole = CLASS_ID["pole"]
    direction = np.array([np.cos(p.yaw), np.sin(p.yaw)])
    arm_c = np.array([x, y]) + direction * 1.1
    head_c = np.array([x, y]) + direction * 2.1
    return [
        Prism(
            place(box_corners(0.18, 0.18), x, y, p.yaw),
            0.0,
            7.5,
            (m["metal"],) * 4,
            None,
            None,
            pole,
        ),
        Prism(
            place(box_corners(2.2, 0.1), *arm_c, p.yaw),
            7.3,
            7.42,
            (m["metal"],) * 4,
            m["metal"],
            m["metal"],
            pole,
        ),
        Prism(
            place(box_corners(0.7, 0.3), *head_c, p.yaw),
            7.15,
            7.35,
            (m["metal"],) * 4,
            m["metal"],
            m["paint"],
            pole,
        ),
    ]


def _sign(sign: Sign, m: MaterialSet) -> list[Prism]:
    x, y, z = sign.position
    face = m[f"sign_{sign.kind}"]
    back = m["sign_back"]
    plate = place(box_corners(0.05, 0.7), x, y, sign.yaw)
    pole_xy = np.array([x, y]) - 0.06 * np.array([np.cos(sign.yaw), np.sin(sign.yaw)])
    return [
        Prism(
            place(box_corners(0.07, 0.07), *pole_xy, sign.yaw),
            0.0,
            z + 0.3,
            (m["metal"],) * 4,
            None,
            None,
            CLASS_ID["pole"],
        ),
        Prism(
            plate,
            z - 0.35,
            z + 0.35,
            (face, back, back, back),
            back,
            back,
            CLASS_ID["traffic_sign"],
        ),
    ]


def _light(head: LightHead, m: MaterialSet) -> list[Prism]:
    x, y, z = head.position
    pole = CLASS_ID["pole"]
    housing = m["housing"]
    out = [
        Prism(
            place(box_corners(0.3, 0.38), x, y, head.yaw),
            z - 0.5,
            z + 0.5,
            (m["light_red"], housing, housing, housing),
            housing,
            housing,
            CLASS_ID["traffic_light"],
            light=head.id,
        )
    ]
    px, py = head.pole
    if head.arm_to is None:
        back = np.array([x, y]) - 0.2 * np.array([np.cos(head.yaw), np.sin(head.yaw)])
        out.append(
            Prism(
                place(box_corners(0.12, 0.12), *back, head.yaw),
                0.0,
                z - 0.5,
                (m["dark_metal"],) * 4,
                m["dark_metal"],
                None,
                pole,
            )
        )
        return out
    out.append(
        Prism(
            place(box_corners(0.26, 0.26), px, py, head.yaw),
            0.0,
            z + 0.9,
            (m["dark_metal"],) * 4,
            m["dark_metal"],
            None,
            pole,
        )
    )
    ax, ay = head.arm_to
    span = np.array([ax - px, ay - py])
    length = float(np.linalg.norm(span))
    mid = (np.array([px, py]) + np.array([ax, ay])) / 2
    yaw = float(np.arctan2(span[1], span[0]))
    out.append(
        Prism(
            place(box_corners(length, 0.14), *mid, yaw),
            z + 0.6,
            z + 0.78,
            (m["dark_metal"],) * 4,
            m["dark_metal"],
            m["dark_metal"],
            pole,
        )
    )
    out.append(
        Prism(
            place(box_corners(0.06, 0.06), x, y, yaw),
            z + 0.5,
            z + 0.6,
            (m["dark_metal"],) * 4,
            m["dark_metal"],
            m["dark_metal"],
            pole,
        )
    )
    return out


_PROPS = {"building": _building, "tree": _tree, "bush": _bush, "lamp": _lamp}


def static_faces(town: Town, materials: MaterialSet) -> FaceSet:
    """All static quads of the town in world coordinates (owner -1)."""
    prisms: list[Prism] = []
    for prop in town.props:
        prisms += _PROPS[prop.kind](prop, materials)
    for sign in town.signs:
        prisms += _sign(sign, materials)
    for head in town.lights:
        prisms += _light(head, materials)
    return prisms_to_faces(prisms)


def light_materials(materials: MaterialSet) -> np.ndarray:
    """Material id per signal state index (0 red, 1 yellow, 2 green)."""
    return np.array(
        [materials["light_red"], materials["light_yellow"], materials["light_green"]], np.int32
    )
