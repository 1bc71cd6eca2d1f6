"""DivPrune (Alvar et al., CVPR 2025): keep the most diverse visual tokens, no training.

Token selection as a Max-Min Diversity Problem on cosine distance, solved greedily: each step adds
the token whose distance to its nearest already-kept token is largest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens


def divprune_order(tokens: torch.Tensor, keep: int) -> torch.Tensor:
    """[n, D] tokens -> [keep] indices in greedy max-min order.

    Cosine distance d = 1 - cos. Start (as the DivPrune reference code): the token farthest from
    its own nearest neighbour. Then repeatedly the token with the largest distance to the kept
    set, tracking each token's distance to that set with one vectorised min per step: O(n * K)
    after the [n, n] distance matrix. Ties go to the lowest index.
    """
    count = tokens.shape[0]
    if not 1 <= keep <= count:
        raise ValueError(f"keep must be in 1..{count}, got {keep}")
    unit = F.normalize(tokens.float(), dim=-1)
    distance = 1.0 - unit @ unit.T  # [n, n]
    distance.fill_diagonal_(0.0)
    chosen = torch.empty(keep, dtype=torch.long, device=tokens.device)
    if count == 1:
        return chosen.fill_(0)
    nearest = distance + torch.diag(torch.full((count,), float("inf"), device=tokens.device))
    first = torch.argmax(nearest.min(dim=1).values)
    chosen[0] = first
    to_kept = distance[first].clone()  # distance of every token to the kept set
    to_kept[first] = float("-inf")
    for step in range(1, keep):
        nxt = torch.argmax(to_kept)
        chosen[step] = nxt
        torch.minimum(to_kept, distance[nxt], out=to_kept)
        to_kept[nxt] = float("-inf")
    return chosen


class DivPrune:
    """Greedy max-min cosine diversity over the merged tokens.

    Needs: encoder output only (the tokens). A global K selects over all cameras' tokens together;
    per-camera budgets run the greedy search inside each camera. Memory: an [n, n] float matrix.
    """

    name = "divprune"
    stage = "encoder"

    def __init__(self) -> None:
        pass

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        tokens = visual.tokens
        kept = choose_with_budget(
            visual, keep, lambda start, stop, k: divprune_order(tokens[start:stop], k)
        )
        return Selection(kept_index=kept)
