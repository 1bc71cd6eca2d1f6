"""SparseVLM (Zhang et al., ICML 2025): text-guided progressive token pruning with recycling.

What the reference code (github.com/Gumpest/SparseVLMs, modelling_sparse_llama.py, score.py,
utils.py) does, and this class does too:

1. Raters, once per prompt, from the input embeddings: every visual token spreads a softmax over
   the text tokens after the image (v @ t^T); the mean over visual tokens is each text token's
   relevance; the raters are the text tokens above the mean relevance.
2. At each pruning layer l (LLaVA's 0-based 2, 6, 15 of 32) the layer runs on the current tokens;
   ITS OWN attention (mean over heads, mean over the rater rows) scores the visual tokens, and
   its output keeps the top-scored ones: layers from l + 1 on see fewer.
3. Recycling: of the dropped tokens, the top 30 % (int(0.3 * dropped) + 1) by that score are
   clustered with DPC-kNN (density from the k = clusters nearest neighbours, distance to the
   nearest denser token, centres = top density x distance) into int(pool / 10) + 1 clusters; each
   cluster's mean (of the layer's output) goes back in as one visual token.

Deviations, each for a reason (also listed in eval results.md through DEVIATIONS):
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastdrive_ros.nn.llm_stage import PrefillState

# SparseVLM prunes after LLaVA's 32-layer LLM's layers 2, 6 and 15 (0-based); other depths scale.
REFERENCE_LAYERS: tuple[int, ...] = (2, 6, 15)
REFERENCE_DEPTH = 32
RECYCLE_SHARE = 0.3  # top 30 % of the dropped tokens are recycled (score.py / the paper)
CLUSTER_SHARE = 0.1  # int(pool / 10) + 1 cluster centres

DEVIATIONS: tuple[str, ...] = (
    "budget: the last pruning step leaves exactly K visual tokens (recycled aggregates "
    "included), as every other method at the same ratio, with geometric steps from N before "
    "it; SparseVLM's own budgets are fixed per-layer counts whose layer average is the "
    "nominal budget, so here it sees more than K tokens in its early layers",
    "positions: an aggregate takes the M-RoPE position of its DPC centre (a dropped token), "
    "since kept tokens keep their original positions; LLaVA's 1-D code renumbers the "
    "aggregates right after the kept tokens",
    "ties: DPC density ties are broken by score order, not by random 1e-6 noise "
    "(deterministic runs)",
    "several images: the raters are the text tokens after the first image (the reference "
    "has one image and uses the text after it)",
    "attention: the pruning layer's text rows are recomputed in float32 with the same "
    "projections and rotary tables (fused attention kernels never return probabilities)",
)
__doc__ += "".join(f"\n- {item}." for item in DEVIATIONS) + "\n"


class SparseVLM:
    """LLM-stage selector; the planner (VLAPlanner.plan(selector=SparseVLM(), keep=K)) drives it.

    Needs: the LLM's attention probabilities (eager attention) from the text tokens in each
    pruning layer; the planner recomputes that layer's softmax for the text rows, since fused
    SDPA/flash kernels never return them. `begin(state)` receives the prompt's input embeddings
    (the raters come from them) before the first layer.

    Budget: recycled tokens COUNT against K. At each step the visual tokens the LLM sees
    (kept + recycled) equal that step's budget; budgets fall geometrically from N to exactly K
    at the last step, so the later layers see the same K as every other method.

    Args:
        layers: SparseVLM's pruning locations, 0-based: layer l's own attention rates the
            tokens and its output is pruned. None scales (2, 6, 15) of 32 to the LLM's depth.
        recycle: recycle the best of the dropped tokens as DPC-kNN cluster means.
        recycle_share: share of the dropped tokens (best scored) that are clustered (0.3).
        cluster_share: clusters per recycled token (int(pool * share) + 1; 0.1).
    """

    name = "sparsevlm"
    stage = "llm"

    def __init__(
        self,
        *,
        layers: Sequence[int] | None = None,
        recycle: bool = True,
        recycle_share: float = RECYCLE_SHARE,
        cluster_share: float = CLUSTER_SHARE,
    ) -> None:
        if layers is not None and (not layers or any(int(j) < 0 for j in layers)):
            raise ValueError(f"layers must be ints >= 0, got {layers!r}")
        if not 0.0 < recycle_share <= 1.0:
            raise ValueError(f"recycle_share must be in (0, 1], got {recycle_share}")
        if not 0.0 < cluster_share <= 1.0:
            raise ValueError(f"cluster_share must be in (0, 1], got {cluster_share}")
        self.layers = None if layers is None else tuple(sorted({int(j) for j in layers}))
        self.recycle = bool(recycle)
        self.recycle_share = float(recycle_share)
        self.cluster_share = float(cluster_share)
        self.recycled_total = 0
        self.rater_seq: torch.Tensor | None = None
        self.last_scores: torch.Tensor | None = None

    def schedule(self, num_layers: int) -> tuple[int, ...]:
        """The pruning locations l (0-based): layer l rates the tokens, layer l + 1 sees fewer."""
        if num_layers < 2:
            raise ValueError("SparseVLM needs an LLM with at least 2 layers")
        if self.layers is not None:
            bad = [j for j in self.layers if j > num_layers - 2]
            if bad:
                raise ValueError(
                    f"pruning layers {bad} must be below {num_layers - 1}: a later layer of the "
                    f"{num_layers}-layer LLM must see the pruned tokens"
                )
            return self.layers
        scaled = {
            min(round(j * num_layers / REFERENCE_DEPTH), num_layers - 2) for j in REFERENCE_LAYERS
        }
        return tuple(sorted(scaled))

    def prune_points(self, num_layers: int, n_visual: int, keep: int) -> list[tuple[int, int]]:
        """(j, budget) pairs: prune before layer j = l + 1 with layer l's attention.

        Budgets are geometric from N down to exactly `keep` at the last location.
        """
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
        return [(loc + 1, budget) for loc, budget in zip(layers, budgets)]

    def begin(self, state: PrefillState) -> None:
        """Choose the raters from the prompt's input embeddings (SparseVLM's text selection)."""
        self.rater_seq = rater_rows(state)

    def prune(
        self, state: PrefillState, text_attention: torch.Tensor, budget: int
    ) -> PrefillState:
        """Leave exactly `budget` visual rows: the best scored, plus recycled aggregates.

        text_attention: [H, T, L] probabilities inside the pruning layer from the state's text
        rows (prompt order); state: that layer's output.
        """
        visual, text = state.visual_rows, state.text_rows
        if visual.numel() <= budget:
            return state
        if self.rater_seq is None:
            raise RuntimeError("SparseVLM.prune before begin(): the planner must call begin")
        raters = torch.isin(state.seq_index[text], self.rater_seq)
        per_row = text_attention.float().mean(dim=0)[:, visual]  # [T, V], mean over heads
        scores = per_row[raters].mean(dim=0)
        self.last_scores = scores.detach()
        order = torch.argsort(scores, descending=True, stable=True)
        groups = self.cluster_count(visual.numel(), budget) if self.recycle else 0
        kept_count = budget - groups
        pruned = state.keep_rows(torch.cat([text, visual[order[:kept_count]]]))
        if groups < 1:
            return pruned
        dropped = order[kept_count:]
        pool = dropped[: int(self.recycle_share * dropped.numel()) + 1]
        hidden = state.hidden[0, visual[pool]].float()
        centres, assign = dpc_knn(hidden, groups)
        means = torch.stack([hidden[assign == g].mean(dim=0) for g in range(groups)])
        leaders = visual[pool[centres]]
        self.recycled_total += groups
        return pruned.with_extra(
            hidden=means,
            positions=state.positions[:, 0, leaders],
            seq_index=state.seq_index[leaders],
            visual_index=state.visual_index[leaders],
        )

    def cluster_count(self, n_visual: int, budget: int) -> int:
        """Aggregates at one step: pool = int(0.3 dropped) + 1, int(0.1 pool) + 1 clusters.

        `dropped` is what the budget removes (N - budget); the aggregates then take slots of the
        budget (recycled tokens count against K), at least one kept token stays.
        """
        dropped = n_visual - budget
        if dropped < 1:
            return 0
        pool = int(self.recycle_share * dropped) + 1
        return max(0, min(int(pool * self.cluster_share) + 1, pool, budget - 1))


def rater_rows(state: PrefillState) -> torch.Tensor:
    """seq_index of the raters: text rows after the first image more relevant than the mean.

    relevance[t] = mean over visual tokens v of softmax_t(v . t) (SparseVLM's m_v_t); with no
    row above the mean (all equal), every candidate rates.
    """
    visual, text = state.visual_rows, state.text_rows
    if visual.numel() == 0:
        return state.seq_index[text]
    first = state.seq_index[visual].min()
    after = text[state.seq_index[text] > first]
    if after.numel() == 0:
        raise ValueError("SparseVLM needs text after the image: the prompt has none")
    v = state.hidden[0, visual].float()
    t = state.hidden[0, after].float()
    relevance = (v @ t.T).softmax(dim=1).mean(dim=0)
    chosen = relevance > relevance.mean()
    if not bool(chosen.any()):
        chosen = torch.ones_like(chosen)
    return state.seq_index[after[chosen]]


def dpc_knn(x: torch.Tensor, clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC-kNN clustering of rows x [P, D] (best first) -> (centre rows [c], assignment [P]).

    As SparseVLM's cluster_and_merge: distances / sqrt(D); density = exp(-mean squared distance
    to the k = c nearest rows, itself included); delta = distance to the nearest denser row (the
    largest distance for the densest); centres = top c of density x delta; every row joins its
    nearest centre, each centre itself. Ties in density go to the earlier (better-scored) row.
    """
    count, width = x.shape
    if not 1 <= clusters <= count:
        raise ValueError(f"need 1 <= clusters <= rows, got {clusters} for {count}")
    dist = torch.cdist(x[None], x[None])[0] / width**0.5
    nearest = dist.topk(clusters, dim=-1, largest=False).values
    density = (-(nearest**2).mean(dim=-1)).exp()
    density = density + 1e-6 * torch.linspace(1.0, 0.0, count, dtype=density.dtype)
    denser = density[None, :] > density[:, None]  # [i, j]: j is denser than i
    delta = torch.where(denser, dist, dist.max()).min(dim=-1).values
    centres = torch.topk(delta * density, clusters).indices
    assign = dist[centres].argmin(dim=0)
    assign[centres] = torch.arange(clusters)
    return centres, assign
