"""VisPruner (Zhang et al., ICCV 2025): important tokens by visual attention, plus diverse ones.

VisPruner keeps the tokens the vision encoder's [CLS] token attends to most, then fills the rest
of the budget with diverse tokens: among the remaining ones it repeatedly drops near-duplicates
(split the rest alternately into sets A and B, drop the r = 8 tokens of A most similar to some
token of B) until the budget is met. Default split: half important, half diverse.

Adaptation to Qwen2.5-VL, which has no [CLS] token: importance is the mean attention each merged
token *receives* in the last full-attention block of the vision tower (mean over heads, over all
queries of its camera, and over its 2x2 patches), the closest analogue of "what the image's
global summary looks at". VisionEncoder(return_attention=True) and
ExportableVisionEncoder.forward_with_attention provide it as aux["attention_received"].
Similarity is the cosine similarity of the merged output tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines import choose_with_budget
from fastdrive_ros.nn.selection import Selection, VisualTokens

ATTENTION_KEY = "attention_received"


def vispruner_choice(
    tokens: torch.Tensor,
    attention: torch.Tensor,
    keep: int,
    *,
    important_ratio: float = 0.5,
    step: int = 8,
) -> torch.Tensor:
    """[n, D] tokens, [n] importance -> [keep] chosen indices (important first, then diverse).

    Important: the int(keep * important_ratio) most attended tokens. Diverse: VisPruner's loop
    over the rest, with the cosine-similarity matrix computed once ([n, n] memory) and indexed
    per round.
    """
    count = tokens.shape[0]
    if not 1 <= keep <= count:
        raise ValueError(f"keep must be in 1..{count}, got {keep}")
    n_important = int(keep * important_ratio)
    n_diverse = keep - n_important
    order = torch.argsort(attention.float(), descending=True, stable=True)
    important, residual = order[:n_important], order[n_important:]
    unit = F.normalize(tokens.float(), dim=-1)
    similarity = unit @ unit.T
    while True:
        r = min(step, residual.numel() - n_diverse)
        if r <= 0:
            break
        set_a, set_b = residual[0::2], residual[1::2]
        if set_b.numel() == 0:  # one token left and nothing diverse wanted
            residual = residual[r:]
            continue
        closest = similarity[set_a[:, None], set_b[None, :]].max(dim=1).values  # [|A|]
        distinct = torch.argsort(closest, descending=True, stable=True)[r:]
        residual = torch.cat([set_a[distinct], set_b])
    return torch.cat([important, residual])


class VisPruner:
    """Important (by attention received) plus diverse (by similarity) tokens.

    Needs: encoder output plus the vision tower's attention, visual.aux["attention_received"] [N]
    (see module docstring); no LLM attention. A global K ranks and diversifies over all cameras'
    tokens together; per-camera budgets run inside each camera.
    """

    name = "vispruner"
    stage = "encoder"

    def __init__(self, *, important_ratio: float = 0.5, step: int = 8) -> None:
        if not 0.0 <= important_ratio <= 1.0:
            raise ValueError(f"important_ratio must be in [0, 1], got {important_ratio}")
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.important_ratio = float(important_ratio)
        self.step = int(step)

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        attention = visual.aux.get(ATTENTION_KEY)
        if attention is None:
            raise ValueError(
                "VisPruner needs the vision tower's attention: encode with "
                "VisionEncoder(..., return_attention=True) (aux['attention_received'])"
            )
        if attention.shape != (visual.tokens.shape[0],):
            raise ValueError(
                f"aux['attention_received'] must be [{visual.tokens.shape[0]}], "
                f"got {tuple(attention.shape)}"
            )
        tokens = visual.tokens

        def choose(start: int, stop: int, k: int) -> torch.Tensor:
            return vispruner_choice(
                tokens[start:stop],
                attention[start:stop],
                k,
                important_ratio=self.important_ratio,
                step=self.step,
            )

        kept = choose_with_budget(visual, keep, choose)
        return Selection(kept_index=kept, scores=attention)
