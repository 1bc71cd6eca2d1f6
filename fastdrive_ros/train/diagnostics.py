"""Does the planner use the cameras? L2 with the real tokens, with none, and with another frame's.

A planner can beat constant velocity from the ego status in its prompt alone (acceleration, the
pose 1 s ago). Planning the same validation keyframes (a) with their own visual tokens, (b) with
no visual token and (c) with the tokens of a different keyframe (a fixed derangement) separates
what the images add: if (a) is not better than (b) and (c), pruning choices cannot matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.train.planner import constant_velocity_batch, horizon_l2
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_cache import TokenCache


@torch.no_grad()
def image_dependence(
    *,
    planner: VLAPlanner,
    cache: TokenCache,
    records: Sequence[KeyframeRecord],
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """L2 Avg (m) over `records` for own / no / other-frame tokens, and constant velocity."""
    if len(cache) != len(records) or len(records) < 2:
        raise ValueError("need at least two records, the ones the cache was built from")
    planner.eval()
    count = len(records)
    shift = 1 + int(np.random.default_rng(seed).integers(0, count - 1))
    grid = cache.grid_thw
    width = cache.spec.width
    sums: dict[str, float] = {"own": 0.0, "none": 0.0, "other": 0.0, "constant_velocity": 0.0}
    for start in range(0, count, batch_size):
        idx = list(range(start, min(count, start + batch_size)))
        egos = [records[i].ego for i in idx]
        future = torch.as_tensor(
            np.stack([np.nan_to_num(records[i].future_xy) for i in idx]), dtype=torch.float32
        )
        valid = torch.as_tensor(np.stack([records[i].future_valid for i in idx]))
        variants = {
            "own": [cache.tokens(i).float() for i in idx],
            "none": [torch.zeros(0, width) for _ in idx],
            "other": [cache.tokens((i + shift) % count).float() for i in idx],
        }
        for name, tokens in variants.items():
            kept = [torch.arange(t.shape[0]) for t in tokens]
            pred = planner.forward_regression(
                visual_tokens=tokens, kept_index=kept, grid_thw=grid, egos=egos
            )
            sums[name] += horizon_l2(pred, future, valid)["l2_avg"] * len(idx)
        cv = constant_velocity_batch(egos, torch.device("cpu"))
        sums["constant_velocity"] += horizon_l2(cv, future, valid)["l2_avg"] * len(idx)
    return {f"l2_avg_{name}": value / count for name, value in sums.items()}
