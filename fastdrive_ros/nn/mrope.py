"""Qwen2.5-VL multimodal rotary (M-RoPE) position ids, computed on the FULL token sequence.

Pruning keeps each visual token's original (t, h, w) position: compute the ids here for the
unpruned prompt, then index them with the kept mask (`kept_positions`). Renumbering the kept
tokens contiguously is wrong (FACTS.md: ~1e-2 logit error).

Rule (the one transformers' `Qwen2_5_VLModel.get_rope_index` implements, 4.49 to 5.x): text
tokens count up by one on all three rows; an image whose first token sits at position s gets
(t, h, w) = (s + t_idx, s + row, s + col) in merged units, and the text after it resumes at
s + max(grid_h, grid_w) (merged units). Still images have t = 1, so t_idx is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextSegment:
    """`length` consecutive text tokens."""

    length: int

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"text segment length must be >= 0, got {self.length}")


@dataclass(frozen=True)
class ImageSegment:
    """One image's merged visual tokens, in raster order.

    Attributes:
        grid_thw: (t, h, w) in *patch* units, as Qwen2.5-VL's `image_grid_thw` row.
        merge: spatial merge size (2 for Qwen2.5-VL): one token covers merge x merge patches.
    """

    grid_thw: tuple[int, int, int]
    merge: int = 2

    def __post_init__(self) -> None:
        t, h, w = (int(v) for v in self.grid_thw)
        object.__setattr__(self, "grid_thw", (t, h, w))
        if t < 1 or h < 1 or w < 1:
            raise ValueError(f"image grid must be positive, got {self.grid_thw}")
        if self.merge < 1 or h % self.merge or w % self.merge:
            raise ValueError(
                f"image grid {self.grid_thw} is not divisible by the merge size {self.merge}"
            )

    @property
    def merged_hw(self) -> tuple[int, int]:
        return self.grid_thw[1] // self.merge, self.grid_thw[2] // self.merge

    @property
    def length(self) -> int:
        h, w = self.merged_hw
        return self.grid_thw[0] * h * w


Segment = TextSegment | ImageSegment


def mrope_position_ids(
    segments: Sequence[Segment], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """[3, L] int64 (t, h, w) position ids of a prompt made of text and image segments.

    L is the sum of the segment lengths (all visual tokens, before any pruning).
    """
    rows: list[torch.Tensor] = []
    start = 0
    for segment in segments:
        if isinstance(segment, TextSegment):
            ids = torch.arange(segment.length, device=device) + start
            rows.append(ids.view(1, -1).expand(3, -1))
            start += segment.length
        elif isinstance(segment, ImageSegment):
            t = segment.grid_thw[0]
            h, w = segment.merged_hw
            tt, hh, ww = torch.meshgrid(
                torch.arange(t, device=device),
                torch.arange(h, device=device),
                torch.arange(w, device=device),
                indexing="ij",
            )
            rows.append(torch.stack([tt, hh, ww]).reshape(3, -1) + start)
            start += max(h, w)
        else:
            raise TypeError(f"segments must be TextSegment or ImageSegment, got {segment!r}")
    if not rows:
        return torch.zeros(3, 0, dtype=torch.long, device=device)
    return torch.cat(rows, dim=1).long()


def next_position(position_ids: torch.Tensor) -> int:
    """Position of the first generated token: one past the largest id of the full prompt.

    Decoding continues from the FULL prompt's numbering even when visual tokens were pruned,
    exactly as the unpruned model would.
    """
    if position_ids.numel() == 0:
        return 0
    return int(position_ids.max()) + 1


def kept_positions(position_ids: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """[3, L_kept] = the full-sequence ids at the kept tokens (keep_mask: [L] bool)."""
    if keep_mask.dtype != torch.bool or keep_mask.shape != position_ids.shape[1:]:
        raise ValueError(
            f"keep_mask must be bool of shape {tuple(position_ids.shape[1:])}, "
            f"got {keep_mask.dtype} {tuple(keep_mask.shape)}"
        )
    return position_ids[:, keep_mask]
