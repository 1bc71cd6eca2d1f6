"""Routes through the lane graph: one smooth path per vehicle with its stops, turns and limits.

A route is a chain of edge segments (a lane, or a smooth lane change around a blocked lane) and
intersection connectors. Along it we keep the speed limit per sample, where to stop for a signal
or a zebra crossing, and which turn follows each intersection (the driving command).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.synth.geometry import Polyline, concat, smoothstep
from fastdrive_ros.data.synth.roads import LANE_WIDTH, Axis, Turn
from fastdrive_ros.data.synth.town import Town

LANE_CHANGE_M = 28.0
# How far ahead (metres of route from the front bumper) navigation announces the next
# intersection's movement as the driving command: a little more than 3 s at town speeds, so the
# command says what the plan must do without being read off the future trajectory.
COMMAND_LOOKAHEAD_M = 40.0


@dataclass(frozen=True)
class StopPoint:
    """A place on a route where the vehicle may have to stop.

    Attributes:
        s: arc length of the stop line on the route path.
        kind: "light" (signalised intersection) or "zebra" (mid-block crossing).
        node / axis: intersection and signal axis (lights); crossing: the crossing id.
        turn: movement through the intersection after a light stop.
        edge: the edge whose stop line this is (the approach).
    """

    s: float
    kind: str
    node: int | None
    axis: Axis | None
    crossing: int | None
    turn: Turn | None
    edge: int


@dataclass(frozen=True)
class TurnSpan:
    """The route runs through connector `connector` of `node` between s0 and s1."""

    s0: float
    s1: float
    turn: Turn
    node: int
    connector: int


@dataclass(frozen=True)
class Route:
    """A drivable path with its annotations (see module docstring)."""

    path: Polyline
    speed_limit: np.ndarray  # (N,) m/s per path sample
    stops: tuple[StopPoint, ...]
    turns: tuple[TurnSpan, ...]
    lane_changes: tuple[tuple[float, float], ...]
    edges: tuple[tuple[float, float, int, int], ...]  # (s0, s1, edge, direction)

    def turn_at(self, s: float) -> TurnSpan | None:
        for span in self.turns:
            if span.s0 <= s <= span.s1:
                return span
        return None

    def command_at(self, s_front: float, lookahead: float = COMMAND_LOOKAHEAD_M) -> Turn:
        """The driving command a navigation system gives with the front bumper at `s_front`.

        The movement through the next intersection on the route (the one the car is in, or
        the first whose connector starts within `lookahead` metres), else "straight". It
        depends on the route only, never on how the car will actually move.
        """
        for span in self.turns:
            if span.s1 >= s_front and span.s0 - s_front <= lookahead:
                return span.turn
        return "straight"


@dataclass(frozen=True)
class Blockage:
    """Lane k of (edge, direction) is blocked between directed arc lengths s0 and s1."""

    edge: int
    direction: int
    k: int
    s0: float
    s1: float


def _choose_turn(
    town: Town, edge: int, direction: int, rng: np.random.Generator, forced: Turn | None
) -> tuple[Turn, int] | None:
    """Pick the movement at the end of (edge, direction): (turn, next edge) or None."""
    net = town.network
    lane = net.lane(edge, direction, 0)
    options: dict[Turn, int] = {}
    for cid in (
        net.out_connectors[lane.id] + net.out_connectors[net.lanes_of(edge, direction)[-1].id]
    ):
        c = net.connectors[cid]
        options[c.turn] = net.lanes[c.to_lane].edge
    if not options:
        return None
    if forced in options:
        return forced, options[forced]
    weights = {"straight": 0.5, "left": 0.25, "right": 0.25}
    turns = sorted(options)
    p = np.array([weights[t] for t in turns])
    turn = turns[int(rng.choice(len(turns), p=p / p.sum()))]
    return turn, options[turn]


def _profile(
    line: Polyline, s_from: float, k_in: int, k_out: int, n_lanes: int, blocked: list[Blockage]
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Lateral offset per sample of the directed centre from s_from on, and lane-change spans."""
    s = line.s
    offset = np.full(len(s), -(k_in + 0.5) * LANE_WIDTH)
    changes: list[tuple[float, float]] = []
    lane = k_in

    def shift(to: int, end: float) -> None:
        nonlocal lane
        start = max(s_from, end - LANE_CHANGE_M)
        end = max(end, start + 4.0)
        ramp = smoothstep((s - start) / (end - start))
        offset[:] = offset + ramp * ((-(to + 0.5) * LANE_WIDTH) - (-(lane + 0.5) * LANE_WIDTH))
        changes.append((start, end))
        lane = to

    for b in sorted(blocked, key=lambda b: b.s0):
        if b.k == lane and b.s1 > s_from and n_lanes > 1:
            shift(1 - lane, b.s0 - 10.0)
    if lane != k_out:
        after = max([b.s1 + 4.0 + LANE_CHANGE_M for b in blocked if b.s1 > s_from] + [0.0])
        shift(k_out, float(np.clip(after, s_from + 12.0, line.length - 18.0)))
    return offset, changes


