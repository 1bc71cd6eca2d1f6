"""The synthetic road graph: a jittered grid of intersections joined by straight and curved roads.

Right-hand traffic. Every row of the grid is one road with 1 or 2 lanes per direction, every column
another; an intersection is the rectangle where a row meets a column, so its legs fit it exactly.
Roads leave intersections straight (for crossings and stop lines), then follow a smooth Hermite
curve, sometimes with a bulge that makes a real bend. Lanes through intersections are connectors
(left, straight, right; no U-turns). The geometry is procedural: nothing here is a real city.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from shapely.geometry import Point, Polygon
from shapely.geometry import box as shapely_box
from shapely.ops import unary_union

from fastdrive_ros.data.synth.geometry import Polyline, concat, hermite, resample, wrap_angle

LANE_WIDTH = 3.5
CORNER_RADIUS = 6.0  # kerb radius at intersection corners; turns sweep round it
STUB_M = 9.0  # straight road ends next to each intersection (crossings, stop lines)
CROSSWALK = (0.5, 3.5)  # crossing band, metres from the intersection box along each leg
STOP_LINE_BACK = 4.5  # stop line, metres from the intersection box
ZEBRA_WIDTH = 4.0

Axis = Literal["EW", "NS"]
Turn = Literal["left", "straight", "right"]
LEG_DIRECTIONS = {"E": (1.0, 0.0), "W": (-1.0, 0.0), "N": (0.0, 1.0), "S": (0.0, -1.0)}


@dataclass(frozen=True)
class Node:
    """An intersection: centre, half sizes of its box and of the crossing roads, legs.

    The box is the roads' overlap grown by CORNER_RADIUS on each side; `legs` maps a direction
    letter (E, W, N, S) to the edge leaving that side.
    """

    id: int
    center: np.ndarray
    road_half: tuple[float, float]  # half width of the column road (x) and of the row road (y)
    legs: dict[str, int] = field(default_factory=dict)

    @property
    def half(self) -> tuple[float, float]:
        return (self.road_half[0] + CORNER_RADIUS, self.road_half[1] + CORNER_RADIUS)

    @property
    def signalised(self) -> bool:
        return len(self.legs) >= 3

    def box(self) -> np.ndarray:
        """(4, 2) corners, counter-clockwise."""
        (cx, cy), (hx, hy) = self.center, self.half
        return np.array(
            [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]]
        )

    def drivable(self) -> Polygon:
        """Carriageway inside the box: the crossing, the arms of existing legs, round corners."""
        (cx, cy), (rx, ry), (hx, hy) = self.center, self.road_half, self.half
        parts = [shapely_box(cx - rx, cy - ry, cx + rx, cy + ry)]
        arms = {
            "E": (rx, -ry, hx, ry),
            "W": (-hx, -ry, -rx, ry),
            "N": (-rx, ry, rx, hy),
            "S": (-rx, -hy, rx, -ry),
        }
        for leg, (x0, y0, x1, y1) in arms.items():
            if leg in self.legs:
                parts.append(shapely_box(cx + x0, cy + y0, cx + x1, cy + y1))
        for (la, lb), (sx, sy) in {
            ("E", "N"): (1, 1),
            ("N", "W"): (-1, 1),
            ("W", "S"): (-1, -1),
            ("S", "E"): (1, -1),
        }.items():
            if la in self.legs and lb in self.legs:
                xa, xb = sorted((cx + sx * rx, cx + sx * hx))
                ya, yb = sorted((cy + sy * ry, cy + sy * hy))
                square = shapely_box(xa, ya, xb, yb)
                kerb = Point(cx + sx * hx, cy + sy * hy).buffer(CORNER_RADIUS, 32)
                parts.append(square.difference(kerb))
        return unary_union(parts)


@dataclass(frozen=True)
class Edge:
    """A two-way road from node a to node b; `centre` runs a -> b between the two boxes."""

    id: int
    a: int
    b: int
    axis: Axis
    centre: Polyline
    lanes_per_dir: int
    speed_limit: float  # m/s
    bulge: float  # signed fraction of the largest bend (0 = no bend)
    zebra_s: float | None  # arc length of a mid-block zebra crossing centre, if any

    @property
    def half_width(self) -> float:
        return self.lanes_per_dir * LANE_WIDTH

    def directed(self, direction: int) -> Polyline:
        return self.centre if direction > 0 else self.centre.reversed()


@dataclass(frozen=True)
class Lane:
    """One lane of an edge in one direction; k = 0 is next to the centre line."""

    id: int
    edge: int
    direction: int
    k: int
    centre: Polyline
    from_node: int
    to_node: int

    @property
    def offset(self) -> float:
        """Lateral offset of the lane centre from the directed road centre (left positive)."""
        return -(self.k + 0.5) * LANE_WIDTH


@dataclass(frozen=True)
class Connector:
    """A lane through an intersection from one lane's end to another lane's start."""

    id: int
    node: int
    from_lane: int
    to_lane: int
    turn: Turn
    centre: Polyline


class RoadNetwork:
    """Nodes, edges, lanes and connectors of one town, with the lookups routing needs."""

    def __init__(self, *, nodes: list[Node], edges: list[Edge]) -> None:
        self.nodes = nodes
        self.edges = edges
        self.lanes: list[Lane] = []
        for e in edges:
            for direction in (1, -1):
                base = e.directed(direction)
                for k in range(e.lanes_per_dir):
                    a, b = (e.a, e.b) if direction > 0 else (e.b, e.a)
                    centre = base.offset(-(k + 0.5) * LANE_WIDTH)
                    self.lanes.append(Lane(len(self.lanes), e.id, direction, k, centre, a, b))
        self._lane_index = {(ln.edge, ln.direction, ln.k): ln.id for ln in self.lanes}
        self.connectors: list[Connector] = []
        for node in nodes:
            self._connect(node)
        self.out_connectors: dict[int, list[int]] = {ln.id: [] for ln in self.lanes}
        self.in_connectors: dict[int, list[int]] = {ln.id: [] for ln in self.lanes}
        for c in self.connectors:
            self.out_connectors[c.from_lane].append(c.id)
            self.in_connectors[c.to_lane].append(c.id)

    def lane(self, edge: int, direction: int, k: int) -> Lane:
        return self.lanes[self._lane_index[(edge, direction, k)]]

    def lanes_of(self, edge: int, direction: int) -> list[Lane]:
        return [self.lane(edge, direction, k) for k in range(self.edges[edge].lanes_per_dir)]

    def direction_from(self, edge: int, node: int) -> int:
        """+1 when travelling along `edge` away from `node` follows its centre's direction."""
        return 1 if self.edges[edge].a == node else -1

    def _connect(self, node: Node) -> None:
        for e_in in node.legs.values():
            d_in = -self.direction_from(e_in, node.id)  # arriving direction on e_in
            for e_out in node.legs.values():
                if e_out == e_in:
                    continue
                d_out = self.direction_from(e_out, node.id)
                ins, outs = self.lanes_of(e_in, d_in), self.lanes_of(e_out, d_out)
                h_in = ins[0].centre.heading[-1]
                h_out = outs[0].centre.heading[0]
                delta = float(wrap_angle(h_out - h_in))
                turn: Turn = "straight" if abs(delta) < 0.6 else ("left" if delta > 0 else "right")
                if turn == "left":
                    pairs = [(ins[0], outs[0])]
                elif turn == "right":
                    pairs = [(ins[-1], outs[-1])]
                else:
                    pairs = [(ln, outs[min(ln.k, len(outs) - 1)]) for ln in ins]
                for lin, lout in pairs:
                    p0, p1 = lin.centre.xy[-1], lout.centre.xy[0]
                    chord = float(np.linalg.norm(p1 - p0))
                    mag = chord * (1.0 if turn == "straight" else 1.17)
                    t0 = mag * np.array([np.cos(h_in), np.sin(h_in)])
                    t1 = mag * np.array([np.cos(h_out), np.sin(h_out)])
                    pts = resample(hermite(p0, t0, p1, t1, 48))
                    self.connectors.append(
                        Connector(
                            len(self.connectors),
                            node.id,
                            lin.id,
                            lout.id,
                            turn,
                            Polyline(points=pts),
                        )
                    )


