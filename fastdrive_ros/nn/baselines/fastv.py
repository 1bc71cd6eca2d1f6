"""FastV (Chen et al., ECCV 2024): drop the visual tokens the LLM barely attends to, early on.

FastV runs the first k LLM layers on every token, ranks the visual tokens by the attention they
receive in layer k (1-based; FastV's code reads the attention map of the last full layer), keeps
the top K in their original order and runs the remaining layers on the shorter sequence.
"""

from __future__ import annotations

from typing import Literal

import torch

from fastdrive_ros.nn.llm_stage import PrefillState

QueryRows = Literal["last", "text"]


class FastV:
    """LLM-stage selector; the planner (VLAPlanner.plan(selector=FastV(), keep=K)) drives it.

    Needs: the LLM's attention probabilities in layer `layer`, i.e. eager attention: fused
    SDPA/flash kernels never materialise them, so the planner recomputes that layer's softmax
    for the text rows (same projections and rotary tables, explicit causal mask). Layers
    [0, layer) see all N visual tokens, layers [layer, L) see the K kept ones; KV caches of the
    early layers keep all tokens, as in FastV.

    Args:
        layer: k, the number of layers that see every token (FastV's default K = 2).
        query: "last" ranks by the attention from the last prompt token (FastV); "text" by
            the mean attention from all text tokens.
    """

    name = "fastv"
    stage = "llm"

    def __init__(self, *, layer: int = 2, query: QueryRows = "last") -> None:
        if not isinstance(layer, int) or layer < 1:
            raise ValueError(f"FastV layer must be an int >= 1, got {layer!r}")
        if query not in ("last", "text"):
            raise ValueError(f"query must be 'last' or 'text', got {query!r}")
        self.layer = layer
        self.query = query
        self.last_scores: torch.Tensor | None = None

    def prune_points(self, num_layers: int, n_visual: int, keep: int) -> list[tuple[int, int]]:
        """One pruning step before layer k, down to exactly `keep` (none when keep >= N)."""
        if not 1 <= self.layer < num_layers:
            raise ValueError(
                f"FastV layer {self.layer} must leave layers to prune: need 1..{num_layers - 1} "
                f"for a {num_layers}-layer LLM"
            )
        return [] if keep >= n_visual else [(self.layer, keep)]

    def prune(
        self, state: PrefillState, text_attention: torch.Tensor, budget: int
    ) -> PrefillState:
        """Keep the text rows and the `budget` most attended visual rows (original order).

        text_attention: [H, T, L] probabilities from the state's text rows (prompt order).
        """
        per_row = text_attention.float().mean(dim=0)  # [T, L], mean over heads
        received = per_row[-1] if self.query == "last" else per_row.mean(dim=0)
        visual = state.visual_rows
        scores = received[visual]
        self.last_scores = scores.detach()
        top = torch.topk(scores, min(budget, visual.numel())).indices
        return state.keep_rows(torch.cat([state.text_rows, visual[top]]))
