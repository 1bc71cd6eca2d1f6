"""Evaluation probes behind the selection interface: they show whether token choice can matter.

A pruning benchmark means something only where these separate (DESIGN.md section 9):

- `oracle_fg`: the K tokens with the highest ground-truth foreground share (nuScenes-FG masks).
- `anti_oracle`: the K lowest, i.e. background only.
- `shuffled` (ratio 0 only): every position keeps its place but carries another scene's token.
- `no_images` (ratio 0 only): no visual token at all.

They are not pruners a node can run: the oracles need ground truth, and the last two replace or
remove the frame. The evaluation harness fills what they read into `VisualTokens.aux`:
"fg_share" [N] (share of each token cell's pixels that are foreground) and "partner_tokens"
[N, D] (the paired scene's encoder output, same grid). Missing aux is a clear error, never a
silent fallback to some other selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens

FG_SHARE = "fg_share"
PARTNER_TOKENS = "partner_tokens"
# Probes that replace or remove the whole frame: defined only without pruning (ratio 0).
WHOLE_FRAME_PROBES: tuple[str, ...] = ("shuffled", "no_images")


def foreground_share(visual: VisualTokens, who: str) -> torch.Tensor:
    """visual.aux["fg_share"] as [N] float, checked (finite, 0..1, one per token)."""
    share = visual.aux.get(FG_SHARE)
    if share is None:
        raise ValueError(
            f"{who} needs the ground-truth foreground share of every token (aux 'fg_share'): "
            "evaluate a dataset with nuScenes-FG masks (the synthetic world writes them; on real "
            "nuScenes run `fastdrive masks`)"
        )
    share = share.float().reshape(-1)
    if share.numel() != visual.tokens.shape[0]:
        raise ValueError(
            f"fg_share has {share.numel()} values for {visual.tokens.shape[0]} tokens"
        )
    if not bool(torch.isfinite(share).all()) or share.min() < 0 or share.max() > 1:
        raise ValueError("fg_share must be finite shares in 0..1 (a camera without a mask?)")
    return share


class _ShareRanked:
    """Top-K by foreground share (`sign` +1) or by its negative (-1); ties go to the lower index.

    Ties are common (whole cells of sky share 0.0), so the order among equals is fixed by index
    rather than left to topk's implementation: the same frame always gives the same tokens.
    """

    name = ""
    stage = "encoder"
    sign = 1.0

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        share = foreground_share(visual, self.name).cpu().double()
        n = share.numel()
        # a tiny index term breaks ties deterministically without reordering distinct shares
        # (shares of one token cell are multiples of 1 / pixels, far coarser than 1e-9 / N)
        scores = self.sign * share - 1e-9 * torch.arange(n, dtype=torch.float64) / n

        def choose(start: int, stop: int, k: int) -> torch.Tensor:
            return torch.topk(scores[start:stop], k).indices

        kept = choose_with_budget(visual, keep, choose).to(visual.tokens.device)
        return Selection(kept_index=kept, scores=(self.sign * share).to(visual.tokens.device))


class OracleForeground(_ShareRanked):
    """`oracle_fg`: the K tokens with the highest ground-truth foreground share."""

    name = "oracle_fg"
    sign = 1.0

    def __init__(self) -> None:
        pass


class AntiOracle(_ShareRanked):
    """`anti_oracle`: the K tokens with the lowest ground-truth foreground share (background)."""

    name = "anti_oracle"
    sign = -1.0

    def __init__(self) -> None:
        pass


class ShuffledScene:
    """`shuffled`: all N positions, each carrying the paired scene's token at that position.

    The pairing (which scene lends its tokens, never the frame's own) is the harness's
    (eval/pairing.py, fixed by seed); this selector only checks and hands the tokens over. `keep`
    must be all tokens: the probe is defined at ratio 0 only.
    """

    name = "shuffled"
    stage = "encoder"

    def __init__(self) -> None:
        pass

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        n = visual.tokens.shape[0]
        _whole_frame_only(self.name, keep, n)
        partner = visual.aux.get(PARTNER_TOKENS)
        if partner is None:
            raise ValueError(
                "shuffled needs another scene's tokens (aux 'partner_tokens'): the evaluation "
                "harness pairs scenes; it needs at least two scenes"
            )
        if tuple(partner.shape) != tuple(visual.tokens.shape):
            raise ValueError(
                f"partner tokens {tuple(partner.shape)} do not match this frame's "
                f"{tuple(visual.tokens.shape)} (same model and image size needed)"
            )
        index = torch.arange(n, device=visual.tokens.device)
        return Selection(kept_index=index, tokens=partner.to(visual.tokens.device))


class NoImages:
    """`no_images`: no visual token; the planner sees the prompt alone (ratio 0 only)."""

    name = "no_images"
    stage = "encoder"

    def __init__(self) -> None:
        pass

    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        _whole_frame_only(self.name, keep, visual.tokens.shape[0])
        return Selection(kept_index=torch.zeros(0, dtype=torch.long, device=visual.tokens.device))


def _whole_frame_only(name: str, keep: int | Sequence[int], n: int) -> None:
    total = keep if isinstance(keep, int) else sum(int(k) for k in keep)
    if total != n:
        raise ValueError(
            f"{name} is defined at prune ratio 0 only (it replaces or removes the whole frame); "
            f"asked to keep {total} of {n} tokens"
        )
