"""The token-selection contract shared by ReconPruner and every baseline.

All selectors see the merged visual tokens of all cameras, concatenated in CAMERA order and in
raster order inside each camera (Qwen2.5-VL's order), and return which of them to keep. Kept tokens
always keep their ORIGINAL indices (ascending), because the planner gives them the M-RoPE positions
of the full sequence.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch

SelectorName = Literal[
    "reconpruner", "fastv", "sparsevlm", "divprune", "vispruner", "prune2drive", "random", "none"
]
SelectorStage = Literal["encoder", "llm"]


def keep_count(n_tokens: int, prune_ratio: float) -> int:
    """K = floor(N * (1 - p)), the paper's budget; at least one token is always kept."""
    if n_tokens <= 0:
        raise ValueError(f"need at least one visual token, got {n_tokens}")
    if not 0.0 <= prune_ratio < 1.0:
        raise ValueError(f"prune ratio must be in [0, 1), got {prune_ratio}")
    return max(1, math.floor(n_tokens * (1.0 - prune_ratio) + 1e-9))


def per_camera_keep(tokens_per_camera: Sequence[int], prune_ratio: float) -> list[int]:
    """Split K = keep_count(sum N_c, p) over cameras in proportion to their token counts.

    Largest-remainder rounding, so the budgets add up to exactly the global K (needed when one
    top-K over all cameras exceeds TensorRT's K < 3840 limit and each camera is pruned alone).
    """
    return split_keep(tokens_per_camera, keep_count(sum(tokens_per_camera), prune_ratio))


def split_keep(tokens_per_camera: Sequence[int], keep: int) -> list[int]:
    """Split a global K over cameras in proportion to their token counts (largest remainder)."""
    total = sum(tokens_per_camera)
    if not 1 <= keep <= total:
        raise ValueError(f"keep must be in 1..{total} (all visual tokens), got {keep}")
    exact = [n * keep / total for n in tokens_per_camera]
    budgets = [min(n, math.floor(e)) for n, e in zip(tokens_per_camera, exact)]
    order = sorted(range(len(exact)), key=lambda i: exact[i] - budgets[i], reverse=True)
    for i in order[: keep - sum(budgets)]:
        budgets[i] += 1
    return budgets


def check_keep(tokens_per_camera: Sequence[int], keep: int | Sequence[int]) -> int | list[int]:
    """Validate the `keep` of EncoderStageSelector.select against the cameras' token counts.

    A global K must be in 1..N; per-camera budgets need one K per camera, each in 0..n_c, and keep
    at least one token overall. Returns K (int) or the budgets (list of int).
    """
    total = sum(tokens_per_camera)
    if not isinstance(keep, Sequence):
        k = operator.index(keep)  # ints (Python or numpy), not floats
        if not 1 <= k <= total:
            raise ValueError(f"keep must be in 1..{total} (all visual tokens), got {keep}")
        return k
    budgets = [int(k) for k in keep]
    if len(budgets) != len(tokens_per_camera):
        raise ValueError(f"{len(budgets)} per-camera budgets for {len(tokens_per_camera)} cameras")
    for camera, (budget, count) in enumerate(zip(budgets, tokens_per_camera)):
        if not 0 <= budget <= count:
            raise ValueError(f"camera {camera} budget {budget} is outside 0..{count}")
    if sum(budgets) < 1:
        raise ValueError("per-camera budgets keep no token at all")
    return budgets


@dataclass(frozen=True)
class VisualTokens:
    """Merged visual tokens of all cameras.

    Attributes:
        tokens: [N, D] encoder output (after the 2x2 merger), cameras concatenated.
        grid_thw: [C, 3] int64 per camera (t, h, w) in *patch* units, as Qwen2.5-VL's
            `image_grid_thw`; camera c has t*h*w/4 merged tokens.
        aux: optional extra encoder outputs a selector may need, e.g. "attention_received" [N]
            from the last vision block (VisPruner); each selector's docstring says what it needs.
    """

    tokens: torch.Tensor
    grid_thw: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def tokens_per_camera(self) -> list[int]:
        return [int(t * h * w) // 4 for t, h, w in self.grid_thw.tolist()]

    def __post_init__(self) -> None:
        if self.tokens.ndim != 2:
            raise ValueError(f"tokens must be [N, D], got {tuple(self.tokens.shape)}")
        if sum(self.tokens_per_camera) != self.tokens.shape[0]:
            raise ValueError(
                "image features and grid do not match: "
                f"tokens {self.tokens.shape[0]}, grid says {sum(self.tokens_per_camera)}"
            )


@dataclass(frozen=True)
class Selection:
    """Which visual tokens survive.

    Attributes:
        kept_index: [K] int64, strictly ascending indices into the N visual tokens.
        scores: [N] the score the selector ranked by, if it has one (for overlays and debugging).
        tokens: [K, D] values to plan from in place of `visual.tokens[kept_index]`; only the
            evaluation probe "shuffled" sets it (another scene's tokens at this frame's positions),
            every pruner leaves it None.
    """

    kept_index: torch.Tensor
    scores: torch.Tensor | None = None
    tokens: torch.Tensor | None = None

    def __post_init__(self) -> None:
        idx = self.kept_index
        if idx.ndim != 1 or idx.dtype != torch.long:
            raise ValueError(f"kept_index must be 1-D int64, got {idx.dtype} {tuple(idx.shape)}")
        if idx.numel() > 1 and not bool((idx[1:] > idx[:-1]).all()):
            raise ValueError("kept_index must be strictly ascending (original order)")
        if self.tokens is not None and (
            self.tokens.ndim != 2 or self.tokens.shape[0] != idx.numel()
        ):
            raise ValueError(
                f"replacement tokens must be [{idx.numel()}, D], got {tuple(self.tokens.shape)}"
            )


@runtime_checkable
class EncoderStageSelector(Protocol):
    """Chooses tokens from encoder output alone, before the planner runs.

    ReconPruner, DivPrune, VisPruner, random and none; `keep` is a global K or one K per camera.
    """

    name: str
    stage: SelectorStage  # "encoder"

    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection: ...
