"""Baseline token selectors compared against ReconPruner under the same harness and the same K.

Encoder stage (encoder output only): DivPrune, VisPruner, Prune2Drive, RandomSelector ("random"),
KeepAll ("none"); CDPruner also needs the instruction's embeddings. LLM stage (need the
planner's attention): FastV, SparseVLM, in fastv.py / sparsevlm.py.
The classes are imported lazily (`from fastdrive_ros.nn.baselines import DivPrune` works) so this
package can also hold the budget helper every encoder-stage baseline shares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fastdrive_ros.nn.selection import VisualTokens, check_keep

_LAZY = {
    "DivPrune": "fastdrive_ros.nn.baselines.divprune",
    "VisPruner": "fastdrive_ros.nn.baselines.vispruner",
    "Prune2Drive": "fastdrive_ros.nn.baselines.prune2drive",
    "CDPruner": "fastdrive_ros.nn.baselines.cdpruner",
    "RandomSelector": "fastdrive_ros.nn.baselines.simple",
    "KeepAll": "fastdrive_ros.nn.baselines.simple",
    "FastV": "fastdrive_ros.nn.baselines.fastv",
    "SparseVLM": "fastdrive_ros.nn.baselines.sparsevlm",
}

Chooser = Callable[[int, int, int], torch.Tensor]


def choose_with_budget(
    visual: VisualTokens, keep: int | Sequence[int], choose: Chooser
) -> torch.Tensor:
    """Apply a selector's core to a global K or to per-camera budgets.

    choose(start, stop, k) returns k distinct indices (any order) into tokens[start:stop]. A
    global K runs it once over all N tokens, budgets once per camera. Returns [K] ascending
    global indices.
    """
    counts = visual.tokens_per_camera
    keep = check_keep(counts, keep)
    spans: list[tuple[int, int, int]] = []
    if isinstance(keep, int):
        spans.append((0, sum(counts), keep))
    else:
        offset = 0
        for count, budget in zip(counts, keep):
            if budget:
                spans.append((offset, offset + count, budget))
            offset += count
    parts = []
    for start, stop, budget in spans:
        local = choose(start, stop, budget).to(torch.long)
        if local.numel() != budget or torch.unique(local).numel() != budget:
            raise RuntimeError(f"selector chose {local.numel()} tokens for a budget of {budget}")
        parts.append(torch.sort(local).values + start)
    return torch.cat(parts)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CDPruner",
    "DivPrune",
    "FastV",
    "KeepAll",
    "Prune2Drive",
    "RandomSelector",
    "SparseVLM",
    "VisPruner",
    "choose_with_budget",
]
