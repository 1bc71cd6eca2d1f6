"""A procedural town around the road graph.

Crossings, stop lines, sidewalks, traffic lights, signs, street lamps, trees, buildings and car
parks.

Geometry is synthetic. The four nuScenes location names are only *names* for up to four towns
(the devkit accepts no others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box
from shapely.ops import unary_union

from fastdrive_ros.data.synth.geometry import Polyline
from fastdrive_ros.data.synth.roads import (
    CROSSWALK,
    STOP_LINE_BACK,
    ZEBRA_WIDTH,
    Axis,
    Edge,
    RoadNetwork,
    build_network,
)

SIDEWALK = 3.0
STOP_LINE_DEPTH = 0.4  # painted stop line, metres along the road
LOCATIONS = (
    "singapore-onenorth",
    "boston-seaport",
    "singapore-queenstown",
    "singapore-hollandvillage",
)


def strip(line: Polyline, s0: float, s1: float, d0: float, d1: float) -> np.ndarray:
    """(N, 2) ring of the band s in [s0, s1], lateral offset in [d0, d1] (left positive)."""
    s0, s1 = max(0.0, s0), min(line.length, s1)
    inner = line.s[(line.s > s0) & (line.s < s1)]
    s = np.concatenate([[s0], inner, [s1]])
    xy, heading = line.sample(s)
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    return np.vstack([xy + normal * d0, (xy + normal * d1)[::-1]])


@dataclass(frozen=True)
class Crossing:
    """A pedestrian crossing across an edge at arc length s (band of `width` along the road)."""

    id: int
    edge: int
    s: float
    width: float
    kind: str  # "leg" (at a signalised intersection) or "zebra" (mid-block)
    node: int | None
    polygon: np.ndarray
    walk_axis: Axis | None  # traffic axis whose green phase lets pedestrians walk (legs only)


@dataclass(frozen=True)
class StopLine:
    """Where traffic in `direction` along `edge` stops (band ending at arc length s_stop)."""

    id: int
    edge: int
    direction: int
    s_stop: float
    kind: str  # "TRAFFIC_LIGHT" or "PED_CROSSING"
    node: int | None
    crossing: int | None
    polygon: np.ndarray


@dataclass(frozen=True)
class LightHead:
    """A signal head for the traffic arriving along `edge` in `direction` at `node`.

    Attributes:
        position: (3,) centre of the head; yaw: heading its lamps face (towards the traffic).
        pole: (2,) pole foot; arm_to: (2,) end of the mast arm for overhead heads, else None.
    """

    id: int
    node: int
    edge: int
    direction: int
    axis: Axis
    position: np.ndarray
    yaw: float
    pole: np.ndarray
    arm_to: np.ndarray | None


@dataclass(frozen=True)
class Sign:
    """A sign plate on a pole: centre (x, y, z), facing yaw, kind (speed30, ped, ...)."""

    position: np.ndarray
    yaw: float
    kind: str


@dataclass(frozen=True)
class Prop:
    """Background clutter: building, tree, bush or lamp (footprint centre, yaw, l x w x h)."""

    kind: str
    center: np.ndarray
    yaw: float
    size: tuple[float, float, float]
    variant: int


@dataclass(frozen=True)
class Carpark:
    """A parking lot beside an edge: polygon (lot + driveway) and bay poses (x, y, yaw)."""

    edge: int
    polygon: Polygon
    slots: np.ndarray


@dataclass
class Town:
    """One synthetic town; `name` is a nuScenes location name used as a label only."""

    name: str
    network: RoadNetwork
    canvas: tuple[float, float]
    crossings: list[Crossing] = field(default_factory=list)
    stop_lines: list[StopLine] = field(default_factory=list)
    lights: list[LightHead] = field(default_factory=list)
    signs: list[Sign] = field(default_factory=list)
    props: list[Prop] = field(default_factory=list)
    carparks: list[Carpark] = field(default_factory=list)
    walkways: list[Polygon] = field(default_factory=list)

    def road_polygon(self, edge: int) -> Polygon:
        e = self.network.edges[edge]
        return Polygon(strip(e.centre, 0.0, e.centre.length, -e.half_width, e.half_width))


def build_town(rng: np.random.Generator, name: str, *, grid: int = 5) -> Town:
    """Road network plus all street furniture and clutter, from `rng` only (deterministic)."""
    network, canvas = build_network(rng, nx=grid, ny=grid)
    town = Town(name=name, network=network, canvas=canvas)
    _crossings_and_stop_lines(town)
    _lights(town)
    _walkways(town)
    styles = {
        (e.id, side): rng.choice(["urban", "park", "carpark"], p=[0.68, 0.2, 0.12])
        for e in network.edges
        for side in (1, -1)
    }
    _carparks(town, rng, styles)
    _signs_and_lamps(town, rng)
    from fastdrive_ros.data.synth.clutter import place_clutter  # needs this module's types

    place_clutter(town, rng, styles)
    return town


def _crossings_and_stop_lines(town: Town) -> None:
    net = town.network
    for node in net.nodes:
        if not node.signalised:
            continue
        for edge_id in node.legs.values():
            e = net.edges[edge_id]
            at_start = e.a == node.id
            lo, hi = CROSSWALK
            s0, s1 = (lo, hi) if at_start else (e.centre.length - hi, e.centre.length - lo)
            poly = strip(e.centre, s0, s1, -e.half_width, e.half_width)
            walk: Axis = "NS" if e.axis == "EW" else "EW"
            cid = len(town.crossings)
            town.crossings.append(
                Crossing(cid, e.id, (s0 + s1) / 2, hi - lo, "leg", node.id, poly, walk)
            )
            direction = -1 if at_start else 1  # traffic arriving at this node
            s_stop = e.centre.length - STOP_LINE_BACK if direction > 0 else STOP_LINE_BACK
            _add_stop_line(town, e, direction, s_stop, "TRAFFIC_LIGHT", node.id, cid)
    for e in net.edges:
        if e.zebra_s is None:
            continue
        half = ZEBRA_WIDTH / 2
        poly = strip(e.centre, e.zebra_s - half, e.zebra_s + half, -e.half_width, e.half_width)
        cid = len(town.crossings)
        town.crossings.append(
            Crossing(cid, e.id, e.zebra_s, ZEBRA_WIDTH, "zebra", None, poly, None)
        )
        for direction in (1, -1):
            s_stop = e.zebra_s - direction * (half + 1.5)
            _add_stop_line(town, e, direction, s_stop, "PED_CROSSING", None, cid)


def _add_stop_line(
    town: Town, e: Edge, direction: int, s_stop: float, kind: str, node: int | None, crossing: int
) -> None:
    """A STOP_LINE_DEPTH band from s_stop across the lane of traffic going `direction`."""
    if direction > 0:  # the lane right of the centre line
        poly = strip(e.centre, s_stop, s_stop + STOP_LINE_DEPTH, -e.half_width, 0.0)
    else:
        poly = strip(e.centre, s_stop - STOP_LINE_DEPTH, s_stop, 0.0, e.half_width)
    stop = StopLine(len(town.stop_lines), e.id, direction, s_stop, kind, node, crossing, poly)
    town.stop_lines.append(stop)


def _lights(town: Town) -> None:
    net = town.network
    for node in net.nodes:
        if not node.signalised:
            continue
        for edge_id in node.legs.values():
            e = net.edges[edge_id]
            direction = 1 if e.b == node.id else -1
            line = e.directed(direction)
            u = np.array([np.cos(line.heading[-1]), np.sin(line.heading[-1])])
            r = np.array([u[1], -u[0]])
            h_u = node.half[0] if e.axis == "EW" else node.half[1]
            edge_pt = line.xy[-1]
            face = float(np.arctan2(-u[1], -u[0]))
            hw = e.half_width
            near = edge_pt - u * (STOP_LINE_BACK + 0.6) + r * (hw + 0.7)
            town.lights.append(
                LightHead(
                    len(town.lights),
                    node.id,
                    e.id,
                    direction,
                    e.axis,
                    np.array([*near, 2.9]),
                    face,
                    near,
                    None,
                )
            )
            far_pole = edge_pt + u * (2 * h_u + 1.3) + r * (hw + 1.3)
            head = edge_pt + u * (2 * h_u + 1.3) + r * (hw / 2)
            town.lights.append(
                LightHead(
                    len(town.lights),
                    node.id,
                    e.id,
                    direction,
                    e.axis,
                    np.array([*head, 5.4]),
                    face,
                    far_pole,
                    edge_pt + u * (2 * h_u + 1.3) + r * 0.3,
                )
            )


def _walkways(town: Town) -> None:
    net = town.network
    for e in net.edges:
        hw = e.half_width
        for lo, hi in ((hw, hw + SIDEWALK), (-hw - SIDEWALK, -hw)):
            town.walkways.append(Polygon(strip(e.centre, 0.0, e.centre.length, lo, hi)))
    for node in net.nodes:
        drivable = node.drivable()
        (cx, cy), (hx, hy) = node.center, node.half
        outer = shapely_box(
            cx - hx - SIDEWALK, cy - hy - SIDEWALK, cx + hx + SIDEWALK, cy + hy + SIDEWALK
        )
        legs = unary_union([town.road_polygon(e) for e in node.legs.values()])
        ring = drivable.buffer(SIDEWALK, join_style=2).intersection(outer)
        ring = ring.difference(drivable).difference(legs.buffer(0.01))
        parts = getattr(ring, "geoms", [ring])
        town.walkways.extend(p for p in parts if p.area > 0.5)


def _carparks(town: Town, rng: np.random.Generator, styles: dict) -> None:
    for e in town.network.edges:
        for side in (1, -1):
            if styles[(e.id, side)] != "carpark" or e.centre.length < 60 or e.bulge != 0.0:
                styles[(e.id, side)] = (
                    "urban" if styles[(e.id, side)] == "carpark" else styles[(e.id, side)]
                )
                continue
            length = float(rng.uniform(24.0, min(42.0, e.centre.length - 36)))
            mid = e.centre.length / 2 + rng.uniform(-6, 6)
            hw = e.half_width
            near, far = hw + SIDEWALK + 0.5, hw + SIDEWALK + 0.5 + 15.0
            lo, hi = (near, far) if side > 0 else (-far, -near)
            lot = Polygon(strip(e.centre, mid - length / 2, mid + length / 2, lo, hi))
            dlo, dhi = (hw, near + 0.1) if side > 0 else (-near - 0.1, -hw)
            drive = Polygon(strip(e.centre, mid - 3.0, mid + 3.0, dlo, dhi))
            slots = []
            for s in np.arange(mid - length / 2 + 1.6, mid + length / 2 - 1.4, 2.7):
                xy, heading = e.centre.sample(s)
                normal = np.array([-np.sin(heading), np.cos(heading)])
                centre = xy + normal * side * (far - 2.8)
                slots.append([*centre, heading + side * np.pi / 2])
            town.carparks.append(Carpark(e.id, unary_union([lot, drive]), np.array(slots)))


def _signs_and_lamps(town: Town, rng: np.random.Generator) -> None:
    net = town.network
    for e in net.edges:
        hw = e.half_width
        speed = f"speed{round(e.speed_limit * 3.6)}"
        for direction in (1, -1):
            line = e.directed(direction)
            kinds = [(14.0, speed)]
            if e.zebra_s is not None:
                zs = e.zebra_s if direction > 0 else e.centre.length - e.zebra_s
                kinds.append((zs - 9.0, "ped"))
            if rng.random() < 0.5:
                kinds.append(
                    (
                        float(rng.uniform(25, max(26.0, line.length - 25))),
                        str(rng.choice(["noparking", "arrow", "warning"])),
                    )
                )
            for s, kind in kinds:
                xy, heading = line.sample(s)
                normal = np.array([-np.sin(heading), np.cos(heading)])
                pos = xy - normal * (hw + 0.6)
                town.signs.append(Sign(np.array([*pos, 2.3]), float(heading + np.pi), kind))
        for k, s in enumerate(np.arange(20.0, e.centre.length - 15.0, 34.0)):
            side = 1 if k % 2 == 0 else -1
            xy, heading = e.centre.sample(s)
            normal = np.array([-np.sin(heading), np.cos(heading)])
            town.props.append(
                Prop(
                    "lamp",
                    xy + normal * side * (hw + 0.4),
                    float(heading - side * np.pi / 2),
                    (0.2, 0.2, 7.5),
                    0,
                )
            )
