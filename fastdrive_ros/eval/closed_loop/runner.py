"""Run rows (pruner x ratio) over routes: the expert reference first, then every planner row.

Every row drives the same routes from the same start (a fresh LiveScene per route and row), so
rows differ only by what the planner does. The world's own driver runs each route once: its
progress is the route-completion reference, and its infractions are a sanity row (the rules it
obeys are the ones the monitor checks, so it should score ~100).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fastdrive_ros.data.synth.live import LiveScene
from fastdrive_ros.eval.closed_loop.episode import LoopPlanner, RouteRun, drive_route
from fastdrive_ros.eval.closed_loop.score import aggregate

NO_IMAGES = "no_images"  # the planner with zero visual tokens (the probe of the eval issue)
EXPERT = "expert"  # the world's own driver (privileged: it reads the world, not the cameras)
RATIO_FREE = {"none": 0.0, NO_IMAGES: 1.0}  # rows whose ratio is fixed by what they are


@dataclass(frozen=True)
class Row:
    """One table row: a selector and its prune ratio (K = floor(N (1 - ratio)))."""

    pruner: str
    ratio: float

    @property
    def label(self) -> str:
        return self.pruner if self.pruner in RATIO_FREE else f"{self.pruner}@{self.ratio:g}"


@dataclass
class RowResult:
    row: Row
    runs: list[RouteRun] = field(default_factory=list)

    def record(self) -> dict:
        scores = [r.score for r in self.runs]
        return {
            "pruner": self.row.pruner,
            "ratio": self.row.ratio,
            **aggregate(scores),
            "mean_kept_tokens": (
                sum(s.mean_kept_tokens for s in scores) / len(scores) if scores else 0.0
            ),
            "compute_s_per_plan": (
                sum(r.compute_s for r in self.runs) / max(1, sum(s.plans for s in scores))
            ),
            "routes": [s.__dict__ | {"infractions": s.infractions} for s in scores],
        }


def make_rows(pruners: list[str], ratios: list[float]) -> list[Row]:
    """The product pruners x ratios; ratio-free rows (none, no_images) once each."""
    rows: list[Row] = []
    for name in pruners:
        if name in RATIO_FREE:
            rows.append(Row(name, RATIO_FREE[name]))
        else:
            rows.extend(Row(name, float(r)) for r in ratios)
    unique: list[Row] = []
    for row in rows:
        if row not in unique:
            unique.append(row)
    return unique


def parse_rows(items: list[str]) -> list[Row]:
    """`name:ratio` or a ratio-free `name` per item (the --rows option)."""
    rows = []
    for item in items:
        name, _, ratio = item.partition(":")
        if name in RATIO_FREE:
            rows.append(Row(name, RATIO_FREE[name]))
        elif not ratio:
            raise ValueError(f"row {item!r} needs a ratio: write {name}:0.5")
        else:
            rows.append(Row(name, float(ratio)))
    return rows


@dataclass(frozen=True)
class LoopSettings:
    seed: int
    routes: int
    seconds: float
    plan_hz: float = 2.0
    realtime: bool = False
    record: bool = False
    town_grid: int = 5
    conflicts: bool = False  # data/synth/scenario.py


def _scene(s: LoopSettings, index: int, size: tuple[int, int]) -> LiveScene:
    return LiveScene(
        seed=s.seed,
        index=index,
        seconds=s.seconds,
        width=size[1],
        height=size[0],
        town_grid=s.town_grid,
        conflicts=s.conflicts,
    )


def run_rows(
    settings: LoopSettings,
    rows: list[Row],
    make_planner: Callable[[Row], LoopPlanner],
    *,
    on_route: Callable[[str, int], None] | None = None,
    on_run: Callable[[Row, RouteRun], None] | None = None,
) -> tuple[RowResult, list[RowResult]]:
    """(expert reference, one result per row).

    `on_route(label, index)` after each route (progress); `on_run(row, run)` after each planner
    route, before it is kept (write its GIF there and drop the thumbnails: memory stays flat).
    """
    expert = RowResult(Row(EXPERT, 0.0))
    for i in range(settings.routes):
        scene = _scene(settings, i, (90, 160))  # the expert renders nothing
        expert.runs.append(drive_route(scene, None, seconds=settings.seconds))
        if on_route:
            on_route(EXPERT, i)
    reference = [run.score.progress_m for run in expert.runs]
    results = []
    for row in rows:
        planner = make_planner(row)
        result = RowResult(row)
        for i, run in enumerate(_drive_all(settings, planner, reference)):
            if on_run:
                on_run(row, run)
            result.runs.append(run)
            if on_route:
                on_route(row.label, i)
        results.append(result)
    return expert, results


def _drive_all(
    settings: LoopSettings, planner: LoopPlanner, reference: list[float]
) -> Iterator[RouteRun]:
    for i in range(settings.routes):
        scene = _scene(settings, i, planner.image_size)
        yield drive_route(
            scene,
            planner,
            seconds=settings.seconds,
            reference_m=reference[i],
            plan_hz=settings.plan_hz,
            realtime=settings.realtime,
            record=settings.record,
        )
