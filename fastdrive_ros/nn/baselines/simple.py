"""The two reference selectors: uniformly random tokens, and no pruning at all."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens


class RandomSelector:
    """K tokens drawn uniformly without replacement.

    Needs: nothing but the token count. Deterministic: a seeded torch.Generator (on the CPU, so the
    same seed gives the same tokens on every device) advances from frame to frame; `reset()`
    starts the sequence again.
    """

    name = "random"
    stage = "encoder"

    def __init__(self, *, seed: int = 0) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        self._generator = torch.Generator(device="cpu")
        self.reset()

    def reset(self) -> None:
        """Restart the random sequence (e.g. at a new scene)."""
        self._generator.manual_seed(self.seed)

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        scores = torch.rand(visual.tokens.shape[0], generator=self._generator)

        def choose(start: int, stop: int, k: int) -> torch.Tensor:
            return torch.topk(scores[start:stop], k).indices

        kept = choose_with_budget(visual, keep, choose).to(visual.tokens.device)
        return Selection(kept_index=kept, scores=scores.to(visual.tokens.device))


class KeepAll:
    """No pruning ("none"): every token is kept, whatever `keep` says (the unpruned reference).

    Needs: nothing.
    """

    name = "none"
    stage = "encoder"

    def __init__(self) -> None:
        pass

    def select(self, visual: VisualTokens, keep: int | Sequence[int] | None = None) -> Selection:
        count = visual.tokens.shape[0]
        return Selection(kept_index=torch.arange(count, device=visual.tokens.device))
