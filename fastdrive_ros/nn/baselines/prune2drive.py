"""Prune2Drive (Xiong et al., arXiv 2508.13305): multi-view farthest points, per-view budgets.

Two parts, both training-free and attention-free:
- T-FPS: inside each camera, farthest point sampling in the token embedding space (cosine
  distance): start from the token farthest from the camera's mean embedding, then repeatedly add
  the token farthest from everything kept so far. Kept tokens cover the view's content.
- view-adaptive budgets: the global K is split over cameras by per-camera weights (the paper
  searches these ratios on validation data, finding the front view worth more than the rear).
  Weights default to equal, which is the proportional split every other selector gets; pass
  `camera_weights` (e.g. from such a search) to favour some views.

A per-camera `keep` (a list) is used as given: the budgets are then someone else's choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens, check_keep


def fps_order(tokens: torch.Tensor, keep: int) -> torch.Tensor:
    """[n, D] tokens -> [keep] indices in farthest-point order (cosine distance).

    The first is the token farthest from the mean direction; ties go to the lowest index.
    """
    count = tokens.shape[0]
    if not 1 <= keep <= count:
        raise ValueError(f"keep must be in 1..{count}, got {keep}")
    unit = F.normalize(tokens.float(), dim=-1)
    centre = F.normalize(unit.mean(dim=0), dim=0)
    chosen = torch.empty(keep, dtype=torch.long, device=tokens.device)
    first = torch.argmax(1.0 - unit @ centre)
    chosen[0] = first
    to_kept = 1.0 - unit @ unit[first]  # distance of every token to the kept set
    to_kept[first] = float("-inf")
    for step in range(1, keep):
        nxt = torch.argmax(to_kept)
        chosen[step] = nxt
        torch.minimum(to_kept, 1.0 - unit @ unit[nxt], out=to_kept)
        to_kept[nxt] = float("-inf")
    return chosen


def weighted_budgets(counts: Sequence[int], keep: int, weights: Sequence[float]) -> list[int]:
    """Split K over cameras in proportion to count x weight, each capped at its count.

    Largest remainder rounding; what a capped camera cannot take goes to the others, so the
    budgets always add up to K.
    """
    if len(weights) != len(counts):
        raise ValueError(f"{len(weights)} camera weights for {len(counts)} cameras")
    if any(w < 0 for w in weights) or not any(w > 0 and n > 0 for w, n in zip(weights, counts)):
        raise ValueError(f"camera weights must be >= 0 with one positive, got {list(weights)}")
    budgets = [0] * len(counts)
    open_ = [i for i, (n, w) in enumerate(zip(counts, weights)) if n > 0 and w > 0]
    left = keep
    while left > 0 and open_:
        mass = sum(counts[i] * weights[i] for i in open_)
        exact = {i: left * counts[i] * weights[i] / mass for i in open_}
        room = {i: counts[i] - budgets[i] for i in open_}
        give = {i: min(room[i], math.floor(exact[i])) for i in open_}
        rest = left - sum(give.values())
        order = sorted(open_, key=lambda i: exact[i] - give[i], reverse=True)
        for i in order:
            if rest == 0:
                break
            if give[i] < room[i]:
                give[i] += 1
                rest -= 1
        for i in open_:
            budgets[i] += give[i]
        left = keep - sum(budgets)
        open_ = [i for i in open_ if budgets[i] < counts[i]]
    if left > 0:  # weights excluded cameras that must now take the rest
        for i, n in enumerate(counts):
            extra = min(left, n - budgets[i])
            budgets[i] += extra
            left -= extra
    return budgets


class Prune2Drive:
    """T-FPS inside each camera with view-adaptive budgets (see module docstring).

    Needs: encoder output only (the tokens and the per-camera grid). Memory: O(n) per step, no
    [n, n] matrix. `camera_weights`: one non-negative weight per camera, in the camera order of
    the tokens (default: equal).
    """

    name = "prune2drive"
    stage = "encoder"

    def __init__(self, *, camera_weights: Sequence[float] | None = None) -> None:
        self.camera_weights = (
            None if camera_weights is None else [float(w) for w in camera_weights]
        )

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        counts = visual.tokens_per_camera
        keep = check_keep(counts, keep)
        if isinstance(keep, int):
            weights = self.camera_weights or [1.0] * len(counts)
            keep = weighted_budgets(counts, keep, weights)
        tokens = visual.tokens
        kept = choose_with_budget(visual, keep, lambda a, b, k: fps_order(tokens[a:b], k))
        return Selection(kept_index=kept)
