"""Partial visual-token sets in planner training, so that every pruner's output is in distribution.

The first compact planner only ever saw 0 or all 1080 tokens; pruned sets were then out of
distribution, and pruning results measured how the planner reacted to an unfamiliar set rather
than which tokens matter (issue 8). Here each training sample keeps, with probability
`full_share`, every token, and otherwise a share drawn uniformly from [keep_min, 1] chosen by one
of several selection styles that stand in for the pruner families:

- "random": uniform (random pruning);
- "camera": the same share of every camera (per-camera budgets);
- "fg_high": highest foreground share first, with noise (ReconPruner, the oracle);
- "fg_low": lowest foreground share first, with noise (the anti-oracle: background only);
- "norm": largest token norm first, with noise (saliency-style selectors: FastV, VisPruner).

Kept tokens keep their original indices (and so their M-RoPE positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STYLES: tuple[str, ...] = ("random", "camera", "fg_high", "fg_low", "norm")


@dataclass(frozen=True)
class SubsetPolicy:
    """How training samples drop visual tokens (see module docstring)."""

    keep_min: float = 0.2
    full_share: float = 0.25
    styles: tuple[str, ...] = STYLES
    noise: float = 0.5  # score noise (in score standard deviations) for the ranked styles

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_min <= 1.0 or not 0.0 <= self.full_share <= 1.0:
            raise ValueError(f"need keep_min in (0, 1] and full_share in [0, 1]: {self}")
        unknown = [s for s in self.styles if s not in STYLES]
        if not self.styles or unknown:
            raise ValueError(f"styles must be from {STYLES}, got {self.styles}")

    def select(
        self,
        tokens: torch.Tensor,
        fg_fraction: torch.Tensor | None,
        cameras: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ascending int64 indices of the tokens [N, D] this sample keeps."""
        count = tokens.shape[0]
        if count == 0 or float(torch.rand((), generator=generator)) < self.full_share:
            return torch.arange(count)
        share = self.keep_min + (1.0 - self.keep_min) * float(torch.rand((), generator=generator))
        keep = max(1, int(round(count * share)))
        pick = int(torch.randint(len(self.styles), (), generator=generator))
        style = self.styles[pick]
        if style in ("fg_high", "fg_low") and (
            fg_fraction is None or not bool(torch.isfinite(fg_fraction).all())
        ):
            style = "random"  # no masks: the foreground styles cannot be drawn
        if style == "random":
            chosen = torch.randperm(count, generator=generator)[:keep]
        elif style == "camera":
            chosen = _per_camera(count, cameras, share, generator)
        else:
            if style == "norm":
                score = tokens.float().norm(dim=-1)
            else:
                score = fg_fraction.float() * (1.0 if style == "fg_high" else -1.0)
            spread = score.std().clamp(min=1e-3)
            score = score + self.noise * spread * torch.randn(count, generator=generator)
            chosen = torch.topk(score, keep).indices
        return torch.sort(chosen).values


def _per_camera(
    count: int, cameras: int, share: float, generator: torch.Generator | None
) -> torch.Tensor:
    if cameras < 1 or count % cameras:
        return torch.randperm(count, generator=generator)[: max(1, round(count * share))]
    per = count // cameras
    keep = max(1, round(per * share))
    parts = [c * per + torch.randperm(per, generator=generator)[:keep] for c in range(cameras)]
    return torch.cat(parts)
