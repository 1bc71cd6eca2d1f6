"""SparseVLM (Zhang et al., ICML 2025): text-guided progressive token pruning with recycling.

At a few LLM layers SparseVLM (1) picks "raters": the text tokens most relevant to the image,
(2) scores every visual token by the attention the raters give it, (3) drops the lowest-scored
tokens, and (4) recycles the best of the dropped ones: clusters them and feeds each cluster's
mean back as one aggregated token, so their information is not lost entirely.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.llm_stage import PrefillState

# SparseVLM prunes LLaVA's 32-layer LLM at layers 2, 6 and 15; other depths scale this.
REFERENCE_LAYERS: tuple[int, ...] = (2, 6, 15)
REFERENCE_DEPTH = 32


class SparseVLM:
    """LLM-stage selector; the planner (VLAPlanner.plan(selector=SparseVLM(), keep=K)) drives it.

    Needs: the LLM's attention probabilities (eager attention) from the text tokens at each
    pruning layer; the planner recomputes that layer's softmax for the text rows, since fused
    SDPA/flash kernels never return them. Raters are the text rows whose total attention on the
    visual tokens is at least the mean over text rows (rows before the first image see none).

    Budget: recycled tokens COUNT against K. At each step the visual tokens the LLM sees
    (kept + recycled) equal that step's budget; budgets fall geometrically from N to exactly K
    at the last step, so the later layers see the same K as every other method.

    Args:
        layers: the pruning steps j: layers [0, j) see the tokens of the previous step, the
            attention inside layer j (1-based) rates them, layers from j + 1 on see fewer.
            None scales SparseVLM's (2, 6, 15) of 32 layers to the LLM's depth.
        recycle: aggregated tokens made from the dropped ones at each step (0: no recycling).
        recycle_pool: fraction of the dropped tokens (best scored) that are recycled.
    """

    name = "sparsevlm"
    stage = "llm"

    def __init__(
        self,
        *,
        layers: Sequence[int] | None = None,
        recycle: int = 2,
        recycle_pool: float = 0.3,
    ) -> None:
        if layers is not None and (not layers or any(int(j) < 1 for j in layers)):
            raise ValueError(f"layers must be ints >= 1, got {layers!r}")
        if recycle < 0:
            raise ValueError(f"recycle must be >= 0, got {recycle}")
        if not 0.0 < recycle_pool <= 1.0:
            raise ValueError(f"recycle_pool must be in (0, 1], got {recycle_pool}")
        self.layers = None if layers is None else tuple(sorted({int(j) for j in layers}))
        self.recycle = int(recycle)
        self.recycle_pool = float(recycle_pool)
        self.recycled_total = 0

    def schedule(self, num_layers: int) -> tuple[int, ...]:
        """The pruning layers j (before layer j, from the attention inside layer j - 1)."""
        if num_layers < 2:
            raise ValueError("SparseVLM needs an LLM with at least 2 layers")
        if self.layers is not None:
            bad = [j for j in self.layers if j >= num_layers]
            if bad:
                raise ValueError(f"pruning layers {bad} not below the LLM's {num_layers} layers")
            return self.layers
        scaled = {
            min(max(round(j * num_layers / REFERENCE_DEPTH), 1), num_layers - 1)
            for j in REFERENCE_LAYERS
        }
        return tuple(sorted(scaled))

    def prune_points(self, num_layers: int, n_visual: int, keep: int) -> list[tuple[int, int]]:
        """(layer, budget) pairs: geometric from N down to exactly `keep` at the last layer."""
        self.recycled_total = 0
        if keep >= n_visual:
            return []
        layers = self.schedule(num_layers)
        steps = len(layers)
        budgets = [
            max(keep, round(n_visual * (keep / n_visual) ** ((s + 1) / steps)))
            for s in range(steps)
        ]
        budgets[-1] = keep
        return list(zip(layers, budgets))

    def prune(
        self, state: PrefillState, text_attention: torch.Tensor, budget: int
    ) -> PrefillState:
        """Leave exactly `budget` visual rows: the best scored, plus recycled aggregates."""
        visual, text = state.visual_rows, state.text_rows
        if visual.numel() <= budget:
            return state
        per_row = text_attention.float().mean(dim=0)[:, visual]  # [T, V]
        relevance = per_row.sum(dim=1)
        raters = relevance >= relevance.mean()
        scores = per_row[raters].mean(dim=0)
        order = torch.argsort(scores, descending=True)
        dropped = visual.numel() - budget
        pool = order[budget:][: max(1, round(self.recycle_pool * dropped))]
        groups = min(self.recycle, budget - 1, pool.numel())
        kept = visual[order[: budget - groups]]
        pruned = state.keep_rows(torch.cat([text, kept]))
        if groups < 1:
            return pruned
        self.recycled_total += groups
        merged = _aggregate(state, visual[pool], groups)
        return pruned.with_extra(**merged)


def _aggregate(state: PrefillState, rows: torch.Tensor, groups: int) -> dict[str, torch.Tensor]:
    """Cluster `rows` (best first) into `groups` by cosine similarity; one mean token each.

    Seeds are the best-scored rows; every row joins its most similar seed. Each aggregate takes
    the place (position, prompt slot, visual index) of its best-scored member, a token that was
    dropped, so no two rows share a position.
    """
    hidden = state.hidden[0, rows].float()  # [P, D]
    unit = F.normalize(hidden, dim=-1)
    assign = (unit @ unit[:groups].T).argmax(dim=1)  # [P]; rows are sorted best first
    assign[:groups] = torch.arange(groups, device=assign.device)
    means = torch.stack([hidden[assign == g].mean(dim=0) for g in range(groups)])
    leaders = rows[:groups]
    return {
        "hidden": means,
        "positions": state.positions[:, 0, leaders],
        "seq_index": state.seq_index[leaders],
        "visual_index": state.visual_index[leaders],
    }
