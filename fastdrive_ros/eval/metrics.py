"""Open-loop planning metrics: L2, collision, intersection and off-road at 1/2/3 s and "Avg".

Definitions (FACTS.md; Impromptu-VLA / UniAD / BEV-Planner style):

- Steps: 6 waypoints at 0.5 s. The horizon "1 s" covers steps 1-2, "2 s" steps 1-4, "3 s" steps
  1-6 (cumulative). A horizon's value is the mean over every counted (sample, step) pair up to it;
  "Avg" is the mean of the 1 s, 2 s and 3 s values. Only valid ground-truth steps count
  (`future_valid`); with all steps valid this equals the mean of per-step means.
- L2: Euclidean distance (metres) between the planned and the ground-truth waypoint.
- Collision: the ego box (4.084 x 1.85 m, centre 0.5 m ahead of the ego origin, heading from the
  trajectory, see geometry.py) overlaps (shapely `intersects`) a ground-truth box of another agent
  at the same step. Steps where the ground-truth ego box itself collides are skipped (not counted
  for any method), as annotation noise would otherwise count against every planner.
- Intersection (BEV-Planner): the ego box intersects a road-boundary line at that step.
- Off-road: the ego box is not entirely covered by the drivable area at that step.
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
        gt_hits = self._collisions(ego_footprints(self.future_xy))
        # Steps that count for collision: valid and the logged ego itself clear of every box.
        self.collision_counted = self.future_valid & ~gt_hits

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
        collision = np.where(self.collision_counted, self._collisions(footprints), np.nan)
        intersection, offroad = np.full(PLAN_STEPS, np.nan), np.full(PLAN_STEPS, np.nan)
        boxes = np.asarray(footprints, dtype=object)
        if self.road_boundary is not None:
            hits = shapely.intersects(boxes, self.road_boundary)
            intersection = np.where(valid, hits.astype(float), np.nan)
        if self.drivable_area is not None:
            offroad = np.where(
                valid, (~shapely.covers(self.drivable_area, boxes)).astype(float), np.nan
            )
        return StepOutcome(l2=l2, collision=collision, intersection=intersection, offroad=offroad)


@dataclass(frozen=True)
class MetricSummary:
    """Cumulative metrics over a set of samples (L2 in metres, the rest in percent).

    `values[name][h]` for name in METRIC_NAMES and h in "1s", "2s", "3s", "avg"; None where no
    step counted (e.g. intersection without map geometry). `counts[name]` = counted step pairs.
    """

    values: dict[str, dict[str, float | None]]
    counts: dict[str, int]

    def get(self, name: str, horizon: str) -> float | None:
        return self.values[name][horizon]


class MetricAccumulator:
    """Streams StepOutcomes of many samples into per-step sums and counts."""

    def __init__(self) -> None:
        self._sums = {name: np.zeros(PLAN_STEPS) for name in METRIC_NAMES}
        self._counts = {name: np.zeros(PLAN_STEPS, dtype=np.int64) for name in METRIC_NAMES}
        self.samples = 0

    def add(self, outcome: StepOutcome) -> None:
        for name in METRIC_NAMES:
            values = getattr(outcome, name)
            counted = ~np.isnan(values)
            self._sums[name] += np.where(counted, values, 0.0)
            self._counts[name] += counted
        self.samples += 1

    def summary(self) -> MetricSummary:
        values: dict[str, dict[str, float | None]] = {}
        for name in METRIC_NAMES:
            scale = 1.0 if name == "l2" else 100.0
            per_horizon: dict[str, float | None] = {}
            for seconds in HORIZONS_S:
                steps = horizon_steps(seconds)
                count = int(self._counts[name][:steps].sum())
                total = float(self._sums[name][:steps].sum())
                per_horizon[f"{seconds}s"] = scale * total / count if count else None
            horizon_values = [per_horizon[f"{s}s"] for s in HORIZONS_S]
            per_horizon["avg"] = (
                None if any(v is None for v in horizon_values) else float(np.mean(horizon_values))
            )
            values[name] = per_horizon
        counts = {name: int(self._counts[name].sum()) for name in METRIC_NAMES}
        return MetricSummary(values=values, counts=counts)
