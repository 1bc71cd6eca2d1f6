"""Open-loop planning metrics: L2, collision, intersection and off-road at 1/2/3 s and "Avg".

Convention: the paper's (FastDriveVLA reports Impromptu-VLA's evaluator, which uses the ST-P3 /
VAD cumulative "Avg" and SparseDrive / BEV-Planner's collision and intersection code), not UniAD's
per-step read-out:

- Steps: 6 waypoints at 0.5 s. The horizon "1 s" covers steps 1-2, "2 s" steps 1-4, "3 s" steps
  1-6 (cumulative). A horizon's value is the mean over every counted (sample, step) pair up to it;
  "Avg" is the mean of the 1 s, 2 s and 3 s values. Only valid ground-truth steps count
  (`future_valid`); with all steps valid this equals the mean of per-step means.
- L2: Euclidean distance (metres) between the planned and the ground-truth waypoint.
- Collision: the ego box (4.084 x 1.85 m, centre 0.5 m ahead of the trajectory point, heading by
  central differences with the 0.5 m straight fallback, see geometry.py) overlaps (shapely
  `intersects`) a ground-truth box of another agent at the same step. A step where the logged
  ego's own box collides counts as 0 and stays in the denominator (`box_coll & ~gt_box_coll`
  upstream), so annotation noise cannot count against any planner.
- Intersection (BEV-Planner): per sample and horizon, 1 if the ego box touches a road-boundary
  line at ANY counted step up to the horizon, else 0; steps where the logged ego's own box
  touches the boundary are skipped. The rate is over samples (`counts` = samples at 3 s).
- Off-road (ours, not in the paper): the ego box is not entirely covered by the drivable area at
  that step, per step like L2.
  Intersection and off-road count only samples that have map geometry; rates are in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from fastdrive_ros.core_types import PLAN_DT_S, PLAN_STEPS
from fastdrive_ros.data.types import KeyframeSample
from fastdrive_ros.eval.geometry import agent_footprint, ego_footprints

HORIZONS_S: tuple[int, ...] = (1, 2, 3)
METRIC_NAMES: tuple[str, ...] = ("l2", "collision", "intersection", "offroad")
# Metrics scored per sample as "any counted step up to the horizon" (BEV-Planner), not per step.
ANY_STEP_METRICS: tuple[str, ...] = ("intersection",)


def horizon_steps(seconds: float) -> int:
    """Number of 0.5 s steps up to `seconds` (1 s -> 2, 2 s -> 4, 3 s -> 6)."""
    steps = int(round(seconds / PLAN_DT_S))
    if not 1 <= steps <= PLAN_STEPS:
        raise ValueError(f"horizon {seconds} s is outside the {PLAN_STEPS * PLAN_DT_S} s plan")
    return steps


@dataclass(frozen=True)
class StepOutcome:
    """Per-step results of one trajectory on one sample; NaN marks a step that does not count.

    Attributes:
        l2: (6,) metres.
        collision / intersection / offroad: (6,) 1.0 or 0.0.
    """

    l2: np.ndarray
    collision: np.ndarray
    intersection: np.ndarray
    offroad: np.ndarray


class GroundTruth:
    """One sample's ground truth, prepared once and scored against any number of trajectories."""

    def __init__(
        self,
        *,
        future_xy: np.ndarray,
        future_valid: np.ndarray,
        agent_boxes: Sequence[Sequence[shapely.Polygon]],
        road_boundary: shapely.Geometry | None = None,
        drivable_area: shapely.Geometry | None = None,
    ) -> None:
        self.future_xy = np.asarray(future_xy, dtype=np.float64)
        self.future_valid = np.asarray(future_valid, dtype=bool)
        if self.future_xy.shape != (PLAN_STEPS, 2) or self.future_valid.shape != (PLAN_STEPS,):
            raise ValueError(
                f"ground truth must be ({PLAN_STEPS}, 2) waypoints and ({PLAN_STEPS},) valid "
                f"flags, got {self.future_xy.shape} and {self.future_valid.shape}"
            )
        if len(agent_boxes) != PLAN_STEPS:
            raise ValueError(f"need agent boxes for {PLAN_STEPS} steps, got {len(agent_boxes)}")
        self.agent_boxes = [np.asarray(list(step), dtype=object) for step in agent_boxes]
        for geometry in (road_boundary, drivable_area):
            if geometry is not None:
                shapely.prepare(geometry)
        self.road_boundary = road_boundary
        self.drivable_area = drivable_area
        gt_footprints = np.asarray(ego_footprints(self.future_xy), dtype=object)
        # Steps where the logged ego itself collides or touches the boundary (annotation noise).
        self.gt_collides = self._collisions(list(gt_footprints))
        self.gt_crosses = (
            np.zeros(PLAN_STEPS, dtype=bool)
            if road_boundary is None
            else shapely.intersects(gt_footprints, road_boundary)
        )

    @classmethod
    def from_sample(cls, sample: KeyframeSample) -> GroundTruth:
        """Build from a reader sample (future boxes and map already in the ego frame)."""
        boxes = [
            [agent_footprint(b.center_xy, b.size_wlh, b.yaw) for b in step]
            for step in sample.future_boxes
        ]
        geo = sample.map
        return cls(
            future_xy=sample.future_xy,
            future_valid=sample.future_valid,
            agent_boxes=boxes,
            road_boundary=None if geo is None else geo.road_boundary,
            drivable_area=None if geo is None else geo.drivable_area,
        )

    def _collisions(self, footprints: list[shapely.Polygon]) -> np.ndarray:
        """(6,) True where the ego footprint of that step overlaps another agent's box."""
        hits = np.zeros(PLAN_STEPS, dtype=bool)
        for step, (ego, boxes) in enumerate(zip(footprints, self.agent_boxes)):
            if len(boxes):
                hits[step] = bool(shapely.intersects(ego, boxes).any())
        return hits

    def score(self, planned_xy: np.ndarray) -> StepOutcome:
        """Per-step outcome of a (6, 2) planned trajectory."""
        planned = np.asarray(planned_xy, dtype=np.float64)
        if planned.shape != (PLAN_STEPS, 2):
            raise ValueError(f"planned trajectory must be ({PLAN_STEPS}, 2), got {planned.shape}")
        if not np.all(np.isfinite(planned)):
            raise ValueError("planned trajectory holds a non-finite value")
        valid = self.future_valid
        footprints = ego_footprints(planned)  # once, for collision, intersection and off-road
        l2 = np.where(valid, np.linalg.norm(planned - self.future_xy, axis=1), np.nan)
        hits = self._collisions(footprints) & ~self.gt_collides
        collision = np.where(valid, hits.astype(float), np.nan)
        intersection, offroad = np.full(PLAN_STEPS, np.nan), np.full(PLAN_STEPS, np.nan)
        boxes = np.asarray(footprints, dtype=object)
        if self.road_boundary is not None:
            crosses = shapely.intersects(boxes, self.road_boundary)
            intersection = np.where(valid & ~self.gt_crosses, crosses.astype(float), np.nan)
        if self.drivable_area is not None:
            offroad = np.where(
                valid, (~shapely.covers(self.drivable_area, boxes)).astype(float), np.nan
            )
        return StepOutcome(l2=l2, collision=collision, intersection=intersection, offroad=offroad)


