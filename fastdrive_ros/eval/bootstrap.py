"""95 % intervals for L2 differences from a bootstrap that resamples SCENES, not keyframes.

Keyframes of one scene are 0.5 s apart and share the street, the traffic and the driver: they are
not independent, and a keyframe bootstrap would give intervals far too narrow. Each resample
draws as many scenes as there are, with replacement, and weights every keyframe by how often its
scene was drawn; both methods of a difference see the same resample (paired). The interval is the
2.5 / 97.5 percentile of the resampled statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from fastdrive_ros.core_types import PLAN_STEPS

HORIZON_STEPS: tuple[int, ...] = (2, 4, 6)  # 1 s, 2 s, 3 s (metrics.py)


def l2_avg(l2: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The evaluation's L2 Avg of per-sample step errors [S, 6] (NaN = step not counted).

    Mean of the cumulative means at 1, 2 and 3 s over counted (sample, step) pairs, each sample
    weighted by `weights` [S] (default 1): with unit weights this is MetricAccumulator's value.
    NaN when a horizon has no counted step.
    """
    l2 = np.asarray(l2, dtype=np.float64).reshape(-1, PLAN_STEPS)
    w = np.ones(len(l2)) if weights is None else np.asarray(weights, dtype=np.float64)
    counted = ~np.isnan(l2)
    values = np.where(counted, l2, 0.0) * w[:, None]
    counts = counted * w[:, None]
    out = []
    for steps in HORIZON_STEPS:
        n = counts[:, :steps].sum()
        out.append(values[:, :steps].sum() / n if n > 0 else np.nan)
    return float(np.mean(out))


def collision_avg(steps: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Collision Avg in percent of [S, 6] 0 / 1 steps (NaN = not counted).

    metrics.py's cumulative mean over 1 / 2 / 3 s, i.e. `l2_avg`'s horizon mean of any per-step
    value, times 100.
    """
    return 100.0 * l2_avg(steps, weights)


def scene_weights(scenes: Sequence[str], draws: int, seed: int) -> np.ndarray:
    """[draws, S] keyframe weights: how often each keyframe's scene was drawn in each resample."""
    names, index = np.unique(np.asarray(scenes, dtype=object).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(draws, len(names)))
    counts = np.stack([np.bincount(row, minlength=len(names)) for row in picks])
    return counts[:, index].astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % scene-bootstrap interval.

    `estimate`/`low`/`high` in the statistic's unit; `relative_*` = 100 x difference / the
    reference's L2 Avg (percent) where the statistic is a difference; `resamples` that had a
    keyframe of the subset (the others are dropped).
    """

    estimate: float
    low: float
    high: float
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    samples: int
    scenes: int
    resamples: int

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def to_json(self) -> dict:
        out = asdict(self)
        out["excludes_zero"] = self.excludes_zero
        return out


def bootstrap(
    scenes: Sequence[str],
    statistic: Callable[[np.ndarray], tuple[float, float | None]],
    *,
    draws: int = 2000,
    seed: int = 0,
) -> Interval:
    """Interval of `statistic(weights) -> (value, relative or None)` under scene resampling."""
    if len(scenes) == 0:
        raise ValueError("the bootstrap needs at least one keyframe")
    if draws < 10:
        raise ValueError(f"draws must be >= 10, got {draws}")
    point, point_rel = statistic(np.ones(len(scenes)))
    values, rels = [], []
    for weights in scene_weights(scenes, draws, seed):
        value, rel = statistic(weights)
        if np.isfinite(value):
            values.append(value)
            if rel is not None and np.isfinite(rel):
                rels.append(rel)
    if not values:
        raise ValueError("no bootstrap resample had a counted keyframe")
    low, high = np.percentile(values, [2.5, 97.5])
    rel_low = rel_high = None
    if point_rel is not None and rels:
        rel_low, rel_high = (float(v) for v in np.percentile(rels, [2.5, 97.5]))
    return Interval(
        estimate=float(point),
        low=float(low),
        high=float(high),
        relative=None if point_rel is None else float(point_rel),
        relative_low=rel_low,
        relative_high=rel_high,
        samples=int(len(scenes)),
        scenes=int(len(set(scenes))),
        resamples=len(values),
    )


def paired_l2_difference(
    worse: np.ndarray,
    better: np.ndarray,
    scenes: Sequence[str],
    *,
    subset: np.ndarray | None = None,
    draws: int = 2000,
    seed: int = 0,
) -> Interval:
    """L2 Avg(`worse`) - L2 Avg(`better`) in metres (and in % of `better`), scene bootstrap.

    `worse` / `better`: [S, 6] per-sample step errors of two methods on the same keyframes;
    `subset` [S] bool restricts both to some keyframes (an event group) while the resampling still
    draws whole scenes.
    """
    worse = np.asarray(worse, dtype=np.float64).reshape(-1, PLAN_STEPS)
    better = np.asarray(better, dtype=np.float64).reshape(-1, PLAN_STEPS)
    if worse.shape != better.shape or len(worse) != len(scenes):
        raise ValueError(
            f"need the same keyframes: {worse.shape}, {better.shape}, {len(scenes)} scenes"
        )
    mask = np.ones(len(scenes)) if subset is None else np.asarray(subset, dtype=np.float64)
    if mask.shape != (len(scenes),):
        raise ValueError(f"subset must be [{len(scenes)}] booleans")
    if not mask.any():
        raise ValueError("the subset holds no keyframe")

    def statistic(weights: np.ndarray) -> tuple[float, float | None]:
        w = weights * mask
        if not w.any():
            return float("nan"), None
        base = l2_avg(better, w)
        diff = l2_avg(worse, w) - base
        return diff, (100.0 * diff / base if base > 0 else None)

    chosen = [s for s, m in zip(scenes, mask) if m]
    interval = bootstrap(scenes, statistic, draws=draws, seed=seed)
    # report the subset's own size, not the whole evaluation's
    return Interval(**{**asdict(interval), "samples": len(chosen), "scenes": len(set(chosen))})
