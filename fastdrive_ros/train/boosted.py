"""Boosted regression trees: fitted with scikit-learn, carried as torch (nn/tree_ensemble.py).

scikit-learn fits them well on the few thousand keyframes a world has; the planner and the node
run torch. `tree_ensemble_of` copies a fitted HistGradientBoostingRegressor's nodes into a
TreeEnsemble whose predictions equal the regressor's, so what the probes measure is what ships.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastdrive_ros.nn.tree_ensemble import TreeEnsemble


def boosted_fit(x: np.ndarray, y: np.ndarray, *, trees: int, seed: int) -> Any:
    """A HistGradientBoostingRegressor fitted on (x, y).

    One OpenMP thread: the fits are small, and more threads than free cores spin (a 240-row fit
    took 5x longer beside another job).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingRegressor(
        max_iter=trees,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        random_state=seed,
    )
    with threadpool_limits(1):
        return model.fit(x, y)


def tree_ensemble_of(model: Any) -> TreeEnsemble:
    """The fitted regressor's trees as a TreeEnsemble (same predictions, float64).

    Reads the fitted predictors' node records (scikit-learn's `_predictors`, checked against the
    regressor's own predictions by the tests); categorical splits are refused.
    """
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise ValueError("tree_ensemble_of needs a fitted HistGradientBoostingRegressor")
    if any(len(per_iteration) != 1 for per_iteration in predictors):
        raise ValueError("tree_ensemble_of reads single-output regressors only")
    nodes = [per_iteration[0].nodes for per_iteration in predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise ValueError("categorical splits are not supported: fit on numeric features")
    width = max(len(n) for n in nodes)

    def padded(field: str, fill: float | int, dtype: torch.dtype) -> torch.Tensor:
        out = np.full((len(nodes), width), fill, dtype=np.float64)
        for t, n in enumerate(nodes):
            out[t, : len(n)] = n[field]
        return torch.from_numpy(out).to(dtype)

    return TreeEnsemble(
        feature=padded("feature_idx", 0, torch.int64),
        threshold=padded("num_threshold", 0.0, torch.float64),
        left=padded("left", 0, torch.int64),
        right=padded("right", 0, torch.int64),
        value=padded("value", 0.0, torch.float64),
        leaf=padded("is_leaf", 1, torch.bool),
        missing_left=padded("missing_go_to_left", 1, torch.bool),
        baseline=float(np.asarray(model._baseline_prediction).reshape(-1)[0]),
        features=int(model.n_features_in_),
        depth=max(int(n["depth"].max()) for n in nodes),
    )
