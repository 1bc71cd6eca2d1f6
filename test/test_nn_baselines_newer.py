"""Prune2Drive and CDPruner: what each keeps on hand-made tokens, budgets, and what they need."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines.cdpruner import dpp_greedy, relevance
from fastdrive_ros.nn.baselines.prune2drive import fps_order, weighted_budgets
from fastdrive_ros.nn.registry import SELECTOR_NAMES, make_selector, selector_stage
from fastdrive_ros.nn.selection import VisualTokens, per_camera_keep


def _visual(tokens: torch.Tensor, counts: list[int], **aux: torch.Tensor) -> VisualTokens:
    return VisualTokens(tokens, torch.tensor([[1, 2, 2 * c] for c in counts]), dict(aux))


def _clusters(centres: torch.Tensor, per: int, noise: float = 0.01, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    reps = centres.repeat_interleave(per, dim=0)
    return reps + noise * torch.randn(reps.shape, generator=gen)


def test_fps_takes_one_token_per_cluster_first() -> None:
    centres = torch.eye(4)  # four orthogonal directions, five near-copies each
    tokens = _clusters(centres, 5)
    order = fps_order(tokens, 4)
    assert sorted((order // 5).tolist()) == [0, 1, 2, 3]
    assert fps_order(tokens, 20).unique().numel() == 20


def test_weighted_budgets_sum_to_k_cap_and_default_to_proportional() -> None:
    counts = [10, 12, 8]
    for keep in (1, 7, 12, 29, 30):
        assert weighted_budgets(counts, keep, [1, 1, 1]) == per_camera_keep(counts, 1 - keep / 30)
    front = weighted_budgets(counts, 12, [3, 1, 1])
    assert sum(front) == 12 and front[0] > per_camera_keep(counts, 0.6)[0]
    capped = weighted_budgets(counts, 20, [100, 1, 1])
    assert capped[0] == 10 and sum(capped) == 20  # the front camera is full; the rest spills
    only = weighted_budgets(counts, 15, [1, 0, 0])
    assert only == [10, 5, 0] or sum(only) == 15 and only[0] == 10
    with pytest.raises(ValueError, match="camera weights"):
        weighted_budgets(counts, 5, [0, 0, 0])


def test_prune2drive_view_weights_shift_tokens_to_the_front() -> None:
    tokens = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    visual = _visual(tokens, [10, 12, 8])
    plain = make_selector("prune2drive").select(visual, 9).kept_index
    front = make_selector("prune2drive", camera_weights=[4, 1, 1]).select(visual, 9).kept_index
    assert int((plain < 10).sum()) == 3 and int((front < 10).sum()) > 3
    assert front.numel() == 9 and bool((front[1:] > front[:-1]).all())


def test_cdpruner_prefers_relevant_and_diverse_tokens() -> None:
    # cluster 0 points along the instruction, clusters 1-3 do not; 5 near-copies each
    centres = torch.eye(6)[:4] + torch.tensor([0.0, 0, 0, 0, 0.3, 0.3])
    tokens = _clusters(centres, 5)
    instruction = torch.eye(6)[:1] + 0.01
    visual = _visual(tokens, [20], instruction=instruction)
    rel = relevance(tokens, instruction)
    assert float(rel[:5].min()) > float(rel[5:].max())  # the relevant cluster scores highest
    kept = make_selector("cdpruner").select(visual, 4).kept_index
    assert int((kept < 5).sum()) == 1  # one token of the relevant cluster: its copies add nothing
    assert sorted((kept // 5).tolist()) == [0, 1, 2, 3]  # then the other clusters (diversity)
    # more tokens than the token width (rank of S): still K distinct, ascending
    many = make_selector("cdpruner").select(visual, 18).kept_index
    assert many.numel() == 18 and bool((many[1:] > many[:-1]).all())
    per = make_selector("cdpruner").select(
        _visual(tokens, [10, 10], instruction=instruction), [1, 3]
    )
    assert int((per.kept_index < 10).sum()) == 1


def test_dpp_greedy_is_the_map_of_a_small_kernel() -> None:
    gen = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(6, 3, generator=gen).double(), dim=-1)
    kernel = x @ x.T + 0.1 * torch.eye(6, dtype=torch.float64)
    chosen = dpp_greedy(kernel, 2).tolist()
    best = max(
        ((i, j) for i in range(6) for j in range(i + 1, 6)),
        key=lambda p: float(torch.det(kernel[list(p)][:, list(p)])),
    )
    first = int(torch.argmax(torch.diagonal(kernel)))
    assert chosen[0] == first  # greedy: the largest diagonal first
    pair = max(
        ((first, j) for j in range(6) if j != first),
        key=lambda p: float(torch.det(kernel[list(p)][:, list(p)])),
    )
    assert sorted(chosen) == sorted(pair)  # then the best second given the first
    assert (
        float(torch.det(kernel[chosen][:, chosen]))
        <= float(torch.det(kernel[list(best)][:, list(best)])) + 1e-12
    )


def test_cdpruner_says_what_it_needs_and_is_kept_out_of_the_node_list() -> None:
    visual = _visual(torch.randn(12, 4), [6, 6])
    with pytest.raises(ValueError, match=r"aux\['instruction'\]"):
        make_selector("cdpruner").select(visual, 3)
    with pytest.raises(ValueError, match="instruction width 5"):
        make_selector("cdpruner").select(
            _visual(torch.randn(12, 4), [12], instruction=torch.randn(2, 5)), 3
        )
    assert "cdpruner" not in SELECTOR_NAMES and selector_stage("cdpruner") == "encoder"
