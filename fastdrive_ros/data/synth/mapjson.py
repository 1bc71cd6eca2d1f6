"""The nuScenes map expansion (v1.3 JSON) of a synthetic town, for `NuScenesMap`.

Layers: node, line, polygon, drivable_area, road_segment, road_block, lane, lane_connector,
ped_crossing, walkway, stop_line, carpark_area, road_divider, lane_divider, traffic_light,
arcline_path_3 (lane centres as chains of arcs and straights), connectivity and canvas_edge.
The town is synthetic; the file is named after a nuScenes location only because the devkit
accepts no other names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from shapely.geometry import LineString, Polygon
from shapely.ops import unary_union

from fastdrive_ros.data.synth.geometry import Polyline
from fastdrive_ros.data.synth.roads import LANE_WIDTH
from fastdrive_ros.data.synth.tables import token
from fastdrive_ros.data.synth.town import Town, strip

MAP_VERSION = "1.3"
SIMPLIFY_M = 0.05


class _Builder:
    def __init__(self, seed: int, location: str) -> None:
        self.seed, self.location = seed, location
        self.layers: dict[str, list[dict]] = {
            name: []
            for name in (
                "node",
                "line",
                "polygon",
                "drivable_area",
                "road_segment",
                "road_block",
                "lane",
                "ped_crossing",
                "walkway",
                "stop_line",
                "carpark_area",
                "road_divider",
                "lane_divider",
                "traffic_light",
                "lane_connector",
            )
        }
        self.counter = 0

    def tok(self, kind: str) -> str:
        self.counter += 1
        return token(self.seed, "map", self.location, kind, self.counter)

    def node(self, x: float, y: float) -> str:
        t = self.tok("node")
        self.layers["node"].append({"token": t, "x": round(float(x), 3), "y": round(float(y), 3)})
        return t

    def line(self, points: np.ndarray) -> str:
        t = self.tok("line")
        self.layers["line"].append({"token": t, "node_tokens": [self.node(*p) for p in points]})
        return t

    def polygon(self, poly: Polygon) -> str:
        poly = poly.simplify(SIMPLIFY_M, preserve_topology=True)
        if poly.geom_type != "Polygon":  # keep the largest part of a degenerate result
            poly = max(getattr(poly, "geoms", [poly]), key=lambda g: g.area)
        t = self.tok("polygon")
        ext = [self.node(*p) for p in np.asarray(poly.exterior.coords)[:-1]]
        holes = [
            {"node_tokens": [self.node(*p) for p in np.asarray(h.coords)[:-1]]}
            for h in poly.interiors
        ]
        self.layers["polygon"].append({"token": t, "exterior_node_tokens": ext, "holes": holes})
        return t

    def add(self, layer: str, record: dict) -> str:
        record = {"token": self.tok(layer), **record}
        self.layers[layer].append(record)
        return record["token"]


def arcline(path: Polyline, piece_m: float = 5.0) -> list[dict]:
    """Chain of nuScenes arcline paths (each one arc or one straight) along a dense path."""
    step = max(1, int(round(piece_m / max(path.length / max(len(path) - 1, 1), 1e-3))))
    idx = list(range(0, len(path) - 1, step)) + [len(path) - 1]
    out = []
    for i, j in zip(idx[:-1], idx[1:]):
        (x0, y0), h0 = path.xy[i], float(path.heading[i])
        chord = float(np.linalg.norm(path.xy[j] - path.xy[i]))
        delta = float(path.heading[j] - h0)
        start = [round(float(x0), 4), round(float(y0), 4), round(h0, 6)]
        end = [
            round(float(path.xy[j][0]), 4),
            round(float(path.xy[j][1]), 4),
            round(float(path.heading[j]), 6),
        ]
        if abs(delta) < 1e-3:
            rec = {"shape": "LSL", "radius": 999.0, "segment_length": [0.0, round(chord, 4), 0.0]}
        else:
            length = chord * (delta / 2) / np.sin(delta / 2)
            rec = {
                "shape": "LSL" if delta > 0 else "RSR",
                "radius": round(float(length / abs(delta)), 4),
                "segment_length": [round(float(length), 4), 0.0, 0.0],
            }
        out.append({"start_pose": start, "end_pose": end, **rec})
    return out


def _across(line: Polyline, s: float, lo: float, hi: float) -> np.ndarray:
    (x, y), h = line.sample(s)
    n = np.array([-np.sin(h), np.cos(h)])
    return np.array([[x, y] + n * lo, [x, y] + n * hi])


def build_map(town: Town, seed: int) -> dict:
    """The whole map-expansion JSON object."""
    b = _Builder(seed, town.name)
    net = town.network
    roads = {e.id: town.road_polygon(e.id) for e in net.edges}
    nodes = {n.id: n.drivable() for n in net.nodes}
    drivable = (
        unary_union(
            list(roads.values()) + list(nodes.values()) + [c.polygon for c in town.carparks]
        )
        .buffer(0.02)
        .buffer(-0.02)
    )
    parts = getattr(drivable, "geoms", [drivable])
    da = b.add("drivable_area", {"polygon_tokens": [b.polygon(p) for p in parts]})
    segments = {}
    for e in net.edges:
        segments[e.id] = b.add(
            "road_segment",
            {
                "polygon_token": b.polygon(roads[e.id]),
                "is_intersection": False,
                "drivable_area_token": da,
            },
        )
    for n in net.nodes:
        b.add(
            "road_segment",
            {
                "polygon_token": b.polygon(nodes[n.id]),
                "is_intersection": True,
                "drivable_area_token": da,
            },
        )
    blocks: dict[tuple[int, int], str] = {}
    lane_tok: dict[int, str] = {}
    for e in net.edges:
        hw = e.half_width
        b.add(
            "road_divider",
            {"line_token": b.line(e.centre.xy[::10]), "road_segment_token": segments[e.id]},
        )
        for d in (1, -1):
            line = e.directed(d)
            poly = Polygon(strip(line, 0.0, line.length, -hw, 0.0))
            blocks[(e.id, d)] = b.add(
                "road_block",
                {
                    "polygon_token": b.polygon(poly),
                    "from_edge_line_token": b.line(_across(line, 0.0, -hw, 0.0)),
                    "to_edge_line_token": b.line(_across(line, line.length, -hw, 0.0)),
                    "road_segment_token": segments[e.id],
                },
            )
            if e.lanes_per_dir == 2:
                mid = line.offset(-LANE_WIDTH).xy[::10]
                lt = b.line(mid)
                nodes_mid = b.layers["line"][-1]["node_tokens"]
                b.add(
                    "lane_divider",
                    {
                        "line_token": lt,
                        "lane_divider_segments": [
                            {"node_token": t, "segment_type": "SINGLE_DASHED_WHITE"}
                            for t in nodes_mid
                        ],
                    },
                )
            for lane in net.lanes_of(e.id, d):
                lo, hi = lane.offset - LANE_WIDTH / 2, lane.offset + LANE_WIDTH / 2
                left_type = "DOUBLE_SOLID_YELLOW" if lane.k == 0 else "SINGLE_DASHED_WHITE"
                right_type = (
                    "SINGLE_SOLID_WHITE"
                    if lane.k == e.lanes_per_dir - 1
                    else "SINGLE_DASHED_WHITE"
                )
                left = [b.node(*p) for p in line.offset(hi).xy[::10]]
                right = [b.node(*p) for p in line.offset(lo).xy[::10]]
                lane_tok[lane.id] = b.add(
                    "lane",
                    {
                        "polygon_token": b.polygon(Polygon(strip(line, 0.0, line.length, lo, hi))),
                        "lane_type": "CAR",
                        "from_edge_line_token": b.line(_across(line, 0.0, lo, hi)),
                        "to_edge_line_token": b.line(_across(line, line.length, lo, hi)),
                        "left_lane_divider_segments": [
                            {"node_token": t, "segment_type": left_type} for t in left
                        ],
                        "right_lane_divider_segments": [
                            {"node_token": t, "segment_type": right_type} for t in right
                        ],
                    },
                )
    conn_tok = {}
    for c in net.connectors:
        poly = LineString(c.centre.xy).buffer(LANE_WIDTH / 2, cap_style=2)
        conn_tok[c.id] = b.add("lane_connector", {"polygon_token": b.polygon(poly)})
    arcs = {lane_tok[ln.id]: arcline(ln.centre) for ln in net.lanes}
    arcs.update({conn_tok[c.id]: arcline(c.centre) for c in net.connectors})
    connectivity = {
        lane_tok[ln.id]: {
            "incoming": [conn_tok[c] for c in net.in_connectors[ln.id]],
            "outgoing": [conn_tok[c] for c in net.out_connectors[ln.id]],
        }
        for ln in net.lanes
    }
    for c in net.connectors:
        connectivity[conn_tok[c.id]] = {
            "incoming": [lane_tok[c.from_lane]],
            "outgoing": [lane_tok[c.to_lane]],
        }
    crossing_tok = {}
    for c in town.crossings:
        crossing_tok[c.id] = b.add(
            "ped_crossing",
            {
                "polygon_token": b.polygon(Polygon(c.polygon)),
                "road_segment_token": segments[c.edge],
            },
        )
    for w in town.walkways:
        b.add("walkway", {"polygon_token": b.polygon(w)})
    light_tok: dict[tuple[int, int], list[str]] = {}
    for head in town.lights:
        x, y, z = head.position
        n = np.array([-np.sin(head.yaw), np.cos(head.yaw)]) * 0.2
        pose = {
            "tx": round(float(x), 3),
            "ty": round(float(y), 3),
            "tz": round(float(z), 3),
            "rx": 0.0,
            "ry": 0.0,
            "rz": round(float(head.yaw), 5),
        }
        items = [
            {
                "color": color,
                "shape": "CIRCLE",
                "rel_pos": {"tx": 0.0, "ty": 0.0, "tz": dz, "rx": 0.0, "ry": 0.0, "rz": 0.0},
                "to_road_block_tokens": [],
            }
            for color, dz in (("RED", 0.33), ("YELLOW", 0.0), ("GREEN", -0.33))
        ]
        t = b.add(
            "traffic_light",
            {
                "line_token": b.line(np.array([[x, y] - n, [x, y] + n])),
                "traffic_light_type": "VERTICAL",
                "from_road_block_token": blocks[(head.edge, head.direction)],
                "items": items,
                "pose": pose,
            },
        )
        light_tok.setdefault((head.edge, head.direction), []).append(t)
    for s in town.stop_lines:
        lights = light_tok.get((s.edge, s.direction), []) if s.kind == "TRAFFIC_LIGHT" else []
        b.add(
            "stop_line",
            {
                "polygon_token": b.polygon(Polygon(s.polygon)),
                "stop_line_type": s.kind,
                "ped_crossing_tokens": [crossing_tok[s.crossing]]
                if s.kind == "PED_CROSSING"
                else [],
                "traffic_light_tokens": lights,
                "road_block_token": blocks[(s.edge, s.direction)],
            },
        )
    for c in town.carparks:
        _, heading = net.edges[c.edge].centre.sample(float(net.edges[c.edge].centre.length / 2))
        b.add(
            "carpark_area",
            {
                "polygon_token": b.polygon(c.polygon),
                "orientation": round(float(heading + np.pi / 2), 5),
                "road_block_token": "",
            },
        )
    out: dict = {
        "version": MAP_VERSION,
        "canvas_edge": [round(town.canvas[0], 3), round(town.canvas[1], 3)],
    }
    out.update(b.layers)
    out["arcline_path_3"] = arcs
    out["connectivity"] = connectivity
    return out


def write_map(root: Path, town: Town, seed: int) -> int:
    """Write DIR/maps/expansion/<location>.json; returns bytes written."""
    folder = root / "maps" / "expansion"
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(build_map(town, seed), separators=(",", ":"))
    (folder / f"{town.name}.json").write_text(text, encoding="utf-8")
    return len(text)