def plan_route(
    town: Town,
    rng: np.random.Generator,
    *,
    edge: int,
    direction: int,
    k: int,
    s_start: float,
    length: float,
    blockages: list[Blockage] = (),
    first_turn: Turn | None = None,
) -> Route:
    """A route from lane k of (edge, direction) at directed arc length s_start, >= length m."""
    net = town.network
    seq: list[tuple[int, int, Turn | None]] = []
    e, d, total, turn = edge, direction, -s_start, first_turn
    while total < length + 60.0:
        total += net.edges[e].centre.length
        choice = _choose_turn(town, e, d, rng, turn)
        turn = None
        if choice is None:
            seq.append((e, d, None))
            break
        t, nxt = choice
        seq.append((e, d, t))
        end_node = net.edges[e].b if d > 0 else net.edges[e].a
        e, d = nxt, net.direction_from(nxt, end_node)
        total += 15.0

    parts: list[Polyline] = []
    limits: list[np.ndarray] = []
    stops: list[StopPoint] = []
    turns: list[TurnSpan] = []
    changes: list[tuple[float, float]] = []
    spans: list[tuple[float, float, int, int]] = []
    s_route = 0.0
    k_in = k
    for i, (e, d, t) in enumerate(seq):
        edge_obj = net.edges[e]
        line = edge_obj.directed(d)
        n = edge_obj.lanes_per_dir
        k_out = {"left": 0, "right": n - 1}.get(t or "straight", min(k_in, n - 1))
        s_from = s_start if i == 0 else 0.0
        mine = [b for b in blockages if b.edge == e and b.direction == d]
        offset, lane_changes = _profile(line, s_from, k_in, k_out, n, mine)
        seg = line.offset(offset)
        seg = seg.slice(s_from, seg.length) if s_from > 0 else seg
        base = s_route - s_from
        changes += [(base + a, base + b) for a, b in lane_changes]
        for stop in town.stop_lines:
            if stop.edge == e and stop.direction == d:
                s_dir = stop.s_stop if d > 0 else edge_obj.centre.length - stop.s_stop
                if s_dir > s_from + 0.5:
                    node = stop.node
                    axis = edge_obj.axis if stop.kind == "TRAFFIC_LIGHT" else None
                    kind = "light" if stop.kind == "TRAFFIC_LIGHT" else "zebra"
                    stops.append(
                        StopPoint(
                            base + s_dir,
                            kind,
                            node,
                            axis,
                            stop.crossing,
                            t if kind == "light" else None,
                            e,
                        )
                    )
        spans.append((s_route, s_route + seg.length, e, d))
        parts.append(seg)
        limits.append(np.full(len(seg), edge_obj.speed_limit))
        s_route += seg.length
        if t is None or i + 1 >= len(seq):
            break
        lane_out = net.lane(e, d, k_out)
        nxt_e, nxt_d, _ = seq[i + 1]
        conn = next(
            net.connectors[c]
            for c in net.out_connectors[lane_out.id]
            if net.lanes[net.connectors[c].to_lane].edge == nxt_e
        )
        parts.append(conn.centre)
        nxt_limit = net.edges[nxt_e].speed_limit
        limits.append(np.full(len(conn.centre), min(edge_obj.speed_limit, nxt_limit)))
        turns.append(
            TurnSpan(s_route, s_route + conn.centre.length, conn.turn, conn.node, conn.id)
        )
        s_route += conn.centre.length
        k_in = net.lanes[conn.to_lane].k
    path = concat(parts)
    s_parts = np.concatenate([[0.0], np.cumsum([p.length for p in parts])])
    limit = np.concatenate(limits)
    s_samples = np.concatenate([p.s + s_parts[i] for i, p in enumerate(parts)])
    speed = np.interp(path.s, s_samples, limit)
    return Route(
        path,
        speed,
        tuple(sorted(stops, key=lambda p: p.s)),
        tuple(turns),
        tuple(changes),
        tuple(spans),
    )
