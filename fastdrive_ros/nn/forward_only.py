"""A plan never drives backwards: steps against the direction of travel become standstill.

The kinematic priors hold the speed at 0 once the ego stops, but a regression head's residual
over them is unconstrained, and on stopped egos the shipped default's drifted about 0.2 m
backwards by 3 s (issue 8: stopped keyframes scored 8-12 cm where CTRA scores 1-6). No logged
ego of the synthetic worlds reverses, and a driving planner on a road has no business planning
to. So the plan a learned head returns is projected onto forward motion before it leaves the
planner; training sees the raw output (a projected step passes no gradient).
"""

from __future__ import annotations

import numpy as np

AHEAD = np.array([1.0, 0.0])  # the ego frame's +x: where the ego points before it has moved
MIN_STEP_M = 1e-3  # shorter steps do not set the direction of travel (standstill jitter)


def forward_only(waypoints: np.ndarray, *, min_step_m: float = MIN_STEP_M) -> np.ndarray:
    """[T, 2] waypoints (ego frame, metres) with every backward step replaced by standing still.

    A step is backward when it points against the direction of travel: that of the last step
    that moved at least `min_step_m`, the ego's heading (+x) before any. A waypoint after a
    backward step is measured from where the ego stood. Non-finite plans come back unchanged
    (check_waypoints reports them).
    """
    points = np.asarray(waypoints, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"need [T, 2] waypoints, got shape {points.shape}")
    if not np.isfinite(points).all():
        return points
    out = points.copy()
    here, heading = np.zeros(2), AHEAD
    for k, point in enumerate(points):
        step = point - here
        if float(step @ heading) < 0.0:
            out[k] = here
            continue
        length = float(np.hypot(*step))
        if length >= min_step_m:
            heading = step / length
        here = point
    return out
