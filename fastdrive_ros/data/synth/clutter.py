"""Background clutter of a town: buildings along the streets, street trees, parks.

Nothing here is needed to drive; it is what a pruner should learn to drop. Footprints never
overlap roads, sidewalks, intersections, car parks or each other.
"""

from __future__ import annotations

import numpy as np
from shapely import STRtree
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box

from fastdrive_ros.data.synth.geometry import rect_corners
from fastdrive_ros.data.synth.town import SIDEWALK, Prop, Town, strip


class _Occupancy:
    """Footprints placed so far plus fixed keep-out areas, for overlap tests."""

    def __init__(self, fixed: list[Polygon]) -> None:
        self.tree = STRtree(fixed)
        self.cells: dict[tuple[int, int], list[Polygon]] = {}

    def free(self, poly: Polygon) -> bool:
        if len(self.tree.query(poly, predicate="intersects")):
            return False
        return not any(poly.intersects(p) for p in self._near(poly))

    def add(self, poly: Polygon) -> None:
        for key in self._keys(poly):
            self.cells.setdefault(key, []).append(poly)

    def _keys(self, poly: Polygon) -> list[tuple[int, int]]:
        x0, y0, x1, y1 = poly.bounds
        return [
            (i, j)
            for i in range(int(x0 // 40), int(x1 // 40) + 1)
            for j in range(int(y0 // 40), int(y1 // 40) + 1)
        ]

    def _near(self, poly: Polygon) -> list[Polygon]:
        out: list[Polygon] = []
        for key in self._keys(poly):
            out.extend(self.cells.get(key, ()))
        return out


def place_clutter(town: Town, rng: np.random.Generator, styles: dict) -> None:
    """Street trees, buildings (urban sides), trees and bushes (park sides), clear of roads."""
    net = town.network
    w, h = town.canvas
    keep_out = [
        Polygon(
            strip(
                e.centre,
                0,
                e.centre.length,
                -e.half_width - SIDEWALK - 0.8,
                e.half_width + SIDEWALK + 0.8,
            )
        )
        for e in net.edges
    ]
    keep_out += [n.drivable().buffer(SIDEWALK + 0.8, join_style=2) for n in net.nodes]
    keep_out += [
        shapely_box(*(n.center - n.half - SIDEWALK), *(n.center + n.half + SIDEWALK))
        for n in net.nodes
    ]
    keep_out += [c.polygon.buffer(1.0) for c in town.carparks]
    occupied = _Occupancy(keep_out)
    crossings_on = {}
    for c in town.crossings:
        crossings_on.setdefault(c.edge, []).append(c.s)
    for e in net.edges:
        hw = e.half_width
        for side in (1, -1):
            style = styles[(e.id, side)]
            s = float(rng.uniform(0.0, 6.0))
            # Street trees near the kerb, clear of crossings.
            for st in np.arange(
                6.0 + rng.uniform(0, 6), e.centre.length - 6.0, rng.uniform(9.0, 16.0)
            ):
                if any(abs(st - cs) < 6.0 for cs in crossings_on.get(e.id, [])):
                    continue
                if style != "park" and rng.random() > 0.55:
                    continue
                xy, heading = e.centre.sample(st)
                normal = np.array([-np.sin(heading), np.cos(heading)])
                town.props.append(_tree(rng, xy + normal * side * (hw + 0.9)))
            while s < e.centre.length:
                if style == "park":
                    depth = float(rng.uniform(5.0, 30.0))
                    xy, heading = e.centre.sample(s)
                    normal = np.array([-np.sin(heading), np.cos(heading)])
                    centre = xy + normal * side * (hw + SIDEWALK + 2.0 + depth)
                    foot = Polygon(rect_corners(centre, 0.0, 3.0, 3.0))
                    if occupied.free(foot) and 0 < centre[0] < w and 0 < centre[1] < h:
                        occupied.add(foot)
                        if rng.random() < 0.7:
                            town.props.append(_tree(rng, centre))
                        else:
                            size = (
                                float(rng.uniform(1.5, 4)),
                                float(rng.uniform(1.2, 2.5)),
                                float(rng.uniform(0.8, 1.6)),
                            )
                            town.props.append(Prop("bush", centre, float(heading), size, 0))
                    s += float(rng.uniform(2.0, 6.0))
                    continue
                front = float(rng.uniform(8.0, 26.0))
                depth = float(rng.uniform(8.0, 22.0))
                height = float(np.clip(rng.lognormal(2.6, 0.45), 5.0, 48.0))
                mid = s + front / 2
                if mid > e.centre.length:
                    break
                xy, heading = e.centre.sample(mid)
                normal = np.array([-np.sin(heading), np.cos(heading)])
                setback = float(rng.uniform(0.5, 5.0))
                centre = xy + normal * side * (hw + SIDEWALK + 0.8 + setback + depth / 2)
                corners = rect_corners(centre, float(heading), front, depth)
                foot = Polygon(corners)
                inside = np.all((corners > 0) & (corners < [w, h]))
                if inside and occupied.free(foot):
                    occupied.add(foot)
                    town.props.append(
                        Prop(
                            "building",
                            centre,
                            float(heading),
                            (front, depth, height),
                            int(rng.integers(0, 7)),
                        )
                    )
                    s += front + float(rng.choice([0.0, rng.uniform(1.0, 8.0)]))
                else:
                    s += 4.0


def _tree(rng: np.random.Generator, centre: np.ndarray) -> Prop:
    height = float(rng.uniform(5.0, 10.0))
    crown = float(rng.uniform(2.5, 5.0))
    return Prop(
        "tree",
        np.asarray(centre, float),
        float(rng.uniform(0, np.pi / 2)),
        (crown, crown, height),
        int(rng.integers(0, 3)),
    )
