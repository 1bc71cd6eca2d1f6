"""Boosted regression trees as tensors: a fitted ensemble that runs wherever torch runs.

The driver's decision is read best by boosted trees (train/dense_probe.py: a plain MLP on the same
corridor features reads less), but a planner in the car runs torch, not scikit-learn. This holds
every tree's nodes as [trees, nodes] tensors (padded with leaves) and walks all trees at once, one
level per step: a gather per level, no Python per sample, exportable like any other module, and
saved with safetensors like the rest of a bundle. train/boosted.py fills it from a fitted
scikit-learn HistGradientBoostingRegressor; its predictions equal scikit-learn's.

Split rule (scikit-learn's): x[feature] <= threshold goes left; NaN goes where the fit sent the
missing values of that node.
"""

from __future__ import annotations

import torch
from torch import nn


class TreeEnsemble(nn.Module):
    """x [B, features] -> baseline + the sum of each tree's leaf value [B], in float64.

    feature, left, right [T, N] int64; threshold, value [T, N] float64; leaf, missing_left
    [T, N] bool; every tree's root is node 0; depth: the deepest leaf's depth (walk steps).
    """

    def __init__(
        self,
        *,
        feature: torch.Tensor,
        threshold: torch.Tensor,
        left: torch.Tensor,
        right: torch.Tensor,
        value: torch.Tensor,
        leaf: torch.Tensor,
        missing_left: torch.Tensor,
        baseline: float,
        features: int,
        depth: int,
    ) -> None:
        super().__init__()
        shape = feature.shape
        for name, t in (("threshold", threshold), ("left", left), ("right", right)):
            if t.shape != shape:
                raise ValueError(f"{name} must be {tuple(shape)}, got {tuple(t.shape)}")
        self.register_buffer("feature", feature.to(torch.int64))
        self.register_buffer("threshold", threshold.to(torch.float64))
        self.register_buffer("left", left.to(torch.int64))
        self.register_buffer("right", right.to(torch.int64))
        self.register_buffer("value", value.to(torch.float64))
        self.register_buffer("leaf", leaf.to(torch.bool))
        self.register_buffer("missing_left", missing_left.to(torch.bool))
        self.register_buffer("baseline", torch.tensor(float(baseline), dtype=torch.float64))
        self.features = int(features)
        self.depth = int(depth)

    @classmethod
    def shaped(cls, trees: int, nodes: int, *, features: int, depth: int) -> TreeEnsemble:
        """An all-leaf ensemble of this shape, to load a saved state into."""

        def full(fill: float, dtype: torch.dtype) -> torch.Tensor:  # one tensor per buffer
            return torch.full((trees, nodes), fill, dtype=dtype)

        return cls(
            feature=full(0, torch.int64),
            threshold=full(0.0, torch.float64),
            left=full(0, torch.int64),
            right=full(0, torch.int64),
            value=full(0.0, torch.float64),
            leaf=full(1, torch.bool),
            missing_left=full(1, torch.bool),
            baseline=0.0,
            features=features,
            depth=depth,
        )

    def _apply(self, fn, recurse=True):  # noqa: ANN001 (nn.Module's signature)
        """Follow device moves, never dtype casts.

        A threshold rounded to float32 or bfloat16 (`VLA.to(dtype=...)`) would send samples down
        other branches than the fitted trees took.
        """
        device = fn(torch.zeros(1, dtype=torch.float64)).device
        for name, buffer in self._buffers.items():
            if buffer is not None:
                self._buffers[name] = buffer.to(device)
        return self

    @property
    def trees(self) -> int:
        return int(self.feature.shape[0])

    @property
    def nodes(self) -> int:
        return int(self.feature.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"the trees read [B, {self.features}] features, got {tuple(x.shape)}")
        x = x.to(torch.float64)
        tree = torch.arange(self.trees, device=x.device)
        node = torch.zeros(x.shape[0], self.trees, dtype=torch.int64, device=x.device)
        for _ in range(self.depth):
            seen = torch.gather(x, 1, self.feature[tree, node])
            go_left = torch.where(
                seen.isnan(), self.missing_left[tree, node], seen <= self.threshold[tree, node]
            )
            step = torch.where(go_left, self.left[tree, node], self.right[tree, node])
            node = torch.where(self.leaf[tree, node], node, step)
        return self.baseline + self.value[tree, node].sum(dim=1)