def _edge_centre(p0: np.ndarray, p1: np.ndarray, axis: Axis, bulge: float) -> Polyline:
    """Straight stubs at both ends, a Hermite curve plus a C2 bulge b * 64 u^3 (1 - u)^3 between.

    `bulge` is a fraction of the largest bulge whose curvature stays below 1/40 m^-1.
    """
    along = np.array([1.0, 0.0]) if axis == "EW" else np.array([0.0, 1.0])
    side = np.array([-along[1], along[0]])
    q0, q1 = p0 + along * STUB_M, p1 - along * STUB_M
    span = float((q1 - q0) @ along)
    mid = hermite(q0, along * span, q1, along * span, 160)
    u = np.linspace(0.0, 1.0, len(mid))[:, None]
    amplitude = bulge * min(span**2 / 960.0, 22.0)
    mid = mid + side * amplitude * 64.0 * u**3 * (1.0 - u) ** 3
    stub0 = np.linspace(p0, q0, 10)
    stub1 = np.linspace(q1, p1, 10)
    return concat([Polyline(points=resample(part)) for part in (stub0, mid, stub1)])


def build_network(
    rng: np.random.Generator, *, nx: int = 5, ny: int = 5, margin: float = 80.0
) -> tuple[RoadNetwork, tuple[float, float]]:
    """A random town road network and its canvas size (width, height) in metres.

    All coordinates are positive (nuScenes map convention: origin at the south-west corner).
    """
    if nx < 2 or ny < 2:
        raise ValueError("a town needs at least 2x2 intersections")
    xs = margin + np.concatenate([[0.0], np.cumsum(rng.uniform(100.0, 140.0, nx - 1))])
    ys = margin + np.concatenate([[0.0], np.cumsum(rng.uniform(100.0, 140.0, ny - 1))])
    col_lanes = rng.choice([1, 2], size=nx, p=[0.55, 0.45])
    row_lanes = rng.choice([1, 2], size=ny, p=[0.55, 0.45])
    grid_id = {(i, j): j * nx + i for j in range(ny) for i in range(nx)}
    centers = {
        key: np.array([xs[key[0]], ys[key[1]]]) + rng.uniform(-9.0, 9.0, 2) for key in grid_id
    }

    # Candidate edges, then drop some while every node keeps degree >= 2 and the graph connected.
    candidates = [((i, j), (i + 1, j), "EW") for j in range(ny) for i in range(nx - 1)]
    candidates += [((i, j), (i, j + 1), "NS") for i in range(nx) for j in range(ny - 1)]
    kept = list(candidates)
    for idx in rng.permutation(len(candidates)):
        if rng.random() > 0.18:
            continue
        trial = [c for c in kept if c != candidates[idx]]
        if _valid_grid(trial, grid_id):
            kept = trial

    nodes = [
        Node(
            grid_id[key],
            centers[key],
            (float(col_lanes[key[0]] * LANE_WIDTH), float(row_lanes[key[1]] * LANE_WIDTH)),
        )
        for key in sorted(grid_id, key=grid_id.get)
    ]
    edges: list[Edge] = []
    for ka, kb, axis in kept:
        na, nb = nodes[grid_id[ka]], nodes[grid_id[kb]]
        lanes = int(row_lanes[ka[1]] if axis == "EW" else col_lanes[ka[0]])
        if axis == "EW":
            p0, p1 = na.center + [na.half[0], 0.0], nb.center - [nb.half[0], 0.0]
        else:
            p0, p1 = na.center + [0.0, na.half[1]], nb.center - [0.0, nb.half[1]]
        bulge = 0.0 if rng.random() < 0.55 else float(rng.choice([-1, 1]) * rng.uniform(0.5, 1))
        centre = _edge_centre(p0, p1, axis, bulge)
        limit = 50.0 if lanes == 2 else float(rng.choice([30.0, 40.0]))
        zebra = None
        if bulge == 0.0 and centre.length > 70.0 and rng.random() < 0.6:
            zebra = float(centre.length / 2 + rng.uniform(-12.0, 12.0))
        edge = Edge(len(edges), na.id, nb.id, axis, centre, lanes, limit / 3.6, bulge, zebra)
        edges.append(edge)
        na.legs["E" if axis == "EW" else "N"] = edge.id
        nb.legs["W" if axis == "EW" else "S"] = edge.id
    width = float(xs[-1] + margin)
    height = float(ys[-1] + margin)
    return RoadNetwork(nodes=nodes, edges=edges), (width, height)


def _valid_grid(edges: list, grid_id: dict) -> bool:
    degree = dict.fromkeys(grid_id, 0)
    adjacency: dict = {key: [] for key in grid_id}
    for a, b, _ in edges:
        degree[a] += 1
        degree[b] += 1
        adjacency[a].append(b)
        adjacency[b].append(a)
    if min(degree.values()) < 2:
        return False
    start = next(iter(grid_id))
    seen, stack = {start}, [start]
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == len(grid_id)
