"""Route completion, comfort and the composite driving score of one route, and their aggregate.

Route completion RC = min(1, progress / reference progress), where the reference is how far the
world's own driver (the expert that drove the training data: IDM + pure pursuit, obeying lights,
yielding to pedestrians) gets along the same route in the same time from the same start. Where
the expert itself hardly moves (< 1 m, e.g. waiting at a red light), RC = 1. A route counts as
completed when RC >= COMPLETED_RC. A car that leaves its route by more than OFF_ROUTE_M stops
accruing progress (Bench2Drive's route deviation).

Composite score, in the spirit of the Bench2Drive driving score (route completion times a
multiplicative penalty per infraction; the CARLA leaderboard's coefficients):

    score = 100 * RC * 0.50^(pedestrian + cyclist collisions) * 0.60^(vehicle collisions)
                     * 0.65^(static collisions) * 0.70^(red-light violations)
                     * 0.70^(drivable-area excursions)

TTC below threshold and jerk are reported beside it, not folded in (as NAVSIM's EP/TTC/comfort
weights would need a trajectory-level scorer this loop does not have).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.eval.closed_loop.infractions import InfractionLog

COMPLETED_RC = 0.9
OFF_ROUTE_M = 6.0
MIN_REFERENCE_M = 1.0
PENALTY = {
    "pedestrian": 0.50,
    "cyclist": 0.50,
    "vehicle": 0.60,
    "static": 0.65,
    "red_light": 0.70,
    "offroad": 0.70,
}
SCORE_FORMULA = (
    "score = 100 * RC * 0.50^(pedestrian+cyclist collisions) * 0.60^(vehicle collisions) "
    "* 0.65^(static collisions) * 0.70^(red-light violations) * 0.70^(drivable-area excursions); "
    "RC = min(1, progress / progress of the world's own driver on the same route and time)"
)


def route_completion(progress_m: float, reference_m: float) -> float:
    if reference_m < MIN_REFERENCE_M:
        return 1.0
    return float(np.clip(progress_m / reference_m, 0.0, 1.0))


def composite_score(rc: float, log: InfractionLog) -> float:
    """The formula of the module docstring."""
    factor = 1.0
    for kind, count in log.collisions.items():
        factor *= PENALTY[kind] ** count
    factor *= PENALTY["red_light"] ** log.red_light_violations
    factor *= PENALTY["offroad"] ** log.offroad_events
    return 100.0 * rc * factor


def jerk_stats(accel: np.ndarray, dt: float) -> tuple[float, float]:
    """(RMS, max |jerk|) in m/s^3 of a longitudinal acceleration series sampled every dt."""
    if len(accel) < 2:
        return 0.0, 0.0
    jerk = np.diff(np.asarray(accel, np.float64)) / dt
    return float(np.sqrt(np.mean(jerk**2))), float(np.abs(jerk).max())


@dataclass(frozen=True)
class RouteScore:
    """Everything results.json keeps for one route."""

    route: int
    events: tuple[str, ...]
    seconds: float
    progress_m: float
    reference_m: float
    route_completion: float
    completed: bool
    off_route: bool
    collisions: dict[str, int]
    collisions_total: int
    collisions_not_at_fault: int
    red_light_violations: int
    offroad_events: int
    offroad_s: float
    ttc_below_s: float
    min_ttc_s: float | None
    jerk_rms: float
    jerk_max: float
    plan_failures: int
    plans: int
    mean_kept_tokens: float
    score: float

    @property
    def infractions(self) -> int:
        return self.collisions_total + self.red_light_violations


def score_route(
    *,
    route: int,
    events: tuple[str, ...],
    seconds: float,
    progress_m: float,
    reference_m: float,
    off_route: bool,
    log: InfractionLog,
    accel: np.ndarray,
    dt: float,
    plan_failures: int,
    plans: int,
    mean_kept_tokens: float,
) -> RouteScore:
    rc = route_completion(progress_m, reference_m)
    jerk_rms, jerk_max = jerk_stats(accel, dt)
    return RouteScore(
        route=route,
        events=events,
        seconds=seconds,
        progress_m=round(progress_m, 3),
        reference_m=round(reference_m, 3),
        route_completion=round(rc, 4),
        completed=rc >= COMPLETED_RC,
        off_route=off_route,
        collisions=dict(log.collisions),
        collisions_total=log.at_fault_collisions,
        collisions_not_at_fault=log.collisions_not_at_fault,
        red_light_violations=log.red_light_violations,
        offroad_events=log.offroad_events,
        offroad_s=round(log.offroad_s, 3),
        ttc_below_s=round(log.ttc_below_s, 3),
        min_ttc_s=None if not np.isfinite(log.min_ttc_s) else round(log.min_ttc_s, 3),
        jerk_rms=round(jerk_rms, 3),
        jerk_max=round(jerk_max, 3),
        plan_failures=plan_failures,
        plans=plans,
        mean_kept_tokens=round(mean_kept_tokens, 1),
        score=round(composite_score(rc, log), 3),
    )


def bootstrap_interval(values: np.ndarray, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the mean over routes (degenerate for one route)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        m = float(values.mean()) if len(values) else float("nan")
        return m, m
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def aggregate(routes: list[RouteScore]) -> dict:
    """Means over routes (95 % bootstrap intervals for RC, score, infractions) and totals."""
    rc = np.array([r.route_completion for r in routes])
    score = np.array([r.score for r in routes])
    infr = np.array([r.infractions for r in routes], np.float64)
    kinds = routes[0].collisions.keys() if routes else ()
    return {
        "routes_n": len(routes),
        "route_completion": float(rc.mean()),
        "route_completion_ci": bootstrap_interval(rc),
        "completed_fraction": float(np.mean([r.completed for r in routes])),
        "collisions": int(sum(r.collisions_total for r in routes)),
        "collisions_by_kind": {k: int(sum(r.collisions[k] for r in routes)) for k in kinds},
        "collisions_not_at_fault": int(sum(r.collisions_not_at_fault for r in routes)),
        "red_light_violations": int(sum(r.red_light_violations for r in routes)),
        "infractions": int(infr.sum()),
        "infractions_per_route_ci": bootstrap_interval(infr),
        "offroad_events": int(sum(r.offroad_events for r in routes)),
        "ttc_below_s": float(sum(r.ttc_below_s for r in routes)),
        "progress_m": float(np.mean([r.progress_m for r in routes])),
        "jerk_rms": float(np.mean([r.jerk_rms for r in routes])),
        "plan_failures": int(sum(r.plan_failures for r in routes)),
        "score": float(score.mean()),
        "score_ci": bootstrap_interval(score),
    }
