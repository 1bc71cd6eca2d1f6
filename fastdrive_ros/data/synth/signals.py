"""Two-phase traffic-signal plans (EW green, yellow, all-red, NS green, yellow, all-red).

Pedestrians crossing a leg walk with the traffic that runs parallel to them, so a leg crossing's
walk phase is the green of its `walk_axis`. Plans are per scene: the map fixes where lights are,
the scene fixes when they change (so a scenario can make a light turn red as the ego arrives).
"""

from __future__ import annotations

import numpy as np

RED, YELLOW, GREEN = 0, 1, 2
YELLOW_S = 3.0
ALL_RED_S = 1.5


class SignalPlan:
    """Signal timing of every signalised node.

    Args:
        greens: node -> (EW green, NS green) seconds.
        offsets: node -> cycle offset seconds (phase position at t = 0).
    """

    def __init__(self, *, greens: dict[int, tuple[float, float]], offsets: dict[int, float]):
        if set(greens) != set(offsets):
            raise ValueError("greens and offsets must cover the same nodes")
        for node, (g1, g2) in greens.items():
            if g1 <= 0 or g2 <= 0:
                raise ValueError(f"node {node}: green times must be positive")
        self.greens = dict(greens)
        self.offsets = dict(offsets)

    def cycle(self, node: int) -> float:
        g1, g2 = self.greens[node]
        return g1 + g2 + 2 * (YELLOW_S + ALL_RED_S)

    def phase_start(self, node: int, axis: str) -> float:
        """Cycle position where `axis` turns green."""
        g1, _ = self.greens[node]
        return 0.0 if axis == "EW" else g1 + YELLOW_S + ALL_RED_S

    def _position(self, node: int, axis: str, t: float) -> tuple[float, float]:
        tau = (t + self.offsets[node] - self.phase_start(node, axis)) % self.cycle(node)
        green = self.greens[node][0 if axis == "EW" else 1]
        return tau, green

    def state(self, node: int, axis: str, t: float) -> int:
        """RED, YELLOW or GREEN for traffic on `axis` at node and time t."""
        tau, green = self._position(node, axis, t)
        if tau < green:
            return GREEN
        if tau < green + YELLOW_S:
            return YELLOW
        return RED

    def green_left(self, node: int, axis: str, t: float) -> float:
        """Seconds of green left for `axis` (0 when not green)."""
        tau, green = self._position(node, axis, t)
        return max(0.0, green - tau)

    def set_yellow_at(self, node: int, axis: str, t: float) -> None:
        """Re-time `node` so that `axis` turns yellow exactly at time t."""
        green = self.greens[node][0 if axis == "EW" else 1]
        target = self.phase_start(node, axis) + green
        self.offsets[node] = float((target - t) % self.cycle(node))

    def set_green_at(self, node: int, axis: str, t: float) -> None:
        """Re-time `node` so that `axis` turns green exactly at time t."""
        self.offsets[node] = float((self.phase_start(node, axis) - t) % self.cycle(node))


def random_plan(rng: np.random.Generator, nodes: list[int]) -> SignalPlan:
    greens = {n: (float(rng.uniform(9.0, 16.0)), float(rng.uniform(9.0, 16.0))) for n in nodes}
    plan = SignalPlan(greens=greens, offsets=dict.fromkeys(nodes, 0.0))
    for n in nodes:
        plan.offsets[n] = float(rng.uniform(0.0, plan.cycle(n)))
    return plan
