"""CDPruner (Zhang et al., NeurIPS 2025): keep the visual tokens of maximal conditional diversity.

Training-free. Each visual token's relevance r to the instruction is its mean cosine similarity to
the instruction's token embeddings, min-max normalised to [0, 1]; its quality is
q = exp(alpha r) with alpha = theta / (2 (1 - theta)) (theta = 0.5, the reference code's default,
trades relevance against diversity; theta = 1 uses q = r); the DPP kernel is
L = diag(q) S diag(q) with S the tokens' cosine similarities, so a subset scores high when its
tokens are both relevant and unlike each other; the subset is chosen by greedy MAP inference
(Chen et al. 2018's incremental Cholesky, O(N K) per step). The reference code negates the
similarity for LLaVA's embeddings; we use it as is (our planner's sign was not studied).

Adaptation: our tokens have width D = 256 and there are up to 1080 of them, so S has rank <= D
and the plain greedy runs out of kernel after D picks (the residuals reach zero). The kernel gets
a ridge, L = diag(q) (S + EPS I) diag(q): identical ranking while the kernel has rank left, and
past it the remaining tokens come in order of relevance.

Needs: encoder output and the instruction as embeddings in the same space as the visual tokens:
`aux["instruction"]` [M, D] (for our planner: the prompt's input embeddings, whose width is the
merger's output width). The frame pipeline's backends do not pass the prompt to encoder-stage
selectors yet, so CDPruner runs in offline comparisons that supply it, not in the node.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens

INSTRUCTION_KEY = "instruction"
EPS = 1e-3


def relevance(tokens: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
    """[n] mean cosine similarity of each token to the instruction, min-max scaled to [0, 1]."""
    sim = F.normalize(tokens.double(), dim=-1) @ F.normalize(instruction.double(), dim=-1).T
    rel = sim.mean(dim=1)
    span = rel.max() - rel.min()
    return (rel - rel.min()) / span if span > 0 else torch.ones_like(rel)


def dpp_greedy(kernel: torch.Tensor, keep: int) -> torch.Tensor:
    """[keep] indices of the greedy MAP subset of a PSD kernel [n, n] (fast incremental form)."""
    n = kernel.shape[0]
    if not 1 <= keep <= n:
        raise ValueError(f"keep must be in 1..{n}, got {keep}")
    cis = torch.zeros(keep, n, dtype=kernel.dtype, device=kernel.device)
    gains = torch.diagonal(kernel).clone()  # marginal log-det gain of adding each token
    chosen = torch.empty(keep, dtype=torch.long, device=kernel.device)
    for i in range(keep):
        j = int(torch.argmax(gains))
        chosen[i] = j
        e = (kernel[j] - cis[:i, j] @ cis[:i]) / torch.sqrt(gains[j].clamp_min(1e-12))
        cis[i] = e
        gains -= e * e
        gains[chosen[: i + 1]] = float("-inf")
    return chosen


class CDPruner:
    """Conditional DPP over the merged tokens (see module docstring for what it needs)."""

    name = "cdpruner"
    stage = "encoder"

    def __init__(self, *, theta: float = 0.5) -> None:
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"theta must be in (0, 1], got {theta}")
        self.theta = theta

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        instruction = visual.aux.get(INSTRUCTION_KEY)
        if instruction is None or instruction.ndim != 2 or instruction.shape[0] == 0:
            raise ValueError(
                "CDPruner needs the instruction's token embeddings as "
                f"aux['{INSTRUCTION_KEY}'] [M, D] in the visual tokens' space"
            )
        if instruction.shape[1] != visual.tokens.shape[1]:
            raise ValueError(
                f"instruction width {instruction.shape[1]} != visual token width "
                f"{visual.tokens.shape[1]}"
            )
        tokens = visual.tokens
        rel = relevance(tokens, instruction.to(tokens.device))
        alpha = self.theta / (2.0 * (1.0 - self.theta)) if self.theta < 1.0 else None
        quality = torch.exp(alpha * rel) if alpha is not None else rel
        unit = F.normalize(tokens.double(), dim=-1)

        def choose(start: int, stop: int, k: int) -> torch.Tensor:
            u, r = unit[start:stop], quality[start:stop]
            sim = u @ u.T + EPS * torch.eye(stop - start, dtype=u.dtype, device=u.device)
            return dpp_greedy(r[:, None] * sim * r[None, :], k)

        kept = choose_with_budget(visual, keep, choose)
        return Selection(kept_index=kept, scores=rel.float())
