"""Token probe: do a tower's tokens carry what a planner without the ego's motion needs.

A linear (ridge) probe, cheaper than training a planner by three orders of magnitude: from the
front camera's tokens (the row profile of the road ahead: the middle third of the columns,
averaged per token row) plus the minimal ego inputs (speed, command), predict the residual of the
3-s future over constant velocity, with folds over scenes (never a scene in both fit and test).
Reported in L2 Avg (metres, the evaluation's convention) for: the prior alone, ego only, ego +
own tokens and ego + another scene's tokens (the same fit, shuffled inputs). Use it to compare two
towers on the same keyframes (`python -m fastdrive_ros.train.token_probe CACHE RECORDS`); it is
a lower bound on what a planner can read (linear, one camera, pooled), not a planning result.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import restrict_ego
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.train.records import KeyframeRecord

HORIZONS = (2, 4, 6)  # steps of 0.5 s: 1, 2, 3 s


def row_profile(tokens: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """[S, h*w(+...), D] -> [S, h*D]: the first camera's middle-third columns averaged per row."""
    h, w = grid_hw
    front = tokens[:, : h * w].reshape(len(tokens), h, w, -1)
    return front[:, :, w // 3 : 2 * w // 3].mean(axis=2).reshape(len(tokens), -1)


def _ridge(train_x, train_y, test_x, alpha: float) -> np.ndarray:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    offset = train_y.mean(0)
    weights = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (train_y - offset))
    return b @ weights + offset


def _l2_avg(residual, prior, future, valid) -> float:
    dist = np.linalg.norm(residual.reshape(-1, 6, 2) + prior - future, axis=-1) * valid
    return float(np.mean([dist[:, :k].sum() / max(valid[:, :k].sum(), 1) for k in HORIZONS]))


@dataclass(frozen=True)
class MinimalProblem:
    """Keyframes as a regression on the minimal ego inputs: the residual over the prior.

    ego: [S, 4] speed, speed^2 / 10, command left / right; prior, future: [S, 6, 2];
    valid: [S, 6] (0 / 1); target: [S, 12] future - prior.
    """

    ego: np.ndarray
    prior: np.ndarray
    future: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, records: Sequence[KeyframeRecord]) -> MinimalProblem:
        egos = [restrict_ego(r.ego, "minimal") for r in records]
        return cls(
            ego=np.array(
                [
                    [e.speed, e.speed**2 / 10, e.command == "left", e.command == "right"]
                    for e in egos
                ],
                dtype=float,
            ),
            prior=np.stack([kinematic_prior(e) for e in egos]),
            future=np.stack([np.nan_to_num(r.future_xy) for r in records]),
            valid=np.stack([r.future_valid for r in records]).astype(float),
        )

    @property
    def target(self) -> np.ndarray:
        return (self.future - self.prior).reshape(len(self.future), -1)

    def step_errors(self, residual: np.ndarray) -> np.ndarray:
        """[S, 6] metres of prior + residual from the future; NaN where a step is not valid."""
        dist = np.linalg.norm(residual.reshape(-1, 6, 2) + self.prior - self.future, axis=-1)
        return np.where(self.valid > 0, dist, np.nan)

    def l2_avg(self, residual: np.ndarray, rows: np.ndarray | slice = slice(None)) -> float:
        """L2 Avg (m) of prior + residual on `rows` (the residuals of those rows)."""
        return _l2_avg(residual, self.prior[rows], self.future[rows], self.valid[rows])


def probe(
    features: np.ndarray,
    records: Sequence[KeyframeRecord],
    *,
    alpha: float = 1e4,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """L2 Avg (m) of prior / ego / ego+tokens / ego+shuffled tokens over scene folds."""
    if len(features) != len(records):
        raise ValueError(f"{len(features)} feature rows for {len(records)} records")
    problem = MinimalProblem.of(records)
    ego, target = problem.ego, problem.target
    scenes = np.array([r.scene for r in records])
    names = sorted(set(scenes))
    if len(names) < folds:
        raise ValueError(f"need at least {folds} scenes for {folds} folds, got {len(names)}")
    rng = np.random.default_rng(seed)
    partner = np.array([rng.choice(np.flatnonzero(scenes != s)) for s in scenes])
    with_tokens = np.hstack([ego, features])
    shuffled = np.hstack([ego, features[partner]])
    totals: dict[str, list[float]] = {"prior": [], "ego": [], "tokens": [], "shuffled": []}
    for fold in np.array_split(np.array(names), folds):
        test = np.isin(scenes, fold)
        fit = ~test
        totals["prior"].append(problem.l2_avg(np.zeros_like(target[test]), test))
        totals["ego"].append(problem.l2_avg(_ridge(ego[fit], target[fit], ego[test], 1.0), test))
        own = _ridge(with_tokens[fit], target[fit], with_tokens[test], alpha)
        totals["tokens"].append(problem.l2_avg(own, test))
        other = _ridge(with_tokens[fit], target[fit], shuffled[test], alpha)
        totals["shuffled"].append(problem.l2_avg(other, test))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def main(argv: Sequence[str] | None = None) -> None:
    from fastdrive_ros.train.records import load_records
    from fastdrive_ros.train.token_cache import TokenCache

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", help="token cache folder (build-default's work/cache/...)")
    parser.add_argument("records", help="the records JSON the cache was built from")
    parser.add_argument("--alpha", type=float, nargs="+", default=[1e3, 1e4, 1e5])
    args = parser.parse_args(argv)
    cache = TokenCache(args.cache)
    records, _ = load_records(args.records)
    h, w = (int(v) // 2 for v in cache.spec.grid_thw[0][1:])  # merged token grid
    tokens = np.stack([cache.tokens(i)[: h * w].float().numpy() for i in range(len(cache))])
    features = row_profile(tokens, (h, w))
    for alpha in args.alpha:
        figures = probe(features, records, alpha=alpha)
        print(f"alpha {alpha:g}: " + ", ".join(f"{k} {v:.3f} m" for k, v in figures.items()))


if __name__ == "__main__":
    main()