@dataclass(frozen=True)
class MetricSummary:
    """Cumulative metrics over a set of samples (L2 in metres, the rest in percent).

    `values[name][h]` for name in METRIC_NAMES and h in "1s", "2s", "3s", "avg"; None where no
    step counted (e.g. intersection without map geometry). `counts[name]` = counted step pairs
    (for ANY_STEP_METRICS: samples counted at 3 s).
    """

    values: dict[str, dict[str, float | None]]
    counts: dict[str, int]

    def get(self, name: str, horizon: str) -> float | None:
        return self.values[name][horizon]


class MetricAccumulator:
    """Streams StepOutcomes of many samples into sums and counts per step (or per horizon)."""

    def __init__(self) -> None:
        self._sums = {name: np.zeros(PLAN_STEPS) for name in METRIC_NAMES}
        self._counts = {name: np.zeros(PLAN_STEPS, dtype=np.int64) for name in METRIC_NAMES}
        # ANY_STEP_METRICS: one (hit, counted) per sample and horizon instead of per step
        self._any_sums = {name: np.zeros(len(HORIZONS_S)) for name in ANY_STEP_METRICS}
        self._any_counts = {name: np.zeros(len(HORIZONS_S), np.int64) for name in ANY_STEP_METRICS}
        self.samples = 0

    def add(self, outcome: StepOutcome) -> None:
        for name in METRIC_NAMES:
            values = getattr(outcome, name)
            counted = ~np.isnan(values)
            self._sums[name] += np.where(counted, values, 0.0)
            self._counts[name] += counted
            if name in ANY_STEP_METRICS:
                for h, seconds in enumerate(HORIZONS_S):
                    steps = horizon_steps(seconds)
                    if counted[:steps].any():
                        self._any_sums[name][h] += float(np.nanmax(values[:steps]))
                        self._any_counts[name][h] += 1
        self.samples += 1

    def _horizon(self, name: str, h: int) -> tuple[float, int]:
        """(sum, count) of `name` up to horizon index h."""
        if name in ANY_STEP_METRICS:
            return float(self._any_sums[name][h]), int(self._any_counts[name][h])
        steps = horizon_steps(HORIZONS_S[h])
        return float(self._sums[name][:steps].sum()), int(self._counts[name][:steps].sum())

    def summary(self) -> MetricSummary:
        values: dict[str, dict[str, float | None]] = {}
        for name in METRIC_NAMES:
            scale = 1.0 if name == "l2" else 100.0
            per_horizon: dict[str, float | None] = {}
            for h, seconds in enumerate(HORIZONS_S):
                total, count = self._horizon(name, h)
                per_horizon[f"{seconds}s"] = scale * total / count if count else None
            horizon_values = [per_horizon[f"{s}s"] for s in HORIZONS_S]
            per_horizon["avg"] = (
                None if any(v is None for v in horizon_values) else float(np.mean(horizon_values))
            )
            values[name] = per_horizon
        counts = {
            name: self._horizon(name, len(HORIZONS_S) - 1)[1]
            if name in ANY_STEP_METRICS
            else int(self._counts[name].sum())
            for name in METRIC_NAMES
        }
        return MetricSummary(values=values, counts=counts)
